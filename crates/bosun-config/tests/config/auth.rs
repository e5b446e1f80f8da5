//! The `auth` section: roles, token sources, node pinning.

use bosun_config::{Config, Role, TokenSource};
use bosun_core::NodeId;

use crate::env_of;

#[test]
fn every_role_and_token_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("agent.token");
    std::fs::write(&token_file, "file-token-123\n").expect("write");
    let text = format!(
        "auth:
  tokens:
    - name: ops
      token: ${{ADMIN_TOKEN}}
      role: admin
    - name: oncall
      token_env: OPERATOR_TOKEN
      role: operator
    - name: fleet
      token_file: {}
      role: agent
    - name: node-01
      token: node-01-token
      role: agent
      node: gpu-node-01
",
        token_file.display()
    );
    let env = env_of(&[("ADMIN_TOKEN", "admin-token-abc"), ("OPERATOR_TOKEN", "  operator-token-xyz  ")]);
    let auth = Config::from_yaml_str(&text, env).expect("valid").auth;

    let summary: Vec<(&str, Role, Option<&str>, &str, &TokenSource)> = auth
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.role, t.node.as_ref().map(NodeId::as_str), t.secret.expose(), &t.source))
        .collect();
    assert_eq!(
        summary,
        [
            ("ops", Role::Admin, None, "admin-token-abc", &TokenSource::Inline),
            ("oncall", Role::Operator, None, "operator-token-xyz", &TokenSource::Env("OPERATOR_TOKEN".into())),
            ("fleet", Role::Agent, None, "file-token-123", &TokenSource::File(token_file.clone())),
            ("node-01", Role::Agent, Some("gpu-node-01"), "node-01-token", &TokenSource::Inline),
        ]
    );
    // With tokens configured, every request needs one.
    assert!(!auth.allow_unauthenticated);
    assert_eq!(auth.find_token("operator-token-xyz").map(|t| t.name.as_str()), Some("oncall"));
    assert_eq!(auth.find_token("file-token-123").map(|t| t.role), Some(Role::Agent));
    assert!(auth.find_token("operator-token-xy").is_none());
    assert!(auth.find_token("").is_none());
}

#[test]
fn unauthenticated_access_without_tokens() {
    let open = Config::from_yaml_str("auth: {}\n", env_of(&[])).expect("valid").auth;
    assert!(open.allow_unauthenticated);
    let closed = Config::from_yaml_str("auth: {allow_unauthenticated: false}\n", env_of(&[])).expect("valid").auth;
    assert!(!closed.allow_unauthenticated);
    assert!(closed.tokens.is_empty());
}

#[test]
fn the_node_token_key_comes_from_one_source_is_long_and_is_redacted() {
    let long = "k".repeat(40);
    let text = "auth:\n  tokens: [{name: fleet, token: t-agent, role: agent}]\n  node_token_key_env: NODE_KEY\n";
    let auth = Config::from_yaml_str(text, env_of(&[("NODE_KEY", long.as_str())])).expect("valid").auth;
    let key = auth.node_token_key.expect("set");
    assert_eq!(key.secret.expose(), long);
    assert_eq!(key.source, TokenSource::Env("NODE_KEY".into()));

    let inline = format!("auth:\n  node_token_key: {long}\n");
    let config = Config::from_yaml_str(&inline, env_of(&[])).expect("valid");
    assert!(!config.to_redacted_yaml().contains(&long), "the key never appears in config check");

    let short = Config::from_yaml_str("auth:\n  node_token_key: short\n", env_of(&[])).unwrap_err().to_string();
    assert!(short.contains("auth.node_token_key") && short.contains("at least 32"), "{short}");
    let both = format!("auth:\n  node_token_key: {long}\n  node_token_key_env: X\n");
    let both = Config::from_yaml_str(&both, env_of(&[("X", long.as_str())])).unwrap_err().to_string();
    assert!(both.contains("only one of"), "{both}");
}
