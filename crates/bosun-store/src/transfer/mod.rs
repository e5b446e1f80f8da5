//! Moving a store's contents between stores: export to a file, import from one, copy from
//! one store into another (SPEC 3.9, issue 12).
//!
//! Every backend does two things of its own: [`Store::dump`] streams its records from one
//! consistent snapshot, and [`Store::load`] writes records verbatim (revisions, change
//! sequence numbers and history ids kept, no lifecycle rules re-applied) in one
//! transaction that commits only when told to. Everything else lives here, once: the file
//! format (`format.rs`), counting and checksums, the refusal of a non-empty target, and
//! the verification of a copy.
//!
//! **Atomic, not resumable.** An import or copy commits in one transaction at the very end,
//! after the file's counts and checksums (or, for a copy, the source's counts and what the
//! load's transaction reads back) are verified: a bad line, a short file, a target that
//! holds something else than it was sent or an interruption leaves the target exactly as
//! it was, and the operation is simply run again.
//!
//! **What moves.** All hard state (policy, the leader lease with its epoch, pools, nodes
//! with their GPU inventories, instances, commands with their events, health history,
//! bootstrap logs, the operations ledger, model prices, LLM usage with its text and its
//! cost as stored, control settings, the inventory with its sources' status and sync
//! history, the change log) and, of soft state, each node's last heartbeat. Metric samples
//! do not move: they are kept for minutes and the next heartbeats refill them. Replicas'
//! announcements do not move either: each running replica announces itself again.
//!
//! **Prices** are the one kind a load does not simply add: every store starts with the
//! seeded price list, so a load whose records include prices replaces the target's prices
//! with them, and one whose records include none (an export written before prices moved)
//! leaves the target's as they are.

mod canonical;
mod format;
mod record;

use std::io::{BufRead, Write};
use std::sync::Arc;

use bosun_core::Timestamp;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

pub use self::format::{FORMAT_NAME, FORMAT_VERSION, Header, KindDigest, MAX_LINE_BYTES, Trailer};
pub use self::record::{
    ArtifactRecord, BATCH, ChangeEntry, CommandRecord, DocumentText, DumpMessage, KindCounts, LoadMessage, NodeRecord,
    Record, RecordKind, RunRecord, Sequences, Snapshot,
};
pub(crate) use self::record::{
    Batcher, UNLISTED_CONTENTS, filled_tables, load_abandoned, reader_gone, target_not_empty,
};
use crate::error::StoreError;
use crate::store::Store;

/// Messages in flight between a dump, the format and a load: bounds memory to a few
/// batches whatever the store's size.
const CHANNEL: usize = 4;

/// Why an export, import or copy failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    /// A line of an export file is not what it must be; nothing was written.
    #[error("line {line}: {problem}; nothing was imported")]
    BadLine { line: u64, problem: String },

    /// The target already holds data and the caller did not ask to replace it.
    #[error("the store is not empty ({contents})")]
    NotEmpty { contents: String },

    /// The export was written by a newer bosun.
    #[error(
        "the export has {what} {found}, newer than this bosun knows ({known}); import it with a bosun at least as new as the one that wrote it"
    )]
    Newer { what: &'static str, found: i64, known: i64 },

    /// A copy's target does not hold what its source sent.
    #[error("the copy does not match its source: {0}")]
    Mismatch(String),
}

/// Progress reports, for a bar or a periodic line; all methods default to nothing.
pub trait Progress: Send + Sync {
    /// A phase (`exporting`, `importing`, `copying`, `verifying`) of `total` records begins.
    fn begin(&self, _phase: &str, _total: u64) {}
    /// `records` more are done.
    fn advance(&self, _records: u64) {}
}

impl Progress for () {}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub counts: KindCounts,
    pub records: u64,
    /// The file's checksum, as its trailer records it.
    pub sha256: String,
}

/// What an import loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub counts: KindCounts,
    pub records: u64,
    /// The schema version the export was written with.
    pub schema_version: i64,
}

/// What a copy moved and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySummary {
    pub counts: KindCounts,
    pub records: u64,
}

/// Whether a target may be written: `Replace` deletes what it holds, in the load's
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    MustBeEmpty,
    Replace,
}

