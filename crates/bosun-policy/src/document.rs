//! The policy file as written, and the checks that turn it into a [`PolicySpec`]: rules
//! with names, conditions and results that are present, unique and valid. Compiling the
//! conditions is the engine's job, not this module's.

use std::collections::HashMap;

use bosun_core::Health;
use bosun_core::validation::{check_name, check_text};
use serde::Deserialize;

use crate::error::{DocumentKind, PolicyError};
use crate::strict;

/// Longest condition accepted, in bytes. A condition without loops does work bounded by
/// its size, so this bound is half of the evaluation budget (the engine meters loops).
pub const MAX_CONDITION_LEN: usize = 16 * 1024;

/// The YAML document. Every field but `rules` may be omitted; missing rule fields are
/// defaulted here so that validation can report them naming the rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a policy: a map with `rules` and optionally `version` and `metadata`")]
struct PolicyDocument {
    /// Free-form; Navarch files write `"1"` or `1`, both of which read as text.
    #[serde(default)]
    version: String,
    #[serde(default)]
    metadata: Metadata,
    rules: Vec<RuleDocument>,
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
#[serde(deny_unknown_fields, expecting = "a rule: a map with `name`, `description`, `condition` and `result`")]
struct RuleDocument {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    result: String,
}

/// A policy whose every rule is well-formed, conditions not yet compiled.
#[derive(Debug)]
pub(crate) struct PolicySpec {
    pub version: String,
    pub name: String,
    pub description: String,
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub description: String,
    pub condition: String,
    pub result: Health,
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
    Ok(PolicySpec {
        version: document.version,
        name: document.metadata.name,
        description: document.metadata.description,
        rules,
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
        Ok(RuleSpec { name: self.name, description: self.description, condition: self.condition, result })
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
                "invalid policy: invalid type: sequence, expected a policy: a map with `rules` and optionally `version` and `metadata`",
            ),
            (
                "rules: [a]",
                "invalid policy at rules[0]: invalid type: string \"a\", expected a rule: a map with `name`, `description`, `condition` and `result` at line 1 column 9",
            ),
            (
                "rules:\n  - name: a\n    condition: 'true'\n    result: healthy\n    priority: 1\n",
                "invalid policy at rules[0].priority: unknown field `priority`, expected one of `name`, `description`, \
                 `condition`, `result` at line 5 column 5",
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
        ];
        for (yaml, message) in cases {
            assert_eq!(parse(yaml).unwrap_err().to_string(), message, "{yaml}");
        }
    }
}
