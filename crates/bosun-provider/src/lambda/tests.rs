use serde_json::json;

use super::*;
use crate::mock::{MockApi, Reply, closed_address, lambda_config, provision_request};

const LAUNCH: &str = "POST /instance-operations/launch";
const TERMINATE: &str = "POST /instance-operations/terminate";
const INSTANCES: &str = "GET /instances";
const TYPES: &str = "GET /instance-types";

fn provider_with(url: &str, options: &str) -> LambdaProvider {
    let env = |var: &str| (var == "LAMBDA_KEY").then(|| "secret-api-key".to_owned());
    let config = lambda_config(&format!("{{type: lambda, api_key_env: LAMBDA_KEY, endpoint: '{url}'{options}}}"));
    LambdaProvider::from_config("lambda-main", &config, env).unwrap()
}

fn provider(url: &str) -> LambdaProvider {
    provider_with(url, "")
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message, "suggestion": "Try again later"}}))
}

fn types_reply() -> Reply {
    Reply::json(
        200,
        json!({"data": {
            "gpu_8x_h100_sxm5": {
                "instance_type": {
                    "name": "gpu_8x_h100_sxm5",
                    "description": "8x H100 (80 GB SXM5)",
                    "gpu_description": "H100 (80 GB SXM5)",
                    "price_cents_per_hour": 2392,
                    "specs": {"vcpus": 208, "memory_gib": 1800, "storage_gib": 24780, "gpus": 8}
                },
                "regions_with_capacity_available": [
                    {"name": "us-west-1", "description": "California, USA"},
                    {"name": "us-east-1", "description": "Virginia, USA"}
                ]
            },
            "gpu_1x_a10": {
                "instance_type": {"name": "gpu_1x_a10", "description": "1x A10 (24 GB PCIe)", "price_cents_per_hour": 75},
                "regions_with_capacity_available": []
            }
        }}),
    )
}

#[tokio::test]
async fn provision_launches_one_named_instance_carrying_the_bootstrap() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": ["0920582c7ff041399e34823a0be62549"]}})));
    let lambda = provider_with(&mock.url, ", ssh_key_names: [ops], file_system_names: [datasets]");

    let request = provision_request("inst-1", "gpu_8x_h100_sxm5", "us-east-1", "");
    let provisioned = lambda.provision(&request).await.unwrap();
    assert_eq!(
        provisioned,
        Provisioned {
            provider_instance_id: "0920582c7ff041399e34823a0be62549".into(),
            region: "us-east-1".into(),
            zone: String::new()
        }
    );

    let sent = mock.requests_to(LAUNCH);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer secret-api-key"));
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    let body = sent[0].json();
    assert_eq!(body["region_name"], "us-east-1");
    assert_eq!(body["instance_type_name"], "gpu_8x_h100_sxm5");
    assert_eq!(body["quantity"], 1);
    assert_eq!(body["name"], "bosun-inst-1");
    assert_eq!(body["ssh_key_names"], json!(["ops"]));
    assert_eq!(body["file_system_names"], json!(["datasets"]));
    let user_data = body["user_data"].as_str().unwrap();
    assert!(user_data.contains("BOSUN_TOKEN=\"agent-token-123\""), "{user_data}");
    assert!(user_data.contains("BOSUN_INSTANCE_ID=\"inst-1\""), "{user_data}");
    assert!(user_data.contains("--provider \"lambda\" --region \"us-east-1\""), "{user_data}");
}

#[tokio::test]
async fn provision_without_ssh_keys_leaves_the_field_out() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": ["i1"]}})));
    provider(&mock.url).provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", "")).await.unwrap();
    let body = mock.requests_to(LAUNCH)[0].json();
    assert!(body.get("ssh_key_names").is_none() && body.get("file_system_names").is_none(), "{body}");
}

