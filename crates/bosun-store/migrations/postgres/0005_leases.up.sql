-- Version 5: leases, through which several control-plane replicas agree on one leader,
-- and 'lease' as a kind of resource in the change log (every change of leader is a
-- change record; renewals are not). Version 1's leases table was never used; this one
-- replaces it (expiry is judged by observation on each replica's own clock, not from a
-- stored time).
DROP TABLE leases;
CREATE TABLE leases (
    name         TEXT COLLATE "C" PRIMARY KEY,
    -- NULL once released.
    holder       TEXT COLLATE "C",
    epoch        BIGINT NOT NULL CHECK (epoch > 0),
    revision     BIGINT NOT NULL CHECK (revision > 0),
    renewals     BIGINT NOT NULL CHECK (renewals >= 0),
    acquired_at  TIMESTAMPTZ NOT NULL,
    renewed_at   TIMESTAMPTZ NOT NULL
);
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy', 'lease'));
