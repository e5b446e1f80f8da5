//! Signing in to the dashboard: an operator or admin token, typed once into `/ui/login`,
//! becomes a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, 8 hours),
//! signed with the token's own secret (`Authenticator::sign_session`), so nothing is stored
//! and every replica accepts it. Agent tokens cannot sign in. A form that changes anything
//! must come from the dashboard's own pages (`same_origin`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Banner;
use crate::app::App;
use crate::auth::{Caller, Credential};
use crate::transport::Peer;

/// The session cookie's name.
const COOKIE: &str = "bosun_session";
/// How long a sign-in lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Who looks at a page.
pub(super) enum Viewer {
    /// The server checks no tokens: everyone may look.
    Open,
    /// Signed in with an operator or admin token.
    SignedIn(Caller),
}

impl Viewer {
    pub(super) fn banner(&self) -> Banner {
        match self {
            Viewer::Open => Banner { open: true, signed_in: None },
            Viewer::SignedIn(caller) => Banner { open: false, signed_in: Some(caller.actor().to_string()) },
        }
    }
}

/// The way to the sign-in page, coming back to the page asked for.
pub(super) struct SignIn {
    location: String,
}

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to(&self.location).into_response()
    }
}

/// The viewer of a page at `path`, or the way to the sign-in page.
pub(super) fn viewer(app: &App, headers: &HeaderMap, path: &str) -> Result<Viewer, SignIn> {
    if app.auth.is_open() {
        return Ok(Viewer::Open);
    }
    cookie(headers)
        .and_then(|value| app.auth.verify_session(value, app.now()))
        .map(Viewer::SignedIn)
        .ok_or_else(|| SignIn { location: format!("/ui/login?{}", next_query(path)) })
}

fn next_query(path: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("next", path).finish()
}

/// The session cookie's value in a request, if it carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

/// Whether a form was posted by a page of this server: the browser says so
/// (`Sec-Fetch-Site`), or, for one that does not, its `Origin` is this host. A request
/// with neither is refused: browsers send one of them with every form.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    banner: Banner,
    next: &'a str,
    error: Option<&'a str>,
}

/// Where to go after signing in: a dashboard page, never another site.
fn next_page(query: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "next")
        .map(|(_, value)| value.into_owned())
        .filter(|next| next.starts_with("/ui/") && !next.starts_with("//"))
        .unwrap_or_else(|| "/ui/".to_owned())
}

pub(super) async fn form(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    if app.auth.is_open() {
        return Redirect::to("/ui/").into_response();
    }
    let next = next_page(query.as_deref().unwrap_or_default());
    super::page(&LoginPage { banner: Banner::default(), next: &next, error: None }, StatusCode::OK)
}

pub(super) async fn sign_in(
    State(app): State<Arc<App>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.auth.is_open() {
        return Redirect::to("/ui/").into_response();
    }
    if !same_origin(&headers) {
        return super::forbidden("cross-site request refused: sign in from this server's own page");
    }
    let form = std::str::from_utf8(&body).unwrap_or_default();
    let next = next_page(form);
    let token = url::form_urlencoded::parse(form.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let refuse = |status, error: &str| {
        super::page(&LoginPage { banner: Banner::default(), next: &next, error: Some(error) }, status)
    };
    let peer: Option<IpAddr> = extensions.get::<Peer>().map(|peer| peer.addr.ip());
    if let Some(ip) = peer
        && app.auth_limit.check(ip).is_err()
    {
        app.metrics.auth_throttled();
        return refuse(StatusCode::TOO_MANY_REQUESTS, "too many failed sign-ins from this address; wait and try again");
    }
    let header = format!("Bearer {token}");
    let caller = match app.auth.authenticate(Some(header.as_bytes())) {
        Ok(Credential::Caller(caller @ (Caller::Operator { .. } | Caller::Admin { .. }))) => caller,
        Ok(_) => return refuse(StatusCode::FORBIDDEN, "agent tokens cannot sign in to the dashboard"),
        Err(_) => {
            app.metrics.auth_failed();
            if let Some(ip) = peer {
                app.auth_limit.failed(ip);
            }
            return refuse(StatusCode::UNAUTHORIZED, "the token is not valid here");
        }
    };
    let Some(session) = app.auth.sign_session(&caller, app.now() + SESSION_TTL) else {
        return refuse(StatusCode::FORBIDDEN, "this token cannot sign in to the dashboard");
    };
    tracing::info!(actor = %caller.actor(), "signed in to the dashboard");
    let secure = if app.settings.tls.is_some() { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={session}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs());
    set_cookie_and_go(&cookie, &next)
}

pub(super) async fn sign_out(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return super::forbidden("cross-site request refused: sign out from this server's own page");
    }
    set_cookie_and_go(&format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"), "/ui/login")
}

fn set_cookie_and_go(cookie: &str, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => super::forbidden("the session could not be written"),
    }
}
