//! The policy file as written, and the checks that turn it into a [`PolicySpec`]: rules
//! with names, conditions and results that are present, unique and valid. Compiling the
//! conditions is the engine's job, not this module's.

use std::collections::HashMap;

use bosun_core::validation::{check_name, check_text};
use bosun_core::xid::{MAX_XIDS, Xid};
use bosun_core::{Health, RemediationAction};
use serde::Deserialize;

use crate::error::{DocumentKind, PolicyError};
use crate::strict;

/// Longest condition accepted, in bytes. A condition without loops does work bounded by
/// its size, so this bound is half of the evaluation budget (the engine meters loops).
pub const MAX_CONDITION_LEN: usize = 16 * 1024;

/// The YAML document. Every field but `rules` may be omitted; missing rule fields are
/// defaulted here so that validation can report them naming the rule.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy: a map with `rules` and optionally `version`, `metadata` and `xids`"
)]
struct PolicyDocument {
    /// Free-form; Navarch files write `"1"` or `1`, both of which read as text.
    #[serde(default)]
    version: String,
    #[serde(default)]
    metadata: Metadata,
    rules: Vec<RuleDocument>,
    /// Entries that replace (or add to) the built-in XID catalog, by code.
    #[serde(default)]
    xids: Vec<XidDocument>,
}

/// One XID catalog entry as a policy overrides it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an XID: a map with `code`, `name`, `action`, `hardware` and `source`")]
struct XidDocument {
    code: u32,
    name: String,
    action: RemediationAction,
    #[serde(default)]
    hardware: bool,
    /// Where the override comes from; `policy` unless the file says.
    #[serde(default = "policy_source")]
    source: String,
}

fn policy_source() -> String {
    "policy".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with `name` and `description`")]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a map with `name`, `description`, `condition`, `result` and optionally `action`"
)]
struct RuleDocument {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    action: String,
}

/// A policy whose every rule is well-formed, conditions not yet compiled.
#[derive(Debug)]
pub(crate) struct PolicySpec {
    pub version: String,
    pub name: String,
    pub description: String,
    pub rules: Vec<RuleSpec>,
    /// Overrides of the built-in XID catalog.
    pub xids: Vec<Xid>,
}

#[derive(Debug)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub description: String,
    pub condition: String,
    pub result: Health,
    /// What a matching event asks of the machine; follows from `result` unless given.
    pub action: RemediationAction,
}

/// Parses and validates a policy document.
pub(crate) fn parse(yaml: &str) -> Result<PolicySpec, PolicyError> {
    let document: PolicyDocument = strict::from_yaml(yaml, DocumentKind::Policy, "")?;
    if document.rules.is_empty() {
        return Err(PolicyError::NoRules);
    }
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (index, rule) in document.rules.iter().enumerate() {
        if rule.name.trim().is_empty() {
            return Err(PolicyError::rule(index, &rule.name, "name is required"));
        }
        // Names end up in verdicts, health history and log lines: keep them short, printable.
        check_name("name", &rule.name)
            .map_err(|error| PolicyError::rule(index, "", format_args!("name {}", error.problem)))?;
        if let Some(first) = first_index.insert(&rule.name, index) {
            return Err(PolicyError::rule(index, &rule.name, format_args!("name is already used by rules[{first}]")));
        }
    }
    let rules =
        document.rules.into_iter().enumerate().map(|(index, rule)| rule.validate(index)).collect::<Result<_, _>>()?;
    if document.xids.len() > MAX_XIDS {
        return Err(PolicyError::Xids(format!("more than {MAX_XIDS} entries")));
    }
    let xids = document
        .xids
        .into_iter()
        .map(|x| Xid { code: x.code, name: x.name, action: x.action, hardware: x.hardware, source: x.source })
        .collect();
    Ok(PolicySpec {
        version: document.version,
        name: document.metadata.name,
        description: document.metadata.description,
        rules,
        xids,
    })
}

