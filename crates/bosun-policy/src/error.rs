//! [`PolicyError`]: everything that can be wrong with a policy or an events file.
//!
//! Every message names where the problem is (a document path, or a rule by name and
//! position), so the server can answer `invalid_argument` with it unchanged and an operator
//! can fix the file without guessing.

use std::fmt;

/// Which kind of document a [`PolicyError::Document`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A health policy (YAML).
    Policy,
    /// A list of sample events for `bosun policy check --events` (YAML or JSON).
    Events,
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocumentKind::Policy => "policy",
            DocumentKind::Events => "events file",
        })
    }
}

/// Why a policy could not be loaded, or an events file could not be read.
///
/// Rule errors met while *evaluating* an event are not `PolicyError`s: they are reported
/// in the event's [`Verdict`](bosun_core::Verdict) and evaluation goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not a well-formed document of the expected shape (YAML syntax, a value of
    /// the wrong type, an unknown key) or a value in it is invalid.
    #[error("invalid {document}{}: {problem}", at(path))]
    Document {
        document: DocumentKind,
        /// Where in the document, e.g. `rules[1].priority` or `events[2].system`; empty
        /// for the document as a whole.
        path: String,
        problem: String,
    },
    /// The policy has no rules at all.
    #[error("invalid policy at rules: at least one rule is required")]
    NoRules,
    /// One rule is invalid: a missing name, condition or result, a duplicate name, or a
    /// condition that does not compile.
    #[error("invalid policy: {}: {problem}", rule_label(*index, name))]
    Rule {
        /// Position in `rules`, from 0.
        index: usize,
        /// The rule's name as written (may be empty).
        name: String,
        problem: String,
    },
    /// The `xids` section does not make a valid catalog (a bad entry, a code twice).
    #[error("invalid policy: {0}")]
    Xids(String),
    /// The CEL environment could not be set up. A bug in bosun, never bad input.
    #[error("internal error: the CEL environment could not be set up: {0}")]
    Engine(String),
}

impl PolicyError {
    /// Whether the error is the input's fault (answer `invalid_argument`) rather than
    /// bosun's (answer `internal`).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, PolicyError::Engine(_))
    }

    /// The error as a field error of the policy a caller sent (`policy.rules[0]: rule
    /// "broken": condition does not compile: ...`), for answers to a request; `None` for
    /// bosun's own failures.
    pub fn as_validation_error(&self) -> Option<bosun_core::ValidationError> {
        use bosun_core::ValidationError;
        let field = |path: &str| if path.is_empty() { "policy".to_owned() } else { format!("policy.{path}") };
        Some(match self {
            PolicyError::Document { path, problem, .. } => ValidationError::new(field(path), problem),
            PolicyError::NoRules => ValidationError::new("policy.rules", "at least one rule is required"),
            PolicyError::Rule { index, name, problem } if name.trim().is_empty() => {
                ValidationError::new(format!("policy.rules[{index}]"), problem)
            }
            PolicyError::Rule { index, name, problem } => {
                ValidationError::new(format!("policy.rules[{index}]"), format_args!("rule {name:?}: {problem}"))
            }
            PolicyError::Xids(problem) => ValidationError::new("policy.xids", problem),
            PolicyError::Engine(_) => return None,
        })
    }

    pub(crate) fn rule(index: usize, name: &str, problem: impl fmt::Display) -> Self {
        PolicyError::Rule { index, name: name.to_owned(), problem: problem.to_string() }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!(" at {path}") }
}

/// `rule "fatal-xid" (rules[0])`, or `rules[3]` for a rule without a name.
fn rule_label(index: usize, name: &str) -> String {
    if name.trim().is_empty() { format!("rules[{index}]") } else { format!("rule {name:?} (rules[{index}])") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let cases = [
            (
                PolicyError::Document {
                    document: DocumentKind::Policy,
                    path: "rules[1].priority".into(),
                    problem: "unknown field `priority`".into(),
                },
                "invalid policy at rules[1].priority: unknown field `priority`",
            ),
            (
                PolicyError::Document {
                    document: DocumentKind::Events,
                    path: String::new(),
                    problem: "expected a sequence".into(),
                },
                "invalid events file: expected a sequence",
            ),
            (
                PolicyError::rule(0, "fatal-xid", "condition is required"),
                "invalid policy: rule \"fatal-xid\" (rules[0]): condition is required",
            ),
            (PolicyError::rule(3, "", "name is required"), "invalid policy: rules[3]: name is required"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
            assert!(error.is_invalid_input());
        }
        assert!(!PolicyError::Engine("duplicate overload".into()).is_invalid_input());
    }
}
