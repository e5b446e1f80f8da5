//! Strict decoding of YAML (and JSON, which YAML reads too): unknown keys are errors, and
//! every error carries the path of the offending value.

use serde::de::DeserializeOwned;

use crate::error::{DocumentKind, PolicyError};

/// Decodes `text` as a `T`, naming the path of the first problem.
///
/// `T` must be declared with `#[serde(deny_unknown_fields)]` all the way down for unknown
/// keys to be rejected. `root` prefixes paths into a top-level list (`events[2].system`
/// reads better than `[2].system`).
pub(crate) fn from_yaml<T: DeserializeOwned>(text: &str, document: DocumentKind, root: &str) -> Result<T, PolicyError> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|error| {
        let path = error.path().to_string();
        let problem = error.into_inner().to_string();
        // yaml_serde starts its messages with the path of the enclosing value
        // ("rules[0]: unknown field ...", ".[1]: ..." in a top-level list); ours is more
        // precise, so drop the duplicate.
        let problem = match problem.split_once(": ") {
            Some((prefix, rest)) if is_path_prefix(prefix.trim_start_matches('.'), &path) => rest.to_owned(),
            _ => problem,
        };
        let path = match path.as_str() {
            "." => String::new(),
            list if list.starts_with('[') => format!("{root}{list}"),
            _ => path,
        };
        PolicyError::Document { document, path, problem }
    })
}

fn is_path_prefix(prefix: &str, path: &str) -> bool {
    !prefix.is_empty() && path.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[serde(rename = "name")]
        _name: String,
    }

    fn error(text: &str) -> String {
        from_yaml::<Vec<Item>>(text, DocumentKind::Events, "events").unwrap_err().to_string()
    }

    #[test]
    fn errors_carry_one_precise_path() {
        assert_eq!(
            error("- name: a\n- name: b\n  nmae: c\n"),
            "invalid events file at events[1].nmae: unknown field `nmae`, expected `name` at line 3 column 3"
        );
        assert_eq!(error("name: a\n"), "invalid events file: invalid type: map, expected a sequence");
        assert!(error("[\n").starts_with("invalid events file: did not find expected node content"));
    }
}
