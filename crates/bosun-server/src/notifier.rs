//! Telling a workload scheduler about cordons, uncordons and drains
//! (`server.notifier.webhook`), so that work stops landing on nodes leaving service.
//!
//! Each CORDON, UNCORDON and DRAIN command, once committed, is POSTed to its URL as Navarch
//! does (`{"event", "node_id", "reason", "timestamp"}`, the configured headers, the
//! configured timeout). Deliveries run in the background and never block the status
//! change: a failing scheduler is retried with backoff, and the outcome (delivered, with
//! the HTTP status and attempt, or given up, with the last error) is recorded on the
//! command as its `notifier` result, which is a change record and shows in `bosun
//! commands get`. Deliveries for one node run in order, so an uncordon never overtakes the
//! cordon before it. A drain counts as done only when `drain_status_url` (if configured)
//! answers `{"drained": true}` for the node.
//!
//! Deliveries still waiting when the server stops are not retried by the next one: their
//! commands show no `notifier` result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_config::{NotifierConfig, SensitiveUrl, WebhookConfig};
use bosun_core::{Actor, Command, CommandId, CommandKind, NodeId, Timestamp};
use bosun_store::{SharedStore, StoreError, WriteBatch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The `result` key a command's delivery outcome is recorded under.
pub(crate) const RESULT_KEY: &str = "notifier";

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// The first delay; each further one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about four minutes.
    fn default() -> Self {
        Self { attempts: 8, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60) }
    }
}

/// What the scheduler is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Cordon,
    Uncordon,
    Drain,
}

impl Event {
    fn of(kind: &CommandKind) -> Option<Self> {
        match kind {
            CommandKind::Cordon => Some(Event::Cordon),
            CommandKind::Uncordon => Some(Event::Uncordon),
            CommandKind::Drain => Some(Event::Drain),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Event::Cordon => "cordon",
            Event::Uncordon => "uncordon",
            Event::Drain => "drain",
        }
    }
}

/// The configured notifier, or none.
#[derive(Debug)]
pub(crate) struct Notifier {
    webhook: Option<Arc<Webhook>>,
    retry: RetryPolicy,
    /// The last delivery task of each node: the next one waits for it.
    last: Mutex<HashMap<NodeId, JoinHandle<()>>>,
}

#[derive(Debug)]
struct Webhook {
    config: WebhookConfig,
    client: reqwest::Client,
}

/// The body of a notification, as Navarch's webhook sends it.
#[derive(Debug, serde::Serialize)]
struct Payload<'a> {
    event: &'static str,
    node_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    timestamp: String,
}

/// What `drain_status_url` answers.
#[derive(Debug, serde::Deserialize)]
struct DrainStatus {
    drained: bool,
    #[serde(default)]
    message: String,
}

/// The longest answer read from the scheduler.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl Notifier {
    pub(crate) fn new(config: &NotifierConfig, retry: RetryPolicy) -> Result<Self, String> {
        let webhook = match config {
            NotifierConfig::Noop => None,
            NotifierConfig::Webhook(config) => {
                let client = bosun_provider::https_client_builder()?
                    .timeout(config.timeout)
                    .build()
                    .map_err(|e| format!("cannot build the webhook notifier's HTTP client: {e}"))?;
                Some(Arc::new(Webhook { config: config.clone(), client }))
            }
        };
        Ok(Self { webhook, retry, last: Mutex::new(HashMap::new()) })
    }

    /// Sends `command` to the scheduler in the background, if it is a cordon, uncordon or
    /// drain and a webhook is configured, and records the outcome on the command.
    pub(crate) fn notify(&self, command: &Command, store: &SharedStore, metrics: &Arc<Metrics>) {
        let (Some(webhook), Some(event)) = (&self.webhook, Event::of(&command.kind)) else { return };
        if webhook.url(event).is_none() {
            return;
        }
        let webhook = Arc::clone(webhook);
        let (store, metrics, retry) = (Arc::clone(store), Arc::clone(metrics), self.retry);
        let (id, node, reason, at) = (command.id, command.node_id.clone(), command.reason.clone(), command.issued_at);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last.remove(&node);
        let for_node = node.clone();
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let outcome = webhook.deliver(event, &for_node, &reason, at, retry).await;
            metrics.notifier_delivery(event.as_str(), outcome.is_ok());
            record(&store, id, outcome).await;
        });
        last.insert(node, task);
        // Forget nodes whose deliveries are all done, so the map stays as small as the
        // set of nodes with deliveries under way.
        last.retain(|_, task| !task.is_finished());
    }

    /// Whether the scheduler says `node` is drained: `None` when no `drain_status_url` is
    /// configured (the agent's acknowledgement is the answer then).
    pub(crate) async fn drained(&self, node: &NodeId) -> Option<Result<bool, String>> {
        let webhook = self.webhook.as_ref()?;
        let url = webhook.config.drain_status_url.as_ref()?;
        Some(webhook.drain_status(url.expose(), node).await)
    }
}

