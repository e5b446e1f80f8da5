//! NVIDIA XID error codes: the one catalog bosun's server, agent, simulator and docs share.
//!
//! The catalog is data (`xid_catalog.json`, compiled in and versioned): per XID its name,
//! the immediate [`RemediationAction`] and whether it is a hardware fault. The built-in
//! health policy classifies XIDs from it, a policy may override entries
//! ([`XidCatalog::with_overrides`]), `bosun policy xids` prints it, and the simulator
//! recovers exactly the faults it does not call hardware faults. Unknown XIDs are nobody's
//! reason to touch a machine: DEGRADED, counted, never replaced on their own.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::remediation::RemediationAction;
use crate::validation::{ValidationError, check_name};

/// The compiled-in catalog's source.
pub const BUILTIN_CATALOG_JSON: &str = include_str!("xid_catalog.json");

/// Most entries a catalog (or a policy's overrides) may hold: XID codes are below 200 today.
pub const MAX_XIDS: usize = 1024;

/// One XID code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xid {
    pub code: u32,
    pub name: String,
    /// What bosun does when it sees this XID (the first step; repetition escalates).
    pub action: RemediationAction,
    /// Whether the fault is the hardware's (as opposed to an application's or the driver's).
    pub hardware: bool,
    /// Where the classification comes from.
    pub source: String,
}

impl Xid {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.code == 0 {
            return Err(ValidationError::new("code", "must be a positive XID number"));
        }
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "is required"));
        }
        check_name("name", &self.name)?;
        check_name("source", &self.source)
    }
}

/// The catalog file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: String,
    #[allow(dead_code, reason = "documentation inside the data file")]
    about: String,
    xids: Vec<Xid>,
}

/// XIDs by code, with the catalog's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidCatalog {
    version: String,
    entries: BTreeMap<u32, Xid>,
}

static BUILTIN: LazyLock<XidCatalog> = LazyLock::new(|| {
    // The file is compiled in and parsed by this crate's tests, so this cannot fail in a
    // build that passed them.
    XidCatalog::from_json(BUILTIN_CATALOG_JSON).expect("the compiled-in XID catalog is valid (tested)")
});

impl XidCatalog {
    /// The compiled-in catalog.
    pub fn builtin() -> &'static XidCatalog {
        &BUILTIN
    }

    /// Parses a catalog file, checking every entry and that no code appears twice.
    pub fn from_json(text: &str) -> Result<Self, ValidationError> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|error| ValidationError::new("xid catalog", error))?;
        let mut catalog = XidCatalog { version: file.version, entries: BTreeMap::new() };
        catalog.insert_all(file.xids, false)?;
        Ok(catalog)
    }

    /// This catalog with `overrides` replacing (or adding) entries by code, as a policy's
    /// `xids` section asks. The version says that it was overridden.
    pub fn with_overrides(&self, overrides: Vec<Xid>) -> Result<Self, ValidationError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut catalog = XidCatalog { version: format!("{}+policy", self.version), entries: self.entries.clone() };
        catalog.insert_all(overrides, true)?;
        Ok(catalog)
    }

    fn insert_all(&mut self, xids: Vec<Xid>, overriding: bool) -> Result<(), ValidationError> {
        if xids.len() > MAX_XIDS {
            return Err(ValidationError::new("xids", format_args!("more than {MAX_XIDS} entries")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, xid) in xids.into_iter().enumerate() {
            xid.validate().map_err(|e| e.within(&format!("xids[{index}]")))?;
            if !seen.insert(xid.code) {
                return Err(ValidationError::new(
                    format!("xids[{index}].code"),
                    format_args!("XID {} is listed twice", xid.code),
                ));
            }
            let previous = self.entries.insert(xid.code, xid);
            debug_assert!(overriding || previous.is_none());
        }
        Ok(())
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The entry for `code`, if the catalog knows it.
    pub fn get(&self, code: u32) -> Option<&Xid> {
        self.entries.get(&code)
    }

    /// Every entry, by ascending code.
    pub fn entries(&self) -> impl Iterator<Item = &Xid> {
        self.entries.values()
    }

    /// What bosun does about `code`: unknown XIDs ask nothing of the machine.
    pub fn action(&self, code: u32) -> RemediationAction {
        self.get(code).map_or(RemediationAction::None, |x| x.action)
    }
}

/// The built-in entry for `code`, if bosun knows it.
pub fn lookup(code: u32) -> Option<&'static Xid> {
    XidCatalog::builtin().get(code)
}

/// Whether the built-in catalog calls `code` a hardware fault. Unknown codes are not.
pub fn is_hardware(code: u32) -> bool {
    lookup(code).is_some_and(|x| x.hardware)
}

/// A short human name for `code`.
pub fn name(code: u32) -> &'static str {
    lookup(code).map_or("unknown XID", |x| x.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RemediationAction::{Reboot, Replace, ResetGpu, RestartApp};

    #[test]
    fn the_builtin_catalog_parses_and_classifies_as_the_specification_says() {
        let catalog = XidCatalog::builtin();
        assert_eq!(catalog.version(), "2026.12");
        // SPEC 3.2: application-class faults never cost a machine; hardware-class ones that
        // leave the GPU untrustworthy are replaced.
        for code in [8, 13, 31, 43, 45] {
            assert_eq!(catalog.action(code), RestartApp, "XID {code}");
            assert!(!is_hardware(code), "XID {code}");
        }
        for code in [48, 63, 64, 74, 79, 95] {
            assert_eq!(catalog.action(code), Replace, "XID {code}");
            assert!(is_hardware(code), "XID {code}");
        }
        assert_eq!(catalog.action(94), ResetGpu);
        assert_eq!(catalog.action(38), Reboot);
        assert_eq!(catalog.action(99_999), RemediationAction::None);
        assert_eq!(name(79), "GPU has fallen off the bus");
        assert_eq!(name(99_999), "unknown XID");
    }

    #[test]
    fn overrides_replace_and_add_entries() {
        let custom =
            |code, action| Xid { code, name: "custom".into(), action, hardware: false, source: "site-policy".into() };
        let catalog = XidCatalog::builtin().with_overrides(vec![custom(13, Reboot), custom(999, Replace)]).unwrap();
        assert_eq!((catalog.action(13), catalog.action(999), catalog.action(79)), (Reboot, Replace, Replace));
        assert_eq!(catalog.version(), "2026.12+policy");
        let twice = XidCatalog::builtin().with_overrides(vec![custom(13, Reboot), custom(13, Replace)]);
        assert_eq!(twice.unwrap_err().to_string(), "invalid xids[1].code: XID 13 is listed twice");
        let nameless = Xid { name: " ".into(), ..custom(5, Reboot) };
        assert_eq!(
            XidCatalog::builtin().with_overrides(vec![nameless]).unwrap_err().to_string(),
            "invalid xids[0].name: is required"
        );
    }

    #[test]
    fn bad_catalog_files_are_refused() {
        assert!(XidCatalog::from_json("{}").is_err());
        let duplicate = r#"{"version": "1", "about": "", "xids": [
            {"code": 1, "name": "a", "action": "none", "hardware": false, "source": "x"},
            {"code": 1, "name": "b", "action": "none", "hardware": false, "source": "x"}]}"#;
        assert!(XidCatalog::from_json(duplicate).unwrap_err().to_string().contains("listed twice"));
        let unknown_action = r#"{"version": "1", "about": "", "xids": [
            {"code": 1, "name": "a", "action": "pray", "hardware": false, "source": "x"}]}"#;
        assert!(XidCatalog::from_json(unknown_action).is_err());
    }
}
