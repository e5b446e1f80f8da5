-- Version 12: AI operators. Runs of kind ai_session (an agent's MCP session) and ai_action
-- (an action it asked for), LLM usage with its cost, model prices, and control settings
-- (the MCP kill switch).
--
-- SQLite cannot alter a CHECK constraint: task_runs is rebuilt with the wider kinds, and
-- with it the tables that reference it (their foreign keys name the table they were
-- created against), keeping rows, the tool call ids' sequence, indexes, triggers and views.
DROP VIEW tool_call_success_rate;
DROP VIEW task_run_summary;
DROP VIEW active_task_runs;

CREATE TABLE task_runs_v12 (
    run_id        TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('runbook', 'replacement', 'scale', 'drift_repair', 'provider_operation', 'external', 'ai_session', 'ai_action')),
    task          TEXT,
    task_version  INTEGER CHECK (task_version > 0),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled', 'rejected')),
    requested_by  TEXT NOT NULL,
    approved_by   TEXT,
    input         TEXT NOT NULL CHECK (json_valid(input)),
    result        TEXT CHECK (json_valid(result)),
    error         TEXT,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    revision      INTEGER NOT NULL CHECK (revision > 0),
    CHECK ((task IS NULL) = (task_version IS NULL))
) STRICT;
INSERT INTO task_runs_v12 SELECT * FROM task_runs;
CREATE TABLE task_run_targets_v12 (
    run_id       TEXT NOT NULL REFERENCES task_runs_v12 (run_id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('node', 'pool', 'instance')),
    target_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) STRICT, WITHOUT ROWID;
INSERT INTO task_run_targets_v12 SELECT * FROM task_run_targets;
CREATE TABLE task_events_v12 (
    run_id   TEXT NOT NULL REFERENCES task_runs_v12 (run_id),
    seq      INTEGER NOT NULL CHECK (seq > 0),
    at       INTEGER NOT NULL,
    type     TEXT NOT NULL CHECK (type IN ('step_started', 'step_finished', 'step_failed', 'log', 'approval_requested', 'approval_decided', 'tool_call', 'status_changed', 'error')),
    step     INTEGER CHECK (step >= 0),
    target   TEXT,
    message  TEXT NOT NULL,
    data     TEXT CHECK (json_valid(data)),
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO task_events_v12 SELECT * FROM task_events;
CREATE TABLE artifacts_v12 (
    run_id      TEXT NOT NULL REFERENCES task_runs_v12 (run_id),
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL,
    content     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;
INSERT INTO artifacts_v12 SELECT * FROM artifacts;
CREATE TABLE approvals_v12 (
    approval_id    TEXT PRIMARY KEY NOT NULL,
    run_id         TEXT NOT NULL REFERENCES task_runs_v12 (run_id),
    step           INTEGER CHECK (step >= 0),
    what           TEXT NOT NULL,
    policy         TEXT,
    required_role  TEXT NOT NULL CHECK (required_role IN ('agent', 'operator', 'admin')),
    requested_by   TEXT NOT NULL,
    requested_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    decision       TEXT CHECK (decision IN ('approved', 'rejected', 'expired')),
    decided_by     TEXT,
    reason         TEXT,
    decided_at     INTEGER,
    revision       INTEGER NOT NULL CHECK (revision > 0),
    CHECK ((decided_by IS NULL) = (decision IS NULL) AND (reason IS NULL) = (decision IS NULL) AND (decided_at IS NULL) = (decision IS NULL))
) STRICT;
INSERT INTO approvals_v12 SELECT * FROM approvals;
CREATE TABLE tool_call_records_v12 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES task_runs_v12 (run_id),
    tool         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    input        TEXT NOT NULL CHECK (json_valid(input)),
    output       TEXT CHECK (json_valid(output)),
    status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'refused', 'awaiting_approval')),
    error        TEXT,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    approval_id  TEXT REFERENCES approvals_v12 (approval_id)
) STRICT;
INSERT INTO tool_call_records_v12 SELECT * FROM tool_call_records;
-- The record ids go on from the last one handed out, as before the rebuild.
DELETE FROM sqlite_sequence WHERE name = 'tool_call_records_v12';
INSERT INTO sqlite_sequence (name, seq) SELECT 'tool_call_records_v12', seq FROM sqlite_sequence WHERE name = 'tool_call_records';
-- Children first: with foreign keys on, a parent goes only once nothing references it.
DROP TABLE tool_call_records;
DROP TABLE artifacts;
DROP TABLE task_events;
DROP TABLE task_run_targets;
DROP TABLE approvals;
DROP TABLE task_runs;
-- The parents first: renaming one rewrites the references to it.
ALTER TABLE task_runs_v12 RENAME TO task_runs;
ALTER TABLE approvals_v12 RENAME TO approvals;
ALTER TABLE task_run_targets_v12 RENAME TO task_run_targets;
ALTER TABLE task_events_v12 RENAME TO task_events;
ALTER TABLE artifacts_v12 RENAME TO artifacts;
ALTER TABLE tool_call_records_v12 RENAME TO tool_call_records;
CREATE INDEX task_runs_by_status ON task_runs (status, run_id);
CREATE INDEX task_runs_by_kind ON task_runs (kind, run_id);
CREATE INDEX task_run_targets_by_target ON task_run_targets (target_id, run_id);
CREATE INDEX approvals_by_run ON approvals (run_id, approval_id);
CREATE INDEX approvals_undecided ON approvals (expires_at) WHERE decision IS NULL;
CREATE INDEX tool_calls_by_run ON tool_call_records (run_id, id);
CREATE INDEX tool_calls_by_tool ON tool_call_records (tool, at);
CREATE TRIGGER task_events_no_update BEFORE UPDATE ON task_events
BEGIN
    SELECT RAISE(ABORT, 'task_events is append-only');
