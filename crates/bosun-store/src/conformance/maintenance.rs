//! Retention, bounded histories, integrity checks and housekeeping calls.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::{
    BootstrapLog, CheckResult, CommandKind, CommandTrigger, Health, HealthReport, InstanceTrigger, ResourceKind,
};

use super::{Ctx, E, assert_err, batch, node_id};
use crate::query::ChangeFilter;
use crate::store::RetentionPolicy;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) async fn retention_keeps_latest_state_of_live_resources(ctx: &Ctx) {
    let mut node = ctx.create_node("a").await;
    for health in [Health::Healthy, Health::Degraded, Health::Healthy] {
        node.health = health;
        ctx.store.commit(batch("report").update_node(node.clone())).await.expect("update");
        node = ctx.store.node(&node.id).await.expect("get");
    }
    ctx.clock.advance(WEEK + Duration::from_secs(3600));
    let report = ctx
        .store
        .apply_retention(&RetentionPolicy { changes_older_than: WEEK, ..Default::default() })
        .await
        .expect("retention");
    assert_eq!(report.changes_deleted, 3);
    let history = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "a"), 10).await.expect("log");
    assert_eq!(history.len(), 1, "the latest state of a live node is never compacted away");
    assert_eq!(history[0].revision, node.revision);
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn retention_drops_old_history_of_deleted_resources(ctx: &Ctx) {
    let node = ctx.create_node("gone").await;
    ctx.create_node("kept").await;
    ctx.store.commit(batch("retention").delete_node(node.id, None)).await.expect("delete");
    ctx.clock.advance(WEEK * 2);
    let report = ctx
        .store
        .apply_retention(&RetentionPolicy { changes_older_than: WEEK, ..Default::default() })
        .await
        .expect("retention");
    assert_eq!(report.changes_deleted, 2);
    assert_eq!(
        ctx.store.last_change_seq().await.expect("last seq"),
        3,
        "retention removed the newest records; their numbers stay handed out"
    );
    let gone = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "gone"), 10).await.expect("log");
    assert!(gone.is_empty());
    let kept = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "kept"), 10).await.expect("log");
    assert_eq!(kept.len(), 1);
}

pub(crate) async fn retention_keeps_recent_changes(ctx: &Ctx) {
    let mut node = ctx.create_node("a").await;
    node.health = Health::Healthy;
    ctx.store.commit(batch("old").update_node(node.clone())).await.expect("update");
    ctx.clock.advance(WEEK + Duration::from_secs(1));
    let mut node = ctx.store.node(&node.id).await.expect("get");
    node.health = Health::Degraded;
    ctx.store.commit(batch("recent").update_node(node.clone())).await.expect("update");
    node = ctx.store.node(&node.id).await.expect("get");
    node.health = Health::Healthy;
    ctx.store.commit(batch("recent").update_node(node)).await.expect("update");
    let generous = RetentionPolicy { changes_older_than: WEEK * 4, ..Default::default() };
    assert_eq!(ctx.store.apply_retention(&generous).await.expect("retention").changes_deleted, 0);
    ctx.store
        .apply_retention(&RetentionPolicy { changes_older_than: WEEK, ..Default::default() })
        .await
        .expect("retention");
    let history = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "a"), 10).await.expect("log");
    let reasons: Vec<_> = history.iter().map(|c| c.reason.as_str()).collect();
    assert_eq!(reasons, ["recent", "recent"]);
}

pub(crate) async fn retention_prunes_expired_samples(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let samples: Vec<_> =
        (0..3).map(|i| super::soft_state::sample(&node.id, ctx.now() + Duration::from_secs(i * 10))).collect();
    assert_eq!(ctx.store.record_metric_samples(&samples).await.expect("record"), 3);
    ctx.clock.advance(Duration::from_secs(600));
    let report = ctx.store.apply_retention(&RetentionPolicy::default()).await.expect("retention");
    assert_eq!(report.samples_deleted, 3);
    assert!(ctx.store.metric_samples(&node.id, bosun_core::Timestamp::UNIX_EPOCH).await.expect("read").is_empty());
}

fn report(node: &str, at: bosun_core::Timestamp, status: Health, message: &str) -> HealthReport {
    let check = CheckResult { name: "gpu".into(), status, message: message.into(), details: BTreeMap::new() };
    HealthReport::new(node_id(node), at, vec![check], vec![])
}

