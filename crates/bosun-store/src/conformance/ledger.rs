//! The operations ledger: runs, their events and artifacts, runbooks, tools and their
//! calls, approval policies, approvals and the audit log; on the SQL backends also the
//! append-only triggers and the views.

use std::time::Duration;

use bosun_core::{
    Actor, Approval, ApprovalDecision, ApprovalId, ApprovalOutcome, ApprovalPolicy, ApprovalPolicyName, Artifact,
    AuditEntry, AuditOutcome, ChangeOp, PolicyDecision, ResourceKind, Revision, Role, RunEvent, RunEventType, RunId,
    RunKind, RunStatus, RunTarget, Runbook, RunbookName, TaskRun, Timestamp, ToolCall, ToolCallStatus, ToolDefinition,
    ToolName, ToolRisk,
};
use serde_json::json;

use super::{Ctx, E, assert_err, batch};
use crate::ledger::{AuditFilter, RunFilter, sha256_hex};
use crate::location::StoreLocation;
use crate::query::{ChangeFilter, PageRequest};
use crate::store::{ApprovalFilter, StoreOptions};
use crate::write::{Write, WriteOutcome};

fn target(text: &str) -> RunTarget {
    text.parse().expect("valid target")
}

fn new_run(ctx: &Ctx, kind: RunKind, status: RunStatus, targets: &[&str]) -> TaskRun {
    let mut run =
        TaskRun::new(kind, status, Actor::operator("alice"), targets.iter().map(|t| target(t)).collect(), ctx.now());
    if kind == RunKind::Runbook {
        run.runbook = Some(RunbookName::new("drain-all").expect("valid"));
        run.runbook_version = Some(1);
    }
    run.input = json!({"reason": "maintenance", "max_parallel": 1});
    run
}

async fn create_run(ctx: &Ctx, kind: RunKind, status: RunStatus, targets: &[&str]) -> TaskRun {
    let run = new_run(ctx, kind, status, targets);
    ctx.store.commit(batch("start").create_run(run.clone())).await.expect("create run");
    ctx.clock.advance(Duration::from_millis(1));
    ctx.store.run(&run.id).await.expect("read back run")
}

fn event(run: RunId, event_type: RunEventType, message: &str) -> RunEvent {
    RunEvent::new(run, event_type, message)
}

pub(crate) async fn runs_round_trip_and_list_newest_first_with_filters(ctx: &Ctx) {
    let first = create_run(ctx, RunKind::Runbook, RunStatus::Queued, &["node:n1", "node:n2"]).await;
    let second = create_run(ctx, RunKind::Replacement, RunStatus::Running, &["node:n2", "instance:i-2"]).await;
    let third = create_run(ctx, RunKind::Scale, RunStatus::Running, &["pool:training"]).await;
    let mut expected = new_run(ctx, RunKind::Runbook, RunStatus::Queued, &["node:n1", "node:n2"]);
    expected.id = first.id;
    expected.created_at = first.created_at;
    assert_eq!(first, expected, "every field round-trips");
    assert_eq!(first.revision, Revision::FIRST);

    let page = ctx.store.list_runs(&RunFilter::default(), &PageRequest::first(2)).await.expect("list");
    let ids: Vec<RunId> = page.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, [third.id, second.id], "newest first");
    let rest = ctx
        .store
        .list_runs(&RunFilter::default(), &PageRequest::after(2, page.next.expect("another page")))
        .await
        .expect("second page");
    assert_eq!(rest.items.iter().map(|r| r.id).collect::<Vec<_>>(), [first.id]);
    assert!(rest.next.is_none());

    let list = |filter: RunFilter| async move {
        let page = ctx.store.list_runs(&filter, &PageRequest::first(100)).await.expect("list");
        page.items.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(list(RunFilter { target: Some("n2".into()), ..Default::default() }).await, [second.id, first.id]);
    assert_eq!(list(RunFilter { target: Some("training".into()), ..Default::default() }).await, [third.id]);
    assert_eq!(list(RunFilter { status: Some(RunStatus::Running), ..Default::default() }).await, [third.id, second.id]);
    assert_eq!(list(RunFilter { kind: Some(RunKind::Replacement), ..Default::default() }).await, [second.id]);
    assert!(list(RunFilter { target: Some("nowhere".into()), ..Default::default() }).await.is_empty());
    assert_err!(ctx.store.run(&RunId::new_at(ctx.now())).await, E::NotFound { .. });
}

