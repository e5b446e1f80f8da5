-- Version 5: leases, through which several control-plane replicas agree on one leader,
-- and 'lease' as a kind of resource in the change log (every change of leader is a
-- change record; renewals are not). Version 1's leases table was never used; this one
-- replaces it (expiry is judged by observation on each replica's own clock, not from a
-- stored time).
DROP TABLE leases;
CREATE TABLE leases (
    name         TEXT PRIMARY KEY NOT NULL,
    -- NULL once released.
    holder       TEXT,
    epoch        INTEGER NOT NULL CHECK (epoch > 0),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    renewals     INTEGER NOT NULL CHECK (renewals >= 0),
    acquired_at  INTEGER NOT NULL,
    renewed_at   INTEGER NOT NULL
) STRICT;

-- SQLite cannot alter a CHECK constraint: rebuild the change log with the wider one.
CREATE TABLE changes_v5 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v5 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
-- Keep the sequence where it was, even past records retention removed: a sequence
-- number handed to a watcher is never handed out again.
DELETE FROM sqlite_sequence WHERE name = 'changes_v5';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v5', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v5 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
