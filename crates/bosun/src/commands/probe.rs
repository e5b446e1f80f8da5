//! `bosun debug probe`: the client half of `scripts/probe`, which measures the targets of
//! the security review (issue 11) against a running server. Each probe prints one JSON
//! line; nothing here asserts a number.
//!
//! - `bad-requests`: generated malformed requests to every RPC; counts answers by class.
//! - `policy-load`: clients sending the largest allowed policy documents in a loop while
//!   `/healthz` is timed.
//! - `idle-connections`: thousands of idle HTTP/2 connections held while ListNodes is timed.
//! - `heartbeat-latency`: a new connection (TLS handshake included for https://) and one
//!   heartbeat, timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bosun_api::{ClientTls, Transport, v1};
use clap::{Args, Subcommand};
use connectrpc::client::ClientConfig;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::remote::TlsArgs;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server probed.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051")]
    server: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(subcommand)]
    probe: Probe,
}

#[derive(Debug, Subcommand)]
enum Probe {
    BadRequests {
        #[arg(long, default_value_t = 10_000)]
        count: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    PolicyLoad {
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value = "30s", value_parser = super::remote::parse_duration)]
        duration: Duration,
    },
    IdleConnections {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 500)]
        samples: usize,
    },
    HeartbeatLatency {
        #[arg(long, default_value_t = 1000)]
        samples: usize,
    },
}

pub async fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    let line = match &args.probe {
        Probe::BadRequests { count, seed } => bad_requests(&args.server, *count, *seed).await?,
        Probe::PolicyLoad { clients, duration } => policy_load(&args.server, *clients, *duration).await?,
        Probe::IdleConnections { connections, samples } => {
            idle_connections(&args.server, *connections, *samples).await?
        }
        Probe::HeartbeatLatency { samples } => {
            heartbeat_latency(&args.server, &args.tls.client_tls(), *samples).await?
        }
    };
    println!("{line}");
    Ok(())
}

