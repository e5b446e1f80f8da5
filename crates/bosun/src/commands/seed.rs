//! `bosun db seed`: a realistic demo fleet.
//!
//! Three pools on three providers, nodes with eight GPUs each, their cloud instances,
//! a realistic spread of statuses (mostly healthy, some cordoned, draining, unhealthy or
//! terminated), command histories, health reports, heartbeats and metric samples. Every
//! record goes through the store's normal write path, so change records and revisions are
//! exactly what a live fleet would have produced. The same `--seed` gives the same fleet.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bosun_core::command::CommandRequest;
use bosun_core::instance::InstanceRequest;
use bosun_core::node::Gpu;
use bosun_core::{
    Actor, CheckResult, ClassifiedEvent, Clock as _, Command, CommandKind, CommandTrigger, EventType, GpuSample,
    Health, HealthEvent, HealthReport, HealthSystem, Heartbeat, Instance, InstanceId, InstanceTrigger, Labels,
    MetricSample, Node, NodeId, NodeMetadata, NodeRegistration, NodeStatus, NodeTrigger, Pool, PoolName, PoolSpec,
    RemediationAction, Revision, SystemClock, Timestamp, Verdict,
};
use bosun_store::{SharedStore, StoreError, WriteBatch};
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::output;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// How many nodes to create.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    nodes: u32,
    /// Random seed: the same seed gives the same fleet.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Nodes written per transaction.
const NODES_PER_BATCH: u32 = 200;

struct Profile {
    pool: &'static str,
    /// Share of the fleet, in percent.
    share: u32,
    provider: &'static str,
    regions: &'static [(&'static str, &'static [&'static str])],
    instance_type: &'static str,
    gpu_name: &'static str,
    gpu_memory_bytes: u64,
    driver: &'static str,
    cuda: &'static str,
}

const PROFILES: [Profile; 3] = [
    Profile {
        pool: "training",
        share: 50,
        provider: "gcp",
        regions: &[
            ("us-central1", &["us-central1-a", "us-central1-b", "us-central1-c"]),
            ("europe-west4", &["europe-west4-a", "europe-west4-b"]),
        ],
        instance_type: "a3-highgpu-8g",
        gpu_name: "NVIDIA H100 80GB HBM3",
        gpu_memory_bytes: 85_520_809_984,
        driver: "550.90.07",
        cuda: "12.4",
    },
    Profile {
        pool: "inference",
        share: 30,
        provider: "aws",
        regions: &[
            ("us-east-1", &["us-east-1a", "us-east-1b", "us-east-1d"]),
            ("us-west-2", &["us-west-2a", "us-west-2c"]),
        ],
        instance_type: "p4d.24xlarge",
        gpu_name: "NVIDIA A100-SXM4-40GB",
        gpu_memory_bytes: 42_949_672_960,
        driver: "535.183.01",
        cuda: "12.2",
    },
    Profile {
        pool: "batch",
        share: 20,
        provider: "lambda",
        regions: &[("us-west-1", &["us-west-1"]), ("us-south-1", &["us-south-1"])],
        instance_type: "gpu_8x_a100_80gb_sxm4",
        gpu_name: "NVIDIA A100-SXM4-80GB",
        gpu_memory_bytes: 85_899_345_920,
        driver: "535.183.01",
        cuda: "12.2",
    },
];

/// What `seed` wrote.
#[derive(Debug, Default)]
pub struct SeedSummary {
    by_status: BTreeMap<&'static str, u64>,
    instances: u64,
    commands: u64,
    health_reports: u64,
    pools: u64,
    elapsed: Duration,
}

impl fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: u64 = self.by_status.values().sum();
        let statuses: Vec<String> = self.by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
        write!(
            f,
            "seeded {nodes} nodes ({}), {} instances, {} commands, {} health reports, {} new pools in {:.1}s",
            statuses.join(", "),
            self.instances,
            self.commands,
            self.health_reports,
            self.pools,
            self.elapsed.as_secs_f64()
        )
    }
}

