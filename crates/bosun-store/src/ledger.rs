//! The operations ledger in the store: what reads return, how lists filter, and the rules
//! its writes follow on every backend (called from [`crate::apply`]).
//!
//! Runbooks, runs, tools, approval policies and approvals are resources with revisions and
//! change records. Run events, artifacts, tool calls and audit entries are appended and
//! never changed: the SQL backends refuse UPDATE and DELETE on events and audit entries
//! with triggers, except through retention.

use bosun_core::{
    Approval, ApprovalPolicy, Artifact, AuditEntry, AuditOutcome, ChangeOp, PolicyDecision, ResourceKind, Revision,
    RunEvent, RunKind, RunStatus, Runbook, TaskRun, Timestamp, ToolCall, ToolDefinition,
};
use sha2::{Digest, Sha256};

use crate::apply::{Applied, Insert, Stamp, Transaction, check_expected, created};
use crate::error::{Result, StoreError};
use crate::rules;
use crate::rules::unchanged;
use crate::store::StoreOptions;

pub use bosun_core::ledger::{ArtifactInfo, StoredAuditEntry, StoredRunEvent, StoredToolCall};

/// Which runs a list returns (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub kind: Option<RunKind>,
    /// Runs with a target of this id or name (any kind of target).
    pub target: Option<String>,
}

impl RunFilter {
    pub fn matches(&self, run: &TaskRun) -> bool {
        self.status.is_none_or(|s| s == run.status)
            && self.kind.is_none_or(|k| k == run.kind)
            && self.target.as_ref().is_none_or(|t| run.targets.iter().any(|x| x.id() == t))
    }
}

/// Which audit entries a list returns (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub method: Option<String>,
    pub outcome: Option<AuditOutcome>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
}

impl AuditFilter {
    pub fn matches(&self, entry: &StoredAuditEntry) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == entry.entry.actor)
            && self.method.as_ref().is_none_or(|m| *m == entry.entry.method)
            && self.outcome.is_none_or(|o| o == entry.entry.outcome)
            && self.since.is_none_or(|t| entry.at >= t)
    }
}

/// The lower-case hex SHA-256 of `content`.
pub fn sha256_hex(content: &[u8]) -> String {
    Sha256::digest(content).iter().map(|b| format!("{b:02x}")).collect()
}

// Bounds on what the ledger keeps per field, so one caller cannot bloat the store.
const MAX_NAME_TEXT: usize = 255;
const MAX_SHORT_TEXT: usize = 4 * 1024;
const MAX_TEXT: usize = 64 * 1024;
const MAX_SPEC: usize = 256 * 1024;
const MAX_DOCUMENT: usize = 256 * 1024;
const MAX_TARGETS: usize = 100_000;

/// Numbers the SQL backends keep in 32-bit `INTEGER` columns (versions, step indexes).
fn check_int4(field: &str, value: u32) -> Result<()> {
    if i32::try_from(value).is_err() {
        return Err(StoreError::invalid(field, format_args!("{value} is above the largest storable {}", i32::MAX)));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(StoreError::invalid(field, format_args!("is {} bytes long; the limit is {max}", value.len())));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(field, "contains a NUL character"));
    }
    Ok(())
}

fn check_required(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::invalid(field, "is required"));
    }
    check_text(field, value, max)
}

fn check_document(field: &str, value: &serde_json::Value) -> Result<()> {
    let size = serde_json::to_string(value).map_err(|e| StoreError::invalid(field, e))?.len();
    if size > MAX_DOCUMENT {
        return Err(StoreError::invalid(field, format_args!("is {size} bytes of JSON; the limit is {MAX_DOCUMENT}")));
    }
    Ok(())
}

fn check_runbook(runbook: &Runbook) -> Result<()> {
    check_text("description", &runbook.description, MAX_SHORT_TEXT)?;
    check_required("spec", &runbook.spec, MAX_SPEC)?;
    if runbook.version == 0 {
        return Err(StoreError::invalid("version", "starts at 1"));
    }
    check_int4("version", runbook.version)
}

