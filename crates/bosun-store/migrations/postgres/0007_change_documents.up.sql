-- Version 7: the change log keeps each resource document as the JSON text it was written
-- with (`json`, validated on the way in) instead of decomposing it (`jsonb`). Nothing ever
-- queries inside a change's document: history, watches and exports read it whole, and
-- `json` costs a fraction of `jsonb` to write and to read back. `kind` compares bytewise,
-- like the resource ids beside it in `changes_by_resource`.
ALTER TABLE changes
    ALTER COLUMN resource TYPE JSON USING resource::json,
    ALTER COLUMN kind TYPE TEXT COLLATE "C";
