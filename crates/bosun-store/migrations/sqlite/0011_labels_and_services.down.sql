-- Reverts version 11: forgets the services (their records, source and change records)
-- and the labels of VMs, containers and workloads.
DELETE FROM changes WHERE kind = 'service';
CREATE TABLE changes_v10 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload', 'drift')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v10 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v10';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v10', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v10 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
DELETE FROM inventory_syncs WHERE source IN (SELECT source FROM inventory_sources WHERE type = 'config');
DELETE FROM inventory_sources WHERE type = 'config';
CREATE TABLE inventory_sources_v10 (
    source           TEXT NOT NULL,
    scope            TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('proxmox', 'agent')),
    last_sync_at     INTEGER NOT NULL,
    last_success_at  INTEGER,
    error            TEXT,
    counts           TEXT NOT NULL CHECK (json_valid(counts)),
    syncs            INTEGER NOT NULL CHECK (syncs > 0),
    PRIMARY KEY (source, scope)
) STRICT, WITHOUT ROWID;
INSERT INTO inventory_sources_v10 (source, scope, type, last_sync_at, last_success_at, error, counts, syncs)
    SELECT source, scope, type, last_sync_at, last_success_at, error, counts, syncs FROM inventory_sources;
DROP TABLE inventory_sources;
ALTER TABLE inventory_sources_v10 RENAME TO inventory_sources;
DROP TABLE services;
ALTER TABLE workloads DROP COLUMN labels;
ALTER TABLE containers DROP COLUMN labels;
ALTER TABLE vms DROP COLUMN labels;
