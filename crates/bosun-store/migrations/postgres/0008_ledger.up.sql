-- Version 8: the operations ledger. Runbooks (`tasks`), their runs and bosun's own
-- actions as runs (`task_runs`, with their targets), each run's append-only history
-- (`task_events`) and artifacts, tools and their calls, approval policies and
-- approvals, and the append-only audit log. The runbook, run, tool, approval policy and
-- approval kinds join the change log.

CREATE TABLE tasks (
    name         TEXT COLLATE "C" PRIMARY KEY,
    description  TEXT NOT NULL,
    spec         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    revision     BIGINT NOT NULL CHECK (revision > 0)
);

-- Runs are never deleted: the ledger says what was done for as long as the store lives.
-- `task` has no foreign key: a runbook may go, its runs stay.
CREATE TABLE task_runs (
    run_id        UUID PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('runbook', 'replacement', 'scale', 'drift_repair', 'provider_operation', 'external')),
    task          TEXT COLLATE "C",
    task_version  INTEGER CHECK (task_version > 0),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled', 'rejected')),
    requested_by  TEXT NOT NULL,
    approved_by   TEXT,
    input         JSON NOT NULL,
    result        JSON,
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    revision      BIGINT NOT NULL CHECK (revision > 0),
    CHECK ((task IS NULL) = (task_version IS NULL))
);
CREATE INDEX task_runs_by_status ON task_runs (status, run_id);
CREATE INDEX task_runs_by_kind ON task_runs (kind, run_id);

-- A run's targets, fixed when it is created; indexed by id for `runs list --target`.
CREATE TABLE task_run_targets (
    run_id       UUID NOT NULL REFERENCES task_runs (run_id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('node', 'pool', 'instance')),
    target_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE INDEX task_run_targets_by_target ON task_run_targets (target_id, run_id);

-- What the retention path may delete from an append-only table (`what`: the table), in
-- its own transaction: it writes the row, deletes, and removes the row again. The
-- triggers below refuse every other UPDATE and DELETE. `what = 'everything'` lets a
-- replacing load (a restore) empty the store the same way.
CREATE TABLE ledger_expiry (
    what    TEXT COLLATE "C" PRIMARY KEY,
    before  TIMESTAMPTZ NOT NULL
);

-- Gap-free counters (the audit log's sequence): a rolled-back append takes its number
-- back with it, and the row lock orders appends from every replica.
CREATE TABLE ledger_sequences (
    name  TEXT COLLATE "C" PRIMARY KEY,
    last  BIGINT NOT NULL CHECK (last >= 0)
);
INSERT INTO ledger_sequences (name, last) VALUES ('audit', 0);

-- A run's history: numbered 1, 2, 3... per run, never changed.
CREATE TABLE task_events (
    run_id   UUID NOT NULL REFERENCES task_runs (run_id),
    seq      BIGINT NOT NULL CHECK (seq > 0),
    at       TIMESTAMPTZ NOT NULL,
    type     TEXT NOT NULL CHECK (type IN ('step_started', 'step_finished', 'step_failed', 'log', 'approval_requested', 'approval_decided', 'tool_call', 'status_changed', 'error')),
    step     INTEGER CHECK (step >= 0),
    target   TEXT,
    message  TEXT NOT NULL,
    data     JSON,
    PRIMARY KEY (run_id, seq)
);

CREATE FUNCTION bosun_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' AND EXISTS (SELECT 1 FROM ledger_expiry WHERE what = 'everything') THEN
        -- A replacing load (a restore) empties the whole store first.
        RETURN OLD;
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- Nested: PL/pgSQL prepares a condition only when it is reached, and OLD has only
        -- its own table's columns.
        IF TG_TABLE_NAME = 'task_events' THEN
            IF EXISTS (
                SELECT 1 FROM ledger_expiry e, task_runs r
                WHERE e.what = 'task_events' AND r.run_id = OLD.run_id AND r.finished_at < e.before
            ) THEN
                RETURN OLD;
            END IF;
        ELSIF TG_TABLE_NAME = 'audit_entries' THEN
            IF EXISTS (SELECT 1 FROM ledger_expiry e WHERE e.what = 'audit_entries' AND OLD.at < e.before) THEN
                RETURN OLD;
            END IF;
        END IF;
        RAISE EXCEPTION '% is append-only: only retention deletes from it', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER task_events_append_only BEFORE UPDATE OR DELETE ON task_events
    FOR EACH ROW EXECUTE FUNCTION bosun_append_only();
CREATE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events
    FOR EACH STATEMENT EXECUTE FUNCTION bosun_append_only();

CREATE TABLE artifacts (
    run_id      UUID NOT NULL REFERENCES task_runs (run_id),
    name        TEXT COLLATE "C" NOT NULL,
    media_type  TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL,
    content     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE tool_definitions (
    name          TEXT COLLATE "C" PRIMARY KEY,
    description   TEXT NOT NULL,
    input_schema  JSON NOT NULL,
    risk          TEXT NOT NULL CHECK (risk IN ('read', 'write', 'destructive')),
    enabled       BOOLEAN NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    revision      BIGINT NOT NULL CHECK (revision > 0)
);

CREATE TABLE approval_policies (
    name           TEXT COLLATE "C" PRIMARY KEY,
    position       INTEGER NOT NULL,
    description    TEXT NOT NULL,
    condition      TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN ('allow', 'require_approval', 'deny')),
    required_role  TEXT CHECK (required_role IN ('agent', 'operator', 'admin')),
    updated_at     TIMESTAMPTZ NOT NULL,
    revision       BIGINT NOT NULL CHECK (revision > 0),
    CHECK ((decision = 'require_approval') = (required_role IS NOT NULL))
);

-- A decision is made once: all four decision columns are set together.
CREATE TABLE approvals (
    approval_id    UUID PRIMARY KEY,
    run_id         UUID NOT NULL REFERENCES task_runs (run_id),
    step           INTEGER CHECK (step >= 0),
    what           TEXT NOT NULL,
    policy         TEXT COLLATE "C",
    required_role  TEXT NOT NULL CHECK (required_role IN ('agent', 'operator', 'admin')),
    requested_by   TEXT NOT NULL,
    requested_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    decision       TEXT CHECK (decision IN ('approved', 'rejected', 'expired')),
    decided_by     TEXT,
    reason         TEXT,
    decided_at     TIMESTAMPTZ,
    revision       BIGINT NOT NULL CHECK (revision > 0),
    CHECK ((decided_by IS NULL) = (decision IS NULL) AND (reason IS NULL) = (decision IS NULL) AND (decided_at IS NULL) = (decision IS NULL))
);
CREATE INDEX approvals_by_run ON approvals (run_id, approval_id);
CREATE INDEX approvals_undecided ON approvals (expires_at) WHERE decision IS NULL;

-- `tool` has no foreign key: a definition may go, the record of its calls stays.
CREATE TABLE tool_call_records (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id       UUID NOT NULL REFERENCES task_runs (run_id),
    tool         TEXT COLLATE "C" NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    input        JSON NOT NULL,
    output       JSON,
    status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'refused', 'awaiting_approval')),
    error        TEXT,
    duration_ms  BIGINT NOT NULL CHECK (duration_ms >= 0),
    approval_id  UUID REFERENCES approvals (approval_id)
);
CREATE INDEX tool_calls_by_run ON tool_call_records (run_id, id);
CREATE INDEX tool_calls_by_tool ON tool_call_records (tool, at);

