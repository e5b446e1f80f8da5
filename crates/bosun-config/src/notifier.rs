//! `server.notifier`: telling a workload scheduler about cordons and drains.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ConfigError;
use crate::duration::{ConfigDuration, given_or, require_positive};
use crate::redact::{Secret, SensitiveUrl};
use crate::schema;
use crate::server::check_http_url;

const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Who hears about cordons and drains besides the node itself (`server.notifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierConfig {
    Noop,
    /// POSTs each cordon, uncordon and drain to a workload scheduler.
    Webhook(WebhookConfig),
}

/// `server.notifier.webhook`. URLs left out are not called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub cordon_url: Option<SensitiveUrl>,
    pub uncordon_url: Option<SensitiveUrl>,
    pub drain_url: Option<SensitiveUrl>,
    /// Polled (GET `?node_id=`) until it answers `{"drained": true}`.
    pub drain_status_url: Option<SensitiveUrl>,
    pub timeout: Duration,
    /// Sent with every request; values are secrets (they usually carry credentials).
    pub headers: BTreeMap<String, Secret>,
}

impl NotifierConfig {
    /// Navarch falls back to noop with a warning when the type and the webhook block
    /// disagree; here that is an error, since a notifier that silently never fires is how
    /// workloads keep landing on draining nodes.
    pub(crate) fn resolve(raw: Option<&schema::Notifier>) -> Result<Self, ConfigError> {
        let Some(raw) = raw else { return Ok(Self::Noop) };
        match (raw.kind, &raw.webhook) {
            (None | Some(schema::NotifierType::Noop), None) => Ok(Self::Noop),
            (Some(schema::NotifierType::Webhook), Some(webhook)) => WebhookConfig::resolve(webhook).map(Self::Webhook),
            (Some(schema::NotifierType::Webhook), None) => {
                Err(ConfigError::invalid("server.notifier.webhook", "is required when type is webhook"))
            }
            (kind, Some(_)) => Err(ConfigError::invalid(
                "server.notifier.type",
                format_args!(
                    "is {}, so the webhook block would be ignored; write type: webhook",
                    if kind.is_some() { "noop" } else { "not set" }
                ),
            )),
        }
    }

    pub(crate) fn to_schema(&self) -> schema::Notifier {
        match self {
            Self::Noop => schema::Notifier { kind: Some(schema::NotifierType::Noop), webhook: None },
            Self::Webhook(webhook) => schema::Notifier {
                kind: Some(schema::NotifierType::Webhook),
                webhook: Some(schema::Webhook {
                    cordon_url: webhook.cordon_url.clone(),
                    uncordon_url: webhook.uncordon_url.clone(),
                    drain_url: webhook.drain_url.clone(),
                    drain_status_url: webhook.drain_status_url.clone(),
                    timeout: Some(ConfigDuration(webhook.timeout)),
                    headers: Some(webhook.headers.clone()),
                }),
            },
        }
    }
}

impl WebhookConfig {
    fn resolve(raw: &schema::Webhook) -> Result<Self, ConfigError> {
        let urls = [
            ("cordon_url", &raw.cordon_url),
            ("uncordon_url", &raw.uncordon_url),
            ("drain_url", &raw.drain_url),
            ("drain_status_url", &raw.drain_status_url),
        ];
        for (name, url) in urls {
            if let Some(url) = url {
                check_http_url(&format!("server.notifier.webhook.{name}"), url.expose())?;
            }
        }
        if urls.iter().all(|(_, url)| url.is_none()) {
            return Err(ConfigError::invalid(
                "server.notifier.webhook",
                "names no URL; set at least one of cordon_url, uncordon_url, drain_url, drain_status_url",
            ));
        }
        let headers = raw.headers.clone().unwrap_or_default();
        for (name, value) in &headers {
            let key = format!("server.notifier.webhook.headers.{name}");
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                return Err(ConfigError::invalid(key, "is not a valid HTTP header name"));
            }
            if value.expose().bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(ConfigError::invalid(key, "contains a control character or line break"));
            }
        }
        let webhook = Self {
            cordon_url: raw.cordon_url.clone(),
            uncordon_url: raw.uncordon_url.clone(),
            drain_url: raw.drain_url.clone(),
            drain_status_url: raw.drain_status_url.clone(),
            timeout: given_or(raw.timeout, DEFAULT_WEBHOOK_TIMEOUT),
            headers,
        };
        require_positive("server.notifier.webhook.timeout", webhook.timeout)?;
        Ok(webhook)
    }
}
