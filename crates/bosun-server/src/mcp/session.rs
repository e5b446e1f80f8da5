//! Every MCP session is a run of the operations ledger (kind `ai_session`, requested by the
//! token's name), and every tool call in it a tool call record on that run.
//!
//! - [`open`] creates the run RUNNING when the client initializes.
//! - [`Ledger`] writes what a call leaves behind: the tool call record, a `tool_call` event
//!   on the session's run and, for tools that change something, an audit entry. The
//!   writes are handed to whatever commits the call's effect, so they land in the same
//!   transaction as it.
//! - [`close`] ends the run when rmcp drops the session (DELETE, idle timeout, shutdown);
//!   [`close_abandoned`] (janitor) ends those a crash or restart left RUNNING.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bosun_core::{
    Actor, ApprovalId, AuditEntry, AuditOutcome, Role, RunEvent, RunEventType, RunId, RunKind, RunStatus, RunTrigger,
    TaskRun, ToolCall, ToolCallStatus, ToolName,
};
use bosun_store::{RunFilter, StoreError, Write, WriteBatch, all_pages};
use serde_json::{Value, json};

use super::McpCaller;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::transport::Peer;

/// How long rmcp keeps a session nobody uses.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A RUNNING session run with no event for this long was left by a replica that stopped
/// without closing it.
const ABANDONED_AFTER: Duration = Duration::from_secs(2 * 60 * 60);
/// Events read per request when looking for a session's last activity.
const EVENT_PAGE: u32 = 5_000;

/// One open MCP session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The session's `ai_session` run.
    pub run: RunId,
    /// Who opened it (the guard keeps every later request to the same token).
    pub caller: McpCaller,
    pub peer: Option<Peer>,
    /// Destructive calls made so far (`mcp.destructive_calls_per_session`).
    destructive_calls: AtomicU32,
}

impl Session {
    /// Who the session's changes are attributed to.
    pub(crate) fn actor(&self) -> Actor {
        self.caller.caller.actor()
    }

    /// The role approval policies and approvals see.
    pub(crate) fn role(&self) -> Role {
        self.caller.caller.role()
    }

    /// Takes one destructive call from the session's budget of `limit`; the refusal says
    /// what to do.
    pub(crate) fn spend_destructive_call(&self, limit: u32) -> Result<(), String> {
        self.destructive_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| (used < limit).then_some(used + 1))
            .map(|_| ())
            .map_err(|_| {
                format!(
                    "this session's budget of {limit} destructive call(s) is spent \
                     (mcp.destructive_calls_per_session); a person should review what it did (get_run {}) before \
                     an agent opens a new session",
                    self.run
                )
            })
    }
}

/// Opens a session for `caller`: its run, RUNNING, with the client's name and version.
pub(crate) async fn open(
    app: &App,
    caller: McpCaller,
    peer: Option<Peer>,
    client: &rmcp::model::InitializeRequestParams,
) -> ApiResult<Session> {
    let actor = caller.caller.actor();
    let now = app.now();
    let mut run = TaskRun::new(RunKind::AiSession, RunStatus::Running, actor.clone(), Vec::new(), now);
    run.input = json!({
        "client": {"name": client.client_info.name, "version": client.client_info.version},
        "protocol_version": client.protocol_version.to_string(),
        "role": caller.caller.role(),
        "peer": peer.map(|p| p.addr.to_string()),
    });
    let opened = RunEvent::new(
        run.id,
        RunEventType::StatusChanged,
        format!("MCP session opened by {actor} (client {} {})", client.client_info.name, client.client_info.version),
    );
    let batch = WriteBatch::new(actor, "MCP session opened").create_run(run.clone()).append_run_event(opened);
    app.store.commit(batch).await?;
    tracing::info!(run = %run.id, actor = %run.requested_by, "MCP session opened");
    Ok(Session { run: run.id, caller, peer, destructive_calls: AtomicU32::new(0) })
}

