//! `bosun db`: migrations, seeding and integrity checks.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bosun_core::SystemClock;
use bosun_store::{Database, StoreLocation, StoreOptions};
use clap::{Args, Subcommand};

use super::seed::{self, SeedArgs};
use crate::output;

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub store: super::StoreArg,
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Inspect or change the schema version.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Fill the store with a realistic demo fleet.
    Seed(SeedArgs),
    /// Check foreign keys, orphans, revision history and states; exit 1 on any finding.
    Check,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Show applied and pending migrations.
    Status,
    /// Apply every pending migration.
    Up,
    /// Revert migrations newer than version N (0 reverts everything).
    Down {
        /// The version to keep (0: none).
        #[arg(long, value_name = "N")]
        to: i64,
    },
    /// Revert every migration and apply them again: deletes all data.
    Reset {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

pub async fn run(location: &StoreLocation, args: &DbArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DbCommand::Migrate { action } => migrate(location, action).await,
        DbCommand::Seed(args) => {
            let database = connect_current(location).await?;
            let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
            let summary = seed::seed(&store, args).await?;
            println!("{summary}");
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Check => check(location).await,
    }
}

/// Connects and refuses to go on unless the schema is current.
async fn connect_current(location: &StoreLocation) -> anyhow::Result<Database> {
    let database = Database::connect(location).await?;
    database.ensure_current().await?;
    Ok(database)
}

async fn migrate(location: &StoreLocation, action: &MigrateAction) -> anyhow::Result<ExitCode> {
    let database = Database::connect(location).await?;
    match action {
        MigrateAction::Status => print_status(&database).await?,
        MigrateAction::Up => {
            let spinner = output::spinner("migrating");
            let applied = database.migrate_up().await;
            spinner.finish_and_clear();
            let applied = applied?;
            let version = database.status().await?.current_version();
            if applied.is_empty() {
                println!("{location}: schema is up to date (version {version})");
            } else {
                for m in &applied {
                    println!("applied {} {}", m.version, m.description);
                }
                println!("{location}: schema is at version {version}");
            }
        }
        MigrateAction::Down { to } => {
            let reverted = database.migrate_down(*to).await?;
            for m in &reverted {
                println!("reverted {} {}", m.version, m.description);
            }
            println!("{location}: schema is at version {}", database.status().await?.current_version());
        }
        MigrateAction::Reset { yes } => {
            if !yes {
                confirm_reset(location)?;
            }
            database.reset().await?;
            println!("{location}: reset; schema is at version {}", database.status().await?.current_version());
        }
    }
    database.close().await;
    Ok(ExitCode::SUCCESS)
}

fn confirm_reset(location: &StoreLocation) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to reset {location} without --yes: it deletes all data");
    }
    eprint!("This deletes every node, instance, command and change in {location}. Type 'yes' to continue: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("reading the confirmation")?;
    if answer.trim() != "yes" {
        bail!("reset cancelled");
    }
    Ok(())
}

async fn print_status(database: &Database) -> anyhow::Result<()> {
    let status = database.status().await?;
    let current = status.current_version();
    let latest = status.latest_version();
    let state = if !status.unknown_applied.is_empty() {
        "newer than this binary"
    } else if current < latest || !status.pending().is_empty() {
        "migrations pending: run `bosun db migrate up`"
    } else {
        "up to date"
    };
    println!("store:  {}", database.location());
    println!("schema: version {current} of {latest} ({state})");
    println!();
    println!("{:<8} {:<9} {:<20} DESCRIPTION", "VERSION", "STATE", "APPLIED AT");
    for m in &status.migrations {
        let applied = m.applied_at.as_deref().unwrap_or("-");
        let state = match (&m.applied_at, status.modified.contains(&m.version)) {
            (Some(_), true) => "MODIFIED",
            (Some(_), false) => "applied",
            (None, _) => "pending",
        };
        println!("{:<8} {:<9} {:<20} {}", m.version, state, truncate(applied, 19), m.description);
    }
    for version in &status.unknown_applied {
        println!("{version:<8} {:<9} {:<20} (applied by a newer bosun)", "unknown", "-");
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(i, _)| &text[..i])
}

async fn check(location: &StoreLocation) -> anyhow::Result<ExitCode> {
    let database = connect_current(location).await?;
    let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
    let findings = store.check_integrity().await.context("checking integrity")?;
    let counts = store.counts().await?;
    store.close().await;
    if findings.is_empty() {
        println!(
            "{location}: consistent ({} nodes, {} instances, {} commands, {} pools, {} change records; \
             checked foreign keys, orphans, revisions and states)",
            counts.nodes, counts.instances, counts.commands, counts.pools, counts.changes
        );
        return Ok(ExitCode::SUCCESS);
    }
    for finding in &findings {
        println!("{finding}");
    }
    eprintln!("{location}: {} integrity problem(s) found", findings.len());
    Ok(ExitCode::FAILURE)
}