pub(crate) async fn run_status_follows_the_run_lifecycle(ctx: &Ctx) {
    let run = create_run(ctx, RunKind::Runbook, RunStatus::Queued, &["node:n1"]).await;
    assert_err!(
        ctx.store.commit(batch("born done").create_run(new_run(ctx, RunKind::Scale, RunStatus::Succeeded, &[]))).await,
        E::Invalid(_)
    );

    let mut running = run.clone();
    running.status = RunStatus::Running;
    running.started_at = Some(ctx.now());
    ctx.store.commit(batch("start").update_run(running.clone())).await.expect("queued -> running");
    let mut done = ctx.store.run(&run.id).await.expect("read");
    assert_eq!(done.revision.get(), 2);
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(ctx.now());
    done.result = Some(json!({"drained": 1}));
    ctx.store.commit(batch("finish").update_run(done.clone())).await.expect("running -> succeeded");

    // A stale revision conflicts; a finished run never changes status again; fields that
    // describe what was asked never change.
    assert_err!(ctx.store.commit(batch("stale").update_run(running)).await, E::Conflict { .. });
    let mut stored = ctx.store.run(&run.id).await.expect("read");
    assert_eq!(stored.result, Some(json!({"drained": 1})));
    let mut again = stored.clone();
    again.status = RunStatus::Running;
    again.finished_at = None;
    let message = assert_err!(ctx.store.commit(batch("restart").update_run(again)).await, E::InvalidTransition { .. });
    assert!(message.contains("succeeded"), "{message}");
    stored.targets.push(target("node:n9"));
    assert_err!(ctx.store.commit(batch("retarget").update_run(stored)).await, E::Invalid(_));

    let changes =
        ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Run, run.id), 100).await.expect("history");
    let ops: Vec<(ChangeOp, u64)> = changes.iter().map(|c| (c.op, c.revision.get())).collect();
    assert_eq!(ops, [(ChangeOp::Created, 1), (ChangeOp::Updated, 2), (ChangeOp::Updated, 3)]);
}