#[tokio::test]
async fn the_pool_ssh_keys_replace_the_providers() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": ["i1"]}})));
    let mut request = provision_request("inst-1", "gpu_1x_a10", "us-east-1", "");
    request.ssh.keys = vec!["team".into()];
    provider_with(&mock.url, ", ssh_key_names: [ops]").provision(&request).await.unwrap();
    assert_eq!(mock.requests_to(LAUNCH)[0].json()["ssh_key_names"], json!(["team"]));
}

#[tokio::test]
async fn provision_without_a_region_picks_one_with_capacity() {
    let mock = MockApi::start().await;
    mock.on(TYPES, types_reply());
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": ["i1"]}})));
    let lambda = provider(&mock.url);

    let provisioned = lambda.provision(&provision_request("inst-1", "gpu_8x_h100_sxm5", "", "")).await.unwrap();
    assert_eq!(provisioned.region, "us-east-1", "the first region by name");
    assert_eq!(mock.requests_to(LAUNCH)[0].json()["region_name"], "us-east-1");

    let none = lambda.provision(&provision_request("inst-2", "gpu_1x_a10", "", "")).await.unwrap_err();
    assert!(matches!(none, ProviderError::Capacity { .. }), "{none}");
    let unknown = lambda.provision(&provision_request("inst-3", "gpu_9x_nope", "", "")).await.unwrap_err();
    assert!(matches!(unknown, ProviderError::Invalid { .. }), "{unknown}");
    assert!(unknown.to_string().contains("gpu_9x_nope"), "{unknown}");
    assert_eq!(mock.requests_to(LAUNCH).len(), 1, "no launch without a region");
}

#[tokio::test]
async fn provision_rejects_ids_too_long_for_a_name_without_calling_lambda() {
    let mock = MockApi::start().await;
    let long = "a".repeat(60);
    let err =
        provider(&mock.url).provision(&provision_request(&long, "gpu_1x_a10", "us-east-1", "")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn provision_errors_map_to_what_the_reconciler_does_next() {
    let cases = [
        (error(400, "instance-operations/launch/insufficient-capacity", "Not enough capacity"), "capacity"),
        (error(400, "global/quota-exceeded", "Quota exceeded"), "capacity"),
        (error(401, "global/invalid-api-key", "API key was invalid, expired, or deleted."), "unauthorized"),
        (error(403, "global/account-inactive", "Your account is inactive."), "unauthorized"),
        (error(400, "global/invalid-parameters", "Invalid instance type"), "invalid"),
        (error(404, "global/object-does-not-exist", "Region not found"), "invalid"),
        (error(429, "global/rate-limited", "Too many requests"), "unavailable"),
        (error(500, "global/internal-error", "Something went wrong"), "unavailable"),
        (error(503, "provider/internal-unavailable", "Provider unavailable"), "unavailable"),
        (Reply::text(502, "<html>Bad Gateway</html>"), "unavailable"),
    ];
    for (reply, expected) in cases {
        let mock = MockApi::start().await;
        mock.on(LAUNCH, reply.clone());
        let err = provider(&mock.url)
            .provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", ""))
            .await
            .unwrap_err();
        let kind = match &err {
            ProviderError::Capacity { .. } => "capacity",
            ProviderError::Unauthorized { .. } => "unauthorized",
            ProviderError::Invalid { .. } => "invalid",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::NotFound { .. } => "not found",
        };
        assert_eq!(kind, expected, "{reply:?} gave {err}");
        let text = err.to_string();
        assert!(text.starts_with("lambda-main: "), "{text}");
        assert!(text.contains("launch gpu_1x_a10 in us-east-1"), "{text}");
    }
}

#[tokio::test]
async fn error_messages_say_what_to_fix() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, error(401, "global/invalid-api-key", "API key was invalid, expired, or deleted."));
    let err =
        provider(&mock.url).provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", "")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("API key was invalid"), "{text}");
    assert!(text.contains("(global/invalid-api-key)"), "{text}");
    assert!(text.contains("check the API key in LAMBDA_KEY"), "{text}");
    assert!(!text.contains("secret-api-key"), "{text}");

    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::text(502, "<html>Bad Gateway</html>"));
    let err =
        provider(&mock.url).provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", "")).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 502: <html>Bad Gateway</html>"), "{err}");
}

