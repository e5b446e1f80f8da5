//! What a run found: `report.json` and a self-contained `report.html`.
//!
//! The fleet's health over time and the pools' decisions are what the control plane
//! answered (ListNodes, ListPools); policy rule hits are the control plane's own counters
//! (`bosun_policy_evaluations_total` on `/metrics`); RPC latencies are the agents' calls
//! as timed by the simulator (wall clock). Only the failures are the simulator's own
//! record, since it caused them. The HTML page draws its charts as inline SVG: it opens
//! offline and from a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::agents::MethodStats;
pub use crate::remediation::{PoolCapacity, RemediationReport};
use crate::scenario::{Action, AssertionKind, Scenario};
use crate::time::Pace;

#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    pub at_s: f64,
    pub action: Action,
    pub target: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssertionResult {
    #[serde(rename = "type")]
    pub kind: AssertionKind,
    pub target: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// The fleet as the control plane saw it at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Nodes not TERMINATED.
    pub nodes: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_health: BTreeMap<String, u64>,
    pub failures_injected: u64,
    pub recoveries: u64,
}

impl Sample {
    fn health(&self, name: &str) -> u64 {
        self.by_health.get(name).copied().unwrap_or(0)
    }
    fn status(&self, name: &str) -> u64 {
        self.by_status.get(name).copied().unwrap_or(0)
    }
}

/// Failures the simulator caused.
#[derive(Debug, Clone, Default)]
pub struct FailureTally {
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_xid: BTreeMap<u32, u64>,
    pub cascading: u64,
    pub recoveries: u64,
    pub outages: u64,
    pub replacements: u64,
}

impl FailureTally {
    pub fn record(&mut self, kind: &str, xid: Option<u32>, cascading: bool) {
        self.total += 1;
        *self.by_type.entry(kind.to_owned()).or_default() += 1;
        if let Some(code) = xid {
            *self.by_xid.entry(code).or_default() += 1;
        }
        if cascading {
            self.cascading += 1;
        }
    }
}

