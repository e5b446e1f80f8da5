//! [`Policy`]: a compiled health policy, and event classification with it (SPEC 3.2).

use bosun_core::xid::XidCatalog;
use bosun_core::{
    CheckResult, ClassifiedEvent, Health, HealthEvent, HealthReport, NodeId, RemediationAction, Timestamp, Verdict,
};

use crate::document::{self, RuleSpec};
use crate::engine::{Budget, COMPILE_STACK, Condition, Engine};
use crate::error::PolicyError;

/// A health policy whose every condition compiled.
///
/// Loading does all the checking (shape, rules, CEL syntax), so a `Policy` that exists can
/// classify any event: rule errors on a particular event are reported in its
/// [`Verdict`], never raised. A policy is immutable, `Send` and `Sync`: share it behind an
/// `Arc` and swap the `Arc` to change policies.
#[derive(Debug)]
pub struct Policy {
    version: String,
    name: String,
    description: String,
    rules: Vec<Rule>,
    source: String,
    budget: Budget,
    engine: Engine,
    /// The built-in XID catalog with this policy's `xids` overrides.
    catalog: XidCatalog,
}

/// One rule of a compiled policy.
#[derive(Debug)]
pub struct Rule {
    spec: RuleSpec,
    condition: Condition,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn description(&self) -> &str {
        &self.spec.description
    }

    /// The CEL source of the condition, as written.
    pub fn condition(&self) -> &str {
        &self.spec.condition
    }

    /// What an event matching this rule is: healthy, degraded or unhealthy.
    pub fn result(&self) -> Health {
        self.spec.result
    }

    /// What an event matching this rule asks of its machine.
    pub fn action(&self) -> RemediationAction {
        self.spec.action
    }
}

impl Policy {
    /// Parses, validates and compiles a policy document.
    ///
    /// Fails naming the problem: a YAML path (unknown key, wrong type), a rule (missing
    /// or duplicate name, missing condition, bad result), or a rule's CEL syntax error.
    ///
    /// The work runs on a thread of its own with a large stack (cel's parser recurses
    /// deeply on long operator chains), so any caller's thread is safe; callers on an async
    /// runtime should still call it from a blocking thread, as it costs milliseconds.
    pub fn from_yaml(yaml: &str) -> Result<Self, PolicyError> {
        let yaml = yaml.to_owned();
        std::thread::Builder::new()
            .name("bosun-policy-compile".to_owned())
            .stack_size(COMPILE_STACK)
            .spawn(move || Self::compile(yaml))
            .map_err(|error| PolicyError::Engine(format!("cannot start the compiler thread: {error}")))?
            .join()
            .map_err(|_| PolicyError::Engine("the policy compiler panicked".to_owned()))?
    }

    fn compile(yaml: String) -> Result<Self, PolicyError> {
        let spec = document::parse(&yaml)?;
        let catalog = XidCatalog::builtin().with_overrides(spec.xids).map_err(|e| PolicyError::Xids(e.to_string()))?;
        let engine = Engine::new().map_err(PolicyError::Engine)?;
        let rules = spec
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, spec)| match engine.compile(&spec.condition) {
                Ok(condition) => Ok(Rule { spec, condition }),
                Err(problem) => {
                    Err(PolicyError::rule(index, &spec.name, format_args!("condition does not compile: {problem}")))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            version: spec.version,
            name: spec.name,
            description: spec.description,
            rules,
            source: yaml,
            budget: Budget::default(),
            engine,
            catalog,
        })
    }

    /// Replaces the per-rule evaluation budget (the default suits any health predicate).
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The document's `version`, as written (free-form).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.description`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The YAML the policy was loaded from, to store or show it exactly as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The XID catalog the policy classifies with: the built-in one and the policy's
    /// `xids` overrides.
    pub fn xid_catalog(&self) -> &XidCatalog {
        &self.catalog
    }

    /// Classifies one event: the first rule whose condition is true decides, and no match
    /// means healthy.
    ///
    /// A rule whose condition fails on this event (a missing key, a type mismatch, a
    /// result that is not a bool, an exhausted budget) is listed in
    /// [`Verdict::errors`] with the problem, and the next rule is tried.
    pub fn classify(&self, event: &HealthEvent) -> Verdict {
        let mut activation = self.engine.activate(event, &self.catalog);
        let mut errors = Vec::new();
        for rule in &self.rules {
            match activation.evaluate(&rule.condition, self.budget) {
                Ok(true) => {
                    return Verdict {
                        health: rule.result(),
                        rule: Some(rule.spec.name.clone()),
                        action: rule.action(),
                        errors,
                    };
                }
                Ok(false) => {}
                Err(problem) => errors.push(format!("rule {:?}: {problem}", rule.spec.name)),
            }
        }
        Verdict { health: Health::Healthy, rule: None, action: RemediationAction::None, errors }
    }

    /// Classifies each event, keeping their order.
    pub fn classify_all(&self, events: Vec<HealthEvent>) -> Vec<ClassifiedEvent> {
        events
            .into_iter()
            .map(|event| {
                let verdict = self.classify(&event);
                ClassifiedEvent { event, verdict }
            })
            .collect()
    }

    /// Classifies a report's events and builds the report, whose health is the worst of
    /// its check results and event verdicts.
    pub fn report(
        &self,
        node_id: NodeId,
        received_at: Timestamp,
        results: Vec<CheckResult>,
        events: Vec<HealthEvent>,
    ) -> HealthReport {
        HealthReport::new(node_id, received_at, results, self.classify_all(events))
    }
}
