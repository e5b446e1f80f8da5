//! Input validation shared by every entry point (API, config, CLI, store).
//!
//! A [`ValidationError`] always names the offending field, so the API can answer
//! `invalid_argument` with a message an operator can act on.

use std::fmt;

/// Why a value was rejected, and which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {problem}")]
pub struct ValidationError {
    /// Dotted path of the field, e.g. `gpus[3].uuid` or `labels`.
    pub field: String,
    pub problem: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self { field: field.into(), problem: problem.to_string() }
    }

    /// Prefixes the field path, for errors raised inside nested values.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Longest free-text field bosun accepts (messages, reasons, descriptions).
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest short name bosun accepts (provider, region, zone, instance type, GPU name...).
pub const MAX_NAME_LEN: usize = 256;

/// The largest integer bosun stores: SQLite and PostgreSQL hold signed 64-bit integers, so
/// a larger unsigned value from the wire would be clamped by one backend and refused by
/// another. Every backend refuses it the same way instead, naming the field.
pub const MAX_STORED_INT: u64 = i64::MAX as u64;

/// Checks an unsigned integer bosun will store.
pub fn check_stored_int(field: &str, value: u64) -> Result<(), ValidationError> {
    if value > MAX_STORED_INT {
        return Err(ValidationError::new(
            field,
            format_args!("{value} is above the largest storable value, {MAX_STORED_INT}"),
        ));
    }
    Ok(())
}

/// Checks a time a caller sent: within the years 0001 to 9999 (refused, never clamped).
pub fn check_timestamp(field: &str, value: crate::Timestamp) -> Result<(), ValidationError> {
    if !value.is_accepted() {
        return Err(ValidationError::new(field, format_args!("{value} is outside the years 0001 to 9999")));
    }
    Ok(())
}

/// Checks a free-form short string: bounded length, no control characters.
pub fn check_name(field: &str, value: &str) -> Result<(), ValidationError> {
    check_text_bounded(field, value, MAX_NAME_LEN)
}

/// Checks free text (messages, reasons): bounded length, no control characters but
/// newlines and tabs.
pub fn check_text(field: &str, value: &str) -> Result<(), ValidationError> {
    check_text_bounded(field, value, MAX_TEXT_LEN)
}

fn check_text_bounded(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(ValidationError::new(field, format_args!("is {} bytes long; the limit is {max}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(ValidationError::new(field, format_args!("contains control character {bad:?}")));
    }
    Ok(())
}

/// Checks an identifier: 1..=`max` characters from `[A-Za-z0-9._:-]`, starting with an
/// alphanumeric. Identifiers appear in URLs, log lines, label values and SQL keys, so
/// they are kept to characters that need no quoting anywhere.
pub fn check_identifier(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if value.len() > max {
        return Err(ValidationError::new(
            field,
            format_args!("is {} characters long; the limit is {max}", value.len()),
        ));
    }
    let mut chars = value.chars();
    let first = chars.next().unwrap_or(' ');
    if !first.is_ascii_alphanumeric() {
        return Err(ValidationError::new(field, format_args!("{value:?} must start with a letter or digit")));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))) {
        return Err(ValidationError::new(
            field,
            format_args!("{value:?} contains {bad:?}; use letters, digits, '.', '_', ':' or '-'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_identifier("node_id", "gpu-node-01.us:a_b", 128).is_ok());
        let cases = [
            ("", "invalid node_id: is required"),
            ("-lead", "invalid node_id: \"-lead\" must start with a letter or digit"),
            ("a b", "invalid node_id: \"a b\" contains ' '; use letters, digits, '.', '_', ':' or '-'"),
            ("a/b", "invalid node_id: \"a/b\" contains '/'; use letters, digits, '.', '_', ':' or '-'"),
        ];
        for (input, message) in cases {
            assert_eq!(check_identifier("node_id", input, 128).unwrap_err().to_string(), message);
        }
        let long = "a".repeat(129);
        assert_eq!(
            check_identifier("node_id", &long, 128).unwrap_err().to_string(),
            "invalid node_id: is 129 characters long; the limit is 128"
        );
    }

    #[test]
    fn text_rejects_control_characters_and_overlong_values() {
        assert!(check_text("message", "line one\nline two\ttab").is_ok());
        assert!(check_text("message", "bell\u{7}").is_err());
        assert!(check_name("region", &"r".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn nested_field_paths() {
        let err = ValidationError::new("uuid", "is required").within("[3]").within("gpus");
        assert_eq!(err.field, "gpus[3].uuid");
    }
}