pub(crate) async fn run_events_are_numbered_without_gaps_per_run(ctx: &Ctx) {
    let a = create_run(ctx, RunKind::Runbook, RunStatus::Running, &["node:n1"]).await;
    let b = create_run(ctx, RunKind::Scale, RunStatus::Running, &["pool:p"]).await;
    for i in 0..3 {
        let step = event(a.id, RunEventType::StepStarted, &format!("step {i}")).at_step(i).on(target("node:n1"));
        let outcomes = ctx
            .store
            .commit(batch("step").append_run_event(step).append_run_event(event(b.id, RunEventType::Log, "tick")))
            .await
            .expect("append");
        assert_eq!(outcomes.outcomes[0], WriteOutcome::Appended { id: u64::from(i) + 1 });
    }
    // A batch that fails takes its number back with it.
    let mut failing = batch("fails").append_run_event(event(a.id, RunEventType::Log, "lost"));
    failing.push(Write::UpdateRun { run: Box::new(a.clone()), expected: Revision::new(9).expect("nonzero") });
    assert_err!(ctx.store.commit(failing).await, E::Conflict { .. });
    let data = json!({"exit_code": 0});
    ctx.store
        .commit(
            batch("done")
                .append_run_event(event(a.id, RunEventType::StepFinished, "ok").at_step(2).with_data(data.clone())),
        )
        .await
        .expect("append");

    let events = ctx.store.run_events(&a.id, 0, 100).await.expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(events[0].event.step, Some(0));
    assert_eq!(events[0].event.target, Some(target("node:n1")));
    assert_eq!(events[3].event.event_type, RunEventType::StepFinished);
    assert_eq!(events[3].event.data, Some(data));
    assert_eq!(events[3].at, ctx.now(), "stamped by the store's clock");
    assert_eq!(ctx.store.run_events(&a.id, 2, 1).await.expect("page").iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(ctx.store.run_events(&b.id, 0, 100).await.expect("events").len(), 3);
    let unknown = RunId::new_at(ctx.now());
    assert_err!(
        ctx.store.commit(batch("lost").append_run_event(event(unknown, RunEventType::Log, "?"))).await,
        E::NotFound { .. }
    );
    assert_err!(ctx.store.run_events(&unknown, 0, 10).await, E::NotFound { .. });
}

pub(crate) async fn artifacts_are_written_once_with_their_digest_and_bounded(ctx: &Ctx) {
    let run = create_run(ctx, RunKind::Runbook, RunStatus::Running, &["node:n1"]).await;
    let content = b"nvbandwidth: 412.3 GB/s\n".to_vec();
    let artifact = Artifact {
        run_id: run.id,
        name: "diagnose-n1.txt".into(),
        media_type: "text/plain".into(),
        content: content.clone(),
    };
    ctx.store.commit(batch("store").put_artifact(artifact.clone())).await.expect("store artifact");
    let (info, stored) = ctx.store.artifact(&run.id, "diagnose-n1.txt").await.expect("read");
    assert_eq!(stored, content);
    assert_eq!(info.size, content.len() as u64);
    assert_eq!(info.sha256, sha256_hex(&content));
    assert_eq!(info.media_type, "text/plain");
    assert_eq!(ctx.store.artifacts(&run.id).await.expect("list"), [info]);

    assert_err!(ctx.store.commit(batch("again").put_artifact(artifact.clone())).await, E::Invalid(_));
    let limit = StoreOptions::DEFAULT_ARTIFACT_MAX_BYTES;
    let big = Artifact { name: "big.bin".into(), content: vec![0; limit as usize + 1], ..artifact.clone() };
    let message = assert_err!(ctx.store.commit(batch("big").put_artifact(big)).await, E::TooLarge { .. });
    assert!(message.contains("big.bin") && message.contains(&limit.to_string()), "{message}");
    let exactly = Artifact { name: "exactly.bin".into(), content: vec![7; limit as usize], ..artifact };
    ctx.store.commit(batch("at the limit").put_artifact(exactly)).await.expect("at the limit fits");
    assert_eq!(ctx.store.artifacts(&run.id).await.expect("list").len(), 2);
    assert_err!(ctx.store.artifact(&run.id, "big.bin").await, E::NotFound { .. });
}

fn approval(run: &TaskRun, at: Timestamp) -> Approval {
    Approval {
        id: ApprovalId::new_at(at),
        run_id: run.id,
        step: Some(1),
        what: "terminate 6 nodes of pool training".into(),
        policy: Some(ApprovalPolicyName::new("builtin-destructive").expect("valid")),
        required_role: Role::Admin,
        requested_by: run.requested_by.clone(),
        requested_at: at,
        expires_at: at + Duration::from_secs(24 * 3600),
        decision: None,
        revision: Revision::FIRST,
    }
}

pub(crate) async fn approvals_are_decided_once(ctx: &Ctx) {
    let run = create_run(ctx, RunKind::Runbook, RunStatus::AwaitingApproval, &["pool:training"]).await;
    let requested = approval(&run, ctx.now());
    ctx.store.commit(batch("ask").with(Write::CreateApproval(Box::new(requested.clone())))).await.expect("ask");
    assert_eq!(ctx.store.approval(&requested.id).await.expect("read"), requested);
    let undecided = ApprovalFilter { run: None, undecided: true };
    assert_eq!(ctx.store.list_approvals(&undecided, 10).await.expect("list"), std::slice::from_ref(&requested));

    let mut approved = requested.clone();
    approved.decision = Some(ApprovalDecision {
        outcome: ApprovalOutcome::Approved,
        by: Actor::operator("bob"),
        reason: "looked at the graphs".into(),
        at: ctx.now(),
    });
    ctx.store
        .commit(
            batch("decide")
                .with(Write::UpdateApproval { approval: Box::new(approved.clone()), expected: Revision::FIRST }),
        )
        .await
        .expect("decide");
    let stored = ctx.store.approval(&requested.id).await.expect("read");
    assert_eq!(stored.decision, approved.decision);
    assert!(ctx.store.list_approvals(&undecided, 10).await.expect("list").is_empty());
    let by_run = ApprovalFilter { run: Some(run.id), undecided: false };
    assert_eq!(ctx.store.list_approvals(&by_run, 10).await.expect("list").len(), 1);

    let mut rejected = stored.clone();
    rejected.decision = Some(ApprovalDecision {
        outcome: ApprovalOutcome::Rejected,
        by: Actor::operator("carol"),
        reason: "no".into(),
        at: ctx.now(),
    });
    let message = assert_err!(
        ctx.store
            .commit(
                batch("again").with(Write::UpdateApproval { approval: Box::new(rejected), expected: stored.revision })
            )
            .await,
        E::FailedPrecondition { .. }
    );
    assert!(message.contains("already approved by operator:bob"), "{message}");
    let mut decided_at_birth = approval(&run, ctx.now());
    decided_at_birth.decision = approved.decision;
    assert_err!(
        ctx.store.commit(batch("born decided").with(Write::CreateApproval(Box::new(decided_at_birth)))).await,
        E::Invalid(_)
    );
}

pub(crate) async fn tools_calls_policies_and_runbooks_round_trip(ctx: &Ctx) {
    let tool = ToolDefinition {
        name: ToolName::new("cordon_node").expect("valid"),
        description: "Cordon a node".into(),
        input_schema: json!({"type": "object", "properties": {"node_id": {"type": "string"}}, "required": ["node_id"]}),
        risk: ToolRisk::Write,
        enabled: true,
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    ctx.store
        .commit(batch("define").with(Write::PutTool { tool: Box::new(tool.clone()), expected: None }))
        .await
        .expect("define");
    let mut disabled = tool.clone();
    disabled.enabled = false;
    ctx.store
        .commit(batch("disable").with(Write::PutTool { tool: Box::new(disabled), expected: Some(Revision::FIRST) }))
        .await
        .expect("disable");
    let tools = ctx.store.tools().await.expect("tools");
    assert_eq!(tools.len(), 1);
    assert!(!tools[0].enabled);
    assert_eq!(tools[0].revision.get(), 2);
    assert_eq!(tools[0].input_schema, tool.input_schema);

    let run = create_run(ctx, RunKind::External, RunStatus::Running, &["node:n1"]).await;
    let call = |status: ToolCallStatus| ToolCall {
        run_id: run.id,
        tool: tool.name.clone(),
        input: json!({"node_id": "n1"}),
        output: (status == ToolCallStatus::Succeeded).then(|| json!({"status": "CORDONED"})),
        status,
        error: (status == ToolCallStatus::Failed).then(|| "node n1 not found".to_owned()),
        duration_ms: 12,
        approval_id: None,
    };
    for status in [ToolCallStatus::Succeeded, ToolCallStatus::Failed] {
        ctx.store.commit(batch("call").with(Write::RecordToolCall(Box::new(call(status))))).await.expect("record");
    }
    let calls = ctx.store.tool_calls(&run.id, 0, 100).await.expect("calls");
    assert_eq!(
        calls.iter().map(|c| c.call.clone()).collect::<Vec<_>>(),
        [call(ToolCallStatus::Succeeded), call(ToolCallStatus::Failed)]
    );
    assert!(calls[0].id < calls[1].id);
    // Paged: at most `limit`, after a number.
    let first = ctx.store.tool_calls(&run.id, 0, 1).await.expect("first page");
    assert_eq!(first, calls[..1]);
    let rest = ctx.store.tool_calls(&run.id, first[0].id, 1).await.expect("next page");
    assert_eq!(rest, calls[1..]);
    assert!(ctx.store.tool_calls(&run.id, calls[1].id, 1).await.expect("past the end").is_empty());
    let mut unapproved = call(ToolCallStatus::AwaitingApproval);
    unapproved.approval_id = Some(ApprovalId::new_at(ctx.now()));
    assert_err!(
        ctx.store.commit(batch("call").with(Write::RecordToolCall(Box::new(unapproved)))).await,
        E::NotFound { .. }
    );

    let policy = |name: &str, position: i32, decision: PolicyDecision| ApprovalPolicy {
        name: ApprovalPolicyName::new(name).expect("valid"),
        position,
        description: String::new(),
        condition: "risk == 'destructive' && targets > 5".into(),
        decision,
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    let rules = [
        policy("z-deny", 1, PolicyDecision::Deny),
        policy("admin-for-many", 1, PolicyDecision::RequireApproval { role: Role::Admin }),
        policy("allow-rest", 10, PolicyDecision::Allow),
    ];
    for rule in &rules {
        ctx.store
            .commit(batch("policy").with(Write::PutApprovalPolicy { policy: Box::new(rule.clone()), expected: None }))
            .await
            .expect("put policy");
    }
    let stored = ctx.store.approval_policies().await.expect("policies");
    let order: Vec<&str> = stored.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order, ["admin-for-many", "z-deny", "allow-rest"], "by position, then name");
    assert_eq!(stored[0], rules[1]);
    let empty_condition = ApprovalPolicy { condition: " ".into(), ..policy("blank", 0, PolicyDecision::Allow) };
    assert_err!(
        ctx.store
            .commit(batch("blank").with(Write::PutApprovalPolicy { policy: Box::new(empty_condition), expected: None }))
            .await,
        E::Invalid(_)
    );
    ctx.store
        .commit(batch("drop").with(Write::DeleteApprovalPolicy { name: rules[0].name.clone(), expected: None }))
        .await
        .expect("delete");
    assert_eq!(ctx.store.approval_policies().await.expect("policies").len(), 2);

    let runbook = Runbook {
        name: RunbookName::new("cordon-check-uncordon").expect("valid"),
        description: "Take nodes out one at a time".into(),
        spec: "name: cordon-check-uncordon\nsteps:\n  - cordon: {}\n".into(),
        version: 1,
        created_by: Actor::operator("alice"),
        created_at: ctx.now(),
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    let put = |runbook: &Runbook| Write::PutRunbook { runbook: Box::new(runbook.clone()), expected: None };
    ctx.store.commit(batch("apply").with(put(&runbook))).await.expect("apply");
    assert_eq!(ctx.store.runbook(&runbook.name).await.expect("read"), runbook);
    let skipped = Runbook { version: 3, ..runbook.clone() };
    assert_err!(ctx.store.commit(batch("skip").with(put(&skipped))).await, E::Invalid(_));
    let next = Runbook { version: 2, spec: format!("{}  - uncordon: {{}}\n", runbook.spec), ..runbook.clone() };
    ctx.store.commit(batch("apply v2").with(put(&next))).await.expect("apply v2");
    let listed = ctx.store.list_runbooks(&PageRequest::default()).await.expect("list").items;
    assert_eq!((listed.len(), listed[0].version, listed[0].revision.get()), (1, 2, 2));
    // Listed by name (byte order), a page at a time.
    for name in ["a-rolling", "drain", "a.b", "zz"] {
        let other = Runbook { name: RunbookName::new(name).expect("valid"), ..runbook.clone() };
        ctx.store.commit(batch("apply").with(put(&other))).await.expect("apply");
    }
    let store = &ctx.store;
    let mut names = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let listed = store.list_runbooks(&page).await.expect("page");
        assert!(listed.items.len() <= 2);
        names.extend(listed.items.iter().map(|r| r.name.to_string()));
        let Some(next) = listed.next else { break };
        page = PageRequest { limit: 2, after: Some(next) };
    }
    assert_eq!(names, ["a-rolling", "a.b", "cordon-check-uncordon", "drain", "zz"]);
    for name in ["a-rolling", "drain", "a.b", "zz"] {
        let name = RunbookName::new(name).expect("valid");
        ctx.store.commit(batch("drop").with(Write::DeleteRunbook { name, expected: None })).await.expect("delete");
    }
    ctx.store
        .commit(
            batch("delete").with(Write::DeleteRunbook { name: runbook.name.clone(), expected: Some(Revision::FIRST) }),
        )
        .await
        .expect_err("stale revision");
    ctx.store
        .commit(batch("delete").with(Write::DeleteRunbook { name: runbook.name.clone(), expected: None }))
        .await
        .expect("delete");
    assert_err!(ctx.store.runbook(&runbook.name).await, E::NotFound { .. });
}

fn audit_entry(actor: &str, method: &str, outcome: AuditOutcome) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        role: Some(Role::Operator),
        method: format!("bosun.v1.AdminService/{method}"),
        resource: "node:n1".into(),
        outcome,
        code: if outcome == AuditOutcome::Ok { "ok".into() } else { "permission_denied".into() },
        message: String::new(),
        request_id: "req-1".into(),
        peer: Some("10.0.0.9:51234".into()),
    }
}

