use serde_json::{Value, json};

use super::*;
use crate::mock::{MockApi, Reply, closed_address, gcp_config, provision_request};

const INSERT: &str = "POST /projects/proj-1/zones/us-central1-a/instances";
const WAIT: &str = "POST /projects/proj-1/zones/us-central1-a/operations/op-1/wait";
const LIST: &str = "GET /projects/proj-1/aggregated/instances";

fn config() -> GcpConfig {
    gcp_config("{type: gcp, project: proj-1, zone: us-central1-a}")
}

fn provider(url: &str) -> GcpProvider {
    let env = |var: &str| (var == TOKEN_ENV).then(|| "ya29.secret-token".to_owned());
    GcpProvider::from_config("gcp-main", &config(), env).unwrap().with_base_url(url).unwrap()
}

fn operation(status: &str) -> Reply {
    Reply::json(200, json!({"kind": "compute#operation", "name": "op-1", "operationType": "insert", "status": status}))
}

fn failed_operation(code: &str, message: &str) -> Reply {
    Reply::json(
        200,
        json!({"kind": "compute#operation", "name": "op-1", "status": "DONE",
               "error": {"errors": [{"code": code, "message": message}]},
               "httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE"}),
    )
}

fn google_error(status: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": status, "message": message,
                         "errors": [{"message": message, "domain": "global", "reason": reason}]}}),
    )
}

fn metadata_value(body: &Value, key: &str) -> Option<String> {
    body["metadata"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == key)
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

fn kind(err: &ProviderError) -> &'static str {
    match err {
        ProviderError::Capacity { .. } => "capacity",
        ProviderError::Unauthorized { .. } => "unauthorized",
        ProviderError::Invalid { .. } => "invalid",
        ProviderError::Unavailable { .. } => "unavailable",
        ProviderError::NotFound { .. } => "not found",
    }
}

#[tokio::test]
async fn provision_inserts_a_labelled_instance_with_the_bootstrap_and_waits() {
    let mock = MockApi::start().await;
    mock.on(INSERT, operation("RUNNING"));
    mock.on(WAIT, operation("DONE"));
    let gcp = provider(&mock.url);

    let provisioned = gcp.provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap();
    assert_eq!(
        provisioned,
        Provisioned {
            provider_instance_id: "us-central1-a/bosun-inst-1".into(),
            region: "us-central1".into(),
            zone: "us-central1-a".into()
        }
    );

    let sent = mock.requests_to(INSERT);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer ya29.secret-token"));
    let body = sent[0].json();
    assert_eq!(body["name"], "bosun-inst-1");
    assert_eq!(body["machineType"], "zones/us-central1-a/machineTypes/a3-highgpu-8g");
    assert_eq!(body["labels"], json!({"bosun-instance-id": "inst-1", "bosun-pool": "training", "team": "ml"}));
    assert_eq!(body["scheduling"], json!({"onHostMaintenance": "TERMINATE", "automaticRestart": false}));
    assert_eq!(body["disks"][0]["initializeParams"]["sourceImage"], bosun_config::DEFAULT_GCP_IMAGE);
    assert_eq!(body["disks"][0]["initializeParams"]["diskSizeGb"], "200");
    assert_eq!(body["networkInterfaces"][0]["network"], "global/networks/default");
    assert!(body.get("serviceAccounts").is_none(), "no service account unless configured");
    assert!(metadata_value(&body, "ssh-keys").is_none());
    assert_eq!(body["networkInterfaces"][0]["accessConfigs"][0]["type"], "ONE_TO_ONE_NAT");
    assert_eq!(metadata_value(&body, "bosun-instance-id").as_deref(), Some("inst-1"));
    assert_eq!(metadata_value(&body, "bosun-server-url").as_deref(), Some("https://bosun.example:6443"));
    assert_eq!(metadata_value(&body, "bosun-token").as_deref(), Some("agent-token-123"));
    let script = metadata_value(&body, "startup-script").unwrap();
    assert!(script.contains("md bosun-server-url"), "{script}");
    assert!(script.contains("--provider \"gcp\" --region \"us-central1\" --zone \"us-central1-a\""), "{script}");
    assert!(!script.contains("agent-token-123"), "the token lives in one metadata key only");
    assert_eq!(mock.requests_to(WAIT).len(), 1);
}

