//! The audit log's writer: every API call that changes something, and every call refused
//! for its credentials, is appended to the store's audit log (`audit_entries`) once its
//! answer is known.
//!
//! Calls are classified by method: [`mutation`] names the methods that change state and
//! how to read the resource each acts on from its (already decoded) request. Reads that
//! succeed are not audited; agents' routine calls (heartbeats, health reports, polls,
//! acks, workload reports) are not either: the change log records what they change, and
//! auditing them would write a row per heartbeat. Calls throttled for failed authentications are not written
//! (an attacker must not be able to make the server write at will).
//!
//! The entry is written after the call, in a transaction of its own: a crash between a
//! call's commit and its audit entry loses the entry (the change log still has the
//! change). A failure to write it is logged and counted, and never fails the call.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::HeaderValue;
use bosun_api::v1;
use bosun_core::{AuditEntry, AuditOutcome, Role};
use bosun_store::WriteBatch;
use connectrpc::interceptor::{StreamRequest, StreamResponse, UnaryRequest, UnaryResponse};
use connectrpc::{ConnectError, ErrorCode, Interceptor, Next, NextStream, PayloadStream, RequestContext};

use crate::app::App;
use crate::auth::Credential;
use crate::transport::Peer;

/// Writes audit entries for the calls that need one (see the module).
#[derive(Debug)]
pub(crate) struct Audit(pub Arc<App>);

/// Reads the resource a mutating call acts on from its request.
type ResourceOf = fn(&connectrpc::Payload) -> String;

fn field<M>(payload: &connectrpc::Payload, kind: &str, get: fn(&M) -> &str) -> String
where
    M: buffa::Message + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    payload.message::<M>().map(|m| format!("{kind}:{}", get(m))).unwrap_or_default()
}

/// The methods that change something, and how to name what they act on.
fn mutation(path: &str) -> Option<ResourceOf> {
    let method = path.trim_start_matches('/');
    Some(match method {
        "bosun.v1.AgentService/RegisterNode" => |p| field::<v1::RegisterRequest>(p, "node", |m| &m.node_id),
        "bosun.v1.AdminService/DeleteNode" => |p| field::<v1::DeleteNodeRequest>(p, "node", |m| &m.node_id),
        "bosun.v1.AdminService/RemediateNode" => |p| field::<v1::RemediateNodeRequest>(p, "node", |m| &m.node_id),
        "bosun.v1.AdminService/IssueCommand" => |p| field::<v1::IssueCommandRequest>(p, "node", |m| &m.node_id),
        "bosun.v1.AdminService/CancelCommand" => |p| field::<v1::CancelCommandRequest>(p, "command", |m| &m.command_id),
        "bosun.v1.AdminService/SyncInventory" => {
            |p| field::<v1::SyncInventoryRequest>(p, "inventory_source", |m| &m.source)
        }
        "bosun.v1.AdminService/ScalePool" => |p| field::<v1::ScalePoolRequest>(p, "pool", |m| &m.name),
        "bosun.v1.AdminService/ReportPoolDemand" => |p| field::<v1::ReportPoolDemandRequest>(p, "pool", |m| &m.pool),
        "bosun.v1.AdminService/InjectFault" => |p| field::<v1::InjectFaultRequest>(p, "node", |m| &m.node_id),
        "bosun.v1.AdminService/SetPolicy" => |_| "policy:active".to_owned(),
        "bosun.v1.OpsService/ApplyRunbook" => |_| "runbook".to_owned(),
        "bosun.v1.OpsService/StartRun" => |p| field::<v1::StartRunRequest>(p, "runbook", |m| &m.runbook),
        "bosun.v1.OpsService/CancelRun" => |p| field::<v1::CancelRunRequest>(p, "run", |m| &m.run_id),
        "bosun.v1.OpsService/ApproveRun" => |p| field::<v1::ApproveRunRequest>(p, "run", |m| &m.run_id),
        "bosun.v1.OpsService/RejectRun" => |p| field::<v1::RejectRunRequest>(p, "run", |m| &m.run_id),
        // Navarch's clients change things through two methods.
        "navarch.ControlPlaneService/RegisterNode" => {
            |p| field::<bosun_api::navarch::RegisterNodeRequest>(p, "node", |m| &m.node_id)
        }
        "navarch.ControlPlaneService/IssueCommand" => {
            |p| field::<bosun_api::navarch::IssueCommandRequest>(p, "node", |m| &m.node_id)
        }
        "bosun.v1.OpsService/SetApprovalPolicy" => |_| "approval_policy".to_owned(),
        "bosun.v1.OpsService/SetMcpEnabled" => |_| "setting:mcp.enabled".to_owned(),
        "bosun.v1.OpsService/SetToolEnabled" => |p| field::<v1::SetToolEnabledRequest>(p, "tool", |m| &m.name),
        "bosun.v1.OpsService/SetPricing" => |_| "pricing".to_owned(),
        // One entry per LLM request reported: they come at the pace of a model's answers,
        // not of heartbeats, and who reported what is what an operator asks afterwards.
        "bosun.v1.OpsService/RecordLlmUsage" => |p| {
            p.message::<v1::RecordLlmUsageRequest>()
                .map(|m| format!("llm_model:{}/{}", m.provider, m.model))
                .unwrap_or_default()
        },
        _ => return None,
    })
}

/// Whether an error refuses the caller (as opposed to failing the call).
fn is_refusal(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unauthenticated | ErrorCode::PermissionDenied)
}

/// What an audit entry needs of a request, taken before the request moves on: a few
/// cheap copies (the header values share the request's buffer, the method of a bosun.v1
/// call is a static name), not the whole context, as every call, heartbeats included,
/// passes here.
struct Call {
    method: Cow<'static, str>,
    authorization: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    peer: Option<Peer>,
}