/// Describes what a store holds, or `None` if it holds nothing.
pub async fn contents(store: &dyn Store) -> Result<Option<String>, StoreError> {
    let counts = store.counts().await?;
    let policy = store.policy().await?.is_some();
    let mut parts = Vec::new();
    for (n, what) in [
        (counts.nodes, "nodes"),
        (counts.instances, "instances"),
        (counts.commands, "commands"),
        (counts.pools, "pools"),
        (counts.changes, "change records"),
    ] {
        if n > 0 {
            parts.push(format!("{} {what}", thousands(n)));
        }
    }
    if policy {
        parts.push("a stored policy".to_owned());
    }
    // Every inventory sync writes its source's status, so a store that holds inventory
    // records or sync history has sources (the load's own check sees every table).
    let sources = store.inventory_sources().await?.len() as u64;
    if sources > 0 {
        parts.push(format!("{} inventory sources", thousands(sources)));
    }
    // LLM usage writes no change records: count it. (Settings and audit entries write none
    // either; the load's own check, which reads every table, refuses a target that holds
    // one, as `TransferError::NotEmpty` too.)
    let everything = bosun_core::UsageFilter {
        since: Timestamp::from_unix_micros(*Timestamp::ACCEPTED_MICROS.start()),
        by: bosun_core::UsageGroup::Provider,
    };
    let requests: u64 = store.usage_summary(&everything).await?.iter().map(|row| row.requests).sum();
    if requests > 0 {
        parts.push(format!("{} LLM requests", thousands(requests)));
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join(", ")) })
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn ensure_writable(store: &dyn Store, target: Target) -> Result<(), TransferError> {
    if target == Target::MustBeEmpty
        && let Some(contents) = contents(store).await?
    {
        return Err(TransferError::NotEmpty { contents });
    }
    Ok(())
}

/// The schema version this binary writes and reads.
pub fn known_schema_version() -> i64 {
    crate::open::embedded_schema_version(crate::Backend::Sqlite).unwrap_or(0)
}

/// Writes every record of `store` to `out`, from one consistent snapshot of it.
pub async fn export<W: Write + Send + 'static>(
    store: &dyn Store,
    out: W,
    now: Timestamp,
    progress: Arc<dyn Progress>,
) -> Result<ExportSummary, TransferError> {
    let schema_version = store.schema_version().await?.unwrap_or_else(known_schema_version);
    let source = store.backend().to_string();
    let (sink, dumped) = mpsc::channel(CHANNEL);
    let writer = tokio::task::spawn_blocking(move || {
        format::write(dumped, out, format::HeaderInfo { schema_version, created_at: now, source }, &*progress)
    });
    let (dumped, written) = tokio::join!(store.dump(sink), writer);
    let written = written.map_err(|e| StoreError::unavailable(format!("the export writer failed: {e}")))?;
    match (dumped, written) {
        (Err(error), _) if !is_reader_gone(&error) => Err(error.into()),
        (_, written) => written,
    }
}

/// Loads the export read from `input` into `store`, in one transaction that commits only
/// after the whole file checked out (header, order, counts, checksums).
pub async fn import<R: BufRead + Send + 'static>(
    store: &dyn Store,
    input: R,
    target: Target,
    progress: Arc<dyn Progress>,
) -> Result<ImportSummary, TransferError> {
    ensure_writable(store, target).await?;
    let (sink, source) = mpsc::channel(CHANNEL);
    let known = known_schema_version();
    let reader = tokio::task::spawn_blocking(move || format::read(input, sink, known, &*progress));
    let (loaded, read) = tokio::join!(store.load(source, target), reader);
    let read = read.map_err(|e| StoreError::unavailable(format!("the import reader failed: {e}")))?;
    match (loaded, read) {
        // The file's fault first: the load only failed because its sender stopped.
        (_, Err(error)) if !matches!(&error, TransferError::Store(e) if is_load_gone(e)) => Err(error),
        (Err(error), _) => Err(load_error(error)),
        (Ok(()), read) => read,
    }
}

