//! One module per top-level subcommand.

pub mod agent;
pub mod bench;
mod bench_inventory;
pub mod config;
pub mod db;
pub mod debug;
pub mod dev;
pub mod events;
pub mod instances;
pub mod inventory;
pub mod ledger;
pub mod mcp;
pub mod node_commands;
pub mod nodes;
pub mod policy;
pub mod pools;
pub mod probe;
mod remote;
pub mod replicas;
mod seed;
pub mod server;
pub mod sim;
pub mod usage;

/// `--store`, on the commands that open a store themselves (server, db, sim, bench).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArg {
    /// Where bosun keeps its state: sqlite://PATH (default sqlite://bosun.db),
    /// postgres://USER:PASSWORD@HOST:PORT/DB or memory://. STORE_TYPE with DATABASE_URL is
    /// also honoured.
    #[arg(long, global = true, env = "BOSUN_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
}

impl StoreArg {
    /// The store chosen by `--store`, `BOSUN_STORE`, `STORE_TYPE` + `DATABASE_URL`, or
    /// the default SQLite file, in that order.
    pub fn location(&self) -> anyhow::Result<bosun_store::StoreLocation> {
        Ok(bosun_store::StoreLocation::select(self.store.as_deref(), |name| std::env::var(name).ok())?)
    }

    /// Whether a store was chosen at all (flag or environment).
    pub fn chosen(&self) -> bool {
        self.store.is_some() || std::env::var_os("STORE_TYPE").is_some()
    }
}

/// A file the user named, read whole; the error names what it was meant to be.
fn read(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}
