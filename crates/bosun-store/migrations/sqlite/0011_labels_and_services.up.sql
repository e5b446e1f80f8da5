-- Version 11: labels and services. VMs, containers and workloads keep their labels (a
-- Proxmox guest's tags; a workload's derived from its process, pod and container) as a
-- JSON object a list filters by, and `services` holds the services the configuration
-- declares: the records of a source of type `config`, with `service` change records.

ALTER TABLE vms ADD COLUMN labels TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels));
ALTER TABLE containers ADD COLUMN labels TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels));
ALTER TABLE workloads ADD COLUMN labels TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels));

-- A workload's labels are derived from its other columns (`Workload::labels`): the rows
-- already stored get theirs now, or a selector would miss them until their agent reports
-- a change. A pod's namespace and name count only with its UID, as when the row is read.
-- A value longer than a label holds (256 bytes) is left out, as `Labels::insert` refuses
-- it. `json_patch` leaves out the keys whose value is NULL.
UPDATE workloads SET labels = json_patch('{}', json_object(
    'process', CASE WHEN length(CAST(process_name AS BLOB)) <= 256 THEN NULLIF(process_name, '') END,
    'namespace', CASE WHEN pod_uid IS NOT NULL AND length(CAST(pod_namespace AS BLOB)) <= 256 THEN pod_namespace END,
    'pod', CASE WHEN pod_uid IS NOT NULL AND length(CAST(pod_name AS BLOB)) <= 256 THEN pod_name END,
    'container', CASE WHEN length(CAST(container_id AS BLOB)) <= 256 THEN container_id END));

-- The services the configuration declares (`key`: the service's name); `selector` is a
-- label selector as written (`team=ml,gpu`), `kinds` the kinds its members are of. Their
-- members are found when a service is read, not stored.
CREATE TABLE services (
    source       TEXT NOT NULL,
    key          TEXT NOT NULL,
    scope        TEXT NOT NULL,
    digest       TEXT NOT NULL,
    cpu          REAL NOT NULL CHECK (cpu >= 0),
    memory_used  INTEGER NOT NULL CHECK (memory_used >= 0),
    disk_used    INTEGER NOT NULL CHECK (disk_used >= 0),
    net_in       INTEGER NOT NULL CHECK (net_in >= 0),
    net_out      INTEGER NOT NULL CHECK (net_out >= 0),
    uptime_s     INTEGER NOT NULL CHECK (uptime_s >= 0),
    usage_at     INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    gone_at      INTEGER,
    revision     INTEGER NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    selector         TEXT NOT NULL,
    kinds            TEXT NOT NULL CHECK (json_valid(kinds)),
    description      TEXT,
    PRIMARY KEY (source, key)
) STRICT;

-- SQLite cannot alter a CHECK constraint: rebuild the tables with the wider ones.
CREATE TABLE inventory_sources_v11 (
    source           TEXT NOT NULL,
    scope            TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('proxmox', 'agent', 'config')),
    last_sync_at     INTEGER NOT NULL,
    last_success_at  INTEGER,
    error            TEXT,
    counts           TEXT NOT NULL CHECK (json_valid(counts)),
    syncs            INTEGER NOT NULL CHECK (syncs > 0),
    PRIMARY KEY (source, scope)
) STRICT, WITHOUT ROWID;
INSERT INTO inventory_sources_v11 (source, scope, type, last_sync_at, last_success_at, error, counts, syncs)
    SELECT source, scope, type, last_sync_at, last_success_at, error, counts, syncs FROM inventory_sources;
DROP TABLE inventory_sources;
ALTER TABLE inventory_sources_v11 RENAME TO inventory_sources;
CREATE TABLE changes_v11 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload', 'drift', 'service')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v11 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v11';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v11', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v11 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
