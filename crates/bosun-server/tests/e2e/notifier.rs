//! The webhook notifier against a local scheduler stand-in: what it is sent, retries,
//! a scheduler that never answers, and drain completion polled from `drain_status_url`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_config::Config;
use bosun_core::PoolSpec;
use bosun_provider::fake::FakeSettings;
use bosun_server::{NotifierRetry, Settings};
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(
    cordon_uncordon_and_drain_reach_the_scheduler_in_order_and_are_retried,
    a_scheduler_that_never_answers_is_reported_and_blocks_nothing,
    a_scale_down_waits_for_the_scheduler_to_say_drained,
    a_scheduler_that_hangs_is_cut_off_at_the_webhook_timeout,
);

/// What the stand-in scheduler received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    query: String,
    authorization: String,
    content_type: String,
    body: serde_json::Value,
}

/// A scheduler stand-in: records every request, fails the next `failures` POSTs with 500,
/// answers drain status with `drained`.
#[derive(Debug, Default)]
struct Scheduler {
    received: Mutex<Vec<Received>>,
    failures: AtomicU32,
    drained: AtomicBool,
}

impl Scheduler {
    async fn start() -> (Arc<Scheduler>, String) {
        let scheduler = Arc::new(Scheduler::default());
        let router = axum::Router::new()
            .route("/events/{event}", post(on_event))
            .route("/drained", get(on_drain_status))
            .with_state(Arc::clone(&scheduler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (scheduler, format!("http://{address}"))
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn record(&self, path: String, query: String, headers: &HeaderMap, body: serde_json::Value) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let received = Received {
            path,
            query,
            authorization: header("authorization"),
            content_type: header("content-type"),
            body,
        };
        self.received.lock().unwrap().push(received);
    }
}

async fn on_event(
    State(scheduler): State<Arc<Scheduler>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    scheduler.record(format!("/events/{event}"), String::new(), &headers, body);
    let failing = scheduler.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing { (StatusCode::INTERNAL_SERVER_ERROR, "scheduler busy") } else { (StatusCode::OK, "ok") }
}

async fn on_drain_status(
    State(scheduler): State<Arc<Scheduler>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ([(&'static str, &'static str); 1], String) {
    scheduler.record("/drained".to_owned(), query.unwrap_or_default(), &headers, serde_json::Value::Null);
    let drained = scheduler.drained.load(Ordering::SeqCst);
    let answer = serde_json::json!({"drained": drained, "message": if drained { "" } else { "2 jobs left" }});
    ([("content-type", "application/json")], answer.to_string())
}

/// Harness settings with the webhook notifier pointed at `base`, retrying `attempts`
/// times with short delays.
fn settings_for(base: &str, attempts: u32) -> Settings {
    settings_with_timeout(base, attempts, "5s")
}

/// [`settings_for`] with the webhook's `timeout`.
fn settings_with_timeout(base: &str, attempts: u32, timeout: &str) -> Settings {
    let text = format!(
        "server:
  notifier:
    type: webhook
    webhook:
      cordon_url: {base}/events/cordon
      uncordon_url: {base}/events/uncordon
      drain_url: {base}/events/drain
      drain_status_url: {base}/drained
      timeout: {timeout}
      headers:
        Authorization: Bearer scheduler-secret
"
    );
    let config = Config::from_yaml_str(&text, |_| None).expect("valid notifier config");
    Settings {
        notifier: config.server.notifier,
        notifier_retry: NotifierRetry {
            attempts,
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..settings()
    }
}

fn issue(node: &str, kind: v1::CommandType) -> v1::IssueCommandRequest {
    v1::IssueCommandRequest {
        node_id: node.to_owned(),
        r#type: kind.into(),
        reason: "maintenance window".to_owned(),
        ..Default::default()
    }
}

/// Issues `kind` to `node` and returns the command's id.
async fn issued(h: &Harness, node: &str, kind: v1::CommandType) -> String {
    let response = h.root().issue_command(issue(node, kind)).await.expect("issue").into_owned();
    response.command.as_option().expect("command").command_id.clone()
}

/// Waits for the command's `notifier` result and returns it.
async fn notifier_result(h: &Harness, id: &str) -> String {
    for _ in 0..400 {
        let request = v1::GetCommandRequest { command_id: id.to_owned(), ..Default::default() };
        let response = h.root().get_command(request).await.expect("get command").into_owned();
        if let Some(result) = response.command.as_option().and_then(|c| c.result.get("notifier")) {
            return result.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("command {id} never got a notifier result");
}

async fn cordon_uncordon_and_drain_reach_the_scheduler_in_order_and_are_retried(backend: Backend) {
    use v1::CommandType as T;
    let (scheduler, base) = Scheduler::start().await;
    let Some(h) = Harness::start_with(backend, settings_for(&base, 4)).await else { return };
    let agent = h.spawn_agent("n1", 2);
    h.wait_for_node("n1", "registered", |_| true).await;

    // The scheduler fails the first two POSTs: the cordon is delivered on its third attempt,
    // and the uncordon issued right after it still arrives after the cordon.
    scheduler.failures.store(2, Ordering::SeqCst);
    let cordon = issued(&h, "n1", T::COMMAND_TYPE_CORDON).await;
    let uncordon = issued(&h, "n1", T::COMMAND_TYPE_UNCORDON).await;
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE, "the status never waits");
    let cordoned = notifier_result(&h, &cordon).await;
    assert!(cordoned.contains("cordon delivered") && cordoned.contains("attempt 3"), "{cordoned}");
    let uncordoned = notifier_result(&h, &uncordon).await;
    assert!(uncordoned.contains("uncordon delivered") && uncordoned.contains("attempt 1"), "{uncordoned}");
    let drain = issued(&h, "n1", T::COMMAND_TYPE_DRAIN).await;
    let drained = notifier_result(&h, &drain).await;
    assert!(drained.contains("drain delivered"), "{drained}");

    let received = scheduler.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/events/cordon", "/events/cordon", "/events/cordon", "/events/uncordon", "/events/drain"],
        "retried, in order"
    );
    for request in &received {
        assert_eq!(request.authorization, "Bearer scheduler-secret", "the configured headers are sent");
        assert_eq!(request.content_type, "application/json");
        let body = request.body.as_object().expect("a JSON object");
        assert_eq!(body["node_id"], "n1");
        assert_eq!(body["reason"], "maintenance window");
        let timestamp = body["timestamp"].as_str().expect("timestamp");
        assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(), "RFC 3339: {timestamp}");
        assert_eq!(body.len(), 4, "event, node_id, reason, timestamp: {body:?}");
    }
    assert_eq!(received[0].body["event"], "cordon");
    assert_eq!(received[3].body["event"], "uncordon");
    assert_eq!(received[4].body["event"], "drain");

    // The agent's own acknowledgement does not erase the delivery record.
    for _ in 0..400 {
        let request = v1::GetCommandRequest { command_id: drain.clone(), ..Default::default() };
        let command = h.root().get_command(request).await.expect("get").into_owned().command.as_option().cloned();
        let command = command.expect("command");
        if command.state.as_known() == Some(v1::CommandState::COMMAND_STATE_SUCCEEDED) {
            assert!(command.result.contains_key("notifier"), "{:?}", command.result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains(r#"bosun_notifier_deliveries_total{event="cordon",outcome="delivered"} 1"#), "{metrics}");
    agent.stop().await;
    h.stop().await;
}

async fn a_scheduler_that_never_answers_is_reported_and_blocks_nothing(backend: Backend) {
    let (scheduler, base) = Scheduler::start().await;
    let Some(h) = Harness::start_with(backend, settings_for(&base, 3)).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    scheduler.failures.store(u32::MAX, Ordering::SeqCst);
    let cordon = issued(&h, "n1", v1::CommandType::COMMAND_TYPE_CORDON).await;
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED, "cordoned at once");
    let outcome = notifier_result(&h, &cordon).await;
    assert!(outcome.contains("not delivered after 3 attempts"), "{outcome}");
    assert!(outcome.contains("HTTP 500") && outcome.contains("scheduler busy"), "the scheduler's answer: {outcome}");
    assert_eq!(scheduler.received().len(), 3);
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED, "and stays so");
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains(r#"bosun_notifier_deliveries_total{event="cordon",outcome="given_up"} 1"#), "{metrics}");
    h.stop().await;
}

async fn a_scale_down_waits_for_the_scheduler_to_say_drained(backend: Backend) {
    let (scheduler, base) = Scheduler::start().await;
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", 1, 4);
    spec.region = "local".into();
    let settings = settings_for(&base, 2);
    let Some((h, cloud)) =
        Harness::start_with_fake_pool_and_settings(backend, "batch", spec, FakeSettings::default(), settings).await
    else {
        return;
    };
    let scale = |target| v1::ScalePoolRequest { name: "batch".into(), target, ..Default::default() };
    h.root().scale_pool(scale(2)).await.expect("scale up");
    wait_running(&h, 2).await;
    h.root().scale_pool(scale(1)).await.expect("scale down");
    let victim = loop {
        let request = v1::ListNodesRequest::default();
        let nodes = h.root().list_nodes(request).await.expect("list").into_owned().nodes;
        if let Some(node) = nodes.iter().find(|n| status_of(n) == v1::NodeStatus::NODE_STATUS_DRAINING) {
            break node.node_id.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // The agent drains and acknowledges; the scheduler still has work on the node.
    let drains = v1::ListCommandsRequest {
        node_id: victim.clone(),
        states: vec![v1::CommandState::COMMAND_STATE_SUCCEEDED.into()],
        ..Default::default()
    };
    for _ in 0..400 {
        if !h.root().list_commands(drains.clone()).await.expect("commands").into_owned().commands.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile");
    }
    assert_eq!(cloud.live_count(), 2, "not terminated while the scheduler is still draining");
    assert_eq!(status_of(&h.node(&victim).await), v1::NodeStatus::NODE_STATUS_DRAINING);
    let asked = scheduler.received().into_iter().filter(|r| r.path == "/drained").collect::<Vec<_>>();
    assert!(!asked.is_empty(), "the drain status was polled");
    assert_eq!(asked[0].query, format!("node_id={victim}"));
    assert_eq!(asked[0].authorization, "Bearer scheduler-secret");

    scheduler.drained.store(true, Ordering::SeqCst);
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 1, "terminated once the scheduler says drained");
    let status = status_of(&h.node(&victim).await);
    assert!(
        matches!(status, v1::NodeStatus::NODE_STATUS_TERMINATING | v1::NodeStatus::NODE_STATUS_TERMINATED),
        "{status:?}"
    );
    h.stop().await;
}

/// A scheduler that accepts connections and never answers; counts the connections.
async fn hanging_scheduler() -> (Arc<AtomicU32>, String) {
    let accepted = Arc::new(AtomicU32::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            // Read the request and hold the connection open without a word.
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut sink).await;
            });
        }
    });
    (accepted, format!("http://{address}"))
}

/// The webhook's `timeout` bounds each attempt: a scheduler that never answers costs the
/// configured time per attempt, then the delivery is given up and said so on the command.
async fn a_scheduler_that_hangs_is_cut_off_at_the_webhook_timeout(backend: Backend) {
    let (accepted, base) = hanging_scheduler().await;
    let settings = settings_with_timeout(&base, 2, "250ms");
    let bosun_config::NotifierConfig::Webhook(webhook) = &settings.notifier else { panic!("a webhook") };
    assert_eq!(webhook.timeout, Duration::from_millis(250));
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let cordon = issued(&h, "n1", v1::CommandType::COMMAND_TYPE_CORDON).await;
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED, "the status never waits");
    let outcome = notifier_result(&h, &cordon).await;
    assert_eq!(outcome, "cordon not delivered after 2 attempts: timed out waiting for an answer");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one connection per attempt");
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains(r#"bosun_notifier_deliveries_total{event="cordon",outcome="given_up"} 1"#), "{metrics}");
    h.stop().await;
}
