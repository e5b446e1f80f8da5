//! Who is calling, and what they may do.
//!
//! Requests carry `Authorization: Bearer TOKEN`. A token is one of:
//! - a configured token (`auth.tokens`) with a role: `agent` (AgentService only; pinned to
//!   one node if the token names one), `operator` (reads the fleet and issues commands) or
//!   `admin` (everything, including DeleteNode and SetPolicy);
//! - a **node token**, handed out by RegisterNode to an agent that registered with an
//!   unpinned agent token: `bosun-node.<node_id>.<registered_at>.<mac>`, where the MAC is
//!   HMAC-SHA256 of the node id and its registration time (Unix microseconds) keyed with
//!   `auth.node_token_key` or that agent token. It acts for that node alone, so a fleet
//!   sharing one bootstrap token still cannot speak for each other's nodes once
//!   registered. Node tokens need no storage and survive restarts; they are bound to one
//!   registration of the node, so deleting the node revokes its token (registered again,
//!   it is a new node with a new token), and replacing the key revokes them all.
//!
//! With no token configured the server runs open (every caller has every right) and says
//! so in its log at start.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as URL_SAFE;
use bosun_config::{AuthConfig, AuthToken, Role};
use bosun_core::{Actor, NodeId, Timestamp};
use connectrpc::RequestContext;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};

const NODE_TOKEN_PREFIX: &str = "bosun-node.";

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The server runs without authentication.
    Anonymous,
    /// A configured agent token; `node` when it is pinned to one node.
    Agent {
        name: String,
        node: Option<NodeId>,
    },
    /// A node token from RegisterNode.
    Node(NodeId),
    Operator {
        name: String,
    },
    Admin {
        name: String,
    },
}

/// What an AdminService call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    /// Lists, gets, history, events, policy get and test.
    Read,
    /// Issue and cancel commands.
    Command,
    /// DeleteNode, SetPolicy.
    Admin,
}

impl Caller {
    /// Who a change made by this caller is attributed to in the change log.
    pub(crate) fn actor(&self) -> Actor {
        match self {
            Caller::Anonymous => Actor::Operator("anonymous".to_owned()),
            Caller::Agent { name, .. } | Caller::Operator { name } | Caller::Admin { name } => {
                Actor::Operator(name.clone())
            }
            Caller::Node(node) => Actor::Node(node.clone()),
        }
    }

    /// The role approval policies and approvals see: an open server's anonymous caller
    /// may do everything, as an admin.
    pub(crate) fn role(&self) -> Role {
        match self {
            Caller::Anonymous | Caller::Admin { .. } => Role::Admin,
            Caller::Operator { .. } => Role::Operator,
            Caller::Agent { .. } | Caller::Node(_) => Role::Agent,
        }
    }

    /// How the audit log and stored settings name this caller: the token's name,
    /// `node:ID` for a node token, or `anonymous`; and its role (none for anonymous).
    pub(crate) fn audit_identity(&self) -> (String, Option<Role>) {
        match self {
            Caller::Anonymous => ("anonymous".to_owned(), None),
            Caller::Agent { name, .. } => (name.clone(), Some(Role::Agent)),
            Caller::Node(node) => (format!("node:{node}"), Some(Role::Agent)),
            Caller::Operator { name } => (name.clone(), Some(Role::Operator)),
            Caller::Admin { name } => (name.clone(), Some(Role::Admin)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Caller::Anonymous => "an anonymous caller".to_owned(),
            Caller::Agent { name, .. } => format!("agent token {name:?}"),
            Caller::Node(node) => format!("the node token of {node}"),
            Caller::Operator { name } => format!("operator token {name:?}"),
            Caller::Admin { name } => format!("admin token {name:?}"),
        }
    }

    /// Checks an AdminService call.
    pub(crate) fn require(&self, permission: Permission) -> ApiResult<()> {
        let allowed = match self {
            Caller::Anonymous | Caller::Admin { .. } => true,
            Caller::Operator { .. } => permission != Permission::Admin,
            Caller::Agent { .. } | Caller::Node(_) => false,
        };
        if allowed {
            return Ok(());
        }
        let needs = match permission {
            Permission::Read | Permission::Command => "an operator or admin token",
            Permission::Admin => "an admin token",
        };
        Err(ApiError::PermissionDenied(format!("{} cannot do this; it needs {needs}", self.describe())))
    }

    /// Checks an AgentService call made for `node`. Registration is the one call an
    /// unpinned agent token may make for any node.
    pub(crate) fn act_for(&self, node: &NodeId, registering: bool) -> ApiResult<()> {
        let allowed = match self {
            Caller::Anonymous | Caller::Admin { .. } => true,
            Caller::Agent { node: Some(pinned), .. } => pinned == node,
            Caller::Agent { node: None, .. } => registering,
            Caller::Node(own) => own == node,
            Caller::Operator { .. } => false,
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::PermissionDenied(match self {
            Caller::Agent { node: None, .. } => format!(
                "{} may only register nodes; call as {node} with the node token RegisterNode returned",
                self.describe()
            ),
            Caller::Operator { .. } => format!("{} cannot call the agent API", self.describe()),
            _ => format!("{} cannot act for node {node}", self.describe()),
        }))
    }
}

/// What a bearer token proved, before a node token is checked against the node's current
/// registration (which needs the fleet view or the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    Caller(Caller),
    /// A node token with a valid MAC, for the registration of `node` made at
    /// `registered_at`.
    NodeToken {
        node: NodeId,
        registered_at: Timestamp,
    },
}

