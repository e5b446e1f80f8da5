//! Runbook runs end to end: started over nodes, moved on by the executor step by step with
//! real agents, gated by approvals, resumed after a restart, failed by timeouts and by
//! nodes that disappear.

use std::time::Duration;

use bosun_agent::ControlPlane as _;
use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    a_runbook_drains_three_nodes_one_at_a_time,
    destructive_steps_wait_for_an_admins_approval,
    undecided_approvals_expire_and_denied_steps_reject_the_run,
    a_run_resumes_after_a_restart_without_repeating_a_step,
    timeouts_and_deleted_nodes_fail_their_step,
    a_cancelled_run_stops_and_a_broken_node_is_never_put_back,
    a_step_is_judged_in_every_pool_it_touches,
    a_run_whose_runbook_no_longer_parses_fails_saying_why
);

fn apply(yaml: &str) -> v1::ApplyRunbookRequest {
    v1::ApplyRunbookRequest { yaml: yaml.to_owned(), ..Default::default() }
}

fn start(runbook: &str, nodes: &[&str]) -> v1::StartRunRequest {
    v1::StartRunRequest {
        runbook: runbook.to_owned(),
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

async fn get_run(h: &Harness, id: &str) -> v1::Run {
    let request = v1::GetRunRequest { run_id: id.to_owned(), ..Default::default() };
    h.ops(Some(ADMIN)).get_run(request).await.expect("get run").into_owned().run.as_option().cloned().expect("run")
}

/// Moves runs on (the background loop does too) until run `id` is `status`.
async fn wait_run(h: &Harness, id: &str, status: &str) -> v1::Run {
    for _ in 0..400 {
        h.server().advance_runs().await.expect("advance runs");
        let run = get_run(h, id).await;
        if run.status == status {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} never became {status}: {:#?}", get_run(h, id).await);
}

/// Moves runs on until run `id` has `count` `step_started` events for step `step`.
async fn wait_step_started(h: &Harness, id: &str, step: u32, count: usize) {
    for _ in 0..400 {
        h.server().advance_runs().await.expect("advance runs");
        let run = get_run(h, id).await;
        if run.events.iter().filter(|e| e.r#type == "step_started" && e.step == Some(step)).count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} never started step {step} {count} time(s): {:#?}", get_run(h, id).await);
}

/// Moves runs on until `node` is `status`.
async fn wait_node_status(h: &Harness, node: &str, status: v1::NodeStatus) {
    for _ in 0..400 {
        h.server().advance_runs().await.expect("advance runs");
        if status_of(&h.node(node).await) == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("node {node} never became {status:?}: {:?}", h.node(node).await);
}

/// An operator puts `node` back into service.
async fn uncordon(h: &Harness, node: &str) {
    let request = v1::IssueCommandRequest {
        node_id: node.to_owned(),
        r#type: v1::CommandType::COMMAND_TYPE_UNCORDON.into(),
        ..Default::default()
    };
    h.admin(Some(OPERATOR)).issue_command(request).await.expect("uncordon");
}

/// The step events of a run as (type, step, target).
fn steps_of(run: &v1::Run) -> Vec<(String, u32, String)> {
    run.events
        .iter()
        .filter(|e| e.r#type.starts_with("step_"))
        .map(|e| (e.r#type.clone(), e.step.unwrap_or(u32::MAX), e.target.clone()))
        .collect()
}

async fn register(h: &Harness, nodes: &[&str]) {
    let client = h.agent_client();
    for node in nodes {
        client.register(&registration(node), None).await.expect("register");
    }
}

const DRAIN_THREE: &str = "\
name: drain-check
description: Drain nodes one at a time and check them.
max_parallel: 1
stop_on_failure: true
steps:
  - cordon: {reason: maintenance}
  - drain: {reason: maintenance, timeout: 10m}
  - diagnose: {test: quick, timeout: 5m}
";

async fn a_runbook_drains_three_nodes_one_at_a_time(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agents: Vec<_> = ["n1", "n2", "n3"].iter().map(|n| h.spawn_agent(n, 2)).collect();
    for node in ["n1", "n2", "n3"] {
        h.wait_for_node(node, "registered", |_| true).await;
    }
    let ops = h.ops(Some(OPERATOR));
    ops.apply_runbook(apply(DRAIN_THREE)).await.expect("apply");
    let started = ops.start_run(start("drain-check", &["n1", "n2", "n3"])).await.expect("start").into_owned();
    let run = started.run.as_option().expect("run");
    assert_eq!((run.status.as_str(), run.kind.as_str()), ("queued", "runbook"));
    let done = wait_run(&h, &run.id, "succeeded").await;
    assert_eq!(done.targets, ["node:n1", "node:n2", "node:n3"]);
    assert_eq!((done.requested_by.as_str(), done.runbook_version), ("operator:oncall", Some(1)));

    // One node at a time: every step of n1 before any of n2, and so on.
    let mut expected = Vec::new();
    for node in ["n1", "n2", "n3"] {
        for step in 0..3 {
            expected.push(("step_started".to_owned(), step, format!("node:{node}")));
            expected.push(("step_finished".to_owned(), step, format!("node:{node}")));
        }
    }
    assert_eq!(steps_of(&done), expected);
    let seqs: Vec<u64> = done.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "events are numbered without gaps");
    assert_eq!(done.events.first().map(|e| e.r#type.as_str()), Some("status_changed"));
    assert!(done.events.last().is_some_and(|e| e.message.starts_with("succeeded")), "{:?}", done.events.last());

    // Each drain and diagnostic went through the node's agent, once.
    for node in ["n1", "n2", "n3"] {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_DRAINING);
        let commands = h
            .root()
            .list_commands(v1::ListCommandsRequest { node_id: node.into(), ..Default::default() })
            .await
            .expect("commands")
            .into_owned();
        let mut kinds: Vec<String> = commands.commands.iter().map(|c| format!("{:?}", c.r#type)).collect();
        kinds.sort();
        assert_eq!(kinds.len(), 3, "cordon, drain, diagnose once each on {node}: {kinds:?}");
    }
    // The diagnostics' results are the run's artifacts.
    let artifacts = ops
        .list_artifacts(v1::ListArtifactsRequest { run_id: done.id.clone(), ..Default::default() })
        .await
        .expect("artifacts")
        .into_owned();
    let names: Vec<&str> = artifacts.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["step2-n1-quick.json", "step2-n2-quick.json", "step2-n3-quick.json"]);
    let content = ops
        .get_artifact(v1::GetArtifactRequest { run_id: done.id.clone(), name: names[0].into(), ..Default::default() })
        .await
        .expect("artifact")
        .into_owned()
        .content;
    let report: serde_json::Value = serde_json::from_slice(&content).expect("json");
    assert_eq!((report["node"].as_str(), report["state"].as_str()), (Some("n1"), Some("SUCCEEDED")));
    // The executor's work is counted.
    let metrics = h.get_text("/metrics").await;
    for line in [
        "bosun_run_steps_total{step=\"drain\",outcome=\"finished\"} 3",
        "bosun_run_steps_total{step=\"diagnose\",outcome=\"finished\"} 3",
        "bosun_runs_finished_total{status=\"succeeded\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // Listing by target finds it.
    let by_target = ops
        .list_runs(v1::ListRunsRequest { target: "n2".into(), ..Default::default() })
        .await
        .expect("list")
        .into_owned();
    assert!(by_target.runs.iter().any(|r| r.id == done.id));
    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}

const CORDON_TERMINATE: &str = "\
name: retire
max_parallel: 2
steps:
  - cordon: {reason: retiring}
  - terminate: {reason: retiring}
";

const ADMIN_FOR_DESTRUCTIVE: &str = "\
rules:
  - name: admin-for-destructive
    condition: \"risk == 'destructive' && targets > 1\"
    decision: require_approval
    role: admin
";

async fn destructive_steps_wait_for_an_admins_approval(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    register(&h, &["n1", "n2", "n3", "n4"]).await;
    let (operator, admin) = (h.ops(Some(OPERATOR)), h.ops(Some(ADMIN)));
    admin
        .set_approval_policy(v1::SetApprovalPolicyRequest { yaml: ADMIN_FOR_DESTRUCTIVE.into(), ..Default::default() })
        .await
        .expect("set policy");
    operator.apply_runbook(apply(CORDON_TERMINATE)).await.expect("apply");

    // The cordon step (a write) runs; the terminate step waits for an admin.
    let id = operator.start_run(start("retire", &["n1", "n2"])).await.expect("start").into_owned().run.unwrap().id;
    let waiting = wait_run(&h, &id, "awaiting_approval").await;
    let pending = waiting.pending_approval.as_option().expect("pending approval").clone();
    assert_eq!(
        (pending.required_role.as_str(), pending.step, pending.policy.as_str()),
        ("admin", Some(1), "admin-for-destructive")
    );
    assert!(pending.what.contains("terminate") && pending.what.contains("2 node(s)"), "{}", pending.what);
    let types: Vec<&str> = waiting.events.iter().map(|e| e.r#type.as_str()).collect();
    // The first target reached the gate; the run stopped there, before the other's cordon.
    assert_eq!(types, ["status_changed", "status_changed", "step_started", "step_finished", "approval_requested"]);
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED);
    // Nothing moves while it waits.
    h.server().advance_runs().await.expect("advance");
    assert_eq!(get_run(&h, &id).await.events.len(), waiting.events.len());

    // The requester cannot approve its own run; an operator cannot give an admin's approval.
    let approve = |id: &str| v1::ApproveRunRequest { run_id: id.to_owned(), reason: "ok".into(), ..Default::default() };
    let (code, message) = refused(operator.approve_run(approve(&id)).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert!(message.contains("cannot approve its own run"), "{message}");
    let by_admin = admin.start_run(start("retire", &["n3", "n4"])).await.expect("start").into_owned().run.unwrap().id;
    wait_run(&h, &by_admin, "awaiting_approval").await;
    let (code, message) = refused(operator.approve_run(approve(&by_admin)).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert!(message.contains("needs the admin role"), "{message}");
    assert_eq!(get_run(&h, &by_admin).await.status, "awaiting_approval", "a refused approval changes nothing");

    // An admin approves: the run goes on and terminates its nodes.
    let approved = admin.approve_run(approve(&id)).await.expect("approve").into_owned().run.unwrap();
    assert_eq!((approved.status.as_str(), approved.approved_by.as_str()), ("running", "operator:root"));
    h.server().advance_runs().await.expect("advance");
    for node in ["n1", "n2"] {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_TERMINATING, "{node}");
    }
    let decided = get_run(&h, &id).await;
    assert!(
        decided
            .events
            .iter()
            .any(|e| e.r#type == "approval_decided" && e.message.starts_with("approved by operator:root"))
    );
    // Deciding again: the approval is decided once.
    assert_eq!(refused(admin.approve_run(approve(&id)).await).0, ErrorCode::FailedPrecondition);

    // The requester may withdraw a waiting run of its own by rejecting it; a reason is needed.
    let reject =
        |reason: &str| v1::RejectRunRequest { run_id: by_admin.clone(), reason: reason.into(), ..Default::default() };
    assert_eq!(refused(admin.reject_run(reject("")).await).0, ErrorCode::InvalidArgument);
    let rejected = admin.reject_run(reject("not today")).await.expect("reject").into_owned().run.unwrap();
    assert_eq!(rejected.status, "rejected");
    assert!(rejected.error.contains("not today"), "{}", rejected.error);
    assert_eq!(refused(admin.reject_run(reject("again")).await).0, ErrorCode::FailedPrecondition);
    // n3 was cordoned before the gate and never terminated; n4 was not reached.
    assert_eq!(status_of(&h.node("n3").await), v1::NodeStatus::NODE_STATUS_CORDONED);
    assert_eq!(status_of(&h.node("n4").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    // Every decision, and every refusal, is in the audit log.
    let audit = admin
        .list_audit(v1::ListAuditRequest { method: "bosun.v1.OpsService/ApproveRun".into(), ..Default::default() })
        .await
        .expect("audit")
        .into_owned();
    let outcomes: Vec<(&str, &str)> = audit.entries.iter().map(|e| (e.actor.as_str(), e.outcome.as_str())).collect();
    assert_eq!(outcomes, [("oncall", "refused"), ("oncall", "refused"), ("root", "ok"), ("root", "failed")]);
    h.stop().await;
}

async fn undecided_approvals_expire_and_denied_steps_reject_the_run(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    register(&h, &["n1", "n2", "n3", "n4", "n5", "n6"]).await;
    let (operator, admin) = (h.ops(Some(OPERATOR)), h.ops(Some(ADMIN)));
    operator.apply_runbook(apply(CORDON_TERMINATE)).await.expect("apply");

    // The built-in policy: a destructive step over more than 5 nodes needs an admin.
    let six = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let id = operator.start_run(start("retire", &six)).await.expect("start").into_owned().run.unwrap().id;
    let waiting = wait_run(&h, &id, "awaiting_approval").await;
    assert_eq!(waiting.pending_approval.as_option().expect("pending").policy, "builtin-destructive-at-scale");
    // Nobody decides within a day: the approval expires and the run is rejected.
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    h.server().janitor().await.expect("janitor");
    let expired = get_run(&h, &id).await;
    assert_eq!(expired.status, "rejected");
    assert!(expired.error.contains("expired"), "{}", expired.error);
    assert!(expired.finished_at.as_option().is_some());
    assert!(expired.events.iter().any(|e| e.r#type == "approval_decided" && e.message.contains("expired")));
    assert_eq!(
        refused(admin.approve_run(v1::ApproveRunRequest { run_id: id, ..Default::default() }).await).0,
        ErrorCode::FailedPrecondition
    );

    // A rule that denies: the run is rejected at that step, naming the rule.
    let deny = "rules:\n  - name: no-terminate\n    condition: \"tool == 'terminate'\"\n    decision: deny\n";
    admin
        .set_approval_policy(v1::SetApprovalPolicyRequest { yaml: deny.into(), ..Default::default() })
        .await
        .expect("set policy");
    let id = operator.start_run(start("retire", &["n1"])).await.expect("start").into_owned().run.unwrap().id;
    let denied = wait_run(&h, &id, "rejected").await;
    assert!(denied.error.contains("no-terminate") && denied.error.contains("denied"), "{}", denied.error);
    h.stop().await;
}

const CORDON_WAIT: &str = "\
name: cordon-and-wait
max_parallel: 1
steps:
  - cordon: {reason: check}
  - wait_for_status: {status: active, timeout: 1h}
";

async fn a_run_resumes_after_a_restart_without_repeating_a_step(backend: Backend) {
    let Some(mut h) = Harness::start(backend).await else { return };
    register(&h, &["n1", "n2"]).await;
    let operator = h.ops(Some(OPERATOR));
    operator.apply_runbook(apply(CORDON_WAIT)).await.expect("apply");
    let id =
        operator.start_run(start("cordon-and-wait", &["n1", "n2"])).await.expect("start").into_owned().run.unwrap().id;
    // n1 is cordoned and the run waits for someone to put it back.
    wait_step_started(&h, &id, 1, 1).await;
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED);
    let before = get_run(&h, &id).await.events.len();

    h.restart().await;
    h.server().advance_runs().await.expect("advance after restart");
    assert_eq!(get_run(&h, &id).await.events.len(), before, "nothing is done again after the restart");
    uncordon(&h, "n1").await;
    // n2's cordon is not given back by anyone yet: the run goes on to n2 and waits there.
    wait_node_status(&h, "n2", v1::NodeStatus::NODE_STATUS_CORDONED).await;
    uncordon(&h, "n2").await;
    let done = wait_run(&h, &id, "succeeded").await;
    let started: Vec<(u32, String)> =
        steps_of(&done).into_iter().filter(|(t, _, _)| t == "step_started").map(|(_, s, n)| (s, n)).collect();
    assert_eq!(
        started,
        [(0, "node:n1".to_owned()), (1, "node:n1".to_owned()), (0, "node:n2".to_owned()), (1, "node:n2".to_owned())]
    );
    let cordons = h
        .root()
        .list_commands(v1::ListCommandsRequest { node_id: "n1".into(), ..Default::default() })
        .await
        .expect("commands")
        .into_owned()
        .commands
        .iter()
        .filter(|c| c.r#type == v1::CommandType::COMMAND_TYPE_CORDON)
        .count();
    assert_eq!(cordons, 1, "the cordon was issued once across the restart");
    h.stop().await;
}

async fn timeouts_and_deleted_nodes_fail_their_step(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    register(&h, &["n1", "n2", "n3"]).await;
    let operator = h.ops(Some(OPERATOR));
    let short = CORDON_WAIT.replace("timeout: 1h", "timeout: 1m").replace("max_parallel: 1", "max_parallel: 2");
    let short = format!("{short}stop_on_failure: false\n");
    operator.apply_runbook(apply(&short)).await.expect("apply");
    let id = operator
        .start_run(start("cordon-and-wait", &["n1", "n2", "n3"]))
        .await
        .expect("start")
        .into_owned()
        .run
        .unwrap()
        .id;
    wait_step_started(&h, &id, 1, 2).await;
    // n2 disappears mid-run; n1 never becomes active again within its minute.
    h.root()
        .delete_node(v1::DeleteNodeRequest { node_id: "n2".into(), force: true, ..Default::default() })
        .await
        .expect("delete n2");
    h.server().advance_runs().await.expect("advance");
    h.clock.advance(Duration::from_secs(61));
    // n3 (begun after n2 failed) has its own minute: it times out too once that passes.
    h.server().advance_runs().await.expect("advance");
    h.clock.advance(Duration::from_secs(61));
    let failed = wait_run(&h, &id, "failed").await;
    let failures: Vec<(String, String)> = failed
        .events
        .iter()
        .filter(|e| e.r#type == "step_failed")
        .map(|e| (e.target.clone(), e.message.clone()))
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().any(|(t, m)| t == "node:n2" && m == "node n2 was deleted"), "{failures:?}");
    assert!(failures.iter().any(|(t, m)| t == "node:n1" && m.contains("did not finish within 1m")), "{failures:?}");
    assert!(failed.error.contains("failed step 1"), "{}", failed.error);
    let result: serde_json::Value = serde_json::from_str(&failed.result_json).expect("result json");
    assert_eq!(result["failed"], 3);
    h.stop().await;
}

async fn a_cancelled_run_stops_and_a_broken_node_is_never_put_back(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    register(&h, &["n1", "n2", "n3"]).await;
    let operator = h.ops(Some(OPERATOR));
    operator.apply_runbook(apply(CORDON_WAIT)).await.expect("apply");
    let id =
        operator.start_run(start("cordon-and-wait", &["n1", "n2"])).await.expect("start").into_owned().run.unwrap().id;
    wait_step_started(&h, &id, 1, 1).await;
    let cancel =
        |id: &str| v1::CancelRunRequest { run_id: id.to_owned(), reason: "wrong nodes".into(), ..Default::default() };
    // Bad starts name what is wrong and store nothing.
    let bad = [
        (start("cordon-and-wait", &["not a node!"]), ErrorCode::InvalidArgument, "nodes[0]"),
        (start("no-such-runbook", &["n1"]), ErrorCode::NotFound, "runbooks apply"),
        (start("cordon-and-wait", &["ghost"]), ErrorCode::NotFound, "node ghost"),
        (
            v1::StartRunRequest { selector: "=x".into(), ..start("cordon-and-wait", &[]) },
            ErrorCode::InvalidArgument,
            "selector",
        ),
        (
            v1::StartRunRequest { pool: "p".into(), ..start("cordon-and-wait", &["n1"]) },
            ErrorCode::InvalidArgument,
            "not several",
        ),
        (start("cordon-and-wait", &[]), ErrorCode::InvalidArgument, "names no targets"),
    ];
    for (request, code, words) in bad {
        let (got, message) = refused(operator.start_run(request).await);
        assert_eq!(got, code, "{message}");
        assert!(message.contains(words), "{message}");
    }
    let runs = operator.list_runs(v1::ListRunsRequest::default()).await.expect("list").into_owned();
    assert_eq!(runs.runs.len(), 1, "only the run started above");
    let cancelled = operator.cancel_run(cancel(&id)).await.expect("cancel").into_owned().run.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert!(cancelled.error.contains("wrong nodes") && cancelled.finished_at.as_option().is_some(), "{cancelled:?}");
    let events = get_run(&h, &id).await.events.len();
    h.server().advance_runs().await.expect("advance");
    assert_eq!(get_run(&h, &id).await.events.len(), events, "a cancelled run does nothing more");
    assert_eq!(status_of(&h.node("n2").await), v1::NodeStatus::NODE_STATUS_ACTIVE, "n2 was never begun");
    assert_eq!(refused(operator.cancel_run(cancel(&id)).await).0, ErrorCode::FailedPrecondition);

    // n3 falls silent and is judged UNHEALTHY: a runbook's uncordon leaves it out of service.
    h.clock.advance(Duration::from_secs(3600));
    let judged = h.server().judge_liveness().await.expect("liveness");
    assert!(judged.iter().any(|n| n.as_str() == "n3"), "{judged:?}");
    let back = "name: back\nsteps:\n  - uncordon: {}\n";
    operator.apply_runbook(apply(back)).await.expect("apply");
    let id = operator.start_run(start("back", &["n3"])).await.expect("start").into_owned().run.unwrap().id;
    let failed = wait_run(&h, &id, "failed").await;
    assert!(failed.error.contains("does not put a broken node back into service"), "{}", failed.error);
    assert_eq!(status_of(&h.node("n3").await), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    h.stop().await;
}

async fn a_step_is_judged_in_every_pool_it_touches(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    let pooled = |node: String, pool: &str| {
        let mut registration = registration(&node);
        registration.pool = Some(pool.parse().expect("pool"));
        registration
    };
    for i in 0..10 {
        client.register(&pooled(format!("big-{i}"), "big"), None).await.expect("register");
    }
    for i in 0..2 {
        client.register(&pooled(format!("small-{i}"), "small"), None).await.expect("register");
    }
    let (operator, admin) = (h.ops(Some(OPERATOR)), h.ops(Some(ADMIN)));
    let half = "rules:\n  - name: half-a-pool\n    condition: \"risk == 'destructive' && pool_fraction > 0.5\"\n    \
                decision: require_approval\n    role: admin\n";
    admin
        .set_approval_policy(v1::SetApprovalPolicyRequest { yaml: half.into(), ..Default::default() })
        .await
        .expect("set policy");
    let retire = "name: retire-now\nsteps:\n  - terminate: {reason: retiring}\n";
    operator.apply_runbook(apply(retire)).await.expect("apply");
    // Three of big's ten (30%) and all of small (100%): small decides.
    let nodes = ["big-0", "big-1", "big-2", "small-0", "small-1"];
    let id = operator.start_run(start("retire-now", &nodes)).await.expect("start").into_owned().run.unwrap().id;
    let waiting = wait_run(&h, &id, "awaiting_approval").await;
    let what = waiting.pending_approval.as_option().expect("pending").what.clone();
    assert!(what.contains("100% of pool small"), "{what}");
    // Three of big alone (30%) needs nobody.
    let id = operator
        .start_run(start("retire-now", &["big-3", "big-4", "big-5"]))
        .await
        .expect("start")
        .into_owned()
        .run
        .unwrap()
        .id;
    wait_node_status(&h, "big-3", v1::NodeStatus::NODE_STATUS_TERMINATING).await;
    assert_eq!(status_of(&h.node("big-3").await), v1::NodeStatus::NODE_STATUS_TERMINATING);
    assert_eq!(get_run(&h, &id).await.status, "running", "terminating, waiting for the agents");
    h.stop().await;
}

async fn a_run_whose_runbook_no_longer_parses_fails_saying_why(backend: Backend) {
    use bosun_core::{Actor, Clock as _, RunKind, RunStatus, RunTarget, TaskRun};
    let Some(h) = Harness::start(backend).await else { return };
    register(&h, &["n1"]).await;
    // As if written by a version of bosun whose runbooks had a step this one does not know.
    let mut run = TaskRun::new(
        RunKind::Runbook,
        RunStatus::Queued,
        Actor::operator("oncall"),
        vec![RunTarget::Node(node_id("n1"))],
        h.clock.now(),
    );
    run.runbook = Some("future".parse().expect("name"));
    run.runbook_version = Some(1);
    run.input = serde_json::json!({"spec": "name: future\nsteps:\n  - teleport: {}\n", "role": "operator"});
    let id = run.id.to_string();
    h.server()
        .store()
        .commit(bosun_store::WriteBatch::new(Actor::operator("oncall"), "seed").create_run(run))
        .await
        .expect("seed");
    h.server().advance_runs().await.expect("advance");
    let failed = get_run(&h, &id).await;
    assert_eq!(failed.status, "failed");
    assert!(failed.error.contains("cannot be carried out") && failed.error.contains("teleport"), "{}", failed.error);
    assert_eq!(h.server().advance_runs().await.expect("advance"), 0, "nothing left to retry");
    h.stop().await;
}
