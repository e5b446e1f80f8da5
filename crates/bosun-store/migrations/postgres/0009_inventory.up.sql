-- Version 9: the inventory. Hosts, VMs, containers, storage (and which hosts see it) and
-- GPU workloads, each keyed by its source and a key stable in that source; a record a
-- source stops reporting keeps its row with `gone_at` set. Every table has the same
-- leading columns: where the record comes from, the digest of its state, its usage
-- (which moves on every read and is refreshed without a revision), when it was first and
-- last seen, and its revision. `inventory_sources` is how each source (scope: a whole
-- source, or one node's workloads) stands; `inventory_syncs` records each sync.

-- Hypervisors and other machines bosun knows of, with or without an agent.
CREATE TABLE hosts (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    cpus             BIGINT NOT NULL CHECK (cpus >= 0),
    memory_total     BIGINT NOT NULL CHECK (memory_total >= 0),
    node_id          TEXT,
    PRIMARY KEY (source, key)
);

-- Virtual machines (QEMU on Proxmox); `host` is the key of the host it runs on.
CREATE TABLE vms (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    host             TEXT NOT NULL,
    vmid             BIGINT NOT NULL CHECK (vmid >= 0),
    template         BOOLEAN NOT NULL,
    cpus             BIGINT NOT NULL CHECK (cpus >= 0),
    memory_total     BIGINT NOT NULL CHECK (memory_total >= 0),
    disk_total       BIGINT NOT NULL CHECK (disk_total >= 0),
    ha_managed       BOOLEAN NOT NULL,
    lock             TEXT,
    config_digest    TEXT,
    gpu_devices      JSONB NOT NULL,
    node_id          TEXT,
    PRIMARY KEY (source, key)
);

-- Containers: LXC guests of a hypervisor, OCI containers on a node.
CREATE TABLE containers (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    runtime          TEXT NOT NULL,
    host             TEXT NOT NULL,
    vmid             BIGINT CHECK (vmid >= 0),
    hostname         TEXT,
    os_template      TEXT,
    template         BOOLEAN NOT NULL,
    cpus             BIGINT NOT NULL CHECK (cpus >= 0),
    memory_total     BIGINT NOT NULL CHECK (memory_total >= 0),
    disk_total       BIGINT NOT NULL CHECK (disk_total >= 0),
    ha_managed       BOOLEAN NOT NULL,
    lock             TEXT,
    config_digest    TEXT,
    PRIMARY KEY (source, key)
);

-- Storage; the hosts that see it are in `host_storage`.
CREATE TABLE storage (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL,
    storage_type     TEXT NOT NULL,
    content          JSONB NOT NULL,
    shared           BOOLEAN NOT NULL,
    total            BIGINT NOT NULL CHECK (total >= 0),
    PRIMARY KEY (source, key)
);

-- Processes using GPUs, as each node's agent reports them (`scope`: the node).
CREATE TABLE workloads (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    node_id          TEXT NOT NULL,
    gpu_indexes      JSONB NOT NULL,
    pid              BIGINT NOT NULL CHECK (pid >= 0),
    process_name     TEXT NOT NULL,
    container_id     TEXT,
    pod_namespace    TEXT,
    pod_name         TEXT,
    pod_uid          TEXT,
    gpu_memory_bytes BIGINT NOT NULL CHECK (gpu_memory_bytes >= 0),
    started_at       TIMESTAMPTZ,
    PRIMARY KEY (source, key)
);

-- A sync reads one scope: a whole source (its primary key's prefix), or, for the
-- workloads, one node's.
CREATE INDEX workloads_by_scope ON workloads (source, scope, key);
CREATE INDEX vms_by_node ON vms (node_id) WHERE node_id IS NOT NULL;
CREATE INDEX workloads_by_node ON workloads (node_id, key);

CREATE TABLE host_storage (
    source       TEXT COLLATE "C" NOT NULL,
    storage_key  TEXT COLLATE "C" NOT NULL,
    host_key     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, storage_key, host_key),
    FOREIGN KEY (source, storage_key) REFERENCES storage (source, key)
);
CREATE INDEX host_storage_by_host ON host_storage (source, host_key);

-- How each source stands, per scope (empty: the whole source; else a node's id).
CREATE TABLE inventory_sources (
    source           TEXT COLLATE "C" NOT NULL,
    scope            TEXT COLLATE "C" NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('proxmox', 'agent')),
    last_sync_at     TIMESTAMPTZ NOT NULL,
    last_success_at  TIMESTAMPTZ,
    error            TEXT,
    counts           JSONB NOT NULL,
    syncs            BIGINT NOT NULL CHECK (syncs > 0),
    PRIMARY KEY (source, scope)
);

CREATE TABLE inventory_syncs (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    source       TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    created      BIGINT NOT NULL CHECK (created >= 0),
    updated      BIGINT NOT NULL CHECK (updated >= 0),
    back         BIGINT NOT NULL CHECK (back >= 0),
    gone         BIGINT NOT NULL CHECK (gone >= 0),
    unchanged    BIGINT NOT NULL CHECK (unchanged >= 0),
    error        TEXT
);
CREATE INDEX inventory_syncs_by_source ON inventory_syncs (source, id);


ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload'));