/// Every option of the configuration entry reaches `instances.insert`.
#[tokio::test]
async fn configured_options_reach_the_insert() {
    let mock = MockApi::start().await;
    mock.on(INSERT, operation("DONE"));
    let config = gcp_config(&format!(
        "{{type: gcp, project: proj-1, endpoint: '{}', image: projects/my-images/global/images/family/gpu-base, \
         network: research, subnetwork: research-us-central1, \
         service_account: nodes@proj-1.iam.gserviceaccount.com, disk_size_gb: 500}}",
        mock.url
    ));
    let env = |var: &str| (var == TOKEN_ENV).then(|| "ya29.secret-token".to_owned());
    let gcp = GcpProvider::from_config("gcp-main", &config, env).unwrap();
    let mut request = provision_request("inst-1", "a3-highgpu-8g", "", "");
    request.ssh = SshAccess {
        user: "ops".into(),
        keys: vec!["ssh-ed25519 AAAAC3Nza ops@laptop".into(), "alice:ssh-rsa AAAAB3Nza alice".into()],
    };
    gcp.provision(&request).await.unwrap();
    let body = mock.requests_to(INSERT)[0].json();
    let disk = &body["disks"][0]["initializeParams"];
    assert_eq!(disk["sourceImage"], "projects/my-images/global/images/family/gpu-base");
    assert_eq!(disk["diskSizeGb"], "500");
    let interface = &body["networkInterfaces"][0];
    assert_eq!(interface["network"], "global/networks/research", "a bare name is a network of the project");
    assert_eq!(interface["subnetwork"], "regions/us-central1/subnetworks/research-us-central1");
    assert_eq!(
        body["serviceAccounts"],
        json!([{"email": "nodes@proj-1.iam.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}])
    );
    assert_eq!(
        metadata_value(&body, "ssh-keys").as_deref(),
        Some("ops:ssh-ed25519 AAAAC3Nza ops@laptop\nalice:ssh-rsa AAAAB3Nza alice")
    );

    // A pool's image replaces the provider's; partial URLs are sent as written.
    let mock = MockApi::start().await;
    mock.on(INSERT, operation("DONE"));
    let config = gcp_config(&format!(
        "{{type: gcp, project: proj-1, endpoint: '{}', network: projects/shared/global/networks/vpc, \
         subnetwork: projects/shared/regions/us-central1/subnetworks/gpu}}",
        mock.url
    ));
    let gcp = GcpProvider::from_config("gcp-main", &config, env).unwrap();
    let mut request = provision_request("inst-2", "a3-highgpu-8g", "", "");
    request.image = Some("projects/p/global/images/gpu-2026-01".into());
    gcp.provision(&request).await.unwrap();
    let body = mock.requests_to(INSERT)[0].json();
    assert_eq!(body["disks"][0]["initializeParams"]["sourceImage"], "projects/p/global/images/gpu-2026-01");
    assert_eq!(body["networkInterfaces"][0]["network"], "projects/shared/global/networks/vpc");
    assert_eq!(body["networkInterfaces"][0]["subnetwork"], "projects/shared/regions/us-central1/subnetworks/gpu");
}

#[tokio::test]
async fn provision_uses_the_request_zone_and_refuses_another_region() {
    let mock = MockApi::start().await;
    mock.on("POST /projects/proj-1/zones/europe-west4-b/instances", operation("DONE"));
    let gcp = provider(&mock.url);
    let provisioned =
        gcp.provision(&provision_request("inst-1", "a2-highgpu-1g", "europe-west4", "europe-west4-b")).await.unwrap();
    assert_eq!(provisioned.provider_instance_id, "europe-west4-b/bosun-inst-1");
    assert_eq!(provisioned.region, "europe-west4");
    assert!(mock.requests_to(WAIT).is_empty(), "a finished operation needs no wait");

    let err = gcp.provision(&provision_request("inst-2", "a2-highgpu-1g", "us-east1", "")).await.unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    assert!(err.to_string().contains("region us-east1"), "{err}");
    let err = gcp.provision(&provision_request("inst-3", "a2/../x", "", "")).await.unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn stockouts_and_quotas_reported_in_the_operation_are_capacity() {
    for (code, expected) in [
        ("ZONE_RESOURCE_POOL_EXHAUSTED", "capacity"),
        ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "capacity"),
        ("QUOTA_EXCEEDED", "capacity"),
        ("RATE_LIMIT_EXCEEDED", "unavailable"),
        ("INTERNAL_ERROR", "unavailable"),
        ("RESOURCE_NOT_FOUND", "invalid"),
    ] {
        let mock = MockApi::start().await;
        mock.on(INSERT, operation("RUNNING"));
        mock.on(WAIT, failed_operation(code, "The zone does not have enough resources"));
        let err =
            provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
        assert_eq!(kind(&err), expected, "{code}: {err}");
        assert!(err.to_string().contains(code), "{err}");
        assert!(err.to_string().contains("insert a3-highgpu-8g bosun-inst-1 in us-central1-a"), "{err}");
    }
    // An insert that fails at once reports it in the first answer.
    let mock = MockApi::start().await;
    mock.on(INSERT, failed_operation("ZONE_RESOURCE_POOL_EXHAUSTED", "no H100s"));
    let err = provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
    assert_eq!(kind(&err), "capacity", "{err}");
    assert!(mock.requests_to(WAIT).is_empty());
}

#[tokio::test]
async fn a_failed_wait_still_counts_as_accepted() {
    let mock = MockApi::start().await;
    mock.on(INSERT, operation("RUNNING"));
    mock.on(WAIT, google_error(503, "backendError", "Backend Error"));
    let provisioned =
        provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap();
    assert_eq!(provisioned.provider_instance_id, "us-central1-a/bosun-inst-1");
}

#[tokio::test]
async fn insert_errors_map_to_what_the_reconciler_does_next() {
    let cases = [
        (google_error(401, "authError", "Invalid Credentials"), "unauthorized"),
        (google_error(403, "forbidden", "Required 'compute.instances.create' permission"), "unauthorized"),
        (google_error(403, "quotaExceeded", "Quota 'NVIDIA_H100_GPUS' exceeded. Limit: 0.0"), "capacity"),
        (google_error(403, "rateLimitExceeded", "Rate Limit Exceeded"), "unavailable"),
        (google_error(429, "userRateLimitExceeded", "Too many requests"), "unavailable"),
        (google_error(400, "invalid", "Invalid value for field 'resource.name'"), "invalid"),
        (google_error(404, "notFound", "The resource 'machineTypes/a9' was not found"), "invalid"),
        (google_error(500, "backendError", "Internal error"), "unavailable"),
        (google_error(503, "ZONE_RESOURCE_POOL_EXHAUSTED", "stockout"), "capacity"),
        (Reply::text(502, "<html>Bad Gateway</html>"), "unavailable"),
    ];
    for (reply, expected) in cases {
        let mock = MockApi::start().await;
        mock.on(INSERT, reply.clone());
        let err =
            provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
        assert_eq!(kind(&err), expected, "{reply:?}: {err}");
        assert!(err.to_string().starts_with("gcp-main: "), "{err}");
    }
    let mock = MockApi::start().await;
    mock.on(INSERT, google_error(401, "authError", "Invalid Credentials"));
    let err = provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Invalid Credentials (authError)"), "{text}");
    assert!(text.contains(TOKEN_ENV) && text.contains("proj-1"), "{text}");
    assert!(!text.contains("secret-token"), "{text}");
}

#[tokio::test]
async fn a_retried_provision_adopts_its_own_machine_and_refuses_anothers() {
    let existing = |id: &str| {
        Reply::json(
            200,
            json!({"name": "bosun-inst-1", "status": "RUNNING", "zone": "zones/us-central1-a",
                   "metadata": {"items": [{"key": "bosun-instance-id", "value": id}]}}),
        )
    };
    let mock = MockApi::start().await;
    mock.on(INSERT, google_error(409, "alreadyExists", "The resource 'bosun-inst-1' already exists"));
    mock.on("GET /projects/proj-1/zones/us-central1-a/instances/bosun-inst-1", existing("inst-1"));
    let provisioned =
        provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap();
    assert_eq!(provisioned.provider_instance_id, "us-central1-a/bosun-inst-1");

    let mock = MockApi::start().await;
    mock.on(INSERT, google_error(409, "alreadyExists", "exists"));
    mock.on("GET /projects/proj-1/zones/us-central1-a/instances/bosun-inst-1", existing("someone-else"));
    let err = provider(&mock.url).provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn terminate_deletes_by_zone_and_name_and_treats_unknown_as_gone() {
    let mock = MockApi::start().await;
    mock.on("DELETE /projects/proj-1/zones/europe-west4-b/instances/bosun-inst-1", operation("RUNNING"));
    mock.on("DELETE /projects/proj-1/zones/us-central1-a/instances/legacy", google_error(404, "notFound", "not found"));
    mock.on("DELETE /projects/proj-1/zones/us-central1-a/instances/locked", google_error(403, "forbidden", "denied"));
    let gcp = provider(&mock.url);

    gcp.terminate("europe-west4-b/bosun-inst-1").await.unwrap();
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer ya29.secret-token"),
        "every call carries the token"
    );
    gcp.terminate("legacy").await.unwrap();
    let err = gcp.terminate("locked").await.unwrap_err();
    assert_eq!(kind(&err), "unauthorized", "{err}");
    for bad in ["a/b/c", "zone/..", "", "us-central1-a/"] {
        let err = gcp.terminate(bad).await.unwrap_err();
        assert_eq!(kind(&err), "invalid", "{bad}: {err}");
    }
    assert_eq!(mock.requests().len(), 3);
}

fn instance(name: &str, zone: &str, status: &str, labels: Value, metadata_id: Option<&str>) -> Value {
    let items: Vec<Value> =
        metadata_id.map(|id| json!({"key": "bosun-instance-id", "value": id})).into_iter().collect();
    json!({
        "kind": "compute#instance", "id": "123456789", "name": name, "status": status,
        "zone": format!("https://www.googleapis.com/compute/v1/projects/proj-1/zones/{zone}"),
        "machineType": format!("https://www.googleapis.com/compute/v1/projects/proj-1/zones/{zone}/machineTypes/a3-highgpu-8g"),
        "labels": labels,
        "metadata": {"kind": "compute#metadata", "items": items},
    })
}

#[tokio::test]
async fn list_reads_every_zone_and_page_and_maps_ids_and_states() {
    let mock = MockApi::start().await;
    mock.on(
        LIST,
        Reply::json(
            200,
            json!({
                "kind": "compute#instanceAggregatedList",
                "items": {
                    "zones/us-central1-a": {"instances": [
                        instance("bosun-inst-1", "us-central1-a", "PROVISIONING", json!({"bosun-instance-id": "inst-1"}), Some("inst-1")),
                        instance("bosun-inst-2", "us-central1-a", "RUNNING", json!({"bosun-instance-id": "inst-2"}), None),
                    ]},
                    "zones/us-central1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}},
                },
                "nextPageToken": "page-2",
            }),
        ),
    );
    mock.on(
        LIST,
        Reply::json(
            200,
            json!({"items": {"zones/europe-west4-b": {"instances": [
                instance("bosun-pool-a-7-abc", "europe-west4-b", "STOPPING", json!({"bosun-instance-id": "pool-a-7-abcd1234"}), Some("Pool.A:7")),
                instance("hand-made", "europe-west4-b", "TERMINATED", json!({}), None),
                instance("odd", "europe-west4-b", "SUSPENDED", json!({"bosun-instance-id": "x-0123abcd"}), None),
            ]}}}),
        ),
    );
    let listed = provider(&mock.url).list().await.unwrap();
    let summary: Vec<(&str, Option<&str>, ProviderInstanceState, &str)> = listed
        .iter()
        .map(|i| {
            (
                i.provider_instance_id.as_str(),
                i.instance_id.as_ref().map(InstanceId::as_str),
                i.state,
                i.region.as_str(),
            )
        })
        .collect();
    use ProviderInstanceState::*;
    assert_eq!(
        summary,
        [
            ("us-central1-a/bosun-inst-1", Some("inst-1"), Pending, "us-central1"),
            ("us-central1-a/bosun-inst-2", Some("inst-2"), Running, "us-central1"),
            ("europe-west4-b/bosun-pool-a-7-abc", Some("Pool.A:7"), Terminating, "europe-west4"),
            ("europe-west4-b/hand-made", None, Terminated, "europe-west4"),
            // Without the metadata key, the label alone names the instance.
            ("europe-west4-b/odd", Some("x-0123abcd"), Terminated, "europe-west4"),
        ]
    );
    assert_eq!(listed[0].instance_type, "a3-highgpu-8g");
    assert_eq!(listed[0].zone, "us-central1-a");
    assert_eq!(listed[0].ssh_address, None, "no interfaces listed");

    let pages = mock.requests_to(LIST);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].query.as_deref(), Some("maxResults=500"));
    assert_eq!(pages[1].query.as_deref(), Some("maxResults=500&pageToken=page-2"));
}

#[tokio::test]
async fn list_reports_the_nat_ip_else_the_private_ip_for_ssh() {
    let mock = MockApi::start().await;
    let mut public = instance("bosun-a", "us-central1-a", "RUNNING", json!({}), Some("a"));
    public["networkInterfaces"] = json!([{"networkIP": "10.128.0.2",
        "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": "34.1.2.3"}]}]);
    let mut private = instance("bosun-b", "us-central1-a", "RUNNING", json!({}), Some("b"));
    private["networkInterfaces"] = json!([{"networkIP": "10.128.0.3", "accessConfigs": []}]);
    mock.on(LIST, Reply::json(200, json!({"items": {"zones/us-central1-a": {"instances": [public, private]}}})));
    let listed = provider(&mock.url).list().await.unwrap();
    let addresses: Vec<Option<String>> = listed.iter().map(|i| i.ssh_address.map(|a| a.to_string())).collect();
    assert_eq!(addresses, [Some("34.1.2.3:22".to_owned()), Some("10.128.0.3:22".to_owned())]);
}

