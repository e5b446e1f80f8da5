//! The dashboard's actions go through the API itself: each is a Connect call made
//! in-process to the same service the port serves, as the signed-in caller (their token as
//! the bearer) from the browser's address, so authentication, permissions, validation, the
//! audit log and the RPC metrics are the API's own code, not a copy.

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, StatusCode, header};
use connectrpc::ConnectRpcService;
use http_body_util::{BodyExt as _, Full};
use tower::ServiceExt as _;

use super::session::Viewer;
use crate::app::App;
use crate::transport::Peer;

/// Most bytes of an answer the dashboard reads.
const MAX_ANSWER: usize = 1 << 20;

/// What the API said instead of doing it.
#[derive(Debug)]
pub(super) struct Refused {
    /// The HTTP status the page answers with.
    pub status: StatusCode,
    pub message: String,
}

/// Calls `method` (`/bosun.v1.AdminService/IssueCommand`) with `body` as `viewer`.
pub(super) async fn call(
    app: &App,
    connect: &ConnectRpcService,
    viewer: &Viewer,
    peer: Option<Peer>,
    method: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Refused> {
    let internal = |message: String| Refused { status: StatusCode::INTERNAL_SERVER_ERROR, message };
    let mut request = Request::post(method)
        .header(header::CONTENT_TYPE, "application/json")
        .header("connect-protocol-version", "1")
        .header("x-request-id", format!("ui-{}", uuid::Uuid::now_v7()))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| internal(format!("the call could not be made: {e}")))?;
    if let Viewer::SignedIn(caller) = viewer {
        let secret = app.auth.bearer_for(caller).ok_or_else(|| Refused {
            status: StatusCode::UNAUTHORIZED,
            message: "your token is no longer configured; sign in again".to_owned(),
        })?;
        let bearer = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| internal("the token cannot be sent".to_owned()))?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer);
    }
    let response = connect.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
    let status = response.status();
    let bytes = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| internal(format!("the answer could not be read: {e}")))?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        return Ok(answer);
    }
    let code = answer["code"].as_str().unwrap_or("unknown");
    let message = answer["message"].as_str().unwrap_or("the API refused the call");
    Err(Refused { status: status_of(code), message: format!("{code}: {message}") })
}

/// The page's status for a Connect error code.
fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_argument" | "out_of_range" => StatusCode::BAD_REQUEST,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "permission_denied" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "already_exists" | "aborted" | "failed_precondition" => StatusCode::CONFLICT,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}
