//! Nodes: creation, compare-and-set updates, transitions, deletion, lists.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{
    Command, CommandKind, Health, HealthReport, Heartbeat, InstanceTrigger, LabelSelector, NodeStatus, NodeTrigger,
    PoolName, Remediation, RemediationAction, ResourceKind, Revision,
};

use super::{Ctx, E, RegisterExt, assert_err, batch, command_request, new_node, node_id, registration};
use crate::query::{ChangeFilter, Cursor, NodeFilter, NodeOrder, PageRequest};

pub(crate) async fn create_then_get_round_trips_every_field(ctx: &Ctx) {
    let node = new_node("n1", ctx.now());
    let committed = ctx.store.commit(batch("register").register(node.clone())).await.expect("create");
    assert_eq!(committed.revision(0), Revision::FIRST);
    let stored = ctx.store.node(&node.id).await.expect("get");
    assert_eq!(stored, node, "every field must survive the round trip");
    assert_eq!((stored.gpu_count, stored.gpu_model.as_str()), (8, "NVIDIA H100 80GB HBM3"));
    assert_eq!(stored.last_heartbeat, None);
    assert_eq!(ctx.store.node_gpus(&node.id).await.expect("inventory"), registration("n1").gpus);
}

pub(crate) async fn gpu_inventory_is_stored_beside_the_node(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let message = assert_err!(ctx.store.node_gpus(&node_id("ghost")).await, E::NotFound { .. });
    assert_eq!(message, "node ghost not found");

    // A re-registration replaces the inventory together with the summary.
    let mut fewer = registration("n1");
    fewer.gpus.truncate(6);
    let mut refreshed = node.clone();
    refreshed.refresh_registration(&fewer);
    ctx.store.commit(batch("re-registered").refresh_node(refreshed, fewer.gpus.clone())).await.expect("refresh");
    assert_eq!(ctx.store.node(&node.id).await.expect("get").gpu_count, 6);
    assert_eq!(ctx.store.node_gpus(&node.id).await.expect("inventory"), fewer.gpus);

    // The summary cannot drift from the inventory, in either direction.
    let mut stale = ctx.store.node(&node.id).await.expect("get");
    stale.gpu_count = 8;
    let message = assert_err!(ctx.store.commit(batch("edit").update_node(stale.clone())).await, E::Invalid(_));
    assert!(message.contains("changes only together with a new GPU inventory"), "{message}");
    let message =
        assert_err!(ctx.store.commit(batch("edit").refresh_node(stale, fewer.gpus.clone())).await, E::Invalid(_));
    assert!(message.contains("says 8 x"), "{message}");
    let mut wrong = new_node("n2", ctx.now());
    wrong.gpu_count = 3;
    assert_err!(ctx.store.commit(batch("create").create_node(wrong, Vec::new())).await, E::Invalid(_));
}

pub(crate) async fn create_duplicate_is_already_exists(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let again = new_node("n1", ctx.now());
    let message = assert_err!(ctx.store.commit(batch("again").register(again)).await, E::AlreadyExists { .. });
    assert_eq!(message, "node n1 already exists");
}

pub(crate) async fn get_missing_is_not_found(ctx: &Ctx) {
    let message = assert_err!(ctx.store.node(&node_id("ghost")).await, E::NotFound { .. });
    assert_eq!(message, "node ghost not found");
}

pub(crate) async fn update_bumps_revision_and_persists(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.health = Health::Degraded;
    node.labels.insert("team", "vision").expect("valid");
    let committed = ctx.store.commit(batch("edit").update_node(node.clone())).await.expect("update");
    assert_eq!(committed.revision(0).get(), 2);
    let stored = ctx.store.node(&node.id).await.expect("get");
    assert_eq!(stored.revision.get(), 2);
    assert_eq!(stored.health, Health::Degraded);
    assert_eq!(stored.labels.get("team"), Some("vision"));
}

