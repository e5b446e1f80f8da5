//! The inventory from the command line: `bosun hosts|vms|containers|storage|workloads|services
//! list|get` (a service's get lists its members) and `bosun inventory
//! sources|syncs|sync|history|diff`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bosun_api::v1;
use bosun_core::inventory::drift::{self, Declaration, DriftReport};
use bosun_core::inventory::{InventoryKind, InventoryRecord};
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output::{self, Table};
use crate::views::{self, EventRow};

/// `bosun hosts|vms|containers|storage|workloads|services`.
#[derive(Debug, Args)]
pub struct KindArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: KindCommand,
}

#[derive(Debug, Subcommand)]
enum KindCommand {
    /// The records synced from every source, by source and key.
    List(ListArgs),
    /// One record: SOURCE/KEY, or a key or name only one record has (a service with its
    /// members).
    Get { id: String },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only those of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only those running on this host (VMs and containers).
    #[arg(long)]
    host: Option<String>,
    /// Only those that are, or run on, this bosun node (hosts, VMs, workloads).
    #[arg(long)]
    node: Option<String>,
    /// Only those in this status (running, stopped, online...).
    #[arg(long)]
    status: Option<String>,
    /// Only those gone from their source (`--gone`), or only present ones (`--gone=false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    gone: Option<bool>,
    /// Only those with this name.
    #[arg(long)]
    name: Option<String>,
    /// Label selector: key=value terms and bare keys (label present), comma-separated (VMs,
    /// containers and workloads; a Proxmox tag is a label with an empty value).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    selector: Option<String>,
    /// Records per page (every page is listed).
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
}

/// A record as printed: its JSON document (snake_case fields).
fn documents(records: &[v1::InventoryRecord]) -> anyhow::Result<Vec<serde_json::Value>> {
    records
        .iter()
        .map(|r| serde_json::from_str(&r.json).with_context(|| format!("the server sent {} as malformed JSON", r.id)))
        .collect()
}

fn gone(record: &v1::InventoryRecord) -> String {
    views::time_text(&record.gone_at).unwrap_or_default()
}

