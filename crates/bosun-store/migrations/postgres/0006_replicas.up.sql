-- Version 6: the replicas serving a store, as each last announced itself (soft state,
-- `bosun replicas list`).
CREATE TABLE replicas (
    replica_id  TEXT COLLATE "C" PRIMARY KEY,
    address     TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);
