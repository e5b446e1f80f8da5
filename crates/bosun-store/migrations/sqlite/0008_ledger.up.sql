-- Version 8: the operations ledger. Runbooks (`tasks`), their runs and bosun's own
-- actions as runs (`task_runs`, with their targets), each run's append-only history
-- (`task_events`) and artifacts, tools and their calls, approval policies and
-- approvals, and the append-only audit log. The runbook, run, tool, approval policy and
-- approval kinds join the change log.

CREATE TABLE tasks (
    name         TEXT PRIMARY KEY NOT NULL,
    description  TEXT NOT NULL,
    spec         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    revision     INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

-- Runs are never deleted: the ledger says what was done for as long as the store lives.
-- `task` has no foreign key: a runbook may go, its runs stay.
CREATE TABLE task_runs (
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
CREATE INDEX task_runs_by_status ON task_runs (status, run_id);
CREATE INDEX task_runs_by_kind ON task_runs (kind, run_id);

-- A run's targets, fixed when it is created; indexed by id for `runs list --target`.
CREATE TABLE task_run_targets (
    run_id       TEXT NOT NULL REFERENCES task_runs (run_id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    target_kind  TEXT NOT NULL CHECK (target_kind IN ('node', 'pool', 'instance')),
    target_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX task_run_targets_by_target ON task_run_targets (target_id, run_id);

-- What the retention path may delete from an append-only table (`what`: the table), in
-- its own transaction: it writes the row, deletes, and removes the row again. The
-- triggers below refuse every other UPDATE and DELETE. `what = 'everything'` lets a
-- replacing load (a restore) empty the store the same way.
CREATE TABLE ledger_expiry (
    what    TEXT PRIMARY KEY NOT NULL,
    before  INTEGER NOT NULL
) STRICT;

-- Gap-free counters (the audit log's sequence): a rolled-back append takes its number
-- back with it.
CREATE TABLE ledger_sequences (
    name  TEXT PRIMARY KEY NOT NULL,
    last  INTEGER NOT NULL CHECK (last >= 0)
) STRICT;
INSERT INTO ledger_sequences (name, last) VALUES ('audit', 0);

-- A run's history: numbered 1, 2, 3... per run, never changed.
CREATE TABLE task_events (
    run_id   TEXT NOT NULL REFERENCES task_runs (run_id),
    seq      INTEGER NOT NULL CHECK (seq > 0),
    at       INTEGER NOT NULL,
    type     TEXT NOT NULL CHECK (type IN ('step_started', 'step_finished', 'step_failed', 'log', 'approval_requested', 'approval_decided', 'tool_call', 'status_changed', 'error')),
    step     INTEGER CHECK (step >= 0),
    target   TEXT,
    message  TEXT NOT NULL,
    data     TEXT CHECK (json_valid(data)),
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
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

CREATE TABLE artifacts (
    run_id      TEXT NOT NULL REFERENCES task_runs (run_id),
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL,
    content     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;

CREATE TABLE tool_definitions (
    name          TEXT PRIMARY KEY NOT NULL,
    description   TEXT NOT NULL,
    input_schema  TEXT NOT NULL CHECK (json_valid(input_schema)),
    risk          TEXT NOT NULL CHECK (risk IN ('read', 'write', 'destructive')),
    enabled       INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at    INTEGER NOT NULL,
    revision      INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

CREATE TABLE approval_policies (
    name           TEXT PRIMARY KEY NOT NULL,
    position       INTEGER NOT NULL,
    description    TEXT NOT NULL,
    condition      TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN ('allow', 'require_approval', 'deny')),
    required_role  TEXT CHECK (required_role IN ('agent', 'operator', 'admin')),
    updated_at     INTEGER NOT NULL,
    revision       INTEGER NOT NULL CHECK (revision > 0),
    CHECK ((decision = 'require_approval') = (required_role IS NOT NULL))
) STRICT;

-- A decision is made once: all four decision columns are set together.
CREATE TABLE approvals (
    approval_id    TEXT PRIMARY KEY NOT NULL,
    run_id         TEXT NOT NULL REFERENCES task_runs (run_id),
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
CREATE INDEX approvals_by_run ON approvals (run_id, approval_id);
CREATE INDEX approvals_undecided ON approvals (expires_at) WHERE decision IS NULL;

-- `tool` has no foreign key: a definition may go, the record of its calls stays.
CREATE TABLE tool_call_records (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES task_runs (run_id),
    tool         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    input        TEXT NOT NULL CHECK (json_valid(input)),
    output       TEXT CHECK (json_valid(output)),
    status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'refused', 'awaiting_approval')),
    error        TEXT,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    approval_id  TEXT REFERENCES approvals (approval_id)
) STRICT;
CREATE INDEX tool_calls_by_run ON tool_call_records (run_id, id);
CREATE INDEX tool_calls_by_tool ON tool_call_records (tool, at);

-- Every API call that changed something or was refused, numbered without gaps.
CREATE TABLE audit_entries (
    seq         INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT CHECK (role IN ('agent', 'operator', 'admin')),
    method      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    code        TEXT NOT NULL,
    message     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    peer        TEXT
) STRICT;
CREATE INDEX audit_entries_by_time ON audit_entries (at);
CREATE INDEX audit_entries_by_actor ON audit_entries (actor, seq);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit_entries is append-only');
END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
WHEN NOT EXISTS (SELECT 1 FROM ledger_expiry e WHERE e.what = 'audit_entries' AND OLD.at < e.before)
    AND NOT EXISTS (SELECT 1 FROM ledger_expiry WHERE what = 'everything')
BEGIN
    SELECT RAISE(ABORT, 'audit_entries is append-only: only retention deletes entries older than the retention window');
END;

-- Views for operators with SQL access. Times in the views are seconds.
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

-- SQLite cannot alter a CHECK constraint: rebuild the change log with the wider one.
CREATE TABLE changes_v8 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v8 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v8';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v8', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v8 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