impl RuleDocument {
    fn validate(self, index: usize) -> Result<RuleSpec, PolicyError> {
        check_text("description", &self.description)
            .map_err(|error| PolicyError::rule(index, &self.name, format_args!("description {}", error.problem)))?;
        if self.condition.trim().is_empty() {
            return Err(PolicyError::rule(index, &self.name, "condition is required"));
        }
        if self.condition.len() > MAX_CONDITION_LEN {
            return Err(PolicyError::rule(
                index,
                &self.name,
                format_args!("condition is {} bytes long; the limit is {MAX_CONDITION_LEN}", self.condition.len()),
            ));
        }
        let result = parse_result(&self.result).ok_or_else(|| {
            let problem = if self.result.is_empty() {
                "result is required (healthy, degraded or unhealthy)".to_owned()
            } else {
                format!("result {:?} is not one of healthy, degraded, unhealthy", self.result)
            };
            PolicyError::rule(index, &self.name, problem)
        })?;
        let action = if self.action.trim().is_empty() {
            default_action(result)
        } else {
            self.action.parse::<RemediationAction>().map_err(|_| {
                let names: Vec<&str> = RemediationAction::ALL.iter().map(|a| a.as_str()).collect();
                PolicyError::rule(
                    index,
                    &self.name,
                    format_args!("action {:?} is not one of {}", self.action, names.join(", ")),
                )
            })?
        };
        if !action_fits(result, action) {
            return Err(PolicyError::rule(
                index,
                &self.name,
                format_args!(
                    "action {action} does not fit result {}: unhealthy means replace; degraded allows none, \
                     restart_app, reset_gpu or reboot; healthy allows none",
                    result.as_str().to_ascii_lowercase()
                ),
            ));
        }
        Ok(RuleSpec { name: self.name, description: self.description, condition: self.condition, result, action })
    }
}

/// The action a rule without one asks for: an UNHEALTHY node is replaced, anything milder
/// asks nothing of the machine.
fn default_action(result: Health) -> RemediationAction {
    if result == Health::Unhealthy { RemediationAction::Replace } else { RemediationAction::None }
}

/// A node's status follows its health (SPEC 3.2: UNHEALTHY takes it out of service, for its
/// pool to replace), so the action must agree: only `unhealthy` replaces, and the ladder's
/// milder steps keep the node in service while they run.
fn action_fits(result: Health, action: RemediationAction) -> bool {
    match result {
        Health::Unhealthy => action == RemediationAction::Replace,
        Health::Degraded => action != RemediationAction::Replace,
        Health::Healthy | Health::Unknown => action == RemediationAction::None,
    }
}

