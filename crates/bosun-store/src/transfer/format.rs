//! The export file: JSON Lines.
//!
//! ```text
//! {"header":{"format":"bosun-export","format_version":1,"schema_version":3,"created_at":...,"source":"sqlite","counts":{...},"sequences":{...}}}
//! {"policy":{...}}          records, kinds in load order (RecordKind), keys ascending
//! {"node":{"node":{...},"gpus":[...],"last_heartbeat":...}}
//! ...
//! {"trailer":{"kinds":{"node":{"count":N,"sha256":"..."},...},"sha256":"..."}}
//! ```
//!
//! The trailer's per-kind checksum is SHA-256 over that kind's record lines (each with its
//! newline); its file checksum is SHA-256 over every byte before the trailer line. A file
//! without its trailer is incomplete. Lines are at most [`MAX_LINE_BYTES`] long.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use bosun_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::{
    Digests, DumpMessage, ExportSummary, ImportSummary, KindCounts, LoadMessage, Progress, Record, RecordKind,
    Sequences, TransferError, hex, load_abandoned, thousands,
};
use crate::error::StoreError;

/// The `format` every export header names.
pub const FORMAT_NAME: &str = "bosun-export";
/// The version of the file layout (header, records, trailer) this binary writes.
pub const FORMAT_VERSION: i64 = 1;
/// The longest line an import accepts: far above any record bosun writes (a change record
/// of a node with every label and GPU at its limits is tens of kilobytes).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub format_version: i64,
    /// The store schema the records follow.
    pub schema_version: i64,
    pub created_at: Timestamp,
    /// The backend exported (`sqlite`, `postgres`, `memory`).
    pub source: String,
    pub counts: KindCounts,
    pub sequences: Sequences,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindDigest {
    pub count: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub kinds: BTreeMap<RecordKind, KindDigest>,
    pub sha256: String,
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    header: Header,
}

#[derive(Serialize, Deserialize)]
struct TrailerLine {
    trailer: Trailer,
}

const TRAILER_PREFIX: &[u8] = b"{\"trailer\"";

/// What the header says besides the snapshot's counts.
pub(super) struct HeaderInfo {
    pub schema_version: i64,
    pub created_at: Timestamp,
    pub source: String,
}

/// Appends `record` as one line (with its newline) to `line`.
pub(super) fn encode(record: &Record, line: &mut Vec<u8>) {
    // Domain types serialize to JSON without failure (string-keyed maps, finite numbers).
    let _ = serde_json::to_writer(&mut *line, record);
    line.push(b'\n');
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io { context: context.to_owned(), source }
}

/// Writes a dump as an export file. The trailer is written only if every record the
/// snapshot announced arrived.
pub(super) fn write<W: Write>(
    mut dumped: mpsc::Receiver<DumpMessage>,
    out: W,
    info: HeaderInfo,
    progress: &dyn Progress,
) -> Result<ExportSummary, TransferError> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut file_hash = Sha256::new();
    let mut digests = Digests::default();
    let mut line = Vec::with_capacity(4096);
    let mut header = None;
    while let Some(message) = dumped.blocking_recv() {
        match message {
            DumpMessage::Start(snapshot) => {
                let h = Header {
                    format: FORMAT_NAME.to_owned(),
                    format_version: FORMAT_VERSION,
                    schema_version: info.schema_version,
                    created_at: info.created_at,
                    source: info.source.clone(),
                    counts: snapshot.counts,
                    sequences: snapshot.sequences,
                };
                line.clear();
                let _ = serde_json::to_writer(&mut line, &HeaderLine { header: h.clone() });
                line.push(b'\n');
                file_hash.update(&line);
                out.write_all(&line).map_err(io("writing the export"))?;
                progress.begin("exporting", h.counts.values().sum());
                header = Some(h);
            }
            DumpMessage::Records(records) => {
                for record in &records {
                    line.clear();
                    encode(record, &mut line);
                    digests.add(record.kind(), &line);
                    file_hash.update(&line);
                    out.write_all(&line).map_err(io("writing the export"))?;
                }
                progress.advance(records.len() as u64);
            }
        }
    }
    let header = header.ok_or_else(|| StoreError::unavailable("the store ended its export before it began"))?;
    for kind in RecordKind::ALL {
        let announced = header.counts.get(&kind).copied().unwrap_or(0);
        if digests.count(kind) != announced {
            return Err(StoreError::unavailable(format!(
                "the store sent {} {kind} records of the {announced} it announced; the export is incomplete",
                digests.count(kind)
            ))
            .into());
        }
    }
    let trailer = Trailer { kinds: digests.finish(), sha256: hex(&file_hash.finalize()) };
    line.clear();
    let _ = serde_json::to_writer(&mut line, &TrailerLine { trailer: trailer.clone() });
    line.push(b'\n');
    out.write_all(&line).map_err(io("writing the export"))?;
    out.flush().map_err(io("writing the export"))?;
    let counts: KindCounts = trailer.kinds.iter().map(|(k, d)| (*k, d.count)).collect();
    Ok(ExportSummary { records: counts.values().sum(), counts, sha256: trailer.sha256 })
}

