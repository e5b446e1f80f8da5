//! AgentService: what node agents call.

use std::sync::Arc;
use std::time::Duration;

use bosun_api::{convert, v1};
use bosun_core::{Actor, CommandId, InstanceId, NodeId, ValidationError};
use bosun_store::StoreError;
use buffa::MessageField;
use connectrpc::{RequestContext, Response, ServiceRequest, ServiceResult};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::commands::{self, AckOutcome};
use crate::error::{ApiError, ApiResult};
use crate::{inventory_agent, nodes, workloads};

use bosun_core::health::{MAX_REPORT_EVENTS as MAX_EVENTS, MAX_REPORT_RESULTS as MAX_RESULTS};

#[derive(Debug, Clone)]
pub(crate) struct AgentApi {
    app: Arc<App>,
}

impl AgentApi {
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The node a request is for, checked against the caller.
    fn node_for<'c>(ctx: &'c RequestContext, node_id: &str) -> ApiResult<(&'c Caller, NodeId)> {
        let caller = auth::caller(ctx)?;
        let node = convert::node_id("node_id", node_id)?;
        caller.act_for(&node, false)?;
        Ok((caller, node))
    }

    /// Errors for a node this server does not know, phrased so the agent registers again.
    pub(crate) fn unknown(node: &NodeId) -> ApiError {
        ApiError::NotFound(format!("node {node} is not registered; register it again"))
    }

    /// Makes sure the fleet view knows `node` (it may have registered through another
    /// replica).
    pub(crate) async fn known(&self, node: &NodeId) -> ApiResult<()> {
        if self.app.fleet.contains(node) {
            return Ok(());
        }
        match self.app.store.node(node).await {
            Ok(stored) => {
                self.app.fleet.upsert(&stored);
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => Err(Self::unknown(node)),
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) async fn register(
        &self,
        ctx: &RequestContext,
        request: v1::RegisterRequest,
    ) -> ApiResult<v1::RegisterResponse> {
        let caller = auth::caller(ctx)?;
        let registration = convert::registration(&request)?;
        caller.act_for(&registration.node_id, true)?;
        let instance = match request.instance_id.as_str() {
            "" => None,
            id => Some(InstanceId::new(id).map_err(|e| ValidationError::new("instance_id", e.problem))?),
        };
        let actor = Actor::Node(registration.node_id.clone());
        let existing = match caller {
            Caller::Agent { node: None, .. } if self.app.auth.guards_reregistration() => nodes::Reregistration::Refused,
            _ => nodes::Reregistration::Allowed,
        };
        let registered = nodes::register(&self.app, &registration, instance.as_ref(), &actor, existing).await?;
        let settings = &self.app.settings;
        let node = &registered.node;
        if registered.created {
            tracing::info!(node = %node.id, gpus = node.gpu_count, "node registered");
        }
        Ok(v1::RegisterResponse {
            config: MessageField::some(v1::NodeConfig {
                heartbeat_interval_seconds: whole_seconds(settings.heartbeat_interval),
                health_check_interval_seconds: whole_seconds(settings.health_check_interval),
                enabled_health_checks: Vec::new(),
                server_time: MessageField::some(convert::timestamp(self.app.now())),
                command_poll_wait_seconds: whole_seconds(settings.command_poll_wait),
                inventory_interval_seconds: whole_seconds(settings.inventory_interval),
                ..Default::default()
            }),
            status: convert::node_status(node.status).into(),
            health: convert::health(node.health).into(),
            created: registered.created,
            node_token: self.app.auth.node_token(caller, &node.id, node.registered_at),
            ..Default::default()
        })
    }

    pub(crate) async fn heartbeat(
        &self,
        ctx: &RequestContext,
        request: v1::HeartbeatRequest,
    ) -> ApiResult<v1::HeartbeatResponse> {
        let (_, node) = Self::node_for(ctx, &request.node_id)?;
        let now = self.app.now();
        // The server's clock stamps heartbeats and samples: an agent's clock is not trusted.
        let sample = request.metrics.as_option().map(|m| convert::metric_sample(node.clone(), now, m)).transpose()?;
        if let Err(sample) = self.app.fleet.heartbeat(&node, now, sample) {
            // Registered through another replica, or before a reload: look it up once.
            self.known(&node).await?;
            if self.app.fleet.heartbeat(&node, now, sample).is_err() {
                return Err(Self::unknown(&node));
            }
        }
        self.app.metrics.heartbeat();
        Ok(v1::HeartbeatResponse { server_time: MessageField::some(convert::timestamp(now)), ..Default::default() })
    }

    pub(crate) async fn report_health(
        &self,
        ctx: &RequestContext,
        request: v1::ReportHealthRequest,
    ) -> ApiResult<v1::ReportHealthResponse> {
        let (_, node) = Self::node_for(ctx, &request.node_id)?;
        if request.events.len() > MAX_EVENTS {
            return Err(ApiError::invalid(
                "events",
                format_args!("has {} events; send at most {MAX_EVENTS} per report", request.events.len()),
            ));
        }
        if request.results.len() > MAX_RESULTS {
            return Err(ApiError::invalid(
                "results",
                format_args!("has {} results; send at most {MAX_RESULTS} per report", request.results.len()),
            ));
        }
        let now = self.app.now();
        let results = convert::check_results_from("results", &request.results)?;
        let events = convert::health_events_from("events", &request.events, now)?;
        let outcome = match nodes::report_health(&self.app, &node, results, events).await {
            Err(ApiError::Store(StoreError::NotFound { .. })) => return Err(Self::unknown(&node)),
            other => other?,
        };
        Ok(v1::ReportHealthResponse {
            status: convert::node_status(outcome.node.status).into(),
            health: convert::health(outcome.node.health).into(),
            verdicts: outcome.verdicts.iter().map(convert::verdict).collect(),
            ..Default::default()
        })
    }

    async fn poll_commands(
        &self,
        ctx: &RequestContext,
        request: v1::PollCommandsRequest,
    ) -> ApiResult<v1::PollCommandsResponse> {
        let (_, node) = Self::node_for(ctx, &request.node_id)?;
        self.known(&node).await?;
        let wait = Duration::from_secs(u64::from(request.wait_seconds));
        let commands = commands::poll(&self.app, &node, wait).await?;
        Ok(v1::PollCommandsResponse {
            commands: commands.iter().map(convert::node_command).collect(),
            ..Default::default()
        })
    }

    async fn ack_command(
        &self,
        ctx: &RequestContext,
        request: v1::AckCommandRequest,
    ) -> ApiResult<v1::AckCommandResponse> {
        let (_, node) = Self::node_for(ctx, &request.node_id)?;
        if request.command_id.is_empty() {
            return Err(ApiError::invalid("command_id", "is required"));
        }
        let id: CommandId =
            request.command_id.parse().map_err(|e: ValidationError| ValidationError::new("command_id", e.problem))?;
        let outcome = match request.outcome.as_known() {
            Some(v1::AckOutcome::ACK_OUTCOME_ACCEPTED) => AckOutcome::Accepted,
            Some(v1::AckOutcome::ACK_OUTCOME_SUCCEEDED) => AckOutcome::Succeeded,
            Some(v1::AckOutcome::ACK_OUTCOME_FAILED) => AckOutcome::Failed,
            Some(v1::AckOutcome::ACK_OUTCOME_UNSPECIFIED) => return Err(ApiError::invalid("outcome", "is required")),
            None => return Err(ApiError::invalid("outcome", format_args!("{} is not a known value", request.outcome))),
        };
        // Checked here under the names the caller sent; the command stores them as its
        // outcome message and result.
        bosun_core::validation::check_text("message", &request.message)?;
        let details = request.details.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        bosun_core::command::check_map("details", &details)?;
        let state = commands::ack(&self.app, &node, &id, outcome, &request.message, details).await?;
        Ok(v1::AckCommandResponse { state: convert::command_state(state).into(), ..Default::default() })
    }

    async fn report_workloads(
        &self,
        ctx: &RequestContext,
        request: v1::ReportWorkloadsRequest,
    ) -> ApiResult<v1::ReportWorkloadsResponse> {
        let (_, node) = Self::node_for(ctx, &request.node_id)?;
        let reported = convert::workloads_from(&node, &request.workloads).map_err(|error| match error {
            convert::WorkloadReportError::TooMany { .. } => ApiError::ResourceExhausted(error.to_string()),
            convert::WorkloadReportError::Invalid(error) => ApiError::Invalid(error),
        })?;
        self.known(&node).await?;
        let at = self.app.now();
        inventory_agent::sync_node_workloads(&self.app, &node, at, workloads::reported(reported)).await?;
        Ok(v1::ReportWorkloadsResponse::default())
    }
}

fn whole_seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX).max(1)
}

