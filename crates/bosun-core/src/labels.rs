//! Key/value labels on nodes, instances and pools, and equality selectors over them.

use std::collections::{BTreeMap, BTreeSet};
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

    /// True when every selector term matches: `key=value` exactly, `key` by presence.
    pub fn matches(&self, selector: &LabelSelector) -> bool {
        selector.terms().all(|(k, v)| self.get(k) == Some(v))
            && selector.required_keys().all(|k| self.0.contains_key(k))
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

/// A label selector: `k1=v1,k2` matches what has label `k1` equal to `v1` and a label
/// `k2` with any value. Every term must match; an empty selector matches everything.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector {
    equal: Labels,
    present: BTreeSet<String>,
}

impl LabelSelector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a term `key=value`.
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, ValidationError> {
        self.equal.insert(key, value)?;
        Ok(self)
    }

    /// Adds a term `key`: the label is set, to any value.
    pub fn with_key(mut self, key: &str) -> Result<Self, ValidationError> {
        check_label_key(key)?;
        if self.present.len() + self.equal.len() >= MAX_LABELS {
            return Err(ValidationError::new("labels", format_args!("more than {MAX_LABELS} terms")));
        }
        self.present.insert(key.to_owned());
        Ok(self)
    }

    /// The `key=value` terms.
    pub fn terms(&self) -> impl Iterator<Item = (&str, &str)> {
        self.equal.iter()
    }

    /// The keys that must be present, with any value.
    pub fn required_keys(&self) -> impl Iterator<Item = &str> {
        self.present.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.equal.is_empty() && self.present.is_empty()
    }

    /// The `key=value` terms as labels (a subset an object's labels must contain).
    pub fn as_labels(&self) -> &Labels {
        &self.equal
    }
}

impl From<Labels> for LabelSelector {
    fn from(labels: Labels) -> Self {
        Self { equal: labels, present: BTreeSet::new() }
    }
}

impl FromStr for LabelSelector {
    type Err = ValidationError;
    /// Parses `k=v[,k[,...]]`; an empty string selects everything.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut selector = LabelSelector::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            selector = match term.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => selector.with(key.trim(), value.trim())?,
                Some(_) => {
                    return Err(ValidationError::new(
                        "label selector",
                        format_args!("{term:?} has no key; write key=value or key"),
                    ));
                }
                None => selector.with_key(term)?,
            };
        }
        Ok(selector)
    }
}

/// A selector as its text (`team=ml,gpu`) in serde, for documents people read:
/// `#[serde(with = "bosun_core::labels::selector_text")]`.
pub mod selector_text {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    use super::LabelSelector;

    pub fn serialize<S: Serializer>(selector: &LabelSelector, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(selector)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LabelSelector, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

impl fmt::Debug for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LabelSelector({self})")
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let equal = self.terms().map(|(k, v)| format!("{k}={v}"));
        let terms: Vec<String> = equal.chain(self.present.iter().cloned()).collect();
        f.write_str(&terms.join(","))
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
        let present: LabelSelector = "tier, gpu=h100".parse().expect("parses");
        assert!(labels.matches(&present));
        assert!(!Labels::try_from([("gpu", "h100")]).expect("valid").matches(&present), "tier is missing");
        assert_eq!(present.to_string(), "gpu=h100,tier");
        assert_eq!(
            "=x".parse::<LabelSelector>().unwrap_err().to_string(),
            "invalid label selector: \"=x\" has no key; write key=value or key"
        );
        assert!("bad key".parse::<LabelSelector>().is_err());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Labels>(r#"{"ok":"1"}"#).is_ok());
        assert!(serde_json::from_str::<Labels>(r#"{"not ok":"1"}"#).is_err());
    }
}