pub(crate) async fn remediation_step_round_trips(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    assert_eq!(node.remediation, None);
    let command =
        Command::issue(command_request("n1", CommandKind::ResetGpu), super::actor(), ctx.now()).expect("valid");
    let mut step = Remediation::start(
        RemediationAction::ResetGpu,
        "XID 94 on GPU 3",
        Some(3),
        Some(command.id),
        ctx.now(),
        Duration::from_secs(600),
    );
    node.remediation = Some(step.clone());
    ctx.store
        .commit(batch("remediate").update_node(node.clone()).create_command(command.clone()))
        .await
        .expect("update");
    assert_eq!(ctx.store.node(&node.id).await.expect("get").remediation.as_ref(), Some(&step));
    assert_eq!(ctx.store.command(&command.id).await.expect("get").kind, CommandKind::ResetGpu);
    node = ctx.store.node(&node.id).await.expect("get");
    step.finish(false, "nvidia-smi: GPU is busy", ctx.now());
    node.remediation = Some(step.clone());
    ctx.store.commit(batch("step failed").update_node(node.clone())).await.expect("update");
    let stored = ctx.store.node(&node.id).await.expect("get");
    assert_eq!(stored.remediation, Some(step));
    let listed = ctx.store.list_nodes(&NodeFilter::default(), &PageRequest::first(10)).await.expect("list");
    assert_eq!(listed.items[0].remediation, stored.remediation, "lists carry the step too");
}

pub(crate) async fn update_with_stale_revision_is_conflict_and_writes_nothing(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let mut first = node.clone();
    first.health = Health::Healthy;
    ctx.store.commit(batch("first").update_node(first)).await.expect("first update");
    let seq_before = ctx.store.last_change_seq().await.expect("seq");
    let mut stale = node.clone();
    stale.health = Health::Unhealthy;
    let message = assert_err!(ctx.store.commit(batch("stale").update_node(stale)).await, E::Conflict { .. });
    assert!(message.contains("expected revision 1, found 2"), "{message}");
    let stored = ctx.store.node(&node.id).await.expect("get");
    assert_eq!((stored.health, stored.revision.get()), (Health::Healthy, 2));
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), seq_before);
}

pub(crate) async fn update_missing_is_not_found(ctx: &Ctx) {
    let node = new_node("ghost", ctx.now());
    assert_err!(ctx.store.commit(batch("edit").update_node(node)).await, E::NotFound { .. });
}

pub(crate) async fn illegal_status_change_is_invalid_transition(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.status = NodeStatus::Terminated;
    let message =
        assert_err!(ctx.store.commit(batch("skip ahead").update_node(node)).await, E::InvalidTransition { .. });
    assert_eq!(message, "node n1: node cannot go from ACTIVE to TERMINATED");
    let stored = ctx.store.node(&node_id("n1")).await.expect("get");
    assert_eq!((stored.status, stored.revision.get()), (NodeStatus::Active, 1));
}

pub(crate) async fn legal_status_path_to_terminated(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    let path = [
        (NodeTrigger::Cordon, NodeStatus::Cordoned),
        (NodeTrigger::Drain, NodeStatus::Draining),
        (NodeTrigger::MarkUnhealthy, NodeStatus::Unhealthy),
        (NodeTrigger::Terminate, NodeStatus::Terminating),
        (NodeTrigger::TerminationConfirmed, NodeStatus::Terminated),
    ];
    for (trigger, expected) in path {
        node.apply(trigger, trigger.as_str(), ctx.now()).expect("legal trigger");
        let committed = ctx.store.commit(batch(trigger.as_str()).update_node(node.clone())).await.expect("commit");
        node = ctx.store.node(&node.id).await.expect("get");
        assert_eq!(node.status, expected);
        assert_eq!(node.revision, committed.revision(0));
    }
    assert_eq!(node.revision.get(), 6);
}

