//! The stored kill switch: the setting `mcp.enabled` in the store's `control_settings`,
//! shared by every replica. No row means on. Its value is `{"enabled": BOOL, "reason":
//! TEXT}` (a bare `true`/`false` is read too); who set it and when are the setting's own.
//! The guard reads it on every MCP request (one primary-key read); OpsService's
//! `SetMcpEnabled` writes it with compare-and-set and `GetMcpStatus` reports it.

use bosun_core::{Setting, Timestamp};
use bosun_store::{StoreError, WriteBatch};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The stored switch as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub enabled: bool,
    pub reason: String,
    /// Who set it and when; none when it was never set.
    pub changed: Option<(String, Timestamp)>,
}

impl Stored {
    /// The switch as a stored setting says (none: on, never set).
    pub(crate) fn of(setting: Option<&Setting>) -> Self {
        let Some(setting) = setting else {
            return Stored { enabled: true, reason: String::new(), changed: None };
        };
        let (enabled, reason) = match &setting.value {
            Value::Bool(enabled) => (*enabled, String::new()),
            value => (
                // A value of another shape than bosun writes is read as off: the switch
                // fails closed.
                value.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                value.get("reason").and_then(Value::as_str).unwrap_or_default().to_owned(),
            ),
        };
        Stored { enabled, reason, changed: Some((setting.updated_by.clone(), setting.updated_at)) }
    }

    /// What a refused MCP call says while the switch is off.
    pub(crate) fn refusal(&self) -> String {
        let mut by = String::new();
        if let Some((who, at)) = &self.changed {
            by = format!("by {who} at {}", at.to_rfc3339());
        }
        if !self.reason.is_empty() {
            if !by.is_empty() {
                by.push_str(": ");
            }
            by.push_str(&self.reason);
        }
        let by = if by.is_empty() { String::new() } else { format!(" ({by})") };
        format!("bosun's MCP server is disabled{by}; an admin re-enables it with `bosun mcp enable`")
    }
}

/// The stored switch, read from the store now.
pub(crate) async fn read(app: &App) -> Result<(Stored, Option<Setting>), StoreError> {
    let setting = app.store.setting(Setting::MCP_ENABLED).await?;
    Ok((Stored::of(setting.as_ref()), setting))
}

/// Sets the stored switch by compare-and-set on the revision read just before; a
/// concurrent change makes it read and try once more, then answer aborted.
pub(crate) async fn set(app: &App, caller: &Caller, enabled: bool, reason: &str) -> ApiResult<Stored> {
    let (by, _) = caller.audit_identity();
    let value = json!({"enabled": enabled, "reason": reason});
    for attempt in 0..2 {
        let current = app.store.setting(Setting::MCP_ENABLED).await?;
        let setting = Setting::new(Setting::MCP_ENABLED, value.clone(), by.clone(), app.now());
        let what = if enabled { "MCP enabled" } else { "MCP disabled" };
        let batch = WriteBatch::new(caller.actor(), what).put_setting(setting, current.as_ref().map(|c| c.revision));
        match app.store.commit(batch).await {
            Ok(_) => {
                tracing::warn!(enabled, actor = %by, reason, "the MCP kill switch was set");
                let (stored, _) = read(app).await?;
                return Ok(stored);
            }
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. } | StoreError::NotFound { .. })
                if attempt == 0 => {}
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. } | StoreError::NotFound { .. }) => {
                return Err(ApiError::Aborted(
                    "mcp.enabled was changed by someone else at the same time; read `bosun mcp status` and try again"
                        .to_owned(),
                ));
            }
            Err(error) => return Err(error.into()),
        }
    }
    unreachable!("the loop returns on its second attempt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_value_reads_fail_closed_and_refusals_name_who_and_why() {
        assert!(Stored::of(None).enabled);
        let at = Timestamp::from_unix_micros(1_790_000_000_000_000);
        let mut setting =
            Setting::new(Setting::MCP_ENABLED, json!({"enabled": false, "reason": "incident 7"}), "oncall", at);
        let off = Stored::of(Some(&setting));
        assert!(!off.enabled);
        let message = off.refusal();
        assert!(message.starts_with("bosun's MCP server is disabled (by oncall at 2026-"), "{message}");
        assert!(message.ends_with(": incident 7); an admin re-enables it with `bosun mcp enable`"), "{message}");
        setting.value = json!(true);
        assert!(Stored::of(Some(&setting)).enabled);
        setting.value = json!("garbage");
        assert!(!Stored::of(Some(&setting)).enabled, "an unreadable value is off");
        setting.value = json!({"enabled": false, "reason": ""});
        assert!(!Stored::of(Some(&setting)).refusal().contains(": "), "no reason, no colon");
    }
}
