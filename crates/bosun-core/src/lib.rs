//! bosun's domain model.
//!
//! **Architecture Invariant:** this crate does no IO and knows neither wire (protobuf) nor
//! SQL types. It is the vocabulary every other crate speaks; the API crate converts to and
//! from the wire, the store crate to and from rows.
//!
//! Layout:
//! - [`time`]: [`Timestamp`] (microsecond UTC) and the injectable [`Clock`].
//! - [`ids`]: validated identifiers ([`NodeId`], [`InstanceId`], [`CommandId`], [`PoolName`])
//!   and record [`Revision`]s.
//! - [`labels`]: [`Labels`] and equality [`LabelSelector`]s.
//! - [`lifecycle`]: the node, instance and command state machines, the only place
//!   transitions are decided.
//! - [`node`], [`instance`], [`command`], [`health`], [`metrics`], [`pool`], [`bootstrap`],
//!   [`policy`]: the fleet's resources.
//! - [`remediation`]: graded remediation: the action a fault asks for and the ladder a
//!   node climbs (reset GPU, reboot, replace); [`xid`]: the XID catalog it reads.
//! - [`autoscale`]: the autoscaler math: a pool's target size and why, within its bounds
//!   and cooldown (SPEC 3.6).
//! - [`selection`]: which provider a pool provisions from next, and provider backoff.
//! - [`inventory`]: hosts, VMs, containers, storage and GPU workloads from their sources,
//!   services (named groups of them by label selector), and the sync plan that compares a source's snapshot with what is stored;
//!   [`workloads`]: the limits and checks of an agent's report of its GPU workloads.
//! - [`ledger`]: the operations ledger: runbooks, task runs with events and artifacts,
//!   tools and their calls, approval policies and approvals, audit entries, and [`Role`]s.
//! - [`usage`]: LLM usage, model prices and their cost arithmetic, and control settings
//!   (the MCP kill switch).
//! - [`change`]: change records (history, audit, watch) and [`Actor`]s.
//! - [`validation`]: field-naming validation errors shared by every entry point.

/// Declares a closed enum whose wire, storage and display form is a fixed name per
/// variant, parsed back case-insensitively.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, field = $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used on the wire, in storage and in output.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::validation::ValidationError;
            /// Accepts the name in any case.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(text.trim()))
                    .ok_or_else(|| {
                        let names: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        $crate::validation::ValidationError::new(
                            $field,
                            format_args!("{text:?} is not one of {}", names.join(", ")),
                        )
                    })
            }
        }
    };
}

pub mod autoscale;
pub mod bootstrap;
pub mod change;
pub mod command;
pub mod fault;
pub mod health;
pub mod ids;
pub mod instance;
pub mod inventory;
pub mod labels;
pub mod lease;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod node;
pub mod policy;
pub mod pool;
pub mod remediation;
pub mod selection;
mod serde_secs;
pub mod size;
pub mod stats;
pub mod time;
pub mod usage;
pub mod validation;
pub mod workloads;
pub mod xid;

pub use bootstrap::{BootstrapCommandLog, BootstrapLog};
pub use change::{Actor, ChangeOp, ChangeRecord, ResourceKind};
pub use command::{Command, CommandEvent, CommandKind};
pub use health::{CheckResult, ClassifiedEvent, EventType, Health, HealthEvent, HealthReport, HealthSystem, Verdict};
pub use ids::{
    ApprovalId, ApprovalPolicyName, CommandId, InstanceId, LeaseName, LlmUsageId, NodeId, PoolName, ReplicaId,
    Revision, RunId, RunbookName, ServiceName, SourceName, ToolName,
};
pub use instance::Instance;
pub use labels::{LabelSelector, Labels};
pub use lease::{Fence, Lease, LeaseObservation, ReplicaPresence};
pub use ledger::{
    Approval, ApprovalDecision, ApprovalOutcome, ApprovalPolicy, Artifact, AuditEntry, AuditOutcome, PolicyDecision,
    Role, RunEvent, RunEventType, RunKind, RunTarget, Runbook, TaskRun, ToolCall, ToolCallStatus, ToolDefinition,
    ToolRisk,
};
pub use lifecycle::{
    CommandState, CommandTrigger, InstanceState, InstanceTrigger, NodeStatus, NodeTrigger, RunStatus, RunTrigger,
    TransitionError,
};
pub use metrics::{GpuSample, Heartbeat, MetricSample};
pub use node::{Gpu, Node, NodeMetadata, NodeRegistration};
pub use policy::StoredPolicy;
pub use pool::{Pool, PoolSpec, PoolStatus};
pub use remediation::{Remediation, RemediationAction, RemediationSpec};
pub use time::{Clock, FakeClock, SystemClock, Timestamp};
pub use usage::{Cost, LlmText, LlmUsage, Price, Setting, UsageFilter, UsageGroup, UsageKey, UsageRow};
pub use validation::ValidationError;