/// Resolves bearer tokens into callers.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    config: AuthConfig,
}

impl Authenticator {
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self { config }
    }

    /// True when requests without a token are served.
    pub(crate) fn is_open(&self) -> bool {
        self.config.tokens.is_empty() && self.config.allow_unauthenticated
    }

    /// What `authorization` (the header's value, if any) proves.
    pub(crate) fn authenticate(&self, authorization: Option<&[u8]>) -> ApiResult<Credential> {
        let Some(header) = authorization else {
            if self.is_open() {
                return Ok(Credential::Caller(Caller::Anonymous));
            }
            return Err(ApiError::Unauthenticated(
                "no bearer token; send `Authorization: Bearer TOKEN` (the CLI's --token or BOSUN_TOKEN)".to_owned(),
            ));
        };
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("the Authorization header must be `Bearer TOKEN`".to_owned()))?;
        if let Some((node, registered_at)) = self.verify_node_token(token) {
            return Ok(Credential::NodeToken { node, registered_at });
        }
        match self.config.find_token(token) {
            Some(found) => Ok(Credential::Caller(caller_for(found))),
            None if self.is_open() => Ok(Credential::Caller(Caller::Anonymous)),
            None => Err(ApiError::Unauthenticated("the bearer token is not valid here".to_owned())),
        }
    }

    /// The node token for `node`, when `caller` registered it with an unpinned agent
    /// token; empty otherwise (pinned tokens, operators and open servers need none).
    ///
    /// With `auth.node_token_key` the token is minted with that server-side key, so only
    /// the node it was handed to knows it; without, it derives from the agent token.
    /// A node that re-registers with its own node token gets the same token back; the
    /// token names the registration (`registered_at`) it is good for.
    pub(crate) fn node_token(&self, caller: &Caller, node: &NodeId, registered_at: Timestamp) -> String {
        let key = match (caller, &self.config.node_token_key) {
            (Caller::Agent { node: None, .. } | Caller::Node(_), Some(key)) => key.secret.expose(),
            (Caller::Agent { name, node: None }, None) => match self.config.tokens.iter().find(|t| &t.name == name) {
                Some(token) => token.secret.expose(),
                None => return String::new(),
            },
            _ => return String::new(),
        };
        let Some(mac) = node_mac(key, node, registered_at) else { return String::new() };
        let mac = URL_SAFE.encode(mac.finalize().into_bytes());
        format!("{NODE_TOKEN_PREFIX}{node}.{}.{mac}", registered_at.unix_micros())
    }

    /// Whether registering a node that already exists needs that node's own token (or a
    /// token pinned to it): true once a server-side node token key is configured. Without
    /// the key a node token is derivable from the shared agent token anyway.
    pub(crate) fn guards_reregistration(&self) -> bool {
        self.config.node_token_key.is_some()
    }

    fn verify_node_token(&self, token: &str) -> Option<(NodeId, Timestamp)> {
        let body = token.strip_prefix(NODE_TOKEN_PREFIX)?;
        let (rest, mac) = body.rsplit_once('.')?;
        let (node, registered_at) = rest.rsplit_once('.')?;
        let node = NodeId::new(node).ok()?;
        let registered_at = Timestamp::checked_from_unix_micros(registered_at.parse().ok()?)?;
        let mac = URL_SAFE.decode(mac).ok()?;
        let verifies = |key: &str| node_mac(key, &node, registered_at).is_some_and(|m| m.verify_slice(&mac).is_ok());
        if let Some(key) = &self.config.node_token_key {
            return verifies(key.secret.expose()).then_some((node, registered_at));
        }
        let agent_tokens = self.config.tokens.iter().filter(|t| t.role == Role::Agent && t.node.is_none());
        // Every candidate key is tried, each comparison in constant time.
        let mut valid = false;
        for agent in agent_tokens {
            valid |= verifies(agent.secret.expose());
        }
        valid.then_some((node, registered_at))
    }
}

