-- Version 6: the replicas serving a store, as each last announced itself (soft state,
-- `bosun replicas list`).
CREATE TABLE replicas (
    replica_id  TEXT PRIMARY KEY NOT NULL,
    address     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) STRICT;