impl v1::AgentService for AgentApi {
    async fn register_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::RegisterRequest>,
    ) -> ServiceResult<v1::RegisterResponse> {
        Ok(Response::new(self.register(&ctx, request.to_owned_message()).await?))
    }

    async fn heartbeat(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::HeartbeatRequest>,
    ) -> ServiceResult<v1::HeartbeatResponse> {
        Ok(Response::new(AgentApi::heartbeat(self, &ctx, request.to_owned_message()).await?))
    }

    async fn report_health(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ReportHealthRequest>,
    ) -> ServiceResult<v1::ReportHealthResponse> {
        Ok(Response::new(AgentApi::report_health(self, &ctx, request.to_owned_message()).await?))
    }

    async fn poll_commands(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::PollCommandsRequest>,
    ) -> ServiceResult<v1::PollCommandsResponse> {
        Ok(Response::new(AgentApi::poll_commands(self, &ctx, request.to_owned_message()).await?))
    }

    async fn ack_command(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::AckCommandRequest>,
    ) -> ServiceResult<v1::AckCommandResponse> {
        Ok(Response::new(AgentApi::ack_command(self, &ctx, request.to_owned_message()).await?))
    }

    async fn report_workloads(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, v1::ReportWorkloadsRequest>,
    ) -> ServiceResult<v1::ReportWorkloadsResponse> {
        Ok(Response::new(AgentApi::report_workloads(self, &ctx, request.to_owned_message()).await?))
    }
}