pub(crate) async fn audit_entries_are_numbered_without_gaps_and_filtered(ctx: &Ctx) {
    let entries = [
        audit_entry("alice", "CordonNode", AuditOutcome::Ok),
        audit_entry("bob", "TerminateNode", AuditOutcome::Refused),
        audit_entry("alice", "DrainNode", AuditOutcome::Ok),
    ];
    ctx.store.commit(batch("audit").append_audit(entries[0].clone())).await.expect("append");
    let mut failing = batch("audit").append_audit(entries[1].clone());
    failing.push(Write::DeleteRunbook { name: RunbookName::new("missing").expect("valid"), expected: None });
    assert_err!(ctx.store.commit(failing).await, E::NotFound { .. });
    ctx.clock.advance(Duration::from_secs(60));
    let since = ctx.now();
    ctx.store.commit(batch("audit").append_audit(entries[1].clone())).await.expect("append");
    ctx.store.commit(batch("audit").append_audit(entries[2].clone())).await.expect("append");

    let all = ctx.store.list_audit(&AuditFilter::default(), 0, 100).await.expect("list");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3], "the failed append left no gap");
    assert_eq!(all.iter().map(|e| e.entry.clone()).collect::<Vec<_>>(), entries);
    let seqs = |filter: AuditFilter, after: u64| async move {
        ctx.store.list_audit(&filter, after, 100).await.expect("list").iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    assert_eq!(seqs(AuditFilter { actor: Some("alice".into()), ..Default::default() }, 0).await, [1, 3]);
    assert_eq!(seqs(AuditFilter { outcome: Some(AuditOutcome::Refused), ..Default::default() }, 0).await, [2]);
    assert_eq!(
        seqs(AuditFilter { method: Some("bosun.v1.AdminService/DrainNode".into()), ..Default::default() }, 0).await,
        [3]
    );
    assert_eq!(seqs(AuditFilter { since: Some(since), ..Default::default() }, 0).await, [2, 3]);
    assert_eq!(seqs(AuditFilter::default(), 1).await, [2, 3]);
    let nameless = AuditEntry { actor: String::new(), ..entries[0].clone() };
    assert_err!(ctx.store.commit(batch("audit").append_audit(nameless)).await, E::Invalid(_));
}