#[tokio::test]
async fn a_partial_listing_is_an_error_not_a_shorter_list() {
    let mock = MockApi::start().await;
    mock.on(LIST, Reply::json(200, json!({"items": {}, "unreachables": ["zones/us-east1-b"]})));
    let err = provider(&mock.url).list().await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");
    assert!(err.to_string().contains("zones/us-east1-b"), "{err}");

    let mock = MockApi::start().await;
    mock.on(LIST, Reply::json(200, json!({"items": {}, "nextPageToken": "same"})));
    let err = provider(&mock.url).list().await.unwrap_err();
    assert!(err.to_string().contains("repeated a page token"), "{err}");
}

#[tokio::test]
async fn malformed_bodies_and_unreachable_apis_are_unavailable() {
    let mock = MockApi::start().await;
    mock.on(LIST, Reply::json(200, json!({"items": ["not", "a", "map"]})));
    mock.on(INSERT, Reply::text(200, "<html>captive portal</html>"));
    let gcp = provider(&mock.url);
    let err = gcp.list().await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");
    assert!(err.to_string().contains("not the JSON expected"), "{err}");
    let err = gcp.provision(&provision_request("inst-1", "a3-highgpu-8g", "", "")).await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");

    let err = provider(&closed_address().await).list().await.unwrap_err();
    assert_eq!(kind(&err), "unavailable", "{err}");
}

