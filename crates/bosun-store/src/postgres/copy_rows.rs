//! Records as rows in `COPY ... FROM STDIN (FORMAT binary, FREEZE)`, one buffer per table
//! (FREEZE: see `transfer.rs`).
//!
//! The binary format carries every field as a length and its bytes: text needs no escaping
//! and PostgreSQL parses no numbers or dates, which makes it cheaper than the text format
//! on both ends. Each field must be exactly what its column's type receives: `TEXT` as
//! UTF-8, `BIGINT` as 8 bytes big-endian, `TIMESTAMPTZ` as 8 bytes of microseconds since
//! 2000-01-01 UTC, `JSONB` as a version byte (1) and the JSON text, `JSON` as the text,
//! `INTEGER` as 4 bytes, `BYTEA` as its bytes, `UUID` as its 16 bytes, `BOOLEAN` as one
//! byte. A column whose type changes without this file fails the load with "incorrect
//! binary data format", never silently.

use std::collections::BTreeMap;

use bosun_core::Timestamp;
use bosun_core::inventory::{InventoryKind, RecordState};
use serde::Serialize;

use crate::inventory::row::{Cell, ColumnType, table, to_row};
use crate::transfer::Record;

/// PostgreSQL's epoch (2000-01-01T00:00:00Z) in microseconds since the Unix epoch.
const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// The binary COPY signature, flags (none) and header extension length (none).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows of one table in COPY's binary format.
pub(super) struct CopyRows {
    buf: Vec<u8>,
    /// Fields per row, as the table's COPY statement lists them.
    columns: i16,
    /// Fields written of the current row.
    fields: i16,
}

impl CopyRows {
    fn new(columns: i16) -> Self {
        Self { buf: Vec::new(), columns, fields: columns }
    }

    /// Bytes buffered so far.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Starts a row.
    fn row(&mut self) -> &mut Self {
        debug_assert_eq!(self.fields, self.columns, "the previous row has the wrong number of fields");
        if self.buf.is_empty() {
            self.buf.extend_from_slice(HEADER);
        }
        self.buf.extend_from_slice(&self.columns.to_be_bytes());
        self.fields = 0;
        self
    }

    /// The rows buffered, ready to send as one COPY's data; `next` (an empty buffer, perhaps
    /// one sent before) takes their place.
    pub(super) fn take(&mut self, next: Vec<u8>) -> Vec<u8> {
        debug_assert_eq!(self.fields, self.columns, "the last row has the wrong number of fields");
        debug_assert!(next.is_empty());
        if !self.buf.is_empty() {
            self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        }
        std::mem::replace(&mut self.buf, next)
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.fields += 1;
        // Fields longer than 2 GiB cannot be stored in PostgreSQL at all (1 GiB is its
        // limit): the length saturates and the server refuses the row.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn null(&mut self) -> &mut Self {
        self.fields += 1;
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    fn unsigned(&mut self, value: u64) -> &mut Self {
        self.int(i64::try_from(value).unwrap_or(i64::MAX))
    }

    fn opt_unsigned(&mut self, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.unsigned(v),
            None => self.null(),
        }
    }

    fn boolean(&mut self, value: bool) -> &mut Self {
        self.field(&[u8::from(value)])
    }

    fn uuid(&mut self, value: uuid::Uuid) -> &mut Self {
        self.field(value.as_bytes())
    }

    fn time(&mut self, value: Timestamp) -> &mut Self {
        self.int(value.unix_micros().saturating_sub(POSTGRES_EPOCH_UNIX_MICROS))
    }

    fn opt_time(&mut self, value: Option<Timestamp>) -> &mut Self {
        match value {
            Some(v) => self.time(v),
            None => self.null(),
        }
    }

