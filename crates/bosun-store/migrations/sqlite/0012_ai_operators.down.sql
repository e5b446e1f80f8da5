-- Reverts version 12: usage, prices and settings go, and the runs of the AI kinds become
-- external runs; task_runs is rebuilt with the narrower kinds.
DROP VIEW run_cost;
DROP VIEW recent_token_usage_summary;
DROP TABLE control_settings;
DROP TABLE token_usage;
DROP TABLE llm_responses;
DROP TABLE llm_requests;
DROP TABLE provider_pricing;

-- The runs of the AI kinds become external runs, an older bosun's name for work started
-- outside it, in their rows and in their change records; their events, tool calls and
-- approvals stay.
UPDATE changes SET resource = json_set(resource, '$.kind', 'external')
    WHERE kind = 'run' AND resource_id IN (SELECT run_id FROM task_runs WHERE kind IN ('ai_session', 'ai_action'));
UPDATE task_runs SET kind = 'external' WHERE kind IN ('ai_session', 'ai_action');

DROP VIEW tool_call_success_rate;
DROP VIEW task_run_summary;
DROP VIEW active_task_runs;

CREATE TABLE task_runs_v11 (
    run_id        TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('runbook', 'replacement', 'scale', 'drift_repair', 'provider_operation', 'external')),
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
INSERT INTO task_runs_v11 SELECT * FROM task_runs;
CREATE TABLE task_run_targets_v11 (
    run_id       TEXT NOT NULL REFERENCES task_runs_v11 (run_id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('node', 'pool', 'instance')),
    target_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) STRICT, WITHOUT ROWID;
INSERT INTO task_run_targets_v11 SELECT * FROM task_run_targets;
CREATE TABLE task_events_v11 (
    run_id   TEXT NOT NULL REFERENCES task_runs_v11 (run_id),
    seq      INTEGER NOT NULL CHECK (seq > 0),
    at       INTEGER NOT NULL,
    type     TEXT NOT NULL CHECK (type IN ('step_started', 'step_finished', 'step_failed', 'log', 'approval_requested', 'approval_decided', 'tool_call', 'status_changed', 'error')),
    step     INTEGER CHECK (step >= 0),
    target   TEXT,
    message  TEXT NOT NULL,
    data     TEXT CHECK (json_valid(data)),
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO task_events_v11 SELECT * FROM task_events;
CREATE TABLE artifacts_v11 (
    run_id      TEXT NOT NULL REFERENCES task_runs_v11 (run_id),
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL,
    content     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;
INSERT INTO artifacts_v11 SELECT * FROM artifacts;
CREATE TABLE approvals_v11 (
    approval_id    TEXT PRIMARY KEY NOT NULL,
    run_id         TEXT NOT NULL REFERENCES task_runs_v11 (run_id),
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
INSERT INTO approvals_v11 SELECT * FROM approvals;
CREATE TABLE tool_call_records_v11 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES task_runs_v11 (run_id),
    tool         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    input        TEXT NOT NULL CHECK (json_valid(input)),
    output       TEXT CHECK (json_valid(output)),
    status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'refused', 'awaiting_approval')),
    error        TEXT,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    approval_id  TEXT REFERENCES approvals_v11 (approval_id)
) STRICT;
INSERT INTO tool_call_records_v11 SELECT * FROM tool_call_records;
-- The record ids go on from the last one handed out, as before the rebuild.
DELETE FROM sqlite_sequence WHERE name = 'tool_call_records_v11';
INSERT INTO sqlite_sequence (name, seq) SELECT 'tool_call_records_v11', seq FROM sqlite_sequence WHERE name = 'tool_call_records';
-- Children first: with foreign keys on, a parent goes only once nothing references it.
DROP TABLE tool_call_records;
DROP TABLE artifacts;
DROP TABLE task_events;
DROP TABLE task_run_targets;
DROP TABLE approvals;
DROP TABLE task_runs;
-- The parents first: renaming one rewrites the references to it.
ALTER TABLE task_runs_v11 RENAME TO task_runs;
ALTER TABLE approvals_v11 RENAME TO approvals;
ALTER TABLE task_run_targets_v11 RENAME TO task_run_targets;
ALTER TABLE task_events_v11 RENAME TO task_events;
ALTER TABLE artifacts_v11 RENAME TO artifacts;
ALTER TABLE tool_call_records_v11 RENAME TO tool_call_records;
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
