//! Instances: tracking, uniqueness, lifecycle, linking to nodes.

use bosun_core::{Instance, InstanceState, InstanceTrigger, NodeTrigger, PoolName, ResourceKind};

use super::{Ctx, E, RegisterExt, assert_err, batch, instance_request, new_node, node_id};
use crate::query::{ChangeFilter, InstanceFilter, PageRequest};

async fn ids(ctx: &Ctx, filter: &InstanceFilter) -> Vec<String> {
    let page = ctx.store.list_instances(filter, &PageRequest::first(100)).await.expect("list");
    page.items.iter().map(|i| i.id.to_string()).collect()
}

pub(crate) async fn create_then_get_round_trips(ctx: &Ctx) {
    let instance = Instance::start_provisioning(instance_request("i1"), ctx.now()).expect("new");
    ctx.store.commit(batch("provision").create_instance(instance.clone())).await.expect("create");
    let stored = ctx.store.instance(&instance.id).await.expect("get");
    assert_eq!(stored, instance);
    assert_eq!(stored.state, InstanceState::Provisioning);
}

pub(crate) async fn duplicate_id_is_already_exists(ctx: &Ctx) {
    ctx.create_instance("i1").await;
    let again = Instance::start_provisioning(instance_request("i1"), ctx.now()).expect("new");
    assert_err!(ctx.store.commit(batch("again").create_instance(again)).await, E::AlreadyExists { .. });
    assert_err!(ctx.store.instance(&"ghost".parse().expect("valid")).await, E::NotFound { .. });
}

pub(crate) async fn provider_instance_id_is_unique_per_provider(ctx: &Ctx) {
    ctx.create_instance("i1").await; // provider "fake", provider id "vm-i1"
    let mut clash = Instance::start_provisioning(instance_request("i2"), ctx.now()).expect("new");
    clash.provider_instance_id = Some("vm-i1".into());
    let message =
        assert_err!(ctx.store.commit(batch("clash").create_instance(clash.clone())).await, E::AlreadyExists { .. });
    assert_eq!(message, "instance fake/vm-i1 already exists");
    let mut other_provider = clash;
    other_provider.provider = "gcp".into();
    ctx.store.commit(batch("ok").create_instance(other_provider)).await.expect("same id at another provider");
}

pub(crate) async fn lifecycle_is_enforced(ctx: &Ctx) {
    let mut instance = ctx.create_instance("i1").await;
    instance.state = InstanceState::Provisioning;
    let message =
        assert_err!(ctx.store.commit(batch("back").update_instance(instance)).await, E::InvalidTransition { .. });
    assert_eq!(message, "instance i1: instance cannot go from PENDING_REGISTRATION to PROVISIONING");
    let mut instance = ctx.store.instance(&"i1".parse().expect("valid")).await.expect("get");
    instance.apply(InstanceTrigger::Fail, "registration timeout", ctx.now()).expect("legal");
    ctx.store.commit(batch("timeout").update_instance(instance)).await.expect("fail");
    let mut instance = ctx.store.instance(&"i1".parse().expect("valid")).await.expect("get");
    instance.apply(InstanceTrigger::Terminate, "clean up the VM", ctx.now()).expect("legal");
    ctx.store.commit(batch("cleanup").update_instance(instance)).await.expect("terminate a failed instance");
    let mut running_without_node = ctx.create_instance("i2").await;
    running_without_node.state = InstanceState::Running;
    let message =
        assert_err!(ctx.store.commit(batch("bad").update_instance(running_without_node)).await, E::Invalid(_));
    assert_eq!(message, "invalid node_id: a RUNNING instance must be linked to its node");
}

pub(crate) async fn link_to_missing_node_is_not_found(ctx: &Ctx) {
    let mut instance = ctx.create_instance("i1").await;
    instance.node_id = Some(node_id("ghost"));
    instance.apply(InstanceTrigger::AgentRegistered, "registered", ctx.now()).expect("legal");
    let message = assert_err!(ctx.store.commit(batch("link").update_instance(instance)).await, E::NotFound { .. });
    assert_eq!(message, "node ghost not found");
}

pub(crate) async fn registration_links_instance_atomically(ctx: &Ctx) {
    let mut instance = ctx.create_instance("i1").await;
    let node = new_node("i1", ctx.now());
    instance.node_id = Some(node.id.clone());
    instance.apply(InstanceTrigger::AgentRegistered, "node registered", ctx.now()).expect("legal");
    let seq_before = ctx.store.last_change_seq().await.expect("seq");
    let committed = ctx
        .store
        .commit(batch("register").register(node.clone()).update_instance(instance.clone()))
        .await
        .expect("register and link");
    assert_eq!(committed.outcomes.len(), 2);
    let stored = ctx.store.instance(&instance.id).await.expect("get");
    assert_eq!(stored.state, InstanceState::Running);
    assert_eq!(stored.node_id, Some(node.id.clone()));
    assert_eq!(stored.ready_at, Some(ctx.now()));
    let changes = ctx
        .store
        .list_changes(&crate::query::ChangeFilter { after_seq: seq_before, ..Default::default() }, 10)
        .await
        .expect("log");
    let kinds: Vec<_> = changes.iter().map(|c| (c.kind, c.op.as_str())).collect();
    assert_eq!(kinds, [(ResourceKind::Node, "created"), (ResourceKind::Instance, "updated")]);
}

