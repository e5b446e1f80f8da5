//! The guard in front of rmcp's Streamable HTTP service: whatever arrives at `/mcp`, the
//! answer is a JSON-RPC error with a status below 500, or what rmcp serves.
//!
//! In order: the configuration's kill switch (`mcp.enabled: false` → 503); the
//! failed-authentication limiter per address (429, shared with the API); the bearer token
//! (401, counted by that limiter; agent and node tokens 403); the per-token rate limit
//! (429 with `Retry-After`); a session id opened by another token (403). A POST's body is read within
//! `api.max_request_bytes` and `api.request_body_timeout` and must be one JSON-RPC message
//! rmcp can decode (-32700 when not JSON, -32600 for a bad shape, -32602 for a known
//! method's bad params), and every request but `initialize` must name its session. Then
//! the stored kill switch (`bosun mcp disable` → 503 naming who, when and why, with the
//! request's id so that an MCP client's call fails at once; read from the store on every
//! request, so every replica sees it at once; a store that cannot be read → 503 too),
//! only for requests that passed authentication (an open server's anonymous callers
//! included), so a refused token causes no store read and never learns the reason. rmcp's
//! own refusals (plain text) are rewritten as JSON-RPC errors keeping their status; a 5xx
//! becomes 503. Successful answers, event streams included, pass through untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientNotification, ClientRequest, ErrorCode, InitializeRequestParams,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::{Value, json};

use super::McpCaller;
use super::limit::TokenRateLimiter;
use crate::app::App;
use crate::auth::{Caller, Credential};
use crate::error::ApiError;
use crate::rpc::body::closing;
use crate::transport::Peer;

/// The header naming a session.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
/// JSON-RPC's range for server errors: refusals that are not about the message itself.
const SERVER_ERROR: i32 = -32000;
/// Most bytes of a refusal of rmcp's that are read to be rewritten.
const MAX_REFUSAL: usize = 64 * 1024;
/// Sessions remembered before the ones rmcp has closed are forgotten.
const SESSIONS_BEFORE_SWEEP: usize = 1024;

/// The methods MCP defines that a client sends; a message naming one that rmcp cannot
/// decode has bad params.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

#[derive(Debug)]
pub(crate) struct Guard {
    app: Arc<App>,
    limit: TokenRateLimiter,
    /// Who opened each session: its token's name.
    owners: Mutex<HashMap<String, String>>,
    sessions: Arc<LocalSessionManager>,
}

