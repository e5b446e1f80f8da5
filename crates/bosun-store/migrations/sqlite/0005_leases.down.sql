-- Reverts version 5: forgets leases and their history, restores version 1's unused
-- leases table and narrows the change log's kinds back to version 4's.
DROP TABLE leases;
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    epoch       INTEGER NOT NULL CHECK (epoch > 0),
    expires_at  INTEGER NOT NULL
) STRICT;
DELETE FROM changes WHERE kind = 'lease';
CREATE TABLE changes_v4 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v4 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v4';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v4', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v4 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