/// Copies every record of `from` into `to` in one transaction, reads back what that
/// transaction holds and compares counts and per-kind checksums with what was sent, and
/// commits only if they match: a copy that does not match its source leaves the target as
/// it was.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    target: Target,
    progress: Arc<dyn Progress>,
) -> Result<CopySummary, TransferError> {
    ensure_writable(to, target).await?;
    let (sink, dumped) = mpsc::channel(CHANNEL);
    let (load_sink, load_source) = mpsc::channel(CHANNEL);
    let relay_progress = Arc::clone(&progress);
    let relay = tokio::task::spawn_blocking(move || relay(dumped, load_sink, &*relay_progress));
    let started = std::time::Instant::now();
    let verify = async {
        let (sent, sequences, load_sink) =
            relay.await.map_err(|e| StoreError::unavailable(format!("the copy failed: {e}")))??;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "copy: sent");
        let reading = std::time::Instant::now();
        let (readback, read_back) = mpsc::channel(CHANNEL);
        load_sink.send(LoadMessage::ReadBack(readback)).await.map_err(|_| load_abandoned())?;
        let received = digest(read_back, progress).await?;
        tracing::debug!(seconds = reading.elapsed().as_secs_f64(), "copy: the target read back");
        let differences = describe_differences(&sent, &received);
        if !differences.is_empty() {
            // Dropping `load_sink` without `Commit` rolls the load back.
            return Err(TransferError::Mismatch(differences.join("; ")));
        }
        load_sink.send(LoadMessage::Commit(sequences)).await.map_err(|_| load_abandoned())?;
        Ok(sent)
    };
    let (dumped, loaded, verified) = tokio::join!(from.dump(sink), to.load(load_source, target), verify);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), ok = loaded.is_ok(), "copy: loaded");
    // Each side's own failure first: the others only failed because it stopped.
    let sent = match (dumped, loaded, verified) {
        (Err(error), _, _) if !is_reader_gone(&error) => return Err(error.into()),
        (_, Err(error), _) if !is_load_gone(&error) => return Err(load_error(error)),
        (_, _, Err(error)) => return Err(error),
        (_, Err(error), _) => return Err(error.into()),
        (_, Ok(()), Ok(sent)) => sent,
    };
    let counts: KindCounts = sent.iter().map(|(kind, d)| (*kind, d.count)).collect();
    Ok(CopySummary { records: counts.values().sum(), counts })
}

/// Backs up the SQLite database at `source` into the new file `out` through SQLite's online
/// backup API (consistent, and safe while a server writes to it). Returns the pages copied.
pub async fn sqlite_backup(source: &std::path::Path, out: &std::path::Path) -> Result<u64, StoreError> {
    let (source, out) = (source.to_owned(), out.to_owned());
    tokio::task::spawn_blocking(move || crate::sqlite::online_backup(&source, &out))
        .await
        .map_err(|e| StoreError::unavailable(format!("the backup failed: {e}")))?
}

/// True if `prefix` (a file's first bytes) is a SQLite database's header: what
/// [`sqlite_backup`] writes, as opposed to an export.
pub fn is_sqlite_file(prefix: &[u8]) -> bool {
    prefix.starts_with(b"SQLite format 3\0")
}

fn is_reader_gone(error: &StoreError) -> bool {
    error.to_string() == reader_gone().to_string()
}

fn is_load_gone(error: &StoreError) -> bool {
    error.to_string() == load_abandoned().to_string()
}

/// A load's error; a target its own check found not empty is refused as one the first look
/// found so.
fn load_error(error: StoreError) -> TransferError {
    if error.to_string() == target_not_empty().to_string() {
        return TransferError::NotEmpty { contents: UNLISTED_CONTENTS.to_owned() };
    }
    error.into()
}

/// Per-kind counts and checksums of a stream of records, each hashed as its line in an
/// export file or, for a copy, in its canonical form (`canonical.rs`).
#[derive(Default)]
pub(crate) struct Digests {
    kinds: std::collections::BTreeMap<RecordKind, (u64, Sha256)>,
}

impl Digests {
    pub fn add(&mut self, kind: RecordKind, line: &[u8]) {
        let (count, hash) = self.kinds.entry(kind).or_default();
        *count += 1;
        hash.update(line);
    }

    pub fn count(&self, kind: RecordKind) -> u64 {
        self.kinds.get(&kind).map_or(0, |(n, _)| *n)
    }

