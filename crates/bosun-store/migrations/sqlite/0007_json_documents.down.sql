-- Reverts version 7 (nothing to revert on SQLite).
SELECT 1;
