//! Approval policies: which operations go ahead, which wait for a person's approval and
//! which are refused.
//!
//! A policy is an ordered list of rules ([`ApprovalPolicy`] records: position, then name);
//! the first rule whose CEL condition holds for an [`Operation`] decides it. When no rule
//! matches, the operation is allowed. A condition that fails to evaluate on an operation
//! (a type error, an exhausted budget) counts as matching a rule that requires an `admin`
//! approval: a broken rule never lets a destructive operation through unchecked.
//!
//! Conditions see these variables: `tool` (the operation, e.g. `terminate`), `risk`
//! (`read`, `write` or `destructive`), `actor` and `role` (who asks), `kind` (the run's
//! kind), `targets` (how many nodes at once), `pool` (the pool they belong to, or `""`) and
//! `pool_fraction` (targets over the pool's size, 0 without a pool).

use bosun_core::{ApprovalPolicy, ApprovalPolicyName, PolicyDecision, Revision, Role, Timestamp, ToolRisk};

use crate::engine::{Budget, COMPILE_STACK, Condition, Engine};
use crate::error::PolicyError;

/// The built-in rule: a destructive operation on more than 5 nodes at once, or on more
/// than 10% of a pool, needs an admin's approval.
pub const BUILTIN_CONDITION: &str = "risk == 'destructive' && (targets > 5 || pool_fraction > 0.1)";

/// The built-in rule's name.
pub const BUILTIN_NAME: &str = "builtin-destructive-at-scale";

/// The rules in force when none are stored.
pub fn builtin_rules() -> Vec<ApprovalPolicy> {
    vec![ApprovalPolicy {
        name: ApprovalPolicyName::new(BUILTIN_NAME).expect("a valid name"),
        position: 0,
        description: "A destructive operation on more than 5 nodes at once or more than 10% of a pool needs an \
                      admin's approval."
            .into(),
        condition: BUILTIN_CONDITION.into(),
        decision: PolicyDecision::RequireApproval { role: Role::Admin },
        updated_at: Timestamp::UNIX_EPOCH,
        revision: Revision::FIRST,
    }]
}

/// An operation about to run, as approval policies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub tool: String,
    pub risk: ToolRisk,
    pub actor: String,
    pub role: Role,
    /// The run's kind (`runbook`, `replacement`...).
    pub kind: String,
    /// Nodes acted on at once.
    pub targets: u32,
    pub pool: Option<String>,
    /// `targets` over the pool's size; 0 without a pool.
    pub pool_fraction: f64,
}

/// What the policy decided for an operation, and which rule decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub decision: PolicyDecision,
    /// The deciding rule; `None` when no rule matched (allowed).
    pub rule: Option<ApprovalPolicyName>,
    /// Why a rule that failed to evaluate was treated as requiring approval.
    pub error: Option<String>,
}

/// A compiled approval policy.
#[derive(Debug)]
pub struct ApprovalRules {
    rules: Vec<(ApprovalPolicy, Condition)>,
    engine: Engine,
    budget: Budget,
}

impl ApprovalRules {
    /// Compiles `rules` in the order they are tried. Fails naming the first rule whose
    /// condition does not compile. Runs on a thread of its own with a large stack (see
    /// [`crate::Policy::from_yaml`]).
    pub fn compile(rules: Vec<ApprovalPolicy>) -> Result<Self, PolicyError> {
        std::thread::Builder::new()
            .name("bosun-approval-compile".to_owned())
            .stack_size(COMPILE_STACK)
            .spawn(move || Self::compile_here(rules))
            .map_err(|error| PolicyError::Engine(format!("cannot start the compiler thread: {error}")))?
            .join()
            .map_err(|_| PolicyError::Engine("the approval policy compiler panicked".to_owned()))?
    }