fn check_run(run: &TaskRun) -> Result<()> {
    if run.targets.len() > MAX_TARGETS {
        return Err(StoreError::invalid(
            "targets",
            format_args!("{} targets; a run takes at most {MAX_TARGETS}", run.targets.len()),
        ));
    }
    if run.runbook.is_some() != run.runbook_version.is_some() {
        return Err(StoreError::invalid("runbook_version", "is set exactly when the run is of a runbook"));
    }
    if let Some(version) = run.runbook_version {
        check_int4("runbook_version", version)?;
    }
    if run.runbook.is_some() != (run.kind == RunKind::Runbook) {
        return Err(StoreError::invalid("runbook", "names the runbook of a run of kind runbook, and only then"));
    }
    check_document("input", &run.input)?;
    if let Some(result) = &run.result {
        check_document("result", result)?;
    }
    if let Some(error) = &run.error {
        check_text("error", error, MAX_TEXT)?;
    }
    if run.status.is_final() != run.finished_at.is_some() {
        return Err(StoreError::invalid("finished_at", "is set exactly when the run is finished"));
    }
    Ok(())
}

fn check_event(event: &RunEvent) -> Result<()> {
    check_text("message", &event.message, MAX_TEXT)?;
    if let Some(step) = event.step {
        check_int4("step", step)?;
    }
    if let Some(data) = &event.data {
        check_document("data", data)?;
    }
    Ok(())
}

fn check_artifact(artifact: &Artifact, limit: u64) -> Result<()> {
    check_required("name", &artifact.name, MAX_NAME_TEXT)?;
    if artifact.name.chars().any(|c| c.is_control() || c == '/') {
        return Err(StoreError::invalid("name", "may not contain '/' or control characters"));
    }
    check_required("media_type", &artifact.media_type, MAX_NAME_TEXT)?;
    let size = artifact.content.len() as u64;
    if size > limit {
        return Err(StoreError::TooLarge { what: format!("artifact {:?}", artifact.name), size, limit });
    }
    Ok(())
}

fn check_tool(tool: &ToolDefinition) -> Result<()> {
    check_text("description", &tool.description, MAX_SHORT_TEXT)?;
    if !tool.input_schema.is_object() {
        return Err(StoreError::invalid("input_schema", "must be a JSON Schema object"));
    }
    check_document("input_schema", &tool.input_schema)
}

fn check_tool_call(call: &ToolCall) -> Result<()> {
    check_document("input", &call.input)?;
    bosun_core::validation::check_stored_int("duration_ms", call.duration_ms)?;
    if let Some(output) = &call.output {
        check_document("output", output)?;
    }
    if let Some(error) = &call.error {
        check_text("error", error, MAX_TEXT)?;
    }
    Ok(())
}

fn check_approval_policy(policy: &ApprovalPolicy) -> Result<()> {
    check_text("description", &policy.description, MAX_SHORT_TEXT)?;
    check_required("condition", &policy.condition, MAX_TEXT)
}

fn check_approval(approval: &Approval) -> Result<()> {
    check_required("what", &approval.what, MAX_SHORT_TEXT)?;
    if let Some(step) = approval.step {
        check_int4("step", step)?;
    }
    if approval.expires_at <= approval.requested_at {
        return Err(StoreError::invalid("expires_at", "must be after requested_at"));
    }
    if let Some(decision) = &approval.decision {
        check_text("reason", &decision.reason, MAX_SHORT_TEXT)?;
    }
    Ok(())
}

fn check_audit(entry: &AuditEntry) -> Result<()> {
    check_required("actor", &entry.actor, MAX_NAME_TEXT)?;
    check_required("method", &entry.method, MAX_NAME_TEXT)?;
    check_text("resource", &entry.resource, MAX_SHORT_TEXT)?;
    check_required("code", &entry.code, MAX_NAME_TEXT)?;
    check_text("message", &entry.message, MAX_SHORT_TEXT)?;
    check_text("request_id", &entry.request_id, MAX_NAME_TEXT)?;
    if let Some(peer) = &entry.peer {
        check_text("peer", peer, MAX_NAME_TEXT)?;
    }
    Ok(())
}

/// A ledger resource kept whole under its name (runbooks, tools, approval policy rules):
/// stored by [`put_named`] (created when none has the name, replaced otherwise) and
/// removed by [`delete_named`], with the same compare-and-set and change records.
#[allow(async_fn_in_trait)] // crate-private; implemented for three record types here
pub(crate) trait Named: Clone + serde::Serialize {
    type Name: std::fmt::Display;
    const KIND: ResourceKind;
    fn name(&self) -> &Self::Name;
    fn revision(&self) -> Revision;
    fn set_revision(&mut self, revision: Revision);
    /// The checks of the record itself, whatever is stored.
    fn check(&self) -> Result<()>;
    /// The checks of a record no other has the name of.
    fn check_create(&self) -> Result<()> {
        Ok(())
    }
    /// The checks of a replacement against what is stored.
    fn check_update(&self, _stored: &Self) -> Result<()> {
        Ok(())
    }
    async fn read<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<Option<Self>>;
    async fn insert<T: Transaction>(&self, tx: &mut T) -> Result<Insert>;
    async fn update<T: Transaction>(&self, tx: &mut T) -> Result<()>;
    async fn delete<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<()>;
}