/// Runs SQL on an SQL backend's database directly, as an operator with a SQL shell would:
/// `Err(message)` when the database refuses it. The cases that call it are stamped onto
/// the SQL backends only (`sql_conformance!`).
pub(crate) async fn raw_sql(ctx: &Ctx, statement: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    match &ctx.test_store().location {
        StoreLocation::Memory => unreachable!("SQL-only cases run on the SQL backends"),
        StoreLocation::Sqlite { path } => {
            let conn = rusqlite::Connection::open(path).expect("open the database");
            let result = (|| {
                let mut statement = conn.prepare(statement)?;
                let columns = statement.column_count();
                let rows = statement.query_map([], |row| {
                    (0..columns).map(|i| row.get::<_, Option<String>>(i)).collect::<rusqlite::Result<Vec<_>>>()
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })();
            result.map_err(|e| e.to_string())
        }
        StoreLocation::Postgres { url } => {
            use sqlx::{Connection as _, Row as _};
            let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
            let result = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).fetch_all(&mut conn).await;
            result
                .map(|rows| {
                    rows.iter()
                        .map(|row| (0..row.len()).map(|i| row.try_get::<Option<String>, _>(i).expect("text")).collect())
                        .collect()
                })
                .map_err(|e| e.to_string())
        }
    }
}

pub(crate) async fn the_database_refuses_to_change_the_audit_log_and_run_events(ctx: &Ctx) {
    let run = create_run(ctx, RunKind::Runbook, RunStatus::Running, &["node:n1"]).await;
    ctx.store
        .commit(
            batch("write").append_audit(audit_entry("alice", "CordonNode", AuditOutcome::Ok)).append_run_event(event(
                run.id,
                RunEventType::Log,
                "started",
            )),
        )
        .await
        .expect("append");
    let refusals = [
        "UPDATE audit_entries SET actor = 'mallory'",
        "DELETE FROM audit_entries",
        "UPDATE task_events SET message = 'nothing happened'",
        "DELETE FROM task_events",
    ];
    for statement in refusals {
        let message = raw_sql(ctx, statement).await.expect_err(statement);
        assert!(message.contains("append-only"), "{statement}: {message}");
    }
    assert_eq!(ctx.store.list_audit(&AuditFilter::default(), 0, 10).await.expect("list")[0].entry.actor, "alice");
    assert_eq!(ctx.store.run_events(&run.id, 0, 10).await.expect("events")[0].event.message, "started");
}

pub(crate) async fn the_ledger_views_return_what_the_data_implies(ctx: &Ctx) {
    // The views judge "the last 30 days" by the database's own clock.
    let now = bosun_core::Clock::now(&bosun_core::SystemClock);
    let run_at = |created: Timestamp| {
        let mut run = new_run(ctx, RunKind::Replacement, RunStatus::Running, &["node:n1"]);
        run.id = RunId::new_at(created);
        run.created_at = created;
        run.started_at = Some(created);
        run
    };
    let hour = Duration::from_secs(3600);
    let runs = [
        run_at(now - hour),
        run_at(now - 2 * hour),
        run_at(now - Duration::from_secs(60)),
        run_at(now - 40 * 24 * hour),
    ];
    let mut write = batch("runs");
    for run in &runs {
        write = write.create_run(run.clone());
    }
    ctx.store.commit(write).await.expect("runs");
    let mut finish = batch("finish");
    for (run, seconds) in [(&runs[0], 10), (&runs[1], 30), (&runs[3], 99)] {
        let mut done = run.clone();
        done.status = RunStatus::Succeeded;
        done.finished_at = Some(run.created_at + Duration::from_secs(seconds));
        finish = finish.update_run(done);
    }
    ctx.store.commit(finish).await.expect("finish");
    let tool = ToolName::new("cordon_node").expect("valid");
    for (status, duration_ms) in
        [(ToolCallStatus::Succeeded, 10), (ToolCallStatus::Succeeded, 20), (ToolCallStatus::Failed, 30)]
    {
        let call = ToolCall {
            run_id: runs[2].id,
            tool: tool.clone(),
            input: json!({}),
            output: None,
            status,
            error: None,
            duration_ms,
            approval_id: None,
        };
        ctx.store.commit(batch("call").with(Write::RecordToolCall(Box::new(call)))).await.expect("call");
    }

    let active = raw_sql(ctx, "SELECT CAST(run_id AS TEXT), status FROM active_task_runs").await;
    assert_eq!(active.expect("active_task_runs"), [vec![Some(runs[2].id.to_string()), Some("running".into())]]);
    let summary = raw_sql(
        ctx,
        "SELECT kind, status, CAST(runs AS TEXT), CAST(CAST(ROUND(mean_duration_s) AS INTEGER) AS TEXT), \
         CAST(CAST(ROUND(max_duration_s) AS INTEGER) AS TEXT) FROM task_run_summary ORDER BY status",
    )
    .await
    .expect("task_run_summary");
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        summary,
        [
            vec![text("replacement"), text("running"), text("1"), None, None],
            vec![text("replacement"), text("succeeded"), text("2"), text("20"), text("30")],
        ],
        "the 40-day-old run is outside the window"
    );
    let rate = raw_sql(
        ctx,
        "SELECT tool, CAST(calls AS TEXT), CAST(succeeded AS TEXT), CAST(CAST(ROUND(success_rate * 100) AS INTEGER) AS TEXT), \
         CAST(CAST(ROUND(mean_duration_ms) AS INTEGER) AS TEXT) FROM tool_call_success_rate",
    )
    .await
    .expect("tool_call_success_rate");
    assert_eq!(rate, [vec![text("cordon_node"), text("3"), text("2"), text("67"), text("20")]]);
}

