//! Signing in to the dashboard: an operator or admin token, typed once into `/ui/login`,
//! becomes a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, 8 hours),
//! signed with the token's own secret (`Authenticator::sign_session`), so nothing is stored
//! and every replica accepts it. Agent tokens cannot sign in. A form that changes anything
//! must come from the dashboard's own pages (`same_origin`). Every sign-in, refused or
//! not, and every sign-out is an entry in the audit log (methods `bosun.ui/SignIn` and
//! `bosun.ui/SignOut`), as an API call is.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use bosun_core::{AuditEntry, AuditOutcome};
use bosun_store::WriteBatch;

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

/// A page's viewer, taken from its request: a request without a valid session on a
/// server with tokens is sent to sign in, and back to this page after.
impl axum::extract::FromRequestParts<Arc<App>> for Viewer {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &Arc<App>) -> Result<Self, SignIn> {
        let here = parts.uri.path_and_query().map_or("/ui/", |path| path.as_str());
        viewer(app, &parts.headers, here)
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

/// What the audit log says of a sign-in or sign-out: who (when known) and how it ended.
struct Attempt<'a> {
    method: &'static str,
    who: Option<&'a Caller>,
    peer: Option<Peer>,
    /// `None`: done; else the refusal's code and message.
    refused: Option<(&'static str, &'a str)>,
}

/// Writes `attempt` to the audit log; a failure to write is logged and counted, as for an
/// API call, and does not change the answer.
async fn audit(app: &App, attempt: Attempt<'_>) {
    let (actor, role) = attempt.who.map_or_else(|| ("anonymous".to_owned(), None), Caller::audit_identity);
    let (outcome, code, message) = match attempt.refused {
        None => (AuditOutcome::Ok, "ok", ""),
        Some((code, message)) => (AuditOutcome::Refused, code, message),
    };
    let entry = AuditEntry {
        actor,
        role,
        method: attempt.method.to_owned(),
        resource: String::new(),
        outcome,
        code: code.to_owned(),
        message: message.to_owned(),
        request_id: String::new(),
        peer: attempt.peer.map(|peer| peer.addr.to_string()),
    };
    let batch = WriteBatch::new(bosun_core::Actor::system("audit"), "dashboard sign-in").append_audit(entry);
    if let Err(error) = app.store.commit(batch).await {
        app.metrics.audit_write_failed();
        tracing::warn!(%error, "an audit entry could not be written");
    }
}

const SIGN_IN: &str = "bosun.ui/SignIn";
const SIGN_OUT: &str = "bosun.ui/SignOut";

pub(super) async fn sign_in(
    State(app): State<Arc<App>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.auth.is_open() {
        return Redirect::to("/ui/").into_response();
    }
    let peer = extensions.get::<Peer>().copied();
    let attempt = |who, refused| Attempt { method: SIGN_IN, who, peer, refused };
    if !same_origin(&headers) {
        const CROSS_SITE: &str = "cross-site request refused: sign in from this server's own page";
        audit(&app, attempt(None, Some(("permission_denied", CROSS_SITE)))).await;
        return super::forbidden(CROSS_SITE);
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
    let ip: Option<IpAddr> = peer.map(|peer| peer.addr.ip());
    if let Some(ip) = ip
        && app.auth_limit.check(ip).is_err()
    {
        app.metrics.auth_throttled();
        const THROTTLED: &str = "too many failed sign-ins from this address; wait and try again";
        audit(&app, attempt(None, Some(("resource_exhausted", THROTTLED)))).await;
        return refuse(StatusCode::TOO_MANY_REQUESTS, THROTTLED);
    }
    let header = format!("Bearer {token}");
    let caller = match app.auth.authenticate(Some(header.as_bytes())) {
        Ok(Credential::Caller(caller @ (Caller::Operator { .. } | Caller::Admin { .. }))) => caller,
        Ok(credential) => {
            const AGENT: &str = "agent tokens cannot sign in to the dashboard";
            let who = match &credential {
                Credential::Caller(caller) => Some(caller.clone()),
                Credential::NodeToken { node, .. } => Some(Caller::Node(node.clone())),
            };
            audit(&app, attempt(who.as_ref(), Some(("permission_denied", AGENT)))).await;
            return refuse(StatusCode::FORBIDDEN, AGENT);
        }
        Err(_) => {
            app.metrics.auth_failed();
            if let Some(ip) = ip {
                app.auth_limit.failed(ip);
            }
            const INVALID: &str = "the token is not valid here";
            audit(&app, attempt(None, Some(("unauthenticated", INVALID)))).await;
            return refuse(StatusCode::UNAUTHORIZED, INVALID);
        }
    };
    let Some(session) = app.auth.sign_session(&caller, app.now() + SESSION_TTL) else {
        const UNSIGNABLE: &str = "this token cannot sign in to the dashboard";
        audit(&app, attempt(Some(&caller), Some(("permission_denied", UNSIGNABLE)))).await;
        return refuse(StatusCode::FORBIDDEN, UNSIGNABLE);
    };
    tracing::info!(actor = %caller.actor(), "signed in to the dashboard");
    audit(&app, attempt(Some(&caller), None)).await;
    let secure = if app.settings.tls.is_some() { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={session}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs());
    set_cookie_and_go(&cookie, &next)
}

pub(super) async fn sign_out(State(app): State<Arc<App>>, extensions: Extensions, headers: HeaderMap) -> Response {
    let peer = extensions.get::<Peer>().copied();
    let who = cookie(&headers).and_then(|value| app.auth.verify_session(value, app.now()));
    if !same_origin(&headers) {
        const CROSS_SITE: &str = "cross-site request refused: sign out from this server's own page";
        let refused = Some(("permission_denied", CROSS_SITE));
        audit(&app, Attempt { method: SIGN_OUT, who: who.as_ref(), peer, refused }).await;
        return super::forbidden(CROSS_SITE);
    }
    if who.is_some() {
        audit(&app, Attempt { method: SIGN_OUT, who: who.as_ref(), peer, refused: None }).await;
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
