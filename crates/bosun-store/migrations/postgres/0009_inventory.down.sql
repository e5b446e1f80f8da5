DROP TABLE inventory_syncs;
DROP TABLE inventory_sources;
DROP TABLE host_storage;
DROP TABLE workloads;
DROP TABLE storage;
DROP TABLE containers;
DROP TABLE vms;
DROP TABLE hosts;
DELETE FROM changes WHERE kind IN ('host', 'vm', 'container', 'storage', 'workload');
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval'));
