//! `${VAR}` expansion of the configuration text, before it is parsed.
//!
//! Expansion works on the raw text so that a variable can stand anywhere a value can,
//! numbers included (`max_nodes: ${TRAINING_MAX}`), and so that quoting follows YAML's own
//! rules. Comments are expanded too: the text is not parsed yet. A missing variable is an
//! error rather than an empty string, because an empty token or URL fails later with a
//! message that no longer names the variable. `$${` writes a literal `${`.
//!
//! A value containing a line break is rejected: spliced into the text it would change the
//! document's structure, which is how a variable could inject keys of its own.

/// Why the text could not be expanded, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpandError {
    pub line: usize,
    pub problem: String,
}

const ESCAPE_HINT: &str = "write $${ for a literal ${";

/// Replaces every `${NAME}` with `env(NAME)` and every `$${` with `${`.
pub(crate) fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut line = 1;
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(dollar);
        out.push_str(before);
        line += before.matches('\n').count();
        if let Some(after) = from_dollar.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = from_dollar.strip_prefix("${") {
            let fail = |problem: String| ExpandError { line, problem };
            let name = match after.find(['}', '\n']) {
                Some(end) if after[end..].starts_with('}') => &after[..end],
                _ => return Err(fail(format!("\"${{\" is not closed by \"}}\" on the same line ({ESCAPE_HINT})"))),
            };
            if !is_variable_name(name) {
                return Err(fail(format!(
                    "\"${{{name}}}\" is not a variable reference: names are letters, digits and '_', not starting with a digit ({ESCAPE_HINT})"
                )));
            }
            let value =
                env(name).ok_or_else(|| fail(format!("environment variable {name} is not set ({ESCAPE_HINT})")))?;
            if value.contains(['\n', '\r']) {
                return Err(fail(format!(
                    "environment variable {name} contains a line break, which would change the file's structure"
                )));
            }
            out.push_str(&value);
            rest = &after[name.len() + 1..];
        } else {
            out.push('$');
            rest = &from_dollar[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb: c".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn expands_escapes_and_leaves_other_dollars_alone() {
        let cases = [
            ("token: ${TOKEN}", "token: s3cret"),
            ("a: ${TOKEN}-${TOKEN}", "a: s3cret-s3cret"),
            ("a: '${EMPTY}'", "a: ''"),
            ("cmd: echo $${HOME}", "cmd: echo ${HOME}"),
            ("cmd: echo $HOME $$ $", "cmd: echo $HOME $$ $"),
            ("price: 5$", "price: 5$"),
            ("no variables", "no variables"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn errors_name_the_variable_and_line() {
        let cases = [
            ("a: 1\nb: ${NOPE}", 2, "environment variable NOPE is not set (write $${ for a literal ${)"),
            ("a: ${TOKEN\n", 1, "\"${\" is not closed by \"}\" on the same line (write $${ for a literal ${)"),
            (
                "\n\na: ${}",
                3,
                "\"${}\" is not a variable reference: names are letters, digits and '_', not starting with a digit (write $${ for a literal ${)",
            ),
            (
                "a: ${1X}",
                1,
                "\"${1X}\" is not a variable reference: names are letters, digits and '_', not starting with a digit (write $${ for a literal ${)",
            ),
            (
                "a: ${MULTI}",
                1,
                "environment variable MULTI contains a line break, which would change the file's structure",
            ),
        ];
        for (input, line, problem) in cases {
            assert_eq!(expand(input, &env), Err(ExpandError { line, problem: problem.to_owned() }), "{input}");
        }
    }

    #[test]
    fn values_are_not_expanded_again() {
        let env = |name: &str| (name == "A").then(|| "${B}".to_owned());
        assert_eq!(expand("a: ${A}", &env).as_deref(), Ok("a: ${B}"));
    }
}
