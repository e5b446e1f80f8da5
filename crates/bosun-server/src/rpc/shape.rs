//! The shape of a request before it is decoded: JSON bodies must be objects, and streaming
//! methods need a streaming content type.
//!
//! Generated messages decode JSON through serde's derive, which also accepts an array
//! and fills fields by position (`["n1"]` registered node `n1`). Connect and gRPC-JSON
//! only define objects, so anything else is refused as `invalid_argument` before decoding.
//! A streaming method called with a unary content type (`application/json`) is a
//! protocol mistake the client can fix: 415, naming the content types that work, rather
//! than connectrpc's 501 "unimplemented".

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bosun_api::v1;
use connectrpc::interceptor::{StreamRequest, StreamResponse, UnaryRequest, UnaryResponse};
use connectrpc::{CodecFormat, ConnectError, Interceptor, Next as NextUnary, NextStream, Payload, PayloadStream};
use futures::StreamExt as _;

/// Methods whose requests or responses stream.
const STREAMING: &[&str] = &[v1::ADMIN_SERVICE_WATCH_EVENTS_SPEC.procedure];

/// Refuses JSON messages that are not objects.
#[derive(Debug)]
pub(crate) struct JsonObjectsOnly;

fn check(payload: &Payload) -> Result<(), ConnectError> {
    if payload.format() != CodecFormat::Json {
        return Ok(());
    }
    match payload.bytes().iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => Err(ConnectError::invalid_argument(
            "the request body must be a JSON object ({\"field\": value, ...}); arrays and other values are not messages",
        )),
        None => Err(ConnectError::invalid_argument("the request body is empty; send a JSON object ({} for defaults)")),
    }
}

#[connectrpc::async_trait]
impl Interceptor for JsonObjectsOnly {
    async fn intercept_unary(&self, req: UnaryRequest, next: NextUnary<'_>) -> Result<UnaryResponse, ConnectError> {
        check(&req.payload)?;
        next.run(req).await
    }

    async fn intercept_streaming(
        &self,
        req: StreamRequest,
        inbound: PayloadStream,
        next: NextStream<'_>,
    ) -> Result<StreamResponse, ConnectError> {
        let checked = inbound.map(|payload| payload.and_then(|p| check(&p).map(|()| p)));
        next.run(req, Box::pin(checked)).await
    }
}

/// Answers 415 to a streaming method called with a unary Connect content type.
pub(crate) async fn streaming_content_type(request: Request, next: Next) -> Response {
    if STREAMING.contains(&request.uri().path()) {
        let media = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if let Some(media @ ("application/json" | "application/proto")) = media.as_deref() {
            let message = format!(
                "{} streams its response: {media} is the unary Connect content type; use application/connect+json, \
                 application/connect+proto or gRPC\n",
                request.uri().path()
            );
            let accepted =
                HeaderValue::from_static("application/connect+json, application/connect+proto, application/grpc");
            let response = (StatusCode::UNSUPPORTED_MEDIA_TYPE, [(header::ACCEPT, accepted)], message).into_response();
            // Answered before the body was read.
            return super::body::closing(request.version(), response);
        }
    }
    next.run(request).await
}
