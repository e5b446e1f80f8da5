//! In-process calls to the API: a Connect call (JSON) made to the same service the port
//! serves, as a given bearer token and from a given peer, so authentication, permissions,
//! validation, the audit log and the RPC metrics are the API's own code, not a copy. The
//! dashboard's actions (`ui/dispatch.rs`) and the MCP server's tools (`mcp/tools.rs`) both
//! act through it.

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, header};
use connectrpc::ConnectRpcService;
use http_body_util::{BodyExt as _, Full};
use tower::ServiceExt as _;

use crate::transport::Peer;

/// Most bytes of an answer read back.
const MAX_ANSWER: usize = 1 << 20;

/// Why a call gave no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The API answered with an error: its Connect code (`not_found`) and message.
    Refused { code: String, message: String },
    /// The call could not be made or its answer read.
    Failed(String),
}

/// Who a call is made as and where it comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct As<'a> {
    /// The token sent as `Authorization: Bearer ...`; none on an open server's anonymous calls.
    pub bearer: Option<&'a str>,
    /// The address of whoever the call is made for, for the audit log and the limiter.
    pub peer: Option<Peer>,
    /// Sent as `x-request-id`, so the audit entry names where the call came from.
    pub request_id: &'a str,
}

/// Calls `method` (`/bosun.v1.AdminService/GetNode`) with `body` as `who`; the answer's JSON.
pub(crate) async fn call(
    connect: &ConnectRpcService,
    who: As<'_>,
    method: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, CallError> {
    let mut request = Request::post(method)
        .header(header::CONTENT_TYPE, "application/json")
        .header("connect-protocol-version", "1")
        .header("x-request-id", who.request_id)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| CallError::Failed(format!("the call could not be made: {e}")))?;
    if let Some(secret) = who.bearer {
        let bearer = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| CallError::Failed("the token cannot be sent".to_owned()))?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    if let Some(peer) = who.peer {
        request.extensions_mut().insert(peer);
    }
    let response = connect.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
    let status = response.status();
    let bytes = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| CallError::Failed(format!("the answer could not be read: {e}")))?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        return Ok(answer);
    }
    let code = answer["code"].as_str().unwrap_or("unknown").to_owned();
    let message = answer["message"].as_str().unwrap_or("the API refused the call").to_owned();
    Err(CallError::Refused { code, message })
}