impl Webhook {
    fn url(&self, event: Event) -> Option<&SensitiveUrl> {
        match event {
            Event::Cordon => self.config.cordon_url.as_ref(),
            Event::Uncordon => self.config.uncordon_url.as_ref(),
            Event::Drain => self.config.drain_url.as_ref(),
        }
    }

    /// POSTs the event, retrying per `retry`: `Ok` with what happened, `Err` with why it
    /// was given up.
    async fn deliver(
        &self,
        event: Event,
        node: &NodeId,
        reason: &str,
        at: Timestamp,
        retry: RetryPolicy,
    ) -> Result<String, String> {
        let Some(url) = self.url(event) else { return Ok(format!("{} not sent: no URL configured", event.as_str())) };
        let payload = Payload { event: event.as_str(), node_id: node.as_str(), reason, timestamp: at.to_rfc3339() };
        let mut delay = retry.first_delay;
        let mut last_error = String::new();
        for attempt in 1..=retry.attempts.max(1) {
            match self.post(url.expose(), &payload).await {
                Ok(status) => {
                    return Ok(format!(
                        "{} delivered to the webhook (HTTP {status}, attempt {attempt})",
                        event.as_str()
                    ));
                }
                Err(error) => {
                    tracing::warn!(node = %node, event = event.as_str(), url = %url, attempt, %error,
                        "the webhook notifier could not deliver");
                    last_error = error;
                }
            }
            if attempt < retry.attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(retry.max_delay);
            }
        }
        Err(format!("{} not delivered after {} attempts: {last_error}", event.as_str(), retry.attempts.max(1)))
    }

    async fn post(&self, url: &str, payload: &Payload<'_>) -> Result<u16, String> {
        let body = serde_json::to_vec(payload).map_err(|e| format!("cannot encode the notification: {e}"))?;
        let mut request = self.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let response = request.send().await.map_err(bosun_provider::transport_message)?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let body = read_bounded(response).await.unwrap_or_default();
        Err(format!("HTTP {status}: {}", snippet(&body)))
    }

    async fn drain_status(&self, url: &str, node: &NodeId) -> Result<bool, String> {
        let mut url = url::Url::parse(url).map_err(|e| format!("drain_status_url is not a URL: {e}"))?;
        url.query_pairs_mut().append_pair("node_id", node.as_str());
        let mut request = self.client.get(url);
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let response = request.send().await.map_err(bosun_provider::transport_message)?;
        let status = response.status();
        let body = read_bounded(response).await?;
        if !status.is_success() {
            return Err(format!("drain status answered HTTP {status}: {}", snippet(&body)));
        }
        let answer: DrainStatus = serde_json::from_str(&body)
            .map_err(|e| format!("drain status answered something that is not {{\"drained\": bool}}: {e}"))?;
        if !answer.drained && !answer.message.is_empty() {
            tracing::debug!(node = %node, message = %answer.message, "the scheduler is still draining");
        }
        Ok(answer.drained)
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer.
async fn read_bounded(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(bosun_provider::transport_message)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!("the answer is longer than {MAX_ANSWER_BYTES} bytes"));
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn snippet(body: &str) -> String {
    let text: String = body.chars().take(200).collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Records a delivery's outcome as the command's `notifier` result (a change record).
async fn record(store: &SharedStore, id: CommandId, outcome: Result<String, String>) {
    let text = match &outcome {
        Ok(done) => done.clone(),
        Err(failed) => failed.clone(),
    };
    for _ in 0..8 {
        let mut command = match store.command(&id).await {
            Ok(command) => command,
            Err(StoreError::NotFound { .. }) => return,
            Err(error) => {
                tracing::warn!(command = %id, %error, "cannot record the webhook delivery");
                return;
            }
        };
        command.result.insert(RESULT_KEY.to_owned(), text.clone());
        let batch = WriteBatch::new(Actor::system("notifier"), text.clone()).update_command(command);
        match store.commit(batch).await {
            Ok(_) => return,
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => {
                tracing::warn!(command = %id, %error, "cannot record the webhook delivery");
                return;
            }
        }
    }
}
