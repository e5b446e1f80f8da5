//! AdminService: what operators, the CLI and dashboards call.

use std::sync::Arc;
use std::time::Duration;

use bosun_api::{convert, v1};
use bosun_core::command::CommandRequest;
use bosun_core::{Actor, CommandId, Health, InstanceId, NodeId, ResourceKind, ValidationError};
use bosun_store::{ChangeFilter, CommandFilter, InstanceFilter, NodeFilter, PageRequest, query};
use buffa::MessageField;
use connectrpc::{RequestContext, Response, ServiceRequest, ServiceResult, ServiceStream};

use super::{allowed, filter_text, next_token, page_size, page_token, reason};
use crate::app::App;
use crate::auth::{Caller, Permission};
use crate::commands::{self, MAX_TTL};
use crate::error::{ApiError, ApiResult};
use crate::{nodes, remediation};

/// Health reports returned by one GetHealthHistory call, at most.
const MAX_HISTORY: u32 = 1000;
const DEFAULT_HISTORY: u32 = 20;
/// Bootstrap logs returned by one GetBootstrapLogs call: the store keeps 50 per machine.
const MAX_BOOTSTRAP_LOGS: u32 = 50;
const DEFAULT_BOOTSTRAP_LOGS: u32 = 10;
const DEFAULT_EVENTS: u32 = 100;
const MAX_EVENTS: u32 = 10_000;
/// Events one TestPolicy call classifies, at most.
const MAX_TEST_EVENTS: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    app: Arc<App>,
}

fn command_id(text: &str) -> ApiResult<CommandId> {
    if text.is_empty() {
        return Err(ApiError::invalid("command_id", "is required"));
    }
    text.parse().map_err(|e: ValidationError| ApiError::Invalid(ValidationError::new("command_id", e.problem)))
}

fn optional_node_id(text: &str) -> ApiResult<Option<NodeId>> {
    Ok(if text.is_empty() { None } else { Some(convert::node_id("node_id", text)?) })
}

