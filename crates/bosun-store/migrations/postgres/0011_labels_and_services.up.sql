-- Version 11: labels and services. VMs, containers and workloads keep their labels (a
-- Proxmox guest's tags; a workload's derived from its process, pod and container) as a
-- JSON object a list filters by, and `services` holds the services the configuration
-- declares: the records of a source of type `config`, with `service` change records.

ALTER TABLE vms ADD COLUMN labels JSONB NOT NULL DEFAULT '{}';
ALTER TABLE containers ADD COLUMN labels JSONB NOT NULL DEFAULT '{}';
ALTER TABLE workloads ADD COLUMN labels JSONB NOT NULL DEFAULT '{}';

-- A workload's labels are derived from its other columns (`Workload::labels`): the rows
-- already stored get theirs now, or a selector would miss them until their agent reports
-- a change. A pod's namespace and name count only with its UID, as when the row is read.
-- A value longer than a label holds (256 bytes) is left out, as `Labels::insert` refuses it.
UPDATE workloads SET labels = jsonb_strip_nulls(jsonb_build_object(
    'process', CASE WHEN octet_length(process_name) <= 256 THEN NULLIF(process_name, '') END,
    'namespace', CASE WHEN pod_uid IS NOT NULL AND octet_length(pod_namespace) <= 256 THEN pod_namespace END,
    'pod', CASE WHEN pod_uid IS NOT NULL AND octet_length(pod_name) <= 256 THEN pod_name END,
    'container', CASE WHEN octet_length(container_id) <= 256 THEN container_id END));

-- The services the configuration declares (`key`: the service's name); `selector` is a
-- label selector as written (`team=ml,gpu`), `kinds` the kinds its members are of. Their
-- members are found when a service is read, not stored.
CREATE TABLE services (
    source       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    scope        TEXT COLLATE "C" NOT NULL,
    digest       TEXT NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL CHECK (cpu >= 0),
    memory_used  BIGINT NOT NULL CHECK (memory_used >= 0),
    disk_used    BIGINT NOT NULL CHECK (disk_used >= 0),
    net_in       BIGINT NOT NULL CHECK (net_in >= 0),
    net_out      BIGINT NOT NULL CHECK (net_out >= 0),
    uptime_s     BIGINT NOT NULL CHECK (uptime_s >= 0),
    usage_at     TIMESTAMPTZ NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    gone_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL CHECK (revision > 0),
    name             TEXT NOT NULL,
    selector         TEXT NOT NULL,
    kinds            JSONB NOT NULL,
    description      TEXT,
    PRIMARY KEY (source, key)
);

ALTER TABLE inventory_sources DROP CONSTRAINT inventory_sources_type_check;
ALTER TABLE inventory_sources ADD CONSTRAINT inventory_sources_type_check
    CHECK (type IN ('proxmox', 'agent', 'config'));
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease', 'runbook', 'run', 'tool', 'approval_policy', 'approval', 'host', 'vm', 'container', 'storage', 'workload', 'drift', 'service'));
