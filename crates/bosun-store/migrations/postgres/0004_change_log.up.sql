-- Version 4: the change log's own counters.
--
-- `last_seq` is the last sequence number handed out. Writers draw numbers from it under the
-- change-log lock in their own transaction, so a transaction that rolls back, or never
-- commits because the server crashed, gives its numbers back: an identity sequence skips
-- numbers then (and jumps after a crash), which `bosun db check` could not tell from a
-- lost write.
--
-- Below `compacted_through`, missing sequence numbers are superseded records retention
-- removed on purpose; above it, every number must be present, and `bosun db check`
-- reports a gap.
CREATE TABLE change_log (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq           BIGINT NOT NULL CHECK (last_seq >= 0),
    compacted_through  BIGINT NOT NULL CHECK (compacted_through >= 0)
);
-- A store from before this version may have been compacted already, or have skipped
-- numbers: its history is taken as it is, and the gap check covers what comes next.
INSERT INTO change_log (id, last_seq, compacted_through)
SELECT 1, n, n FROM (
    SELECT GREATEST(
        COALESCE((SELECT last_value FROM pg_sequences
                  WHERE schemaname = current_schema() AND sequencename = 'changes_seq_seq'), 0),
        COALESCE((SELECT MAX(seq) FROM changes), 0)) AS n
) AS counters;
ALTER TABLE changes ALTER COLUMN seq DROP IDENTITY;