/// A pool's scaling or replacement decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub t_s: f64,
    pub current: u32,
    pub target: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleHit {
    pub rule: String,
    pub result: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RpcMethod {
    pub method: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct XidCount {
    pub code: u32,
    pub name: String,
    /// A hardware-class fault, by the XID catalog (the control plane must act on it).
    pub fatal: bool,
    /// The catalog's immediate action for it.
    pub action: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub nodes_started: u64,
    pub peak_nodes: u64,
    pub peak_healthy: u64,
    pub min_healthy: u64,
    pub avg_healthy: f64,
    pub peak_unhealthy: u64,
    pub failures_injected: u64,
    pub cascading_failures: u64,
    pub recoveries: u64,
    pub outages: u64,
    pub replacements: u64,
    /// Steps where agent calls were still unanswered after 30 s of real time.
    pub stuck_settles: u64,
    /// What the generated fleet cost while powered on, from its templates'
    /// `price_per_hour` (absent when no template has a price).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failures {
    pub by_type: BTreeMap<String, u64>,
    pub by_xid: Vec<XidCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub description: String,
    pub mode: &'static str,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub seed: u64,
    /// `virtual` or `x<scale>`.
    pub pace: String,
    pub store: String,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub summary: Summary,
    pub failures: Failures,
    pub events: Vec<EventResult>,
    pub assertions: Vec<AssertionResult>,
    pub timeline: Vec<Sample>,
    pub policy_rule_hits: Vec<RuleHit>,
    pub pools: BTreeMap<String, Vec<Decision>>,
    pub remediation: RemediationReport,
    pub rpc: Vec<RpcMethod>,
    /// With several control-plane replicas: who led when, and each failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasReport>,
}

/// Several control-plane replicas over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicasReport {
    pub count: u32,
    /// Every election won, in order.
    pub leaders: Vec<LeaderChange>,
    /// Every `kill_leader`, and how long the fleet was without a leader after it.
    pub failovers: Vec<FailoverReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaderChange {
    pub t_s: f64,
    pub replica: String,
    pub epoch: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    pub killed: String,
    pub killed_at_s: f64,
    /// The replica that took over (none if nobody did before the run ended).
    pub new_leader: Option<String>,
    /// Simulated seconds from the kill to the new leader's election (its pools are
    /// reconciled in the same step).
    pub failover_s: Option<f64>,
}

pub(crate) struct ReportInput<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub pace: Pace,
    pub backend: String,
    pub simulated: Duration,
    pub wall: Duration,
    pub failure: Option<String>,
    pub events: Vec<EventResult>,
    pub assertions: Vec<AssertionResult>,
    pub timeline: Vec<Sample>,
    pub tally: FailureTally,
    pub rule_hits: Vec<RuleHit>,
    pub decisions: BTreeMap<String, Vec<Decision>>,
    pub remediation: RemediationReport,
    pub rpc: Vec<RpcMethod>,
    pub nodes_started: u64,
    pub stuck_settles: u64,
    pub estimated_cost_usd: Option<f64>,
    pub replicas: Option<ReplicasReport>,
}

impl Report {
    pub(crate) fn build(input: ReportInput<'_>) -> Report {
        let healthy: Vec<u64> = input.timeline.iter().map(|s| s.health("HEALTHY")).collect();
        let t = &input.tally;
        let summary = Summary {
            nodes_started: input.nodes_started,
            peak_nodes: input.timeline.iter().map(|s| s.nodes).max().unwrap_or(0),
            peak_healthy: healthy.iter().copied().max().unwrap_or(0),
            min_healthy: healthy.iter().copied().min().unwrap_or(0),
            avg_healthy: if healthy.is_empty() {
                0.0
            } else {
                healthy.iter().sum::<u64>() as f64 / healthy.len() as f64
            },
            peak_unhealthy: input.timeline.iter().map(|s| s.status("UNHEALTHY")).max().unwrap_or(0),
            failures_injected: t.total,
            cascading_failures: t.cascading,
            recoveries: t.recoveries,
            outages: t.outages,
            replacements: t.replacements,
            stuck_settles: input.stuck_settles,
            estimated_cost_usd: input.estimated_cost_usd,
        };
        let mut by_xid: Vec<XidCount> = t
            .by_xid
            .iter()
            .map(|(code, count)| XidCount {
                code: *code,
                name: bosun_core::xid::name(*code).to_owned(),
                fatal: bosun_core::xid::is_hardware(*code),
                action: bosun_core::xid::XidCatalog::builtin().action(*code).to_string(),
                count: *count,
            })
            .collect();
        by_xid.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
        Report {
            name: input.scenario.name.clone(),
            description: input.scenario.description.clone(),
            mode: if input.scenario.stress.is_some() { "stress" } else { "scenario" },
            passed: input.failure.is_none(),
            failure: input.failure,
            seed: input.seed,
            pace: match input.pace {
                Pace::Virtual => "virtual".into(),
                Pace::Scaled(x) => format!("x{x}"),
            },
            store: input.backend,
            simulated_s: input.simulated.as_secs_f64(),
            wall_s: input.wall.as_secs_f64(),
            summary,
            failures: Failures { by_type: t.by_type.clone(), by_xid },
            events: input.events,
            assertions: input.assertions,
            timeline: input.timeline,
            policy_rule_hits: input.rule_hits,
            pools: input.decisions,
            remediation: input.remediation,
            rpc: input.rpc,
            replicas: input.replicas,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes `report.json` and `report.html` into `dir`.
    pub fn write_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), self.to_json())?;
        std::fs::write(dir.join("report.html"), crate::html::render(self))
    }
}

