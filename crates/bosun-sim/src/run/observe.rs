//! Reading the fleet back from the control plane: nodes, instances, assertions and the
//! sampler behind the report's timeline.

use super::*;

impl Sim {
    pub(super) async fn get_node(&self, target: &str) -> Result<Option<v1::Node>, String> {
        let request = v1::GetNodeRequest { node_id: target.to_owned(), ..Default::default() };
        match self.admin().get_node(request).await {
            Ok(response) => Ok(response.into_owned().node.into_option()),
            Err(error) if error.code == connectrpc::ErrorCode::NotFound => Ok(None),
            Err(error) => Err(format!("GetNode {target}: {error}")),
        }
    }

    pub(super) async fn node_state(&self, target: &str) -> Result<(Option<NodeStatus>, Option<Health>), String> {
        Ok(match self.get_node(target).await? {
            Some(node) => (
                convert::node_status_filter("status", node.status).ok().flatten(),
                convert::health_from("health", node.health).ok(),
            ),
            None => (None, None),
        })
    }

    /// The pools' instances that count toward their size (every page).
    pub(super) async fn live_instances(&self) -> Vec<v1::Instance> {
        let states = [
            v1::InstanceState::INSTANCE_STATE_PROVISIONING,
            v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION,
            v1::InstanceState::INSTANCE_STATE_RUNNING,
        ];
        let mut instances = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = v1::ListInstancesRequest {
                states: states.iter().map(|s| (*s).into()).collect(),
                page_token,
                ..Default::default()
            };
            match self.admin().list_instances(request).await {
                Ok(page) => {
                    let page = page.into_owned();
                    instances.extend(page.instances);
                    if page.next_page_token.is_empty() {
                        return instances;
                    }
                    page_token = page.next_page_token;
                }
                Err(error) => {
                    tracing::warn!(%error, "listing the instances failed");
                    return instances;
                }
            }
        }
    }

    pub(super) async fn list_nodes(&self) -> Result<Vec<v1::Node>, String> {
        let mut nodes = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = v1::ListNodesRequest { page_size: 5_000, page_token, ..Default::default() };
            let response = self.admin().list_nodes(request).await.map_err(|e| format!("ListNodes: {e}"))?.into_owned();
            nodes.extend(response.nodes);
            if response.next_page_token.is_empty() {
                return Ok(nodes);
            }
            page_token = response.next_page_token;
        }
    }

    pub(super) async fn check(&self, kind: AssertionKind, target: &str, expected: &str) -> AssertionResult {
        let result = |passed: bool, actual: String| AssertionResult {
            kind,
            target: target.to_owned(),
            expected: expected.to_owned(),
            actual,
            passed,
        };
        match kind {
            AssertionKind::NodeStatus | AssertionKind::HealthStatus => {
                let wanted = match expected.parse::<ExpectedStatus>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.node_state(target).await {
                    Ok((Some(status), health)) => {
                        // `health_status: unhealthy` compares the health, never the status.
                        let passed = match kind {
                            AssertionKind::HealthStatus => wanted.health().is_some_and(|h| health == Some(h)),
                            _ => matches_expected(wanted, status, health),
                        };
                        // The property asserted: a health for health_status (or an
                        // expected health), else the status.
                        let actual = match (kind, wanted) {
                            (AssertionKind::HealthStatus, _) | (_, ExpectedStatus::Health(_)) => {
                                health.map_or("unknown", |h| h.as_str()).to_ascii_lowercase()
                            }
                            _ => status.as_str().to_ascii_lowercase(),
                        };
                        result(passed, actual)
                    }
                    Ok((None, _)) => result(false, "not registered".into()),
                    Err(e) => result(false, e),
                }
            }
            AssertionKind::RunStatus => {
                let (passed, actual) = self.check_run(target, expected).await;
                result(passed, actual)
            }
            AssertionKind::Remediation => {
                let wanted = match expected.parse::<RemediationExpectation>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.get_node(target).await {
                    Ok(Some(node)) => {
                        let step = node.remediation.as_option().map(|r| {
                            let action = convert::remediation_action_from("step", r.step)
                                .unwrap_or(bosun_core::RemediationAction::None);
                            (action, r.state.clone())
                        });
                        let passed = match (wanted, &step) {
                            (RemediationExpectation::None, None) => true,
                            (RemediationExpectation::Step(want, state), Some((action, actual))) => {
                                want == *action && state.is_none_or(|s| s.as_str() == actual)
                            }
                            _ => false,
                        };
                        let actual = step.map_or_else(|| "none".to_owned(), |(a, s)| format!("{a} {s}"));
                        result(passed, actual)
                    }
                    Ok(None) => result(false, "not registered".into()),
                    Err(e) => result(false, e),
                }
            }
            AssertionKind::NodeCount => {
                let wanted = match expected.parse::<CountExpectation>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.list_nodes().await {
                    Ok(nodes) => match count_matching(&nodes, target) {
                        Ok(count) => result(wanted.holds(count), count.to_string()),
                        Err(e) => result(false, e),
                    },
                    Err(e) => result(false, e),
                }
            }
        }
    }

    pub(super) async fn sample(&mut self) {
        let nodes = match self.list_nodes().await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::warn!(%error, "sampling the fleet failed");
                return;
            }
        };
        let mut sample = Sample { t_s: self.driver.now().as_secs_f64(), ..Sample::default() };
        let mut unhealthy = Vec::new();
        for node in &nodes {
            let status = convert::node_status_filter("status", node.status).ok().flatten();
            let health = convert::health_from("health", node.health).unwrap_or(Health::Unknown);
            if status == Some(NodeStatus::Terminated) {
                continue;
            }
            sample.nodes += 1;
            if let Some(status) = status {
                *sample.by_status.entry(status.as_str().to_owned()).or_default() += 1;
                if status == NodeStatus::Unhealthy {
                    unhealthy.push(node.node_id.clone());
                }
            }
            *sample.by_health.entry(health.as_str().to_owned()).or_default() += 1;
        }
        sample.failures_injected = self.tally.total;
        sample.recoveries = self.tally.recoveries;
        if self.options.progress
            && self.timeline.last().is_none_or(|last| sample.t_s.div_euclid(60.0) > last.t_s.div_euclid(60.0))
        {
            let count = |name: &str| sample.by_status.get(name).copied().unwrap_or(0);
            eprintln!(
                "[{:>7.0}s] {} nodes: {} active, {} unhealthy; {} failures injected ({:.0} s wall)",
                sample.t_s,
                sample.nodes,
                count("ACTIVE"),
                count("UNHEALTHY"),
                sample.failures_injected,
                self.wall_start.elapsed().as_secs_f64()
            );
        }
        self.timeline.push(sample);
        let pools = match self.admin().list_pools(v1::ListPoolsRequest::default()).await {
            Ok(response) => response.into_owned().pools,
            Err(error) => {
                tracing::warn!(%error, "listing the pools failed");
                Vec::new()
            }
        };
        for pool in &pools {
            if let Some(d) = pool.last_decision.as_option() {
                let at = d.at.as_option().and_then(|at| convert::from_timestamp("at", at).ok()).unwrap_or(sim_epoch());
                let t_s = at.saturating_since(sim_epoch()).as_secs_f64();
                let list = self.decisions.entry(pool.name.clone()).or_default();
                if list.last().is_none_or(|last: &Decision| last.t_s != t_s) {
                    list.push(Decision { t_s, current: d.current, target: d.target, reason: d.reason.clone() });
                }
            }
        }
        let instances = if pools.is_empty() { Vec::new() } else { self.live_instances().await };
        self.remediation.observe(self.driver.now().as_secs_f64(), &nodes, &instances, &pools);
        // replace_fatal: an UNHEALTHY node (as the control plane judged it) is powered off
        // and a successor boots after a cold start.
        if let Some(chaos) = self.chaos.as_mut() {
            let now = self.driver.now();
            for id in unhealthy {
                if let Ok(id) = id.parse::<NodeId>()
                    && let Some(node) = self.nodes.get(&id)
                    && node.is_running()
                {
                    chaos.replace_later(&id, now);
                }
            }
        }
    }
}

