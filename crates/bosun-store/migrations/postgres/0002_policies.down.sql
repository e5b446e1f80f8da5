-- Reverts version 2: forgets the stored policy and its history, and narrows the change
-- log's kinds back to version 1's.
DROP TABLE policies;
DELETE FROM changes WHERE kind = 'policy';
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool'));
