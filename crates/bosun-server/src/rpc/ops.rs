//! OpsService: the operations ledger for operators: runbooks, runs (bosun's own actions are
//! runs too), their events and artifacts, the approval policy and the audit log; the MCP
//! kill switch; LLM usage and model prices (in `super::usage`).
//!
//! Documents callers send (runbooks, approval policies) are parsed and compiled on the
//! policy work pool (`PolicyWork`): bounded, one at a time, never on an async worker.

use std::sync::Arc;

use bosun_api::{convert, ops, v1};
use bosun_config::approval::parse_approval_policy;
use bosun_config::runbook::{RunbookSpec, TargetSpec};
use bosun_core::{
    ApprovalPolicy, AuditOutcome, Revision, Role, RunId, RunKind, RunStatus, Runbook, ToolRisk, ValidationError,
};
use bosun_policy::approval::{ApprovalRules, Operation};
use bosun_store::{ApprovalFilter, AuditFilter, PageRequest, RunFilter, StoreError, Write, WriteBatch, query};
use buffa::MessageField;
use connectrpc::{RequestContext, Response, ServiceRequest, ServiceResult};

use super::{allowed, next_token, page_size, page_token, parsed};
use crate::app::App;
use crate::auth::{Caller, Permission};
use crate::error::{ApiError, ApiResult};

/// Events one GetRun returns with the run; more through ListRunEvents.
const RUN_EVENTS_IN_GET: u32 = 1_000;
const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 10_000;
/// Node ids one StartRun may name (more through a selector or a pool).
const MAX_RUN_NODES: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct OpsApi {
    app: Arc<App>,
}

fn run_id(text: &str) -> ApiResult<RunId> {
    if text.is_empty() {
        return Err(ApiError::invalid("run_id", "is required"));
    }
    text.parse().map_err(|e: ValidationError| ApiError::Invalid(ValidationError::new("run_id", e.problem)))
}

/// A free-text filter matched exactly against stored values.
fn exact(field: &str, text: &str) -> ApiResult<Option<String>> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 255 || text.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must be at most 255 printable characters"));
    }
    Ok(Some(text.to_owned()))
}

