//! The `gcp` provider: Compute Engine's REST API (v1).
//!
//! - provision: `instances.insert` in the request's zone (or the configured one), then one
//!   `zoneOperations.wait`: GCE accepts an insert at once and reports a stock-out
//!   (`ZONE_RESOURCE_POOL_EXHAUSTED`) or quota failure only in the finished operation, and
//!   those must reach the reconciler as [`ProviderError::Capacity`] so it tries elsewhere.
//!   The instance carries the label `bosun-instance-id`, and its metadata carries the exact
//!   instance id, the bootstrap (`bosun-server-url`, `bosun-token`) and a `startup-script`
//!   that starts the agent with them.
//! - terminate: `instances.delete`; provider ids are `ZONE/NAME` (a bare name means the
//!   configured zone); an instance GCE does not know is already gone.
//! - list: `instances.aggregatedList` over every zone of the project, every page. A listing
//!   with unreachable zones is an error, not a shorter list: the reconciler would otherwise
//!   mark the machines in those zones terminated.
//!
//! Credentials: an access token (`GOOGLE_OAUTH_ACCESS_TOKEN`, or a file a refresher keeps
//! current), Application Default Credentials (a service-account key or gcloud's user
//! credentials), or the GCE metadata server, in that order (the `credentials` module).
//!
//! Machine types must come with their GPUs attached (A2, A3, A4, G2 families); N1 with
//! `guestAccelerators` is not supported.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bosun_config::{GcpConfig, ProviderType};
use bosun_core::InstanceId;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use self::credentials::GcpCredentials;
pub use self::credentials::{APPLICATION_CREDENTIALS_ENV, TOKEN_ENV, TOKEN_FILE_ENV};
use crate::http::{self, Failure, HttpClient, Response};
use crate::provider::{
    self, Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest, Provisioned, SshAccess,
};
use crate::startup::{self, Placement, Source};

/// Compute Engine's API.
pub const DEFAULT_BASE_URL: &str = "https://compute.googleapis.com/compute/v1";
/// The label (and metadata key) carrying bosun's instance id.
pub const LABEL_INSTANCE_ID: &str = "bosun-instance-id";
const LABEL_POOL: &str = "bosun-pool";
/// The scope a machine's service account gets: what it may do is then decided by its
/// IAM roles alone, as Google recommends.
const MACHINE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `zoneOperations.wait` answers when the operation is done or after about two minutes.
const OPERATION_WAIT: Duration = Duration::from_secs(130);
/// Pages of `aggregatedList` read at most (500 instances each): a guard against an API
/// that keeps returning page tokens.
const MAX_PAGES: usize = 200;

/// How new machines are built: the provider's options from its configuration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GceOptions {
    /// Boot image or image family, as a partial URL (`projects/P/global/images/family/F`);
    /// a pool's `image` replaces it.
    image: String,
    boot_disk_gb: u32,
    /// `pd-balanced` suits A2, A3 High/Mega and G2; A3 Ultra and A4 take only Hyperdisk
    /// (`hyperdisk-balanced`).
    boot_disk_type: String,
    /// The VPC network: a name or a partial URL.
    network: String,
    /// The subnetwork (required for custom-mode networks): a name or a partial URL.
    subnetwork: Option<String>,
    /// The service account machines run as.
    service_account: Option<String>,
    /// Whether machines get an ephemeral public IP (the default network has no NAT).
    external_ip: bool,
}

impl GceOptions {
    fn from_config(config: &GcpConfig) -> Self {
        Self {
            image: config.image.clone(),
            boot_disk_gb: config.disk_size_gb,
            boot_disk_type: "pd-balanced".to_owned(),
            network: config.network.clone(),
            subnetwork: config.subnetwork.clone(),
            service_account: config.service_account.clone(),
            external_ip: true,
        }
    }

    /// The network as the API wants it: a bare name is a global network of the project.
    fn network_url(&self) -> String {
        if self.network.contains('/') { self.network.clone() } else { format!("global/networks/{}", self.network) }
    }

