//! `db check` finds what it exists to find: each case writes a small store through the
//! rules, breaks it under them (as a bug, a hand edit or a bad restore would), and requires
//! the finding.

use bosun_core::{InstanceTrigger, ResourceKind};

use super::{Ctx, batch, node_id};
use crate::StoreLocation;
use crate::query::ChangeFilter;
use crate::store::IntegrityFinding;

/// A way to break a store behind its rules.
#[derive(Debug, Clone)]
pub(crate) enum Corruption {
    /// Links instance `i1` to a node that does not exist.
    OrphanInstance,
    /// Moves node `n1` to revision 9 without a change record.
    RevisionWithoutChange,
    /// Marks instance `i1` TERMINATED without a termination time.
    TerminatedWithoutTime,
    /// Drops the last GPU of node `n1`'s inventory.
    GpuMissing,
    /// Deletes the change record with this sequence number.
    ChangeMissing(u64),
    /// Deletes the audit entry with this number (around the append-only trigger).
    AuditEntryMissing(u64),
    /// Deletes event `seq` of run `run` (around the append-only trigger). The audit log must
    /// hold an entry (its time fills the forged retention row).
    RunEventMissing { run: bosun_core::RunId, seq: u64 },
    /// Points every LLM request (and its token usage) that names a run at [`GHOST_RUN`], as
    /// a bad restore would.
    LlmUsageOfMissingRun,
}

/// A run id no store holds.
pub(crate) const GHOST_RUN: &str = "00000000-0000-7000-8000-000000000000";

impl Corruption {
    /// The same statement for both SQL dialects.
    fn sql(&self) -> String {
        match self {
            Corruption::OrphanInstance => "UPDATE instances SET node_id = 'ghost' WHERE instance_id = 'i1'".into(),
            Corruption::RevisionWithoutChange => "UPDATE nodes SET revision = 9 WHERE node_id = 'n1'".into(),
            Corruption::TerminatedWithoutTime => {
                "UPDATE instances SET state = 'TERMINATED', terminated_at = NULL WHERE instance_id = 'i1'".into()
            }
            Corruption::GpuMissing => "DELETE FROM node_gpus WHERE node_id = 'n1' AND gpu_index = \
                 (SELECT MAX(gpu_index) FROM node_gpus WHERE node_id = 'n1')"
                .into(),
            Corruption::ChangeMissing(seq) => format!("DELETE FROM changes WHERE seq = {seq}"),
            // As a hand edit with the triggers' retention path forged.
            Corruption::AuditEntryMissing(seq) => format!(
                "INSERT INTO ledger_expiry (what, before) SELECT 'everything', MAX(at) FROM audit_entries; \
                 DELETE FROM audit_entries WHERE seq = {seq}; DELETE FROM ledger_expiry"
            ),
            Corruption::LlmUsageOfMissingRun => format!(
                "UPDATE llm_requests SET run_id = '{GHOST_RUN}' WHERE run_id IS NOT NULL; \
                 UPDATE token_usage SET run_id = '{GHOST_RUN}' WHERE run_id IS NOT NULL"
            ),
            Corruption::RunEventMissing { run, seq } => format!(
                "INSERT INTO ledger_expiry (what, before) SELECT 'everything', MAX(at) FROM audit_entries; \
                 DELETE FROM task_events WHERE CAST(run_id AS TEXT) = '{run}' AND seq = {seq}; DELETE FROM ledger_expiry"
            ),
        }
    }
}

