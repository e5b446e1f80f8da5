//! One module per top-level subcommand.

pub mod bench;
pub mod db;
pub mod debug;
mod seed;