pub(crate) async fn registered_at_cannot_change(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.registered_at = node.registered_at + Duration::from_secs(1);
    let message = assert_err!(ctx.store.commit(batch("rewrite").update_node(node)).await, E::Invalid(_));
    assert!(message.contains("registered_at cannot change"), "{message}");
}

pub(crate) async fn invalid_field_is_rejected(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.status_reason = "bad\u{0}reason".into();
    let message = assert_err!(ctx.store.commit(batch("edit").update_node(node)).await, E::Invalid(_));
    assert!(message.starts_with("invalid status_reason"), "{message}");
    let mut born_cordoned = new_node("n2", ctx.now());
    born_cordoned.status = NodeStatus::Cordoned;
    let message = assert_err!(ctx.store.commit(batch("create").register(born_cordoned)).await, E::Invalid(_));
    assert_eq!(message, "invalid status: a new node must be ACTIVE");
}

pub(crate) async fn delete_cascades_commands_and_history(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    let command = ctx.issue_command("n1", CommandKind::Reboot).await;
    let kept = ctx.issue_command("n2", CommandKind::Reboot).await;
    let report = HealthReport::new(node.id.clone(), ctx.now(), vec![], vec![]);
    ctx.store.commit(batch("report").append_health_report(report)).await.expect("report");
    ctx.store.record_heartbeats(&[Heartbeat { node_id: node.id.clone(), at: ctx.now() }]).await.expect("heartbeat");

    ctx.store.commit(batch("retention").delete_node(node.id.clone(), Some(node.revision))).await.expect("delete");
    assert_err!(ctx.store.node(&node.id).await, E::NotFound { .. });
    assert_err!(ctx.store.command(&command.id).await, E::NotFound { .. });
    assert_err!(ctx.store.health_history(&node.id, 10).await, E::NotFound { .. });
    ctx.store.command(&kept.id).await.expect("other nodes' commands stay");

    let deleted_command =
        ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Command, command.id), 10).await.expect("changes");
    let ops: Vec<_> = deleted_command.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["created", "deleted"], "cascaded deletes are recorded too");
    let node_changes =
        ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "n1"), 10).await.expect("changes");
    let last = node_changes.last().expect("a delete record");
    assert_eq!((last.op.as_str(), last.revision.get()), ("deleted", 1));
    assert_eq!(last.resource["id"], "n1", "a delete record carries the last state");
    let findings = ctx.store.check_integrity().await.expect("check");
    assert!(findings.is_empty(), "{findings:?}");
}

pub(crate) async fn delete_with_stale_revision_is_conflict(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.health = Health::Healthy;
    ctx.store.commit(batch("edit").update_node(node)).await.expect("update");
    assert_err!(
        ctx.store.commit(batch("delete").delete_node(node_id("n1"), Some(Revision::FIRST))).await,
        E::Conflict { .. }
    );
    assert_err!(ctx.store.commit(batch("delete").delete_node(node_id("ghost"), None)).await, E::NotFound { .. });
    ctx.store.node(&node_id("n1")).await.expect("still there");
}

pub(crate) async fn delete_of_linked_node_needs_explicit_unlink(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let mut instance = ctx.create_instance("i1").await;
    instance.node_id = Some(node.id.clone());
    instance.apply(InstanceTrigger::AgentRegistered, "registered", ctx.now()).expect("legal");
    ctx.store.commit(batch("link").update_instance(instance.clone())).await.expect("link");
    let mut instance = ctx.store.instance(&instance.id).await.expect("get");

    let message =
        assert_err!(ctx.store.commit(batch("delete").delete_node(node.id.clone(), None)).await, E::Invalid(_));
    assert!(message.contains("still linked to instance i1"), "{message}");

    instance.apply(InstanceTrigger::Terminate, "gone", ctx.now()).expect("legal");
    instance.apply(InstanceTrigger::Gone, "gone", ctx.now()).expect("legal");
    instance.node_id = None;
    ctx.store
        .commit(batch("retention").update_instance(instance.clone()).delete_node(node.id.clone(), None))
        .await
        .expect("unlink and delete in one batch");
    assert_eq!(ctx.store.instance(&instance.id).await.expect("get").node_id, None);
}

