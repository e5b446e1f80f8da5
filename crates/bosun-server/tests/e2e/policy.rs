//! The health policy through the API: replaced live (validated first), tested on sample
//! events, and used for the next report.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::Clock;
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(a_policy_set_through_the_api_judges_the_next_report);

const STRICT: &str = r#"
version: "1"
metadata: {name: strict-thermal}
rules:
  - name: warm-is-fatal
    condition: 'event.event_type == "thermal" && has(event.metrics.temperature) && event.metrics.temperature >= 70'
    result: unhealthy
"#;

fn thermal(h: &Harness, celsius: u32) -> bosun_core::HealthEvent {
    bosun_core::HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: 1,
        gpu_uuid: String::new(),
        system: bosun_core::HealthSystem::Thermal,
        event_type: bosun_core::EventType::Thermal,
        metrics: [("temperature".to_owned(), celsius.to_string())].into(),
        message: format!("GPU at {celsius} C"),
    }
}

async fn a_policy_set_through_the_api_judges_the_next_report(backend: Backend) {
    let Some(mut h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");

    // 75 C is healthy under the built-in policy...
    let sample = vec![bosun_api::convert::health_event(&thermal(&h, 75))];
    let tested = h
        .root()
        .test_policy(v1::TestPolicyRequest { events: sample.clone(), ..Default::default() })
        .await
        .expect("test")
        .into_owned();
    assert_eq!(tested.overall.as_known(), Some(v1::HealthStatus::HEALTH_STATUS_HEALTHY));
    // ...and unhealthy under the candidate, tested before it is set.
    let tested = h
        .root()
        .test_policy(v1::TestPolicyRequest { yaml: STRICT.into(), events: sample, ..Default::default() })
        .await
        .expect("test")
        .into_owned();
    assert_eq!(tested.overall.as_known(), Some(v1::HealthStatus::HEALTH_STATUS_UNHEALTHY));
    assert_eq!(tested.verdicts[0].rule.as_deref(), Some("warm-is-fatal"));

    let set =
        h.root().set_policy(v1::SetPolicyRequest { yaml: STRICT.into(), ..Default::default() }).await.expect("set");
    assert_eq!(set.into_owned().name, "strict-thermal");
    client.report_health(&node_id("n1"), &[], &[thermal(&h, 75)]).await.expect("report");
    let node = h.node("n1").await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "the new policy judged the report");

    // The stored policy survives a restart.
    h.restart().await;
    let active = h.root().get_policy(v1::GetPolicyRequest::default()).await.expect("get").into_owned();
    assert_eq!(active.name, "strict-thermal");
    assert!(active.source.starts_with("api"), "{}", active.source);
    assert_eq!(active.rules, 1);
    h.stop().await;
}
