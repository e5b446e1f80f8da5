//! YAML text to [`schema::Document`], with errors that name the key path in words an
//! operator can act on.

use crate::ConfigError;
use crate::schema;

/// Parses expanded configuration text through bosun's one YAML decoder: bounded, strict,
/// with the key path and line of any error.
pub(crate) fn parse(text: &str) -> Result<schema::Document, ConfigError> {
    parse_document(text, &bosun_yaml::Limits::FILE)
}

/// Parses any strict document of bosun's (the configuration, a runbook) within `limits`,
/// with the key path and line of any error in the configuration's words.
pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
    text: &str,
    limits: &bosun_yaml::Limits,
) -> Result<T, ConfigError> {
    bosun_yaml::from_str(text, limits).map_err(|error| match error {
        bosun_yaml::Error::Schema { path, location, problem, .. } => {
            ConfigError::schema(path, location.map(|(line, _)| line), reword(&problem))
        }
        other => ConfigError::syntax(other),
    })
}

/// Turns serde's `unknown field`/`unknown variant` messages and Rust type names into the
/// configuration's terms.
fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return match rest.split_once("`, expected ") {
            Some((_, expected)) => format!("unknown key; expected {}", one_of(expected)),
            None => "unknown key; this section takes no keys".to_owned(),
        };
    }
    if let Some((value, expected)) =
        message.strip_prefix("unknown variant `").and_then(|rest| rest.split_once("`, expected "))
    {
        return format!("unknown value {value:?}; expected {}", one_of(expected));
    }
    match message.rsplit_once(", expected ") {
        Some((head, expected)) => {
            let expected = match expected {
                "u32" | "u64" | "usize" => "a whole number (0 or more)",
                "f64" => "a number",
                "a map" => "a mapping",
                "a sequence" => "a list",
                other if other.starts_with("struct ") => "a mapping",
                other => other,
            };
            format!("{head}, expected {expected}")
        }
        None => message.to_owned(),
    }
}

/// serde's "`a`, `b` or `c`" / "one of `a`, `b`" as "one of a, b, c".
fn one_of(expected: &str) -> String {
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match names.as_slice() {
        [only] => (*only).to_owned(),
        _ => format!("one of {}", names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewords_serde_messages() {
        let cases = [
            ("unknown field `x`, expected one of `a`, `b`, `c`", "unknown key; expected one of a, b, c"),
            ("unknown field `x`, expected `a` or `b`", "unknown key; expected one of a, b"),
            ("unknown field `x`, expected `a`", "unknown key; expected a"),
            ("unknown field `x`, there are no fields", "unknown key; this section takes no keys"),
            (
                "unknown variant `root`, expected one of `agent`, `operator`, `admin`",
                "unknown value \"root\"; expected one of agent, operator, admin",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer `-1`, expected a whole number (0 or more)",
            ),
            ("invalid type: integer `5`, expected struct Pool", "invalid type: integer `5`, expected a mapping"),
            ("invalid type: string \"x\", expected f64", "invalid type: string \"x\", expected a number"),
            ("something else", "something else"),
        ];
        for (input, expected) in cases {
            assert_eq!(reword(input), expected);
        }
    }
}
