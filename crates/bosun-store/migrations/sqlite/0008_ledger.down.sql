-- Reverts version 8: the ledger's tables and views, and its kinds in the change log.
DROP VIEW tool_call_success_rate;
DROP VIEW task_run_summary;
DROP VIEW active_task_runs;
DROP TABLE audit_entries;
DROP TABLE tool_call_records;
DROP TABLE approvals;
DROP TABLE approval_policies;
DROP TABLE tool_definitions;
DROP TABLE artifacts;
DROP TABLE task_events;
DROP TABLE ledger_sequences;
DROP TABLE ledger_expiry;
DROP TABLE task_run_targets;
DROP TABLE task_runs;
DROP TABLE tasks;
DELETE FROM changes WHERE kind IN ('runbook', 'run', 'tool', 'approval_policy', 'approval');
CREATE TABLE changes_v7 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v7 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_v7';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v7', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v7 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