impl OpsApi {
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    async fn apply_runbook(
        &self,
        caller: &Caller,
        request: v1::ApplyRunbookRequest,
    ) -> ApiResult<v1::ApplyRunbookResponse> {
        if request.yaml.trim().is_empty() {
            return Err(ApiError::invalid("yaml", "is required"));
        }
        if request.yaml.len() > bosun_config::runbook::MAX_RUNBOOK_BYTES {
            return Err(ApiError::invalid(
                "yaml",
                format_args!(
                    "is {} bytes; a runbook may be at most {}",
                    request.yaml.len(),
                    bosun_config::runbook::MAX_RUNBOOK_BYTES
                ),
            ));
        }
        let yaml = request.yaml.clone();
        let spec = self
            .app
            .policies
            .run(move || RunbookSpec::parse(&yaml))
            .await?
            .map_err(|e| ApiError::invalid("yaml", e))?;
        let now = self.app.now();
        let current = match self.app.store.runbook(&spec.name).await {
            Ok(current) => Some(current),
            Err(StoreError::NotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        if let Some(current) = &current
            && current.spec == request.yaml
        {
            return Ok(v1::ApplyRunbookResponse {
                runbook: MessageField::some(ops::runbook(current)),
                changed: false,
                ..Default::default()
            });
        }
        let runbook = Runbook {
            name: spec.name.clone(),
            description: spec.description.clone(),
            spec: request.yaml,
            version: current.as_ref().map_or(1, |c| c.version + 1),
            created_by: current.as_ref().map_or_else(|| caller.actor(), |c| c.created_by.clone()),
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
            revision: Revision::FIRST,
        };
        let expected = current.as_ref().map(|c| c.revision);
        let batch = WriteBatch::new(caller.actor(), format!("runbook {} applied", spec.name))
            .with(Write::PutRunbook { runbook: Box::new(runbook), expected });
        self.app.store.commit(batch).await?;
        let stored = self.app.store.runbook(&spec.name).await?;
        tracing::info!(runbook = %stored.name, version = stored.version, actor = %caller.actor(), "runbook applied");
        Ok(v1::ApplyRunbookResponse {
            runbook: MessageField::some(ops::runbook(&stored)),
            changed: true,
            ..Default::default()
        })
    }

    async fn get_runbook(&self, request: v1::GetRunbookRequest) -> ApiResult<v1::GetRunbookResponse> {
        let name = request
            .name
            .parse::<bosun_core::RunbookName>()
            .map_err(|e| ApiError::Invalid(ValidationError::new("name", e.problem)))?;
        let runbook = self.app.store.runbook(&name).await?;
        Ok(v1::GetRunbookResponse { runbook: MessageField::some(ops::runbook(&runbook)), ..Default::default() })
    }

    async fn start_run(&self, caller: &Caller, request: v1::StartRunRequest) -> ApiResult<v1::StartRunResponse> {
        let runbook = request
            .runbook
            .parse::<bosun_core::RunbookName>()
            .map_err(|e| ApiError::Invalid(ValidationError::new("runbook", e.problem)))?;
        let given = [!request.nodes.is_empty(), !request.selector.is_empty(), !request.pool.is_empty()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ApiError::invalid("targets", "give nodes, a selector or a pool, not several"));
        }
        if request.nodes.len() > MAX_RUN_NODES {
            return Err(ApiError::invalid(
                "nodes",
                format_args!(
                    "{} nodes; a run names at most {MAX_RUN_NODES} (use a selector or a pool)",
                    request.nodes.len()
                ),
            ));
        }
        // The same conversions as ListNodes' filters.
        let targets = if !request.nodes.is_empty() {
            let ids = request
                .nodes
                .iter()
                .enumerate()
                .map(|(i, id)| convert::node_id(&format!("nodes[{i}]"), id))
                .collect::<Result<Vec<_>, _>>()?;
            Some(TargetSpec::Nodes(ids))
        } else if !request.selector.is_empty() {
            Some(TargetSpec::Selector(convert::label_selector("selector", &request.selector)?))
        } else {
            convert::pool_filter(&request.pool)?.map(TargetSpec::Pool)
        };
        let reason = exact("reason", &request.reason)?.unwrap_or_default();
        let run = crate::runs::start(&self.app, caller.actor(), caller.role(), &runbook, targets, reason).await?;
        Ok(v1::StartRunResponse { run: MessageField::some(ops::run(&run, &[], None)), ..Default::default() })
    }

    async fn cancel_run(&self, caller: &Caller, request: v1::CancelRunRequest) -> ApiResult<v1::CancelRunResponse> {
        let id = run_id(&request.run_id)?;
        let reason = exact("reason", &request.reason)?.unwrap_or_default();
        let run = crate::runs::cancel(&self.app, id, caller.actor(), &reason).await?;
        Ok(v1::CancelRunResponse { run: MessageField::some(ops::run(&run, &[], None)), ..Default::default() })
    }

    async fn decide_run(
        &self,
        caller: &Caller,
        run: &str,
        reason: &str,
        verdict: crate::runs::approvals::Verdict,
    ) -> ApiResult<v1::Run> {
        let id = run_id(run)?;
        let reason = exact("reason", reason)?.unwrap_or_default();
        let run =
            crate::runs::approvals::decide(&self.app, id, caller.actor(), caller.role(), verdict, &reason).await?;
        Ok(ops::run(&run, &[], None))
    }

    async fn list_runs(&self, request: v1::ListRunsRequest) -> ApiResult<v1::ListRunsResponse> {
        let filter = RunFilter {
            status: parsed::<RunStatus>("status", &request.status)?,
            kind: parsed::<RunKind>("kind", &request.kind)?,
            target: exact("target", &request.target)?,
        };
        let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
        let page =
            self.app.store.list_runs(&filter, &PageRequest { limit, after: page_token(&request.page_token) }).await?;
        Ok(v1::ListRunsResponse {
            runs: page.items.iter().map(|r| ops::run(r, &[], None)).collect(),
            next_page_token: next_token(page.next),
            ..Default::default()
        })
    }

    async fn get_run(&self, request: v1::GetRunRequest) -> ApiResult<v1::GetRunResponse> {
        let id = run_id(&request.run_id)?;
        let run = self.app.store.run(&id).await?;
        let events = self.app.store.run_events(&id, 0, RUN_EVENTS_IN_GET).await?;
        let pending = self.app.store.list_approvals(&ApprovalFilter { run: Some(id), undecided: true }, 1).await?;
        Ok(v1::GetRunResponse {
            run: MessageField::some(ops::run(&run, &events, pending.first())),
            ..Default::default()
        })
    }

    async fn list_run_events(&self, request: v1::ListRunEventsRequest) -> ApiResult<v1::ListRunEventsResponse> {
        let id = run_id(&request.run_id)?;
        let limit = page_size("limit", request.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let events = self.app.store.run_events(&id, request.after_seq, limit).await?;
        Ok(v1::ListRunEventsResponse { events: events.iter().map(ops::run_event).collect(), ..Default::default() })
    }

    async fn list_artifacts(&self, request: v1::ListArtifactsRequest) -> ApiResult<v1::ListArtifactsResponse> {
        let id = run_id(&request.run_id)?;
        let artifacts = self.app.store.artifacts(&id).await?;
        Ok(v1::ListArtifactsResponse { artifacts: artifacts.iter().map(ops::artifact).collect(), ..Default::default() })
    }

    async fn get_artifact(&self, request: v1::GetArtifactRequest) -> ApiResult<v1::GetArtifactResponse> {
        let id = run_id(&request.run_id)?;
        let name = exact("name", &request.name)?.ok_or_else(|| ApiError::invalid("name", "is required"))?;
        let (info, content) = self.app.store.artifact(&id, &name).await?;
        Ok(v1::GetArtifactResponse {
            artifact: MessageField::some(ops::artifact(&info)),
            content,
            ..Default::default()
        })
    }

    /// The stored rules, or the built-in ones when none are stored.
    async fn approval_rules(&self) -> ApiResult<(Vec<ApprovalPolicy>, bool)> {
        crate::runs::approvals::rules(&self.app).await
    }

    /// Parses and compiles a caller's approval policy document off the async workers.
    async fn compile_rules(&self, yaml: &str) -> ApiResult<Vec<ApprovalPolicy>> {
        if yaml.len() > bosun_config::approval::MAX_APPROVAL_POLICY_BYTES {
            return Err(ApiError::invalid(
                "yaml",
                format_args!(
                    "is {} bytes; an approval policy may be at most {}",
                    yaml.len(),
                    bosun_config::approval::MAX_APPROVAL_POLICY_BYTES
                ),
            ));
        }
        let (yaml, now) = (yaml.to_owned(), self.app.now());
        self.app
            .policies
            .run(move || {
                let rules = parse_approval_policy(&yaml, now).map_err(|e| ApiError::invalid("yaml", e))?;
                ApprovalRules::compile(rules.clone()).map_err(|e| ApiError::invalid("yaml", e))?;
                Ok(rules)
            })
            .await?
    }

    async fn get_approval_policy(&self) -> ApiResult<v1::GetApprovalPolicyResponse> {
        let (rules, builtin) = self.approval_rules().await?;
        Ok(v1::GetApprovalPolicyResponse {
            rules: rules.iter().map(ops::approval_rule).collect(),
            builtin,
            ..Default::default()
        })
    }

    /// Replaces every stored rule with the document's, in one batch.
    async fn set_approval_policy(
        &self,
        caller: &Caller,
        request: v1::SetApprovalPolicyRequest,
    ) -> ApiResult<v1::SetApprovalPolicyResponse> {
        let rules = self.compile_rules(&request.yaml).await?;
        let stored = self.app.store.approval_policies().await?;
        let mut batch = WriteBatch::new(caller.actor(), "approval policy set");
        for old in stored.iter().filter(|old| !rules.iter().any(|r| r.name == old.name)) {
            batch.push(Write::DeleteApprovalPolicy { name: old.name.clone(), expected: Some(old.revision) });
        }
        for rule in &rules {
            let expected = stored.iter().find(|old| old.name == rule.name).map(|old| old.revision);
            batch.push(Write::PutApprovalPolicy { policy: Box::new(rule.clone()), expected });
        }
        if !batch.is_empty() {
            self.app.store.commit(batch).await?;
        }
        tracing::info!(rules = rules.len(), actor = %caller.actor(), "approval policy replaced");
        let stored = self.app.store.approval_policies().await?;
        Ok(v1::SetApprovalPolicyResponse {
            rules: stored.iter().map(ops::approval_rule).collect(),
            ..Default::default()
        })
    }

    async fn test_approval_policy(
        &self,
        request: v1::TestApprovalPolicyRequest,
    ) -> ApiResult<v1::TestApprovalPolicyResponse> {
        let risk =
            parsed::<ToolRisk>("risk", &request.risk)?.ok_or_else(|| ApiError::invalid("risk", "is required"))?;
        let role = parsed::<Role>("role", &request.role)?.unwrap_or(Role::Operator);
        if request.pool_size > 0 && request.targets > request.pool_size {
            return Err(ApiError::invalid("targets", "is larger than pool_size"));
        }
        let operation = Operation {
            tool: exact("tool", &request.tool)?.ok_or_else(|| ApiError::invalid("tool", "is required"))?,
            risk,
            actor: exact("actor", &request.actor)?.unwrap_or_else(|| "anonymous".to_owned()),
            role,
            kind: RunKind::External.to_string(),
            targets: request.targets,
            pool: exact("pool", &request.pool)?,
            pool_fraction: if request.pool_size == 0 {
                0.0
            } else {
                f64::from(request.targets) / f64::from(request.pool_size)
            },
        };
        let rules = if request.yaml.trim().is_empty() {
            self.approval_rules().await?.0
        } else {
            self.compile_rules(&request.yaml).await?
        };
        let decision = self
            .app
            .policies
            .run(move || ApprovalRules::compile(rules).map(|compiled| compiled.decide(&operation)))
            .await?
            .map_err(|e| ApiError::Internal(format!("the stored approval policy does not compile: {e}")))?;
        let role = match decision.decision {
            bosun_core::PolicyDecision::RequireApproval { role } => role.to_string(),
            _ => String::new(),
        };
        Ok(v1::TestApprovalPolicyResponse {
            decision: decision.decision.as_str().to_owned(),
            role,
            rule: decision.rule.map(String::from).unwrap_or_default(),
            error: decision.error.unwrap_or_default(),
            ..Default::default()
        })
    }

    async fn list_audit(&self, request: v1::ListAuditRequest) -> ApiResult<v1::ListAuditResponse> {
        let filter = AuditFilter {
            actor: exact("actor", &request.actor)?,
            method: exact("method", &request.method)?,
            outcome: parsed::<AuditOutcome>("outcome", &request.outcome)?,
            since: request.since.as_option().map(|at| convert::from_timestamp("since", at)).transpose()?,
        };
        let limit = page_size("limit", request.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let entries = self.app.store.list_audit(&filter, request.after_seq, limit).await?;
        Ok(v1::ListAuditResponse { entries: entries.iter().map(ops::audit_entry).collect(), ..Default::default() })
    }

    /// Both kill switches as the API reports them.
    fn mcp_status(&self, stored: &crate::mcp::switch::Stored) -> v1::GetMcpStatusResponse {
        let config_enabled = self.app.settings.mcp.enabled;
        let (changed_by, changed_at) = match &stored.changed {
            Some((by, at)) => (by.clone(), MessageField::some(convert::timestamp(*at))),
            None => (String::new(), MessageField::none()),
        };
        v1::GetMcpStatusResponse {
            enabled: config_enabled && stored.enabled,
            config_enabled,
            stored_enabled: stored.enabled,
            changed_by,
            changed_at,
            reason: stored.reason.clone(),
            ..Default::default()
        }
    }

    async fn list_tools(&self) -> ApiResult<v1::ListToolsResponse> {
        let tools = self.app.store.tools().await?;
        Ok(v1::ListToolsResponse { tools: tools.iter().map(ops::tool_definition).collect(), ..Default::default() })
    }

    /// Disabling a tool takes an operator; enabling it, an admin.
    async fn set_tool_enabled(
        &self,
        caller: &Caller,
        request: v1::SetToolEnabledRequest,
    ) -> ApiResult<v1::SetToolEnabledResponse> {
        if request.enabled {
            caller.require(Permission::Admin)?;
        }
        let tool = crate::mcp::tools::set_enabled(&self.app, caller.actor(), &request.name, request.enabled).await?;
        Ok(v1::SetToolEnabledResponse { tool: MessageField::some(ops::tool_definition(&tool)), ..Default::default() })
    }

    async fn list_tool_calls(&self, request: v1::ListToolCallsRequest) -> ApiResult<v1::ListToolCallsResponse> {
        let id = run_id(&request.run_id)?;
        let limit = page_size("limit", request.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        // A run that does not exist is not_found, not an empty list.
        self.app.store.run(&id).await?;
        // One more than asked tells whether there are more.
        let mut calls = self.app.store.tool_calls(&id, request.after_id, limit + 1).await?;
        let more = calls.len() > limit as usize;
        calls.truncate(limit as usize);
        Ok(v1::ListToolCallsResponse { calls: calls.iter().map(ops::tool_call).collect(), more, ..Default::default() })
    }

    async fn get_mcp_status(&self) -> ApiResult<v1::GetMcpStatusResponse> {
        let (stored, _) = crate::mcp::switch::read(&self.app).await?;
        Ok(self.mcp_status(&stored))
    }

    /// Turning MCP off takes an operator; turning it on, an admin, and a configuration
    /// that does not turn it off.
    async fn set_mcp_enabled(
        &self,
        caller: &Caller,
        request: v1::SetMcpEnabledRequest,
    ) -> ApiResult<v1::SetMcpEnabledResponse> {
        if request.enabled {
            caller.require(Permission::Admin)?;
            if !self.app.settings.mcp.enabled {
                return Err(ApiError::FailedPrecondition(
                    "the configuration disables MCP (mcp.enabled: false); change the configuration file and \
                     restart the server"
                        .to_owned(),
                ));
            }
        }
        let reason = super::reason(&request.reason)?;
        let stored = crate::mcp::switch::set(&self.app, caller, request.enabled, &reason).await?;
        Ok(v1::SetMcpEnabledResponse { status: MessageField::some(self.mcp_status(&stored)), ..Default::default() })
    }
}

impl v1::OpsService for OpsApi {
    async fn apply_runbook(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ApplyRunbookRequest>,
    ) -> ServiceResult<v1::ApplyRunbookResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(OpsApi::apply_runbook(self, caller, request.to_owned_message()).await?))
    }

    async fn list_runbooks(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListRunbooksRequest>,
    ) -> ServiceResult<v1::ListRunbooksResponse> {
        allowed(&ctx, Permission::Read)?;
        let request = request.to_owned_message();
        let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
        let page = PageRequest { limit, after: page_token(&request.page_token) };
        let runbooks = self.app.store.list_runbooks(&page).await.map_err(ApiError::from)?;
        Ok(Response::new(v1::ListRunbooksResponse {
            runbooks: runbooks.items.iter().map(ops::runbook).collect(),
            next_page_token: next_token(runbooks.next),
            ..Default::default()
        }))
    }

    async fn get_runbook(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetRunbookRequest>,
    ) -> ServiceResult<v1::GetRunbookResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::get_runbook(self, request.to_owned_message()).await?))
    }

    async fn start_run(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::StartRunRequest>,
    ) -> ServiceResult<v1::StartRunResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(OpsApi::start_run(self, caller, request.to_owned_message()).await?))
    }

    async fn cancel_run(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::CancelRunRequest>,
    ) -> ServiceResult<v1::CancelRunResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(OpsApi::cancel_run(self, caller, request.to_owned_message()).await?))
    }

    async fn approve_run(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ApproveRunRequest>,
    ) -> ServiceResult<v1::ApproveRunResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        let request = request.to_owned_message();
        let verdict = crate::runs::approvals::Verdict::Approve;
        let run = self.decide_run(caller, &request.run_id, &request.reason, verdict).await?;
        Ok(Response::new(v1::ApproveRunResponse { run: MessageField::some(run), ..Default::default() }))
    }

    async fn reject_run(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::RejectRunRequest>,
    ) -> ServiceResult<v1::RejectRunResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        let request = request.to_owned_message();
        let verdict = crate::runs::approvals::Verdict::Reject;
        let run = self.decide_run(caller, &request.run_id, &request.reason, verdict).await?;
        Ok(Response::new(v1::RejectRunResponse { run: MessageField::some(run), ..Default::default() }))
    }

    async fn list_runs(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListRunsRequest>,
    ) -> ServiceResult<v1::ListRunsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_runs(self, request.to_owned_message()).await?))
    }

    async fn get_run(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetRunRequest>,
    ) -> ServiceResult<v1::GetRunResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::get_run(self, request.to_owned_message()).await?))
    }

    async fn list_run_events(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListRunEventsRequest>,
    ) -> ServiceResult<v1::ListRunEventsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_run_events(self, request.to_owned_message()).await?))
    }

    async fn list_artifacts(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListArtifactsRequest>,
    ) -> ServiceResult<v1::ListArtifactsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_artifacts(self, request.to_owned_message()).await?))
    }

    async fn get_artifact(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetArtifactRequest>,
    ) -> ServiceResult<v1::GetArtifactResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::get_artifact(self, request.to_owned_message()).await?))
    }

    async fn get_approval_policy(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::GetApprovalPolicyRequest>,
    ) -> ServiceResult<v1::GetApprovalPolicyResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::get_approval_policy(self).await?))
    }

    async fn set_approval_policy(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SetApprovalPolicyRequest>,
    ) -> ServiceResult<v1::SetApprovalPolicyResponse> {
        let caller = allowed(&ctx, Permission::Admin)?;
        Ok(Response::new(OpsApi::set_approval_policy(self, caller, request.to_owned_message()).await?))
    }

    async fn test_approval_policy(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::TestApprovalPolicyRequest>,
    ) -> ServiceResult<v1::TestApprovalPolicyResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::test_approval_policy(self, request.to_owned_message()).await?))
    }

    async fn list_audit(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListAuditRequest>,
    ) -> ServiceResult<v1::ListAuditResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_audit(self, request.to_owned_message()).await?))
    }

    async fn set_mcp_enabled(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SetMcpEnabledRequest>,
    ) -> ServiceResult<v1::SetMcpEnabledResponse> {
        // Off takes an operator; on, an admin (checked inside).
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(OpsApi::set_mcp_enabled(self, caller, request.to_owned_message()).await?))
    }

    async fn get_mcp_status(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::GetMcpStatusRequest>,
    ) -> ServiceResult<v1::GetMcpStatusResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::get_mcp_status(self).await?))
    }

    async fn list_tools(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::ListToolsRequest>,
    ) -> ServiceResult<v1::ListToolsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_tools(self).await?))
    }

    async fn set_tool_enabled(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SetToolEnabledRequest>,
    ) -> ServiceResult<v1::SetToolEnabledResponse> {
        // Off takes an operator; on, an admin (checked inside).
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(OpsApi::set_tool_enabled(self, caller, request.to_owned_message()).await?))
    }

    async fn list_tool_calls(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListToolCallsRequest>,
    ) -> ServiceResult<v1::ListToolCallsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(OpsApi::list_tool_calls(self, request.to_owned_message()).await?))
    }

    async fn record_llm_usage(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::RecordLlmUsageRequest>,
    ) -> ServiceResult<v1::RecordLlmUsageResponse> {
        // An AI agent reports as the operator (or admin) token it acts with; agent tokens
        // are the node agents', not these.
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(super::usage::record_llm_usage(&self.app, caller, request.to_owned_message()).await?))
    }

    async fn set_pricing(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SetPricingRequest>,
    ) -> ServiceResult<v1::SetPricingResponse> {
        let caller = allowed(&ctx, Permission::Admin)?;
        Ok(Response::new(super::usage::set_pricing(&self.app, caller, request.to_owned_message()).await?))
    }

    async fn list_pricing(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListPricingRequest>,
    ) -> ServiceResult<v1::ListPricingResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(super::usage::list_pricing(&self.app, request.to_owned_message()).await?))
    }

    async fn summarize_usage(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SummarizeUsageRequest>,
    ) -> ServiceResult<v1::SummarizeUsageResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(super::usage::summarize_usage(&self.app, request.to_owned_message()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_and_filters_are_checked() {
        assert!(run_id("").is_err());
        assert!(run_id("not-a-uuid").is_err());
        assert!(parsed::<RunStatus>("status", "asleep").is_err());
        assert_eq!(parsed::<RunStatus>("status", "running").expect("valid"), Some(RunStatus::Running));
        assert!(exact("actor", &"x".repeat(300)).is_err());
    }
}