pub(crate) async fn update_never_touches_last_heartbeat(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let beat = ctx.now() + Duration::from_secs(5);
    ctx.store.record_heartbeats(&[Heartbeat { node_id: node.id.clone(), at: beat }]).await.expect("heartbeat");
    // An update computed from a copy read before the heartbeat must not erase it.
    let mut stale_copy = node.clone();
    stale_copy.health = Health::Healthy;
    ctx.store.commit(batch("edit").update_node(stale_copy)).await.expect("update");
    assert_eq!(ctx.store.node(&node.id).await.expect("get").last_heartbeat, Some(beat));
}

pub(crate) async fn list_is_ordered_by_id(ctx: &Ctx) {
    for id in ["n3", "n1", "n10", "n2"] {
        ctx.create_node(id).await;
    }
    assert_eq!(ctx.node_ids(&NodeFilter::default()).await, ["n1", "n10", "n2", "n3"]);
}

pub(crate) async fn list_pages_neither_skip_nor_repeat(ctx: &Ctx) {
    let ids: Vec<String> = (0..23).map(|i| format!("node-{i:03}")).collect();
    let mut b = batch("bulk");
    for id in &ids {
        b = b.register(new_node(id, ctx.now()));
    }
    ctx.store.commit(b).await.expect("bulk create");
    let mut seen = Vec::new();
    let mut page = PageRequest::first(5);
    let mut pages = 0;
    loop {
        let result = ctx.store.list_nodes(&NodeFilter::default(), &page).await.expect("page");
        assert!(result.items.len() <= 5);
        seen.extend(result.items.iter().map(|n| n.id.to_string()));
        pages += 1;
        match result.next {
            Some(cursor) => page = PageRequest::after(5, cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 5);
}

pub(crate) async fn list_filters_by_status(ctx: &Ctx) {
    for id in ["a", "b", "c"] {
        ctx.create_node(id).await;
    }
    let mut b = ctx.store.node(&node_id("b")).await.expect("get");
    b.apply(NodeTrigger::Cordon, "maintenance", ctx.now()).expect("legal");
    ctx.store.commit(batch("cordon").update_node(b)).await.expect("update");
    let cordoned = NodeFilter { status: Some(NodeStatus::Cordoned), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&cordoned).await, ["b"]);
    let active = NodeFilter { status: Some(NodeStatus::Active), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&active).await, ["a", "c"]);
}

pub(crate) async fn list_filters_by_pool_provider_and_region(ctx: &Ctx) {
    let variants = [
        ("a", "training", "gcp", "us-central1"),
        ("b", "inference", "aws", "us-east-1"),
        ("c", "training", "aws", "us-central1"),
    ];
    let mut b = batch("bulk");
    for (id, pool, provider, region) in variants {
        let mut node = new_node(id, ctx.now());
        node.pool = Some(PoolName::new(pool).expect("valid"));
        node.provider = provider.into();
        node.region = region.into();
        b = b.register(node);
    }
    ctx.store.commit(b).await.expect("create");
    let by_pool = NodeFilter { pool: Some(PoolName::new("training").expect("valid")), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&by_pool).await, ["a", "c"]);
    let by_provider = NodeFilter { provider: Some("aws".into()), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&by_provider).await, ["b", "c"]);
    let by_region = NodeFilter { region: Some("us-east-1".into()), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&by_region).await, ["b"]);
}

