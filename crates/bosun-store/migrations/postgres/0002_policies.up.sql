-- Version 2: the health policy document operators store through the API, and 'policy'
-- as a kind of resource in the change log.
CREATE TABLE policies (
    -- There is one stored policy; the key keeps it that way.
    id          TEXT PRIMARY KEY CHECK (id = 'active'),
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    revision    BIGINT NOT NULL CHECK (revision > 0)
);

ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy'));
