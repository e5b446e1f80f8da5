//! Request bodies arrive in full within `api.request_body_timeout` and
//! `api.max_request_bytes`, or the request is answered with an error in the caller's
//! protocol.
//!
//! hyper bounds how long headers may take, but not a body: a client that sends headers
//! and then trickles (or withholds) its body would hold a request, a task and a buffer
//! for as long as it likes. Every bosun method takes one request message, so the body is
//! complete before the handler could use it anyway; reading it here costs nothing more.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use connectrpc::ErrorCode;
use http_body_util::BodyExt as _;

/// The bounds on one request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

pub(crate) async fn bounded_body(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_bytes);
    let bytes: Bytes = match tokio::time::timeout(limits.timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            let message = format!("the request body is larger than {} bytes (api.max_request_bytes)", limits.max_bytes);
            return closing(parts.version, error_response(&parts.headers, ErrorCode::ResourceExhausted, &message));
        }
        Ok(Err(error)) => {
            let message = format!("the request body could not be read: {error}");
            return error_response(&parts.headers, ErrorCode::InvalidArgument, &message);
        }
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {} s (api.request_body_timeout)",
                limits.timeout.as_secs_f64()
            );
            return closing(parts.version, error_response(&parts.headers, ErrorCode::DeadlineExceeded, &message));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// A response sent before the request's body was read in full. An HTTP/1.x connection
/// then cannot carry another request: `Connection: close` tells the client so, or it may
/// send its next request into the closing connection. (HTTP/2 resets just the stream, and
/// forbids the header.)
pub(crate) fn closing(version: axum::http::Version, mut response: Response) -> Response {
    if version < axum::http::Version::HTTP_2 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An error as the caller's protocol expects it: gRPC (trailers-only), Connect streaming
/// (an end-of-stream message) or Connect unary (a JSON error body with its HTTP status).
fn error_response(request: &HeaderMap, code: ErrorCode, message: &str) -> Response {
    let content_type = request.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let json = serde_json::json!({ "code": code.as_str(), "message": message });
    if content_type.starts_with("application/grpc") {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/grpc")),
        );
        headers.insert("grpc-status", HeaderValue::from(code.grpc_code()));
        headers.insert(
            "grpc-message",
            HeaderValue::from_str(&percent_encode(message)).unwrap_or(HeaderValue::from_static("")),
        );
        return response;
    }
    if content_type.starts_with("application/connect+") {
        let end = serde_json::to_vec(&serde_json::json!({ "error": json })).unwrap_or_default();
        let mut frame = Vec::with_capacity(end.len() + 5);
        frame.push(0x02);
        frame.extend_from_slice(&u32::try_from(end.len()).unwrap_or(u32::MAX).to_be_bytes());
        frame.extend_from_slice(&end);
        let content_type =
            HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/connect+json"));
        return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], frame).into_response();
    }
    (code.http_status(), [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json.to_string())
        .into_response()
}

/// gRPC's `grpc-message` encoding: printable ASCII but `%` as is, the rest percent-encoded.
fn percent_encode(message: &str) -> String {
    message
        .bytes()
        .map(|b| if (0x20..0x7f).contains(&b) && b != b'%' { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("50% in 1 s\u{e9}"), "50%25 in 1 s%C3%A9");
    }
}
