//! `bosun bench inventory`: how long one sync of a large Proxmox-like snapshot takes, one
//! JSON line per phase: `{"backend", "op", "rows", "seconds", "rows_per_s"}`.
//!
//! - `sync_new`: every record new (hosts, VMs, containers, storage);
//! - `sync_unchanged`: the same snapshot again, usage moved (median of three): no record
//!   is written;
//! - `sync_changed`: 1% of the VMs changed and 1% gone;
//! - `sync_usage_refresh`: unchanged, but past the usage refresh interval, so every
//!   record's usage is rewritten (without a revision).
//!
//! The store's clock is a fake one advanced between phases, so the refresh phase does not
//! wait five minutes. A benchmark, never a test: the numbers are compared with the targets
//! by a person.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bosun_core::inventory::{
    Container, ContainerRuntime, Host, InventorySnapshot, Reported, SourceSync, SourceType, Storage, SyncScope, Usage,
    Vm,
};
use bosun_core::{Actor, Clock as _, FakeClock, Labels, SourceName, SystemClock};
use bosun_store::{Database, SharedStore, StoreLocation, StoreOptions, WriteBatch};
use clap::Args;

use super::bench::report;

#[derive(Debug, Args)]
pub struct InventoryBench {
    /// Hypervisor hosts the guests are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    hosts: u32,
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=500_000))]
    vms: u32,
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(0..=500_000))]
    containers: u32,
}

fn digest(text: String) -> String {
    bosun_store::ledger::sha256_hex(text.as_bytes())
}

fn usage(i: u32, round: u32) -> Usage {
    Usage {
        cpu: f64::from((i + round) % 100) / 100.0,
        memory_used: u64::from(i) * 1_048_576 + u64::from(round),
        disk_used: u64::from(i) * 4_096,
        net_in: u64::from(i + round) * 1_000,
        net_out: u64::from(i + round) * 900,
        uptime_s: u64::from(round) * 30,
    }
}

/// A snapshot shaped like a large Proxmox cluster: guests spread over the hosts, one
/// shared storage seen by every host and one local storage per host. `round` moves the
/// usage; `changed` VMs (the first ones) have a new configuration, `gone` (the last ones)
/// are missing.
fn snapshot(bench: &InventoryBench, round: u32, changed: u32, gone: u32) -> InventorySnapshot {
    let host_name = |i: u32| format!("pve{:04}", i % bench.hosts);
    let hosts = (0..bench.hosts)
        .map(|i| {
            let state = Host {
                name: host_name(i),
                status: "online".to_owned(),
                cpus: 128,
                memory_total: 1 << 40,
                node_id: None,
            };
            Reported { key: host_name(i), digest: digest(format!("host {i}")), state, usage: usage(i, round) }
        })
        .collect();
    // Tagged as Proxmox guests are: each tag a label with an empty value.
    let training = Labels::try_from([("gpu", ""), ("training", "")]).unwrap_or_default();
    let inference = Labels::try_from([("gpu", ""), ("inference", "")]).unwrap_or_default();
    let infra = Labels::try_from([("infra", "")]).unwrap_or_default();
    let vms = (0..bench.vms.saturating_sub(gone))
        .map(|i| {
            let vmid = 100 + i;
            let config = if i < changed { format!("cfg-{vmid}-v2") } else { format!("cfg-{vmid}") };
            let state = Vm {
                host: host_name(i),
                vmid,
                name: format!("train-{vmid}"),
                status: "running".to_owned(),
                template: false,
                cpus: 32,
                memory_total: 256 << 30,
                disk_total: 1 << 40,
                ha_managed: i % 2 == 0,
                lock: None,
                config_digest: Some(digest(config.clone())),
                gpu_devices: vec![format!("mapping=gpu{}", i % 8)],
                node_id: None,
                labels: if i % 2 == 0 { training.clone() } else { inference.clone() },
            };
            Reported { key: vmid.to_string(), digest: digest(config), state, usage: usage(i, round) }
        })
        .collect();
    let containers = (0..bench.containers)
        .map(|i| {
            let vmid = 1_000_000 + i;
            let state = Container {
                runtime: ContainerRuntime::Lxc,
                host: host_name(i),
                vmid: Some(vmid),
                name: format!("svc-{i}"),
                hostname: Some(format!("svc-{i}.lab")),
                os_template: Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".to_owned()),
                status: "running".to_owned(),
                template: false,
                cpus: 2,
                memory_total: 2 << 30,
                disk_total: 8 << 30,
                ha_managed: false,
                lock: None,
                config_digest: Some(digest(format!("ct-{vmid}"))),
                labels: infra.clone(),
            };
            Reported { key: vmid.to_string(), digest: digest(format!("ct-{vmid}")), state, usage: usage(i, round) }
        })
        .collect();
    let all_hosts: Vec<String> = (0..bench.hosts).map(host_name).collect();
    let mut storage = vec![Reported {
        key: "ceph".to_owned(),
        digest: digest("ceph".to_owned()),
        state: Storage {
            name: "ceph".to_owned(),
            storage_type: "rbd".to_owned(),
            content: vec!["images".to_owned(), "rootdir".to_owned()],
            shared: true,
            status: "available".to_owned(),
            total: 1 << 50,
            hosts: all_hosts,
        },
        usage: usage(0, round),
    }];
    storage.extend((0..bench.hosts).map(|i| Reported {
        key: format!("{}/local-lvm", host_name(i)),
        digest: digest(format!("local {i}")),
        state: Storage {
            name: "local-lvm".to_owned(),
            storage_type: "lvmthin".to_owned(),
            content: vec!["images".to_owned()],
            shared: false,
            status: "available".to_owned(),
            total: 4 << 40,
            hosts: vec![host_name(i)],
        },
        usage: usage(i, round),
    }));
    InventorySnapshot { hosts, vms, containers, storage, workloads: Vec::new(), services: Vec::new() }
}

