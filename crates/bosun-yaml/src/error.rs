//! What can be wrong with a document, in pieces each caller phrases in its own words.

use std::fmt;

/// A document exceeded a [`Limits`](crate::Limits) bound; nothing was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the document is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the document nests more than {max} levels deep at line {line}")]
    TooDeep { line: usize, max: usize },
    #[error(
        "the document opens {count} flow collections (`[` or `{{`); the limit is {max} (write lists and maps in block style)"
    )]
    TooManyFlowCollections { count: usize, max: usize },
}

/// Why a document could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Limit(LimitError),
    /// Not YAML. `message` is the parser's, with its location.
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// YAML, but not of the expected shape (unknown key, wrong type, bad value).
    Schema {
        /// The key path of the offending value (`pools.a.providers[0].name`); `None` for the
        /// document as a whole.
        path: Option<String>,
        /// Line and column, when the parser knows them.
        location: Option<(usize, usize)>,
        /// The problem alone, without the location and the key path, which are separate.
        problem: String,
        /// The problem as the parser phrased it (some messages end with their location,
        /// some do not), without the key path.
        message: String,
    },
}

impl Error {
    pub(crate) fn syntax(error: serde_yaml::Error) -> Self {
        Error::Syntax { line: error.location().map(|l| l.line()), message: error.to_string() }
    }

    pub(crate) fn schema(error: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let path = error.path().to_string();
        let path = (path != ".").then_some(path);
        let inner = error.inner();
        let location = inner.location().map(|l| (l.line(), l.column()));
        let mut message = inner.to_string();
        // yaml_serde starts its messages with the path of the failing value, or for an
        // unknown key of the mapping holding it (`.[1]: ` in a top-level list); the path
        // reported beside the problem is more precise, so drop the duplicate.
        if let Some(path) = &path
            && let Some((prefix, rest)) = message.split_once(": ")
            && is_ancestor(prefix.trim_start_matches('.'), path)
        {
            message = rest.to_owned();
        }
        let problem = match location {
            Some((line, column)) => message.strip_suffix(&format!(" at line {line} column {column}")),
            None => None,
        }
        .unwrap_or(&message)
        .to_owned();
        Error::Schema { path, location, problem, message }
    }

    /// The line the problem is on, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Limit(LimitError::TooDeep { line, .. }) => Some(*line),
            Error::Limit(_) => None,
            Error::Syntax { line, .. } => *line,
            Error::Schema { location, .. } => location.map(|(line, _)| line),
        }
    }
}

/// `a.b[0]` is an ancestor of `a.b[0].c` (and of itself).
fn is_ancestor(prefix: &str, path: &str) -> bool {
    !prefix.is_empty()
        && path.starts_with(prefix)
        && matches!(path[prefix.len()..].chars().next(), None | Some('.' | '['))
}

impl From<LimitError> for Error {
    fn from(error: LimitError) -> Self {
        Error::Limit(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Limit(error) => error.fmt(f),
            Error::Syntax { message, .. } => f.write_str(message),
            Error::Schema { path, message, .. } => {
                if let Some(path) = path {
                    write!(f, "{path}: ")?;
                }
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors() {
        assert!(is_ancestor("rules[1]", "rules[1].nmae"));
        assert!(is_ancestor("[1]", "[1].nmae"));
        assert!(is_ancestor("a", "a"));
        assert!(!is_ancestor("rules[1", "rules[1].nmae"));
        assert!(!is_ancestor("", "a"));
    }
}