/// A dashboard session: `v1.NAME.EXPIRES.MAC`, the name base64url-encoded, the expiry in
/// microseconds since the epoch, and the MAC keyed by the named token's secret. Nothing is
/// stored: any replica verifies it, and rotating or removing the token ends its sessions.
const SESSION_PREFIX: &str = "v1.";

impl Authenticator {
    /// A session for the operator or admin token `caller` signed in with, valid until
    /// `expires`; `None` for any other caller.
    pub(crate) fn sign_session(&self, caller: &Caller, expires: Timestamp) -> Option<String> {
        let (Caller::Operator { name } | Caller::Admin { name }) = caller else { return None };
        let token = self.config.tokens.iter().find(|t| &t.name == name && t.role != Role::Agent)?;
        let mac = session_mac(token.secret.expose(), name, expires)?.finalize().into_bytes();
        Some(format!("{SESSION_PREFIX}{}.{}.{}", URL_SAFE.encode(name), expires.unix_micros(), URL_SAFE.encode(mac)))
    }

    /// The secret of the operator or admin token `caller` signed in with, for the
    /// dashboard to call the API as that caller; `None` for any other caller.
    pub(crate) fn bearer_for(&self, caller: &Caller) -> Option<&str> {
        let (Caller::Operator { name } | Caller::Admin { name }) = caller else { return None };
        self.config.tokens.iter().find(|t| &t.name == name && t.role != Role::Agent).map(|t| t.secret.expose())
    }

    /// The caller a session cookie's value stands for, if it verifies and has not expired
    /// at `now`; its role is the token's as configured now.
    pub(crate) fn verify_session(&self, value: &str, now: Timestamp) -> Option<Caller> {
        let body = value.strip_prefix(SESSION_PREFIX)?;
        let (rest, mac) = body.rsplit_once('.')?;
        let (name, expires) = rest.rsplit_once('.')?;
        let name = String::from_utf8(URL_SAFE.decode(name).ok()?).ok()?;
        let expires = Timestamp::checked_from_unix_micros(expires.parse().ok()?)?;
        if expires <= now {
            return None;
        }
        let mac = URL_SAFE.decode(mac).ok()?;
        let token = self.config.tokens.iter().find(|t| t.name == name && t.role != Role::Agent)?;
        session_mac(token.secret.expose(), &name, expires)?.verify_slice(&mac).ok()?;
        Some(caller_for(token))
    }
}

fn session_mac(key: &str, name: &str, expires: Timestamp) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(b"bosun ui session v1\0");
    mac.update(name.as_bytes());
    mac.update(b"\0");
    mac.update(&expires.unix_micros().to_be_bytes());
    Some(mac)
}

/// The MAC of a node token (HMAC accepts keys of any length, so this is always `Some`).
fn node_mac(key: &str, node: &NodeId, registered_at: Timestamp) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(b"bosun node token v2\0");
    mac.update(node.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(&registered_at.unix_micros().to_be_bytes());
    Some(mac)
}

fn caller_for(token: &AuthToken) -> Caller {
    match token.role {
        Role::Agent => Caller::Agent { name: token.name.clone(), node: token.node.clone() },
        Role::Operator => Caller::Operator { name: token.name.clone() },
        Role::Admin => Caller::Admin { name: token.name.clone() },
    }
}

/// The caller the authentication interceptor attached to this request.
pub(crate) fn caller(ctx: &RequestContext) -> ApiResult<&Caller> {
    ctx.extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::Internal("request reached a handler without authentication".to_owned()))
}

#[cfg(test)]
mod tests {
    use bosun_config::Config;

    use super::*;