-- Every API call that changed something or was refused, numbered without gaps.
CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT COLLATE "C" NOT NULL,
    role        TEXT CHECK (role IN ('agent', 'operator', 'admin')),
    method      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    code        TEXT NOT NULL,
    message     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    peer        TEXT
);
CREATE INDEX audit_entries_by_time ON audit_entries (at);
CREATE INDEX audit_entries_by_actor ON audit_entries (actor, seq);
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION bosun_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION bosun_append_only();

-- Views for operators with SQL access. Durations in the views are seconds.
CREATE VIEW active_task_runs AS
    SELECT run_id, kind, task, status, requested_by, created_at, started_at
    FROM task_runs WHERE status IN ('queued', 'awaiting_approval', 'running');
CREATE VIEW task_run_summary AS
    SELECT kind, status, COUNT(*) AS runs,
           AVG(EXTRACT(EPOCH FROM finished_at - started_at)) AS mean_duration_s,
           MAX(EXTRACT(EPOCH FROM finished_at - started_at)) AS max_duration_s
    FROM task_runs
    WHERE created_at >= now() - INTERVAL '30 days'
    GROUP BY kind, status;
CREATE VIEW tool_call_success_rate AS
    SELECT tool, COUNT(*) AS calls,
           COUNT(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           (COUNT(*) FILTER (WHERE status = 'succeeded'))::float8 / COUNT(*) AS success_rate,
           AVG(duration_ms)::float8 AS mean_duration_ms
    FROM tool_call_records GROUP BY tool;

ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval'));
