-- bosun schema, version 1 (PostgreSQL).
-- Keys use COLLATE "C" so list order is byte order on every backend. JSONB holds only
-- extensible maps and documents; everything the server filters on is a real column.

CREATE TABLE nodes (
    node_id             TEXT COLLATE "C" PRIMARY KEY,
    provider            TEXT COLLATE "C" NOT NULL,
    region              TEXT COLLATE "C" NOT NULL,
    zone                TEXT NOT NULL,
    instance_type       TEXT NOT NULL,
    pool                TEXT COLLATE "C",
    status              TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CORDONED', 'DRAINING', 'UNHEALTHY', 'TERMINATING', 'TERMINATED')),
    status_reason       TEXT NOT NULL,
    status_changed_at   TIMESTAMPTZ NOT NULL,
    health              TEXT NOT NULL CHECK (health IN ('UNKNOWN', 'HEALTHY', 'DEGRADED', 'UNHEALTHY')),
    unhealthy_streak    BIGINT NOT NULL CHECK (unhealthy_streak >= 0),
    labels              JSONB NOT NULL,
    gpu_count           BIGINT NOT NULL CHECK (gpu_count >= 0),
    gpu_model           TEXT NOT NULL,
    metadata            JSONB NOT NULL,
    registered_at       TIMESTAMPTZ NOT NULL,
    last_health_report  TIMESTAMPTZ,
    revision            BIGINT NOT NULL CHECK (revision > 0)
);
-- Status filters are selective (UNHEALTHY, CORDONED nodes are few). Pool, provider and
-- region filters return large fractions of the fleet and are served by a scan: an index
-- per filter would cost every registration a random page write each.
CREATE INDEX nodes_by_status ON nodes (status, node_id);
CREATE INDEX nodes_by_labels ON nodes USING GIN (labels jsonb_path_ops);

-- The GPU inventory, apart from the node row so that listing nodes stays cheap.
CREATE TABLE node_gpus (
    node_id         TEXT COLLATE "C" NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    gpu_index       BIGINT NOT NULL CHECK (gpu_index >= 0),
    uuid            TEXT NOT NULL,
    name            TEXT NOT NULL,
    pci_bus_id      TEXT NOT NULL,
    memory_bytes    BIGINT NOT NULL CHECK (memory_bytes >= 0),
    driver_version  TEXT NOT NULL,
    cuda_version    TEXT NOT NULL,
    PRIMARY KEY (node_id, gpu_index)
);

-- Soft state: a narrow, unindexed-value table with room on each page, so batched
-- heartbeat updates are HOT updates that touch no index.
CREATE TABLE node_liveness (
    node_id         TEXT COLLATE "C" PRIMARY KEY REFERENCES nodes (node_id) ON DELETE CASCADE,
    last_heartbeat  TIMESTAMPTZ NOT NULL
) WITH (fillfactor = 70);

CREATE TABLE instances (
    instance_id           TEXT COLLATE "C" PRIMARY KEY,
    provider              TEXT COLLATE "C" NOT NULL,
    provider_instance_id  TEXT COLLATE "C",
    region                TEXT COLLATE "C" NOT NULL,
    zone                  TEXT NOT NULL,
    instance_type         TEXT NOT NULL,
    pool                  TEXT COLLATE "C",
    state                 TEXT NOT NULL CHECK (state IN ('PROVISIONING', 'PENDING_REGISTRATION', 'RUNNING', 'TERMINATING', 'TERMINATED', 'FAILED')),
    status_message        TEXT NOT NULL,
    -- Deleting a node an instance still points at is refused: unlink explicitly.
    node_id               TEXT COLLATE "C" REFERENCES nodes (node_id) ON DELETE RESTRICT,
    labels                JSONB NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    state_changed_at      TIMESTAMPTZ NOT NULL,
    ready_at              TIMESTAMPTZ,
    terminated_at         TIMESTAMPTZ,
    revision              BIGINT NOT NULL CHECK (revision > 0),
    CHECK (state <> 'RUNNING' OR node_id IS NOT NULL)
);
CREATE UNIQUE INDEX instances_by_provider_id ON instances (provider, provider_instance_id)
    WHERE provider_instance_id IS NOT NULL;
