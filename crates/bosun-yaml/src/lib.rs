//! bosun's one YAML decoder, shared by the configuration file, health policies and
//! simulator scenarios.
//!
//! **Strict:** a document is decoded straight into its schema through
//! `serde_path_to_error`, so an unknown key (with `deny_unknown_fields`) or a value of the
//! wrong type is an error naming its key path and line.
//!
//! **Bounded:** before the parser sees a byte, [`Limits`] are checked on the raw text:
//! its size, how deeply it nests, and how many flow collections (`[`, `{`) it opens.
//! libyaml, under `yaml_serde`, spends time quadratic in the nesting of flow mappings (a
//! 320 KB `{a: {a: ...}}` took 15 s on one core); the count of `[` and `{` characters is
//! an upper bound on that nesting whatever the document's quoting, so bounding it bounds
//! the parse. The nesting scan that comes first only exists to say where a document is too
//! deep in words an author can act on.
//!
//! Callers that take documents from the network (SetPolicy, TestPolicy) still parse on a
//! blocking thread: bounded is not free.

mod error;
mod scan;

pub use error::{Error, LimitError};
pub use serde_yaml::Value;

use serde::de::DeserializeOwned;

/// How large and how deeply nested a document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the text, in bytes.
    pub max_bytes: usize,
    /// Nesting of collections (block indentation levels plus flow brackets).
    pub max_depth: usize,
    /// `[` and `{` characters in the whole text, quoted or not.
    pub max_flow_openers: usize,
}

impl Limits {
    /// Documents bosun reads from files it was pointed at (configuration, scenarios):
    /// larger than any real one, small enough to parse in well under a second.
    pub const FILE: Limits = Limits { max_bytes: 16 * 1024 * 1024, max_depth: 64, max_flow_openers: 16 * 1024 };

    /// The same document size with another byte limit.
    pub const fn with_max_bytes(self, max_bytes: usize) -> Limits {
        Limits { max_bytes, ..self }
    }
}

/// Checks `text` against `limits` without parsing it.
pub fn check(text: &str, limits: &Limits) -> Result<(), LimitError> {
    scan::check(text, limits)
}

/// Decodes `text` as a `T`: limits first, then YAML syntax, then the schema.
///
/// `T` must use `#[serde(deny_unknown_fields)]` all the way down for unknown keys to be
/// errors.
pub fn from_str<T: DeserializeOwned>(text: &str, limits: &Limits) -> Result<T, Error> {
    check(text, limits)?;
    // A syntax error is reported as one: the typed pass reads lazily and could first trip
    // over a key it does not know. The typed pass then reads the text, not this tree,
    // because only the text deserializer knows line numbers and reads `tier: 1` into a
    // string-valued field as `"1"`.
    serde_yaml::from_str::<Value>(text).map_err(Error::syntax)?;
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(Error::schema)
}

/// Parses `text` into a generic YAML tree, within `limits`.
pub fn value_from_str(text: &str, limits: &Limits) -> Result<Value, Error> {
    check(text, limits)?;
    serde_yaml::from_str::<Value>(text).map_err(Error::syntax)
}