pub(crate) async fn retention_deletes_old_run_history_and_old_audit_entries_only(ctx: &Ctx) {
    let day = Duration::from_secs(86_400);
    let finish = |mut run: TaskRun, at: Timestamp| {
        run.status = RunStatus::Succeeded;
        run.finished_at = Some(at);
        run
    };
    let artifact = |run: RunId| Artifact {
        run_id: run,
        name: "out.txt".into(),
        media_type: "text/plain".into(),
        content: b"ok".to_vec(),
    };
    let old = create_run(ctx, RunKind::Runbook, RunStatus::Running, &["node:n1"]).await;
    let still_running = create_run(ctx, RunKind::Scale, RunStatus::Running, &["pool:p"]).await;
    let mut write = batch("history")
        .append_audit(audit_entry("alice", "CordonNode", AuditOutcome::Ok))
        .update_run(finish(old.clone(), ctx.now()))
        .put_artifact(artifact(old.id))
        .put_artifact(artifact(still_running.id));
    for run in [old.id, still_running.id] {
        write = write.append_run_event(event(run, RunEventType::StepStarted, "one")).append_run_event(event(
            run,
            RunEventType::StepFinished,
            "two",
        ));
    }
    ctx.store.commit(write).await.expect("history");
    ctx.clock.advance(31 * day);
    let recent = create_run(ctx, RunKind::Replacement, RunStatus::Running, &["node:n2"]).await;
    ctx.store
        .commit(
            batch("recent")
                .append_run_event(event(recent.id, RunEventType::Log, "replaced"))
                .update_run(finish(recent.clone(), ctx.now()))
                .put_artifact(artifact(recent.id))
                .append_audit(audit_entry("bob", "DrainNode", AuditOutcome::Ok)),
        )
        .await
        .expect("recent");

    let report = ctx.store.apply_retention(&crate::RetentionPolicy::default()).await.expect("retention");
    assert_eq!((report.run_events_deleted, report.artifacts_deleted, report.audit_deleted), (2, 1, 0));
    assert!(ctx.store.run_events(&old.id, 0, 10).await.expect("events").is_empty(), "finished 31 days ago");
    assert!(ctx.store.artifacts(&old.id).await.expect("artifacts").is_empty());
    assert_eq!(ctx.store.run(&old.id).await.expect("the run stays").status, RunStatus::Succeeded);
    assert_eq!(ctx.store.run_events(&still_running.id, 0, 10).await.expect("events").len(), 2, "still running");
    assert_eq!(ctx.store.artifacts(&still_running.id).await.expect("artifacts").len(), 1);
    assert_eq!(ctx.store.run_events(&recent.id, 0, 10).await.expect("events").len(), 1, "finished just now");

    ctx.clock.advance(340 * day);
    let report = ctx.store.apply_retention(&crate::RetentionPolicy::default()).await.expect("retention");
    assert_eq!(report.audit_deleted, 1, "only the entry older than 365 days");
    let left = ctx.store.list_audit(&AuditFilter::default(), 0, 10).await.expect("audit");
    assert_eq!(left.iter().map(|e| (e.seq, e.entry.actor.as_str())).collect::<Vec<_>>(), [(2, "bob")]);
    ctx.store
        .commit(batch("after").append_audit(audit_entry("carol", "CordonNode", AuditOutcome::Ok)))
        .await
        .expect("append");
    let numbers: Vec<u64> =
        ctx.store.list_audit(&AuditFilter::default(), 0, 10).await.expect("audit").iter().map(|e| e.seq).collect();
    assert_eq!(numbers, [2, 3], "numbers are never reused");
    assert_eq!(ctx.store.check_integrity().await.expect("check"), [], "retention leaves no gap for db check");
}