    /// A `JSONB` field, serialized straight into the buffer.
    fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> &mut Self {
        self.fields += 1;
        let start = self.buf.len();
        // JSONB's binary form is a format version, 1, and the text.
        self.buf.extend_from_slice(&[0, 0, 0, 0, 1]);
        // Domain types hold only strings, numbers, bools, maps with string keys and
        // sequences: serializing them cannot fail.
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            self.buf.truncate(start + 5);
            self.buf.extend_from_slice(b"null");
        }
        let len = i32::try_from(self.buf.len() - start - 4).unwrap_or(i32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// A `JSON` field (the change log's documents): its binary form is the text.
    fn json_text(&mut self, document: &str) -> &mut Self {
        self.field(document.as_bytes())
    }

    /// A `JSON` field from a value: its binary form is the text.
    fn json_plain<T: Serialize + ?Sized>(&mut self, value: &T) -> &mut Self {
        self.fields += 1;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            self.buf.truncate(start + 4);
            self.buf.extend_from_slice(b"null");
        }
        let len = i32::try_from(self.buf.len() - start - 4).unwrap_or(i32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    fn opt_json_plain<T: Serialize>(&mut self, value: Option<&T>) -> &mut Self {
        match value {
            Some(v) => self.json_plain(v),
            None => self.null(),
        }
    }

    /// An `INTEGER` field: 4 bytes big-endian.
    fn int4(&mut self, value: u32) -> &mut Self {
        self.field(&i32::try_from(value).unwrap_or(i32::MAX).to_be_bytes())
    }

    fn opt_int4(&mut self, value: Option<u32>) -> &mut Self {
        match value {
            Some(v) => self.int4(v),
            None => self.null(),
        }
    }

    fn opt_uuid(&mut self, value: Option<uuid::Uuid>) -> &mut Self {
        match value {
            Some(v) => self.uuid(v),
            None => self.null(),
        }
    }

    fn opt_json<T: Serialize>(&mut self, value: Option<&T>) -> &mut Self {
        match value {
            Some(v) => self.json(v),
            None => self.null(),
        }
    }

    /// A `JSONB` field from JSON text.
    fn jsonb_text(&mut self, text: &str) -> &mut Self {
        self.fields += 1;
        let len = i32::try_from(text.len() + 1).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// An inventory row's cell (`crate::inventory::row`), as its column's type receives
    /// it: every inventory integer is a `BIGINT`, every real a `DOUBLE PRECISION`.
    fn cell(&mut self, cell: Cell, ty: ColumnType) -> &mut Self {
        match cell {
            Cell::Null => self.null(),
            Cell::Text(text) if ty == ColumnType::Json => self.jsonb_text(&text),
            Cell::Text(text) => self.text(&text),
            Cell::Int(value) => self.int(value),
            Cell::Real(value) => self.field(&value.to_bits().to_be_bytes()),
            Cell::Bool(value) => self.boolean(value),
            Cell::Time(value) => self.time(value),
        }
    }
}

/// The prices' COPY statement (`transfer.rs` empties the table before the first).
pub(super) const PRICE_COPY: &str = "COPY provider_pricing (provider, model, input_per_mtok_micro_usd, \
     output_per_mtok_micro_usd, cached_input_per_mtok_micro_usd, effective_from, effective_to, updated_by, updated_at) \
     FROM STDIN (FORMAT binary, FREEZE)";

/// The COPY statement of each table a load writes, parents before children, and its
/// number of columns.
pub(super) const TABLES: [(&str, i16); 30] = [
    ("COPY policies (id, name, document, updated_at, revision) FROM STDIN (FORMAT binary, FREEZE)", 5),
    (
        "COPY pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) \
         FROM STDIN (FORMAT binary, FREEZE)",
        6,
    ),
    (
        "COPY nodes (node_id, provider, region, zone, instance_type, pool, status, status_reason, status_changed_at, \
         health, unhealthy_streak, labels, gpu_count, gpu_model, metadata, registered_at, last_health_report, \
         revision, remediation) FROM STDIN (FORMAT binary, FREEZE)",
        19,
    ),
    (
        "COPY node_gpus (node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version) \
         FROM STDIN (FORMAT binary, FREEZE)",
        8,
    ),
    ("COPY node_liveness (node_id, last_heartbeat) FROM STDIN (FORMAT binary, FREEZE)", 2),
    (
        "COPY instances (instance_id, provider, provider_instance_id, region, zone, instance_type, pool, state, \
         status_message, node_id, labels, created_at, state_changed_at, ready_at, terminated_at, revision) \
         FROM STDIN (FORMAT binary, FREEZE)",
        16,
    ),
    (
        "COPY commands (command_id, node_id, kind, custom_name, parameters, state, issued_by, reason, issued_at, \
         deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, result, revision) \
         FROM STDIN (FORMAT binary, FREEZE)",
        17,
    ),
    ("COPY command_events (command_id, seq, at, state, actor, message) FROM STDIN (FORMAT binary, FREEZE)", 6),
    ("COPY health_reports (id, node_id, received_at, health, results, events) FROM STDIN (FORMAT binary, FREEZE)", 6),
    (
        "COPY bootstrap_logs (id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands) \
         FROM STDIN (FORMAT binary, FREEZE)",
        9,
    ),
    (
        "COPY changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) \
         FROM STDIN (FORMAT binary, FREEZE)",
        9,
    ),
    (
        "COPY leases (name, holder, epoch, revision, renewals, acquired_at, renewed_at) FROM STDIN (FORMAT binary, FREEZE)",
        7,
    ),
    (
        "COPY tasks (name, description, spec, version, created_by, created_at, updated_at, revision) \
         FROM STDIN (FORMAT binary, FREEZE)",
        8,
    ),
    (
        "COPY tool_definitions (name, description, input_schema, risk, enabled, updated_at, revision) \
         FROM STDIN (FORMAT binary, FREEZE)",
        7,
    ),
    (
        "COPY approval_policies (name, position, description, condition, decision, required_role, updated_at, \
         revision) FROM STDIN (FORMAT binary, FREEZE)",
        8,
    ),
    (
        "COPY task_runs (run_id, kind, task, task_version, status, requested_by, approved_by, input, result, error, \
         created_at, started_at, finished_at, revision) FROM STDIN (FORMAT binary, FREEZE)",
        14,
    ),
    ("COPY task_run_targets (run_id, position, target_kind, target_id) FROM STDIN (FORMAT binary, FREEZE)", 4),
    ("COPY task_events (run_id, seq, at, type, step, target, message, data) FROM STDIN (FORMAT binary, FREEZE)", 8),
    (
        "COPY approvals (approval_id, run_id, step, what, policy, required_role, requested_by, requested_at, \
         expires_at, decision, decided_by, reason, decided_at, revision) FROM STDIN (FORMAT binary, FREEZE)",
        14,
    ),
    (
        "COPY artifacts (run_id, name, media_type, size, sha256, content, created_at) \
         FROM STDIN (FORMAT binary, FREEZE)",
        7,
    ),
    (
        "COPY tool_call_records (id, run_id, tool, at, input, output, status, error, duration_ms, approval_id) \
         FROM STDIN (FORMAT binary, FREEZE)",
        10,
    ),
    (
        "COPY audit_entries (seq, at, actor, role, method, resource, outcome, code, message, request_id, peer) \
         FROM STDIN (FORMAT binary, FREEZE)",
        11,
    ),
    ("COPY host_storage (source, storage_key, host_key) FROM STDIN (FORMAT binary, FREEZE)", 3),
    (
        "COPY inventory_sources (source, scope, type, last_sync_at, last_success_at, error, counts, syncs) \
         FROM STDIN (FORMAT binary, FREEZE)",
        8,
    ),
    (
        "COPY inventory_syncs (id, source, scope, started_at, finished_at, created, updated, back, gone, unchanged, \
         error) FROM STDIN (FORMAT binary, FREEZE)",
        11,
    ),
    (PRICE_COPY, 9),
    (
        "COPY llm_requests (id, run_id, actor, provider, model, request_id, prompt, prompt_truncated, at) \
         FROM STDIN (FORMAT binary, FREEZE)",
        9,
    ),
    ("COPY llm_responses (request, response, response_truncated, latency_ms) FROM STDIN (FORMAT binary, FREEZE)", 4),
    (
        "COPY token_usage (request, run_id, actor, provider, model, input_tokens, output_tokens, cached_input_tokens, \
         cost_micro_usd, priced_at, at) FROM STDIN (FORMAT binary, FREEZE)",
        11,
    ),
    ("COPY control_settings (name, value, updated_by, updated_at, revision) FROM STDIN (FORMAT binary, FREEZE)", 5),
];

/// The COPY statement of an inventory kind's table, from its columns, and its empty rows.
fn inventory_table(kind: InventoryKind) -> (String, CopyRows) {
    let table = table(kind);
    let columns: Vec<&str> = table.all_columns().map(|c| c.name).collect();
    let statement = format!("COPY {} ({}) FROM STDIN (FORMAT binary, FREEZE)", table.name, columns.join(", "));
    (statement, CopyRows::new(i16::try_from(columns.len()).unwrap_or(i16::MAX)))
}

/// One buffer of rows per table, in the order of [`TABLES`], and one per inventory kind's
/// table (made with its first record: its columns come from `crate::inventory::row`).
pub(super) struct Tables {
    tables: [CopyRows; 30],
    inventory: BTreeMap<InventoryKind, (String, CopyRows)>,
}

impl Default for Tables {
    fn default() -> Self {
        Self { tables: TABLES.map(|(_, columns)| CopyRows::new(columns)), inventory: BTreeMap::new() }
    }
}

impl Tables {
    /// Each table's COPY statement and its buffered rows.
    pub(super) fn each(&mut self) -> impl Iterator<Item = (&str, &mut CopyRows)> {
        let fixed = TABLES.iter().map(|(statement, _)| *statement).zip(self.tables.iter_mut());
        fixed.chain(self.inventory.values_mut().map(|(statement, rows)| (statement.as_str(), rows)))
    }

    pub(super) fn add(&mut self, record: &Record) {
        let [
            policies,
            pools,
            nodes,
            node_gpus,
            node_liveness,
            instances,
            commands,
            command_events,
            health_reports,
            bootstrap_logs,
            changes,
            leases,
            tasks,
            tool_definitions,
            approval_policies,
            task_runs,
            task_run_targets,
            task_events,
            approvals,
            artifacts,
            tool_call_records,
            audit_entries,
            host_storage,
            inventory_sources,
            inventory_syncs,
            provider_pricing,
            llm_requests,
            llm_responses,
            token_usage,
            control_settings,
        ] = &mut self.tables;
        match record {
            Record::Lease(l) => {
                leases
                    .row()
                    .text(l.name.as_str())
                    .opt_text(l.holder.as_ref().map(|h| h.as_str()))
                    .unsigned(l.epoch)
                    .unsigned(l.revision.get())
                    .unsigned(l.renewals)
                    .time(l.acquired_at)
                    .time(l.renewed_at);
            }
            Record::Policy(p) => {
                policies
                    .row()
                    .text("active")
                    .text(&p.name)
                    .text(&p.document)
                    .time(p.updated_at)
                    .unsigned(p.revision.get());
            }
            Record::Pool(p) => {
                pools
                    .row()
                    .text(p.name.as_str())
                    .json(&p.spec)
                    .opt_time(p.status.last_scale_at)
                    .json(&p.status.provider_backoff)
                    .opt_json(p.status.last_decision.as_ref())
                    .unsigned(p.revision.get());
            }
            Record::Node(r) => {
                let n = &r.node;
                nodes
                    .row()
                    .text(n.id.as_str())
                    .text(&n.provider)
                    .text(&n.region)
                    .text(&n.zone)
                    .text(&n.instance_type)
                    .opt_text(n.pool.as_ref().map(|p| p.as_str()))
                    .text(n.status.as_str())
                    .text(&n.status_reason)
                    .time(n.status_changed_at)
                    .text(n.health.as_str())
                    .int(i64::from(n.unhealthy_streak))
                    .json(&n.labels)
                    .int(i64::from(n.gpu_count))
                    .text(&n.gpu_model)
                    .json(&n.metadata)
                    .time(n.registered_at)
                    .opt_time(n.last_health_report)
                    .unsigned(n.revision.get())
                    .opt_json(n.remediation.as_ref());
                for g in &r.gpus {
                    node_gpus
                        .row()
                        .text(n.id.as_str())
                        .int(i64::from(g.index))
                        .text(&g.uuid)
                        .text(&g.name)
                        .text(&g.pci_bus_id)
                        .unsigned(g.memory_bytes)
                        .text(&g.driver_version)
                        .text(&g.cuda_version);
                }
                if let Some(at) = r.last_heartbeat {
                    node_liveness.row().text(n.id.as_str()).time(at);
                }
            }
            Record::Instance(i) => {
                instances
                    .row()
                    .text(i.id.as_str())
                    .text(&i.provider)
                    .opt_text(i.provider_instance_id.as_deref())
                    .text(&i.region)
                    .text(&i.zone)
                    .text(&i.instance_type)
                    .opt_text(i.pool.as_ref().map(|p| p.as_str()))
                    .text(i.state.as_str())
                    .text(&i.status_message)
                    .opt_text(i.node_id.as_ref().map(|n| n.as_str()))
                    .json(&i.labels)
                    .time(i.created_at)
                    .time(i.state_changed_at)
                    .opt_time(i.ready_at)
                    .opt_time(i.terminated_at)
                    .unsigned(i.revision.get());
            }
            Record::Command(r) => {
                let c = &r.command;
                commands
                    .row()
                    .uuid(c.id.as_uuid())
                    .text(c.node_id.as_str())
                    .text(c.kind.kind_name())
                    .opt_text(c.kind.custom_name())
                    .json(&c.parameters)
                    .text(c.state.as_str())
                    .text(&c.issued_by.to_string())
                    .text(&c.reason)
                    .time(c.issued_at)
                    .time(c.deadline)
                    .opt_time(c.delivered_at)
                    .int(i64::from(c.delivery_count))
                    .opt_time(c.acked_at)
                    .opt_time(c.finished_at)
                    .text(&c.outcome_message)
                    .json(&c.result)
                    .unsigned(c.revision.get());
                for e in &r.events {
                    command_events
                        .row()
                        .uuid(e.command_id.as_uuid())
                        .int(i64::from(e.seq))
                        .time(e.at)
                        .text(e.state.as_str())
                        .text(&e.actor.to_string())
                        .text(&e.message);
                }
            }
            Record::HealthReport(r) => {
                health_reports
                    .row()
                    .unsigned(r.id)
                    .text(r.report.node_id.as_str())
                    .time(r.report.received_at)
                    .text(r.report.health.as_str())
                    .json(&r.report.results)
                    .json(&r.report.events);
            }
            Record::BootstrapLog(l) => {
                bootstrap_logs
                    .row()
                    .unsigned(l.id)
                    .text(l.node_id.as_str())
                    .opt_text(l.instance_id.as_ref().map(|i| i.as_str()))
                    .opt_text(l.pool.as_ref().map(|p| p.as_str()))
                    .time(l.started_at)
                    .unsigned(l.duration_ms)
                    .boolean(l.success)
                    .text(&l.error)
                    .json(&l.commands);
            }
            Record::Runbook(r) => {
                tasks
                    .row()
                    .text(r.name.as_str())
                    .text(&r.description)
                    .text(&r.spec)
                    .int4(r.version)
                    .text(&r.created_by.to_string())
                    .time(r.created_at)
                    .time(r.updated_at)
                    .unsigned(r.revision.get());
            }
            Record::Tool(t) => {
                tool_definitions
                    .row()
                    .text(t.name.as_str())
                    .text(&t.description)
                    .json_plain(&t.input_schema)
                    .text(t.risk.as_str())
                    .boolean(t.enabled)
                    .time(t.updated_at)
                    .unsigned(t.revision.get());
            }
            Record::ApprovalPolicy(p) => {
                approval_policies
                    .row()
                    .text(p.name.as_str())
                    .field(&p.position.to_be_bytes())
                    .text(&p.description)
                    .text(&p.condition)
                    .text(p.decision.as_str())
                    .opt_text(crate::ledger::decision_role(p.decision).map(|r| r.as_str()))
                    .time(p.updated_at)
                    .unsigned(p.revision.get());
            }
            Record::Run(r) => {
                let run = &r.run;
                task_runs
                    .row()
                    .uuid(run.id.as_uuid())
                    .text(run.kind.as_str())
                    .opt_text(run.runbook.as_ref().map(|n| n.as_str()))
                    .opt_int4(run.runbook_version)
                    .text(run.status.as_str())
                    .text(&run.requested_by.to_string())
                    .opt_text(run.approved_by.as_ref().map(ToString::to_string).as_deref())
                    .json_plain(&run.input)
                    .opt_json_plain(run.result.as_ref())
                    .opt_text(run.error.as_deref())
                    .time(run.created_at)
                    .opt_time(run.started_at)
                    .opt_time(run.finished_at)
                    .unsigned(run.revision.get());
                for (position, target) in run.targets.iter().enumerate() {
                    task_run_targets
                        .row()
                        .uuid(run.id.as_uuid())
                        .int4(u32::try_from(position).unwrap_or(u32::MAX))
                        .text(target.kind())
                        .text(target.id());
                }
                for e in &r.events {
                    task_events
                        .row()
                        .uuid(run.id.as_uuid())
                        .unsigned(e.seq)
                        .time(e.at)
                        .text(e.event.event_type.as_str())
                        .opt_int4(e.event.step)
                        .opt_text(e.event.target.as_ref().map(ToString::to_string).as_deref())
                        .text(&e.event.message)
                        .opt_json_plain(e.event.data.as_ref());
                }
            }
            Record::Approval(a) => {
                let decision = a.decision.as_ref();
                approvals
                    .row()
                    .uuid(a.id.as_uuid())
                    .uuid(a.run_id.as_uuid())
                    .opt_int4(a.step)
                    .text(&a.what)
                    .opt_text(a.policy.as_ref().map(|p| p.as_str()))
                    .text(a.required_role.as_str())
                    .text(&a.requested_by.to_string())
                    .time(a.requested_at)
                    .time(a.expires_at)
                    .opt_text(decision.map(|d| d.outcome.as_str()))
                    .opt_text(decision.map(|d| d.by.to_string()).as_deref())
                    .opt_text(decision.map(|d| d.reason.as_str()))
                    .opt_time(decision.map(|d| d.at))
                    .unsigned(a.revision.get());
            }
            Record::Artifact(a) => {
                artifacts
                    .row()
                    .uuid(a.info.run_id.as_uuid())
                    .text(&a.info.name)
                    .text(&a.info.media_type)
                    .unsigned(a.info.size)
                    .text(&a.info.sha256)
                    .field(&a.content)
                    .time(a.info.created_at);
            }
            Record::ToolCall(c) => {
                tool_call_records
                    .row()
                    .unsigned(c.id)
                    .uuid(c.call.run_id.as_uuid())
                    .text(c.call.tool.as_str())
                    .time(c.at)
                    .json_plain(&c.call.input)
                    .opt_json_plain(c.call.output.as_ref())
                    .text(c.call.status.as_str())
                    .opt_text(c.call.error.as_deref())
                    .unsigned(c.call.duration_ms)
                    .opt_uuid(c.call.approval_id.map(|a| a.as_uuid()));
            }
            Record::Audit(e) => {
                audit_entries
                    .row()
                    .unsigned(e.seq)
                    .time(e.at)
                    .text(&e.entry.actor)
                    .opt_text(e.entry.role.map(|r| r.as_str()))
                    .text(&e.entry.method)
                    .text(&e.entry.resource)
                    .text(e.entry.outcome.as_str())
                    .text(&e.entry.code)
                    .text(&e.entry.message)
                    .text(&e.entry.request_id)
                    .opt_text(e.entry.peer.as_deref());
            }
            Record::Price(p) => {
                provider_pricing
                    .row()
                    .text(&p.provider)
                    .text(&p.model)
                    .unsigned(p.input_per_mtok_micro_usd)
                    .unsigned(p.output_per_mtok_micro_usd)
                    .opt_unsigned(p.cached_input_per_mtok_micro_usd)
                    .time(p.effective_from)
                    .opt_time(p.effective_to)
                    .text(&p.updated_by)
                    .time(p.updated_at);
            }
            Record::LlmUsage(u) => {
                let id = u.id.as_uuid();
                let run = u.run_id.map(|r| r.as_uuid());
                llm_requests
                    .row()
                    .uuid(id)
                    .opt_uuid(run)
                    .text(&u.actor)
                    .text(&u.provider)
                    .text(&u.model)
                    .opt_text(u.request_id.as_deref())
                    .opt_text(u.prompt.as_ref().map(|p| p.text.as_str()))
                    .boolean(u.prompt.as_ref().is_some_and(|p| p.truncated))
                    .time(u.at);
                llm_responses
                    .row()
                    .uuid(id)
                    .opt_text(u.response.as_ref().map(|r| r.text.as_str()))
                    .boolean(u.response.as_ref().is_some_and(|r| r.truncated))
                    .opt_unsigned(u.latency_ms);
                token_usage
                    .row()
                    .uuid(id)
                    .opt_uuid(run)
                    .text(&u.actor)
                    .text(&u.provider)
                    .text(&u.model)
                    .unsigned(u.input_tokens)
                    .unsigned(u.output_tokens)
                    .unsigned(u.cached_input_tokens)
                    .opt_unsigned(u.cost.map(|c| c.micro_usd))
                    .opt_time(u.cost.map(|c| c.price_from))
                    .time(u.at);
            }
            Record::Setting(setting) => {
                control_settings
                    .row()
                    .text(&setting.name)
                    .json_plain(&setting.value)
                    .text(&setting.updated_by)
                    .time(setting.updated_at)
                    .unsigned(setting.revision.get());
            }
            Record::InventoryRecord(r) => {
                let kind = r.kind();
                let (_, rows) = self.inventory.entry(kind).or_insert_with(|| inventory_table(kind));
                let row = rows.row();
                for (cell, column) in to_row(r).into_iter().zip(table(kind).all_columns()) {
                    row.cell(cell, column.ty);
                }
                if let RecordState::Storage(storage) = &r.state {
                    for host in &storage.hosts {
                        host_storage.row().text(r.source.as_str()).text(&r.key).text(host);
                    }
                }
            }
            Record::InventorySource(s) => {
                inventory_sources
                    .row()
                    .text(s.source.as_str())
                    .text(s.scope.as_stored())
                    .text(s.source_type.as_str())
                    .time(s.last_sync_at)
                    .opt_time(s.last_success_at)
                    .opt_text(s.error.as_deref())
                    .json(&s.counts)
                    .unsigned(s.syncs);
            }
            Record::InventorySync(s) => {
                let c = &s.counts;
                inventory_syncs
                    .row()
                    .unsigned(s.id)
                    .text(s.source.as_str())
                    .text(s.scope.as_stored())
                    .time(s.started_at)
                    .time(s.finished_at)
                    .unsigned(c.created)
                    .unsigned(c.updated)
                    .unsigned(c.back)
                    .unsigned(c.gone)
                    .unsigned(c.unchanged)
                    .opt_text(s.error.as_deref());
            }
            Record::Change(c) => {
                changes
                    .row()
                    .unsigned(c.seq)
                    .time(c.at)
                    .text(c.kind.as_str())
                    .text(&c.resource_id)
                    .text(c.op.as_str())
                    .unsigned(c.revision.get())
                    .text(&c.actor.to_string())
                    .text(&c.reason)
                    .json_text(c.resource.get());
            }
        }
    }
}
