//! The inventory from the command line: `bosun hosts|vms|containers|storage|workloads|services
//! list|get` (a service's get lists its members) and `bosun inventory sources|sync|history`.

use std::process::ExitCode;

use anyhow::Context as _;
use bosun_api::v1;
use bosun_core::inventory::InventoryKind;
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
    /// Read configured sources now and sync what they answer.
    Sync {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Every state a record went through (its change records), oldest first.
    History {
        /// host, vm, container, storage, workload or service.
        #[arg(value_parser = parse_kind)]
        kind: InventoryKind,
        /// SOURCE/KEY, or a key or name only one record has.
        id: String,
    },
}

fn parse_kind(text: &str) -> Result<InventoryKind, String> {
    text.parse().map_err(|e: bosun_core::ValidationError| e.problem)
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
        InventoryCommand::Sync { source } => {
            let request = v1::SyncInventoryRequest { source: source.clone().unwrap_or_default(), ..Default::default() };
            let synced = call!(admin, sync_inventory, request);
            let rows: Vec<SourceRow> = synced.sources.iter().map(SourceRow::from_wire).collect();
            // A source that could not be read is a failed sync for scripts.
            let code = if rows.iter().any(|r| r.stale) { ExitCode::FAILURE } else { ExitCode::SUCCESS };
            (output::render(format, &rows, || source_table(&rows).render())?, code)
        }
        InventoryCommand::History { kind, id } => {
            let request =
                v1::GetInventoryRequest { kind: kind.as_str().to_owned(), id: id.clone(), ..Default::default() };
            let got = call!(admin, get_inventory, request);
            let record = got.record.as_option().context("the server answered without the record")?;
            let request = v1::ListEventsRequest {
                kind: kind.as_str().to_owned(),
                resource_id: record.id.clone(),
                limit: 10_000,
                ..Default::default()
            };
            let listed = call!(admin, list_events, request);
            let rows: Vec<EventRow> = listed.events.iter().map(EventRow::from_wire).collect();
            (output::render(format, &rows, || views::event_table(&rows).render())?, ExitCode::SUCCESS)
        }
    };
    print!("{text}");
    Ok(code)
}
