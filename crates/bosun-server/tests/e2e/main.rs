//! End-to-end tests: a real server on loopback over SQLite and PostgreSQL, real agents
//! in-process, real clients. See `harness` for how time is controlled.

mod harness;

mod auth;
mod bad_input;
mod bootstrap;
mod browser;
mod commands;
mod connections;
mod cross_replica;
mod drift;
mod endpoints;
mod hostile;
mod instances;
mod inventory;
mod lifecycle;
mod liveness;
mod mcp;
mod mcp_actions;
mod navarch;
mod notifier;
mod ops;
mod pki;
mod policy;
mod pools;
mod properties;
mod proxmox_pool;
mod remediation;
mod replicas;
mod restart;
mod runbooks;
mod selection;
mod ssh_server;
mod tls;
mod ui;
mod usage;
mod workloads;
