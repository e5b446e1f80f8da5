-- Version 10: 'drift' joins the change log's kinds. A drift record is the inventory's
-- difference from its declaration (`inventory.declaration`), written when it changes;
-- the change log is the only place it is kept, so it needs no table of its own.
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload', 'drift'));
