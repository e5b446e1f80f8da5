-- Version 7: documents that are written and read whole keep the JSON text they were
-- written with (`json`, validated on the way in) instead of being decomposed (`jsonb`):
-- the change log's resources and the GPUs of each metric sample. Nothing queries inside
-- either, and `json` costs a fraction of `jsonb` to write and to read back: the change log
-- is most of a store, and metric samples are rewritten with every heartbeat flush.
-- `kind` compares bytewise, like the resource ids beside it in `changes_by_resource`.
ALTER TABLE changes
    ALTER COLUMN resource TYPE JSON USING resource::json,
    ALTER COLUMN kind TYPE TEXT COLLATE "C";
ALTER TABLE metric_samples ALTER COLUMN gpus TYPE JSON USING gpus::json;