async fn timed_sync(store: &SharedStore, clock: &FakeClock, snapshot: InventorySnapshot) -> anyhow::Result<Duration> {
    let sync = SourceSync {
        source: SourceName::new("bench")?,
        source_type: SourceType::Proxmox,
        scope: SyncScope::Source,
        started_at: clock.now(),
        outcome: Ok(snapshot),
    };
    let started = Instant::now();
    store.commit(WriteBatch::new(Actor::system("bench"), "inventory bench").sync_inventory(sync)).await?;
    let elapsed = started.elapsed();
    clock.advance(Duration::from_secs(30));
    Ok(elapsed)
}

pub async fn run(location: &StoreLocation, chosen: bool, bench: &InventoryBench) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let location =
        if chosen { location.clone() } else { StoreLocation::Sqlite { path: scratch.path().join("bench.db") } };
    let database = Database::connect(&location).await?;
    database.migrate_up().await.or_else(|e| match e {
        bosun_store::OpenError::NoSchema { .. } => Ok(Vec::new()),
        other => Err(other),
    })?;
    let clock = Arc::new(FakeClock::new(SystemClock.now()));
    let store = database.into_store(StoreOptions::new(clock.clone())).await?;
    if !store.inventory_sources().await?.is_empty() {
        bail!("{location} already holds an inventory; benchmark an empty store");
    }
    let backend = store.backend().as_str();
    let records = |s: &InventorySnapshot| s.len() as u64;
    eprintln!("benchmarking {location}: {} hosts, {} VMs, {} containers", bench.hosts, bench.vms, bench.containers);

    let first = snapshot(bench, 0, 0, 0);
    let rows = records(&first);
    report(backend, "sync_new", rows, timed_sync(&store, &clock, first).await?);

    let mut runs = Vec::new();
    for round in 1..=3 {
        runs.push(timed_sync(&store, &clock, snapshot(bench, round, 0, 0)).await?);
    }
    runs.sort();
    report(backend, "sync_unchanged", rows, runs[1]);

    let one_percent = bench.vms / 100;
    let changed = snapshot(bench, 4, one_percent, one_percent);
    let rows = records(&changed);
    report(backend, "sync_changed", rows, timed_sync(&store, &clock, changed).await?);

    clock.advance(bosun_store::inventory::USAGE_REFRESH);
    let refreshed = snapshot(bench, 5, one_percent, one_percent);
    let rows = records(&refreshed);
    report(backend, "sync_usage_refresh", rows, timed_sync(&store, &clock, refreshed).await?);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