pub(crate) async fn list_filters_by_label_equality(ctx: &Ctx) {
    let mut b = batch("bulk");
    for (id, gpu, rack) in [("a", "h100", "r1"), ("b", "a100", "r1"), ("c", "h100", "r2")] {
        let mut node = new_node(id, ctx.now());
        node.labels.insert("gpu", gpu).expect("valid");
        node.labels.insert("topology.bosun.dev/rack", rack).expect("valid");
        b = b.register(node);
    }
    ctx.store.commit(b).await.expect("create");
    let h100: LabelSelector = "gpu=h100".parse().expect("valid");
    assert_eq!(ctx.node_ids(&NodeFilter { labels: h100, ..NodeFilter::default() }).await, ["a", "c"]);
    let both: LabelSelector = "gpu=h100,topology.bosun.dev/rack=r2".parse().expect("valid");
    assert_eq!(ctx.node_ids(&NodeFilter { labels: both, ..NodeFilter::default() }).await, ["c"]);
    let none: LabelSelector = "gpu=b200".parse().expect("valid");
    assert!(ctx.node_ids(&NodeFilter { labels: none, ..NodeFilter::default() }).await.is_empty());
    let missing_key: LabelSelector = "owner=x".parse().expect("valid");
    assert!(ctx.node_ids(&NodeFilter { labels: missing_key, ..NodeFilter::default() }).await.is_empty());
    // A bare key selects by presence, alone or with equality terms.
    let racked: LabelSelector = "topology.bosun.dev/rack".parse().expect("valid");
    assert_eq!(ctx.node_ids(&NodeFilter { labels: racked, ..NodeFilter::default() }).await, ["a", "b", "c"]);
    let h100_racked: LabelSelector = "gpu=h100,topology.bosun.dev/rack".parse().expect("valid");
    assert_eq!(ctx.node_ids(&NodeFilter { labels: h100_racked, ..NodeFilter::default() }).await, ["a", "c"]);
    let owned: LabelSelector = "owner".parse().expect("valid");
    assert!(ctx.node_ids(&NodeFilter { labels: owned, ..NodeFilter::default() }).await.is_empty());
}

pub(crate) async fn list_combines_filters(ctx: &Ctx) {
    let mut b = batch("bulk");
    for (id, provider, gpu) in [("a", "gcp", "h100"), ("b", "gcp", "a100"), ("c", "aws", "h100")] {
        let mut node = new_node(id, ctx.now());
        node.provider = provider.into();
        node.labels.insert("gpu", gpu).expect("valid");
        b = b.register(node);
    }
    ctx.store.commit(b).await.expect("create");
    let filter = NodeFilter {
        provider: Some("gcp".into()),
        status: Some(NodeStatus::Active),
        labels: "gpu=h100".parse().expect("valid"),
        ..NodeFilter::default()
    };
    assert_eq!(ctx.node_ids(&filter).await, ["a"]);
    // Pagination and filters together.
    let page = ctx
        .store
        .list_nodes(
            &NodeFilter { labels: "gpu=h100".parse().expect("valid"), ..NodeFilter::default() },
            &PageRequest::first(1),
        )
        .await
        .expect("page");
    assert_eq!(page.items.len(), 1);
    let next = ctx
        .store
        .list_nodes(
            &NodeFilter { labels: "gpu=h100".parse().expect("valid"), ..NodeFilter::default() },
            &PageRequest::after(1, page.next.expect("a second page")),
        )
        .await
        .expect("page");
    assert_eq!(next.items[0].id.as_str(), "c");
    assert!(next.next.is_none());
}

