-- Reverts version 6.
DROP TABLE replicas;
