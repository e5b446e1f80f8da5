-- Reverts version 11: forgets the services (their records, source and change records)
-- and the labels of VMs, containers and workloads.
DELETE FROM changes WHERE kind = 'service';
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload', 'drift'));
DELETE FROM inventory_syncs WHERE source IN (SELECT source FROM inventory_sources WHERE type = 'config');
DELETE FROM inventory_sources WHERE type = 'config';
ALTER TABLE inventory_sources DROP CONSTRAINT inventory_sources_type_check;
ALTER TABLE inventory_sources ADD CONSTRAINT inventory_sources_type_check
    CHECK (type IN ('proxmox', 'agent'));
DROP TABLE services;
ALTER TABLE workloads DROP COLUMN labels;
ALTER TABLE containers DROP COLUMN labels;
ALTER TABLE vms DROP COLUMN labels;