pub(crate) async fn list_filters_by_health_and_id_text(ctx: &Ctx) {
    let mut b = batch("bulk");
    for (id, health) in [
        ("dgx-prod-01", Health::Unhealthy),
        ("dgx-prod-02", Health::Healthy),
        ("dgx-prod-03", Health::Unhealthy),
        ("dgx-dev-01", Health::Unhealthy),
    ] {
        let mut node = new_node(id, ctx.now());
        node.health = health;
        b = b.register(node);
    }
    ctx.store.commit(b).await.expect("create");
    let unhealthy = NodeFilter { health: Some(Health::Unhealthy), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&unhealthy).await, ["dgx-dev-01", "dgx-prod-01", "dgx-prod-03"]);
    let prod = NodeFilter { id_contains: "prod".into(), ..NodeFilter::default() };
    assert_eq!(ctx.node_ids(&prod).await, ["dgx-prod-01", "dgx-prod-02", "dgx-prod-03"]);
    // Text is matched as written: no wildcards, case kept.
    for literal in ["%", "_", "PROD", "prod%"] {
        let filter = NodeFilter { id_contains: literal.into(), ..NodeFilter::default() };
        assert!(ctx.node_ids(&filter).await.is_empty(), "{literal:?} matched");
    }
    let both = NodeFilter { health: Some(Health::Unhealthy), id_contains: "prod".into(), ..NodeFilter::default() };
    let first = ctx.store.list_nodes(&both, &PageRequest::first(1)).await.expect("page");
    assert_eq!(first.items[0].id.as_str(), "dgx-prod-01");
    let next = ctx.store.list_nodes(&both, &PageRequest::after(1, first.next.expect("more"))).await.expect("page");
    assert_eq!(next.items.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["dgx-prod-03"]);
    assert!(next.next.is_none());
}

pub(crate) async fn list_by_recent_change_pages_newest_first(ctx: &Ctx) {
    // Five nodes whose statuses changed at three times; two pairs tie and are ordered by
    // id, greatest first.
    let t0 = ctx.now();
    let mut b = batch("bulk");
    for (id, minutes) in [("a", 0), ("b", 2), ("c", 1), ("d", 2), ("e", 0)] {
        let mut node = new_node(id, t0);
        node.status_changed_at = t0 + Duration::from_secs(60 * minutes);
        if id == "c" || id == "e" {
            node.health = Health::Unhealthy;
        }
        b = b.register(node);
    }
    ctx.store.commit(b).await.expect("create");
    let all = NodeFilter::default();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let listed = ctx.store.list_nodes_in(NodeOrder::RecentlyChanged, &all, &page).await.expect("page");
        assert!(listed.items.len() <= 2);
        seen.extend(listed.items.iter().map(|n| n.id.to_string()));
        match listed.next {
            Some(next) => page = PageRequest::after(2, next),
            None => break,
        }
    }
    assert_eq!(seen, ["d", "b", "c", "e", "a"]);
    // Filters apply in this order too.
    let unhealthy = NodeFilter { health: Some(Health::Unhealthy), ..NodeFilter::default() };
    let listed = ctx.store.list_nodes_in(NodeOrder::RecentlyChanged, &unhealthy, &PageRequest::first(10)).await;
    let ids: Vec<String> = listed.expect("list").items.iter().map(|n| n.id.to_string()).collect();
    assert_eq!(ids, ["c", "e"]);
    // A cursor continues only a list in its own order.
    let by_change = ctx.store.list_nodes_in(NodeOrder::RecentlyChanged, &all, &PageRequest::first(1)).await;
    let by_change = by_change.expect("page").next.expect("more");
    let message = assert_err!(ctx.store.list_nodes(&all, &PageRequest::after(1, by_change)).await, E::Invalid(_));
    assert_eq!(message, "invalid page_token: is not a token returned by this list");
    let by_id = ctx.store.list_nodes(&all, &PageRequest::first(1)).await.expect("page").next.expect("more");
    let in_other_order = ctx.store.list_nodes_in(NodeOrder::RecentlyChanged, &all, &PageRequest::after(1, by_id)).await;
    assert_err!(in_other_order, E::Invalid(_));
}

