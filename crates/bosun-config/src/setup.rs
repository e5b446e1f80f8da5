//! The placeholders of a pool's `setup_commands`, and their syntax.
//!
//! A setup command is shell text with Navarch's Go-template placeholders (`{{.ControlPlane}}`,
//! `{{ .Pool }}`); the SSH bootstrap replaces each with its value, shell-quoted. Parsing
//! lives here so that `bosun config check` refuses a misspelled placeholder and the
//! bootstrap reads commands exactly as the check did.

use std::fmt;

/// Every placeholder, with what it stands for.
pub const SETUP_PLACEHOLDERS: [(Placeholder, &str); 9] = [
    (Placeholder::ControlPlane, "the server URL agents register with (server.external_address)"),
    (Placeholder::Token, "the agent token machines register with (empty without auth)"),
    (Placeholder::NodeId, "the node id the agent should register as (bosun's instance id)"),
    (Placeholder::InstanceId, "bosun's instance id"),
    (Placeholder::Pool, "the pool's name"),
    (Placeholder::Provider, "the provider's name"),
    (Placeholder::Region, "the machine's region"),
    (Placeholder::Zone, "the machine's zone"),
    (Placeholder::InstanceType, "the provider's instance type"),
];

/// A value a setup command may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    ControlPlane,
    Token,
    NodeId,
    InstanceId,
    Pool,
    Provider,
    Region,
    Zone,
    InstanceType,
}

impl Placeholder {
    /// The name written between `{{.` and `}}`.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::ControlPlane => "ControlPlane",
            Placeholder::Token => "Token",
            Placeholder::NodeId => "NodeID",
            Placeholder::InstanceId => "InstanceID",
            Placeholder::Pool => "Pool",
            Placeholder::Provider => "Provider",
            Placeholder::Region => "Region",
            Placeholder::Zone => "Zone",
            Placeholder::InstanceType => "InstanceType",
        }
    }

    /// The environment variable the bootstrap also exports the value as.
    pub fn env_var(self) -> &'static str {
        match self {
            Placeholder::ControlPlane => "BOSUN_SERVER",
            Placeholder::Token => "BOSUN_TOKEN",
            Placeholder::NodeId => "BOSUN_NODE_ID",
            Placeholder::InstanceId => "BOSUN_INSTANCE_ID",
            Placeholder::Pool => "BOSUN_POOL",
            Placeholder::Provider => "BOSUN_PROVIDER",
            Placeholder::Region => "BOSUN_REGION",
            Placeholder::Zone => "BOSUN_ZONE",
            Placeholder::InstanceType => "BOSUN_INSTANCE_TYPE",
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{.{}}}}}", self.name())
    }
}

/// A setup command cut into literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupPart<'a> {
    Text(&'a str),
    Value(Placeholder),
}

/// Parses `command`. Every `{{ ... }}` must be one known placeholder; the error says which
/// is not and what is known.
pub fn parse_setup_command(command: &str) -> Result<Vec<SetupPart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = command;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(SetupPart::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| "a {{ is never closed with }}".to_owned())?;
        let inside = after[..close].trim();
        let name = inside.strip_prefix('.').filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()));
        let placeholder = name.and_then(|name| SETUP_PLACEHOLDERS.iter().map(|(p, _)| *p).find(|p| p.name() == name));
        match placeholder {
            Some(placeholder) => parts.push(SetupPart::Value(placeholder)),
            None => {
                let known: Vec<String> = SETUP_PLACEHOLDERS.iter().map(|(p, _)| p.to_string()).collect();
                return Err(format!(
                    "{{{{{inside}}}}} is not a placeholder bosun fills in (only these are: {})",
                    known.join(", ")
                ));
            }
        }
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(SetupPart::Text(rest));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_into_text_and_placeholders() {
        let parts = parse_setup_command("bosun agent --server {{.ControlPlane}} --pool {{ .Pool }}x").expect("valid");
        assert_eq!(
            parts,
            [
                SetupPart::Text("bosun agent --server "),
                SetupPart::Value(Placeholder::ControlPlane),
                SetupPart::Text(" --pool "),
                SetupPart::Value(Placeholder::Pool),
                SetupPart::Text("x"),
            ]
        );
        assert_eq!(parse_setup_command("echo hi").expect("valid"), [SetupPart::Text("echo hi")]);
        for (placeholder, _) in SETUP_PLACEHOLDERS {
            let text = placeholder.to_string();
            assert_eq!(parse_setup_command(&text).expect("valid"), [SetupPart::Value(placeholder)], "{text}");
        }
    }

    #[test]
    fn anything_else_in_braces_is_refused() {
        for (command, problem) in [
            ("echo {{.Tokn}}", "{{.Tokn}} is not a placeholder bosun fills in (only these are: {{.ControlPlane}},"),
            ("{{if .Pool}}x{{end}}", "{{if .Pool}} is not a placeholder"),
            ("echo {{.Pool", "a {{ is never closed with }}"),
            ("echo {{ControlPlane}}", "{{ControlPlane}} is not a placeholder"),
        ] {
            let error = parse_setup_command(command).unwrap_err();
            assert!(error.starts_with(problem), "{command}: {error}");
        }
    }
}
