//! The AgentService and AdminService handlers (and Navarch's service, mapped onto them):
//! thin layers that authenticate, convert and validate wire messages (bosun-api), call the operations in `nodes`, `commands` and
//! friends, and convert the answers back.

use std::sync::Arc;

use bosun_core::{NodeId, Timestamp, ValidationError};
use connectrpc::interceptor::{StreamRequest, StreamResponse, UnaryRequest, UnaryResponse};
use connectrpc::{ConnectError, Interceptor, Next, NextStream, PayloadStream};

use crate::app::App;
use crate::auth::{Caller, Credential};
use crate::error::{ApiError, ApiResult};
use crate::transport::Peer;

pub(crate) mod admin;
pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod body;
mod events;
mod inventory;
pub(crate) mod navarch;
pub(crate) mod ops;
pub(crate) mod shape;
mod usage;

/// Authenticates every RPC and attaches the [`Caller`](crate::auth::Caller) for the
/// handler, which checks what the caller may do with what it asked.
///
/// Before a token is looked at, the peer's failed-authentication allowance is checked
/// (429 with `Retry-After` when spent). A node token must belong to the node's current
/// registration (a deleted node's token is refused). With `api.tls.client_ca_file`,
/// AgentService calls must come over a connection with a verified client certificate.
#[derive(Debug)]
pub(crate) struct Authenticate(pub Arc<App>);

const AGENT_SERVICE_PREFIX: &str = "/bosun.v1.AgentService/";

/// Navarch's agent-facing methods, held to the same client-certificate rule.
const NAVARCH_AGENT_METHODS: [&str; 4] = [
    "/navarch.ControlPlaneService/RegisterNode",
    "/navarch.ControlPlaneService/ReportHealth",
    "/navarch.ControlPlaneService/SendHeartbeat",
    "/navarch.ControlPlaneService/GetNodeCommands",
];

/// Whether `path` is a call agents make (bosun's AgentService, or Navarch's agent methods).
fn is_agent_call(path: &str) -> bool {
    path.starts_with(AGENT_SERVICE_PREFIX) || NAVARCH_AGENT_METHODS.contains(&path)
}

impl Authenticate {
    async fn attach(&self, ctx: &mut connectrpc::RequestContext) -> Result<(), ConnectError> {
        let app = &self.0;
        let peer = ctx.extensions().get::<Peer>().copied();
        if let Some(peer) = peer
            && let Err(retry_after) = app.auth_limit.check(peer.addr.ip())
        {
            app.metrics.auth_throttled();
            let seconds = retry_after.as_secs().max(1);
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
            return Err(ConnectError::resource_exhausted(format!(
                "too many failed authentications from {}; retry in {seconds} s",
                peer.addr.ip()
            ))
            .with_http_status(axum::http::StatusCode::TOO_MANY_REQUESTS)
            .with_headers(headers));
        }
        if let Some(tls) = &app.tls
            && tls.requires_agent_certificates()
            && ctx.path().is_some_and(is_agent_call)
            && !peer.is_some_and(|peer| peer.client_certified)
        {
            return Err(ApiError::Unauthenticated(
                "this server requires agents to present a client certificate signed by its api.tls.client_ca_file; \
                 start the agent with --client-cert and --client-key"
                    .to_owned(),
            )
            .into());
        }
        let header = ctx.header(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        let resolved = match app.auth.authenticate(header.as_deref()) {
            Ok(Credential::Caller(caller)) => Ok(caller),
            Ok(Credential::NodeToken { node, registered_at }) => current_registration(app, node, registered_at).await,
            Err(error) => Err(error),
        };
        match resolved {
            Ok(caller) => {
                ctx.extensions_mut().insert(caller);
                Ok(())
            }
            Err(error) => {
                if matches!(error, ApiError::Unauthenticated(_)) {
                    app.metrics.auth_failed();
                    if let Some(peer) = peer {
                        app.auth_limit.failed(peer.addr.ip());
                    }
                }
                Err(error.into())
            }
        }
    }
}

/// The caller of a node token, if the token belongs to the node's current registration.
async fn current_registration(app: &App, node: NodeId, registered_at: Timestamp) -> ApiResult<Caller> {
    let current = match app.fleet.registered_at(&node) {
        Some(registered_at) => Some(registered_at),
        // Registered through another replica, or not at all.
        None => match app.store.node(&node).await {
            Ok(stored) => Some(stored.registered_at),
            Err(bosun_store::StoreError::NotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        },
    };
    match current {
        Some(current) if current == registered_at => Ok(Caller::Node(node)),
        Some(_) => Err(ApiError::Unauthenticated(format!(
            "the node token of {node} belongs to an earlier registration of the node (it was deleted); register it \
             again with an agent token"
        ))),
        None => Err(ApiError::Unauthenticated(format!(
            "the node token of {node} was revoked: the node was deleted; register it again with an agent token"
        ))),
    }
}

#[connectrpc::async_trait]
impl Interceptor for Authenticate {
    async fn intercept_unary(&self, mut req: UnaryRequest, next: Next<'_>) -> Result<UnaryResponse, ConnectError> {
        self.attach(&mut req.ctx).await?;
        next.run(req).await
    }

    async fn intercept_streaming(
        &self,
        mut req: StreamRequest,
        inbound: PayloadStream,
        next: NextStream<'_>,
    ) -> Result<StreamResponse, ConnectError> {
        self.attach(&mut req.ctx).await?;
        next.run(req, inbound).await
    }
}

/// The authenticated caller, if it holds `permission`.
fn allowed(ctx: &connectrpc::RequestContext, permission: crate::auth::Permission) -> ApiResult<&Caller> {
    let caller = crate::auth::caller(ctx)?;
    caller.require(permission)?;
    Ok(caller)
}

/// A page size: 0 means `default`, above `max` is refused.
fn page_size(field: &str, requested: u32, default: u32, max: u32) -> ApiResult<u32> {
    match requested {
        0 => Ok(default),
        n if n <= max => Ok(n),
        n => Err(ApiError::invalid(field, format_args!("{n} is above the maximum of {max}"))),
    }
}

/// A free-text filter value (provider, region): bounded like the fields it matches.
fn filter_text(field: &str, value: &str) -> ApiResult<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 253 || value.chars().any(char::is_control) {
        return Err(ApiError::Invalid(ValidationError::new(field, "must be at most 253 printable characters")));
    }
    Ok(Some(value.to_owned()))
}

/// An operator's reason: optional, bounded.
/// An optional identifier or name sent as text: empty means none, anything else must
/// parse, and the error names `field`.
fn parsed<T: std::str::FromStr<Err = ValidationError>>(field: &str, text: &str) -> ApiResult<Option<T>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e: ValidationError| ApiError::Invalid(ValidationError::new(field, e.problem)))
}

fn reason(value: &str) -> ApiResult<String> {
    if value.len() > 1024 || value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::invalid("reason", "must be at most 1024 printable characters"));
    }
    Ok(value.trim().to_owned())
}

fn page_token(token: &str) -> Option<bosun_store::Cursor> {
    (!token.is_empty()).then(|| bosun_store::Cursor::from_token(token))
}

fn next_token(next: Option<bosun_store::Cursor>) -> String {
    next.map(|c| c.as_token().to_owned()).unwrap_or_default()
}
