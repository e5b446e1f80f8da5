//! `bosun db`: migrations, seeding, integrity checks, and moving data between stores
//! (export, import, copy, backup, restore).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bosun_core::{Clock as _, SystemClock};
use bosun_store::transfer::{self, Target, TransferError};
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
    /// Write every record of the store (and its change log) as a checksummed export.
    Export {
        /// Where to write (default: standard output). Written beside FILE, then renamed.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Load an export into the store, atomically: all of it or nothing.
    Import {
        /// The export to read.
        file: PathBuf,
        /// Replace what the store holds instead of refusing a non-empty store.
        #[arg(long)]
        force: bool,
    },
    /// Copy one store into another, atomically, and verify the copy.
    Copy {
        /// The store to read.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The store to write.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Replace what the target holds instead of refusing a non-empty target.
        #[arg(long)]
        force: bool,
    },
    /// Back the store up: SQLite through its online backup API, others as an export.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup (a SQLite backup or an export) into the store.
    Restore {
        file: PathBuf,
        /// Replace what the store holds instead of refusing a non-empty store.
        #[arg(long)]
        force: bool,
    },
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
        DbCommand::Export { out } => export(location, out.as_deref()).await,
        DbCommand::Import { file, force } => import(location, file, *force).await,
        DbCommand::Copy { from, to, force } => {
            let from = StoreLocation::parse(from)?;
            let to = StoreLocation::parse(to)?;
            copy(&from, &to, *force).await
        }
        DbCommand::Backup { out } => backup(location, out).await,
        DbCommand::Restore { file, force } => restore(location, file, *force).await,
    }
}

/// An indicatif bar per phase, drawn only on a terminal.
#[derive(Default)]
struct Bar(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl transfer::Progress for Bar {
    fn begin(&self, phase: &str, total: u64) {
        let mut bar = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = bar.take() {
            done.finish_and_clear();
        }
        *bar = Some(output::progress_bar(total, phase));
    }

    fn advance(&self, records: u64) {
        if let Some(bar) = &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(records);
        }
    }
}

impl Bar {
    fn finish(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

fn target(force: bool) -> Target {
    if force { Target::Replace } else { Target::MustBeEmpty }
}

/// Words for a transfer error, naming the store or file and what to do.
fn explain(error: TransferError, location: &StoreLocation, file: Option<&Path>) -> anyhow::Error {
    match error {
        TransferError::NotEmpty { contents } => {
            anyhow::anyhow!("the store at {location} is not empty ({contents}); pass --force to replace its contents")
        }
        TransferError::BadLine { .. } | TransferError::Newer { .. } => match file {
            Some(file) => anyhow::anyhow!("{}: {error}", file.display()),
            None => error.into(),
        },
        other => anyhow::anyhow!("{location}: {other}"),
    }
}

fn summary(counts: &transfer::KindCounts) -> String {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{} {kind}", transfer::thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens a store to read from, refusing a schema other than this binary's.
async fn open_source(location: &StoreLocation) -> anyhow::Result<bosun_store::SharedStore> {
    let database = connect_current(location).await?;
    Ok(database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?)
}

/// Opens a store to write into, creating or completing its schema first.
async fn open_target(location: &StoreLocation) -> anyhow::Result<bosun_store::SharedStore> {
    let database = Database::connect(location).await?;
    match database.migrate_up().await {
        Ok(_) | Err(bosun_store::OpenError::NoSchema { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    Ok(database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?)
}

async fn export(location: &StoreLocation, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open_source(location).await?;
    let bar = Arc::new(Bar::default());
    let now = SystemClock.now();
    let result = match out {
        None => transfer::export(&*store, std::io::stdout(), now, bar.clone()).await,
        Some(out) => {
            let partial = partial_path(out);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let result = transfer::export(&*store, file, now, bar.clone()).await;
            match &result {
                Ok(_) => std::fs::rename(&partial, out)
                    .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?,
                Err(_) => {
                    let _ = std::fs::remove_file(&partial);
                }
            }
            result
        }
    };
    bar.finish();
    store.close().await;
    let summary_line = match result {
        Ok(done) => format!(
            "{location}: exported {} records ({}); sha256 {}",
            transfer::thousands(done.records),
            summary(&done.counts),
            done.sha256
        ),
        Err(error) => return Err(explain(error, location, None)),
    };
    // The export may be on standard output: the summary goes to stderr then.
    if out.is_some() {
        println!("{summary_line}");
    } else {
        eprintln!("{summary_line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

async fn import(location: &StoreLocation, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let input = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let store = open_target(location).await?;
    let bar = Arc::new(Bar::default());
    let result =
        transfer::import(&*store, std::io::BufReader::with_capacity(1 << 20, input), target(force), bar.clone()).await;
    bar.finish();
    store.close().await;
    let done = result.map_err(|e| explain(e, location, Some(file)))?;
    println!(
        "{location}: imported {} records ({}) from {} (schema version {})",
        transfer::thousands(done.records),
        summary(&done.counts),
        file.display(),
        done.schema_version
    );
    Ok(ExitCode::SUCCESS)
}

async fn copy(from: &StoreLocation, to: &StoreLocation, force: bool) -> anyhow::Result<ExitCode> {
    let source = open_source(from).await?;
    let target_store = open_target(to).await?;
    let bar = Arc::new(Bar::default());
    let result = transfer::copy(&*source, &*target_store, target(force), bar.clone()).await;
    bar.finish();
    source.close().await;
    target_store.close().await;
    let done = result.map_err(|e| explain(e, to, None))?;
    println!(
        "copied {} records ({}) from {from} to {to}; verified by counts and per-kind checksums",
        transfer::thousands(done.records),
        summary(&done.counts)
    );
    Ok(ExitCode::SUCCESS)
}

async fn backup(location: &StoreLocation, out: &Path) -> anyhow::Result<ExitCode> {
    let Some(path) = location.sqlite_path() else {
        // PostgreSQL (and memory): a logical backup, the export. pg_dump remains the tool
        // for physical backups.
        return export(location, Some(out)).await;
    };
    if out.exists() {
        bail!("{} already exists; choose another path or remove it", out.display());
    }
    let pages = transfer::sqlite_backup(path, out).await.map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
    println!("{location}: backed up to {} ({} pages, SQLite online backup)", out.display(), transfer::thousands(pages));
    Ok(ExitCode::SUCCESS)
}

async fn restore(location: &StoreLocation, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let mut prefix = [0u8; 16];
    let read = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut prefix))
        .with_context(|| format!("cannot open {}", file.display()))?;
    if transfer::is_sqlite_file(&prefix[..read]) {
        // Read a scratch copy: a backup from an older bosun is migrated forward there, and
        // the backup file itself is never opened for writing.
        let scratch = tempfile::tempdir().context("cannot create a scratch directory for the restore")?;
        let path = scratch.path().join("backup.db");
        std::fs::copy(file, &path).with_context(|| format!("cannot read {}", file.display()))?;
        let backup = StoreLocation::Sqlite { path };
        Database::connect(&backup).await?.migrate_up().await?;
        return copy(&backup, location, force).await;
    }
    import(location, file, force).await
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