#[tokio::test]
async fn malformed_success_bodies_are_unavailable_not_panics() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::text(200, "this is not json"));
    mock.on(INSTANCES, Reply::json(200, json!({"data": {"not": "a list"}})));
    mock.on(TYPES, Reply::json(200, json!({"unexpected": true})));
    let lambda = provider(&mock.url);

    let err = lambda.provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", "")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("not the JSON expected"), "{err}");
    let err = lambda.list().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    let err = lambda.instance_types().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn launch_without_an_instance_id_is_unavailable() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": []}})));
    let err =
        provider(&mock.url).provision(&provision_request("inst-1", "gpu_1x_a10", "us-east-1", "")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn terminate_sends_the_id_and_treats_unknown_ids_as_gone() {
    let mock = MockApi::start().await;
    mock.on(
        TERMINATE,
        Reply::json(200, json!({"data": {"terminated_instances": [{"id": "i1", "status": "terminating"}]}})),
    );
    let lambda = provider(&mock.url);
    lambda.terminate("i1").await.unwrap();
    let sent = mock.requests_to(TERMINATE);
    assert_eq!(sent[0].json(), json!({"instance_ids": ["i1"]}));
    assert_eq!(sent[0].header("authorization"), Some("Bearer secret-api-key"));

    let mock = MockApi::start().await;
    mock.on(TERMINATE, error(404, "global/object-does-not-exist", "Specified instance does not exist."));
    provider(&mock.url).terminate("gone").await.unwrap();

    let mock = MockApi::start().await;
    mock.on(TERMINATE, error(400, "global/object-does-not-exist", "Specified instance does not exist."));
    provider(&mock.url).terminate("gone").await.unwrap();

    let mock = MockApi::start().await;
    mock.on(TERMINATE, error(500, "global/internal-error", "oops"));
    let err = provider(&mock.url).terminate("i1").await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn list_maps_names_back_to_instance_ids_and_states() {
    let mock = MockApi::start().await;
    let instance = |id: &str, name: serde_json::Value, status: &str| {
        json!({
            "id": id, "name": name, "ip": "198.51.100.2", "status": status,
            "ssh_key_names": ["ops"], "file_system_names": [],
            "region": {"name": "us-east-1", "description": "Virginia, USA"},
            "instance_type": {"name": "gpu_8x_h100_sxm5", "description": "8x H100", "price_cents_per_hour": 2392},
            "hostname": "10-0-0-1.cloud.lambdalabs.com"
        })
    };
    mock.on(
        INSTANCES,
        Reply::json(
            200,
            json!({"data": [
                instance("a", json!("bosun-inst-1"), "booting"),
                instance("b", json!("bosun-inst-2"), "active"),
                instance("c", json!("bosun-inst-3"), "unhealthy"),
                instance("d", json!("bosun-inst-4"), "terminating"),
                instance("e", json!("bosun-inst-5"), "terminated"),
                instance("f", json!("training-box"), "active"),
                instance("g", json!(null), "preempted"),
                instance("h", json!("bosun-bad id"), "active"),
            ]}),
        ),
    );
    let listed = provider(&mock.url).list().await.unwrap();
    let summary: Vec<(&str, Option<&str>, ProviderInstanceState)> = listed
        .iter()
        .map(|i| (i.provider_instance_id.as_str(), i.instance_id.as_ref().map(InstanceId::as_str), i.state))
        .collect();
    use ProviderInstanceState::*;
    assert_eq!(
        summary,
        [
            ("a", Some("inst-1"), Pending),
            ("b", Some("inst-2"), Running),
            ("c", Some("inst-3"), Running),
            ("d", Some("inst-4"), Terminating),
            ("e", Some("inst-5"), Terminated),
            ("f", None, Running),
            ("g", None, Terminated),
            ("h", None, Running),
        ]
    );
    assert_eq!(listed[0].region, "us-east-1");
    assert_eq!(listed[0].instance_type, "gpu_8x_h100_sxm5");
    assert_eq!(listed[0].ssh_address, Some("198.51.100.2:22".parse().unwrap()));
}

#[tokio::test]
async fn list_round_trips_the_name_provision_sent() {
    let mock = MockApi::start().await;
    mock.on(LAUNCH, Reply::json(200, json!({"data": {"instance_ids": ["x1"]}})));
    let lambda = provider(&mock.url);
    lambda.provision(&provision_request("pool-a.7:x_1", "gpu_1x_a10", "us-east-1", "")).await.unwrap();
    let name = mock.requests_to(LAUNCH)[0].json()["name"].clone();
    mock.on(INSTANCES, Reply::json(200, json!({"data": [{"id": "x1", "name": name, "status": "booting"}]})));
    let listed = lambda.list().await.unwrap();
    assert_eq!(listed[0].instance_id.as_ref().map(InstanceId::as_str), Some("pool-a.7:x_1"));
    assert_eq!(listed[0].ssh_address, None, "a booting machine has no IP yet");
}

#[tokio::test]
async fn instance_types_carry_prices_gpus_and_regions() {
    let mock = MockApi::start().await;
    mock.on(TYPES, types_reply());
    let offers = provider(&mock.url).instance_types().await.unwrap();
    assert_eq!(
        offers,
        [
            InstanceTypeOffer {
                name: "gpu_1x_a10".into(),
                gpu_count: 1,
                gpu_model: "1x A10 (24 GB PCIe)".into(),
                price_per_hour: Some(0.75),
                regions_with_capacity: vec![],
            },
            InstanceTypeOffer {
                name: "gpu_8x_h100_sxm5".into(),
                gpu_count: 8,
                gpu_model: "H100 (80 GB SXM5)".into(),
                price_per_hour: Some(23.92),
                regions_with_capacity: vec!["us-east-1".into(), "us-west-1".into()],
            },
        ]
    );
    assert_eq!(mock.requests_to(TYPES)[0].header("authorization"), Some("Bearer secret-api-key"));
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable() {
    let url = closed_address().await;
    let err = provider(&url).list().await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("GET /instances: cannot connect"), "{err}");
}

#[test]
fn from_config_names_the_missing_variable_and_debug_hides_the_key() {
    let config = lambda_config("{type: lambda, api_key_env: MY_LAMBDA_KEY}");
    let err = LambdaProvider::from_config("lambda-main", &config, |_| None).unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("MY_LAMBDA_KEY"), "{err}");
    let blank = LambdaProvider::from_config("lambda-main", &config, |_| Some("  ".into())).unwrap_err();
    assert!(matches!(blank, ProviderError::Unauthorized { .. }), "{blank}");

    let lambda = LambdaProvider::from_config("lambda-main", &config, |_| Some("secret-api-key".into())).unwrap();
    let debug = format!("{lambda:?}");
    assert!(!debug.contains("secret-api-key"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(lambda.kind(), ProviderType::Lambda);
    assert_eq!(lambda.name(), "lambda-main");
}

#[test]
fn bad_base_urls_are_invalid() {
    for url in ["not a url", "ftp://example.com", "file:///tmp/x"] {
        let err = provider("http://127.0.0.1:9").with_base_url(url).unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }), "{url}: {err}");
    }
}

#[test]
fn type_names_give_gpu_counts() {
    assert_eq!(gpus_from_type_name("gpu_8x_h100_sxm5"), 8);
    assert_eq!(gpus_from_type_name("gpu_1x_a10"), 1);
    assert_eq!(gpus_from_type_name("cpu_4x_general"), 0);
}