#[tokio::test]
async fn ids_gce_cannot_spell_get_stable_hashed_names_and_round_trip_through_metadata() {
    let mock = MockApi::start().await;
    mock.on(INSERT, operation("DONE"));
    let gcp = provider(&mock.url);
    let provisioned = gcp.provision(&provision_request("Pool.A:7", "a3-highgpu-8g", "", "")).await.unwrap();
    let body = mock.requests_to(INSERT)[0].json();
    let name = body["name"].as_str().unwrap().to_owned();
    assert_eq!(provisioned.provider_instance_id, format!("us-central1-a/{name}"));
    assert!(name.starts_with("bosun-pool-a-7-"), "{name}");
    assert_eq!(metadata_value(&body, "bosun-instance-id").as_deref(), Some("Pool.A:7"));

    mock.on(
        LIST,
        Reply::json(
            200,
            json!({"items": {"zones/us-central1-a": {"instances": [
                instance(&name, "us-central1-a", "RUNNING", body["labels"].clone(), Some("Pool.A:7"))
            ]}}}),
        ),
    );
    let listed = gcp.list().await.unwrap();
    assert_eq!(listed[0].instance_id.as_ref().map(InstanceId::as_str), Some("Pool.A:7"));
}

#[tokio::test]
async fn a_token_file_is_read_on_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first-token\n").unwrap();
    let env = |var: &str| (var == TOKEN_FILE_ENV).then(|| path.display().to_string());
    let mock = MockApi::start().await;
    mock.on(LIST, Reply::json(200, json!({"items": {}})));
    let gcp = GcpProvider::from_config("gcp-main", &config(), env).unwrap().with_base_url(&mock.url).unwrap();

    gcp.list().await.unwrap();
    std::fs::write(&path, "second-token").unwrap();
    gcp.list().await.unwrap();
    let tokens: Vec<Option<String>> =
        mock.requests_to(LIST).iter().map(|r| r.header("authorization").map(str::to_owned)).collect();
    assert_eq!(tokens, [Some("Bearer first-token".to_owned()), Some("Bearer second-token".to_owned())]);

    std::fs::remove_file(&path).unwrap();
    let err = gcp.list().await.unwrap_err();
    assert_eq!(kind(&err), "unauthorized", "{err}");
    assert!(err.to_string().contains(TOKEN_FILE_ENV), "{err}");
}