    /// The subnetwork as the API wants it: a bare name is one of the machine's region.
    fn subnetwork_url(&self, region: &str) -> Option<String> {
        self.subnetwork.as_ref().map(|subnetwork| {
            if subnetwork.contains('/') {
                subnetwork.clone()
            } else {
                format!("regions/{region}/subnetworks/{subnetwork}")
            }
        })
    }
}

/// One Google Cloud project, provisioning in one default zone.
#[derive(Debug)]
pub struct GcpProvider {
    name: String,
    project: String,
    zone: String,
    base_url: Url,
    credentials: GcpCredentials,
    options: GceOptions,
    http: HttpClient,
}

impl GcpProvider {
    fn build(name: &str, config: &GcpConfig, credentials: GcpCredentials) -> Result<Self, ProviderError> {
        for (what, value) in [("project", &config.project), ("zone", &config.zone)] {
            if !http::is_path_segment(value) {
                return Err(Failure::Invalid.error(name, format!("{value:?} is not a valid GCP {what}")));
            }
        }
        let base_url = http::parse_base_url(name, config.endpoint.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        Ok(Self {
            name: name.to_owned(),
            project: config.project.clone(),
            zone: config.zone.clone(),
            http: HttpClient::new(name, &base_url)?,
            base_url,
            credentials,
            options: GceOptions::from_config(config),
        })
    }

    /// The provider for a `type: gcp` entry of the configuration; credentials come from
    /// the chain of the `credentials` module, read through `env`.
    pub fn from_config(
        name: &str,
        config: &GcpConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        Self::build(name, config, GcpCredentials::resolve(name, &env)?)
    }

    /// Where the access tokens come from, in words (never the secret).
    pub fn credential_source(&self) -> String {
        self.credentials.describe()
    }

    /// Talks to `url` instead of the configured endpoint (tests).
    pub fn with_base_url(mut self, url: &str) -> Result<Self, ProviderError> {
        self.base_url = http::parse_base_url(&self.name, url)?;
        self.http = HttpClient::new(&self.name, &self.base_url)?;
        Ok(self)
    }

    /// Calls `path` under `projects/{project}`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<Response, ProviderError> {
        let what = format!("{method} {path}");
        let mut url = http::join(&self.base_url, &format!("/projects/{}{path}", self.project));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let token = self.credentials.token().await?;
        let mut request = self.http.request(method, url).bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        tracing::debug!(provider = %self.name, call = %what, "GCE API call");
        self.http.send(request, &what).await
    }

    /// Reads Google's `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`.
    fn api_error(&self, what: &str, response: &Response) -> ProviderError {
        let status = response.status.as_u16();
        let (failure, mut message) = match serde_json::from_slice::<GoogleError>(&response.body) {
            Ok(GoogleError { error }) => {
                let mut reasons: Vec<&str> = error.errors.iter().map(|e| e.reason.as_str()).collect();
                reasons.retain(|r| !r.is_empty());
                let failure = classify(status, &reasons);
                let label = if reasons.is_empty() { error.status.clone() } else { reasons.join(", ") };
                let message = match label.as_str() {
                    "" => error.message.trim().to_owned(),
                    label => format!("{} ({label})", error.message.trim()),
                };
                (failure, message)
            }
            Err(_) => (classify(status, &[]), format!("HTTP {status}: {}", response.snippet())),
        };
        if failure == Failure::Unauthorized {
            message.push_str(&format!(
                "; check that the credentials ({}) are current and may manage instances in project {}",
                self.credentials.describe(),
                self.project
            ));
        }
        failure.error(&self.name, format!("{what}: {message}"))
    }

