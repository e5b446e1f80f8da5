//! The one error type of this crate.

use std::fmt;
use std::path::{Path, PathBuf};

use bosun_core::ValidationError;

/// Which stage rejected the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Read,
    /// `${VAR}` expansion failed: a variable is missing or a reference is malformed.
    Expand,
    /// The text is not well-formed YAML.
    Syntax,
    /// The YAML does not fit the schema: an unknown key, a wrong type, a bad duration.
    Schema,
    /// Every value has the right shape but the configuration is not usable, e.g. a pool
    /// names a provider that does not exist.
    Invalid,
}

/// Why a configuration could not be loaded.
///
/// Displays as one line naming the file (when there is one), the key path and the
/// problem, e.g. `bosun.yaml: pools.training.autoscalng: unknown key; expected one of
/// provider, providers, ...`. It never contains a secret's value.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    file: Option<PathBuf>,
    key: Option<String>,
    line: Option<usize>,
    problem: String,
}

impl ConfigError {
    fn new(kind: ConfigErrorKind, key: Option<String>, line: Option<usize>, problem: impl fmt::Display) -> Self {
        Self { kind, file: None, key, line, problem: problem.to_string() }
    }

    pub(crate) fn read(file: &Path, source: &std::io::Error) -> Self {
        Self::new(ConfigErrorKind::Read, None, None, format_args!("cannot read the file: {source}")).in_file(file)
    }

    pub(crate) fn expand(line: usize, problem: impl fmt::Display) -> Self {
        Self::new(ConfigErrorKind::Expand, None, Some(line), problem)
    }

    pub(crate) fn syntax(problem: impl fmt::Display) -> Self {
        Self::new(ConfigErrorKind::Syntax, None, None, problem)
    }

    pub(crate) fn schema(key: Option<String>, line: Option<usize>, problem: impl fmt::Display) -> Self {
        Self::new(ConfigErrorKind::Schema, key, line, problem)
    }

    /// A semantic problem with the value at `key`.
    pub(crate) fn invalid(key: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self::new(ConfigErrorKind::Invalid, Some(key.into()), None, problem)
    }

    /// A core validation error about a field under `parent`.
    pub(crate) fn from_validation(parent: &str, error: ValidationError) -> Self {
        let key = if error.field.is_empty() { parent.to_owned() } else { format!("{parent}.{}", error.field) };
        Self::invalid(key, error.problem)
    }

    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_owned());
        self
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The configuration file, when the configuration came from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Dotted path of the offending key, e.g. `pools.training.providers[1].name`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// 1-based line of the file, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong, without file, key or line.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        match (&self.key, self.line) {
            (Some(key), Some(line)) => write!(f, "{key}: {} (line {line})", self.problem),
            (Some(key), None) => write!(f, "{key}: {}", self.problem),
            (None, Some(line)) => write!(f, "line {line}: {}", self.problem),
            (None, None) => f.write_str(&self.problem),
        }
    }
}
