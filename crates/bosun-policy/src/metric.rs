//! How metric text becomes a typed value for policies.
//!
//! Metrics travel as text (`map<string, string>` on the wire); policies compare them as
//! numbers, so each value is typed the way Navarch types it: an integer if it parses as
//! one (i64), else a double, else a bool, else it stays a string.

/// A metric value as a condition sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MetricValue<'a> {
    Int(i64),
    Double(f64),
    Bool(bool),
    Text(&'a str),
}

impl<'a> MetricValue<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
        if let Ok(value) = text.parse() {
            MetricValue::Int(value)
        } else if let Ok(value) = text.parse() {
            MetricValue::Double(value)
        } else if text.eq_ignore_ascii_case("true") {
            MetricValue::Bool(true)
        } else if text.eq_ignore_ascii_case("false") {
            MetricValue::Bool(false)
        } else {
            MetricValue::Text(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_then_doubles_then_bools_then_text() {
        let cases = [
            ("79", MetricValue::Int(79)),
            ("-1", MetricValue::Int(-1)),
            ("+7", MetricValue::Int(7)),
            ("9223372036854775807", MetricValue::Int(i64::MAX)),
            ("9223372036854775808", MetricValue::Double(9_223_372_036_854_775_808.0)),
            ("85.5", MetricValue::Double(85.5)),
            ("95.000000", MetricValue::Double(95.0)),
            ("1e3", MetricValue::Double(1000.0)),
            ("true", MetricValue::Bool(true)),
            ("False", MetricValue::Bool(false)),
            ("", MetricValue::Text("")),
            ("0000:3b:00.0", MetricValue::Text("0000:3b:00.0")),
            (" 5", MetricValue::Text(" 5")),
        ];
        for (text, expected) in cases {
            assert_eq!(MetricValue::parse(text), expected, "{text:?}");
        }
    }
}
