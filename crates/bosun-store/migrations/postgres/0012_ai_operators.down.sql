-- Reverts version 12: usage, prices and settings go, and the runs of the AI kinds become
-- external runs.
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
UPDATE changes SET resource = jsonb_set(resource::jsonb, '{kind}', '"external"')::json
    WHERE kind = 'run' AND resource_id IN (SELECT run_id::text FROM task_runs WHERE kind IN ('ai_session', 'ai_action'));
UPDATE task_runs SET kind = 'external' WHERE kind IN ('ai_session', 'ai_action');

ALTER TABLE task_runs DROP CONSTRAINT task_runs_kind_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_kind_check
    CHECK (kind IN ('runbook', 'replacement', 'scale', 'drift_repair', 'provider_operation', 'external'));