impl Ctx {
    /// Breaks the store behind its rules: memory's maps directly, SQL through a connection
    /// of its own with foreign keys off.
    async fn plant(&self, corruption: Corruption) {
        match &self.test_store().location {
            StoreLocation::Memory => {
                self.test_store().memory.as_ref().expect("the memory store").plant(&corruption);
            }
            StoreLocation::Sqlite { path } => {
                let conn = rusqlite::Connection::open(path).expect("open the database");
                conn.pragma_update(None, "foreign_keys", "off").expect("foreign keys off");
                conn.execute_batch(&corruption.sql()).expect("plant");
            }
            StoreLocation::Postgres { url } => {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
                // Foreign-key triggers do not fire for a replica session (superuser only,
                // which the test server's user is).
                sqlx::query("SET session_replication_role = replica").execute(&mut conn).await.expect("replica");
                sqlx::raw_sql(sqlx::AssertSqlSafe(corruption.sql())).execute(&mut conn).await.expect("plant");
            }
        }
    }

    /// Node `n1`, instance `i1` running on it and pool `p` updated twice; clean.
    async fn small_fleet(&self) {
        let node = self.create_node("n1").await;
        let mut instance = self.create_instance("i1").await;
        instance.node_id = Some(node.id.clone());
        instance.apply(InstanceTrigger::AgentRegistered, "registered", self.now()).expect("legal");
        self.store.commit(batch("link").update_instance(instance)).await.expect("link");
        let mut pool = super::pool("p");
        self.store.commit(batch("config").create_pool(pool.clone())).await.expect("pool");
        for min in [1, 2] {
            pool.revision = self.store.pool(&pool.name).await.expect("pool").revision;
            pool.spec.min_nodes = min;
            self.store.commit(batch("resize").update_pool(pool.clone())).await.expect("update pool");
        }
        let findings = self.store.check_integrity().await.expect("check");
        assert!(findings.is_empty(), "a store written through the rules is clean: {findings:?}");
    }

    async fn findings_after(&self, corruption: Corruption) -> Vec<IntegrityFinding> {
        self.plant(corruption).await;
        self.store.check_integrity().await.expect("check")
    }
}