    /// The error a finished operation reports, if any.
    fn operation_error(&self, what: &str, operation: &Operation) -> Option<ProviderError> {
        let errors = &operation.error.as_ref()?.errors;
        if errors.is_empty() {
            return None;
        }
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        let failure = if codes.iter().any(|c| is_capacity(c)) {
            Failure::Capacity
        } else if codes.iter().any(|c| is_rate_limit(c) || matches!(*c, "INTERNAL_ERROR" | "SERVICE_UNAVAILABLE")) {
            Failure::Unavailable
        } else if codes.iter().any(|c| c.contains("PERMISSION")) {
            Failure::Unauthorized
        } else {
            Failure::Invalid
        };
        let message: Vec<String> = errors.iter().map(|e| format!("{} ({})", e.message.trim(), e.code)).collect();
        Some(failure.error(&self.name, format!("{what}: {}", message.join("; "))))
    }

    /// Waits (once, bounded) for an insert to finish, so failures GCE reports only in the
    /// operation reach the caller.
    async fn settle(&self, zone: &str, operation: Operation, what: &str) -> Result<(), ProviderError> {
        if let Some(error) = self.operation_error(what, &operation) {
            return Err(error);
        }
        if operation.status == "DONE" || !http::is_path_segment(&operation.name) {
            return Ok(());
        }
        let path = format!("/zones/{zone}/operations/{}/wait", operation.name);
        let outcome = self.call(Method::POST, &path, &[], None, Some(OPERATION_WAIT)).await;
        let finished = match outcome {
            Ok(response) if response.is_success() => response.json::<Operation>(&self.name, what),
            Ok(response) => Err(self.api_error(what, &response)),
            Err(error) => Err(error),
        };
        match finished {
            Ok(operation) => self.operation_error(what, &operation).map_or(Ok(()), Err),
            // GCE accepted the insert; whether it completes is seen in list(), and the
            // reconciler's provisioning timeout covers a machine that never appears.
            Err(error) => {
                tracing::warn!(provider = %self.name, %error, "could not wait for the GCE insert; assuming accepted");
                Ok(())
            }
        }
    }

    /// The answer to an insert that GCE refused because the name exists: success when the
    /// existing machine is this very instance (a retried provision), else an error.
    async fn existing(&self, zone: &str, name: &str, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let what = format!("GET instance {zone}/{name}");
        let response = self.call(Method::GET, &format!("/zones/{zone}/instances/{name}"), &[], None, None).await?;
        if !response.is_success() {
            return Err(self.api_error(&what, &response));
        }
        let instance = response.json::<Instance>(&self.name, &what)?;
        if instance.bosun_id().as_ref() == Some(&request.instance_id) {
            return Ok(Provisioned {
                provider_instance_id: format!("{zone}/{name}"),
                region: region_of(zone).to_owned(),
                zone: zone.to_owned(),
            });
        }
        Err(Failure::Invalid.error(
            &self.name,
            format!(
                "an instance named {name} already exists in {zone} and is not bosun instance {}",
                request.instance_id
            ),
        ))
    }