    fn compile_here(mut rules: Vec<ApprovalPolicy>) -> Result<Self, PolicyError> {
        rules.sort_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
        let engine = Engine::new().map_err(PolicyError::Engine)?;
        let compiled = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                if rule.condition.len() > crate::MAX_CONDITION_LEN {
                    return Err(PolicyError::rule(
                        index,
                        rule.name.as_str(),
                        format_args!("condition is longer than {} bytes", crate::MAX_CONDITION_LEN),
                    ));
                }
                match engine.compile(&rule.condition) {
                    Ok(condition) => Ok((rule, condition)),
                    Err(problem) => Err(PolicyError::rule(
                        index,
                        rule.name.as_str(),
                        format_args!("condition does not compile: {problem}"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules: compiled, engine, budget: Budget::default() })
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> impl Iterator<Item = &ApprovalPolicy> {
        self.rules.iter().map(|(rule, _)| rule)
    }

    /// Decides `operation`: the first matching rule's decision, else allow.
    pub fn decide(&self, operation: &Operation) -> Decision {
        let mut activation = self.engine.activate_operation(operation);
        for (rule, condition) in &self.rules {
            match activation.evaluate(condition, self.budget) {
                Ok(true) => return Decision { decision: rule.decision, rule: Some(rule.name.clone()), error: None },
                Ok(false) => {}
                Err(problem) => {
                    return Decision {
                        decision: PolicyDecision::RequireApproval { role: Role::Admin },
                        rule: Some(rule.name.clone()),
                        error: Some(problem),
                    };
                }
            }
        }
        Decision { decision: PolicyDecision::Allow, rule: None, error: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(risk: ToolRisk, targets: u32, pool_size: u32) -> Operation {
        Operation {
            tool: "terminate".into(),
            risk,
            actor: "alice".into(),
            role: Role::Operator,
            kind: "runbook".into(),
            targets,
            pool: Some("training".into()),
            pool_fraction: f64::from(targets) / f64::from(pool_size),
        }
    }

    fn rule(name: &str, position: i32, condition: &str, decision: PolicyDecision) -> ApprovalPolicy {
        ApprovalPolicy {
            name: ApprovalPolicyName::new(name).expect("valid"),
            position,
            description: String::new(),
            condition: condition.into(),
            decision,
            updated_at: Timestamp::UNIX_EPOCH,
            revision: Revision::FIRST,
        }
    }

    #[test]
    fn the_builtin_rule_asks_an_admin_for_destructive_operations_at_scale() {
        let rules = ApprovalRules::compile(builtin_rules()).expect("compiles");
        let admin = PolicyDecision::RequireApproval { role: Role::Admin };
        let cases = [
            (ToolRisk::Destructive, 6, 1000, admin),
            (ToolRisk::Destructive, 2, 10, admin),
            (ToolRisk::Destructive, 5, 100, PolicyDecision::Allow),
            (ToolRisk::Destructive, 1, 10, PolicyDecision::Allow),
            (ToolRisk::Write, 50, 100, PolicyDecision::Allow),
        ];
        for (risk, targets, pool_size, expected) in cases {
            let decision = rules.decide(&operation(risk, targets, pool_size));
            assert_eq!(decision.decision, expected, "{risk} on {targets} of {pool_size}");
        }
    }

    #[test]
    fn the_first_matching_rule_decides_by_position_then_name() {
        let rules = ApprovalRules::compile(vec![
            rule("z-allow-alice", 1, "actor == 'alice'", PolicyDecision::Allow),
            rule("a-deny-terminate", 1, "tool == 'terminate'", PolicyDecision::Deny),
            rule("first", 0, "role == 'admin'", PolicyDecision::Allow),
        ])
        .expect("compiles");
        let names: Vec<&str> = rules.rules().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["first", "a-deny-terminate", "z-allow-alice"]);
        let decision = rules.decide(&operation(ToolRisk::Destructive, 1, 10));
        assert_eq!(
            (decision.decision, decision.rule.map(String::from)),
            (PolicyDecision::Deny, Some("a-deny-terminate".into()))
        );
    }

    #[test]
    fn a_rule_that_fails_to_evaluate_requires_an_admin() {
        let rules = ApprovalRules::compile(vec![rule("broken", 0, "targets + 'x' == 1", PolicyDecision::Allow)])
            .expect("compiles");
        let decision = rules.decide(&operation(ToolRisk::Read, 1, 10));
        assert_eq!(decision.decision, PolicyDecision::RequireApproval { role: Role::Admin });
        assert!(decision.error.is_some());
    }

    #[test]
    fn a_condition_that_does_not_compile_names_its_rule() {
        let error = ApprovalRules::compile(vec![rule("bad", 0, "targets >", PolicyDecision::Deny)]).unwrap_err();
        assert!(error.to_string().contains("bad"), "{error}");
    }
}
