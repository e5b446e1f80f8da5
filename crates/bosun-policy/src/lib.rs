//! bosun's health policies: operator-written CEL rules that classify the raw hardware
//! events agents report (SPEC 3.2 and 8).
//!
//! **Architecture Invariant:** this crate knows the CEL engine and the policy format, and
//! nothing of the store, the API or the server. It takes core types in ([`HealthEvent`])
//! and gives core types out ([`Verdict`], [`HealthReport`]).
//!
//! **Architecture Invariant:** only the `engine` module names the `cel` crate, whose API
//! breaks every few months.
//!
//! Layout:
//! - `document`: the YAML format, strictly parsed and validated rule by rule.
//! - `engine`: the `cel` wrapper: compilation, the `event` variable, metered evaluation.
//! - `metric`: how metric text is typed (int, then double, then bool, else string).
//! - [`Policy`]: a compiled policy; [`Policy::classify`] one event, [`Policy::report`] a
//!   whole health report.
//! - [`BUILTIN_POLICY_YAML`] and [`Policy::builtin`]: the default policy.
//! - [`approval`]: approval policies: CEL rules over an operation (tool, risk, actor,
//!   targets, pool) deciding allow, require approval or deny.
//! - [`check`]: events files and output for `bosun policy check`.
//! - [`bench`](mod@bench): `bosun bench policy`.
//! - [`PolicyError`]: every load error, naming the rule or the document path.
//!
//! ```
//! use bosun_core::{EventType, Health, HealthEvent, HealthSystem, Timestamp};
//! use bosun_policy::Policy;
//!
//! let policy = Policy::builtin()?;
//! let event = HealthEvent {
//!     timestamp: Timestamp::UNIX_EPOCH,
//!     gpu_index: 3,
//!     gpu_uuid: "GPU-3".into(),
//!     system: HealthSystem::Driver,
//!     event_type: EventType::Xid,
//!     metrics: [("xid_code".to_owned(), "79".to_owned())].into(),
//!     message: "GPU has fallen off the bus".into(),
//! };
//! let verdict = policy.classify(&event);
//! assert_eq!((verdict.health, verdict.rule.as_deref()), (Health::Unhealthy, Some("fatal-xid")));
//! # Ok::<(), bosun_policy::PolicyError>(())
//! ```
//!
//! [`HealthEvent`]: bosun_core::HealthEvent
//! [`Verdict`]: bosun_core::Verdict
//! [`HealthReport`]: bosun_core::HealthReport

pub mod approval;
pub mod bench;
mod builtin;
pub mod check;
mod document;
mod engine;
mod error;
mod metric;
mod policy;
mod strict;

pub use builtin::BUILTIN_POLICY_YAML;
pub use document::MAX_CONDITION_LEN;
pub use engine::{Budget, MAX_EXPRESSION_DEPTH};
pub use error::{DocumentKind, PolicyError};
pub use policy::{Policy, Rule};
pub use strict::POLICY_LIMITS;