/// A document's field as a table cell.
fn field(doc: &serde_json::Value, name: &str) -> String {
    match &doc[name] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(kind: InventoryKind, records: &[v1::InventoryRecord], docs: &[serde_json::Value]) -> Table {
    match kind {
        InventoryKind::Service => {
            let mut table = Table::new(["ID", "NAME", "SELECTOR", "KINDS", "DESCRIPTION", "GONE"]);
            for (r, doc) in records.iter().zip(docs) {
                let kinds: Vec<&str> =
                    doc["kinds"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str).collect();
                table.row([
                    r.id.clone(),
                    r.name.clone(),
                    field(doc, "selector"),
                    kinds.join(","),
                    field(doc, "description"),
                    gone(r),
                ]);
            }
            table
        }
        InventoryKind::Workload => {
            let mut table =
                Table::new(["ID", "NODE", "PID", "PROCESS", "GPUS", "GPU MEMORY", "CONTAINER", "POD UID", "GONE"]);
            for (r, doc) in records.iter().zip(docs) {
                table.row([
                    r.id.clone(),
                    r.node_id.clone(),
                    field(doc, "pid"),
                    r.name.clone(),
                    field(doc, "gpu_indexes"),
                    field(doc, "gpu_memory_bytes"),
                    field(doc, "container_id"),
                    doc["pod"]["uid"].as_str().unwrap_or_default().to_owned(),
                    gone(r),
                ]);
            }
            table
        }
        InventoryKind::Storage => {
            let mut table = Table::new(["ID", "NAME", "TYPE", "STATUS", "SHARED", "HOSTS", "GONE"]);
            for (r, doc) in records.iter().zip(docs) {
                let hosts = doc["hosts"].as_array().map(Vec::len).unwrap_or_default();
                table.row([
                    r.id.clone(),
                    r.name.clone(),
                    field(doc, "storage_type"),
                    r.status.clone(),
                    field(doc, "shared"),
                    hosts.to_string(),
                    gone(r),
                ]);
            }
            table
        }
        InventoryKind::Host => {
            let mut table = Table::new(["ID", "NAME", "STATUS", "CPUS", "NODE", "GONE"]);
            for (r, doc) in records.iter().zip(docs) {
                table.row([
                    r.id.clone(),
                    r.name.clone(),
                    r.status.clone(),
                    field(doc, "cpus"),
                    r.node_id.clone(),
                    gone(r),
                ]);
            }
            table
        }
        InventoryKind::Vm | InventoryKind::Container => {
            let mut table = Table::new(["ID", "VMID", "NAME", "STATUS", "HOST", "CPUS", "GPUS", "GONE"]);
            for (r, doc) in records.iter().zip(docs) {
                let gpus = doc["gpu_devices"].as_array().map(Vec::len).unwrap_or_default();
                table.row([
                    r.id.clone(),
                    field(doc, "vmid"),
                    r.name.clone(),
                    r.status.clone(),
                    r.host.clone(),
                    field(doc, "cpus"),
                    gpus.to_string(),
                    gone(r),
                ]);
            }
            table
        }
    }
}

pub async fn run_kind(kind: InventoryKind, args: &KindArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let text = match &args.command {
        KindCommand::List(list) => {
            let mut records = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = v1::ListInventoryRequest {
                    kind: kind.as_str().to_owned(),
                    source: list.source.clone().unwrap_or_default(),
                    host: list.host.clone().unwrap_or_default(),
                    node_id: list.node.clone().unwrap_or_default(),
                    status: list.status.clone().unwrap_or_default(),
                    gone: list.gone.map(|g| g.to_string()).unwrap_or_default(),
                    name: list.name.clone().unwrap_or_default(),
                    label_selector: list.selector.clone().unwrap_or_default(),
                    page_size: list.page_size,
                    page_token: page_token.clone(),
                    ..Default::default()
                };
                let page = call!(admin, list_inventory, request);
                records.extend(page.records);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            let docs = documents(&records)?;
            output::render(format, &docs, || table(kind, &records, &docs).render())?
        }
        KindCommand::Get { id } => {
            let request =
                v1::GetInventoryRequest { kind: kind.as_str().to_owned(), id: id.clone(), ..Default::default() };
            let got = call!(admin, get_inventory, request);
            let record = got.record.as_option().context("the server answered without the record")?;
            let doc = documents(std::slice::from_ref(record))?.remove(0);
            if kind == InventoryKind::Service {
                service_text(format, doc, &got.members, got.member_count)?
            } else {
                // A record's full document reads best as YAML in a terminal.
                let format = if format == output::Format::Table { output::Format::Yaml } else { format };
                output::render(format, &doc, String::new)?
            }
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A service as `get` prints it: its document, then its members (for JSON and YAML, the
/// document with `member_count` and `members`, each a record's document).
fn service_text(
    format: output::Format,
    mut doc: serde_json::Value,
    members: &[v1::InventoryRecord],
    member_count: u64,
) -> anyhow::Result<String> {
    let member_docs = documents(members)?;
    if format != output::Format::Table {
        if let Some(fields) = doc.as_object_mut() {
            fields.insert("member_count".to_owned(), member_count.into());
            fields.insert("members".to_owned(), member_docs.into());
        }
        return output::render(format, &doc, String::new);
    }
    let mut text = output::render(output::Format::Yaml, &doc, String::new)?;
    text.push_str(&match member_count {
        0 => "\nno members\n".to_owned(),
        n if n > members.len() as u64 => format!("\n{n} members, the first {} listed:\n", members.len()),
        n => format!("\n{n} members:\n"),
    });
    if !members.is_empty() {
        let mut table = Table::new(["KIND", "ID", "NAME", "STATUS", "HOST", "NODE"]);
        for m in members {
            table.row([
                m.kind.clone(),
                m.id.clone(),
                m.name.clone(),
                m.status.clone(),
                m.host.clone(),
                m.node_id.clone(),
            ]);
        }
        text.push_str(&table.render());
    }
    Ok(text)
}

/// `bosun inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: InventoryCommand,
}

#[derive(Debug, Subcommand)]
enum InventoryCommand {
    /// Each source: its last sync, what it did, and its error while it fails.
    Sources,
    /// The sync history, newest first: what each read did, or why it failed.
    Syncs {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Read configured sources now and sync what they answer.
    Sync {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Every state a record went through (its change records), oldest first; `drift
    /// declaration` lists every drift report the server recorded.
    History {
        /// host, vm, container, storage, workload, service, or drift.
        #[arg(value_parser = parse_history_kind)]
        kind: HistoryKind,
        /// SOURCE/KEY, or a key or name only one record has (`declaration` for drift).
        id: String,
    },
    /// Compare a declared inventory (YAML: VMs and containers with the fields that matter)
    /// with what is synced: missing, unexpected and changed, field by field. Exits 1 on
    /// drift, 2 when the file or the server cannot be read.
    Diff {
        /// The declaration (see README: Inventory).
        file: PathBuf,
    },
}

/// One sync as printed.
#[derive(Debug, serde::Serialize)]
struct SyncRow {
    id: u64,
    source: String,
    /// Empty for a whole source, else the node whose workloads it synced.
    scope: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    created: u64,
    updated: u64,
    back: u64,
    gone: u64,
    unchanged: u64,
    error: Option<String>,
}

impl SyncRow {
    fn from_wire(s: &v1::InventorySync) -> Self {
        SyncRow {
            id: s.id,
            source: s.source.clone(),
            scope: s.scope.clone(),
            started_at: views::time_text(&s.started_at),
            finished_at: views::time_text(&s.finished_at),
            created: s.created,
            updated: s.updated,
            back: s.back,
            gone: s.gone,
            unchanged: s.unchanged,
            error: (!s.error.is_empty()).then(|| s.error.clone()),
        }
    }
}

fn sync_table(rows: &[SyncRow]) -> Table {
    let mut table =
        Table::new(["ID", "SOURCE", "SCOPE", "FINISHED", "CREATED", "UPDATED", "BACK", "GONE", "UNCHANGED", "ERROR"]);
    for r in rows {
        table.row([
            r.id.to_string(),
            r.source.clone(),
            r.scope.clone(),
            r.finished_at.clone().unwrap_or_default(),
            r.created.to_string(),
            r.updated.to_string(),
            r.back.to_string(),
            r.gone.to_string(),
            r.unchanged.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// What `inventory history` lists the changes of.
#[derive(Debug, Clone, Copy)]
enum HistoryKind {
    Record(InventoryKind),
    /// The drift reports the server recorded (kept only in the change log).
    Drift,
}

fn parse_history_kind(text: &str) -> Result<HistoryKind, String> {
    if text.trim().eq_ignore_ascii_case("drift") {
        return Ok(HistoryKind::Drift);
    }
    text.parse().map(HistoryKind::Record).map_err(|e: bosun_core::ValidationError| format!("{}, or drift", e.problem))
}

#[derive(Debug, serde::Serialize)]
struct SourceRow {
    source: String,
    #[serde(rename = "type")]
    source_type: String,
    configured: bool,
    url: Option<String>,
    scopes: u64,
    last_sync_at: Option<String>,
    last_success_at: Option<String>,
    stale: bool,
    error: Option<String>,
    created: u64,
    updated: u64,
    back: u64,
    gone: u64,
    unchanged: u64,
    syncs: u64,
}

impl SourceRow {
    fn from_wire(s: &v1::InventorySourceStatus) -> Self {
        SourceRow {
            source: s.source.clone(),
            source_type: s.r#type.clone(),
            configured: s.configured,
            url: (!s.url.is_empty()).then(|| s.url.clone()),
            scopes: s.scopes,
            last_sync_at: views::time_text(&s.last_sync_at),
            last_success_at: views::time_text(&s.last_success_at),
            stale: !s.error.is_empty(),
            error: (!s.error.is_empty()).then(|| s.error.clone()),
            created: s.created,
            updated: s.updated,
            back: s.back,
            gone: s.gone,
            unchanged: s.unchanged,
            syncs: s.syncs,
        }
    }
}

fn source_table(rows: &[SourceRow]) -> Table {
    let mut table = Table::new([
        "SOURCE",
        "TYPE",
        "LAST SYNC",
        "CREATED",
        "UPDATED",
        "BACK",
        "GONE",
        "UNCHANGED",
        "SYNCS",
        "ERROR",
    ]);
    for r in rows {
        table.row([
            r.source.clone(),
            r.source_type.clone(),
            r.last_sync_at.clone().unwrap_or_else(|| "never".to_owned()),
            r.created.to_string(),
            r.updated.to_string(),
            r.back.to_string(),
            r.gone.to_string(),
            r.unchanged.to_string(),
            r.syncs.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    table
}

pub async fn run(args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let (text, code) = match &args.command {
        InventoryCommand::Sources => {
            let listed = call!(admin, list_inventory_sources, v1::ListInventorySourcesRequest::default());
            let rows: Vec<SourceRow> = listed.sources.iter().map(SourceRow::from_wire).collect();
            (output::render(format, &rows, || source_table(&rows).render())?, ExitCode::SUCCESS)
        }
        InventoryCommand::Syncs { source, limit } => {
            let request = v1::ListInventorySyncsRequest {
                source: source.clone().unwrap_or_default(),
                limit: *limit,
                ..Default::default()
            };
            let listed = call!(admin, list_inventory_syncs, request);
            let rows: Vec<SyncRow> = listed.syncs.iter().map(SyncRow::from_wire).collect();
            (output::render(format, &rows, || sync_table(&rows).render())?, ExitCode::SUCCESS)
        }
        InventoryCommand::Sync { source } => {
            let request = v1::SyncInventoryRequest { source: source.clone().unwrap_or_default(), ..Default::default() };
            let synced = call!(admin, sync_inventory, request);
            let rows: Vec<SourceRow> = synced.sources.iter().map(SourceRow::from_wire).collect();
            // A source that could not be read is a failed sync for scripts.
            let code = if rows.iter().any(|r| r.stale) { ExitCode::FAILURE } else { ExitCode::SUCCESS };
            (output::render(format, &rows, || source_table(&rows).render())?, code)
        }
        InventoryCommand::History { kind, id } => {
            let (kind, resource_id) = match kind {
                HistoryKind::Record(kind) => {
                    let request = v1::GetInventoryRequest {
                        kind: kind.as_str().to_owned(),
                        id: id.clone(),
                        ..Default::default()
                    };
                    let got = call!(admin, get_inventory, request);
                    let record = got.record.as_option().context("the server answered without the record")?;
                    (kind.resource_kind(), record.id.clone())
                }
                HistoryKind::Drift => (bosun_core::ResourceKind::Drift, id.clone()),
            };
            let request = v1::ListEventsRequest {
                kind: kind.as_str().to_owned(),
                resource_id,
                limit: 10_000,
                ..Default::default()
            };
            let listed = call!(admin, list_events, request);
            if listed.events.is_empty() && matches!(kind, bosun_core::ResourceKind::Drift) {
                anyhow::bail!(
                    "no drift is recorded under {id:?}: the server records it (as \"declaration\") after each sync \
                     when inventory.declaration is configured"
                );
            }
            let rows: Vec<EventRow> = listed.events.iter().map(EventRow::from_wire).collect();
            (output::render(format, &rows, || views::event_table(&rows).render())?, ExitCode::SUCCESS)
        }
        InventoryCommand::Diff { file } => match diff(&admin, format, file).await {
            Ok(answer) => answer,
            // As diff(1): 1 says "they differ", so trouble is 2, never mistaken for drift.
            Err(error) => {
                eprintln!("error: {error:#}");
                return Ok(ExitCode::from(DIFF_TROUBLE));
            }
        },
    };
    print!("{text}");
    Ok(code)
}

/// `inventory diff`'s exit status when the declaration or the server cannot be read.
const DIFF_TROUBLE: u8 = 2;

/// Compares the declaration in `file` with the present records of its sources: the report
/// and exit 1 on drift, 0 without.
async fn diff(
    admin: &super::remote::Admin,
    format: output::Format,
    file: &std::path::Path,
) -> anyhow::Result<(String, ExitCode)> {
    // A bad file is an error before any call.
    let declaration = bosun_config::declaration::load(file)?;
    warn_of_unsynced_sources(admin, &declaration).await?;
    let mut records = Vec::new();
    for kind in declaration.kinds() {
        for source in declaration.scope(kind) {
            records.extend(present_records(admin, kind, source.as_str()).await?);
        }
    }
    let report = drift::compare(&declaration, &records);
    let code = if report.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    Ok((output::render(format, &report, || drift_text(&declaration, &report, records.len()))?, code))
}

/// Every present record of `kind` in `source`, read page by page, as its JSON document
/// says it is.
async fn present_records(
    admin: &super::remote::Admin,
    kind: InventoryKind,
    source: &str,
) -> anyhow::Result<Vec<InventoryRecord>> {
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = v1::ListInventoryRequest {
            kind: kind.as_str().to_owned(),
            source: source.to_owned(),
            gone: "false".to_owned(),
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = call!(admin, list_inventory, request);
        for record in &page.records {
            let parsed: InventoryRecord = serde_json::from_str(&record.json)
                .with_context(|| format!("the server sent {} in a form this bosun cannot read", record.id))?;
            records.push(parsed);
        }
        if page.next_page_token.is_empty() {
            return Ok(records);
        }
        page_token = page.next_page_token;
    }
}

/// A source the server never read, or could not read last time, makes a diff say less
/// than it seems to: said on stderr, the report stays as it is.
async fn warn_of_unsynced_sources(admin: &super::remote::Admin, declaration: &Declaration) -> anyhow::Result<()> {
    let listed = call!(admin, list_inventory_sources, v1::ListInventorySourcesRequest::default());
    for source in declaration.sources() {
        match listed.sources.iter().find(|s| s.source == source.as_str()) {
            None => eprintln!(
                "warning: the server knows no inventory source {source}: everything declared in it reads as missing"
            ),
            Some(status) if status.last_success_at.as_option().is_none() => {
                eprintln!("warning: inventory source {source} was never read successfully: {}", status.error)
            }
            Some(status) if !status.error.is_empty() => eprintln!(
                "warning: inventory source {source} is stale (its last read failed: {}); compared with its last good read",
                status.error
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The report for people: one line per difference and a count, or what was found as
/// declared.
fn drift_text(declaration: &Declaration, report: &DriftReport, compared: usize) -> String {
    let sources: Vec<String> = declaration.sources().iter().map(ToString::to_string).collect();
    if report.is_empty() {
        return format!("no drift: {compared} records of {} as declared\n", sources.join(", "));
    }
    let mut text = report.lines().join("\n");
    let counts = report.counts();
    text.push_str(&format!(
        "\ndrift: {} missing, {} unexpected, {} changed\n",
        counts.missing, counts.unexpected, counts.changed
    ));
    text
}
