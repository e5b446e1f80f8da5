-- Reverts version 5: forgets leases and their history, restores version 1's unused
-- leases table and narrows the change log's kinds back.
DELETE FROM changes WHERE kind = 'lease';
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy'));
DROP TABLE leases;
CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    expires_at  TIMESTAMPTZ NOT NULL
);