pub(crate) async fn health_history_is_newest_first_and_bounded(ctx: &Ctx) {
    ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    for i in 0..8 {
        ctx.clock.advance(Duration::from_secs(60));
        let r = report("n1", ctx.now(), Health::Healthy, &format!("report {i}"));
        ctx.store.commit(batch("report").append_health_report(r)).await.expect("append");
    }
    let other = report("n2", ctx.now(), Health::Unhealthy, "xid 79");
    ctx.store.commit(batch("report").append_health_report(other.clone())).await.expect("append");
    let history = ctx.store.health_history(&node_id("n1"), 100).await.expect("history");
    let messages: Vec<_> = history.iter().map(|r| r.report.results[0].message.clone()).collect();
    assert_eq!(messages, ["report 7", "report 6", "report 5", "report 4", "report 3"], "bounded to 5 per node");
    assert!(history.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(ctx.store.health_history(&node_id("n1"), 2).await.expect("history").len(), 2);
    let n2 = ctx.store.health_history(&node_id("n2"), 10).await.expect("history");
    assert_eq!(n2.len(), 1);
    assert_eq!(n2[0].report.health, Health::Unhealthy);
    assert_eq!(n2[0].report, other, "reports round-trip unchanged");
}

pub(crate) async fn health_report_for_missing_node_is_not_found(ctx: &Ctx) {
    let r = report("ghost", ctx.now(), Health::Healthy, "");
    assert_err!(ctx.store.commit(batch("report").append_health_report(r)).await, E::NotFound { .. });
    assert_err!(ctx.store.health_history(&node_id("ghost"), 10).await, E::NotFound { .. });
}

pub(crate) async fn bootstrap_logs_are_bounded_and_newest_first(ctx: &Ctx) {
    for i in 0..5 {
        let log = BootstrapLog {
            id: 0,
            node_id: node_id("vm-1"),
            instance_id: Some("i1".parse().expect("valid")),
            pool: Some("training".parse().expect("valid")),
            started_at: ctx.now(),
            duration_ms: 1200,
            success: i != 4,
            error: if i == 4 { "exit 1".into() } else { String::new() },
            commands: vec![bosun_core::BootstrapCommandLog {
                command: "install-agent --pool {{.Pool}}".into(),
                stdout: format!("run {i}"),
                stderr: String::new(),
                exit_code: 0,
                duration_ms: 1000,
            }],
        };
        ctx.store.commit(batch("bootstrap").append_bootstrap_log(log)).await.expect("append");
    }
    let logs = ctx.store.bootstrap_logs(&node_id("vm-1"), 10).await.expect("logs");
    let runs: Vec<_> = logs.iter().map(|l| l.commands[0].stdout.as_str()).collect();
    assert_eq!(runs, ["run 4", "run 3", "run 2"], "bounded to 3 per node, newest first");
    assert!(!logs[0].success && logs[0].error == "exit 1");
    assert!(ctx.store.bootstrap_logs(&node_id("other"), 10).await.expect("logs").is_empty());
}

pub(crate) async fn integrity_is_clean_after_a_mixed_workload(ctx: &Ctx) {
    assert!(ctx.store.check_integrity().await.expect("check").is_empty(), "an empty store is clean");
    let node = ctx.create_node("n1").await;
    let mut instance = ctx.create_instance("n1").await;
    instance.node_id = Some(node.id.clone());
    instance.apply(InstanceTrigger::AgentRegistered, "registered", ctx.now()).expect("legal");
    ctx.store.commit(batch("link").update_instance(instance)).await.expect("link");
    let mut command = ctx.issue_command("n1", CommandKind::Drain).await;
    command.apply(CommandTrigger::Deliver, ctx.now()).expect("legal");
    ctx.store.commit(batch("deliver").update_command(command.clone())).await.expect("deliver");
    let mut command = ctx.store.command(&command.id).await.expect("get");
    command.apply(CommandTrigger::Fail, ctx.now()).expect("legal");
    ctx.store.commit(batch("ack").update_command(command)).await.expect("ack");
    ctx.create_node("n2").await;
    ctx.store.commit(batch("gone").delete_node(node_id("n2"), None)).await.expect("delete");
    ctx.store.commit(batch("config").create_pool(super::pool("training"))).await.expect("pool");
    let findings = ctx.store.check_integrity().await.expect("check");
    assert!(findings.is_empty(), "unexpected findings: {findings:?}");
}

pub(crate) async fn counts_reflect_contents(ctx: &Ctx) {
    ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    ctx.create_instance("i1").await;
    ctx.issue_command("n1", CommandKind::Reboot).await;
    ctx.store.commit(batch("config").create_pool(super::pool("training"))).await.expect("pool");
    let counts = ctx.store.counts().await.expect("counts");
    assert_eq!((counts.nodes, counts.instances, counts.commands, counts.pools, counts.changes), (2, 1, 1, 1, 5));
}

pub(crate) async fn ping_and_close(ctx: &Ctx) {
    ctx.store.ping().await.expect("reachable");
    ctx.store.check_writable().await.expect("a fresh store takes writes");
    let version = ctx.store.schema_version().await.expect("schema version");
    assert_eq!(version, crate::embedded_schema_version(ctx.store.backend()), "the store is at this binary's schema");
    ctx.store.close().await;
    assert_err!(ctx.store.ping().await, E::Unavailable { .. });
    assert_err!(ctx.store.node(&node_id("n1")).await, E::Unavailable { .. });
}
