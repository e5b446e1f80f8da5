-- Version 12: AI operators. Runs of kind ai_session (an agent's MCP session) and ai_action
-- (an action it asked for), LLM usage with its cost, model prices, and control settings
-- (the MCP kill switch).
ALTER TABLE task_runs DROP CONSTRAINT task_runs_kind_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_kind_check
    CHECK (kind IN ('runbook', 'replacement', 'scale', 'drift_repair', 'provider_operation', 'external', 'ai_session', 'ai_action'));

-- Money is integers: prices in micro-USD per million tokens, costs in micro-USD.
-- A price applies from effective_from (inclusive) to effective_to (exclusive, open when
-- NULL); a new price of a model closes the open one.
CREATE TABLE provider_pricing (
    provider                         TEXT COLLATE "C" NOT NULL,
    model                            TEXT COLLATE "C" NOT NULL,
    input_per_mtok_micro_usd         BIGINT NOT NULL CHECK (input_per_mtok_micro_usd >= 0),
    output_per_mtok_micro_usd        BIGINT NOT NULL CHECK (output_per_mtok_micro_usd >= 0),
    cached_input_per_mtok_micro_usd  BIGINT CHECK (cached_input_per_mtok_micro_usd >= 0),
    effective_from                   TIMESTAMPTZ NOT NULL,
    effective_to                     TIMESTAMPTZ,
    updated_by                       TEXT NOT NULL,
    updated_at                       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, model, effective_from),
    CHECK (effective_to IS NULL OR effective_to > effective_from)
);

-- One LLM request an agent reported, its response, and its token usage (one row each).
CREATE TABLE llm_requests (
    id                UUID PRIMARY KEY,
    run_id            UUID REFERENCES task_runs (run_id),
    actor             TEXT COLLATE "C" NOT NULL,
    provider          TEXT COLLATE "C" NOT NULL,
    model             TEXT COLLATE "C" NOT NULL,
    request_id        TEXT COLLATE "C",
    prompt            TEXT,
    prompt_truncated  BOOLEAN NOT NULL,
    at                TIMESTAMPTZ NOT NULL,
    CHECK (prompt IS NOT NULL OR NOT prompt_truncated)
);
CREATE UNIQUE INDEX llm_requests_by_provider_request ON llm_requests (provider, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX llm_requests_by_run ON llm_requests (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE llm_responses (
    request             UUID PRIMARY KEY REFERENCES llm_requests (id),
    response            TEXT,
    response_truncated  BOOLEAN NOT NULL,
    latency_ms          BIGINT CHECK (latency_ms >= 0),
    CHECK (response IS NOT NULL OR NOT response_truncated)
);
-- input_tokens is the uncached input. cost_micro_usd and priced_at (the effective_from of
-- the price used) are NULL together: no price covered the model at the time.
CREATE TABLE token_usage (
    request              UUID PRIMARY KEY REFERENCES llm_requests (id),
    run_id               UUID REFERENCES task_runs (run_id),
    actor                TEXT COLLATE "C" NOT NULL,
    provider             TEXT COLLATE "C" NOT NULL,
    model                TEXT COLLATE "C" NOT NULL,
    input_tokens         BIGINT NOT NULL CHECK (input_tokens >= 0),
    output_tokens        BIGINT NOT NULL CHECK (output_tokens >= 0),
    cached_input_tokens  BIGINT NOT NULL CHECK (cached_input_tokens >= 0),
    cost_micro_usd       BIGINT CHECK (cost_micro_usd >= 0),
    priced_at            TIMESTAMPTZ,
    at                   TIMESTAMPTZ NOT NULL,
    CHECK ((cost_micro_usd IS NULL) = (priced_at IS NULL))
);
CREATE INDEX token_usage_by_time ON token_usage (at);
CREATE INDEX token_usage_by_run ON token_usage (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE control_settings (
    name        TEXT COLLATE "C" PRIMARY KEY,
    value       JSON NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    revision    BIGINT NOT NULL CHECK (revision > 0)
);

-- A small current price list to start from (USD per million tokens, from 2025-06-01):
-- check the vendors' price lists and edit with `bosun pricing set`. The same list is
-- bosun_store::pricing::SEED, which the memory store starts with.
INSERT INTO provider_pricing VALUES
    ('anthropic', 'claude-opus-4', 15000000, 75000000, 1500000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z'),
    ('anthropic', 'claude-sonnet-4', 3000000, 15000000, 300000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z'),
    ('anthropic', 'claude-3-5-haiku', 800000, 4000000, 80000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z'),
    ('openai', 'gpt-4o', 2500000, 10000000, 1250000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z'),
    ('openai', 'gpt-4o-mini', 150000, 600000, 75000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z'),
    ('openai', 'o3', 2000000, 8000000, 500000, '2025-06-01T00:00:00Z', NULL, 'migration', '2025-06-01T00:00:00Z');

-- Views for operators with SQL access; cost_usd counts priced requests only.
CREATE VIEW recent_token_usage_summary AS
    SELECT provider, model, COUNT(*) AS requests,
           SUM(input_tokens)::bigint AS input_tokens, SUM(output_tokens)::bigint AS output_tokens,
           SUM(cached_input_tokens)::bigint AS cached_input_tokens,
           (SUM(cost_micro_usd) / 1e6)::float8 AS cost_usd,
           COUNT(*) FILTER (WHERE cost_micro_usd IS NULL) AS unpriced_requests
    FROM token_usage WHERE at >= now() - INTERVAL '30 days'
    GROUP BY provider, model;
CREATE VIEW run_cost AS
    SELECT u.run_id, r.kind, r.requested_by, COUNT(*) AS requests,
           SUM(u.input_tokens)::bigint AS input_tokens, SUM(u.output_tokens)::bigint AS output_tokens,
           SUM(u.cached_input_tokens)::bigint AS cached_input_tokens,
           (SUM(u.cost_micro_usd) / 1e6)::float8 AS cost_usd,
           COUNT(*) FILTER (WHERE u.cost_micro_usd IS NULL) AS unpriced_requests
    FROM token_usage u JOIN task_runs r ON r.run_id = u.run_id
    GROUP BY u.run_id, r.kind, r.requested_by;
