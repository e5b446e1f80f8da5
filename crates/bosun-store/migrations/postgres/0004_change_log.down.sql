-- Reverts version 4: sequence numbers come from an identity sequence again, continuing
-- after the last number handed out.
ALTER TABLE changes ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('changes', 'seq'), GREATEST(last_seq, 1), last_seq > 0) FROM change_log;
DROP TABLE change_log;