    fn insert_body(&self, request: &ProvisionRequest, name: &str, zone: &str) -> serde_json::Value {
        let mut labels = BTreeMap::new();
        for (key, value) in request.labels.iter() {
            if is_label_key(key) && is_label_value(value) {
                labels.insert(key.to_owned(), value.to_owned());
            } else {
                tracing::debug!(provider = %self.name, key, "label not valid on GCE; not copied to the instance");
            }
        }
        labels.insert(LABEL_INSTANCE_ID.to_owned(), label_value(request.instance_id.as_str()));
        if let Some(pool) = &request.pool {
            labels.insert(LABEL_POOL.to_owned(), label_value(pool.as_str()));
        }
        let placement = Placement { provider: ProviderType::Gcp, region: region_of(zone), zone };
        let mut metadata = vec![
            json!({"key": startup::META_INSTANCE_ID, "value": request.instance_id.as_str()}),
            json!({"key": startup::META_SERVER_URL, "value": request.bootstrap.server_url}),
            json!({"key": "startup-script", "value": startup::agent_script(request, placement, Source::GceMetadata)}),
            // Deep Learning VM images install the driver on first boot when asked.
            json!({"key": "install-nvidia-driver", "value": "True"}),
        ];
        if let Some(token) = &request.bootstrap.token {
            metadata.push(json!({"key": startup::META_TOKEN, "value": token}));
        }
        if !request.ssh.keys.is_empty() {
            metadata.push(json!({"key": "ssh-keys", "value": ssh_keys_metadata(&request.ssh)}));
        }
        let options = &self.options;
        let mut interface = json!({"network": options.network_url()});
        if let Some(subnetwork) = options.subnetwork_url(region_of(zone)) {
            interface["subnetwork"] = json!(subnetwork);
        }
        if options.external_ip {
            interface["accessConfigs"] = json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]);
        }
        let image = request.image.as_ref().unwrap_or(&options.image);
        let mut body = json!({
            "name": name,
            "machineType": format!("zones/{zone}/machineTypes/{}", request.instance_type),
            "labels": labels,
            "metadata": {"items": metadata},
            "disks": [{
                "boot": true,
                "autoDelete": true,
                "initializeParams": {
                    "sourceImage": image,
                    "diskSizeGb": options.boot_disk_gb.to_string(),
                    "diskType": format!("zones/{zone}/diskTypes/{}", options.boot_disk_type),
                },
            }],
            "networkInterfaces": [interface],
            // GPU machines cannot live-migrate; and a machine that stops should stay
            // stopped, so the reconciler replaces it rather than GCE restarting it unseen.
            "scheduling": {"onHostMaintenance": "TERMINATE", "automaticRestart": false},
        });
        if let Some(account) = &options.service_account {
            body["serviceAccounts"] = json!([{"email": account, "scopes": [MACHINE_SCOPE]}]);
        }
        body
    }
}

/// GCE's `ssh-keys` metadata: one `USER:PUBLIC-KEY` line per key. A public key
/// (`ssh-ed25519 AAAA...`) gets the pool's user; a line already written as
/// `user:ssh-...` keeps its own.
fn ssh_keys_metadata(ssh: &SshAccess) -> String {
    const KEY_TYPES: [&str; 3] = ["ssh-", "ecdsa-", "sk-"];
    let lines: Vec<String> = ssh
        .keys
        .iter()
        .map(|key| key.trim())
        .map(|key| {
            if KEY_TYPES.iter().any(|prefix| key.starts_with(prefix)) {
                format!("{}:{key}", ssh.user)
            } else {
                key.to_owned()
            }
        })
        .collect();
    lines.join("\n")
}

fn is_capacity(code: &str) -> bool {
    let code = normalize(code);
    code.contains("RESOURCEPOOLEXHAUSTED") || code.contains("QUOTAEXCEEDED") || code == "RESOURCEEXHAUSTEDSTOCKOUT"
}

fn is_rate_limit(code: &str) -> bool {
    normalize(code).contains("RATELIMITEXCEEDED")
}

/// `quotaExceeded`, `QUOTA_EXCEEDED` -> `QUOTAEXCEEDED`: GCE spells codes both ways.
fn normalize(code: &str) -> String {
    code.chars().filter(|c| *c != '_').map(|c| c.to_ascii_uppercase()).collect()
}

fn classify(status: u16, reasons: &[&str]) -> Failure {
    if reasons.iter().any(|r| is_capacity(r)) {
        Failure::Capacity
    } else if reasons.iter().any(|r| is_rate_limit(r)) {
        Failure::Unavailable
    } else {
        Failure::from_status(reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY))
    }
}

/// `us-central1-a` -> `us-central1`.
fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(region, _)| region)
}

/// The last segment of a resource URL (`.../zones/us-central1-a` -> `us-central1-a`).
fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn short_hash(value: &str) -> String {
    http::hex(&Sha256::digest(value.as_bytes()))[..8].to_owned()
}

