//! Approval policy documents, set with `bosun approvals policy set FILE`: the rules in the
//! order they are tried.
//!
//! ```yaml
//! rules:
//!   - name: admin-for-mass-terminate
//!     description: Terminating many machines needs an admin.
//!     condition: "risk == 'destructive' && (targets > 5 || pool_fraction > 0.1)"
//!     decision: require_approval
//!     role: admin
//!   - name: no-terminate-in-prod
//!     condition: "tool == 'terminate' && pool == 'prod'"
//!     decision: deny
//! ```

use bosun_core::{ApprovalPolicy, ApprovalPolicyName, PolicyDecision, Revision, Role, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The largest approval policy document accepted.
pub const MAX_APPROVAL_POLICY_BYTES: usize = 256 * 1024;

/// Rules a policy may hold.
pub const MAX_RULES: usize = 200;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    condition: String,
    decision: RawDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum RawDecision {
    Allow,
    RequireApproval,
    Deny,
}

/// Parses an approval policy document into its rules, positioned in the order written
/// (stamped `at`). CEL conditions are compiled by the caller (`bosun_policy::approval`).
pub fn parse_approval_policy(text: &str, at: Timestamp) -> Result<Vec<ApprovalPolicy>, ConfigError> {
    let limits = bosun_yaml::Limits::FILE.with_max_bytes(MAX_APPROVAL_POLICY_BYTES);
    let raw: RawPolicy = crate::parse::parse_document(text, &limits)?;
    if raw.rules.len() > MAX_RULES {
        return Err(ConfigError::invalid("rules", format_args!("{} rules; the limit is {MAX_RULES}", raw.rules.len())));
    }
    let mut names = std::collections::BTreeSet::new();
    raw.rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| {
            let key = format!("rules[{index}]");
            let name = ApprovalPolicyName::new(rule.name)
                .map_err(|e| ConfigError::invalid(format!("{key}.name"), e.problem))?;
            if !names.insert(name.clone()) {
                return Err(ConfigError::invalid(format!("{key}.name"), format_args!("{name} is used twice")));
            }
            if rule.condition.trim().is_empty() {
                return Err(ConfigError::invalid(format!("{key}.condition"), "is required"));
            }
            let decision = match (rule.decision, rule.role) {
                (RawDecision::Allow, None) => PolicyDecision::Allow,
                (RawDecision::Deny, None) => PolicyDecision::Deny,
                (RawDecision::RequireApproval, Some(role)) => PolicyDecision::RequireApproval { role },
                (RawDecision::RequireApproval, None) => {
                    return Err(ConfigError::invalid(
                        format!("{key}.role"),
                        "require_approval names the role that approves",
                    ));
                }
                (_, Some(_)) => {
                    return Err(ConfigError::invalid(format!("{key}.role"), "only require_approval takes a role"));
                }
            };
            Ok(ApprovalPolicy {
                name,
                position: i32::try_from(index).unwrap_or(i32::MAX),
                description: rule.description,
                condition: rule.condition,
                decision,
                updated_at: at,
                revision: Revision::FIRST,
            })
        })
        .collect()
}

/// Renders rules as a document [`parse_approval_policy`] reads back.
pub fn render_approval_policy(rules: &[ApprovalPolicy]) -> String {
    let raw = RawPolicy {
        rules: rules
            .iter()
            .map(|rule| {
                let (decision, role) = match rule.decision {
                    PolicyDecision::Allow => (RawDecision::Allow, None),
                    PolicyDecision::Deny => (RawDecision::Deny, None),
                    PolicyDecision::RequireApproval { role } => (RawDecision::RequireApproval, Some(role)),
                };
                RawRule {
                    name: rule.name.to_string(),
                    description: rule.description.clone(),
                    condition: rule.condition.clone(),
                    decision,
                    role,
                }
            })
            .collect(),
    };
    serde_yaml_render(&raw)
}

fn serde_yaml_render(raw: &RawPolicy) -> String {
    // Rules are strings and enums: rendering cannot fail.
    serde_yaml::to_string(raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_in_order_and_render_back() {
        let text = "\
rules:
  - name: admin-for-many
    condition: \"risk == 'destructive' && targets > 5\"
    decision: require_approval
    role: admin
  - name: deny-prod
    condition: \"pool == 'prod'\"
    decision: deny
";
        let rules = parse_approval_policy(text, Timestamp::UNIX_EPOCH).expect("valid");
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].position, rules[1].position), (0, 1));
        assert_eq!(rules[0].decision, PolicyDecision::RequireApproval { role: Role::Admin });
        let again = parse_approval_policy(&render_approval_policy(&rules), Timestamp::UNIX_EPOCH).expect("round trip");
        assert_eq!(again, rules);
    }

    #[test]
    fn bad_rules_name_their_key() {
        let cases = [
            ("rules:\n  - name: a\n    condition: 'true'\n    decision: require_approval\n", "rules[0].role"),
            ("rules:\n  - name: a\n    condition: 'true'\n    decision: allow\n    role: admin\n", "rules[0].role"),
            ("rules:\n  - name: a\n    condition: 'true'\n    decision: maybe\n", "rules[0].decision"),
            ("rules:\n  - name: a\n    condition: 'true'\n    decision: deny\n    when: x\n", "rules[0]"),
            (
                "rules:\n  - {name: a, condition: 'true', decision: deny}\n  - {name: a, condition: 'x', decision: deny}\n",
                "rules[1].name",
            ),
            ("rules:\n  - name: a\n    condition: ' '\n    decision: deny\n", "rules[0].condition"),
        ];
        for (text, key) in cases {
            let message = parse_approval_policy(text, Timestamp::UNIX_EPOCH).expect_err(text).to_string();
            assert!(message.contains(key), "{text}: {message}");
        }
    }
}
