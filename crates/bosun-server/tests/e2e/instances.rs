//! Instances without providers (SPEC 3.5): linked to their node when its agent registers,
//! FAILED when no agent registers in time, and FAILED ones never forgotten by retention.

use std::time::Duration;

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::instance::InstanceRequest;
use bosun_core::{Actor, Clock, Instance, InstanceTrigger};
use bosun_store::{Backend, WriteBatch};
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(instances_link_time_out_and_are_forgotten);

async fn provisioned(h: &Harness, id: &str) {
    let request = InstanceRequest {
        id: id.parse().expect("instance id"),
        provider: "fake".into(),
        region: "local".into(),
        zone: "local-a".into(),
        instance_type: "h100-8x".into(),
        pool: None,
        labels: Default::default(),
    };
    let mut instance = Instance::start_provisioning(request, h.clock.now()).expect("provisioning");
    instance.apply(InstanceTrigger::Provisioned, "provider accepted", h.clock.now()).expect("provisioned");
    let batch = WriteBatch::new(Actor::system("test"), "provisioned").create_instance(instance);
    h.server().store().commit(batch).await.expect("create instance");
}

async fn instance(h: &Harness, id: &str) -> Result<v1::Instance, connectrpc::ConnectError> {
    let request = v1::GetInstanceRequest { instance_id: id.into(), ..Default::default() };
    Ok(h.root().get_instance(request).await?.into_owned().instance.as_option().expect("instance").clone())
}

fn state(instance: &v1::Instance) -> v1::InstanceState {
    instance.state.as_known().expect("known state")
}

async fn instances_link_time_out_and_are_forgotten(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    provisioned(&h, "i-linked").await;
    provisioned(&h, "i-silent").await;
    assert_eq!(
        state(&instance(&h, "i-linked").await.expect("get")),
        v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION
    );

    // The agent names its instance when it registers: the two are linked, the instance RUNNING.
    h.agent_client().register(&registration("n1"), Some("i-linked")).await.expect("register");
    let linked = instance(&h, "i-linked").await.expect("get");
    assert_eq!(state(&linked), v1::InstanceState::INSTANCE_STATE_RUNNING);
    assert_eq!(linked.node_id, "n1");
    let listed = h
        .root()
        .list_instances(v1::ListInstancesRequest { node_id: "n1".into(), ..Default::default() })
        .await
        .expect("list")
        .into_owned();
    assert_eq!(listed.instances.len(), 1);

    // An unknown instance id is refused, naming the field.
    let (code, message) = refused(
        h.raw_agent(Some(AGENTS))
            .register_node(v1::RegisterRequest {
                node_id: "n2".into(),
                instance_id: "i-ghost".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("instance_id"), "{message}");

    // No agent for i-silent within the registration timeout: FAILED, and only it.
    h.clock.advance(h.settings.instance_registration_timeout - Duration::from_secs(1));
    h.server().janitor().await.expect("janitor");
    assert_eq!(
        state(&instance(&h, "i-silent").await.expect("get")),
        v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION
    );
    h.clock.advance(Duration::from_secs(2));
    h.server().janitor().await.expect("janitor");
    let failed = instance(&h, "i-silent").await.expect("get");
    assert_eq!(state(&failed), v1::InstanceState::INSTANCE_STATE_FAILED);
    assert!(failed.status_message.contains("registration timeout"), "{}", failed.status_message);
    assert_eq!(state(&instance(&h, "i-linked").await.expect("get")), v1::InstanceState::INSTANCE_STATE_RUNNING);

    // Retention never forgets a FAILED instance: its VM may exist, and the record is the
    // only handle on it until the provider confirms termination.
    h.clock.advance(h.settings.terminated_retention + Duration::from_secs(1));
    h.server().retention().await.expect("retention");
    assert_eq!(state(&instance(&h, "i-silent").await.expect("kept")), v1::InstanceState::INSTANCE_STATE_FAILED);
    instance(&h, "i-linked").await.expect("a RUNNING instance stays");
    h.stop().await;
}
