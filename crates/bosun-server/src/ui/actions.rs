//! Acting on a node from its page: cordon, uncordon, drain, diagnose, terminate. `GET
//! /ui/nodes/{id}/{action}` asks for confirmation (and a reason); the confirmed form, posted
//! from this server's own page only, becomes the API's IssueCommand (`dispatch`), and the
//! browser goes back to the node's page.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bosun_core::NodeId;
use connectrpc::ConnectRpcService;

use super::Banner;
use super::dispatch::{self, Refused};
use super::session::{self, Viewer};
use crate::app::App;
use crate::transport::Peer;

/// What an operator may do to a node from the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeAction {
    Cordon,
    Uncordon,
    Drain,
    Diagnose,
    Terminate,
}

impl NodeAction {
    pub(super) const ALL: [NodeAction; 5] =
        [NodeAction::Cordon, NodeAction::Uncordon, NodeAction::Drain, NodeAction::Diagnose, NodeAction::Terminate];

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.path() == text)
    }

    /// Its segment of the URL.
    pub(super) fn path(self) -> &'static str {
        match self {
            NodeAction::Cordon => "cordon",
            NodeAction::Uncordon => "uncordon",
            NodeAction::Drain => "drain",
            NodeAction::Diagnose => "diagnose",
            NodeAction::Terminate => "terminate",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            NodeAction::Cordon => "Cordon",
            NodeAction::Uncordon => "Uncordon",
            NodeAction::Drain => "Drain",
            NodeAction::Diagnose => "Diagnose",
            NodeAction::Terminate => "Terminate",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            NodeAction::Cordon => "No new work is placed on the node; what runs there keeps running.",
            NodeAction::Uncordon => "The node takes new work again.",
            NodeAction::Drain => "The node is cordoned and its work is moved off; it stays up.",
            NodeAction::Diagnose => "The agent runs the quick GPU diagnostic and reports the result.",
            NodeAction::Terminate => "The machine is shut down and given back to its provider. This cannot be undone.",
        }
    }

    /// The IssueCommand request, in Connect's JSON.
    fn request(self, node: &NodeId, reason: &str) -> serde_json::Value {
        let kind = match self {
            NodeAction::Cordon => "COMMAND_TYPE_CORDON",
            NodeAction::Uncordon => "COMMAND_TYPE_UNCORDON",
            NodeAction::Drain => "COMMAND_TYPE_DRAIN",
            NodeAction::Diagnose => "COMMAND_TYPE_RUN_DIAGNOSTIC",
            NodeAction::Terminate => "COMMAND_TYPE_TERMINATE",
        };
        let mut request = serde_json::json!({ "nodeId": node.as_str(), "type": kind, "reason": reason });
        if self == NodeAction::Diagnose {
            request["parameters"] = serde_json::json!({ "test": "quick" });
        }
        request
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    banner: Banner,
    node: &'a str,
    action: &'static str,
    title: &'static str,
    consequence: &'static str,
    danger: bool,
    reason: &'a str,
    error: Option<&'a str>,
}

/// What is wrong with an action's URL.
enum BadTarget {
    UnknownAction(String),
    BadNode(String),
}

impl IntoResponse for BadTarget {
    fn into_response(self) -> Response {
        match self {
            BadTarget::UnknownAction(action) => super::not_found(&format!(
                "there is no action {action:?}; a node can be cordoned, uncordoned, drained, diagnosed or terminated"
            )),
            BadTarget::BadNode(problem) => super::bad_request(&format!("node id: {problem}")),
        }
    }
}

/// The node and action a URL names.
fn target(id: &str, action: &str) -> Result<(NodeId, NodeAction), BadTarget> {
    let action = NodeAction::parse(action).ok_or_else(|| BadTarget::UnknownAction(action.to_owned()))?;
    let node = id.parse::<NodeId>().map_err(|e| BadTarget::BadNode(e.problem))?;
    Ok((node, action))
}

fn confirm_page(viewer: &Viewer, node: &NodeId, action: NodeAction, reason: &str, error: Option<&Refused>) -> Response {
    let page = ConfirmPage {
        banner: viewer.banner(),
        node: node.as_str(),
        action: action.path(),
        title: action.title(),
        consequence: action.consequence(),
        danger: action == NodeAction::Terminate,
        reason,
        error: error.map(|e| e.message.as_str()),
    };
    super::page(&page, error.map_or(StatusCode::OK, |e| e.status))
}

pub(super) async fn confirm(viewer: session::Viewer, Path((id, action)): Path<(String, String)>) -> Response {
    let (node, action) = match target(&id, &action) {
        Ok(target) => target,
        Err(bad) => return bad.into_response(),
    };
    confirm_page(&viewer, &node, action, "", None)
}

pub(super) async fn act(
    State(app): State<Arc<App>>,
    Extension(connect): Extension<ConnectRpcService>,
    extensions: Extensions,
    headers: HeaderMap,
    viewer: session::Viewer,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !session::same_origin(&headers) {
        return super::forbidden("cross-site request refused: act from this server's own pages");
    }
    let (node, action) = match target(&id, &action) {
        Ok(target) => target,
        Err(bad) => return bad.into_response(),
    };
    let form = std::str::from_utf8(&body).unwrap_or_default();
    let reason = url::form_urlencoded::parse(form.as_bytes())
        .find(|(key, _)| key == "reason")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let reason = if reason.is_empty() { format!("{} from the dashboard", action.path()) } else { reason };
    let peer = extensions.get::<Peer>().copied();
    let method = "/bosun.v1.AdminService/IssueCommand";
    match dispatch::call(&app, &connect, &viewer, peer, method, &action.request(&node, &reason)).await {
        Ok(answer) => {
            let command = answer["command"]["commandId"].as_str().unwrap_or_default();
            let done = url::form_urlencoded::Serializer::new(String::new()).append_pair("done", command).finish();
            Redirect::to(&format!("/ui/nodes/{node}?{done}")).into_response()
        }
        Err(refused) => confirm_page(&viewer, &node, action, &reason, Some(&refused)),
    }
}