/// Ends session run `id` (succeeded), saying why; one that already ended is left alone.
pub(crate) async fn close(app: &App, id: RunId, why: &str) -> ApiResult<()> {
    for _ in 0..3 {
        let mut run = app.store.run(&id).await?;
        if run.status.is_final() {
            return Ok(());
        }
        run.apply(RunTrigger::Succeed, app.now()).map_err(|e| ApiError::transition(id, e))?;
        let event = RunEvent::new(id, RunEventType::StatusChanged, format!("MCP session closed: {why}"));
        let batch = WriteBatch::new(Actor::system("mcp"), "MCP session closed").update_run(run).append_run_event(event);
        match app.store.commit(batch).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("session run {id} kept changing while it was closed")))
}

/// Closes the RUNNING session runs nothing happened in for [`ABANDONED_AFTER`]: their
/// replica stopped without closing them (a live session's rmcp worker closes it after
/// [`IDLE_TIMEOUT`]). Returns how many were closed.
pub(crate) async fn close_abandoned(app: &App) -> ApiResult<usize> {
    let filter = &RunFilter { status: Some(RunStatus::Running), kind: Some(RunKind::AiSession), target: None };
    let store = &app.store;
    let running = all_pages(|page| async move { store.list_runs(filter, &page).await }).await?;
    let now = app.now();
    let mut closed = 0;
    for run in running {
        let mut last = run.created_at;
        let mut after = 0;
        loop {
            let events = app.store.run_events(&run.id, after, EVENT_PAGE).await?;
            match events.last() {
                Some(event) => {
                    last = last.max(event.at);
                    after = event.seq;
                }
                None => break,
            }
            if events.len() < EVENT_PAGE as usize {
                break;
            }
        }
        if now.saturating_since(last) >= ABANDONED_AFTER {
            let idle = bosun_config::duration::format(now.saturating_since(last));
            close(app, run.id, &format!("abandoned: nothing happened in it for {idle} (its server stopped?)")).await?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// Most bytes of JSON a tool call record keeps of a call's input or output; beyond, the
/// record keeps its size and its first bytes (a `list_nodes` page can be megabytes, and the
/// API answers it again on demand).
const MAX_RECORDED_JSON: usize = 16 * 1024;
/// Most bytes of an error kept in a record or an audit entry.
const MAX_RECORDED_ERROR: usize = 2 * 1024;

/// `value`, or when its JSON is longer than [`MAX_RECORDED_JSON`], a note of its size with
/// its first bytes.
fn bounded_json(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_RECORDED_JSON {
        return value.clone();
    }
    json!({"truncated": true, "bytes": text.len(), "start": truncated(&text, 1024)})
}

/// `text` cut to at most `max` bytes, on a character boundary, marked when cut.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// What one tool call leaves in the ledger.
#[derive(Debug)]
pub(crate) struct Ledger<'a> {
    pub session: &'a Session,
    pub tool: &'a ToolName,
    pub input: Value,
    pub started: tokio::time::Instant,
    /// `x-request-id` of the call's in-process API requests and of its audit entry.
    pub request_id: &'a str,
}

/// How a tool call ended, as recorded.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: ToolCallStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub approval: Option<ApprovalId>,
    /// For tools that change something: what the call acted on (`node:n1`) and its RPC
    /// code (`ok`, `permission_denied`...); `None` for reads, which are not audited.
    pub audit: Option<(String, &'static str)>,
}

impl Outcome {
    pub(crate) fn succeeded(output: Value) -> Self {
        Outcome { status: ToolCallStatus::Succeeded, output: Some(output), error: None, approval: None, audit: None }
    }

    pub(crate) fn failed(error: impl Into<String>) -> Self {
        Outcome { status: ToolCallStatus::Failed, output: None, error: Some(error.into()), approval: None, audit: None }
    }

    pub(crate) fn refused(error: impl Into<String>) -> Self {
        Outcome {
            status: ToolCallStatus::Refused,
            output: None,
            error: Some(error.into()),
            approval: None,
            audit: None,
        }
    }

    pub(crate) fn audited(mut self, resource: impl Into<String>, code: &'static str) -> Self {
        self.audit = Some((resource.into(), code));
        self
    }
}

impl Ledger<'_> {
    /// The writes recording the call's `outcome`.
    pub(crate) fn writes(&self, outcome: &Outcome) -> Vec<Write> {
        let run = self.session.run;
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let record = ToolCall {
            run_id: run,
            tool: self.tool.clone(),
            input: bounded_json(&self.input),
            output: outcome.output.as_ref().map(bounded_json),
            status: outcome.status,
            error: outcome.error.as_deref().map(|e| truncated(e, MAX_RECORDED_ERROR)),
            duration_ms,
            approval_id: outcome.approval,
        };
        let said = match (&outcome.error, outcome.approval) {
            (_, Some(approval)) => format!(": approval {approval}"),
            (Some(error), None) => format!(": {}", truncated(error, MAX_RECORDED_ERROR)),
            (None, None) => String::new(),
        };
        let event = RunEvent::new(run, RunEventType::ToolCall, format!("{} {}{said}", self.tool, outcome.status))
            .with_data(json!({"tool": self.tool, "status": outcome.status.as_str(), "duration_ms": duration_ms}));
        let mut writes = vec![Write::RecordToolCall(Box::new(record)), Write::AppendRunEvent(Box::new(event))];
        if outcome.audit.is_some() {
            writes.push(self.audit(outcome));
        }
        writes
    }

    /// The audit entry of a call that changes something (method `bosun.mcp/<tool>`).
    pub(crate) fn audit(&self, outcome: &Outcome) -> Write {
        let (resource, code) = outcome.audit.clone().unwrap_or_default();
        let (actor, role) = self.session.caller.caller.audit_identity();
        let outcome_kind = match outcome.status {
            ToolCallStatus::Succeeded | ToolCallStatus::AwaitingApproval => AuditOutcome::Ok,
            ToolCallStatus::Refused => AuditOutcome::Refused,
            ToolCallStatus::Failed => AuditOutcome::Failed,
        };
        Write::AppendAudit(Box::new(AuditEntry {
            actor,
            role,
            method: format!("bosun.mcp/{}", self.tool),
            resource,
            outcome: outcome_kind,
            code: code.to_owned(),
            message: outcome
                .error
                .as_deref()
                .map_or_else(|| format!("MCP session run {}", self.session.run), |e| truncated(e, MAX_RECORDED_ERROR)),
            request_id: self.request_id.to_owned(),
            peer: self.session.peer.map(|p| p.addr.to_string()),
        }))
    }

    /// Commits the record of a call whose effect (if any) was committed already, or that
    /// had none. A failure is logged: the call's answer stands.
    pub(crate) async fn record(&self, app: &App, outcome: &Outcome) {
        let mut batch = WriteBatch::new(self.session.actor(), format!("MCP tool call {}", self.tool));
        for write in self.writes(outcome) {
            batch.push(write);
        }
        if let Err(error) = app.store.commit(batch).await {
            tracing::warn!(run = %self.session.run, tool = %self.tool, %error, "MCP tool call not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_small_values_and_summarise_large_ones() {
        let small = json!({"node_id": "n1"});
        assert_eq!(bounded_json(&small), small);
        let large = json!({"nodes": vec!["gpu-node-ü"; 5_000]});
        let kept = bounded_json(&large);
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["bytes"].as_u64(), Some(large.to_string().len() as u64));
        assert!(kept.to_string().len() < 2 * 1024, "{kept}");
        // Cut on a character boundary, and marked.
        assert_eq!(truncated("abücd", 3), "ab…");
        assert_eq!(truncated("abc", 3), "abc");
    }
}