/// Milliseconds at the given quantiles of `samples`.
fn quantiles(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| {
        samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({"samples": samples.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

type Plain = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn plain_client() -> Plain {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

use bosun_api::V1_METHODS as RPCS;

/// Values that break parsers and stores, as JSON text.
const EXTREMES: &[&str] = &[
    "\"18446744073709551615\"",
    "\"9223372036854775808\"",
    "-1",
    "1e400",
    "\"NaN\"",
    "\"Infinity\"",
    "null",
    "[]",
    "{}",
    "\"\"",
    "\"bad id!\"",
    "\"\\u0000\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "true",
    "\"NODE_STATUS_NOPE\"",
    "99999",
];

const FIELDS: &[&str] = &[
    "nodeId",
    "gpus",
    "memoryBytes",
    "metrics",
    "gpuMetrics",
    "memoryUsed",
    "events",
    "timestamp",
    "results",
    "waitSeconds",
    "commandId",
    "outcome",
    "status",
    "pageSize",
    "pageToken",
    "labelSelector",
    "force",
    "type",
    "ttlSeconds",
    "states",
    "instanceId",
    "limit",
    "afterSeq",
    "kind",
    "name",
    "target",
    "pool",
    "queueDepth",
    "fault",
    "gpu",
    "yaml",
    "labels",
    "parameters",
    "details",
    "fromNow",
];

/// One malformed request body: JSON with hostile values, broken JSON, protobuf noise.
fn bad_body(rng: &mut SmallRng) -> (Vec<u8>, &'static str) {
    match rng.random_range(0..6) {
        0 => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(1..5) {
                let field = FIELDS[rng.random_range(0..FIELDS.len())];
                let value = EXTREMES[rng.random_range(0..EXTREMES.len())];
                let value = match rng.random_range(0..3) {
                    0 => format!("[{value}]"),
                    1 => format!("[{{\"{}\": {value}}}]", FIELDS[rng.random_range(0..FIELDS.len())]),
                    _ => value.to_owned(),
                };
                object.insert(field.to_owned(), serde_json::from_str(&value).unwrap_or(serde_json::Value::Null));
            }
            (serde_json::Value::Object(object).to_string().into_bytes(), "application/json")
        }
        1 => {
            let depth = rng.random_range(1..20_000);
            let text = if rng.random_bool(0.5) { "[".repeat(depth) } else { "{\"a\":".repeat(depth) };
            (text.into_bytes(), "application/json")
        }
        2 => (format!("[\"n{}\"]", rng.random_range(0..100)).into_bytes(), "application/json"),
        3 => ((0..rng.random_range(0..512)).map(|_| rng.random::<u8>()).collect(), "application/proto"),
        4 => {
            // Protobuf with extreme varints in the first fields.
            let mut body = Vec::new();
            for field in 1..rng.random_range(2..10u8) {
                body.push(field << 3);
                body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
            }
            (body, "application/proto")
        }
        _ => {
            let yaml = format!("rules: {}{}", "{a: ".repeat(rng.random_range(30..40)), "}".repeat(40));
            (
                json!({"yaml": yaml, "events": [{"timestamp": "0001-01-01T00:00:00Z"}]}).to_string().into_bytes(),
                "application/json",
            )
        }
    }
}

async fn bad_requests(server: &str, count: u32, seed: u64) -> anyhow::Result<serde_json::Value> {
    let client = plain_client();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut by_status = std::collections::BTreeMap::<u16, u64>::new();
    let mut transport_failures = 0u64;
    let mut failure_examples = Vec::new();
    let mut previous = String::new();
    let started = Instant::now();
    for _ in 0..count {
        let method = RPCS[rng.random_range(0..RPCS.len())];
        let (body, content_type) = bad_body(&mut rng);
        let request = hyper::Request::post(format!("{server}{method}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))?;
        match tokio::time::timeout(Duration::from_secs(30), client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                *by_status.entry(status).or_default() += 1;
                let _ = response.into_body().collect().await;
                previous = format!("{method} ({content_type}) answered {status}");
            }
            Ok(Err(error)) => {
                transport_failures += 1;
                if failure_examples.len() < 3 {
                    failure_examples.push(format!("{method} ({content_type}) after {previous}: {error:?}"));
                }
            }
            Err(_) => {
                transport_failures += 1;
                if failure_examples.len() < 3 {
                    failure_examples.push(format!("{method} ({content_type}): no answer within 30 s"));
                }
            }
        }
    }
    let server_errors: u64 = by_status.iter().filter(|(status, _)| **status >= 500).map(|(_, n)| n).sum();
    let healthy = client.get(format!("{server}/healthz").parse()?).await.is_ok_and(|r| r.status().is_success());
    Ok(json!({
        "probe": "bad_requests",
        "requests": count,
        "seconds": started.elapsed().as_secs_f64(),
        "by_status": by_status,
        "server_errors_5xx": server_errors,
        "transport_failures": transport_failures,
        "transport_failure_examples": failure_examples,
        "healthz_after": healthy,
    }))
}

/// A valid policy of about `bytes` bytes: many rules, each a few hundred bytes of CEL.
fn largest_policy(bytes: usize) -> String {
    let mut yaml = String::from("version: 1\nmetadata: {name: largest}\nrules:\n");
    let mut i = 0;
    while yaml.len() < bytes - 600 {
        yaml.push_str(&format!(
            "  - name: rule-{i}\n    condition: 'event.gpu_index == {i} && event.message.contains(\"{}\")'\n    result: degraded\n",
            "x".repeat(400)
        ));
        i += 1;
    }
    yaml
}

async fn policy_load(server: &str, clients: usize, duration: Duration) -> anyhow::Result<serde_json::Value> {
    let documents = Arc::new([
        largest_policy(bosun_core::StoredPolicy::MAX_DOCUMENT_BYTES),
        // The most hostile document within the limits: flow mappings 31 deep, 4,000 `[`.
        format!("rules: {}{}\nx: '{}'\n", "{a: ".repeat(31), "}".repeat(31), "[".repeat(4000)),
    ]);
    let stop = Instant::now() + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for client_index in 0..clients {
        let (server, documents, sent) = (server.to_owned(), Arc::clone(&documents), Arc::clone(&sent));
        senders.spawn(async move {
            let client = plain_client();
            let mut i = client_index;
            while Instant::now() < stop {
                let body = json!({"yaml": documents[i % documents.len()]}).to_string();
                let request = hyper::Request::post(format!("{server}/bosun.v1.AdminService/TestPolicy"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                if let Ok(response) = client.request(request).await {
                    let _ = response.into_body().collect().await;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
    }
    let client = plain_client();
    let mut latencies = Vec::new();
    while Instant::now() < stop {
        let started = Instant::now();
        let response = client.get(format!("{server}/healthz").parse()?).await.context("/healthz")?;
        let _ = response.into_body().collect().await;
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while senders.join_next().await.is_some() {}
    Ok(json!({
        "probe": "policy_load",
        "clients": clients,
        "policy_bytes": documents[0].len(),
        "policies_sent": sent.load(Ordering::Relaxed),
        "healthz": quantiles(latencies),
    }))
}

async fn idle_connections(server: &str, connections: usize, samples: usize) -> anyhow::Result<serde_json::Value> {
    let file_limit = rlimit::increase_nofile_limit(u64::MAX).ok();
    let address = server.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(connections);
    let mut failed = 0usize;
    // An HTTP/2 preface and empty SETTINGS: a connection the server must keep as idle.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for _ in 0..connections {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(mut stream) => {
                if tokio::io::AsyncWriteExt::write_all(&mut stream, preface).await.is_ok() {
                    held.push(stream);
                } else {
                    failed += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    let uri = bosun_api::agent_client::server_uri(server)?;
    let transport = Transport::new(&uri, &ClientTls::default(), false)?;
    let admin = v1::AdminServiceClient::new(transport, ClientConfig::new(uri));
    let mut latencies = Vec::new();
    let mut errors = 0usize;
    for _ in 0..samples {
        let started = Instant::now();
        match admin.list_nodes(v1::ListNodesRequest::default()).await {
            Ok(_) => latencies.push(started.elapsed()),
            Err(_) => errors += 1,
        }
    }
    // Still open after the measurement: a read that would block means the server kept it.
    let mut still_open = 0usize;
    for stream in &held {
        let mut buffer = [0u8; 1];
        if matches!(stream.try_read(&mut buffer), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
            || matches!(stream.try_read(&mut buffer), Ok(n) if n > 0)
        {
            still_open += 1;
        }
    }
    Ok(json!({
        "probe": "idle_connections",
        "client_file_limit": file_limit,
        "opened": held.len(),
        "failed_to_open": failed,
        "still_open_after": still_open,
        "list_nodes": quantiles(latencies),
        "list_nodes_errors": errors,
    }))
}

async fn heartbeat_latency(server: &str, tls: &ClientTls, samples: usize) -> anyhow::Result<serde_json::Value> {
    let uri = bosun_api::agent_client::server_uri(server)?;
    let client = |uri: &hyper::Uri| -> anyhow::Result<v1::AgentServiceClient<Transport>> {
        Ok(v1::AgentServiceClient::new(Transport::new(uri, tls, false)?, ClientConfig::new(uri.clone())))
    };
    client(&uri)?
        .register_node(v1::RegisterRequest { node_id: "probe-heartbeat".into(), ..Default::default() })
        .await
        .context("registering the probe node")?;
    let mut latencies = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        // A new client is a new connection: handshake (TLS included) plus the heartbeat.
        client(&uri)?
            .heartbeat(v1::HeartbeatRequest { node_id: "probe-heartbeat".into(), ..Default::default() })
            .await
            .context("heartbeat")?;
        latencies.push(started.elapsed());
    }
    Ok(json!({
        "probe": "heartbeat_latency",
        "tls": server.starts_with("https://"),
        "connect_and_heartbeat": quantiles(latencies),
    }))
}