/// A rule's result word, in any case. `unknown` is a health but not a verdict a rule may
/// give, so it is refused.
fn parse_result(word: &str) -> Option<Health> {
    [Health::Healthy, Health::Degraded, Health::Unhealthy].into_iter().find(|h| h.as_str().eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_default_from_the_result() {
        let spec = parse(
            "rules:\n  - {name: u, condition: 'true', result: unhealthy}\n  - {name: d, condition: 'true', result: degraded}\n  - {name: r, condition: 'true', result: degraded, action: reset_gpu}\n",
        )
        .unwrap();
        let actions: Vec<_> = spec.rules.iter().map(|r| r.action).collect();
        assert_eq!(actions, [RemediationAction::Replace, RemediationAction::None, RemediationAction::ResetGpu]);
    }

    #[test]
    fn a_full_document() {
        let spec = parse(
            "version: 1\nmetadata:\n  name: strict\n  description: fail fast\nrules:\n  - name: r\n    description: d\n    condition: 'true'\n    result: Degraded\n",
        )
        .unwrap();
        assert_eq!(
            (spec.version.as_str(), spec.name.as_str(), spec.description.as_str()),
            ("1", "strict", "fail fast")
        );
        assert_eq!(spec.rules.len(), 1);
        assert_eq!(spec.rules[0].result, Health::Degraded);
        assert_eq!(spec.rules[0].description, "d");
    }

    #[test]
    fn invalid_documents_name_the_problem() {
        let long = format!("rules: [{{name: a, result: healthy, condition: '{}'}}]", "x".repeat(MAX_CONDITION_LEN + 1));
        let long_description =
            format!("rules: [{{name: a, description: '{}', condition: 'true', result: healthy}}]", "d".repeat(4097));
        let cases = [
            ("rules: []", "invalid policy at rules: at least one rule is required"),
            ("metadata: {name: x}", "invalid policy: missing field `rules`"),
            (
                "- a",
                "invalid policy: invalid type: sequence, expected a policy: a map with `rules` and optionally `version`, `metadata` and `xids`",
            ),
            (
                "rules: [a]",
                "invalid policy at rules[0]: invalid type: string \"a\", expected a rule: a map with `name`, `description`, `condition`, `result` and optionally `action` at line 1 column 9",
            ),
            (
                "rules:\n  - name: a\n    condition: 'true'\n    result: healthy\n    priority: 1\n",
                "invalid policy at rules[0].priority: unknown field `priority`, expected one of `name`, `description`, \
                 `condition`, `result`, `action` at line 5 column 5",
            ),
            (
                "metadata: {name: x, owner: y}\nrules: []\n",
                "invalid policy at metadata.owner: unknown field `owner`, expected `name` or `description` at line 1 column 21",
            ),
            ("rules: [{condition: 'true', result: healthy}]", "invalid policy: rules[0]: name is required"),
            (
                "rules: [{name: \"a\\u0007\", condition: 'true', result: healthy}]",
                "invalid policy: rules[0]: name contains control character '\\u{7}'",
            ),
            (
                long_description.as_str(),
                "invalid policy: rule \"a\" (rules[0]): description is 4097 bytes long; the limit is 4096",
            ),
            (
                "rules: [{name: a, condition: 'true', result: healthy}, {name: a, condition: 'false', result: healthy}]",
                "invalid policy: rule \"a\" (rules[1]): name is already used by rules[0]",
            ),
            ("rules: [{name: a, result: healthy}]", "invalid policy: rule \"a\" (rules[0]): condition is required"),
            (
                "rules: [{name: a, condition: 'true'}]",
                "invalid policy: rule \"a\" (rules[0]): result is required (healthy, degraded or unhealthy)",
            ),
            (
                "rules: [{name: a, condition: 'true', result: sick}]",
                "invalid policy: rule \"a\" (rules[0]): result \"sick\" is not one of healthy, degraded, unhealthy",
            ),
            (
                "rules: [{name: a, condition: 'true', result: unknown}]",
                "invalid policy: rule \"a\" (rules[0]): result \"unknown\" is not one of healthy, degraded, unhealthy",
            ),
            (long.as_str(), "invalid policy: rule \"a\" (rules[0]): condition is 16385 bytes long; the limit is 16384"),
            (
                "rules: [{name: a, condition: 'true', result: degraded, action: pray}]",
                "invalid policy: rule \"a\" (rules[0]): action \"pray\" is not one of none, restart_app, reset_gpu, reboot, replace",
            ),
            (
                "rules: [{name: a, condition: 'true', result: degraded, action: replace}]",
                "invalid policy: rule \"a\" (rules[0]): action replace does not fit result degraded: unhealthy means \
                 replace; degraded allows none, restart_app, reset_gpu or reboot; healthy allows none",
            ),
            (
                "rules: [{name: a, condition: 'true', result: unhealthy, action: reset_gpu}]",
                "invalid policy: rule \"a\" (rules[0]): action reset_gpu does not fit result unhealthy: unhealthy means \
                 replace; degraded allows none, restart_app, reset_gpu or reboot; healthy allows none",
            ),
            (
                "xids: [{code: 13, name: x, action: sometimes}]\nrules: [{name: a, condition: 'true', result: healthy}]",
                "invalid policy at xids[0].action: unknown variant `sometimes`, expected one of `none`, `restart_app`, \
                 `reset_gpu`, `reboot`, `replace` at line 1 column 36",
            ),
            (
                "xids: [{code: 13, name: x, action: none, fatal: true}]\nrules: [{name: a, condition: 'true', result: healthy}]",
                "invalid policy at xids[0].fatal: unknown field `fatal`, expected one of `code`, `name`, `action`, \
                 `hardware`, `source` at line 1 column 42",
            ),
        ];
        for (yaml, message) in cases {
            assert_eq!(parse(yaml).unwrap_err().to_string(), message, "{yaml}");
        }
    }
}