    fn authenticator() -> Authenticator {
        let yaml = r#"
auth:
  tokens:
    - { name: fleet, role: agent, token: fleet-secret }
    - { name: pinned, role: agent, token: pinned-secret, node: n9 }
    - { name: alice, role: operator, token: alice-secret }
    - { name: root, role: admin, token: root-secret }
"#;
        Authenticator::new(Config::from_yaml_str(yaml, |_| None).expect("valid config").auth)
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    fn node(id: &str) -> NodeId {
        NodeId::new(id).expect("valid")
    }

    fn caller(auth: &Authenticator, token: &str) -> Caller {
        match auth.authenticate(Some(&bearer(token))).expect("valid") {
            Credential::Caller(caller) => caller,
            Credential::NodeToken { node, .. } => Caller::Node(node),
        }
    }

    const REGISTERED: Timestamp = Timestamp::UNIX_EPOCH;

    #[test]
    fn roles_resolve_and_bad_credentials_are_refused() {
        let auth = authenticator();
        assert!(!auth.is_open());
        assert_eq!(caller(&auth, "alice-secret"), Caller::Operator { name: "alice".into() });
        assert_eq!(caller(&auth, "pinned-secret"), Caller::Agent { name: "pinned".into(), node: Some(node("n9")) });
        for bad in [None, Some(b"Basic abc".to_vec()), Some(bearer("")), Some(bearer("guess"))] {
            let error = auth.authenticate(bad.as_deref()).unwrap_err();
            assert_eq!(error.code(), connectrpc::ErrorCode::Unauthenticated, "{error}");
        }
    }

    #[test]
    fn a_node_token_acts_for_its_node_alone() {
        let auth = authenticator();
        let fleet = caller(&auth, "fleet-secret");
        assert!(fleet.act_for(&node("n1"), true).is_ok(), "the fleet token registers any node");
        assert!(fleet.act_for(&node("n1"), false).is_err(), "but does nothing else");

        let token = auth.node_token(&fleet, &node("n1"), REGISTERED);
        assert!(token.starts_with("bosun-node.n1.0."), "{token}");
        assert_eq!(
            auth.authenticate(Some(&bearer(&token))).expect("valid node token"),
            Credential::NodeToken { node: node("n1"), registered_at: REGISTERED }
        );
        let n1 = caller(&auth, &token);
        assert_eq!(n1, Caller::Node(node("n1")));
        // Another registration of n1 is another token.
        let later = auth.node_token(&fleet, &node("n1"), REGISTERED + std::time::Duration::from_secs(1));
        assert_ne!(later, token);
        let replayed = token.replacen("bosun-node.n1.0.", "bosun-node.n1.1000000.", 1);
        assert!(auth.authenticate(Some(&bearer(&replayed))).is_err(), "the MAC covers the registration time");
        assert!(n1.act_for(&node("n1"), false).is_ok());
        assert!(n1.act_for(&node("n2"), false).is_err());
        assert!(n1.require(Permission::Read).is_err());

        // Changing the node id or the MAC invalidates it.
        let forged = token.replacen("bosun-node.n1.", "bosun-node.n2.", 1);
        assert!(auth.authenticate(Some(&bearer(&forged))).is_err());
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(auth.authenticate(Some(&bearer(&tampered))).is_err());
    }

    #[test]
    fn pinned_agents_operators_and_admins() {
        let auth = authenticator();
        let pinned = caller(&auth, "pinned-secret");
        assert!(pinned.act_for(&node("n9"), false).is_ok());
        assert!(pinned.act_for(&node("n1"), true).is_err(), "a pinned token registers only its node");
        assert_eq!(auth.node_token(&pinned, &node("n9"), REGISTERED), "", "pinned tokens need no node token");

        let alice = caller(&auth, "alice-secret");
        assert!(alice.require(Permission::Command).is_ok());
        let denied = alice.require(Permission::Admin).unwrap_err().to_string();
        assert_eq!(denied, "operator token \"alice\" cannot do this; it needs an admin token");
        assert!(alice.act_for(&node("n1"), false).is_err());

        let root = caller(&auth, "root-secret");
        assert!(root.require(Permission::Admin).is_ok() && root.act_for(&node("n1"), false).is_ok());
    }

    #[test]
    fn without_tokens_the_server_is_open() {
        let auth = Authenticator::new(AuthConfig::default());
        assert!(auth.is_open());
        let Credential::Caller(caller) = auth.authenticate(None).expect("open") else { panic!("not a caller") };
        assert_eq!(caller, Caller::Anonymous);
        assert!(caller.require(Permission::Admin).is_ok());
        assert_eq!(caller.actor().to_string(), "operator:anonymous");
    }
}
