//! `bosun bench store`: throughput of the store's hot paths, one JSON line per operation:
//! `{"backend", "op", "rows", "seconds", "rows_per_s"}`.
//!
//! - `register`: one transaction per node (node, GPU inventory, RUNNING instance, change
//!   records), issued by `--concurrency` concurrent writers.
//! - `heartbeat_flush`: one heartbeat per node in batches of `--batch` rows, one
//!   transaction per batch; the median of five rounds, after an untimed first round
//!   (steady state: every node has heartbeated before).
//! - `metrics_flush`: one sample (eight GPUs) per node in batches of `--batch`; the median
//!   of five rounds.
//! - `list_nodes`: the whole fleet in pages of 10,000; the median of five runs.
//! - `command_cycle`: issue, deliver and acknowledge (three transactions) for up to 10,000
//!   commands.
//! - `run_events`: operations-ledger events appended to 1,000 running runs, ten per
//!   transaction, by `--concurrency` writers (100,000 events).
//! - `list_runs`: the first page of 100 runs, newest first, with 100,000 runs stored; the
//!   median of 20 pages (`seconds` is one page's time).
//!
//! A benchmark, never a test: numbers depend on the machine and are compared against the
//! targets in SPEC section 10 by a person, not asserted.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bosun_core::command::CommandRequest;
use bosun_core::instance::InstanceRequest;
use bosun_core::node::Gpu;
use bosun_core::{
    Actor, Clock as _, Command, CommandKind, CommandTrigger, GpuSample, Heartbeat, Instance, InstanceId,
    InstanceTrigger, Labels, MetricSample, Node, NodeId, NodeMetadata, NodeRegistration, PoolName, SystemClock,
};
use bosun_store::{Database, NodeFilter, PageRequest, SharedStore, StoreLocation, StoreOptions, WriteBatch};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub store: super::StoreArg,
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// Store throughput: register, heartbeat_flush, metrics_flush, list_nodes, command_cycle,
    /// export, copy, run_events, list_runs.
    Store(StoreBench),
    /// Health policy evaluation on one core: prints events/s for a realistic event mix.
    Policy(PolicyBench),
    /// Inventory sync of a large Proxmox-like snapshot: new, unchanged, 1% changed, and a
    /// usage refresh.
    Inventory(super::bench_inventory::InventoryBench),
}

#[derive(Debug, Args)]
struct PolicyBench {
    /// A policy file; the built-in default policy when absent.
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// Classify this many events.
    #[arg(long, conflicts_with = "duration")]
    events: Option<u64>,
    /// Classify events for this long (default 3s).
    #[arg(long, value_parser = super::remote::parse_duration)]
    duration: Option<std::time::Duration>,
}

fn bench_policy(bench: &PolicyBench) -> anyhow::Result<ExitCode> {
    let policy = match &bench.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            bosun_policy::Policy::from_yaml(&text)
                .with_context(|| format!("{} is not a valid policy", path.display()))?
        }
        None => bosun_policy::Policy::builtin()?,
    };
    let length = match (bench.events, bench.duration) {
        (Some(events), _) => bosun_policy::bench::BenchLength::Events(events),
        (None, duration) => {
            bosun_policy::bench::BenchLength::Duration(duration.unwrap_or(std::time::Duration::from_secs(3)))
        }
    };
    println!("{}", bosun_policy::bench::run(&policy, length).to_json_line());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct StoreBench {
    /// Fleet size. Registration writes this many nodes, one transaction each.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    nodes: u32,
    /// Concurrent writers for the one-transaction-per-item operations (a registration
    /// storm: agents of a fleet coming up together).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Rows per soft-state flush.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Operations to measure (registration always runs: the others need its nodes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "register,heartbeat_flush,metrics_flush,list_nodes,command_cycle,export,copy,run_events,list_runs"
    )]
    ops: Vec<Op>,
    /// An empty store the `copy` operation copies into (default: a scratch SQLite file).
    #[arg(long, value_name = "URL")]
    copy_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum Op {
    Register,
    HeartbeatFlush,
    MetricsFlush,
    ListNodes,
    CommandCycle,
    /// Export every record (nodes, change log, ...) to a discarded file.
    Export,
    /// Copy every record into `--copy-to`, verification included.
    Copy,
    /// Append operations-ledger events to running runs.
    RunEvents,
    /// List a page of runs with 100,000 stored.
    ListRuns,
}