impl Call {
    fn of(ctx: &RequestContext) -> Self {
        let path = ctx.path().unwrap_or_default();
        let method = match bosun_api::V1_METHODS.iter().find(|m| **m == path) {
            Some(known) => Cow::Borrowed(known.trim_start_matches('/')),
            None => Cow::Owned(path.trim_start_matches('/').to_owned()),
        };
        Call {
            method,
            authorization: ctx.header(axum::http::header::AUTHORIZATION).cloned(),
            request_id: ctx.header("x-request-id").cloned(),
            peer: ctx.extensions().get::<Peer>().copied(),
        }
    }
}

impl Audit {
    /// Who called, as the audit log names them: the token's name and role, the node of a
    /// node token, or `anonymous` (no token, or one that was refused).
    fn who(&self, call: &Call) -> (String, Option<Role>) {
        match self.0.auth.authenticate(call.authorization.as_ref().map(HeaderValue::as_bytes)) {
            Ok(Credential::Caller(caller)) => caller.audit_identity(),
            Ok(Credential::NodeToken { node, .. }) => (format!("node:{node}"), Some(Role::Agent)),
            Err(_) => ("anonymous".to_owned(), None),
        }
    }

    async fn record(&self, call: Call, resource: String, result: Result<(), &ConnectError>) {
        let (outcome, code, message) = match result {
            Ok(()) => (AuditOutcome::Ok, "ok".to_owned(), String::new()),
            Err(error) => (
                if is_refusal(error.code) { AuditOutcome::Refused } else { AuditOutcome::Failed },
                error.code.as_str().to_owned(),
                error.message.clone().unwrap_or_default().chars().take(1024).collect(),
            ),
        };
        let (actor, role) = self.who(&call);
        let request_id = call
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(128).collect())
            .unwrap_or_default();
        let entry = AuditEntry {
            actor,
            role,
            method: call.method.into_owned(),
            // A resource named by the caller (a node id, a model) is bounded like the message,
            // so an over-long one cannot keep its call out of the log.
            resource: resource.chars().take(512).collect(),
            outcome,
            code,
            message,
            request_id,
            peer: call.peer.map(|p| p.addr.to_string()),
        };
        let batch = WriteBatch::new(bosun_core::Actor::system("audit"), "audited call").append_audit(entry);
        if let Err(error) = self.0.store.commit(batch).await {
            self.0.metrics.audit_write_failed();
            tracing::warn!(%error, "an audit entry could not be written");
        }
    }
}

#[connectrpc::async_trait]
impl Interceptor for Audit {
    async fn intercept_unary(&self, req: UnaryRequest, next: Next<'_>) -> Result<UnaryResponse, ConnectError> {
        let resource_of = req.ctx.path().and_then(mutation);
        let call = Call::of(&req.ctx);
        // The body is read for its resource only once the call got past authentication and
        // the shape checks: a refused caller's bytes are never decoded here.
        let body = resource_of
            .map(|_| (req.payload.bytes().clone(), req.payload.format(), req.payload.decode_options().clone()));
        let answer = next.run(req).await;
        let resource = |(bytes, format, options)| {
            let payload = connectrpc::Payload::new(bytes, format).with_decode_options(options);
            resource_of.map(|of| of(&payload)).unwrap_or_default()
        };
        match &answer {
            Ok(_) if resource_of.is_some() => self.record(call, body.map(resource).unwrap_or_default(), Ok(())).await,
            Err(error) if is_refusal(error.code) => self.record(call, String::new(), Err(error)).await,
            Err(error) if resource_of.is_some() => {
                self.record(call, body.map(resource).unwrap_or_default(), Err(error)).await;
            }
            _ => {}
        }
        answer
    }

    async fn intercept_streaming(
        &self,
        req: StreamRequest,
        inbound: PayloadStream,
        next: NextStream<'_>,
    ) -> Result<StreamResponse, ConnectError> {
        // Streams only read (WatchEvents); only their refusals are audited.
        let call = Call::of(&req.ctx);
        let answer = next.run(req, inbound).await;
        if let Err(error) = &answer
            && is_refusal(error.code)
        {
            self.record(call, String::new(), Err(error)).await;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_known_by_method() {
        for path in [
            "/bosun.v1.AdminService/IssueCommand",
            "/bosun.v1.AdminService/SetPolicy",
            "/bosun.v1.OpsService/SetApprovalPolicy",
            "/bosun.v1.OpsService/SetPricing",
            "/bosun.v1.OpsService/RecordLlmUsage",
            "/bosun.v1.OpsService/SetMcpEnabled",
            "/bosun.v1.OpsService/SetToolEnabled",
            "/bosun.v1.OpsService/ApproveRun",
            "/bosun.v1.AgentService/RegisterNode",
            "/navarch.ControlPlaneService/IssueCommand",
        ] {
            assert!(mutation(path).is_some(), "{path}");
        }
        for path in [
            "/bosun.v1.AdminService/ListNodes",
            "/bosun.v1.AgentService/Heartbeat",
            "/bosun.v1.OpsService/GetRun",
            "/bosun.v1.OpsService/ListPricing",
            "/bosun.v1.OpsService/SummarizeUsage",
            "/bosun.v1.OpsService/ListTools",
            "/bosun.v1.OpsService/ListToolCalls",
            "/bosun.v1.OpsService/GetMcpStatus",
        ] {
            assert!(mutation(path).is_none(), "{path}");
        }
        assert!(is_refusal(ErrorCode::PermissionDenied) && !is_refusal(ErrorCode::ResourceExhausted));
    }
}