END;
-- Only the events of runs that finished before the retention cutoff may go.
CREATE TRIGGER task_events_no_delete BEFORE DELETE ON task_events
WHEN NOT EXISTS (
    SELECT 1 FROM ledger_expiry e, task_runs r
    WHERE e.what = 'task_events' AND r.run_id = OLD.run_id AND r.finished_at < e.before
) AND NOT EXISTS (SELECT 1 FROM ledger_expiry WHERE what = 'everything')
BEGIN
    SELECT RAISE(ABORT, 'task_events is append-only: only retention deletes the events of finished runs');
END;
CREATE VIEW active_task_runs AS
    SELECT run_id, kind, task, status, requested_by, created_at, started_at
    FROM task_runs WHERE status IN ('queued', 'awaiting_approval', 'running');
CREATE VIEW task_run_summary AS
    SELECT kind, status, COUNT(*) AS runs,
           AVG((finished_at - started_at) / 1e6) AS mean_duration_s,
           MAX((finished_at - started_at) / 1e6) AS max_duration_s
    FROM task_runs
    WHERE created_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 30 * 86400) * 1000000
    GROUP BY kind, status;
CREATE VIEW tool_call_success_rate AS
    SELECT tool, COUNT(*) AS calls,
           SUM(status = 'succeeded') AS succeeded,
           CAST(SUM(status = 'succeeded') AS REAL) / COUNT(*) AS success_rate,
           AVG(duration_ms) AS mean_duration_ms
    FROM tool_call_records GROUP BY tool;

-- Money is integers: prices in micro-USD per million tokens, costs in micro-USD.
-- A price applies from effective_from (inclusive) to effective_to (exclusive, open when
-- NULL); a new price of a model closes the open one.
CREATE TABLE provider_pricing (
    provider                         TEXT NOT NULL,
    model                            TEXT NOT NULL,
    input_per_mtok_micro_usd         INTEGER NOT NULL CHECK (input_per_mtok_micro_usd >= 0),
    output_per_mtok_micro_usd        INTEGER NOT NULL CHECK (output_per_mtok_micro_usd >= 0),
    cached_input_per_mtok_micro_usd  INTEGER CHECK (cached_input_per_mtok_micro_usd >= 0),
    effective_from                   INTEGER NOT NULL,
    effective_to                     INTEGER,
    updated_by                       TEXT NOT NULL,
    updated_at                       INTEGER NOT NULL,
    PRIMARY KEY (provider, model, effective_from),
    CHECK (effective_to IS NULL OR effective_to > effective_from)
) STRICT;

