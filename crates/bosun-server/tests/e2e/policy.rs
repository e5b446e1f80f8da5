//! The health policy through the API: replaced live (validated first), tested on sample
//! events, and used for the next report.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::Clock;
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(
    a_policy_set_through_the_api_judges_the_next_report,
    a_policy_file_judges_reports_and_the_api_cannot_replace_it
);

pub(crate) const STRICT: &str = r#"
version: "1"
metadata: {name: strict-thermal}
rules:
  - name: warm-is-fatal
    condition: 'event.event_type == "thermal" && has(event.metrics.temperature) && event.metrics.temperature >= 70'
    result: unhealthy
"#;

pub(crate) fn thermal(h: &Harness, celsius: u32) -> bosun_core::HealthEvent {
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

/// `server.health_policy`: the file named in the configuration is the active policy from
/// the start, judges every report, and cannot be replaced through the API (edit the file
/// and restart instead), even after a restart.
async fn a_policy_file_judges_reports_and_the_api_cannot_replace_it(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("health-policy.yaml");
    std::fs::write(&path, STRICT).expect("write the policy");
    let config =
        bosun_config::Config::from_yaml_str(&format!("server:\n  health_policy: {}\n", path.display()), |_| None)
            .expect("config");
    let mut settings = settings();
    settings.health_policy = bosun_server::Settings::from_config(&config).health_policy;
    assert_eq!(settings.health_policy.as_deref(), Some(path.as_path()));
    let Some(mut h) = Harness::start_with(backend, settings).await else { return };

    let active = h.root().get_policy(v1::GetPolicyRequest::default()).await.expect("get").into_owned();
    assert_eq!(active.name, "strict-thermal");
    assert_eq!(active.source, format!("file:{}", path.display()));

    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    client.register(&registration("n2"), None).await.expect("register");
    // 75 C: healthy under the built-in policy, fatal under the file's.
    client.report_health(&node_id("n1"), &[], &[thermal(&h, 75)]).await.expect("report");
    let node = h.node("n1").await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "judged by the file's policy");
    assert_eq!(health_of(&node), v1::HealthStatus::HEALTH_STATUS_UNHEALTHY);
    client.report_health(&node_id("n2"), &[], &[thermal(&h, 60)]).await.expect("report");
    assert_eq!(status_of(&h.node("n2").await), v1::NodeStatus::NODE_STATUS_ACTIVE, "no rule matched: healthy");

    let (code, message) = refused(
        h.root()
            .set_policy(v1::SetPolicyRequest { yaml: STRICT.replace("strict-thermal", "other"), ..Default::default() })
            .await,
    );
    assert_eq!(code, connectrpc::ErrorCode::FailedPrecondition);
    assert!(message.contains("server.health_policy") && message.contains("edit that file"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");

    h.restart().await;
    let active = h.root().get_policy(v1::GetPolicyRequest::default()).await.expect("get").into_owned();
    assert_eq!((active.name.as_str(), active.rules), ("strict-thermal", 1), "still the file's after a restart");
    h.stop().await;
}
