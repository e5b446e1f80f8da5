//! The health policy an operator stored through the API.
//!
//! bosun-core knows nothing of CEL: the server compiles and validates a document before it
//! stores it. What is stored is the operator's YAML exactly as given, so `policy get`
//! shows them what they wrote, comments and all.

use serde::{Deserialize, Serialize};

use crate::{Revision, Timestamp, ValidationError};

/// The stored policy document. There is at most one: the fleet's active policy when no
/// policy file is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The name the document declares (`metadata.name`).
    pub name: String,
    /// The YAML document, byte for byte as submitted.
    pub document: String,
    pub updated_at: Timestamp,
    pub revision: Revision,
}

impl StoredPolicy {
    /// The resource id of the one stored policy in the change log.
    pub const RESOURCE_ID: &'static str = "active";
    /// Large enough for hundreds of rules; small enough to keep a stray upload out.
    pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "is required"));
        }
        if self.name.len() > 253 || self.name.chars().any(char::is_control) {
            return Err(ValidationError::new("name", "must be at most 253 printable characters"));
        }
        if self.document.trim().is_empty() {
            return Err(ValidationError::new("document", "is empty"));
        }
        if self.document.len() > Self::MAX_DOCUMENT_BYTES {
            return Err(ValidationError::new(
                "document",
                format_args!("is {} bytes; at most {} are allowed", self.document.len(), Self::MAX_DOCUMENT_BYTES),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, document: &str) -> StoredPolicy {
        StoredPolicy {
            name: name.into(),
            document: document.into(),
            updated_at: Timestamp::UNIX_EPOCH,
            revision: Revision::FIRST,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(policy("gpu", "rules: []").validate().is_ok());
        assert_eq!(policy("", "rules: []").validate().unwrap_err().field, "name");
        assert_eq!(policy("gpu", "  \n").validate().unwrap_err().field, "document");
        let huge = "#".repeat(StoredPolicy::MAX_DOCUMENT_BYTES + 1);
        assert!(policy("gpu", &huge).validate().unwrap_err().to_string().contains("at most"));
    }
}