impl Guard {
    pub(crate) fn new(app: Arc<App>, sessions: Arc<LocalSessionManager>) -> Self {
        let limit = TokenRateLimiter::new(Arc::clone(&app.clock), app.settings.mcp.rate_limit_per_second);
        Self { app, limit, owners: Mutex::new(HashMap::new()), sessions }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `owner` as the token that opened `session`, first forgetting sessions rmcp
    /// has closed (idle, deleted) once many are remembered.
    async fn bind(&self, session: String, owner: String) {
        if self.owners().len() >= SESSIONS_BEFORE_SWEEP {
            let open: std::collections::HashSet<String> =
                self.sessions.sessions.read().await.keys().map(|id| id.to_string()).collect();
            self.owners().retain(|id, _| open.contains(id));
        }
        self.owners().insert(session, owner);
    }
}

/// The middleware.
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let app = &guard.app;
    if !app.settings.mcp.enabled {
        return jsonrpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::Null,
            SERVER_ERROR,
            "bosun's MCP server is disabled by the configuration (mcp.enabled: false)",
        );
    }
    let peer = request.extensions().get::<Peer>().copied();
    let ip = peer.map(|peer| peer.addr.ip());
    if let Some(ip) = ip
        && let Err(retry_after) = app.auth_limit.check(ip)
    {
        app.metrics.auth_throttled();
        let seconds = retry_after.as_secs().max(1);
        let message = format!("too many failed authentications from {ip}; retry in {seconds} s");
        return with_retry_after(
            jsonrpc_error(StatusCode::TOO_MANY_REQUESTS, Value::Null, SERVER_ERROR, &message),
            seconds,
        );
    }
    let authorization = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    let caller = match app.auth.authenticate(authorization.as_deref()) {
        Ok(Credential::Caller(caller @ (Caller::Anonymous | Caller::Operator { .. } | Caller::Admin { .. }))) => caller,
        Ok(_) => {
            return jsonrpc_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                SERVER_ERROR,
                "agent and node tokens cannot use MCP; use an operator or admin token",
            );
        }
        Err(error) => {
            if matches!(error, ApiError::Unauthenticated(_)) {
                app.metrics.auth_failed();
                if let Some(ip) = ip {
                    app.auth_limit.failed(ip);
                }
            }
            let mut response = jsonrpc_error(StatusCode::UNAUTHORIZED, Value::Null, SERVER_ERROR, &error.to_string());
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    // The token's name (agent and node tokens were refused above), or `anonymous`.
    let (owner, _) = caller.audit_identity();
    if let Err(retry_after) = guard.limit.check(&owner) {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let message = format!(
            "token {owner:?} made more than {} MCP requests per second (mcp.rate_limit_per_second); retry in {seconds} s",
            app.settings.mcp.rate_limit_per_second
        );
        return with_retry_after(
            jsonrpc_error(StatusCode::TOO_MANY_REQUESTS, Value::Null, SERVER_ERROR, &message),
            seconds,
        );
    }
    let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(session) = &session
        && guard.owners().get(session).is_some_and(|opened_by| *opened_by != owner)
    {
        return jsonrpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            ErrorCode::INVALID_REQUEST.0,
            "this MCP session was opened with another token; initialize a session of your own",
        );
    }

    let method = request.method().clone();
    let (mut parts, body) = request.into_parts();
    let mut id = Value::Null;
    let mut initialize = false;
    let body = if method == Method::POST {
        if !is_json(&parts.headers) {
            return jsonrpc_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Value::Null,
                ErrorCode::INVALID_REQUEST.0,
                "Content-Type must be application/json",
            );
        }
        let bytes = match read_body(app, parts.version, body).await {
            Ok(bytes) => bytes,
            Err(response) => return response,
        };
        match classify(&bytes) {
            Ok(message) => {
                id = message.id;
                initialize = message.initialize;
            }
            Err(refusal) => return jsonrpc_error(refusal.status, refusal.id, refusal.code, &refusal.message),
        }
        if session.is_none() && !initialize {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorCode::INVALID_REQUEST.0,
                "no Mcp-Session-Id header: send initialize first and then the session id it answered with",
            );
        }
        Body::from(bytes)
    } else {
        body
    };
    // The stored kill switch, once the request's id is known: an MCP client matches the
    // JSON-RPC error to its request by that id.
    match super::switch::read(app).await {
        Ok((stored, _)) if stored.enabled => {}
        Ok((stored, _)) => {
            return jsonrpc_error(StatusCode::SERVICE_UNAVAILABLE, id, SERVER_ERROR, &stored.refusal());
        }
        Err(error) => {
            tracing::warn!(%error, "the MCP kill switch could not be read from the store");
            return jsonrpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                SERVER_ERROR,
                "bosun cannot read its store to check the MCP kill switch (mcp.enabled); try again later",
            );
        }
    }
    let bearer = app.auth.bearer_for(&caller).map(str::to_owned);
    parts.extensions.insert(McpCaller { caller, bearer });

    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if status.is_success() {
        if initialize && let Some(opened) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            guard.bind(opened.to_owned(), owner).await;
        } else if method == Method::DELETE
            && let Some(session) = &session
        {
            guard.owners().remove(session);
        }
        return response;
    }
    rewrite(response, id).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// The body, whole, within the API's bounds.
