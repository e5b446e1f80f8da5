-- Reverts version 4.
DROP TABLE change_log;
