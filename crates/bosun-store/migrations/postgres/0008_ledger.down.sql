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
DROP FUNCTION bosun_append_only();
DROP TABLE ledger_sequences;
DROP TABLE ledger_expiry;
DROP TABLE task_run_targets;
DROP TABLE task_runs;
DROP TABLE tasks;
DELETE FROM changes WHERE kind IN ('runbook', 'run', 'tool', 'approval_policy', 'approval');
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease'));
