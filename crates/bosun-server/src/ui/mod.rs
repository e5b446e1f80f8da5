//! The web dashboard at `/ui/`, served on the API port.
//!
//! Pages are rendered on the server from askama templates (`templates/`, compiled into the
//! binary and type-checked with it, every value HTML-escaped); the one stylesheet
//! (`static/bosun.css`) is compiled in too, so the dashboard needs no network access and no
//! JavaScript toolchain. Every answer carries a strict Content-Security-Policy: no inline
//! script or style, nothing from another origin.
//!
//! On a server with `auth.tokens` every page needs a signed-in operator or admin
//! (`session`); on an open server everyone may look, and every page says the server is open.
//! Its reads use the store and the fleet view as the API's handlers do.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::ApiError;

mod actions;
mod commands;
mod dispatch;
mod events;
mod live;
mod nodes;
mod overview;
mod pools;
mod session;

/// What a dashboard answer may load: its own stylesheet and (later) scripts, nothing inline,
/// nothing from elsewhere; it may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../static/bosun.css");
const SCRIPT: &str = include_str!("../../static/bosun.js");

/// The dashboard's routes, to be merged into the API port's router; `connect` is the
/// port's own API service, which the dashboard's actions call.
pub(crate) fn router(app: Arc<App>, connect: connectrpc::ConnectRpcService) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/nodes", get(nodes::list))
        .route("/ui/nodes/{id}", get(nodes::get))
        .route("/ui/nodes/{id}/live", get(live::node))
        .route("/ui/nodes/{id}/{action}", get(actions::confirm).post(actions::act))
        .route("/ui/commands", get(commands::page))
        .route("/ui/events", get(events::page))
        .route("/ui/events/live", get(events::live))
        .route("/ui/pools", get(pools::list))
        .route("/ui/pools/{name}", get(pools::get))
        .route("/ui/pools/{name}/scale", get(pools::confirm_scale).post(pools::scale))
        .route("/ui/login", get(session::form).post(session::sign_in))
        .route("/ui/logout", axum::routing::post(session::sign_out))
        // Forms are small; anything larger is not one of ours.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::Extension(connect))
        .route("/ui/static/bosun.css", get(stylesheet))
        .route("/ui/static/bosun.js", get(script))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], STYLESHEET)
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], SCRIPT)
        .into_response()
}

/// Fills `fields` from a page's query string (`key=value&...`), each value trimmed; other
/// keys are ignored, as a browser's form may send more than a page reads.
fn query_fields<const N: usize>(query: Option<&str>, mut fields: [(&str, &mut String); N]) {
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if let Some((_, field)) = fields.iter_mut().find(|(name, _)| *name == key) {
            **field = value.trim().to_owned();
        }
    }
}

/// A rendered page; pages show the fleet as it is now, so none is cached.
fn page(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => {
            (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html)
                .into_response()
        }
        Err(error) => {
            tracing::error!("a dashboard page could not be rendered: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered; the server log says why\n")
                .into_response()
        }
    }
}

/// What a page shows when the store cannot answer: the one line the API would give.
fn unavailable(error: &ApiError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        format!("the store cannot be read: {error}\n"),
    )
        .into_response()
}

/// A page naming what is wrong with a request.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    banner: Banner,
    title: &'a str,
    message: &'a str,
}

fn bad_request(message: &str) -> Response {
    page(&ErrorPage { banner: Banner::default(), title: "Bad request", message }, StatusCode::BAD_REQUEST)
}

fn not_found(message: &str) -> Response {
    page(&ErrorPage { banner: Banner::default(), title: "Not found", message }, StatusCode::NOT_FOUND)
}

/// What the top of every page says about who is looking.
#[derive(Debug, Default)]
struct Banner {
    /// The server checks no tokens.
    open: bool,
    /// The actor of the signed-in token.
    signed_in: Option<String>,
}

fn forbidden(message: &str) -> Response {
    page(&ErrorPage { banner: Banner::default(), title: "Refused", message }, StatusCode::FORBIDDEN)
}
