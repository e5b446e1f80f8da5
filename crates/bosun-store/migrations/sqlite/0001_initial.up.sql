-- bosun schema, version 1 (SQLite).
-- Times are INTEGER microseconds since the Unix epoch, UTC. JSON columns hold only
-- extensible maps and documents; everything the server filters on is a real column.

-- Clustered by node id (WITHOUT ROWID): lists walk the table in key order with no
-- second lookup per row. Rows stay small because the GPU inventory lives in node_gpus.
CREATE TABLE nodes (
    node_id             TEXT PRIMARY KEY NOT NULL,
    provider            TEXT NOT NULL,
    region              TEXT NOT NULL,
    zone                TEXT NOT NULL,
    instance_type       TEXT NOT NULL,
    pool                TEXT,
    status              TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CORDONED', 'DRAINING', 'UNHEALTHY', 'TERMINATING', 'TERMINATED')),
    status_reason       TEXT NOT NULL,
    status_changed_at   INTEGER NOT NULL,
    health              TEXT NOT NULL CHECK (health IN ('UNKNOWN', 'HEALTHY', 'DEGRADED', 'UNHEALTHY')),
    unhealthy_streak    INTEGER NOT NULL CHECK (unhealthy_streak >= 0),
    labels              TEXT NOT NULL CHECK (json_valid(labels)),
    gpu_count           INTEGER NOT NULL CHECK (gpu_count >= 0),
    gpu_model           TEXT NOT NULL,
    metadata            TEXT NOT NULL CHECK (json_valid(metadata)),
    registered_at       INTEGER NOT NULL,
    last_health_report  INTEGER,
    revision            INTEGER NOT NULL CHECK (revision > 0)
) STRICT, WITHOUT ROWID;
-- Status filters are selective (UNHEALTHY, CORDONED nodes are few). Pool, provider and
-- region filters return large fractions of the fleet and are served by a scan: an index
-- per filter would cost every registration a random page write each.
CREATE INDEX nodes_by_status ON nodes (status, node_id);

-- The GPU inventory, apart from the node row so that listing nodes stays cheap.
CREATE TABLE node_gpus (
    node_id         TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    gpu_index       INTEGER NOT NULL CHECK (gpu_index >= 0),
    uuid            TEXT NOT NULL,
    name            TEXT NOT NULL,
    pci_bus_id      TEXT NOT NULL,
    memory_bytes    INTEGER NOT NULL CHECK (memory_bytes >= 0),
    driver_version  TEXT NOT NULL,
    cuda_version    TEXT NOT NULL,
    PRIMARY KEY (node_id, gpu_index)
) STRICT, WITHOUT ROWID;

-- Soft state: a narrow table so that batched heartbeat updates touch little data.
CREATE TABLE node_liveness (
    node_id         TEXT PRIMARY KEY NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    last_heartbeat  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE instances (
    instance_id           TEXT PRIMARY KEY NOT NULL,
    provider              TEXT NOT NULL,
    provider_instance_id  TEXT,
    region                TEXT NOT NULL,
    zone                  TEXT NOT NULL,
    instance_type         TEXT NOT NULL,
    pool                  TEXT,
    state                 TEXT NOT NULL CHECK (state IN ('PROVISIONING', 'PENDING_REGISTRATION', 'RUNNING', 'TERMINATING', 'TERMINATED', 'FAILED')),
    status_message        TEXT NOT NULL,
    -- Deleting a node an instance still points at is refused: unlink explicitly.
    node_id               TEXT REFERENCES nodes (node_id) ON DELETE RESTRICT,
    labels                TEXT NOT NULL CHECK (json_valid(labels)),
    created_at            INTEGER NOT NULL,
    state_changed_at      INTEGER NOT NULL,
    ready_at              INTEGER,
    terminated_at         INTEGER,
    revision              INTEGER NOT NULL CHECK (revision > 0),
    CHECK (state <> 'RUNNING' OR node_id IS NOT NULL)
) STRICT;
CREATE UNIQUE INDEX instances_by_provider_id ON instances (provider, provider_instance_id)
    WHERE provider_instance_id IS NOT NULL;
CREATE INDEX instances_by_state ON instances (state, instance_id);
CREATE INDEX instances_by_pool ON instances (pool, state);
CREATE INDEX instances_by_node ON instances (node_id);

CREATE TABLE commands (
    command_id       TEXT PRIMARY KEY NOT NULL,
    node_id          TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'CUSTOM')),
    custom_name      TEXT,
    parameters       TEXT NOT NULL CHECK (json_valid(parameters)),
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'ACKED', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    issued_by        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    issued_at        INTEGER NOT NULL,
    deadline         INTEGER NOT NULL,
    delivered_at     INTEGER,
    delivery_count   INTEGER NOT NULL CHECK (delivery_count >= 0),
    acked_at         INTEGER,
    finished_at      INTEGER,
    outcome_message  TEXT NOT NULL,
    result           TEXT NOT NULL CHECK (json_valid(result)),
    revision         INTEGER NOT NULL CHECK (revision > 0),
    CHECK ((kind = 'CUSTOM') = (custom_name IS NOT NULL))
) STRICT;
CREATE INDEX commands_by_node ON commands (node_id, state, command_id);
CREATE INDEX commands_by_state ON commands (state, deadline);

