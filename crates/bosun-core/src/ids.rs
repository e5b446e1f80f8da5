//! Identifiers of fleet resources and their revisions.
//!
//! Each identifier is a validated newtype: once you hold a [`NodeId`], it is non-empty,
//! bounded and free of characters that would need quoting in a URL, a log line or SQL.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::{ValidationError, check_identifier};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, field = $field:literal, max = $max:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted identifier, in bytes.
            pub const MAX_LEN: usize = $max;

            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_identifier($field, &value, Self::MAX_LEN)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

string_id!(
    /// A node: the provider's instance id unless the agent was given one.
    NodeId, field = "node_id", max = 128
);
string_id!(
    /// bosun's own id for a cloud instance, chosen before the provider is called so a
    /// crash mid-provisioning can be reconciled (the provider's id may not exist yet).
    InstanceId, field = "instance_id", max = 128
);
string_id!(
    /// A pool's name, as written in the configuration file.
    PoolName, field = "pool", max = 63
);
string_id!(
    /// One control-plane replica (`bosun server --replica-id`).
    ReplicaId, field = "replica_id", max = 128
);
string_id!(
    /// A lease replicas compete for (bosun's leader lease is `leader`).
    LeaseName, field = "lease", max = 63
);

string_id!(
    /// A runbook (a named task definition in the operations ledger).
    RunbookName, field = "runbook", max = 63
);
string_id!(
    /// A tool an operator or an AI agent may call through bosun.
    ToolName, field = "tool", max = 63
);
string_id!(
    /// One rule of the approval policy.
    ApprovalPolicyName, field = "approval_policy", max = 63
);
string_id!(
    /// A source of inventory: a configured Proxmox cluster (`pve1`), or `agents`.
    SourceName, field = "source", max = 63
);
string_id!(
    /// A service of the inventory: a named group of VMs, containers or workloads, declared
    /// in the configuration (`inventory.services`).
    ServiceName, field = "service", max = 63
);

/// Declares an id that is a UUIDv7 stamped with the time it was made, so ids sort in the
/// order their records were created.
macro_rules! time_ordered_id {
    ($(#[$meta:meta])* $name:ident, field = $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id whose embedded time is `at`, so ids sort by creation time even
            /// under a fake clock.
            pub fn new_at(at: crate::Timestamp) -> Self {
                let micros = u64::try_from(at.unix_micros()).unwrap_or(0);
                let ts = uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    micros / 1_000_000,
                    u32::try_from((micros % 1_000_000) * 1000).unwrap_or(0),
                );
                Self(Uuid::new_v7(ts))
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(value)
                    .map(Self)
                    .map_err(|_| ValidationError::new($field, format_args!("{value:?} is not a UUID")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

time_ordered_id!(
    /// A command's id.
    CommandId, field = "command_id"
);
time_ordered_id!(
    /// A task run's id.
    RunId, field = "run_id"
);
time_ordered_id!(
    /// A recorded LLM request's id.
    LlmUsageId, field = "usage_id"
);
time_ordered_id!(
    /// An approval's id.
    ApprovalId, field = "approval_id"
);

/// The version of one stored record. Starts at 1 on create and grows by exactly one on
/// every update, so "expected revision" compare-and-set is cheap and gaps are visible.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    pub const FIRST: Revision = Revision(1);

    pub fn new(value: u64) -> Option<Self> {
        (value > 0).then_some(Self(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn string_ids_validate_on_every_path_in() {
        assert!(NodeId::new("n1").is_ok());
        assert_eq!(NodeId::new("").unwrap_err().field, "node_id");
        assert!("bad id".parse::<InstanceId>().is_err());
        assert!(serde_json::from_str::<PoolName>("\"with space\"").is_err());
        let id: NodeId = serde_json::from_str("\"gpu-7\"").expect("valid id");
        assert_eq!(serde_json::to_string(&id).expect("serializes"), "\"gpu-7\"");
        assert!(PoolName::new("p".repeat(64)).is_err());
    }

    #[test]
    fn command_ids_sort_by_issue_time() {
        let t0 = Timestamp::from_unix_micros(1_767_225_600_000_000);
        let mut ids: Vec<CommandId> =
            (0..50).map(|i| CommandId::new_at(t0 + std::time::Duration::from_millis(i))).collect();
        let issued = ids.clone();
        ids.sort();
        assert_eq!(ids, issued);
        let text = issued[0].to_string();
        assert_eq!(text.parse::<CommandId>().expect("parses"), issued[0]);
        assert!("nope".parse::<CommandId>().is_err());
    }

    #[test]
    fn revisions_start_at_one() {
        assert_eq!(Revision::new(0), None);
        assert_eq!(Revision::FIRST.next().get(), 2);
    }
}