-- One LLM request an agent reported, its response, and its token usage (one row each).
CREATE TABLE llm_requests (
    id                TEXT PRIMARY KEY NOT NULL,
    run_id            TEXT REFERENCES task_runs (run_id),
    actor             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    request_id        TEXT,
    prompt            TEXT,
    prompt_truncated  INTEGER NOT NULL CHECK (prompt_truncated IN (0, 1)),
    at                INTEGER NOT NULL,
    CHECK (prompt IS NOT NULL OR prompt_truncated = 0)
) STRICT;
CREATE UNIQUE INDEX llm_requests_by_provider_request ON llm_requests (provider, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX llm_requests_by_run ON llm_requests (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE llm_responses (
    request             TEXT PRIMARY KEY NOT NULL REFERENCES llm_requests (id),
    response            TEXT,
    response_truncated  INTEGER NOT NULL CHECK (response_truncated IN (0, 1)),
    latency_ms          INTEGER CHECK (latency_ms >= 0),
    CHECK (response IS NOT NULL OR response_truncated = 0)
) STRICT;
-- input_tokens is the uncached input. cost_micro_usd and priced_at (the effective_from of
-- the price used) are NULL together: no price covered the model at the time.
CREATE TABLE token_usage (
    request              TEXT PRIMARY KEY NOT NULL REFERENCES llm_requests (id),
    run_id               TEXT REFERENCES task_runs (run_id),
    actor                TEXT NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    input_tokens         INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens        INTEGER NOT NULL CHECK (output_tokens >= 0),
    cached_input_tokens  INTEGER NOT NULL CHECK (cached_input_tokens >= 0),
    cost_micro_usd       INTEGER CHECK (cost_micro_usd >= 0),
    priced_at            INTEGER,
    at                   INTEGER NOT NULL,
    CHECK ((cost_micro_usd IS NULL) = (priced_at IS NULL))
) STRICT;
CREATE INDEX token_usage_by_time ON token_usage (at);
CREATE INDEX token_usage_by_run ON token_usage (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE control_settings (
    name        TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL CHECK (json_valid(value)),
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

-- A small current price list to start from (USD per million tokens, from 2025-06-01):
-- check the vendors' price lists and edit with `bosun pricing set`. The same list is
-- bosun_store::pricing::SEED, which the memory store starts with.
INSERT INTO provider_pricing VALUES
    ('anthropic', 'claude-opus-4', 15000000, 75000000, 1500000, 1748736000000000, NULL, 'migration', 1748736000000000),
    ('anthropic', 'claude-sonnet-4', 3000000, 15000000, 300000, 1748736000000000, NULL, 'migration', 1748736000000000),
    ('anthropic', 'claude-3-5-haiku', 800000, 4000000, 80000, 1748736000000000, NULL, 'migration', 1748736000000000),
    ('openai', 'gpt-4o', 2500000, 10000000, 1250000, 1748736000000000, NULL, 'migration', 1748736000000000),
    ('openai', 'gpt-4o-mini', 150000, 600000, 75000, 1748736000000000, NULL, 'migration', 1748736000000000),
    ('openai', 'o3', 2000000, 8000000, 500000, 1748736000000000, NULL, 'migration', 1748736000000000);

-- Views for operators with SQL access; cost_usd counts priced requests only.
CREATE VIEW recent_token_usage_summary AS
    SELECT provider, model, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,
           SUM(output_tokens) AS output_tokens, SUM(cached_input_tokens) AS cached_input_tokens,
           SUM(cost_micro_usd) / 1e6 AS cost_usd, SUM(cost_micro_usd IS NULL) AS unpriced_requests
    FROM token_usage
    WHERE at >= (CAST(strftime('%s', 'now') AS INTEGER) - 30 * 86400) * 1000000
    GROUP BY provider, model;
CREATE VIEW run_cost AS
    SELECT u.run_id, r.kind, r.requested_by, COUNT(*) AS requests, SUM(u.input_tokens) AS input_tokens,
           SUM(u.output_tokens) AS output_tokens, SUM(u.cached_input_tokens) AS cached_input_tokens,
           SUM(u.cost_micro_usd) / 1e6 AS cost_usd, SUM(u.cost_micro_usd IS NULL) AS unpriced_requests
    FROM token_usage u JOIN task_runs r ON r.run_id = u.run_id
    GROUP BY u.run_id, r.kind, r.requested_by;