/// One result line.
#[derive(Debug, Serialize)]
struct Measurement<'a> {
    backend: &'a str,
    op: &'static str,
    rows: u64,
    seconds: f64,
    rows_per_s: f64,
}

pub(super) fn report(backend: &str, op: &'static str, rows: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let line =
        Measurement { backend, op, rows, seconds, rows_per_s: if seconds > 0.0 { rows as f64 / seconds } else { 0.0 } };
    // Serializing a struct of numbers and static strings cannot fail.
    println!("{}", serde_json::to_string(&line).unwrap_or_default());
}

/// Runs the benchmark on `location`, or on a throw-away SQLite file when the user chose no
/// store (so the default `bosun.db` is never filled with benchmark rows).
pub async fn run(location: &StoreLocation, chosen: bool, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let bench = match &args.target {
        BenchTarget::Store(bench) => bench,
        BenchTarget::Policy(bench) => return bench_policy(bench),
        BenchTarget::Inventory(bench) => return super::bench_inventory::run(location, chosen, bench).await,
    };
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let location =
        if chosen { location.clone() } else { StoreLocation::Sqlite { path: scratch.path().join("bench.db") } };
    let database = Database::connect(&location).await?;
    database.migrate_up().await.or_else(|e| match e {
        bosun_store::OpenError::NoSchema { .. } => Ok(Vec::new()),
        other => Err(other),
    })?;
    let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
    if store.counts().await?.nodes > 0 {
        bail!("{location} already holds nodes; benchmark an empty store (e.g. --store sqlite:///tmp/bench.db)");
    }
    let backend = store.backend().as_str();
    eprintln!("benchmarking {location} with {} nodes", bench.nodes);

    let ids: Vec<NodeId> = (0..bench.nodes).map(|i| NodeId::new(format!("bench-{i:07}"))).collect::<Result<_, _>>()?;

    let started = Instant::now();
    parallel(&store, &ids, bench.concurrency, "register", register_one).await?;
    report(backend, "register", ids.len() as u64, started.elapsed());

    let rounds = 5;
    settle(&store).await;
    if bench.ops.contains(&Op::HeartbeatFlush) {
        heartbeat_flush(&store, backend, &ids, bench.batch, rounds).await?;
    }
    if bench.ops.contains(&Op::MetricsFlush) {
        settle(&store).await;
        metrics_flush(&store, backend, &ids, bench.batch, rounds).await?;
    }
    if bench.ops.contains(&Op::ListNodes) {
        settle(&store).await;
        // The median of five full lists: the first warms the store's page cache.
        let mut runs = Vec::new();
        let mut listed = 0;
        for _ in 0..5 {
            let started = Instant::now();
            listed = list_all(&store).await?;
            runs.push(started.elapsed());
        }
        report(backend, "list_nodes", listed, median(runs));
    }
    if bench.ops.contains(&Op::CommandCycle) {
        settle(&store).await;
        let cycles = ids.len().min(10_000);
        let started = Instant::now();
        parallel(&store, &ids[..cycles], bench.concurrency, "commands", command_cycle).await?;
        report(backend, "command_cycle", cycles as u64, started.elapsed());
    }
    if bench.ops.contains(&Op::Export) {
        settle(&store).await;
        let started = Instant::now();
        let now = bosun_core::Clock::now(&SystemClock);
        let exported = bosun_store::transfer::export(&*store, std::io::sink(), now, Arc::new(())).await?;
        report(backend, "export", exported.records, started.elapsed());
    }
    if bench.ops.contains(&Op::Copy) {
        settle(&store).await;
        let target = match &bench.copy_to {
            Some(url) => StoreLocation::parse(url)?,
            None => StoreLocation::Sqlite { path: scratch.path().join("copy.db") },
        };
        let database = Database::connect(&target).await?;
        database.migrate_up().await.or_else(|e| match e {
            bosun_store::OpenError::NoSchema { .. } => Ok(Vec::new()),
            other => Err(other),
        })?;
        let target_store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
        let started = Instant::now();
        let copied = bosun_store::transfer::copy(
            &*store,
            &*target_store,
            bosun_store::transfer::Target::MustBeEmpty,
            Arc::new(()),
        )
        .await
        .with_context(|| format!("copying into {target}"))?;
        let elapsed = started.elapsed();
        target_store.close().await;
        // The line names the pair: `sqlite->postgres`.
        report(&format!("{backend}->{}", target.backend()), "copy", copied.records, elapsed);
    }
    if bench.ops.contains(&Op::RunEvents) {
        settle(&store).await;
        run_events(&store, backend, bench.concurrency).await?;
    }
    if bench.ops.contains(&Op::ListRuns) {
        settle(&store).await;
        list_runs(&store, backend).await?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs to append events to, events per transaction, and events in all.
const EVENT_RUNS: usize = 1_000;
const EVENTS_PER_COMMIT: usize = 10;
const EVENTS: usize = 100_000;

fn bench_run(kind: bosun_core::RunKind, at: bosun_core::Timestamp, n: usize) -> anyhow::Result<bosun_core::TaskRun> {
    let target = bosun_core::RunTarget::Node(NodeId::new(format!("bench-{:07}", n % 100_000))?);
    Ok(bosun_core::TaskRun::new(kind, bosun_core::RunStatus::Running, Actor::system("bench"), vec![target], at))
}

/// Appends [`EVENTS`] events to [`EVENT_RUNS`] runs, [`EVENTS_PER_COMMIT`] per
/// transaction, from `concurrency` writers each working on runs of its own.
async fn run_events(store: &SharedStore, backend: &str, concurrency: u32) -> anyhow::Result<()> {
    use bosun_core::{RunEvent, RunEventType, RunKind};
    let now = SystemClock.now();
    let mut runs = Vec::with_capacity(EVENT_RUNS);
    for n in 0..EVENT_RUNS {
        runs.push(bench_run(RunKind::External, now, n)?.id);
    }
    for chunk in runs.chunks(500) {
        let mut batch = WriteBatch::new(Actor::system("bench"), "bench runs");
        for (n, id) in chunk.iter().enumerate() {
            let mut run = bench_run(RunKind::External, now, n)?;
            run.id = *id;
            batch = batch.create_run(run);
        }
        store.commit(batch).await?;
    }
    let writers = (concurrency as usize).clamp(1, EVENT_RUNS);
    let commits_per_writer = EVENTS / EVENTS_PER_COMMIT / writers;
    let bar = output::progress_bar((commits_per_writer * writers * EVENTS_PER_COMMIT) as u64, "run events");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (store, bar) = (store.clone(), bar.clone());
        let mine: Vec<bosun_core::RunId> = runs.iter().skip(writer).step_by(writers).copied().collect();
        tasks.push(tokio::spawn(async move {
            for commit in 0..commits_per_writer {
                let run = mine[commit % mine.len()];
                let mut batch = WriteBatch::new(Actor::system("bench"), "step");
                for step in 0..EVENTS_PER_COMMIT {
                    let event = RunEvent::new(run, RunEventType::Log, format!("step {step} of commit {commit}"))
                        .at_step(u32::try_from(step).unwrap_or(0));
                    batch = batch.append_run_event(event);
                }
                store.commit(batch).await?;
                bar.inc(EVENTS_PER_COMMIT as u64);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("benchmark task panicked")??;
    }
    bar.finish_and_clear();
    report(backend, "run_events", (commits_per_writer * writers * EVENTS_PER_COMMIT) as u64, started.elapsed());
    Ok(())
}

/// Stores 100,000 runs (1,000 per transaction), then times the first page of 100, newest
/// first: the median of 20 pages.
async fn list_runs(store: &SharedStore, backend: &str) -> anyhow::Result<()> {
    const RUNS: usize = 100_000;
    let kinds = [bosun_core::RunKind::Replacement, bosun_core::RunKind::Scale, bosun_core::RunKind::Runbook];
    let bar = output::progress_bar(RUNS as u64, "runs");
    let start = SystemClock.now();
    for chunk in 0..RUNS / 1_000 {
        let mut batch = WriteBatch::new(Actor::system("bench"), "bench runs");
        for i in 0..1_000 {
            let n = chunk * 1_000 + i;
            let kind = kinds[n % kinds.len()];
            let mut run = bench_run(kind, start + Duration::from_millis(n as u64), n)?;
            if kind == bosun_core::RunKind::Runbook {
                run.runbook = Some("bench".parse()?);
                run.runbook_version = Some(1);
            }
            batch = batch.create_run(run);
        }
        store.commit(batch).await?;
        bar.inc(1_000);
    }
    bar.finish_and_clear();
    settle(store).await;
    let mut pages = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let page = store.list_runs(&bosun_store::RunFilter::default(), &PageRequest::first(100)).await?;
        pages.push(started.elapsed());
        anyhow::ensure!(page.items.len() == 100, "a page of runs holds {} runs, not 100", page.items.len());
    }
    report(backend, "list_runs", 100, median(pages));
    Ok(())
}

/// Flushes the previous phase's writes so they do not slow the next measurement.
async fn settle(store: &SharedStore) {
    if let Err(error) = store.checkpoint().await {
        eprintln!(
            "note: could not checkpoint between phases ({error}); numbers may include the previous phase's writes"
        );
    }
}

/// Steady-state heartbeat flushes: one untimed round first gives every node its liveness
/// row (a node's first heartbeat happens once in its life); then the median of `rounds`
/// timed rounds over the whole fleet.
async fn heartbeat_flush(
    store: &SharedStore,
    backend: &'static str,
    ids: &[NodeId],
    batch: usize,
    rounds: u64,
) -> anyhow::Result<()> {
    let flush_round = |offset: u64| async move {
        let now = SystemClock.now() + Duration::from_millis(offset);
        let started = Instant::now();
        for chunk in ids.chunks(batch) {
            let beats: Vec<Heartbeat> = chunk.iter().map(|id| Heartbeat { node_id: id.clone(), at: now }).collect();
            store.record_heartbeats(&beats).await?;
        }
        anyhow::Ok(started.elapsed())
    };
    flush_round(0).await?;
    let mut times = Vec::new();
    for round in 1..=rounds {
        times.push(flush_round(round).await?);
    }
    report(backend, "heartbeat_flush", ids.len() as u64, median(times));
    Ok(())
}

/// The median of `rounds` rounds of samples (eight GPUs each) over the whole fleet, ten
/// seconds apart.
async fn metrics_flush(
    store: &SharedStore,
    backend: &'static str,
    ids: &[NodeId],
    batch: usize,
    rounds: u64,
) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for round in 0..rounds {
        let now = SystemClock.now() + Duration::from_secs(10 * round);
        let started = Instant::now();
        for chunk in ids.chunks(batch) {
            let samples: Vec<MetricSample> = chunk.iter().map(|id| sample(id, now)).collect();
            store.record_metric_samples(&samples).await?;
        }
        times.push(started.elapsed());
    }
    report(backend, "metrics_flush", ids.len() as u64, median(times));
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Runs `work` once per id with `concurrency` tasks, showing progress on a terminal.
async fn parallel<F, Fut>(
    store: &SharedStore,
    ids: &[NodeId],
    concurrency: u32,
    what: &str,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(SharedStore, NodeId) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let bar = output::progress_bar(ids.len() as u64, what);
    let chunks: Vec<Vec<NodeId>> =
        ids.chunks(ids.len().div_ceil(concurrency as usize).max(1)).map(<[NodeId]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                work(store.clone(), id).await?;
                bar.inc(1);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("benchmark task panicked")??;
    }
    bar.finish_and_clear();
    Ok(())
}

fn registration(id: &NodeId) -> NodeRegistration {
    NodeRegistration {
        node_id: id.clone(),
        provider: "fake".into(),
        region: "local".into(),
        zone: "local-a".into(),
        instance_type: "h100-8x".into(),
        pool: PoolName::new("bench").ok(),
        labels: Labels::new(),
        gpus: (0..8)
            .map(|i| Gpu {
                index: i,
                uuid: format!("GPU-{id}-{i}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + i),
                memory_bytes: 85_520_809_984,
                driver_version: "550.90.07".into(),
                cuda_version: "12.4".into(),
            })
            .collect(),
        metadata: NodeMetadata { hostname: id.to_string(), agent_version: "bench".into(), ..NodeMetadata::default() },
    }
}

/// A registration as the server performs it: the node and its RUNNING instance, in one
/// transaction.
async fn register_one(store: SharedStore, id: NodeId) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let registration = registration(&id);
    let node = Node::register(&registration, now)?;
    let mut instance = Instance::start_provisioning(
        InstanceRequest {
            id: InstanceId::new(id.as_str())?,
            provider: "fake".into(),
            region: "local".into(),
            zone: "local-a".into(),
            instance_type: "h100-8x".into(),
            pool: node.pool.clone(),
            labels: Labels::new(),
        },
        now,
    )?;
    instance.node_id = Some(id.clone());
    instance.apply(InstanceTrigger::AgentRegistered, "node registered", now)?;
    let batch =
        WriteBatch::new(Actor::Node(id), "registered").create_node(node, registration.gpus).create_instance(instance);
    store.commit(batch).await?;
    Ok(())
}

/// Issue, deliver and acknowledge one command: three transactions, as in production.
async fn command_cycle(store: SharedStore, id: NodeId) -> anyhow::Result<()> {
    let request = CommandRequest {
        node_id: id.clone(),
        kind: CommandKind::RunDiagnostic,
        parameters: BTreeMap::from([("test".to_owned(), "quick".to_owned())]),
        reason: "bench".into(),
        time_to_live: Duration::from_secs(600),
    };
    let mut command = Command::issue(request, Actor::operator("bench"), SystemClock.now())?;
    let committed =
        store.commit(WriteBatch::new(Actor::operator("bench"), "issue").create_command(command.clone())).await?;
    command.revision = committed.revision(0);
    command.apply(CommandTrigger::Deliver, SystemClock.now())?;
    let committed =
        store.commit(WriteBatch::new(Actor::Node(id.clone()), "delivered").update_command(command.clone())).await?;
    command.revision = committed.revision(0);
    command.apply(CommandTrigger::Succeed, SystemClock.now())?;
    store.commit(WriteBatch::new(Actor::Node(id), "acknowledged").update_command(command)).await?;
    Ok(())
}

fn sample(id: &NodeId, at: bosun_core::Timestamp) -> MetricSample {
    MetricSample {
        node_id: id.clone(),
        at,
        cpu_percent: 23.5,
        memory_percent: 41.0,
        gpus: (0..8)
            .map(|index| GpuSample {
                index,
                temperature_c: 61.0,
                power_w: 512.0,
                utilization_percent: 87.5,
                memory_used_bytes: 40 << 30,
            })
            .collect(),
    }
}

async fn list_all(store: &SharedStore) -> anyhow::Result<u64> {
    let mut listed = 0;
    let mut page = PageRequest::first(bosun_store::query::MAX_PAGE_SIZE);
    loop {
        let result = store.list_nodes(&NodeFilter::default(), &page).await?;
        listed += result.items.len() as u64;
        match result.next {
            Some(cursor) => page = PageRequest::after(bosun_store::query::MAX_PAGE_SIZE, cursor),
            None => return Ok(listed),
        }
    }
}
