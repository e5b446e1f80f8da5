//! A scripted stand-in for a cloud API, for the providers' tests: an axum server on
//! 127.0.0.1:0 that records every request and answers from replies queued per route.
//!
//! A route is `"METHOD /path"`; for form-encoded requests with an `Action` parameter (the
//! EC2 Query API, where every call is `POST /`) it is `"POST / Action"`. Each queued reply
//! is used once, except the last, which repeats. A request with no reply gets a 599 that
//! names the route, so a missing script shows in the failing assertion.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: body.to_string() }
    }

    pub(crate) fn xml(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/xml;charset=UTF-8", body: body.to_owned() }
    }

    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/plain", body: body.to_owned() }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) route: String,
    pub(crate) query: Option<String>,
    /// Lowercase names.
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub(crate) fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

#[derive(Default)]
struct MockState {
    replies: Mutex<HashMap<String, VecDeque<Reply>>>,
    requests: Mutex<Vec<Recorded>>,
}

pub(crate) struct MockApi {
    pub(crate) url: String,
    state: Arc<MockState>,
}

impl MockApi {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(MockState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://{address}"), state }
    }

    /// Queues `reply` for `route` (see the module docs).
    pub(crate) fn on(&self, route: &str, reply: Reply) -> &Self {
        self.state.replies.lock().unwrap().entry(route.to_owned()).or_default().push_back(reply);
        self
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests made to `route`.
    pub(crate) fn requests_to(&self, route: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.route == route).collect()
    }
}

async fn handle(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut route = format!("{method} {}", uri.path());
    let form_encoded = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form_encoded && let Some((_, action)) = url::form_urlencoded::parse(&body).find(|(k, _)| k == "Action") {
        route = format!("{route} {action}");
    }
    let recorded = Recorded {
        route: route.clone(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
    };
    state.requests.lock().unwrap().push(recorded);
    let reply = {
        let mut replies = state.replies.lock().unwrap();
        match replies.get_mut(&route) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    match reply {
        Some(reply) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", reply.content_type)],
            reply.body,
        )
            .into_response(),
        None => (
            StatusCode::from_u16(599).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            format!("mock: no reply for {route}"),
        )
            .into_response(),
    }
}

/// An address nothing listens on (bound, then released), for connection-refused tests.
pub(crate) async fn closed_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{address}")
}

/// The provider entry `entry` (flow YAML, e.g. `{type: aws, region: us-east-1}`) as the
/// configuration resolves it, defaults and validation included.
pub(crate) fn provider_config(entry: &str) -> bosun_config::ProviderConfig {
    let config = bosun_config::Config::from_yaml_str(&format!("providers:\n  p: {entry}\n"), |_| None)
        .unwrap_or_else(|e| panic!("{entry}: {e}"));
    config.providers["p"].clone()
}

pub(crate) fn aws_config(entry: &str) -> bosun_config::AwsConfig {
    match provider_config(entry) {
        bosun_config::ProviderConfig::Aws(aws) => aws,
        other => panic!("{entry} is {other:?}"),
    }
}

pub(crate) fn gcp_config(entry: &str) -> bosun_config::GcpConfig {
    match provider_config(entry) {
        bosun_config::ProviderConfig::Gcp(gcp) => gcp,
        other => panic!("{entry} is {other:?}"),
    }
}

pub(crate) fn lambda_config(entry: &str) -> bosun_config::LambdaConfig {
    match provider_config(entry) {
        bosun_config::ProviderConfig::Lambda(lambda) => lambda,
        other => panic!("{entry} is {other:?}"),
    }
}

pub(crate) fn proxmox_config(entry: &str) -> bosun_config::ProxmoxConfig {
    match provider_config(entry) {
        bosun_config::ProviderConfig::Proxmox(proxmox) => proxmox,
        other => panic!("{entry} is {other:?}"),
    }
}

/// A provisioning request for `id` with a bootstrap token the tests look for.
pub(crate) fn provision_request(id: &str, instance_type: &str, region: &str, zone: &str) -> crate::ProvisionRequest {
    let mut labels = bosun_core::Labels::new();
    labels.insert("team", "ml").expect("valid label");
    crate::ProvisionRequest {
        instance_id: id.parse().expect("valid instance id"),
        pool: Some("training".parse().expect("valid pool name")),
        instance_type: instance_type.to_owned(),
        region: region.to_owned(),
        zone: zone.to_owned(),
        labels,
        bootstrap: crate::Bootstrap {
            server_url: "https://bosun.example:6443".to_owned(),
            token: Some("agent-token-123".to_owned()),
        },
        image: None,
        ssh: crate::SshAccess::default(),
    }
}