pub(super) fn matches_expected(expected: ExpectedStatus, status: NodeStatus, health: Option<Health>) -> bool {
    match expected {
        ExpectedStatus::Status(s) => s == status,
        ExpectedStatus::Health(h) => health == Some(h),
    }
}

pub(super) fn describe(status: Option<NodeStatus>, health: Option<Health>) -> String {
    match (status, health) {
        (Some(s), Some(h)) => format!("{} ({})", s.as_str().to_ascii_lowercase(), h.as_str().to_ascii_lowercase()),
        (Some(s), None) => s.as_str().to_ascii_lowercase(),
        (None, _) => "not registered".into(),
    }
}

/// Nodes `target` selects for `node_count`: empty = every node not TERMINATED;
/// `pool:NAME`; a status (`unhealthy`); a health (`healthy`).
fn count_matching(nodes: &[v1::Node], target: &str) -> Result<u64, String> {
    let target = target.trim();
    let status_of = |n: &v1::Node| convert::node_status_filter("status", n.status).ok().flatten();
    let live = |n: &&v1::Node| status_of(n) != Some(NodeStatus::Terminated);
    let count = if target.is_empty() || target.eq_ignore_ascii_case("all") {
        nodes.iter().filter(live).count()
    } else if let Some(pool) = target.strip_prefix("pool:") {
        nodes.iter().filter(live).filter(|n| n.pool == pool).count()
    } else {
        match target
            .parse::<ExpectedStatus>()
            .map_err(|_| format!("node_count target {target:?} is not empty, pool:NAME, a status or a health"))?
        {
            ExpectedStatus::Status(s) => nodes.iter().filter(|n| status_of(n) == Some(s)).count(),
            ExpectedStatus::Health(h) => {
                nodes.iter().filter(live).filter(|n| convert::health_from("health", n.health).ok() == Some(h)).count()
            }
        }
    };
    Ok(count as u64)
}