CREATE TABLE command_events (
    command_id  TEXT NOT NULL REFERENCES commands (command_id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    at          INTEGER NOT NULL,
    state       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (command_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE pools (
    name              TEXT PRIMARY KEY NOT NULL,
    spec              TEXT NOT NULL CHECK (json_valid(spec)),
    last_scale_at     INTEGER,
    provider_backoff  TEXT NOT NULL CHECK (json_valid(provider_backoff)),
    last_decision     TEXT CHECK (last_decision IS NULL OR json_valid(last_decision)),
    revision          INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

CREATE TABLE health_reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id      TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    received_at  INTEGER NOT NULL,
    health       TEXT NOT NULL CHECK (health IN ('UNKNOWN', 'HEALTHY', 'DEGRADED', 'UNHEALTHY')),
    results      TEXT NOT NULL CHECK (json_valid(results)),
    events       TEXT NOT NULL CHECK (json_valid(events))
) STRICT;
CREATE INDEX health_reports_by_node ON health_reports (node_id, id);

-- Not tied to nodes: a machine whose bootstrap failed never became one.
CREATE TABLE bootstrap_logs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id      TEXT NOT NULL,
    instance_id  TEXT,
    pool         TEXT,
    started_at   INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    success      INTEGER NOT NULL CHECK (success IN (0, 1)),
    error        TEXT NOT NULL,
    commands     TEXT NOT NULL CHECK (json_valid(commands))
) STRICT;
CREATE INDEX bootstrap_logs_by_node ON bootstrap_logs (node_id, id);

-- Soft state: a ring of slots per node (see SampleRetention). A rowid table, not WITHOUT
-- ROWID: rows carry a kilobyte of per-GPU JSON, which WITHOUT ROWID stores poorly.
CREATE TABLE metric_samples (
    id              INTEGER PRIMARY KEY,
    node_id         TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    slot            INTEGER NOT NULL CHECK (slot >= 0),
    at              INTEGER NOT NULL,
    cpu_percent     REAL NOT NULL,
    memory_percent  REAL NOT NULL,
    gpus            TEXT NOT NULL,
    UNIQUE (node_id, slot)
) STRICT;

-- The change log: history, audit trail and watch source. AUTOINCREMENT: a sequence
-- number is never reused, even after the newest records are compacted away.
CREATE TABLE changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    -- Written only by bosun's serializer; validating a kilobyte of JSON per change on the
    -- hottest insert path buys nothing.
    resource     TEXT NOT NULL
) STRICT;
-- Per-resource history is read constantly; audits by actor are rare and scan.
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);

-- Leader election for several control-plane replicas (used on PostgreSQL; present here so
-- both schemas have the same tables).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    epoch       INTEGER NOT NULL CHECK (epoch > 0),
    expires_at  INTEGER NOT NULL
) STRICT;