pub(crate) async fn put_named<T: Transaction, R: Named>(
    tx: &mut T,
    record: &R,
    expected: Option<Revision>,
) -> Result<Applied> {
    record.check()?;
    let name = record.name().to_string();
    let mut stored = record.clone();
    match R::read(tx, record.name()).await? {
        None => {
            if expected.is_some() {
                return Err(StoreError::not_found(R::KIND, &name));
            }
            record.check_create()?;
            stored.set_revision(Revision::FIRST);
            created(stored.insert(tx).await?, R::KIND, &name)?;
            Ok(Applied::resource(R::KIND, &name, ChangeOp::Created, Revision::FIRST, &stored))
        }
        Some(current) => {
            check_expected(R::KIND, &name, current.revision(), expected)?;
            record.check_update(&current)?;
            stored.set_revision(current.revision().next());
            stored.update(tx).await?;
            Ok(Applied::resource(R::KIND, &name, ChangeOp::Updated, stored.revision(), &stored))
        }
    }
}

pub(crate) async fn delete_named<T: Transaction, R: Named>(
    tx: &mut T,
    name: &R::Name,
    expected: Option<Revision>,
) -> Result<Applied> {
    let id = name.to_string();
    let stored = R::read(tx, name).await?.ok_or_else(|| StoreError::not_found(R::KIND, &id))?;
    check_expected(R::KIND, &id, stored.revision(), expected)?;
    R::delete(tx, name).await?;
    Ok(Applied::resource(R::KIND, &id, ChangeOp::Deleted, stored.revision(), &stored))
}

impl Named for Runbook {
    type Name = bosun_core::RunbookName;
    const KIND: ResourceKind = ResourceKind::Runbook;

    fn name(&self) -> &Self::Name {
        &self.name
    }

    fn revision(&self) -> Revision {
        self.revision
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }

    fn check(&self) -> Result<()> {
        check_runbook(self)
    }

    fn check_create(&self) -> Result<()> {
        if self.version != 1 {
            return Err(StoreError::invalid("version", "a new runbook starts at version 1"));
        }
        Ok(())
    }

    /// A replacement keeps its creator and is the same or the next version.
    fn check_update(&self, stored: &Self) -> Result<()> {
        let (kind, name) = (Self::KIND, self.name.as_str());
        unchanged(kind, name, "created_by", &stored.created_by, &self.created_by)?;
        unchanged(kind, name, "created_at", &stored.created_at, &self.created_at)?;
        if self.version != stored.version && self.version != stored.version + 1 {
            return Err(StoreError::invalid(
                "version",
                format_args!("runbook {name} is at version {}; the next is {}", stored.version, stored.version + 1),
            ));
        }
        Ok(())
    }

    async fn read<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<Option<Self>> {
        tx.runbook(name).await
    }

    async fn insert<T: Transaction>(&self, tx: &mut T) -> Result<Insert> {
        tx.insert_runbook(self).await
    }

    async fn update<T: Transaction>(&self, tx: &mut T) -> Result<()> {
        tx.update_runbook(self).await
    }

    async fn delete<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<()> {
        tx.delete_runbook(name).await
    }
}

impl Named for ToolDefinition {
    type Name = bosun_core::ToolName;
    const KIND: ResourceKind = ResourceKind::Tool;

    fn name(&self) -> &Self::Name {
        &self.name
    }

    fn revision(&self) -> Revision {
        self.revision
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }

    fn check(&self) -> Result<()> {
        check_tool(self)
    }

    async fn read<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<Option<Self>> {
        tx.tool(name).await
    }

    async fn insert<T: Transaction>(&self, tx: &mut T) -> Result<Insert> {
        tx.insert_tool(self).await
    }

    async fn update<T: Transaction>(&self, tx: &mut T) -> Result<()> {
        tx.update_tool(self).await
    }

    async fn delete<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<()> {
        tx.delete_tool(name).await
    }
}