fn lines(findings: &[IntegrityFinding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

pub(crate) async fn integrity_reports_an_orphan_instance(ctx: &Ctx) {
    ctx.small_fleet().await;
    let findings = ctx.findings_after(Corruption::OrphanInstance).await;
    assert_eq!(lines(&findings), ["[orphans] instance i1: refers to missing ghost"]);
}

pub(crate) async fn integrity_reports_a_broken_revision_history(ctx: &Ctx) {
    ctx.small_fleet().await;
    let findings = ctx.findings_after(Corruption::RevisionWithoutChange).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!((findings[0].check, findings[0].subject.as_str()), ("revisions", "node n1"));
    assert!(findings[0].problem.starts_with("is at revision 9 but its latest change"), "{findings:?}");
}

pub(crate) async fn integrity_reports_an_illegal_state(ctx: &Ctx) {
    ctx.small_fleet().await;
    let findings = ctx.findings_after(Corruption::TerminatedWithoutTime).await;
    assert_eq!(lines(&findings), ["[states] instance i1: is TERMINATED but has no terminated_at"]);
}

pub(crate) async fn integrity_reports_an_inventory_mismatch(ctx: &Ctx) {
    ctx.small_fleet().await;
    let gpus = ctx.store.node(&node_id("n1")).await.expect("node").gpu_count;
    assert!(gpus > 0, "the fixture node has GPUs");
    let findings = ctx.findings_after(Corruption::GpuMissing).await;
    assert_eq!(
        lines(&findings),
        [format!("[states] node n1: says it has {gpus} GPUs but its inventory lists {}", gpus - 1)]
    );
}

pub(crate) async fn integrity_reports_a_gap_in_the_change_sequence(ctx: &Ctx) {
    ctx.small_fleet().await;
    // The pool's first update: superseded by the second, so only the gap shows.
    let history = ctx
        .store
        .list_changes(&ChangeFilter { kind: Some(ResourceKind::Pool), ..ChangeFilter::default() }, 10)
        .await
        .expect("changes");
    let first_update = history.iter().find(|c| c.revision.get() == 2).expect("the pool's revision 2").seq;
    let findings = ctx.findings_after(Corruption::ChangeMissing(first_update)).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!((findings[0].check, findings[0].subject.clone()), ("sequence", format!("change {}", first_update + 1)));
    assert!(findings[0].problem.starts_with(&format!("change {first_update} is missing")), "{findings:?}");
}

pub(crate) async fn retention_leaves_no_gap_for_the_check(ctx: &Ctx) {
    ctx.small_fleet().await;
    ctx.clock.advance(std::time::Duration::from_secs(30 * 86_400));
    let report = ctx
        .store
        .apply_retention(&crate::RetentionPolicy {
            changes_older_than: std::time::Duration::from_secs(86_400),
            ..Default::default()
        })
        .await
        .expect("retention");
    assert!(report.changes_deleted >= 2, "the pool's superseded records went: {report:?}");
    let findings = ctx.store.check_integrity().await.expect("check");
    assert!(findings.is_empty(), "compaction is not a gap: {findings:?}");
}

pub(crate) async fn integrity_reports_gaps_in_the_audit_log_and_run_events(ctx: &Ctx) {
    use bosun_core::{Actor, AuditEntry, AuditOutcome, RunEvent, RunEventType, RunKind, RunStatus, TaskRun};
    let entry = |n: u64| AuditEntry {
        actor: "alice".into(),
        role: None,
        method: "bosun.v1.AdminService/CordonNode".into(),
        resource: format!("node:n{n}"),
        outcome: AuditOutcome::Ok,
        code: "ok".into(),
        message: String::new(),
        request_id: String::new(),
        peer: None,
    };
    let run = TaskRun::new(RunKind::Scale, RunStatus::Running, Actor::system("autoscaler"), vec![], ctx.now());
    let mut write = batch("ledger").create_run(run.clone());
    for n in 1..=4 {
        write = write.append_audit(entry(n)).append_run_event(RunEvent::new(run.id, RunEventType::Log, format!("{n}")));
    }
    ctx.store.commit(write).await.expect("ledger");
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
    ctx.plant(Corruption::AuditEntryMissing(2)).await;
    ctx.plant(Corruption::RunEventMissing { run: run.id, seq: 2 }).await;
    let findings = ctx.store.check_integrity().await.expect("check");
    assert_eq!(
        lines(&findings),
        [
            "[sequence] audit log: holds 3 entries numbered 1 to 4: 1 missing".to_owned(),
            format!("[sequence] run {}: has 3 events numbered 1 to 4: events are missing", run.id),
        ]
    );
    // The newest entries gone are missing too, though what remains is contiguous.
    ctx.plant(Corruption::AuditEntryMissing(3)).await;
    ctx.plant(Corruption::AuditEntryMissing(4)).await;
    let findings = ctx.store.check_integrity().await.expect("check");
    assert_eq!(
        lines(&findings)[0],
        "[sequence] audit log: ends at entry 1 but 4 were handed out: the newest entries are missing"
    );
}

pub(crate) async fn integrity_reports_llm_usage_of_a_missing_run(ctx: &Ctx) {
    use bosun_core::{Actor, LlmUsage, RunKind, RunStatus, TaskRun};
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], ctx.now());
    let mut usage = LlmUsage::new("oncall", "acme", "acme-large", ctx.now());
    usage.run_id = Some(run.id);
    let unattached = LlmUsage::new("oncall", "acme", "acme-large", ctx.now());
    ctx.store
        .commit(batch("usage").create_run(run).record_llm_usage(usage.clone()).record_llm_usage(unattached))
        .await
        .expect("usage");
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
    let findings = ctx.findings_after(Corruption::LlmUsageOfMissingRun).await;
    assert_eq!(
        lines(&findings),
        [
            format!("[orphans] LLM request {}: refers to missing {GHOST_RUN}", usage.id),
            format!("[orphans] token usage {}: refers to missing {GHOST_RUN}", usage.id),
        ]
    );
}