CREATE INDEX instances_by_state ON instances (state, instance_id);
CREATE INDEX instances_by_pool ON instances (pool, state);
CREATE INDEX instances_by_node ON instances (node_id);

CREATE TABLE commands (
    command_id       UUID PRIMARY KEY,
    node_id          TEXT COLLATE "C" NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('CORDON', 'UNCORDON', 'DRAIN', 'TERMINATE', 'RUN_DIAGNOSTIC', 'REBOOT', 'CUSTOM')),
    custom_name      TEXT,
    parameters       JSONB NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'ACKED', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    issued_by        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    issued_at        TIMESTAMPTZ NOT NULL,
    deadline         TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    delivery_count   BIGINT NOT NULL CHECK (delivery_count >= 0),
    acked_at         TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    outcome_message  TEXT NOT NULL,
    result           JSONB NOT NULL,
    revision         BIGINT NOT NULL CHECK (revision > 0),
    CHECK ((kind = 'CUSTOM') = (custom_name IS NOT NULL))
);
CREATE INDEX commands_by_node ON commands (node_id, state, command_id);
CREATE INDEX commands_by_state ON commands (state, deadline);

CREATE TABLE command_events (
    command_id  UUID NOT NULL REFERENCES commands (command_id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL CHECK (seq > 0),
    at          TIMESTAMPTZ NOT NULL,
    state       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (command_id, seq)
);

CREATE TABLE pools (
    name              TEXT COLLATE "C" PRIMARY KEY,
    spec              JSONB NOT NULL,
    last_scale_at     TIMESTAMPTZ,
    provider_backoff  JSONB NOT NULL,
    last_decision     JSONB,
    revision          BIGINT NOT NULL CHECK (revision > 0)
);

CREATE TABLE health_reports (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id      TEXT COLLATE "C" NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    received_at  TIMESTAMPTZ NOT NULL,
    health       TEXT NOT NULL CHECK (health IN ('UNKNOWN', 'HEALTHY', 'DEGRADED', 'UNHEALTHY')),
    results      JSONB NOT NULL,
    events       JSONB NOT NULL
);
CREATE INDEX health_reports_by_node ON health_reports (node_id, id);

-- Not tied to nodes: a machine whose bootstrap failed never became one.
CREATE TABLE bootstrap_logs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id      TEXT COLLATE "C" NOT NULL,
    instance_id  TEXT COLLATE "C",
    pool         TEXT COLLATE "C",
    started_at   TIMESTAMPTZ NOT NULL,
    duration_ms  BIGINT NOT NULL CHECK (duration_ms >= 0),
    success      BOOLEAN NOT NULL,
    error        TEXT NOT NULL,
    commands     JSONB NOT NULL
);
CREATE INDEX bootstrap_logs_by_node ON bootstrap_logs (node_id, id);

-- Soft state: a ring of slots per node (see SampleRetention).
CREATE TABLE metric_samples (
    node_id         TEXT COLLATE "C" NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    slot            INTEGER NOT NULL CHECK (slot >= 0),
    at              TIMESTAMPTZ NOT NULL,
    cpu_percent     DOUBLE PRECISION NOT NULL,
    memory_percent  DOUBLE PRECISION NOT NULL,
    gpus            JSONB NOT NULL,
    PRIMARY KEY (node_id, slot)
) WITH (fillfactor = 80);

-- The change log: history, audit trail and watch source. Writers take a transaction-level
-- advisory lock before appending, so sequence order is commit order.
CREATE TABLE changes (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool')),
    resource_id  TEXT COLLATE "C" NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     BIGINT NOT NULL CHECK (revision > 0),
    actor        TEXT COLLATE "C" NOT NULL,
    reason       TEXT NOT NULL,
    resource     JSONB NOT NULL
);
-- Per-resource history is read constantly; audits by actor are rare and scan.
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);

-- Leader election for several control-plane replicas.
CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    expires_at  TIMESTAMPTZ NOT NULL
);
