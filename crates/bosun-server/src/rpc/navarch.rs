//! `navarch.ControlPlaneService`: Navarch's API, so navarch-node agents and the navarch CLI
//! keep working while a fleet moves to bosun. Every call is translated into its bosun.v1
//! request (bosun-api's `navarch_wire`) and handled by the AgentService or AdminService
//! code, so validation, auth roles, the change log and metrics are the same.
//!
//! Two things differ from bosun's own agents:
//! - **Identity.** Navarch agents carry one shared token and never a node token. An
//!   unpinned agent token may therefore act for any node here, but only while
//!   `auth.node_token_key` is unset: without the key a node token derives from the shared
//!   token anyway, so this grants nothing new. With the key, each Navarch agent needs a
//!   token pinned to its node (`auth.tokens[].node`).
//! - **Outcomes.** Navarch agents never report how a command went. GetNodeCommands hands
//!   out the due commands and finishes them at once: SUCCEEDED (the agent runs cordon,
//!   drain, diagnostics and terminate as it receives them), or FAILED for those it has no
//!   handler for (REBOOT, RESET_GPU, custom), so a remediation ladder moves on instead of
//!   waiting for its deadline. Delivery is at most once, as in Navarch.

use std::sync::Arc;
use std::time::Duration;

use bosun_api::{convert, navarch, navarch_wire, v1};
use bosun_core::{InstanceId, NodeId};
use bosun_store::{StoreError, query};
use buffa::MessageField;
use connectrpc::{RequestContext, Response, ServiceRequest, ServiceResult};

use super::admin::AdminApi;
use super::agent::AgentApi;
use crate::app::App;
use crate::auth::{self, Caller, Permission};
use crate::commands::{self, AckOutcome};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone)]
pub(crate) struct NavarchApi {
    app: Arc<App>,
    agent: AgentApi,
    admin: AdminApi,
}

/// What a command handed to a Navarch agent is finished with.
const DELIVERED: &str = "delivered to a Navarch agent, which reports no outcome";