pub(crate) async fn list_filters(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let mut a = ctx.create_instance("a").await;
    a.node_id = Some(node.id.clone());
    a.apply(InstanceTrigger::AgentRegistered, "up", ctx.now()).expect("legal");
    ctx.store.commit(batch("link").update_instance(a)).await.expect("link");
    ctx.create_instance("b").await;
    let mut c = Instance::start_provisioning(instance_request("c"), ctx.now()).expect("new");
    c.pool = Some(PoolName::new("inference").expect("valid"));
    c.provider = "gcp".into();
    ctx.store.commit(batch("create").create_instance(c)).await.expect("create");

    let running = InstanceFilter { states: vec![InstanceState::Running], ..Default::default() };
    assert_eq!(ids(ctx, &running).await, ["a"]);
    let counted = InstanceFilter {
        states: vec![InstanceState::Provisioning, InstanceState::PendingRegistration, InstanceState::Running],
        ..Default::default()
    };
    assert_eq!(ids(ctx, &counted).await, ["a", "b", "c"]);
    let training = InstanceFilter { pool: Some(PoolName::new("training").expect("valid")), ..Default::default() };
    assert_eq!(ids(ctx, &training).await, ["a", "b"]);
    let on_node = InstanceFilter { node_id: Some(node.id.clone()), ..Default::default() };
    assert_eq!(ids(ctx, &on_node).await, ["a"]);
    let gcp = InstanceFilter { provider: Some("gcp".into()), ..Default::default() };
    assert_eq!(ids(ctx, &gcp).await, ["c"]);
    let labelled = InstanceFilter { labels: "bosun.dev/pool=training".parse().expect("valid"), ..Default::default() };
    assert_eq!(ids(ctx, &labelled).await, ["a", "b", "c"]);
    let page = ctx.store.list_instances(&InstanceFilter::default(), &PageRequest::first(2)).await.expect("page");
    let rest = ctx
        .store
        .list_instances(&InstanceFilter::default(), &PageRequest::after(2, page.next.expect("more")))
        .await
        .expect("page");
    assert_eq!(rest.items.len(), 1);
}

pub(crate) async fn instance_for_node_finds_by_link_id_or_provider_id(ctx: &Ctx) {
    assert_eq!(ctx.store.instance_for_node(&node_id("nothing")).await.expect("lookup"), None);
    ctx.create_instance("same-as-node").await;
    let found = ctx.store.instance_for_node(&node_id("same-as-node")).await.expect("lookup").expect("by id");
    assert_eq!(found.id.as_str(), "same-as-node");
    let found =
        ctx.store.instance_for_node(&node_id("vm-same-as-node")).await.expect("lookup").expect("by provider id");
    assert_eq!(found.id.as_str(), "same-as-node");

    // A terminated instance with the same provider id loses to a live one.
    let mut old = Instance::start_provisioning(instance_request("old"), ctx.now()).expect("new");
    old.provider = "gcp".into();
    old.provider_instance_id = Some("shared".into());
    old.apply(InstanceTrigger::Gone, "gone", ctx.now()).expect("legal");
    let mut live = Instance::start_provisioning(instance_request("live"), ctx.now()).expect("new");
    live.provider_instance_id = Some("shared".into());
    ctx.store.commit(batch("create").create_instance(old).create_instance(live)).await.expect("create");
    let found = ctx.store.instance_for_node(&node_id("shared")).await.expect("lookup").expect("found");
    assert_eq!(found.id.as_str(), "live");
}

pub(crate) async fn delete_removes_and_records(ctx: &Ctx) {
    let instance = ctx.create_instance("i1").await;
    assert_err!(
        ctx.store.commit(batch("delete").delete_instance(instance.id.clone(), Some(instance.revision.next()))).await,
        E::Conflict { .. }
    );
    ctx.store
        .commit(batch("retention").delete_instance(instance.id.clone(), Some(instance.revision)))
        .await
        .expect("delete");
    assert_err!(ctx.store.instance(&instance.id).await, E::NotFound { .. });
    let changes = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Instance, "i1"), 10).await.expect("log");
    assert_eq!(changes.last().map(|c| c.op.as_str()), Some("deleted"));
    // Unrelated: a node can still be cordoned afterwards (sanity that deletes touched only i1).
    let mut node = ctx.create_node("n1").await;
    node.apply(NodeTrigger::Cordon, "x", ctx.now()).expect("legal");
    ctx.store.commit(batch("cordon").update_node(node)).await.expect("cordon");
}