/// `value` made into a GCE label value (`[a-z0-9_-]{0,63}`): unchanged when it already is
/// one; otherwise lowercased, cleaned and suffixed with a hash of the original, so two ids
/// that clean to the same text still get different labels.
fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_owned();
    }
    let mut clean: String = value
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
        .collect();
    clean.truncate(54);
    format!("{clean}-{}", short_hash(value))
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63 && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_label_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase()) && is_label_value(key)
}

/// The GCE instance name bosun gives `id`: `bosun-<id>` when `id` fits GCE's rules
/// (`[a-z]([-a-z0-9]{0,61}[a-z0-9])?`), else a cleaned, hash-suffixed form. The name is
/// deterministic, so a retried provision finds the machine its first attempt made.
pub fn instance_name(id: &InstanceId) -> String {
    let id = id.as_str();
    let fits = id.len() <= 57
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-');
    if fits {
        return format!("bosun-{id}");
    }
    let mut clean: String =
        id.chars().map(|c| c.to_ascii_lowercase()).map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    clean.truncate(48);
    format!("bosun-{clean}-{}", short_hash(id))
}

fn state(status: &str) -> ProviderInstanceState {
    match status {
        "PROVISIONING" | "STAGING" | "REPAIRING" => ProviderInstanceState::Pending,
        "RUNNING" => ProviderInstanceState::Running,
        "STOPPING" | "SUSPENDING" | "PENDING_STOP" => ProviderInstanceState::Terminating,
        // A stopped GCE machine still exists (its disk bills) but runs nothing; terminate()
        // deletes it.
        "TERMINATED" | "STOPPED" | "SUSPENDED" => ProviderInstanceState::Terminated,
        other => {
            tracing::debug!(status = other, "unknown GCE instance status; reading it as pending");
            ProviderInstanceState::Pending
        }
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Gcp
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let zone = if request.zone.is_empty() { self.zone.as_str() } else { request.zone.as_str() };
        let invalid = |message: String| Failure::Invalid.error(&self.name, message);
        if !http::is_path_segment(zone) {
            return Err(invalid(format!("{zone:?} is not a GCP zone")));
        }
        if !request.region.is_empty() && request.region != region_of(zone) {
            return Err(invalid(format!(
                "the request asks for region {} but would provision in zone {zone} ({}); name a zone of {} in the \
                 pool, or configure a gcp provider whose zone is there",
                request.region,
                region_of(zone),
                request.region
            )));
        }
        if !http::is_path_segment(&request.instance_type) {
            return Err(invalid(format!("{:?} is not a GCE machine type", request.instance_type)));
        }
        let name = instance_name(&request.instance_id);
        let what = format!("insert {} {name} in {zone}", request.instance_type);
        let body = self.insert_body(request, &name, zone);
        let response = self.call(Method::POST, &format!("/zones/{zone}/instances"), &[], Some(body), None).await?;
        if response.status == reqwest::StatusCode::CONFLICT {
            return self.existing(zone, &name, request).await;
        }
        if !response.is_success() {
            return Err(self.api_error(&what, &response));
        }
        let operation = response.json::<Operation>(&self.name, &what)?;
        self.settle(zone, operation, &what).await?;
        Ok(Provisioned {
            provider_instance_id: format!("{zone}/{name}"),
            region: region_of(zone).to_owned(),
            zone: zone.to_owned(),
        })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let (zone, name) = provider_instance_id.split_once('/').unwrap_or((&self.zone, provider_instance_id));
        if !http::is_path_segment(zone) || !http::is_path_segment(name) {
            return Err(Failure::Invalid
                .error(&self.name, format!("{provider_instance_id:?} is not a GCE instance id (ZONE/NAME)")));
        }
        let what = format!("delete {zone}/{name}");
        let response = self.call(Method::DELETE, &format!("/zones/{zone}/instances/{name}"), &[], None, None).await?;
        if response.status == reqwest::StatusCode::NOT_FOUND {
            tracing::debug!(provider = %self.name, id = provider_instance_id, "GCE instance already gone");
            return Ok(());
        }
        if !response.is_success() {
            return Err(self.api_error(&what, &response));
        }
        // Deletion proceeds in GCE; list() shows STOPPING, then the machine disappears.
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        let what = "list instances";
        let mut instances = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("maxResults", "500")];
            if let Some(token) = &page_token {
                query.push(("pageToken", token));
            }
            let response = self.call(Method::GET, "/aggregated/instances", &query, None, None).await?;
            if !response.is_success() {
                return Err(self.api_error(what, &response));
            }
            let page = response.json::<AggregatedList>(&self.name, what)?;
            if !page.unreachables.is_empty() {
                return Err(Failure::Unavailable.error(
                    &self.name,
                    format!(
                        "{what}: GCE could not list {} (an incomplete list would make their machines look gone)",
                        page.unreachables.join(", ")
                    ),
                ));
            }
            for scoped in page.items.into_values() {
                for instance in scoped.instances {
                    let zone = last_segment(&instance.zone).to_owned();
                    instances.push(ProviderInstance {
                        ssh_address: instance.ssh_address(),
                        instance_id: instance.bosun_id(),
                        state: state(&instance.status),
                        instance_type: last_segment(&instance.machine_type).to_owned(),
                        region: region_of(&zone).to_owned(),
                        provider_instance_id: format!("{zone}/{}", instance.name),
                        zone,
                    });
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if page_token.as_deref() == Some(next.as_str()) => {
                    return Err(Failure::Unavailable.error(&self.name, format!("{what}: GCE repeated a page token")));
                }
                Some(next) => page_token = Some(next),
                None => return Ok(instances),
            }
        }
        Err(Failure::Unavailable.error(&self.name, format!("{what}: more than {MAX_PAGES} pages")))
    }
}

