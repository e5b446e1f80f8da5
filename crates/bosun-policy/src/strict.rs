//! Policy and events documents through bosun's one YAML decoder (`bosun-yaml`): strict,
//! bounded, every error carrying the path of the offending value.

use serde::de::DeserializeOwned;

use crate::error::{DocumentKind, PolicyError};

/// Bounds on a policy document: a policy is a few kilobytes of rules; the limits leave
/// room for hundreds of rules while keeping the parse of anything a caller sends short.
pub const POLICY_LIMITS: bosun_yaml::Limits = bosun_yaml::Limits {
    max_bytes: bosun_core::StoredPolicy::MAX_DOCUMENT_BYTES,
    max_depth: 32,
    max_flow_openers: 4096,
};

/// Decodes `text` as a `T`, naming the path of the first problem.
///
/// `T` must be declared with `#[serde(deny_unknown_fields)]` all the way down for unknown
/// keys to be rejected. `root` prefixes paths into a top-level list (`events[2].system`
/// reads better than `[2].system`).
pub(crate) fn from_yaml<T: DeserializeOwned>(text: &str, document: DocumentKind, root: &str) -> Result<T, PolicyError> {
    let limits = match document {
        DocumentKind::Policy => POLICY_LIMITS,
        DocumentKind::Events => bosun_yaml::Limits::FILE,
    };
    bosun_yaml::from_str(text, &limits).map_err(|error| {
        let (path, problem) = match error {
            bosun_yaml::Error::Schema { path, message, .. } => {
                let path = match path {
                    Some(list) if list.starts_with('[') => format!("{root}{list}"),
                    Some(path) => path,
                    None => String::new(),
                };
                (path, message)
            }
            other => (String::new(), other.to_string()),
        };
        PolicyError::Document { document, path, problem }
    })
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

    #[test]
    fn deeply_nested_documents_are_refused_before_parsing() {
        let nested = format!("rules: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
        // Parsing it would take minutes of CPU; the scan refuses it first.
        let error = from_yaml::<bosun_yaml::Value>(&nested, DocumentKind::Policy, "").unwrap_err().to_string();
        assert_eq!(error, "invalid policy: the document nests more than 32 levels deep at line 1");
    }
}
