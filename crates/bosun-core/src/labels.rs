//! Key/value labels on nodes, instances and pools, and equality selectors over them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::{ValidationError, check_text};

/// Most labels one resource may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key, in bytes (a DNS-subdomain-sized prefix plus a name, as in Kubernetes).
pub const MAX_LABEL_KEY_LEN: usize = 253;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// A validated, ordered label map.
///
/// Keys are `[A-Za-z0-9]` followed by `[A-Za-z0-9._/-]`; this keeps them usable inside a
/// JSON path or a selector without quoting rules of their own.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Sets a label, validating key and value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<(), ValidationError> {
        let (key, value) = (key.into(), value.into());
        check_label_key(&key)?;
        check_label_value(&key, &value)?;
        if !self.0.contains_key(&key) && self.0.len() >= MAX_LABELS {
            return Err(ValidationError::new("labels", format_args!("more than {MAX_LABELS} labels")));
        }
        self.0.insert(key, value);
        Ok(())
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every selector term matches one of these labels exactly.
    pub fn matches(&self, selector: &LabelSelector) -> bool {
        selector.terms().all(|(k, v)| self.get(k) == Some(v))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = ValidationError;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        if map.len() > MAX_LABELS {
            return Err(ValidationError::new(
                "labels",
                format_args!("{} labels given; the limit is {MAX_LABELS}", map.len()),
            ));
        }
        for (key, value) in &map {
            check_label_key(key)?;
            check_label_value(key, value)?;
        }
        Ok(Self(map))
    }
}

impl<const N: usize> TryFrom<[(&str, &str); N]> for Labels {
    type Error = ValidationError;
    fn try_from(pairs: [(&str, &str); N]) -> Result<Self, Self::Error> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<BTreeMap<_, _>>().try_into()
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> Self {
        labels.0
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

fn check_label_key(key: &str) -> Result<(), ValidationError> {
    let field = "labels";
    if key.is_empty() {
        return Err(ValidationError::new(field, "a label key is empty"));
    }
    if key.len() > MAX_LABEL_KEY_LEN {
        return Err(ValidationError::new(
            field,
            format_args!(
                "label key {:?}... is longer than {MAX_LABEL_KEY_LEN} bytes",
                key.chars().take(16).collect::<String>()
            ),
        ));
    }
    let starts_well = key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if !starts_well || !chars_ok {
        return Err(ValidationError::new(
            field,
            format_args!(
                "label key {key:?} must start with a letter or digit and use only letters, digits, '.', '_', '/' or '-'"
            ),
        ));
    }
    Ok(())
}

fn check_label_value(key: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err(ValidationError::new(
            format!("labels.{key}"),
            format_args!("value is longer than {MAX_LABEL_VALUE_LEN} bytes"),
        ));
    }
    check_text(&format!("labels.{key}"), value)
}

/// Equality selector: `k1=v1,k2=v2`. Every term must match.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector(Labels);

impl LabelSelector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a term `key=value`.
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, ValidationError> {
        self.0.insert(key, value)?;
        Ok(self)
    }

    pub fn terms(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_labels(&self) -> &Labels {
        &self.0
    }
}

impl From<Labels> for LabelSelector {
    fn from(labels: Labels) -> Self {
        Self(labels)
    }
}

impl FromStr for LabelSelector {
    type Err = ValidationError;
    /// Parses `k=v[,k=v...]`; an empty string selects everything.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut selector = LabelSelector::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value) = term.split_once('=').ok_or_else(|| {
                ValidationError::new("label selector", format_args!("{term:?} is not of the form key=value"))
            })?;
            selector = selector.with(key.trim(), value.trim())?;
        }
        Ok(selector)
    }
}

impl fmt::Debug for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.terms() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys_values_and_count() {
        let mut labels = Labels::new();
        labels.insert("bosun.dev/pool", "training").expect("valid");
        assert!(labels.insert("bad key", "x").is_err());
        assert!(labels.insert("/leading", "x").is_err());
        assert!(labels.insert("k", "v".repeat(MAX_LABEL_VALUE_LEN + 1)).is_err());
        for i in 1..MAX_LABELS {
            labels.insert(format!("k{i}"), "v").expect("within limit");
        }
        assert!(labels.insert("one-too-many", "v").is_err());
        assert!(labels.insert("k1", "overwrite is fine").is_ok());
    }

    #[test]
    fn selector_parsing_and_matching() {
        let selector: LabelSelector = "gpu=h100, tier=prod".parse().expect("parses");
        let labels = Labels::try_from([("gpu", "h100"), ("tier", "prod"), ("x", "y")]).expect("valid");
        assert!(labels.matches(&selector));
        let other = Labels::try_from([("gpu", "a100"), ("tier", "prod")]).expect("valid");
        assert!(!other.matches(&selector));
        assert!(labels.matches(&LabelSelector::new()));
        assert_eq!(selector.to_string(), "gpu=h100,tier=prod");
        assert_eq!(
            "gpu".parse::<LabelSelector>().unwrap_err().to_string(),
            "invalid label selector: \"gpu\" is not of the form key=value"
        );
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Labels>(r#"{"ok":"1"}"#).is_ok());
        assert!(serde_json::from_str::<Labels>(r#"{"not ok":"1"}"#).is_err());
    }
}