async fn read_body(app: &App, version: axum::http::Version, body: Body) -> Result<Bytes, Response> {
    let max = app.settings.max_request_bytes;
    let timeout = app.settings.request_body_timeout;
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            let message = format!("the request body is larger than {max} bytes (api.max_request_bytes)");
            Err(closing(
                version,
                jsonrpc_error(StatusCode::PAYLOAD_TOO_LARGE, Value::Null, ErrorCode::INVALID_REQUEST.0, &message),
            ))
        }
        Ok(Err(error)) => Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            ErrorCode::PARSE_ERROR.0,
            &format!("the request body could not be read: {error}"),
        )),
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {} s (api.request_body_timeout)",
                timeout.as_secs_f64()
            );
            Err(closing(
                version,
                jsonrpc_error(StatusCode::REQUEST_TIMEOUT, Value::Null, ErrorCode::INVALID_REQUEST.0, &message),
            ))
        }
    }
}

/// What the guard learnt from a message it lets through.
#[derive(Debug, PartialEq)]
pub(crate) struct Message {
    /// The request's id (null for a notification or response).
    pub id: Value,
    /// An `initialize` request.
    pub initialize: bool,
}

/// Why a body is refused.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub id: Value,
    pub code: i32,
    pub message: String,
}

/// Checks that `body` is one JSON-RPC message rmcp decodes.
pub(crate) fn classify(body: &[u8]) -> Result<Message, Refusal> {
    let refuse = |id: &Value, code: ErrorCode, message: String| Refusal {
        status: StatusCode::BAD_REQUEST,
        id: id.clone(),
        code: code.0,
        message,
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(&Value::Null, ErrorCode::PARSE_ERROR, format!("Parse error: the body is not JSON: {e}")))?;
    let Value::Object(map) = &value else {
        let message = if value.is_array() {
            "batches are not supported: send one JSON-RPC message per request".to_owned()
        } else {
            "a JSON-RPC message must be an object".to_owned()
        };
        return Err(refuse(&Value::Null, ErrorCode::INVALID_REQUEST, message));
    };
    let id = match map.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(_) => {
            return Err(refuse(&Value::Null, ErrorCode::INVALID_REQUEST, "id must be a string or a number".to_owned()));
        }
        None => Value::Null,
    };
    if map.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(refuse(&id, ErrorCode::INVALID_REQUEST, "jsonrpc must be \"2.0\"".to_owned()));
    }
    let method = match map.get("method") {
        Some(Value::String(method)) => Some(method.clone()),
        Some(_) => return Err(refuse(&id, ErrorCode::INVALID_REQUEST, "method must be a string".to_owned())),
        None if map.contains_key("result") || map.contains_key("error") => None,
        None => {
            return Err(refuse(
                &id,
                ErrorCode::INVALID_REQUEST,
                "a message needs a method (a request or notification), or a result or error (a response)".to_owned(),
            ));
        }
    };
    if map.get("params").is_some_and(|params| !params.is_object()) {
        return Err(refuse(&id, ErrorCode::INVALID_REQUEST, "params must be an object".to_owned()));
    }
    let params = map.get("params").cloned();
    let message = serde_json::from_value::<ClientJsonRpcMessage>(value).map_err(|error| match &method {
        Some(method) if KNOWN_METHODS.contains(&method.as_str()) => {
            refuse(&id, ErrorCode::INVALID_PARAMS, format!("invalid params for {method}: {error}"))
        }
        _ => refuse(&id, ErrorCode::INVALID_REQUEST, format!("not a JSON-RPC message MCP defines: {error}")),
    })?;
    // rmcp decodes a message it cannot read as its method's as a custom one, which its
    // handler would answer "method not found": a known method there had bad params.
    let custom = match &message {
        ClientJsonRpcMessage::Request(request) => matches!(request.request, ClientRequest::CustomRequest(_)),
        ClientJsonRpcMessage::Notification(notification) => {
            matches!(notification.notification, ClientNotification::CustomNotification(_))
        }
        _ => false,
    };
    if let Some(method) = method.filter(|m| custom && KNOWN_METHODS.contains(&m.as_str())) {
        let params = params.unwrap_or(Value::Null);
        let problem = match method.as_str() {
            "initialize" => serde_json::from_value::<InitializeRequestParams>(params).err(),
            "tools/call" => serde_json::from_value::<CallToolRequestParams>(params).err(),
            _ => None,
        };
        let problem = problem.map_or_else(|| "they do not match the method's".to_owned(), |e| e.to_string());
        return Err(refuse(&id, ErrorCode::INVALID_PARAMS, format!("invalid params for {method}: {problem}")));
    }
    let initialize = matches!(
        &message,
        ClientJsonRpcMessage::Request(request) if matches!(request.request, ClientRequest::InitializeRequest(_))
    );
    Ok(Message { id, initialize })
}