pub(crate) fn rpc_summary(stats: &BTreeMap<&'static str, MethodStats>) -> Vec<RpcMethod> {
    stats
        .iter()
        .map(|(method, s)| {
            let mut sorted = s.latencies_us.clone();
            sorted.sort_unstable();
            let percentile = |p: f64| percentile_ms(&sorted, p);
            RpcMethod {
                method: (*method).to_owned(),
                calls: s.calls,
                errors: s.errors,
                p50_ms: percentile(0.5),
                p90_ms: percentile(0.9),
                p99_ms: percentile(0.99),
                max_ms: percentile(1.0),
                first_error: s.first_error.clone(),
            }
        })
        .collect()
}

/// The `p` quantile ([`bosun_core::stats::percentile`]) of sorted microsecond latencies,
/// in milliseconds; 0 when there are none.
pub(crate) fn percentile_ms<T: Copy + Into<u64>>(sorted: &[T], p: f64) -> f64 {
    bosun_core::stats::percentile(sorted, p).map_or(0.0, |micros| micros.into() as f64 / 1000.0)
}

/// The control plane's policy counters, from its `/metrics`.
/// The control plane's `/metrics` text; empty (with a warning) when it cannot be read, so
/// the report goes without the counters rather than failing.
pub(crate) async fn scrape_metrics(url: &str, token: Option<&str>) -> String {
    fetch_metrics(url, token).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the control plane's metrics; the report has no counters from it");
        String::new()
    })
}

/// `bosun_remediation_steps_total` by step, summed over the scrapes of every replica.
pub(crate) fn parse_remediation_steps(scrapes: &[String]) -> BTreeMap<String, u64> {
    let mut steps = BTreeMap::new();
    for text in scrapes {
        for (labels, count) in counters(text, "bosun_remediation_steps_total") {
            if let Some(step) = labels.get("step") {
                *steps.entry(step.to_owned()).or_default() += count;
            }
        }
    }
    steps
}

/// GETs the control plane's `/metrics` (the classic text format, which it serves
/// without an OpenMetrics `Accept`). No request timeout: timers run on simulated time,
/// which stands still while the run waits for this.
async fn fetch_metrics(url: &str, token: Option<&str>) -> Result<String, String> {
    let client = bosun_provider::https_client_builder()?
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut request = client.get(format!("{}/metrics", url.trim_end_matches('/')));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("GET /metrics: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("/metrics answered HTTP {status}"));
    }
    response.text().await.map_err(|e| format!("GET /metrics: {e}"))
}

/// The samples of counter `name` in Prometheus `text`, with their labels.
fn counters<'a>(text: &str, name: &'a str) -> impl Iterator<Item = (prometheus_parse::Labels, u64)> + 'a {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let samples = match prometheus_parse::Scrape::parse(lines) {
        Ok(scrape) => scrape.samples,
        Err(error) => {
            tracing::warn!(%error, "cannot parse the control plane's metrics");
            Vec::new()
        }
    };
    samples.into_iter().filter(move |sample| sample.metric == name).filter_map(|sample| match sample.value {
        prometheus_parse::Value::Counter(value) | prometheus_parse::Value::Untyped(value) => {
            // Counters are whole numbers the server counted.
            Some((sample.labels, value as u64))
        }
        _ => None,
    })
}

/// `bosun_policy_evaluations_total` by rule and result, summed over the scrapes of every
/// replica (each judges the reports its agents send it).
pub(crate) fn parse_rule_hits(scrapes: &[String]) -> Vec<RuleHit> {
    let mut counted: BTreeMap<(String, String), u64> = BTreeMap::new();
    for text in scrapes {
        for (labels, count) in counters(text, "bosun_policy_evaluations_total") {
            if let (Some(rule), Some(result)) = (labels.get("rule"), labels.get("result")) {
                *counted.entry((rule.to_owned(), result.to_owned())).or_default() += count;
            }
        }
    }
    let mut hits: Vec<RuleHit> =
        counted.into_iter().map(|((rule, result), count)| RuleHit { rule, result, count }).collect();
    hits.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
    hits
}