#[test]
fn from_config_reads_the_credential_chain_and_debug_hides_the_token() {
    let gcp = GcpProvider::from_config("gcp-main", &config(), |_| None).unwrap();
    assert!(gcp.credential_source().contains("GCE metadata server"), "{}", gcp.credential_source());
    let err = GcpProvider::from_config("gcp-main", &config(), |var| {
        (var == APPLICATION_CREDENTIALS_ENV).then(|| "/nonexistent/key.json".into())
    })
    .unwrap_err();
    assert_eq!(kind(&err), "unauthorized", "{err}");
    assert!(err.to_string().contains("/nonexistent/key.json (GOOGLE_APPLICATION_CREDENTIALS)"), "{err}");

    let bad_zone = gcp_config("{type: gcp, project: proj-1, zone: us/central}");
    let err = GcpProvider::from_config("x", &bad_zone, |_| Some("t".into())).unwrap_err();
    assert_eq!(kind(&err), "invalid", "{err}");

    let gcp = GcpProvider::from_config("gcp-main", &config(), |_| Some("ya29.secret-token".into())).unwrap();
    let debug = format!("{gcp:?}");
    assert!(!debug.contains("secret-token"), "{debug}");
    assert_eq!(gcp.kind(), ProviderType::Gcp);
}

/// A service-account key from `GOOGLE_APPLICATION_CREDENTIALS` authenticates every call.
#[tokio::test]
async fn a_service_account_key_authenticates_the_calls() {
    let mock = MockApi::start().await;
    mock.on("POST /token", Reply::json(200, json!({"access_token": "ya29.from-jwt", "expires_in": 3600})));
    mock.on(LIST, Reply::json(200, json!({"items": {}})));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    let file = json!({"type": "service_account", "private_key_id": "k1", "client_email": "bosun@proj-1.iam.gserviceaccount.com",
                      "private_key": include_str!("testdata/test-service-account-key.pem"),
                      "token_uri": format!("{}/token", mock.url)});
    std::fs::write(&key, file.to_string()).unwrap();
    let env = |var: &str| (var == APPLICATION_CREDENTIALS_ENV).then(|| key.display().to_string());
    let gcp = GcpProvider::from_config("gcp-main", &config(), env).unwrap().with_base_url(&mock.url).unwrap();
    gcp.list().await.unwrap();
    gcp.list().await.unwrap();
    let auth: Vec<Option<String>> =
        mock.requests_to(LIST).iter().map(|r| r.header("authorization").map(str::to_owned)).collect();
    assert_eq!(auth, [Some("Bearer ya29.from-jwt".to_owned()), Some("Bearer ya29.from-jwt".to_owned())]);
    assert_eq!(mock.requests_to("POST /token").len(), 1, "the token is reused");
}

#[test]
fn names_and_labels_follow_gce_rules() {
    let valid_name = |n: &str| {
        n.len() <= 63
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let ids = ["inst-1", "Pool.A:7", "a-b", "A.b", "x_", "9lives", &"long".repeat(32), "ends-"];
    for id in ids {
        let id: InstanceId = id.parse().unwrap();
        let name = instance_name(&id);
        assert!(valid_name(&name), "{id} -> {name}");
        assert_eq!(name, instance_name(&id), "deterministic");
        assert!(is_label_value(&label_value(id.as_str())), "{id}");
    }
    assert_eq!(instance_name(&"inst-1".parse().unwrap()), "bosun-inst-1");
    assert_eq!(label_value("inst-1"), "inst-1");
    assert_ne!(instance_name(&"A.b".parse().unwrap()), instance_name(&"a-b".parse().unwrap()));
    assert_ne!(label_value("A.b"), label_value("a-b"));
    assert_eq!(region_of("us-central1-a"), "us-central1");
}