pub(crate) async fn list_rejects_foreign_or_garbage_cursors(ctx: &Ctx) {
    ctx.create_node("a").await;
    ctx.create_node("b").await;
    let garbage = PageRequest::after(10, Cursor::from_token("not-a-cursor"));
    let message = assert_err!(ctx.store.list_nodes(&NodeFilter::default(), &garbage).await, E::Invalid(_));
    assert_eq!(message, "invalid page_token: is not a token returned by this list");
    let node_cursor =
        ctx.store.list_nodes(&NodeFilter::default(), &PageRequest::first(1)).await.expect("page").next.expect("more");
    let foreign = PageRequest::after(10, node_cursor);
    assert_err!(ctx.store.list_instances(&Default::default(), &foreign).await, E::Invalid(_));
}

pub(crate) async fn list_rejects_bad_page_sizes(ctx: &Ctx) {
    for limit in [0, crate::query::MAX_PAGE_SIZE + 1] {
        let message =
            assert_err!(ctx.store.list_nodes(&NodeFilter::default(), &PageRequest::first(limit)).await, E::Invalid(_));
        assert!(message.starts_with("invalid page_size"), "{message}");
    }
}

pub(crate) async fn pagination_under_concurrent_inserts(ctx: &Ctx) {
    let originals: Vec<String> = (0..40).map(|i| format!("n-{:03}", i * 2)).collect();
    let mut b = batch("bulk");
    for id in &originals {
        b = b.register(new_node(id, ctx.now()));
    }
    ctx.store.commit(b).await.expect("bulk create");

    // Insert odd-numbered nodes (interleaving with the listed keys) while paging.
    let store = ctx.store.clone();
    let now = ctx.now();
    let inserter = tokio::spawn(async move {
        for i in 0..40 {
            let id = format!("n-{:03}", i * 2 + 1);
            store.commit(batch("concurrent").register(new_node(&id, now))).await.expect("insert");
            tokio::task::yield_now().await;
        }
    });
    let mut seen = Vec::new();
    let mut page = PageRequest::first(7);
    loop {
        let result = ctx.store.list_nodes(&NodeFilter::default(), &page).await.expect("page");
        seen.extend(result.items.iter().map(|n| n.id.to_string()));
        tokio::task::yield_now().await;
        match result.next {
            Some(cursor) => page = PageRequest::after(7, cursor),
            None => break,
        }
    }
    inserter.await.expect("inserter");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no node may appear twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "pages stay in key order");
    for id in &originals {
        assert!(unique.contains(id), "{id} existed before listing began and must be returned");
    }
}

pub(crate) async fn concurrent_compare_and_set_updaters_lose_nothing(ctx: &Ctx) {
    ctx.create_node("counter").await;
    const WRITERS: usize = 16;
    const INCREMENTS: usize = 5;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&ctx.store);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..INCREMENTS {
                loop {
                    let mut node = store.node(&node_id("counter")).await.expect("read");
                    let count: u64 = node.labels.get("count").map_or(0, |c| c.parse().expect("number"));
                    node.labels.insert("count", (count + 1).to_string()).expect("valid");
                    node.labels.insert(format!("writer-{writer}"), "seen").expect("valid");
                    match store.commit(batch("increment").update_node(node)).await {
                        Ok(_) => break,
                        Err(crate::StoreError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let node = ctx.store.node(&node_id("counter")).await.expect("read");
    assert_eq!(node.labels.get("count"), Some((WRITERS * INCREMENTS).to_string().as_str()), "no lost update");
    assert_eq!(node.revision.get(), 1 + (WRITERS * INCREMENTS) as u64);
    let changes =
        ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "counter"), 1000).await.expect("log");
    assert_eq!(changes.len(), 1 + WRITERS * INCREMENTS, "one change record per successful update");
}

pub(crate) async fn concurrent_creates_of_one_id_have_one_winner(ctx: &Ctx) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&ctx.store);
        let node = new_node("contested", ctx.now());
        tasks.push(tokio::spawn(async move { store.commit(batch("race").register(node)).await }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => wins += 1,
            Err(crate::StoreError::AlreadyExists { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
}