impl NavarchApi {
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self { agent: AgentApi::new(Arc::clone(&app)), admin: AdminApi::new(Arc::clone(&app)), app }
    }

    /// The request context with the caller a Navarch agent call acts as: a shared agent
    /// token becomes the node it names (see the module docs for when that is allowed).
    fn as_node(&self, mut ctx: RequestContext, node_id: &str) -> ApiResult<(RequestContext, NodeId)> {
        let node = convert::node_id("node_id", node_id)?;
        let caller = auth::caller(&ctx)?.clone();
        if let Caller::Agent { node: None, name } = &caller {
            if self.app.auth.guards_reregistration() {
                return Err(ApiError::PermissionDenied(format!(
                    "agent token {name:?} is shared, and a Navarch agent presenting it cannot act for node {node} \
                     while auth.node_token_key is set; give each Navarch agent a token pinned to its node \
                     (auth.tokens[].node), or run bosun's agent"
                )));
            }
            ctx.extensions_mut().insert(Caller::Node(node.clone()));
        }
        Ok((ctx, node))
    }

    async fn register(
        &self,
        ctx: RequestContext,
        request: navarch::RegisterNodeRequest,
    ) -> ApiResult<navarch::RegisterNodeResponse> {
        // Navarch names a provisioned machine's node after its instance.
        let instance = match InstanceId::new(&request.node_id) {
            Ok(id) => match self.app.store.instance(&id).await {
                Ok(instance) if instance.node_id.is_none() => Some(instance.id.to_string()),
                Ok(_) | Err(StoreError::NotFound { .. }) => None,
                Err(error) => return Err(error.into()),
            },
            Err(_) => None,
        };
        let request = navarch_wire::register_request(&request, instance)?;
        let response = self.agent.register(&ctx, request).await?;
        Ok(navarch_wire::register_response(&response))
    }

    async fn heartbeat(
        &self,
        ctx: RequestContext,
        request: navarch::HeartbeatRequest,
    ) -> ApiResult<navarch::HeartbeatResponse> {
        let (ctx, _) = self.as_node(ctx, &request.node_id)?;
        self.agent.heartbeat(&ctx, navarch_wire::heartbeat_request(&request)?).await?;
        Ok(navarch::HeartbeatResponse { acknowledged: true, ..Default::default() })
    }

    async fn report_health(
        &self,
        ctx: RequestContext,
        request: navarch::ReportHealthRequest,
    ) -> ApiResult<navarch::ReportHealthResponse> {
        let (ctx, _) = self.as_node(ctx, &request.node_id)?;
        let response = self.agent.report_health(&ctx, navarch_wire::report_health_request(&request)).await?;
        Ok(navarch_wire::report_health_response(&response))
    }

    async fn node_commands(
        &self,
        ctx: RequestContext,
        request: navarch::GetNodeCommandsRequest,
    ) -> ApiResult<navarch::GetNodeCommandsResponse> {
        let (ctx, node) = self.as_node(ctx, &request.node_id)?;
        auth::caller(&ctx)?.act_for(&node, false)?;
        self.agent.known(&node).await?;
        // Navarch agents poll every few seconds; they do not wait for commands.
        let due = commands::poll(&self.app, &node, Duration::ZERO).await?;
        let mut handed_out = Vec::with_capacity(due.len());
        for command in &due {
            let (outcome, message) = match navarch_wire::node_command(command) {
                Ok(wire) => {
                    handed_out.push(wire);
                    (AckOutcome::Succeeded, DELIVERED.to_owned())
                }
                Err(why) => (AckOutcome::Failed, why),
            };
            commands::ack(&self.app, &node, &command.id, outcome, &message, Default::default()).await?;
        }
        Ok(navarch::GetNodeCommandsResponse { commands: handed_out, ..Default::default() })
    }

    async fn list_nodes(&self, request: navarch::ListNodesRequest) -> ApiResult<navarch::ListNodesResponse> {
        let statuses = navarch_wire::node_status_filter(request.status)?;
        // Navarch lists every match in one answer.
        let filters: Vec<Option<v1::NodeStatus>> =
            if statuses.is_empty() { vec![None] } else { statuses.into_iter().map(Some).collect() };
        let mut nodes = Vec::new();
        for status in filters {
            let mut page_token = String::new();
            loop {
                let page = self
                    .admin
                    .list_nodes(v1::ListNodesRequest {
                        provider: request.provider.clone(),
                        region: request.region.clone(),
                        status: status.map(Into::into).unwrap_or_default(),
                        page_size: query::MAX_PAGE_SIZE,
                        page_token,
                        ..Default::default()
                    })
                    .await?;
                nodes.extend(page.nodes.iter().map(navarch_wire::node_info));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        Ok(navarch::ListNodesResponse { nodes, ..Default::default() })
    }

    async fn get_node(&self, request: navarch::GetNodeRequest) -> ApiResult<navarch::GetNodeResponse> {
        let response =
            self.admin.get_node(v1::GetNodeRequest { node_id: request.node_id.clone(), ..Default::default() }).await?;
        let node = response.node.as_option().map(navarch_wire::node_info).unwrap_or_default();
        Ok(navarch::GetNodeResponse { node: MessageField::some(node), ..Default::default() })
    }

    async fn issue_command(
        &self,
        caller: &Caller,
        request: navarch::IssueCommandRequest,
    ) -> ApiResult<navarch::IssueCommandResponse> {
        let response = self.admin.issue_command(caller, navarch_wire::issue_command_request(&request)?).await?;
        let command = response.command.as_option().cloned().unwrap_or_default();
        Ok(navarch_wire::issue_command_response(&command))
    }

    async fn list_instances(
        &self,
        request: navarch::ListInstancesRequest,
    ) -> ApiResult<navarch::ListInstancesResponse> {
        let mut instances = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .admin
                .list_instances(v1::ListInstancesRequest {
                    provider: request.provider.clone(),
                    region: request.region.clone(),
                    states: navarch_wire::instance_state_filter(request.state),
                    pool: request.pool_name.clone(),
                    page_size: query::MAX_PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?;
            instances.extend(page.instances.iter().map(navarch_wire::instance_info));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(navarch::ListInstancesResponse { instances, ..Default::default() })
    }

    async fn get_instance(&self, request: navarch::GetInstanceRequest) -> ApiResult<navarch::GetInstanceResponse> {
        let request = v1::GetInstanceRequest { instance_id: request.instance_id.clone(), ..Default::default() };
        let response = self.admin.get_instance(request).await?;
        let instance = response.instance.as_option().map(navarch_wire::instance_info).unwrap_or_default();
        Ok(navarch::GetInstanceResponse { instance: MessageField::some(instance), ..Default::default() })
    }
}

fn allowed(ctx: &RequestContext, permission: Permission) -> ApiResult<&Caller> {
    let caller = auth::caller(ctx)?;
    caller.require(permission)?;
    Ok(caller)
}

impl navarch::ControlPlaneService for NavarchApi {
    async fn register_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::RegisterNodeRequest>,
    ) -> ServiceResult<navarch::RegisterNodeResponse> {
        Ok(Response::new(self.register(ctx, request.to_owned_message()).await?))
    }

    async fn report_health(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::ReportHealthRequest>,
    ) -> ServiceResult<navarch::ReportHealthResponse> {
        Ok(Response::new(NavarchApi::report_health(self, ctx, request.to_owned_message()).await?))
    }

    async fn send_heartbeat(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::HeartbeatRequest>,
    ) -> ServiceResult<navarch::HeartbeatResponse> {
        Ok(Response::new(self.heartbeat(ctx, request.to_owned_message()).await?))
    }

    async fn get_node_commands(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::GetNodeCommandsRequest>,
    ) -> ServiceResult<navarch::GetNodeCommandsResponse> {
        Ok(Response::new(self.node_commands(ctx, request.to_owned_message()).await?))
    }

    async fn list_nodes(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::ListNodesRequest>,
    ) -> ServiceResult<navarch::ListNodesResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(NavarchApi::list_nodes(self, request.to_owned_message()).await?))
    }

    async fn get_node(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::GetNodeRequest>,
    ) -> ServiceResult<navarch::GetNodeResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(NavarchApi::get_node(self, request.to_owned_message()).await?))
    }

    async fn issue_command(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::IssueCommandRequest>,
    ) -> ServiceResult<navarch::IssueCommandResponse> {
        let caller = allowed(&ctx, Permission::Command)?;
        Ok(Response::new(NavarchApi::issue_command(self, caller, request.to_owned_message()).await?))
    }

    async fn list_instances(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::ListInstancesRequest>,
    ) -> ServiceResult<navarch::ListInstancesResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(NavarchApi::list_instances(self, request.to_owned_message()).await?))
    }

    async fn get_instance(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, navarch::GetInstanceRequest>,
    ) -> ServiceResult<navarch::GetInstanceResponse> {
        allowed(&ctx, Permission::Read)?;
        Ok(Response::new(NavarchApi::get_instance(self, request.to_owned_message()).await?))
    }
}
