//! One module per top-level subcommand.

pub mod agent;
pub mod bench;
pub mod config;
pub mod db;
pub mod debug;
pub mod events;
pub mod instances;
pub mod node_commands;
pub mod nodes;
pub mod policy;
pub mod pools;
pub mod probe;
mod remote;
mod seed;
pub mod server;
pub mod sim;