fn seed_actor() -> Actor {
    Actor::system("seed")
}

/// Creates the demo pools (if missing) and `args.nodes` nodes with everything around them.
pub async fn seed(store: &SharedStore, args: &SeedArgs) -> anyhow::Result<SeedSummary> {
    let started = Instant::now();
    let mut summary = SeedSummary::default();
    let first = node_name(&PROFILES[0], 1)?;
    if store.node(&first).await.is_ok() {
        bail!("the store already holds a seeded fleet ({first} exists); run `bosun db migrate reset` first");
    }
    summary.pools = ensure_pools(store).await?;

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let now = SystemClock.now();
    let bar = output::progress_bar(u64::from(args.nodes), "seeding");
    let mut done = 0;
    while done < args.nodes {
        let count = NODES_PER_BATCH.min(args.nodes - done);
        let mut batch = WriteBatch::new(seed_actor(), "demo fleet");
        let mut heartbeats = Vec::new();
        let mut samples = Vec::new();
        for i in done..done + count {
            let (profile, index) = profile_for(i, args.nodes);
            let fleet_node = FleetNode::generate(profile, index, now, &mut rng)?;
            fleet_node.write(&mut batch, &mut summary, now, &mut rng)?;
            if fleet_node.status != NodeStatus::Terminated {
                let at = now - Duration::from_millis(rng.random_range(0..10_000));
                heartbeats.push(Heartbeat { node_id: fleet_node.id.clone(), at });
                samples.push(sample(&fleet_node.id, at, fleet_node.gpus, &mut rng));
            }
        }
        store.commit(batch).await.context("writing seed batch")?;
        store.record_heartbeats(&heartbeats).await?;
        store.record_metric_samples(&samples).await?;
        done += count;
        bar.set_position(u64::from(done));
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn ensure_pools(store: &SharedStore) -> anyhow::Result<u64> {
    let mut batch = WriteBatch::new(seed_actor(), "demo pools");
    for profile in &PROFILES {
        let name = PoolName::new(profile.pool)?;
        match store.pool(&name).await {
            Ok(_) => continue,
            Err(StoreError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        let mut spec = PoolSpec::single_provider(profile.provider, profile.instance_type, 2, 10_000);
        spec.region = profile.regions[0].0.to_owned();
        spec.zones = profile.regions[0].1.iter().map(|z| (*z).to_owned()).collect();
        batch = batch.create_pool(Pool::new(name, spec));
    }
    let created = batch.writes.len() as u64;
    if created > 0 {
        store.commit(batch).await.context("creating demo pools")?;
    }
    Ok(created)
}

/// Which profile the `i`-th node belongs to, and its index within that pool.
fn profile_for(i: u32, total: u32) -> (&'static Profile, u32) {
    let mut start = 0;
    for (n, profile) in PROFILES.iter().enumerate() {
        let size = if n == PROFILES.len() - 1 { total - start } else { total * profile.share / 100 };
        if i < start + size {
            return (profile, i - start + 1);
        }
        start += size;
    }
    (&PROFILES[0], i + 1)
}

fn node_name(profile: &Profile, index: u32) -> Result<NodeId, bosun_core::ValidationError> {
    NodeId::new(format!("{}-{index:05}", profile.pool))
}

/// One generated node and the decisions made for it.
struct FleetNode {
    id: NodeId,
    profile: &'static Profile,
    status: NodeStatus,
    gpus: u32,
    registration: NodeRegistration,
    provider_instance_id: String,
    registered_at: Timestamp,
}

impl FleetNode {
    fn generate(profile: &'static Profile, index: u32, now: Timestamp, rng: &mut SmallRng) -> anyhow::Result<Self> {
        let id = node_name(profile, index)?;
        let (region, zones) = profile.regions[rng.random_range(0..profile.regions.len())];
        let zone = zones[rng.random_range(0..zones.len())];
        let rack = format!("r{:02}", rng.random_range(1..=40));
        let gpus = 8;
        let roll = rng.random_range(0..1000);
        let status = match roll {
            0..=939 => NodeStatus::Active,
            940..=959 => NodeStatus::Cordoned,
            960..=969 => NodeStatus::Draining,
            970..=989 => NodeStatus::Unhealthy,
            _ => NodeStatus::Terminated,
        };
        let provider_instance_id = match profile.provider {
            "gcp" => format!("{}", rng.random_range(1_000_000_000_000_000_000u64..9_999_999_999_999_999_999)),
            "aws" => format!("i-0{:016x}", rng.random::<u64>()),
            _ => format!("{:032x}", rng.random::<u128>()),
        };
        let mut labels = Labels::new();
        for (key, value) in [
            ("bosun.dev/pool", profile.pool),
            ("gpu", profile.gpu_name.split_whitespace().nth(1).unwrap_or("gpu")),
            ("topology.bosun.dev/rack", rack.as_str()),
        ] {
            labels.insert(key, value.to_ascii_lowercase())?;
        }
        let registration = NodeRegistration {
            node_id: id.clone(),
            provider: profile.provider.to_owned(),
            region: region.to_owned(),
            zone: zone.to_owned(),
            instance_type: profile.instance_type.to_owned(),
            pool: PoolName::new(profile.pool).ok(),
            labels,
            gpus: (0..gpus)
                .map(|g| Gpu {
                    index: g,
                    uuid: format!(
                        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        rng.random::<u32>(),
                        index,
                        g,
                        rng.random::<u16>(),
                        rng.random::<u64>() & 0xffff_ffff_ffff
                    ),
                    name: profile.gpu_name.to_owned(),
                    pci_bus_id: format!(
                        "00000000:{:02X}:00.0",
                        [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb][g as usize % 8]
                    ),
                    memory_bytes: profile.gpu_memory_bytes,
                    driver_version: profile.driver.to_owned(),
                    cuda_version: profile.cuda.to_owned(),
                })
                .collect(),
            metadata: NodeMetadata {
                hostname: id.to_string(),
                internal_ip: format!(
                    "10.{}.{}.{}",
                    rng.random_range(0..64),
                    rng.random_range(0..256),
                    rng.random_range(1..255)
                ),
                external_ip: String::new(),
                kernel_version: "6.1.0-26-cloud-amd64".to_owned(),
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
        };
        let registered_at = now - Duration::from_secs(rng.random_range(3600..30 * 24 * 3600));
        Ok(FleetNode { id, profile, status, gpus, registration, provider_instance_id, registered_at })
    }

    /// Appends the node, its instance, its history and its commands to `batch`.
    fn write(
        &self,
        batch: &mut WriteBatch,
        summary: &mut SeedSummary,
        now: Timestamp,
        rng: &mut SmallRng,
    ) -> anyhow::Result<()> {
        let registered = Node::register(&self.registration, self.registered_at)?;
        let mut node = registered.clone();
        // Each status change is its own update, as the server would have written it.
        let mut history: Vec<Node> = Vec::new();
        node.health = Health::Healthy;
        node.last_health_report = Some(now - Duration::from_secs(rng.random_range(0..60)));
        let mut instance = Instance::start_provisioning(
            InstanceRequest {
                id: InstanceId::new(self.id.as_str())?,
                provider: self.profile.provider.to_owned(),
                region: node.region.clone(),
                zone: node.zone.clone(),
                instance_type: node.instance_type.clone(),
                pool: node.pool.clone(),
                labels: node.labels.clone(),
            },
            self.registered_at - Duration::from_secs(240),
        )?;
        instance.provider_instance_id = Some(self.provider_instance_id.clone());
        instance.apply(
            InstanceTrigger::Provisioned,
            "waiting for the agent to register",
            self.registered_at - Duration::from_secs(200),
        )?;
        instance.node_id = Some(node.id.clone());
        instance.apply(InstanceTrigger::AgentRegistered, "node registered", self.registered_at)?;

        let since = now - Duration::from_secs(rng.random_range(60..72 * 3600));
        let mut report_health = Health::Healthy;
        let mut events = Vec::new();
        let mut commands = Vec::new();
        match self.status {
            NodeStatus::Active => {
                if rng.random_range(0..100) < 3 {
                    node.health = Health::Degraded;
                    report_health = Health::Degraded;
                    events.push(event(
                        EventType::Thermal,
                        HealthSystem::Thermal,
                        rng.random_range(0..8),
                        [("temperature", "87")],
                        "GPU temperature above 85C",
                        Health::Degraded,
                        "thermal-warning",
                        now,
                    ));
                }
            }
            NodeStatus::Cordoned => {
                node.apply(NodeTrigger::Cordon, "kernel upgrade", since)?;
                history.push(node.clone());
                commands.push(self.command(
                    CommandKind::Cordon,
                    "kernel upgrade",
                    &[CommandTrigger::Deliver, CommandTrigger::Succeed],
                    since,
                )?);
            }
            NodeStatus::Draining => {
                node.apply(NodeTrigger::Drain, "preemption notice", since)?;
                history.push(node.clone());
                commands.push(self.command(
                    CommandKind::Drain,
                    "preemption notice",
                    &[CommandTrigger::Deliver, CommandTrigger::Ack],
                    since,
                )?);
            }
            NodeStatus::Unhealthy => {
                let gpu = rng.random_range(0..self.gpus);
                let reason = format!("fatal XID 79 on GPU {gpu}: GPU has fallen off the bus");
                node.apply(NodeTrigger::MarkUnhealthy, &reason, since)?;
                history.push(node.clone());
                node.health = Health::Unhealthy;
                node.unhealthy_streak = rng.random_range(1..4);
                report_health = Health::Unhealthy;
                events.push(event(
                    EventType::Xid,
                    HealthSystem::Pcie,
                    gpu as i32,
                    [("xid_code", "79")],
                    "GPU has fallen off the bus",
                    Health::Unhealthy,
                    "fatal-xid",
                    since,
                ));
                let mut diag = BTreeMap::new();
                diag.insert("test".to_owned(), "dcgmi-diag-r3".to_owned());
                commands.push(self.command_with(
                    CommandKind::RunDiagnostic,
                    "confirm GPU failure",
                    diag,
                    &[],
                    since,
                )?);
            }
            NodeStatus::Terminated => {
                node.apply(NodeTrigger::Terminate, "scale down", since)?;
                history.push(node.clone());
                node.apply(
                    NodeTrigger::TerminationConfirmed,
                    "provider confirmed termination",
                    since + Duration::from_secs(90),
                )?;
                node.health = Health::Unknown;
                instance.apply(InstanceTrigger::Terminate, "scale down", since)?;
                instance.apply(
                    InstanceTrigger::Gone,
                    "provider confirmed termination",
                    since + Duration::from_secs(90),
                )?;
            }
            NodeStatus::Terminating => {}
        }
        if self.status != NodeStatus::Terminated && rng.random_range(0..10) == 0 {
            let mut params = BTreeMap::new();
            params.insert("test".to_owned(), "nvbandwidth".to_owned());
            let mut command = self.command_with(
                CommandKind::RunDiagnostic,
                "weekly bandwidth check",
                params,
                &[CommandTrigger::Deliver, CommandTrigger::Ack, CommandTrigger::Succeed],
                since - Duration::from_secs(3600),
            )?;
            if let Some(done) = command.last_mut() {
                done.result.insert("h2d_gbps".to_owned(), format!("{:.1}", rng.random_range(48.0..53.0)));
                done.outcome_message = "all links within expected bandwidth".to_owned();
            }
            commands.push(command);
        }

        // The node as registered, then its later history as updates.
        history.push(node.clone());
        batch.push(bosun_store::Write::CreateNode { node: Box::new(registered), gpus: self.registration.gpus.clone() });
        let mut revision = Revision::FIRST;
        for snapshot in history {
            batch.push(bosun_store::Write::UpdateNode { node: Box::new(snapshot), expected: revision, gpus: None });
            revision = revision.next();
        }
        batch.push(bosun_store::Write::CreateInstance(Box::new(instance)));
        *summary.by_status.entry(self.status.as_str()).or_default() += 1;
        summary.instances += 1;

        let results = vec![
            check("boot", Health::Healthy, "8 GPUs detected and accessible"),
            check("nvml", Health::Healthy, "NVML responding"),
            check("gpu", report_health.worst(Health::Healthy), "GPU checks complete"),
        ];
        let report = HealthReport::new(node.id.clone(), node.last_health_report.unwrap_or(now), results, events);
        batch.push(bosun_store::Write::AppendHealthReport(Box::new(report)));
        summary.health_reports += 1;

        for steps in commands {
            summary.commands += 1;
            let mut revision = Revision::FIRST;
            let mut steps = steps.into_iter();
            if let Some(issued) = steps.next() {
                batch.push(bosun_store::Write::CreateCommand(Box::new(issued)));
            }
            for step in steps {
                batch.push(bosun_store::Write::UpdateCommand { command: Box::new(step), expected: revision });
                revision = revision.next();
            }
        }
        Ok(())
    }

    fn command(
        &self,
        kind: CommandKind,
        reason: &str,
        triggers: &[CommandTrigger],
        at: Timestamp,
    ) -> anyhow::Result<Vec<Command>> {
        self.command_with(kind, reason, BTreeMap::new(), triggers, at)
    }

    /// A command and each state it went through, one snapshot per step.
    fn command_with(
        &self,
        kind: CommandKind,
        reason: &str,
        parameters: BTreeMap<String, String>,
        triggers: &[CommandTrigger],
        at: Timestamp,
    ) -> anyhow::Result<Vec<Command>> {
        let request = CommandRequest {
            node_id: self.id.clone(),
            kind,
            parameters,
            reason: reason.to_owned(),
            time_to_live: Duration::from_secs(24 * 3600),
        };
        let mut command = Command::issue(request, Actor::operator("seed"), at).context("issuing a demo command")?;
        let mut steps = vec![command.clone()];
        for (i, trigger) in triggers.iter().enumerate() {
            command.apply(*trigger, at + Duration::from_secs(5 * (i as u64 + 1)))?;
            steps.push(command.clone());
        }
        Ok(steps)
    }
}

fn check(name: &str, status: Health, message: &str) -> CheckResult {
    CheckResult { name: name.to_owned(), status, message: message.to_owned(), details: BTreeMap::new() }
}

#[allow(clippy::too_many_arguments)]
fn event<const N: usize>(
    event_type: EventType,
    system: HealthSystem,
    gpu_index: i32,
    metrics: [(&str, &str); N],
    message: &str,
    health: Health,
    rule: &str,
    at: Timestamp,
) -> ClassifiedEvent {
    ClassifiedEvent {
        event: HealthEvent {
            timestamp: at,
            gpu_index,
            gpu_uuid: String::new(),
            system,
            event_type,
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            message: message.to_owned(),
        },
        verdict: Verdict {
            health,
            rule: Some(rule.to_owned()),
            action: if health == Health::Unhealthy { RemediationAction::Replace } else { RemediationAction::None },
            errors: Vec::new(),
        },
    }
}

fn sample(node: &NodeId, at: Timestamp, gpus: u32, rng: &mut SmallRng) -> MetricSample {
    MetricSample {
        node_id: node.clone(),
        at,
        cpu_percent: rng.random_range(5.0..60.0),
        memory_percent: rng.random_range(20.0..80.0),
        gpus: (0..gpus)
            .map(|index| GpuSample {
                index,
                temperature_c: rng.random_range(38.0..78.0),
                power_w: rng.random_range(90.0..690.0),
                utilization_percent: rng.random_range(0.0..100.0),
                memory_used_bytes: rng.random_range(0..40u64 << 30),
            })
            .collect(),
    }
}