#[derive(Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    errors: Vec<GoogleErrorItem>,
}

#[derive(Deserialize)]
struct GoogleErrorItem {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct Operation {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<OperationErrors>,
}

#[derive(Deserialize)]
struct OperationErrors {
    #[serde(default)]
    errors: Vec<OperationError>,
}

#[derive(Deserialize)]
struct OperationError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregatedList {
    #[serde(default)]
    items: BTreeMap<String, ScopedList>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    unreachables: Vec<String>,
}

#[derive(Deserialize)]
struct ScopedList {
    #[serde(default)]
    instances: Vec<Instance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    machine_type: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    network_interfaces: Vec<NetworkInterface>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInterface {
    /// The private IP.
    #[serde(default, rename = "networkIP")]
    network_ip: Option<String>,
    #[serde(default)]
    access_configs: Vec<AccessConfig>,
}

#[derive(Deserialize)]
struct AccessConfig {
    /// The public IP of a ONE_TO_ONE_NAT access config.
    #[serde(default, rename = "natIP")]
    nat_ip: Option<String>,
}

impl Instance {
    /// The first interface's public IP, else its private one.
    fn ssh_address(&self) -> Option<std::net::SocketAddr> {
        let interface = self.network_interfaces.first()?;
        let public = interface.access_configs.iter().find_map(|c| c.nat_ip.as_deref());
        provider::ssh_address(public, interface.network_ip.as_deref())
    }

    /// bosun's instance id: exact from the metadata; from the label when the metadata was
    /// stripped and the label holds the id unchanged.
    fn bosun_id(&self) -> Option<InstanceId> {
        let from_metadata = self
            .metadata
            .as_ref()
            .and_then(|m| m.items.iter().find(|i| i.key == startup::META_INSTANCE_ID))
            .and_then(|i| i.value.as_deref())
            .and_then(|v| v.parse().ok());
        from_metadata.or_else(|| {
            let label = self.labels.get(LABEL_INSTANCE_ID)?;
            let id: InstanceId = label.parse().ok()?;
            (label_value(id.as_str()) == *label).then_some(id)
        })
    }
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    items: Vec<MetadataItem>,
}

#[derive(Deserialize)]
struct MetadataItem {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

mod credentials;
#[cfg(test)]
mod tests;