    /// Every kind, including those with no records.
    pub fn finish(self) -> std::collections::BTreeMap<RecordKind, KindDigest> {
        let mut kinds = self.kinds;
        RecordKind::ALL
            .iter()
            .map(|kind| {
                let (count, hash) = kinds.remove(kind).unwrap_or_default();
                (*kind, KindDigest { count, sha256: hex(&hash.finalize()) })
            })
            .collect()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What a relay sent: per-kind digests, the sequences to commit with, and the load's
/// channel, still open.
type Sent = (std::collections::BTreeMap<RecordKind, KindDigest>, Sequences, mpsc::Sender<LoadMessage>);

/// Passes a dump on to a load, hashing each record; fails unless the dump delivered every
/// record its snapshot announced. The caller decides whether the load commits.
fn relay(
    mut dumped: mpsc::Receiver<DumpMessage>,
    sink: mpsc::Sender<LoadMessage>,
    progress: &dyn Progress,
) -> Result<Sent, TransferError> {
    let mut snapshot = None;
    let mut digests = Digests::default();
    let mut seen = Sequences::default();
    let mut line = Vec::new();
    while let Some(message) = dumped.blocking_recv() {
        match message {
            DumpMessage::Start(start) => {
                progress.begin("copying", start.counts.values().sum());
                snapshot = Some(start);
            }
            DumpMessage::Records(records) => {
                for record in &records {
                    line.clear();
                    canonical::encode(record, &mut line);
                    digests.add(record.kind(), &line);
                    seen.cover(record);
                }
                progress.advance(records.len() as u64);
                sink.blocking_send(LoadMessage::Records(records)).map_err(|_| load_abandoned())?;
            }
        }
    }
    let snapshot = snapshot.ok_or_else(|| StoreError::unavailable("the source ended before its snapshot began"))?;
    for kind in RecordKind::ALL {
        let announced = snapshot.counts.get(&kind).copied().unwrap_or(0);
        if digests.count(kind) != announced {
            return Err(StoreError::unavailable(format!(
                "the source sent {} {kind} records of the {announced} it announced",
                digests.count(kind)
            ))
            .into());
        }
    }
    Ok((digests.finish(), snapshot.sequences.max(seen), sink))
}

/// Reads a whole store and returns its per-kind counts and checksums, of the records'
/// canonical forms as a copy compares them.
pub async fn digest_store(
    store: &dyn Store,
    progress: Arc<dyn Progress>,
) -> Result<std::collections::BTreeMap<RecordKind, KindDigest>, StoreError> {
    let (sink, dumped) = mpsc::channel(CHANNEL);
    let (dumped, digests) = tokio::join!(store.dump(sink), digest(dumped, progress));
    dumped?;
    digests
}

/// Per-kind counts and checksums of the records a dump or read-back streams, hashed on a
/// thread of their own, beside the reading.
async fn digest(
    mut dumped: mpsc::Receiver<DumpMessage>,
    progress: Arc<dyn Progress>,
) -> Result<std::collections::BTreeMap<RecordKind, KindDigest>, StoreError> {
    let hashing = tokio::task::spawn_blocking(move || {
        let mut digests = Digests::default();
        let mut line = Vec::new();
        while let Some(message) = dumped.blocking_recv() {
            match message {
                DumpMessage::Start(start) => progress.begin("verifying", start.counts.values().sum()),
                DumpMessage::Records(records) => {
                    for record in &records {
                        line.clear();
                        canonical::encode(record, &mut line);
                        digests.add(record.kind(), &line);
                    }
                    progress.advance(records.len() as u64);
                }
            }
        }
        digests
    });
    let digests = hashing.await.map_err(|e| StoreError::unavailable(format!("hashing the records failed: {e}")))?;
    Ok(digests.finish())
}

fn describe_differences(
    sent: &std::collections::BTreeMap<RecordKind, KindDigest>,
    received: &std::collections::BTreeMap<RecordKind, KindDigest>,
) -> Vec<String> {
    RecordKind::ALL
        .iter()
        .filter_map(|kind| {
            let (a, b) = (sent.get(kind), received.get(kind));
            match (a, b) {
                (Some(a), Some(b)) if a.count != b.count => {
                    Some(format!("{kind}: {} sent, {} stored", thousands(a.count), thousands(b.count)))
                }
                (Some(a), Some(b)) if a.sha256 != b.sha256 => {
                    Some(format!("{kind}: the {} records stored differ from those sent", thousands(a.count)))
                }
                (Some(_), Some(_)) => None,
                _ => Some(format!("{kind}: missing")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
