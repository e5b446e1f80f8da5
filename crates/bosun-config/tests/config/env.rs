//! `${VAR}` expansion before parsing.

use bosun_config::{Config, ConfigErrorKind};

use crate::{env_of, no_env, pool, with_pool};

#[test]
fn variables_expand_anywhere_a_value_can_stand() {
    let text = with_pool("provider: fake\ninstance_type: ${TYPE}\nmax_nodes: ${MAX}\nlabels: {team: \"${TEAM}\"}");
    let config = Config::from_yaml_str(&text, env_of(&[("TYPE", "h100-8x"), ("MAX", "12"), ("TEAM", "ml infra")]))
        .expect("valid");
    let spec = &pool(&config, "p").spec;
    assert_eq!(spec.instance_type, "h100-8x");
    assert_eq!(spec.max_nodes, 12);
    assert_eq!(spec.labels.get("team"), Some("ml infra"));
}

#[test]
fn a_missing_variable_is_named_with_its_line() {
    let text = "server:\n  address: :50051\n  external_address: ${PUBLIC_URL}\n";
    let err = Config::from_yaml_str(text, no_env).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Expand);
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.to_string(), "line 3: environment variable PUBLIC_URL is not set (write $${ for a literal ${)");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bosun.yaml");
    std::fs::write(&path, text).expect("write");
    let err = Config::load_with_env(&path, no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 3: environment variable PUBLIC_URL is not set (write $${{ for a literal ${{)",
            path.display()
        )
    );
}

#[test]
fn comments_are_expanded_too() {
    // Expansion runs before parsing, so it cannot tell a comment from a value.
    let err = Config::from_yaml_str("# token: ${OLD_TOKEN}\n", no_env).unwrap_err();
    assert_eq!(err.problem(), "environment variable OLD_TOKEN is not set (write $${ for a literal ${)");
    assert!(Config::from_yaml_str("# token: $${OLD_TOKEN}\n", no_env).is_ok());
}

#[test]
fn dollar_dollar_brace_is_a_literal() {
    let text = with_pool(
        "provider: fake\ninstance_type: t\nmax_nodes: 3\nsetup_commands: ['echo $${HOME} $$ $PATH']\nssh_private_key_path: /k",
    );
    let config = Config::from_yaml_str(&text, no_env).expect("valid");
    assert_eq!(pool(&config, "p").spec.setup_commands, ["echo ${HOME} $$ $PATH"]);
}

#[test]
fn a_value_cannot_add_keys() {
    let text = "server:\n  address: ${ADDRESS}\n";
    let err = Config::from_yaml_str(text, env_of(&[("ADDRESS", ":1\n  heartbeat_interval: 1s")])).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Expand);
    assert_eq!(
        err.problem(),
        "environment variable ADDRESS contains a line break, which would change the file's structure"
    );
}

#[test]
fn the_process_environment_is_the_default() {
    // PATH is set wherever tests run; finding its value shows `load` read the process
    // environment.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bosun.yaml");
    std::fs::write(&path, "server:\n  health_policy: ${PATH}\n").expect("write");
    let config = Config::load(&path).expect("valid");
    assert_eq!(config.server.health_policy, std::env::var_os("PATH").map(Into::into));
}