/// One line per run for the console.
pub fn console_summary(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}: {:.0} s simulated in {:.1} s ({}, {} store, seed {})",
        if report.passed { "PASSED" } else { "FAILED" },
        report.name,
        report.simulated_s,
        report.wall_s,
        report.pace,
        report.store,
        report.seed
    );
    let s = &report.summary;
    let _ = writeln!(
        out,
        "  nodes started {}, peak {}; healthy min/avg/peak {}/{:.0}/{}; failures {} ({} cascading), recoveries {}, outages {}, replacements {}",
        s.nodes_started,
        s.peak_nodes,
        s.min_healthy,
        s.avg_healthy,
        s.peak_healthy,
        s.failures_injected,
        s.cascading_failures,
        s.recoveries,
        s.outages,
        s.replacements
    );
    if let Some(cost) = s.estimated_cost_usd {
        let _ = writeln!(out, "  estimated fleet cost: ${cost:.2} (templates' price_per_hour x time powered on)");
    }
    let r = &report.remediation;
    let steps: Vec<String> = r.steps.iter().map(|(step, n)| format!("{step} {n}")).collect();
    let seconds = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} s"));
    let _ = writeln!(
        out,
        "  remediation: wrong replacements {} (application-class XIDs); steps [{}]; replace-class XIDs in pools {}, \
         replaced {} (p50 {}, max {})",
        r.wrong_replacements,
        steps.join(", "),
        r.replace_class_failures,
        r.replacements_measured,
        seconds(r.time_to_replacement_p50_s),
        seconds(r.time_to_replacement_max_s),
    );
    for (pool, c) in &r.pools {
        let _ = writeln!(
            out,
            "  pool {pool}: below min_nodes {} usable for at most {:.0} s ({:.0} s in all); boot {:.0} s",
            c.min_nodes, c.longest_below_min_s, c.total_below_min_s, c.boot_s
        );
    }
    if let Some(replicas) = &report.replicas {
        let leaders: Vec<String> =
            replicas.leaders.iter().map(|l| format!("{} (epoch {}) at {:.0} s", l.replica, l.epoch, l.t_s)).collect();
        let _ = writeln!(out, "  replicas: {}; leaders: {}", replicas.count, leaders.join(", "));
        for f in &replicas.failovers {
            let _ = match (&f.new_leader, f.failover_s) {
                (Some(new), Some(s)) => {
                    writeln!(out, "  failover: {} killed at {:.0} s, {new} led {s:.1} s later", f.killed, f.killed_at_s)
                }
                _ => {
                    writeln!(out, "  failover: {} killed at {:.0} s, no new leader by the end", f.killed, f.killed_at_s)
                }
            };
        }
    }
    for a in &report.assertions {
        let _ = writeln!(
            out,
            "  {} {} {} expected {} got {}",
            if a.passed { "ok  " } else { "FAIL" },
            a.kind,
            a.target,
            a.expected,
            a.actual
        );
    }
    for m in &report.rpc {
        if m.method == "PollCommands" {
            continue;
        }
        let _ = writeln!(
            out,
            "  rpc {:<13} calls {:>8} errors {:>4} p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            m.method, m.calls, m.errors, m.p50_ms, m.p99_ms, m.max_ms
        );
    }
    if let Some(failure) = &report.failure {
        let _ = writeln!(out, "  {failure}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_hits_come_from_the_prometheus_counters() {
        let text = "# HELP x\nbosun_policy_evaluations_total{rule=\"fatal-xid\",result=\"unhealthy\"} 3\n\
                    bosun_policy_evaluations_total{result=\"healthy\",rule=\"none\"} 10\nbosun_other 1\n";
        let hits = parse_rule_hits(&[text.to_owned()]);
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].rule.as_str(), hits[0].result.as_str(), hits[0].count), ("none", "healthy", 10));
        assert_eq!(hits[1].rule, "fatal-xid");
    }
}