impl Named for ApprovalPolicy {
    type Name = bosun_core::ApprovalPolicyName;
    const KIND: ResourceKind = ResourceKind::ApprovalPolicy;

    fn name(&self) -> &Self::Name {
        &self.name
    }

    fn revision(&self) -> Revision {
        self.revision
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }

    fn check(&self) -> Result<()> {
        check_approval_policy(self)
    }

    async fn read<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<Option<Self>> {
        tx.approval_policy(name).await
    }

    async fn insert<T: Transaction>(&self, tx: &mut T) -> Result<Insert> {
        tx.insert_approval_policy(self).await
    }

    async fn update<T: Transaction>(&self, tx: &mut T) -> Result<()> {
        tx.update_approval_policy(self).await
    }

    async fn delete<T: Transaction>(tx: &mut T, name: &Self::Name) -> Result<()> {
        tx.delete_approval_policy(name).await
    }
}

pub(crate) async fn create_run<T: Transaction>(tx: &mut T, run: &TaskRun) -> Result<Applied> {
    check_run(run)?;
    if !run.status.can_begin_as() {
        return Err(StoreError::invalid(
            "status",
            format_args!("a run begins queued, awaiting_approval or running, not {}", run.status),
        ));
    }
    let mut stored = run.clone();
    stored.revision = Revision::FIRST;
    let id = run.id.to_string();
    created(tx.insert_run(&stored).await?, ResourceKind::Run, &id)?;
    Ok(Applied::resource(ResourceKind::Run, &id, ChangeOp::Created, stored.revision, &stored))
}

pub(crate) async fn update_run<T: Transaction>(tx: &mut T, run: &TaskRun, expected: Revision) -> Result<Applied> {
    let kind = ResourceKind::Run;
    let id = run.id.to_string();
    let current = tx.run(&run.id).await?.ok_or_else(|| StoreError::not_found(kind, &id))?;
    rules::check_expected(kind, &id, current.revision, expected)?;
    check_run(run)?;
    current
        .status
        .check_change(run.status)
        .map_err(|transition| StoreError::InvalidTransition { id: id.clone(), transition })?;
    unchanged(kind, &id, "kind", &current.kind, &run.kind)?;
    unchanged(kind, &id, "runbook", &current.runbook, &run.runbook)?;
    unchanged(kind, &id, "runbook_version", &current.runbook_version, &run.runbook_version)?;
    unchanged(kind, &id, "targets", &current.targets, &run.targets)?;
    unchanged(kind, &id, "requested_by", &current.requested_by, &run.requested_by)?;
    unchanged(kind, &id, "input", &current.input, &run.input)?;
    unchanged(kind, &id, "created_at", &current.created_at, &run.created_at)?;
    let mut stored = run.clone();
    stored.revision = expected.next();
    tx.update_run(&stored).await?;
    Ok(Applied::resource(kind, &id, ChangeOp::Updated, stored.revision, &stored))
}

pub(crate) async fn append_run_event<T: Transaction>(
    tx: &mut T,
    stamp: Stamp<'_>,
    event: &RunEvent,
) -> Result<Applied> {
    check_event(event)?;
    // Reading the run locks it: appends to one run are numbered one at a time.
    if tx.run(&event.run_id).await?.is_none() {
        return Err(StoreError::not_found(ResourceKind::Run, event.run_id));
    }
    Ok(Applied::appended(tx.append_run_event(stamp.at, event).await?))
}

pub(crate) async fn put_artifact<T: Transaction>(
    tx: &mut T,
    options: &StoreOptions,
    stamp: Stamp<'_>,
    artifact: &Artifact,
) -> Result<Applied> {
    check_artifact(artifact, options.artifact_max_bytes)?;
    if tx.run(&artifact.run_id).await?.is_none() {
        return Err(StoreError::not_found(ResourceKind::Run, artifact.run_id));
    }
    let info = ArtifactInfo {
        run_id: artifact.run_id,
        name: artifact.name.clone(),
        media_type: artifact.media_type.clone(),
        size: artifact.content.len() as u64,
        sha256: sha256_hex(&artifact.content),
        created_at: stamp.at,
    };
    match tx.insert_artifact(&info, &artifact.content).await? {
        Insert::Done => Ok(Applied::appended(info.size)),
        Insert::KeyTaken => Err(StoreError::invalid(
            "name",
            format_args!(
                "run {} already has an artifact {:?}; artifacts are written once",
                artifact.run_id, artifact.name
            ),
        )),
    }
}

