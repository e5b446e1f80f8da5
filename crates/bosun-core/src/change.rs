//! The change log (SPEC 3.8): one record per mutation of hard state, written in the same
//! transaction as the mutation. It is the source of per-resource history, the audit trail
//! and watch streams.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::{ValidationError, check_identifier};
use crate::{NodeId, Revision, Timestamp};

named_enum!(
    /// The kinds of hard-state record the store keeps.
    ResourceKind, field = "kind" {
        Node => "node",
        Instance => "instance",
        Command => "command",
        Pool => "pool",
        Policy => "policy",
        Lease => "lease",
        Runbook => "runbook",
        Run => "run",
        Tool => "tool",
        ApprovalPolicy => "approval_policy",
        Approval => "approval",
        Host => "host",
        Vm => "vm",
        Container => "container",
        Storage => "storage",
        Workload => "workload",
        Drift => "drift",
        Service => "service",
        Price => "price",
        LlmUsage => "llm_usage",
        Setting => "setting",
    }
);

// `price`, `llm_usage` and `setting` name records in errors only: they are kept without
// change records (prices and settings are audited by the API; usage is appended).
impl ResourceKind {
    /// Whether the change log is the only place its resources are kept: a drift report
    /// (the inventory's difference from its declaration) has no row of its own, each
    /// record is the report as it was from then on.
    pub fn is_log_only(self) -> bool {
        matches!(self, ResourceKind::Drift)
    }
}

named_enum!(
    /// What a change did to its resource.
    ChangeOp, field = "op" {
        Created => "created",
        Updated => "updated",
        Deleted => "deleted",
    }
);

/// Who made a change: a node's agent, an operator, or one of bosun's own loops.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    Node(NodeId),
    /// An authenticated operator, by the identity attached to their token.
    Operator(String),
    /// A control-plane loop or service, e.g. `liveness`, `pool-reconciler`, `seed`.
    System(String),
}

impl Actor {
    pub fn system(component: &str) -> Self {
        Actor::System(component.to_owned())
    }

    pub fn operator(identity: &str) -> Self {
        Actor::Operator(identity.to_owned())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Node(id) => write!(f, "node:{id}"),
            Actor::Operator(who) => write!(f, "operator:{who}"),
            Actor::System(what) => write!(f, "system:{what}"),
        }
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Actor {
    type Err = ValidationError;
    /// Parses `node:<id>`, `operator:<identity>` or `system:<component>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            ValidationError::new(
                "actor",
                format_args!("{text:?} is not of the form node:<id>, operator:<name> or system:<component>"),
            )
        };
        let (kind, name) = text.split_once(':').ok_or_else(invalid)?;
        check_identifier("actor", name, 128).map_err(|_| invalid())?;
        match kind {
            "node" => Ok(Actor::Node(NodeId::new(name)?)),
            "operator" => Ok(Actor::Operator(name.to_owned())),
            "system" => Ok(Actor::System(name.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> String {
        actor.to_string()
    }
}

/// One entry of the change log. `D` is the form of its resource document: a value here; the
/// store's transfers carry the JSON text instead (`bosun_store::transfer::ChangeEntry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord<D = serde_json::Value> {
    /// Position in the log; strictly increasing in commit order within one store.
    pub seq: u64,
    pub at: Timestamp,
    pub kind: ResourceKind,
    pub resource_id: String,
    pub op: ChangeOp,
    /// The resource's revision after the change (its last revision for a delete).
    pub revision: Revision,
    pub actor: Actor,
    pub reason: String,
    /// The resource as it was after the change (as it was before, for a delete). Soft
    /// state such as heartbeat times is not part of it.
    pub resource: D,
}

impl<D> ChangeRecord<D> {
    /// The same change with its document turned into another form by `convert`.
    pub fn try_map_resource<E, Error>(
        self,
        convert: impl FnOnce(D) -> Result<E, Error>,
    ) -> Result<ChangeRecord<E>, Error> {
        Ok(ChangeRecord {
            resource: convert(self.resource)?,
            seq: self.seq,
            at: self.at,
            kind: self.kind,
            resource_id: self.resource_id,
            op: self.op,
            revision: self.revision,
            actor: self.actor,
            reason: self.reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_text() {
        for text in ["node:gpu-1", "operator:alice", "system:liveness"] {
            let actor: Actor = text.parse().expect("valid actor");
            assert_eq!(actor.to_string(), text);
        }
        for bad in ["alice", "robot:x", "node:", "operator:has space"] {
            assert!(bad.parse::<Actor>().is_err(), "{bad}");
        }
    }
}