/// Reads one line into `buf` (without its newline), refusing lines longer than `max`.
/// Returns false at the end of the input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, max: usize, number: u64) -> Result<bool, TransferError> {
    buf.clear();
    loop {
        let available = input.fill_buf().map_err(io("reading the export"))?;
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let content = if done { taken - 1 } else { taken };
        if buf.len() + content > max {
            return Err(TransferError::BadLine {
                line: number,
                problem: format!("the line is longer than {} bytes; this is not a bosun export", thousands(max as u64)),
            });
        }
        buf.extend_from_slice(&available[..content]);
        input.consume(taken);
        if done {
            return Ok(true);
        }
    }
}

fn bad(line: u64, problem: impl Into<String>) -> TransferError {
    TransferError::BadLine { line, problem: problem.into() }
}

/// Reads an export file, checking it line by line, and sends its records to a load;
/// `Commit` is sent only once the trailer's counts and checksums match.
pub(super) fn read<R: BufRead>(
    mut input: R,
    sink: mpsc::Sender<LoadMessage>,
    known_schema: i64,
    progress: &dyn Progress,
) -> Result<ImportSummary, TransferError> {
    let mut buf = Vec::with_capacity(4096);
    let mut number = 1;
    if !read_line(&mut input, &mut buf, MAX_LINE_BYTES, number)? {
        return Err(bad(1, "the file is empty; expected a bosun export header"));
    }
    let header = serde_json::from_slice::<HeaderLine>(&buf)
        .map_err(|e| bad(1, format!("not a bosun export header ({e})")))?
        .header;
    if header.format != FORMAT_NAME {
        return Err(bad(1, format!("the header names format {:?}, not {FORMAT_NAME:?}", header.format)));
    }
    if header.format_version > FORMAT_VERSION {
        return Err(TransferError::Newer {
            what: "format version",
            found: header.format_version,
            known: FORMAT_VERSION,
        });
    }
    if header.schema_version > known_schema {
        return Err(TransferError::Newer { what: "schema version", found: header.schema_version, known: known_schema });
    }
    if header.format_version < 1 || header.schema_version < 1 {
        return Err(bad(1, "the header's format and schema versions must be at least 1"));
    }
    // Exports of older schemas read forward as they are: what later schemas added (a
    // node's remediation in 3, the stored policy in 2) is optional in every record, and an
    // older export simply has none.
    let mut file_hash = Sha256::new();
    file_hash.update(&buf);
    file_hash.update(b"\n");
    progress.begin("importing", header.counts.values().sum());

    let mut digests = Digests::default();
    let mut seen = Sequences::default();
    let mut batch = Vec::with_capacity(super::BATCH);
    let mut last_kind = None;
    let mut line = Vec::with_capacity(4096);
    loop {
        number += 1;
        if !read_line(&mut input, &mut buf, MAX_LINE_BYTES, number)? {
            return Err(bad(
                number - 1,
                "the file ends here without its trailer: it is truncated (was the export interrupted?)",
            ));
        }
        if buf.starts_with(TRAILER_PREFIX) {
            let trailer = serde_json::from_slice::<TrailerLine>(&buf)
                .map_err(|e| bad(number, format!("not a valid trailer ({e})")))?
                .trailer;
            verify(&header, &trailer, std::mem::take(&mut digests), &hex(&file_hash.finalize()), number)?;
            if read_line(&mut input, &mut buf, MAX_LINE_BYTES, number + 1)? {
                return Err(bad(number + 1, "data after the trailer; the file is not one whole export"));
            }
            if !batch.is_empty() {
                sink.blocking_send(LoadMessage::Records(batch)).map_err(|_| load_abandoned())?;
            }
            sink.blocking_send(LoadMessage::Commit(header.sequences.max(seen))).map_err(|_| load_abandoned())?;
            let counts: KindCounts = trailer.kinds.iter().map(|(k, d)| (*k, d.count)).collect();
            return Ok(ImportSummary { records: counts.values().sum(), counts, schema_version: header.schema_version });
        }
        let record: Record =
            serde_json::from_slice(&buf).map_err(|e| bad(number, format!("not a valid record ({e})")))?;
        check(&record).map_err(|e| bad(number, e.to_string()))?;
        let kind = record.kind();
        if let Some(last) = last_kind
            && kind < last
        {
            return Err(bad(
                number,
                format!("a {kind} record after {last} records; an export lists kinds in load order"),
            ));
        }
        last_kind = Some(kind);
        // Hash the canonical encoding, as the export did: the bytes read are that encoding
        // unless someone edited the line, which the file checksum catches.
        file_hash.update(&buf);
        file_hash.update(b"\n");
        line.clear();
        encode(&record, &mut line);
        digests.add(kind, &line);
        seen.cover(&record);
        batch.push(record);
        if batch.len() == super::BATCH {
            progress.advance(batch.len() as u64);
            let full = std::mem::replace(&mut batch, Vec::with_capacity(super::BATCH));
            sink.blocking_send(LoadMessage::Records(full)).map_err(|_| load_abandoned())?;
        }
    }
}

