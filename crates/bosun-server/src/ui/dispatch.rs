//! The dashboard's actions go through the API itself: each is an in-process Connect call
//! (`inproc::call`) to the same service the port serves, as the signed-in caller (their
//! token as the bearer) from the browser's address, so authentication, permissions,
//! validation, the audit log and the RPC metrics are the API's own code, not a copy.

use axum::http::StatusCode;
use connectrpc::ConnectRpcService;

use super::session::Viewer;
use crate::app::App;
use crate::inproc::{self, CallError};
use crate::transport::Peer;

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
    let bearer = match viewer {
        Viewer::SignedIn(caller) => Some(app.auth.bearer_for(caller).ok_or_else(|| Refused {
            status: StatusCode::UNAUTHORIZED,
            message: "your token is no longer configured; sign in again".to_owned(),
        })?),
        Viewer::Open => None,
    };
    let request_id = format!("ui-{}", uuid::Uuid::now_v7());
    let who = inproc::As { bearer, peer, request_id: &request_id };
    inproc::call(connect, who, method, body).await.map_err(|error| match error {
        CallError::Refused { code, message } => {
            Refused { status: status_of(&code), message: format!("{code}: {message}") }
        }
        CallError::Failed(message) => Refused { status: StatusCode::INTERNAL_SERVER_ERROR, message },
    })
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
