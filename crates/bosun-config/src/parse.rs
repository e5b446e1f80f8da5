//! YAML text to [`schema::Document`], with errors that name the key path in words an
//! operator can act on.

use crate::ConfigError;
use crate::schema;

/// Parses expanded configuration text.
///
/// The text is read twice: first as plain YAML, so that a syntax error is reported as one
/// (the typed pass reads lazily and could first trip over a key it does not know), then
/// into the schema through `serde_path_to_error`, which records the key path of any
/// error. The typed pass reads the text, not the parsed tree, because only the text
/// deserializer knows line numbers and reads `tier: 1` into a string-valued label as `"1"`,
/// as Navarch's YAML library does.
pub(crate) fn parse(text: &str) -> Result<schema::Document, ConfigError> {
    serde_yaml::from_str::<serde_yaml::Value>(text).map_err(ConfigError::syntax)?;
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|error| {
        let path = error.path().to_string();
        let key = (path != ".").then_some(path);
        let line = error.inner().location().map(|location| location.line());
        ConfigError::schema(key.clone(), line, describe(error.inner(), key.as_deref()))
    })
}

/// The problem alone: serde_yaml's message without the location and key path it adds
/// itself (both are reported separately), in the configuration's vocabulary.
fn describe(error: &serde_yaml::Error, key: Option<&str>) -> String {
    let mut message = error.to_string();
    if let Some(location) = error.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // serde_yaml names the failing key, or for an unknown key the mapping holding it.
    if let Some(key) = key
        && let Some(rest) = ancestors(key).find_map(|prefix| message.strip_prefix(&format!("{prefix}: ")))
    {
        message = rest.to_owned();
    }
    reword(&message)
}

/// `a.b[0].c`, `a.b[0]`, `a.b`, `a`.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    let cuts = key.char_indices().filter(|(_, c)| matches!(c, '.' | '[')).map(|(at, _)| at).rev();
    std::iter::once(key).chain(cuts.map(|at| &key[..at]))
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
    fn ancestors_from_longest() {
        let all: Vec<&str> = ancestors("pools.a.providers[0].name").collect();
        assert_eq!(all, ["pools.a.providers[0].name", "pools.a.providers[0]", "pools.a.providers", "pools.a", "pools"]);
    }

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