/// What a sync would refuse is refused in a file too: an inventory record, a source's
/// status or a sync the store could not hold is a bad line, never stored otherwise than
/// it was read. So are a price, a usage record or a setting its write would refuse (a
/// usage record's cost is the store's, kept as stored: only its size is checked).
fn check(record: &Record) -> crate::Result<()> {
    match record {
        Record::InventoryRecord(r) => crate::inventory::check_record(r),
        Record::InventorySource(s) => crate::inventory::check_source_status(s),
        Record::InventorySync(s) => crate::inventory::check_sync_record(s),
        Record::Price(p) => Ok(p.check()?),
        Record::LlmUsage(u) => {
            u.check()?;
            if let Some(cost) = u.cost {
                bosun_core::validation::check_stored_int("cost.micro_usd", cost.micro_usd)?;
                bosun_core::validation::check_timestamp("cost.price_from", cost.price_from)?;
            }
            Ok(())
        }
        Record::Setting(s) => Ok(s.check()?),
        _ => Ok(()),
    }
}

fn verify(
    header: &Header,
    trailer: &Trailer,
    digests: Digests,
    file_sha256: &str,
    number: u64,
) -> Result<(), TransferError> {
    let found = digests.finish();
    for kind in RecordKind::ALL {
        let found = &found[&kind];
        let announced = header.counts.get(&kind).copied().unwrap_or(0);
        let totalled = trailer.kinds.get(&kind);
        let totalled_count = totalled.map_or(0, |d| d.count);
        if found.count != announced || found.count != totalled_count {
            return Err(bad(
                number,
                format!(
                    "the file holds {} {kind} records, its header announces {} and its trailer {}",
                    thousands(found.count),
                    thousands(announced),
                    thousands(totalled_count)
                ),
            ));
        }
        if totalled.is_some_and(|d| d.sha256 != found.sha256) {
            return Err(bad(number, format!("checksum mismatch: the {kind} records differ from those exported")));
        }
    }
    if trailer.sha256 != file_sha256 {
        return Err(bad(
            number,
            format!("checksum mismatch: the trailer records {}, the file's content is {file_sha256}", trailer.sha256),
        ));
    }
    Ok(())
}
