-- Reverts version 1: drops every table bosun created, children first.
DROP TABLE leases;
DROP TABLE changes;
DROP TABLE metric_samples;
DROP TABLE bootstrap_logs;
DROP TABLE health_reports;
DROP TABLE pools;
DROP TABLE command_events;
DROP TABLE commands;
DROP TABLE instances;
DROP TABLE node_liveness;
DROP TABLE node_gpus;
DROP TABLE nodes;