pub(crate) async fn record_tool_call<T: Transaction>(tx: &mut T, stamp: Stamp<'_>, call: &ToolCall) -> Result<Applied> {
    check_tool_call(call)?;
    if tx.run(&call.run_id).await?.is_none() {
        return Err(StoreError::not_found(ResourceKind::Run, call.run_id));
    }
    if let Some(approval) = call.approval_id
        && tx.approval(&approval).await?.is_none()
    {
        return Err(StoreError::not_found(ResourceKind::Approval, approval));
    }
    Ok(Applied::appended(tx.append_tool_call(stamp.at, call).await?))
}

pub(crate) async fn create_approval<T: Transaction>(tx: &mut T, approval: &Approval) -> Result<Applied> {
    check_approval(approval)?;
    if approval.decision.is_some() {
        return Err(StoreError::invalid("decision", "an approval is requested undecided"));
    }
    if tx.run(&approval.run_id).await?.is_none() {
        return Err(StoreError::not_found(ResourceKind::Run, approval.run_id));
    }
    let mut stored = approval.clone();
    stored.revision = Revision::FIRST;
    let id = approval.id.to_string();
    created(tx.insert_approval(&stored).await?, ResourceKind::Approval, &id)?;
    Ok(Applied::resource(ResourceKind::Approval, &id, ChangeOp::Created, stored.revision, &stored))
}

/// Records the decision on an approval. Decided once: deciding again is
/// `FailedPrecondition`, whatever the revision.
pub(crate) async fn update_approval<T: Transaction>(
    tx: &mut T,
    approval: &Approval,
    expected: Revision,
) -> Result<Applied> {
    let kind = ResourceKind::Approval;
    let id = approval.id.to_string();
    let current = tx.approval(&approval.id).await?.ok_or_else(|| StoreError::not_found(kind, &id))?;
    if let Some(decided) = &current.decision {
        return Err(StoreError::FailedPrecondition {
            message: format!(
                "approval {id} was already {} by {} at {}; a decision is final",
                decided.outcome, decided.by, decided.at
            ),
        });
    }
    rules::check_expected(kind, &id, current.revision, expected)?;
    check_approval(approval)?;
    unchanged(kind, &id, "run_id", &current.run_id, &approval.run_id)?;
    unchanged(kind, &id, "step", &current.step, &approval.step)?;
    unchanged(kind, &id, "what", &current.what, &approval.what)?;
    unchanged(kind, &id, "policy", &current.policy, &approval.policy)?;
    unchanged(kind, &id, "required_role", &current.required_role, &approval.required_role)?;
    unchanged(kind, &id, "requested_by", &current.requested_by, &approval.requested_by)?;
    unchanged(kind, &id, "requested_at", &current.requested_at, &approval.requested_at)?;
    unchanged(kind, &id, "expires_at", &current.expires_at, &approval.expires_at)?;
    let mut stored = approval.clone();
    stored.revision = expected.next();
    tx.update_approval(&stored).await?;
    Ok(Applied::resource(kind, &id, ChangeOp::Updated, stored.revision, &stored))
}

pub(crate) async fn append_audit<T: Transaction>(tx: &mut T, stamp: Stamp<'_>, entry: &AuditEntry) -> Result<Applied> {
    check_audit(entry)?;
    Ok(Applied::appended(tx.append_audit(stamp.at, entry).await?))
}

/// The wire name of a policy decision's role column: set for `require_approval` only.
pub(crate) fn decision_role(decision: PolicyDecision) -> Option<bosun_core::Role> {
    match decision {
        PolicyDecision::RequireApproval { role } => Some(role),
        PolicyDecision::Allow | PolicyDecision::Deny => None,
    }
}

/// The decision stored as `decision` and `required_role` columns.
pub(crate) fn decision_from_columns(decision: &str, role: Option<&str>) -> Result<PolicyDecision> {
    match (decision, role) {
        ("allow", None) => Ok(PolicyDecision::Allow),
        ("deny", None) => Ok(PolicyDecision::Deny),
        ("require_approval", Some(role)) => Ok(PolicyDecision::RequireApproval {
            role: role.parse().map_err(|e| StoreError::corrupt("approval_policies.required_role", e))?,
        }),
        (other, role) => Err(StoreError::corrupt(
            "approval_policies.decision",
            format_args!("{other:?} with required role {role:?}"),
        )),
    }
}
