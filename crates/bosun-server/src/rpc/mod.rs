//! The AgentService and AdminService handlers (and Navarch's service, mapped onto them): thin layers that authenticate, convert and
//! validate wire messages (bosun-api), call the operations in `nodes`, `commands` and
//! friends, and convert the answers back.

use std::sync::Arc;

use bosun_core::ValidationError;
use connectrpc::interceptor::{StreamRequest, StreamResponse, UnaryRequest, UnaryResponse};
use connectrpc::{ConnectError, Interceptor, Next, NextStream, PayloadStream};

use crate::auth::Authenticator;
use crate::error::{ApiError, ApiResult};

pub(crate) mod admin;
pub(crate) mod agent;
mod events;
pub(crate) mod navarch;

/// Authenticates every RPC and attaches the [`Caller`](crate::auth::Caller) for the
/// handler, which checks what the caller may do with what it asked.
#[derive(Debug)]
pub(crate) struct Authenticate(pub Arc<Authenticator>);

impl Authenticate {
    fn attach(&self, ctx: &mut connectrpc::RequestContext) -> Result<(), ConnectError> {
        let header = ctx.header(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        let caller = self.0.authenticate(header.as_deref())?;
        ctx.extensions_mut().insert(caller);
        Ok(())
    }
}

#[connectrpc::async_trait]
impl Interceptor for Authenticate {
    async fn intercept_unary(&self, mut req: UnaryRequest, next: Next<'_>) -> Result<UnaryResponse, ConnectError> {
        self.attach(&mut req.ctx)?;
        next.run(req).await
    }

    async fn intercept_streaming(
        &self,
        mut req: StreamRequest,
        inbound: PayloadStream,
        next: NextStream<'_>,
    ) -> Result<StreamResponse, ConnectError> {
        self.attach(&mut req.ctx)?;
        next.run(req, inbound).await
    }
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
