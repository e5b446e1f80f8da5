//! The checks made on a document's text before it is parsed.
//!
//! The flow-collection count is the bound that holds whatever the text: every flow
//! collection libyaml opens starts at a `[` or `{`, so their number bounds the nesting and
//! with it the parser's quadratic work. The nesting scan reads quotes, comments and block
//! scalars the way YAML does for ordinary documents, to name the line where a document
//! nests too deeply; it need not be exact, because it is not what bounds the parse.

use crate::Limits;
use crate::error::LimitError;

pub(crate) fn check(text: &str, limits: &Limits) -> Result<(), LimitError> {
    if text.len() > limits.max_bytes {
        return Err(LimitError::TooLarge { size: text.len(), max: limits.max_bytes });
    }
    nesting(text, limits.max_depth)?;
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if openers > limits.max_flow_openers {
        return Err(LimitError::TooManyFlowCollections { count: openers, max: limits.max_flow_openers });
    }
    Ok(())
}

/// Fails at the first point where block indentation levels plus open flow brackets
/// exceed `max`.
fn nesting(text: &str, max: usize) -> Result<(), LimitError> {
    let mut scan = Nesting::default();
    for (index, line) in text.lines().enumerate() {
        if scan.line(line, max) > max {
            return Err(LimitError::TooDeep { line: index + 1, max });
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Nesting {
    /// Indentation of each open block collection, outermost first.
    indents: Vec<usize>,
    /// Open `[` and `{`.
    flow: usize,
    /// The quote a multi-line quoted scalar is waiting for.
    quote: Option<char>,
    /// Lines indented more than this belong to a block scalar (`|`, `>`).
    block_scalar: Option<usize>,
}

impl Nesting {
    /// Reads one line; returns the deepest nesting reached on it, stopping once that is
    /// above `max`.
    fn line(&mut self, line: &str, max: usize) -> usize {
        let content = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - content.len();
        if self.flow == 0 && self.quote.is_none() {
            if content.is_empty() || content.starts_with('#') {
                return self.indents.len();
            }
            match self.block_scalar {
                Some(parent) if indent > parent => return self.indents.len(),
                _ => self.block_scalar = None,
            }
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
            if self.indents.last().is_none_or(|&top| top < indent) {
                self.indents.push(indent);
            }
        }
        let mut deepest = self.indents.len() + self.flow;
        let mut previous: Option<char> = None;
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match self.quote {
                Some('\'') => {
                    if c == '\'' {
                        // '' is an escaped quote inside a single-quoted scalar.
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            self.quote = None;
                        }
                    }
                }
                Some(_) => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => self.quote = None,
                    _ => {}
                },
                None => match c {
                    '#' if previous.is_none_or(char::is_whitespace) => break,
                    '\'' | '"' if previous.is_none_or(|p| p.is_whitespace() || "[{,:-?".contains(p)) => {
                        self.quote = Some(c);
                    }
                    '[' | '{' => {
                        self.flow += 1;
                        deepest = deepest.max(self.indents.len() + self.flow);
                        if deepest > max {
                            break;
                        }
                    }
                    ']' | '}' => self.flow = self.flow.saturating_sub(1),
                    '|' | '>' if self.flow == 0 && previous.is_none_or(char::is_whitespace) => {
                        self.block_scalar = Some(indent);
                    }
                    _ => {}
                },
            }
            previous = Some(c);
        }
        deepest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_bytes: 1 << 20, max_depth: 8, max_flow_openers: 100 };

    #[test]
    fn ordinary_documents_pass() {
        let text = r#"
rules:
  - name: 'it''s [fine'    # a comment with { and [
    condition: "event.metrics[\"x\"] in [1, 2]"
    description: |
      a block scalar with {{{{{{{{{{ and [[[[[[[[[[
        and deeper lines
    result: unhealthy
  - {name: b, condition: 'true', result: healthy}
"#;
        assert_eq!(check(text, &LIMITS), Ok(()));
    }

    #[test]
    fn deep_flow_collections_are_refused_with_their_line() {
        let text = format!("a: 1\nb: {}{}\n", "{a: ".repeat(9), "}".repeat(9));
        assert_eq!(check(&text, &LIMITS), Err(LimitError::TooDeep { line: 2, max: 8 }));
    }

    #[test]
    fn deep_block_indentation_is_refused() {
        let text: String = (0..10).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert_eq!(check(&text, &LIMITS), Err(LimitError::TooDeep { line: 9, max: 8 }));
    }

    #[test]
    fn flow_openers_are_bounded_even_when_quoted() {
        let text = format!("a: '{}'\n", "[".repeat(101));
        assert_eq!(check(&text, &LIMITS), Err(LimitError::TooManyFlowCollections { count: 101, max: 100 }));
    }

    #[test]
    fn size_comes_first() {
        let limits = LIMITS.with_max_bytes(4);
        assert_eq!(check("a: 12", &limits), Err(LimitError::TooLarge { size: 5, max: 4 }));
    }
}
