-- Version 9: the inventory. Hosts, VMs, containers, storage (and which hosts see it) and
-- GPU workloads, each keyed by its source and a key stable in that source; a record a
-- source stops reporting keeps its row with `gone_at` set. Every table has the same
-- leading columns: where the record comes from, the digest of its state, its usage
-- (which moves on every read and is refreshed without a revision), when it was first and
-- last seen, and its revision. `inventory_sources` is how each source (scope: a whole
-- source, or one node's workloads) stands; `inventory_syncs` records each sync.

-- Hypervisors and other machines bosun knows of, with or without an agent.
CREATE TABLE hosts (
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
    status           TEXT NOT NULL,
    cpus             INTEGER NOT NULL CHECK (cpus >= 0),
    memory_total     INTEGER NOT NULL CHECK (memory_total >= 0),
    node_id          TEXT,
    PRIMARY KEY (source, key)
) STRICT;

-- Virtual machines (QEMU on Proxmox); `host` is the key of the host it runs on.
CREATE TABLE vms (
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
    status           TEXT NOT NULL,
    host             TEXT NOT NULL,
    vmid             INTEGER NOT NULL CHECK (vmid >= 0),
    template         INTEGER NOT NULL CHECK (template IN (0, 1)),
    cpus             INTEGER NOT NULL CHECK (cpus >= 0),
    memory_total     INTEGER NOT NULL CHECK (memory_total >= 0),
    disk_total       INTEGER NOT NULL CHECK (disk_total >= 0),
    ha_managed       INTEGER NOT NULL CHECK (ha_managed IN (0, 1)),
    lock             TEXT,
    config_digest    TEXT,
    gpu_devices      TEXT NOT NULL CHECK (json_valid(gpu_devices)),
    node_id          TEXT,
    PRIMARY KEY (source, key)
) STRICT;

-- Containers: LXC guests of a hypervisor, OCI containers on a node.
CREATE TABLE containers (
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
    status           TEXT NOT NULL,
    runtime          TEXT NOT NULL,
    host             TEXT NOT NULL,
    vmid             INTEGER CHECK (vmid >= 0),
    hostname         TEXT,
    os_template      TEXT,
    template         INTEGER NOT NULL CHECK (template IN (0, 1)),
    cpus             INTEGER NOT NULL CHECK (cpus >= 0),
    memory_total     INTEGER NOT NULL CHECK (memory_total >= 0),
    disk_total       INTEGER NOT NULL CHECK (disk_total >= 0),
    ha_managed       INTEGER NOT NULL CHECK (ha_managed IN (0, 1)),
    lock             TEXT,
    config_digest    TEXT,
    PRIMARY KEY (source, key)
) STRICT;

-- Storage; the hosts that see it are in `host_storage`.
CREATE TABLE storage (
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
    status           TEXT NOT NULL,
    storage_type     TEXT NOT NULL,
    content          TEXT NOT NULL CHECK (json_valid(content)),
    shared           INTEGER NOT NULL CHECK (shared IN (0, 1)),
    total            INTEGER NOT NULL CHECK (total >= 0),
    PRIMARY KEY (source, key)
) STRICT;

-- Processes using GPUs, as each node's agent reports them (`scope`: the node).
CREATE TABLE workloads (
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
    node_id          TEXT NOT NULL,
    gpu_indexes      TEXT NOT NULL CHECK (json_valid(gpu_indexes)),
    pid              INTEGER NOT NULL CHECK (pid >= 0),
    process_name     TEXT NOT NULL,
    container_id     TEXT,
    pod_namespace    TEXT,
    pod_name         TEXT,
    pod_uid          TEXT,
    gpu_memory_bytes INTEGER NOT NULL CHECK (gpu_memory_bytes >= 0),
    started_at       INTEGER,
    PRIMARY KEY (source, key)
) STRICT;

-- A sync reads one scope: a whole source (its primary key's prefix), or, for the
-- workloads, one node's.
CREATE INDEX workloads_by_scope ON workloads (source, scope, key);
CREATE INDEX vms_by_node ON vms (node_id) WHERE node_id IS NOT NULL;
CREATE INDEX workloads_by_node ON workloads (node_id, key);

CREATE TABLE host_storage (
    source       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    host_key     TEXT NOT NULL,
    PRIMARY KEY (source, storage_key, host_key),
    FOREIGN KEY (source, storage_key) REFERENCES storage (source, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX host_storage_by_host ON host_storage (source, host_key);

-- How each source stands, per scope (empty: the whole source; else a node's id).
CREATE TABLE inventory_sources (
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

CREATE TABLE inventory_syncs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    created      INTEGER NOT NULL CHECK (created >= 0),
    updated      INTEGER NOT NULL CHECK (updated >= 0),
    back         INTEGER NOT NULL CHECK (back >= 0),
    gone         INTEGER NOT NULL CHECK (gone >= 0),
    unchanged    INTEGER NOT NULL CHECK (unchanged >= 0),
    error        TEXT
) STRICT;
CREATE INDEX inventory_syncs_by_source ON inventory_syncs (source, id);


-- SQLite cannot alter a CHECK constraint: rebuild the change log with the wider one.
CREATE TABLE changes_v9 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v9 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v9';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v9', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v9 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
