//! The operations ledger through OpsService: runbooks applied and versioned, the approval
//! policy set and tested, and the audit log of what changed and what was refused.

use bosun_agent::ControlPlane as _;
use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    runbooks_are_applied_strictly_and_versioned,
    the_approval_policy_is_set_by_admins_and_decides_operations,
    changes_and_refusals_are_audited_with_who_and_what
);

const RUNBOOK: &str = "\
name: cordon-check-uncordon
description: Take nodes out one at a time, check them, put them back.
max_parallel: 1
stop_on_failure: true
steps:
  - cordon: {reason: maintenance}
  - diagnose: {test: quick, timeout: 5m}
  - uncordon: {}
";

fn apply(yaml: &str) -> v1::ApplyRunbookRequest {
    v1::ApplyRunbookRequest { yaml: yaml.to_owned(), ..Default::default() }
}

async fn runbooks_are_applied_strictly_and_versioned(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let ops = h.ops(Some(OPERATOR));
    let first = ops.apply_runbook(apply(RUNBOOK)).await.expect("apply").into_owned();
    let runbook = first.runbook.as_option().expect("runbook");
    assert_eq!((runbook.name.as_str(), runbook.version, first.changed), ("cordon-check-uncordon", 1, true));
    assert_eq!(runbook.created_by, "operator:oncall");
    let again = ops.apply_runbook(apply(RUNBOOK)).await.expect("apply again").into_owned();
    assert_eq!((again.runbook.as_option().expect("runbook").version, again.changed), (1, false));
    let changed = RUNBOOK.replace("timeout: 5m", "timeout: 10m");
    let second = ops.apply_runbook(apply(&changed)).await.expect("apply v2").into_owned();
    assert_eq!(second.runbook.as_option().expect("runbook").version, 2);

    // An unknown step or key names its path and line; nothing is stored.
    let bad = "name: broken\nsteps:\n  - cordon: {}\n  - reboot: {}\n";
    let (code, message) = refused(ops.apply_runbook(apply(bad)).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("steps[1]") && message.contains("line 4"), "{message}");
    let listed = ops.list_runbooks(v1::ListRunbooksRequest::default()).await.expect("list").into_owned();
    let names: Vec<&str> = listed.runbooks.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cordon-check-uncordon"]);
    // Listed a page at a time, by name.
    ops.apply_runbook(apply(&RUNBOOK.replace("name: cordon-check-uncordon", "name: a-first"))).await.expect("apply");
    let first = ops
        .list_runbooks(v1::ListRunbooksRequest { page_size: 1, ..Default::default() })
        .await
        .expect("page")
        .into_owned();
    assert_eq!(first.runbooks.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a-first"]);
    let second = ops
        .list_runbooks(v1::ListRunbooksRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page")
        .into_owned();
    assert_eq!(second.runbooks.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["cordon-check-uncordon"]);
    assert!(second.next_page_token.is_empty());
    let got = ops
        .get_runbook(v1::GetRunbookRequest { name: "cordon-check-uncordon".into(), ..Default::default() })
        .await
        .expect("get")
        .into_owned();
    assert_eq!(got.runbook.as_option().expect("runbook").spec, changed);
    let (code, _) = refused(ops.get_runbook(v1::GetRunbookRequest { name: "nope".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::NotFound);
    // No runs yet; an unknown run is not found.
    let runs = ops.list_runs(v1::ListRunsRequest::default()).await.expect("runs").into_owned();
    assert!(runs.runs.is_empty());
    let missing = v1::GetRunRequest { run_id: "019b0000-0000-7000-8000-000000000000".into(), ..Default::default() };
    assert_eq!(refused(ops.get_run(missing).await).0, ErrorCode::NotFound);
    let bad_id = v1::GetRunRequest { run_id: "yesterday".into(), ..Default::default() };
    assert_eq!(refused(ops.get_run(bad_id).await).0, ErrorCode::InvalidArgument);
    h.stop().await;
}

const RULES: &str = "\
rules:
  - name: no-terminate-in-prod
    condition: \"tool == 'terminate' && pool == 'prod'\"
    decision: deny
  - name: admin-for-many
    condition: \"risk == 'destructive' && targets > 2\"
    decision: require_approval
    role: admin
";

fn test(tool: &str, risk: &str, targets: u32, pool: &str) -> v1::TestApprovalPolicyRequest {
    v1::TestApprovalPolicyRequest {
        tool: tool.into(),
        risk: risk.into(),
        targets,
        pool: pool.into(),
        pool_size: 100,
        ..Default::default()
    }
}

async fn the_approval_policy_is_set_by_admins_and_decides_operations(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let operator = h.ops(Some(OPERATOR));
    let builtin =
        operator.get_approval_policy(v1::GetApprovalPolicyRequest::default()).await.expect("get").into_owned();
    assert!(builtin.builtin);
    assert_eq!(builtin.rules[0].condition, bosun_policy::approval::BUILTIN_CONDITION);
    let decided =
        operator.test_approval_policy(test("terminate", "destructive", 6, "")).await.expect("test").into_owned();
    assert_eq!((decided.decision.as_str(), decided.role.as_str()), ("require_approval", "admin"));

    let set = v1::SetApprovalPolicyRequest { yaml: RULES.into(), ..Default::default() };
    assert_eq!(refused(operator.set_approval_policy(set.clone()).await).0, ErrorCode::PermissionDenied);
    let admin = h.ops(Some(ADMIN));
    let stored = admin.set_approval_policy(set).await.expect("set").into_owned();
    assert_eq!(stored.rules.len(), 2);
    let cases = [
        (test("terminate", "destructive", 1, "prod"), "deny", "no-terminate-in-prod"),
        (test("terminate", "destructive", 3, "dev"), "require_approval", "admin-for-many"),
        (test("cordon", "write", 50, "dev"), "allow", ""),
    ];
    for (request, decision, rule) in cases {
        let decided = operator.test_approval_policy(request).await.expect("test").into_owned();
        assert_eq!((decided.decision.as_str(), decided.rule.as_str()), (decision, rule));
    }
    // A condition that does not compile is refused, naming the rule; the rules stay.
    let broken = "rules:\n  - name: broken\n    condition: 'targets >'\n    decision: deny\n";
    let (code, message) = refused(
        admin.set_approval_policy(v1::SetApprovalPolicyRequest { yaml: broken.into(), ..Default::default() }).await,
    );
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("broken"), "{message}");
    let now = operator.get_approval_policy(v1::GetApprovalPolicyRequest::default()).await.expect("get").into_owned();
    assert!(!now.builtin);
    assert_eq!(
        now.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["no-terminate-in-prod", "admin-for-many"]
    );
    h.stop().await;
}

async fn changes_and_refusals_are_audited_with_who_and_what(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let operator = h.admin(Some(OPERATOR));
    let cordon = v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
        reason: "maintenance".into(),
        ..Default::default()
    };
    operator.issue_command(cordon).await.expect("cordon");
    // Refused: an operator may not delete nodes; a wrong token is not anyone.
    let delete = v1::DeleteNodeRequest { node_id: "n1".into(), ..Default::default() };
    assert_eq!(refused(operator.delete_node(delete.clone()).await).0, ErrorCode::PermissionDenied);
    assert_eq!(
        refused(h.admin(Some("wrong")).list_nodes(v1::ListNodesRequest::default()).await).0,
        ErrorCode::Unauthenticated
    );
    // Reads that succeed are not audited.
    operator.list_nodes(v1::ListNodesRequest::default()).await.expect("list");

    let ops = h.ops(Some(OPERATOR));
    let all = ops.list_audit(v1::ListAuditRequest::default()).await.expect("audit").into_owned();
    let lines: Vec<(String, String, String, String)> = all
        .entries
        .iter()
        .map(|e| {
            (
                e.actor.clone(),
                e.method.rsplit('/').next().unwrap_or_default().to_owned(),
                e.resource.clone(),
                e.outcome.clone(),
            )
        })
        .collect();
    let expected = [
        ("fleet", "RegisterNode", "node:n1", "ok"),
        ("oncall", "IssueCommand", "node:n1", "ok"),
        ("oncall", "DeleteNode", "", "refused"),
        ("anonymous", "ListNodes", "", "refused"),
    ];
    assert_eq!(lines, expected.map(|(a, m, r, o)| (a.to_owned(), m.to_owned(), r.to_owned(), o.to_owned())), "{all:?}");
    let seqs: Vec<u64> = all.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "numbered without gaps");
    assert_eq!(all.entries[2].code, "permission_denied");
    assert_eq!(all.entries[1].role, "operator");
    assert!(!all.entries[1].peer.is_empty(), "the peer address is recorded");

    let refusals = ops
        .list_audit(v1::ListAuditRequest { outcome: "refused".into(), ..Default::default() })
        .await
        .expect("audit")
        .into_owned();
    assert_eq!(refusals.entries.len(), 2);
    let by_actor = ops
        .list_audit(v1::ListAuditRequest { actor: "oncall".into(), after_seq: 2, ..Default::default() })
        .await
        .expect("audit")
        .into_owned();
    assert_eq!(by_actor.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    h.stop().await;
}