/// A refusal of rmcp's as a JSON-RPC error: a 4xx keeps its status and headers, a 5xx
/// becomes 503. A JSON-RPC error rmcp answered itself passes through.
async fn rewrite(response: Response, id: Value) -> Response {
    let (parts, body) = response.into_parts();
    let is_json = is_json(&parts.headers);
    if is_json && parts.status.is_client_error() {
        return Response::from_parts(parts, body);
    }
    let text = match http_body_util::Limited::new(body, MAX_REFUSAL).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    if parts.status.is_server_error() || !parts.status.is_client_error() {
        tracing::warn!(status = %parts.status, answer = %text, "the MCP service failed a request");
        return jsonrpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            ErrorCode::INTERNAL_ERROR.0,
            "the MCP session could not be served; initialize a new session",
        );
    }
    let message = if text.is_empty() { parts.status.to_string() } else { text };
    let mut rewritten = jsonrpc_error(parts.status, id, ErrorCode::INVALID_REQUEST.0, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// A JSON-RPC error answered with `status`.
pub(crate) fn jsonrpc_error(status: StatusCode, id: Value, code: i32, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bodies_are_classified() {
        let refused = |body: &str| classify(body.as_bytes()).map(|_| ()).expect_err(body);
        let cases: &[(&str, i32)] = &[
            ("", -32700),
            ("{", -32700),
            ("not json", -32700),
            ("[]", -32600),
            ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600),
            ("5", -32600),
            ("null", -32600),
            ("{}", -32600),
            ("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600),
            ("{\"id\":1,\"method\":\"ping\"}", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":1}", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":5}", -32600),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":5}}", -32602),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", -32602),
            ("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":[]}}", -32602),
        ];
        for (body, code) in cases {
            let refusal = refused(body);
            assert_eq!((refusal.status, refusal.code), (StatusCode::BAD_REQUEST, *code), "{body}: {refusal:?}");
        }
        assert_eq!(refused("{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"ping\"}").id, json!(7), "the id is echoed");
        let bad_call = refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":5}}");
        assert!(bad_call.message.contains("invalid type"), "{}", bad_call.message);

        let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
        assert_eq!(classify(initialize.as_bytes()), Ok(Message { id: json!(1), initialize: true }));
        let list = r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#;
        assert_eq!(classify(list.as_bytes()), Ok(Message { id: json!("a"), initialize: false }));
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(classify(initialized.as_bytes()), Ok(Message { id: Value::Null, initialize: false }));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_a_client_error_or_a_message(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(refusal) = classify(&body) {
                prop_assert!(refusal.status.is_client_error());
            }
        }

        #[test]
        fn arbitrary_json_is_a_client_error_or_a_message(
            method in "[a-z/]{0,20}",
            id in prop_oneof![Just(json!(1)), Just(json!("x")), Just(json!(null)), Just(json!([1]))],
            params in prop_oneof![Just(json!({})), Just(json!(5)), Just(json!({"name": 1})), Just(json!({"protocolVersion": "x"}))],
        ) {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
            if let Err(refusal) = classify(body.as_bytes()) {
                prop_assert!(refusal.status.is_client_error());
            }
        }
    }
}