impl AdminApi {
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The node as stored, with the newest heartbeat the server holds (heartbeats reach
    /// the store in batches; the view here is never older than the store's).
    fn with_live_heartbeat(&self, mut node: bosun_core::Node) -> bosun_core::Node {
        if let Some(view) = self.app.fleet.get(&node.id) {
            node.last_heartbeat = node.last_heartbeat.max(view.last_heartbeat);
        }
        node
    }

    pub(crate) async fn list_nodes(&self, request: v1::ListNodesRequest) -> ApiResult<v1::ListNodesResponse> {
        let filter = NodeFilter {
            status: convert::node_status_filter("status", request.status)?,
            pool: convert::pool_filter(&request.pool)?,
            provider: filter_text("provider", &request.provider)?,
            region: filter_text("region", &request.region)?,
            labels: convert::label_selector("label_selector", &request.label_selector)?,
            ..NodeFilter::default()
        };
        let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
        let page = PageRequest { limit, after: page_token(&request.page_token) };
        let page = self.app.store.list_nodes(&filter, &page).await?;
        Ok(v1::ListNodesResponse {
            nodes: page.items.into_iter().map(|n| convert::node(&self.with_live_heartbeat(n), &[])).collect(),
            next_page_token: next_token(page.next),
            ..Default::default()
        })
    }

    pub(crate) async fn get_node(&self, request: v1::GetNodeRequest) -> ApiResult<v1::GetNodeResponse> {
        let id = convert::node_id("node_id", &request.node_id)?;
        let node = self.app.store.node(&id).await?;
        let gpus = self.app.store.node_gpus(&id).await?;
        Ok(v1::GetNodeResponse {
            node: MessageField::some(convert::node(&self.with_live_heartbeat(node), &gpus)),
            ..Default::default()
        })
    }

    async fn delete_node(&self, caller: &Caller, request: v1::DeleteNodeRequest) -> ApiResult<v1::DeleteNodeResponse> {
        let id = convert::node_id("node_id", &request.node_id)?;
        let mut why = reason(&request.reason)?;
        if why.is_empty() {
            why = "deleted by an operator".to_owned();
        }
        nodes::delete_node(&self.app, &id, request.force, &why, &caller.actor()).await?;
        tracing::info!(node = %id, actor = %caller.actor(), force = request.force, "node deleted");
        Ok(v1::DeleteNodeResponse::default())
    }

    async fn remediate_node(
        &self,
        caller: &Caller,
        request: v1::RemediateNodeRequest,
    ) -> ApiResult<v1::RemediateNodeResponse> {
        let id = convert::node_id("node_id", &request.node_id)?;
        let action = convert::remediation_action_from("action", request.action)?;
        let why = reason(&request.reason)?;
        let actor = caller.actor();
        let (node, command) = remediation::remediate(&self.app, &id, action, request.gpu_index, &why, &actor).await?;
        tracing::warn!(node = %id, %action, %actor, "remediation requested by an operator");
        Ok(v1::RemediateNodeResponse {
            node: MessageField::some(convert::node(&self.with_live_heartbeat(node), &[])),
            command_id: command.map(|id| id.to_string()),
            ..Default::default()
        })
    }

    pub(crate) async fn issue_command(
        &self,
        caller: &Caller,
        request: v1::IssueCommandRequest,
    ) -> ApiResult<v1::IssueCommandResponse> {
        let node_id = convert::node_id("node_id", &request.node_id)?;
        let kind = convert::command_kind_from(request.r#type, &request.custom_name)?;
        let time_to_live = match request.ttl_seconds {
            0 => self.app.settings.command_ttl,
            seconds => {
                let ttl = Duration::from_secs(u64::from(seconds));
                if ttl > MAX_TTL {
                    return Err(ApiError::invalid(
                        "ttl_seconds",
                        format_args!("{seconds} is above the maximum of {}", MAX_TTL.as_secs()),
                    ));
                }
                ttl
            }
        };
        let command_request = CommandRequest {
            node_id,
            kind,
            parameters: request.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            reason: reason(&request.reason)?,
            time_to_live,
        };
        let command = commands::issue(&self.app, command_request, &caller.actor()).await?;
        Ok(v1::IssueCommandResponse { command: MessageField::some(convert::command(&command)), ..Default::default() })
    }

    async fn list_commands(&self, request: v1::ListCommandsRequest) -> ApiResult<v1::ListCommandsResponse> {
        let filter = CommandFilter {
            node_id: optional_node_id(&request.node_id)?,
            states: convert::command_states_from("states", &request.states)?,
            kind: None,
        };
        let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
        let page = PageRequest { limit, after: page_token(&request.page_token) };
        let page = self.app.store.list_commands(&filter, &page).await?;
        Ok(v1::ListCommandsResponse {
            commands: page.items.iter().map(convert::command).collect(),
            next_page_token: next_token(page.next),
            ..Default::default()
        })
    }

    async fn get_command(&self, request: v1::GetCommandRequest) -> ApiResult<v1::GetCommandResponse> {
        let id = command_id(&request.command_id)?;
        let command = self.app.store.command(&id).await?;
        let events = self.app.store.command_events(&id).await?;
        Ok(v1::GetCommandResponse {
            command: MessageField::some(convert::command(&command)),
            events: events.iter().map(convert::command_event).collect(),
            ..Default::default()
        })
    }

    async fn cancel_command(
        &self,
        caller: &Caller,
        request: v1::CancelCommandRequest,
    ) -> ApiResult<v1::CancelCommandResponse> {
        let id = command_id(&request.command_id)?;
        let why = reason(&request.reason)?;
        let command = commands::cancel(&self.app, &id, &why, &caller.actor()).await?;
        Ok(v1::CancelCommandResponse { command: MessageField::some(convert::command(&command)), ..Default::default() })
    }

    pub(crate) async fn list_instances(
        &self,
        request: v1::ListInstancesRequest,
    ) -> ApiResult<v1::ListInstancesResponse> {
        let filter = InstanceFilter {
            states: convert::instance_states_from("states", &request.states)?,
            pool: convert::pool_filter(&request.pool)?,
            provider: filter_text("provider", &request.provider)?,
            region: filter_text("region", &request.region)?,
            node_id: optional_node_id(&request.node_id)?,
            ..Default::default()
        };
        let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
        let page = PageRequest { limit, after: page_token(&request.page_token) };
        let page = self.app.store.list_instances(&filter, &page).await?;
        Ok(v1::ListInstancesResponse {
            instances: page.items.iter().map(convert::instance).collect(),
            next_page_token: next_token(page.next),
            ..Default::default()
        })
    }

    pub(crate) async fn get_instance(&self, request: v1::GetInstanceRequest) -> ApiResult<v1::GetInstanceResponse> {
        if request.instance_id.is_empty() {
            return Err(ApiError::invalid("instance_id", "is required"));
        }
        let id = InstanceId::new(&request.instance_id).map_err(|e| ValidationError::new("instance_id", e.problem))?;
        let instance = self.app.store.instance(&id).await?;
        Ok(v1::GetInstanceResponse { instance: MessageField::some(convert::instance(&instance)), ..Default::default() })
    }

    async fn get_health_history(
        &self,
        request: v1::GetHealthHistoryRequest,
    ) -> ApiResult<v1::GetHealthHistoryResponse> {
        let id = convert::node_id("node_id", &request.node_id)?;
        let limit = page_size("limit", request.limit, DEFAULT_HISTORY, MAX_HISTORY)?;
        // An unknown node is not_found, not an empty history.
        self.app.store.node(&id).await?;
        let reports = self.app.store.health_history(&id, limit).await?;
        Ok(v1::GetHealthHistoryResponse {
            reports: reports.iter().map(|r| convert::health_report(r.id, &r.report)).collect(),
            ..Default::default()
        })
    }

    async fn get_bootstrap_logs(
        &self,
        request: v1::GetBootstrapLogsRequest,
    ) -> ApiResult<v1::GetBootstrapLogsResponse> {
        let id = convert::node_id("node_id", &request.node_id)?;
        let limit = page_size("limit", request.limit, DEFAULT_BOOTSTRAP_LOGS, MAX_BOOTSTRAP_LOGS)?;
        let logs = crate::pools::bootstrap::bootstrap_logs(&self.app, &id, limit).await?;
        Ok(v1::GetBootstrapLogsResponse {
            logs: logs.iter().map(convert::bootstrap_log).collect(),
            ..Default::default()
        })
    }

    async fn list_events(&self, request: v1::ListEventsRequest) -> ApiResult<v1::ListEventsResponse> {
        let filter = change_filter(request.after_seq, &request.kind, &request.resource_id, &request.actor)?;
        let limit = page_size("limit", request.limit, DEFAULT_EVENTS, MAX_EVENTS)?;
        // Read the end of the log first: every event listed is at or before it, so a
        // watch started after `last_seq` misses nothing.
        let last_seq = self.app.store.last_change_seq().await?;
        let filter = ChangeFilter { up_to_seq: Some(last_seq), ..filter };
        let events = self.app.store.list_changes(&filter, limit).await?;
        Ok(v1::ListEventsResponse {
            events: events.iter().map(convert::change_event).collect(),
            last_seq,
            ..Default::default()
        })
    }

    async fn watch_filter(&self, request: &v1::WatchEventsRequest) -> ApiResult<ChangeFilter> {
        let mut filter = change_filter(request.after_seq, &request.kind, &request.resource_id, &request.actor)?;
        if request.from_now {
            if request.after_seq != 0 {
                return Err(ApiError::invalid("from_now", "cannot be combined with after_seq"));
            }
            filter.after_seq = self.app.store.last_change_seq().await?;
        }
        Ok(filter)
    }

    async fn list_replicas(&self) -> ApiResult<v1::ListReplicasResponse> {
        let lease = self.app.store.lease(&crate::election::leader_lease()).await?;
        let leading = lease.as_ref().and_then(|l| l.holder.as_ref().map(|h| (h, l.epoch)));
        let replicas = self
            .app
            .store
            .list_replicas()
            .await?
            .iter()
            .map(|r| convert::replica(r, leading.filter(|(h, _)| **h == r.replica_id).map(|(_, e)| e)))
            .collect();
        Ok(v1::ListReplicasResponse { replicas, ..Default::default() })
    }

    async fn list_pools(&self) -> ApiResult<v1::ListPoolsResponse> {
        let mut pools = Vec::new();
        for pool in self.app.store.list_pools().await? {
            pools.push(self.pool_now(&pool).await?);
        }
        Ok(v1::ListPoolsResponse { pools, ..Default::default() })
    }

    async fn get_pool(&self, request: v1::GetPoolRequest) -> ApiResult<v1::GetPoolResponse> {
        let name = pool_name(&request.name)?;
        let pool = self.app.store.pool(&name).await?;
        Ok(v1::GetPoolResponse { pool: MessageField::some(self.pool_now(&pool).await?), ..Default::default() })
    }

    /// A pool with its capacity now (its decision is as of the pass that made it).
    async fn pool_now(&self, pool: &bosun_core::Pool) -> ApiResult<v1::Pool> {
        let usage = crate::pools::usage(&self.app, pool).await?;
        let mut wire = convert::pool(pool);
        wire.usage = MessageField::some(v1::PoolUsage {
            usable: usage.usable,
            booting: usage.booting,
            serving: usage.serving,
            unhealthy: usage.unhealthy,
            ..Default::default()
        });
        Ok(wire)
    }

    async fn scale_pool(&self, caller: &Caller, request: v1::ScalePoolRequest) -> ApiResult<v1::ScalePoolResponse> {
        let name = pool_name(&request.name)?;
        let decision = crate::pools::scale(&self.app, &name, request.target, &caller.actor()).await?;
        Ok(v1::ScalePoolResponse {
            decision: MessageField::some(convert::scaling_decision(&decision)),
            ..Default::default()
        })
    }

    async fn report_pool_demand(
        &self,
        request: v1::ReportPoolDemandRequest,
    ) -> ApiResult<v1::ReportPoolDemandResponse> {
        let name = pool_name(&request.pool)?;
        // Unknown pools are not_found, not silently remembered.
        self.app.store.pool(&name).await?;
        let demand = bosun_core::autoscale::Demand {
            pending_jobs: request.pending_jobs,
            queue_depth: request.queue_depth,
            reported_at: self.app.now(),
        };
        self.app.demand.report(name, demand);
        Ok(v1::ReportPoolDemandResponse::default())
    }

    async fn inject_fault(
        &self,
        caller: &Caller,
        request: v1::InjectFaultRequest,
    ) -> ApiResult<v1::InjectFaultResponse> {
        let node_id = convert::node_id("node_id", &request.node_id)?;
        if request.fault.is_empty() {
            return Err(ApiError::invalid("fault", "is required (xid_error, temperature, ecc_sbe, memory_error, ...)"));
        }
        let mut parameters: std::collections::BTreeMap<String, String> =
            request.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        parameters.insert("fault".to_owned(), request.fault.clone());
        if let Some(gpu) = request.gpu {
            parameters.insert("gpu".to_owned(), gpu.to_string());
        }
        bosun_core::fault::Fault::from_parameters(&parameters).map_err(|e| match e {
            bosun_core::fault::FaultError::BadParameter { name, problem } => {
                ApiError::invalid(&format!("parameters.{name}"), problem)
            }
            other => ApiError::invalid("fault", other),
        })?;
        // The node must run on a machine this server provisioned from a fake provider: what
        // an agent says about its provider is not proof.
        self.app.store.node(&node_id).await?;
        let instance = self.app.store.instance_for_node(&node_id).await?;
        let provider_name = instance.as_ref().map(|i| i.provider.clone());
        let fake = provider_name
            .as_ref()
            .and_then(|name| self.app.pools.as_ref()?.providers.get(name))
            .is_some_and(|p| p.kind() == bosun_config::ProviderType::Fake);
        if !fake {
            let provider = match &provider_name {
                Some(name) => format!("a machine of provider {name:?}"),
                None => "a machine this server did not provision".to_owned(),
            };
            return Err(ApiError::FailedPrecondition(format!(
                "node {node_id} runs on {provider}, not on a fake provider of this server: faults can only be injected \
                 into fake machines (an agent started with --fake-gpus takes `bosun commands issue {node_id} --type \
                 custom:{}` instead)",
                bosun_core::fault::FAULT_COMMAND
            )));
        }
        let command_request = CommandRequest {
            node_id,
            kind: bosun_core::CommandKind::custom(bosun_core::fault::FAULT_COMMAND)?,
            parameters,
            reason: format!("fault injection: {}", request.fault),
            time_to_live: self.app.settings.command_ttl,
        };
        let command = commands::issue(&self.app, command_request, &caller.actor()).await?;
        Ok(v1::InjectFaultResponse { command: MessageField::some(convert::command(&command)), ..Default::default() })
    }

    fn get_policy(&self) -> v1::GetPolicyResponse {
        let active = self.app.policies.current();
        v1::GetPolicyResponse {
            yaml: active.policy.source().to_owned(),
            name: active.policy.name().to_owned(),
            source: active.source.to_string(),
            rules: rule_count(&active.policy),
            ..Default::default()
        }
    }

    async fn set_policy(&self, caller: &Caller, request: v1::SetPolicyRequest) -> ApiResult<v1::SetPolicyResponse> {
        if request.yaml.trim().is_empty() {
            return Err(ApiError::invalid("yaml", "is required"));
        }
        if request.yaml.len() > bosun_core::StoredPolicy::MAX_DOCUMENT_BYTES {
            return Err(ApiError::invalid(
                "yaml",
                format_args!(
                    "is {} bytes; a policy may be at most {}",
                    request.yaml.len(),
                    bosun_core::StoredPolicy::MAX_DOCUMENT_BYTES
                ),
            ));
        }
        let active = self.app.policies.set(&self.app.store, &request.yaml, caller.actor(), self.app.now()).await?;
        tracing::info!(name = active.policy.name(), actor = %caller.actor(), "health policy replaced through the API");
        Ok(v1::SetPolicyResponse {
            name: active.policy.name().to_owned(),
            rules: rule_count(&active.policy),
            ..Default::default()
        })
    }

    async fn test_policy(&self, request: v1::TestPolicyRequest) -> ApiResult<v1::TestPolicyResponse> {
        if request.events.len() > MAX_TEST_EVENTS {
            return Err(ApiError::invalid(
                "events",
                format_args!("has {} events; test at most {MAX_TEST_EVENTS} at once", request.events.len()),
            ));
        }
        let events = convert::health_events_from("events", &request.events, self.app.now())?;
        // Compiling a document and classifying thousands of events are CPU work: both run
        // off the async workers, one caller at a time.
        let classified = if request.yaml.trim().is_empty() {
            let active = self.app.policies.current();
            self.app.policies.run(move || active.policy.classify_all(events)).await?
        } else {
            let given = self.app.policies.compile(&request.yaml).await?;
            self.app.policies.run(move || given.classify_all(events)).await?
        };
        let overall = classified.iter().fold(Health::Healthy, |worst, c| worst.worst(c.verdict.health));
        Ok(v1::TestPolicyResponse {
            verdicts: classified.iter().map(|c| convert::verdict(&c.verdict)).collect(),
            overall: convert::health(overall).into(),
            ..Default::default()
        })
    }
}

fn pool_name(text: &str) -> ApiResult<bosun_core::PoolName> {
    if text.is_empty() {
        return Err(ApiError::invalid("name", "is required"));
    }
    text.parse().map_err(|e: ValidationError| ApiError::Invalid(ValidationError::new("name", e.problem)))
}

fn rule_count(policy: &bosun_policy::Policy) -> u32 {
    u32::try_from(policy.rules().len()).unwrap_or(u32::MAX)
}

/// The change-log filter of ListEvents and WatchEvents.
pub(crate) fn change_filter(after_seq: u64, kind: &str, resource_id: &str, actor: &str) -> ApiResult<ChangeFilter> {
    let kind: Option<ResourceKind> = if kind.is_empty() { None } else { Some(kind.parse()?) };
    let resource_id = match (resource_id, kind) {
        ("", _) => None,
        (_, None) => {
            return Err(ApiError::invalid("resource_id", "needs kind (node, instance, command, pool or policy)"));
        }
        (id, Some(_)) if id.len() > 253 || id.chars().any(char::is_control) => {
            return Err(ApiError::invalid("resource_id", "must be at most 253 printable characters"));
        }
        (id, Some(_)) => Some(id.to_owned()),
    };
    let actor: Option<Actor> = if actor.is_empty() { None } else { Some(actor.parse()?) };
    Ok(ChangeFilter { after_seq, up_to_seq: None, kind, resource_id, actor })
}

impl v1::AdminService for AdminApi {
    async fn list_nodes(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListNodesRequest>,
    ) -> ServiceResult<v1::ListNodesResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_nodes(self, request.to_owned_message()).await?))
    }

    async fn get_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetNodeRequest>,
    ) -> ServiceResult<v1::GetNodeResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_node(self, request.to_owned_message()).await?))
    }

    async fn delete_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::DeleteNodeRequest>,
    ) -> ServiceResult<v1::DeleteNodeResponse> {
        let caller = allowed(&ctx, Permission::Admin)?;
        Ok(Response::new(AdminApi::delete_node(self, caller, request.to_owned_message()).await?))
    }

    async fn remediate_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::RemediateNodeRequest>,
    ) -> ServiceResult<v1::RemediateNodeResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::remediate_node(self, caller, request.to_owned_message()).await?))
    }

    async fn issue_command(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::IssueCommandRequest>,
    ) -> ServiceResult<v1::IssueCommandResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::issue_command(self, caller, request.to_owned_message()).await?))
    }

    async fn list_commands(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListCommandsRequest>,
    ) -> ServiceResult<v1::ListCommandsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_commands(self, request.to_owned_message()).await?))
    }

    async fn get_command(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetCommandRequest>,
    ) -> ServiceResult<v1::GetCommandResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_command(self, request.to_owned_message()).await?))
    }

    async fn cancel_command(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::CancelCommandRequest>,
    ) -> ServiceResult<v1::CancelCommandResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::cancel_command(self, caller, request.to_owned_message()).await?))
    }

    async fn list_instances(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListInstancesRequest>,
    ) -> ServiceResult<v1::ListInstancesResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_instances(self, request.to_owned_message()).await?))
    }

    async fn get_instance(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetInstanceRequest>,
    ) -> ServiceResult<v1::GetInstanceResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_instance(self, request.to_owned_message()).await?))
    }

    async fn get_health_history(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetHealthHistoryRequest>,
    ) -> ServiceResult<v1::GetHealthHistoryResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_health_history(self, request.to_owned_message()).await?))
    }

    async fn get_bootstrap_logs(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetBootstrapLogsRequest>,
    ) -> ServiceResult<v1::GetBootstrapLogsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_bootstrap_logs(self, request.to_owned_message()).await?))
    }

    async fn list_events(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListEventsRequest>,
    ) -> ServiceResult<v1::ListEventsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_events(self, request.to_owned_message()).await?))
    }

    async fn watch_events(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::WatchEventsRequest>,
    ) -> ServiceResult<ServiceStream<v1::ChangeEvent>> {
        allowed(&ctx, Permission::Read)?;
        let filter = self.watch_filter(&request.to_owned_message()).await?;
        Response::stream_ok(Box::pin(super::events::watch(Arc::clone(&self.app), filter)))
    }

    async fn list_replicas(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::ListReplicasRequest>,
    ) -> ServiceResult<v1::ListReplicasResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_replicas(self).await?))
    }

    async fn list_inventory(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListInventoryRequest>,
    ) -> ServiceResult<v1::ListInventoryResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(super::inventory::list(&self.app, request.to_owned_message()).await?))
    }

    async fn get_inventory(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetInventoryRequest>,
    ) -> ServiceResult<v1::GetInventoryResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(super::inventory::get(&self.app, request.to_owned_message()).await?))
    }

    async fn list_inventory_sources(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::ListInventorySourcesRequest>,
    ) -> ServiceResult<v1::ListInventorySourcesResponse> {
        allowed(&ctx, Permission::Read)?;
        let sources = super::inventory::sources(&self.app).await?;
        Ok(Response::new(v1::ListInventorySourcesResponse { sources, ..Default::default() }))
    }

    async fn list_inventory_syncs(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ListInventorySyncsRequest>,
    ) -> ServiceResult<v1::ListInventorySyncsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(super::inventory::syncs(&self.app, request.to_owned_message()).await?))
    }

    async fn sync_inventory(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SyncInventoryRequest>,
    ) -> ServiceResult<v1::SyncInventoryResponse> {
        allowed(&ctx, Permission::Command)?;
        Ok(Response::new(super::inventory::sync(&self.app, request.to_owned_message()).await?))
    }

    async fn list_pools(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::ListPoolsRequest>,
    ) -> ServiceResult<v1::ListPoolsResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::list_pools(self).await?))
    }

    async fn get_pool(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::GetPoolRequest>,
    ) -> ServiceResult<v1::GetPoolResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::get_pool(self, request.to_owned_message()).await?))
    }

    async fn scale_pool(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ScalePoolRequest>,
    ) -> ServiceResult<v1::ScalePoolResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::scale_pool(self, caller, request.to_owned_message()).await?))
    }

    async fn report_pool_demand(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ReportPoolDemandRequest>,
    ) -> ServiceResult<v1::ReportPoolDemandResponse> {
        allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::report_pool_demand(self, request.to_owned_message()).await?))
    }

    async fn inject_fault(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::InjectFaultRequest>,
    ) -> ServiceResult<v1::InjectFaultResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(AdminApi::inject_fault(self, caller, request.to_owned_message()).await?))
    }

    async fn get_policy(
        &self,
        ctx: RequestContext,
        _request: ServiceRequest<'_, v1::GetPolicyRequest>,
    ) -> ServiceResult<v1::GetPolicyResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(self.get_policy()))
    }

    async fn set_policy(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::SetPolicyRequest>,
    ) -> ServiceResult<v1::SetPolicyResponse> {
        let caller = allowed(&ctx, Permission::Admin)?;
        Ok(Response::new(AdminApi::set_policy(self, caller, request.to_owned_message()).await?))
    }

    async fn test_policy(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::TestPolicyRequest>,
    ) -> ServiceResult<v1::TestPolicyResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(AdminApi::test_policy(self, request.to_owned_message()).await?))
    }
}
