//! The `lambda` provider: Lambda Cloud's REST API v1.
//!
//! - provision: `POST /instance-operations/launch`, one instance, named
//!   `bosun-<instance id>`, with the agent's start script as cloud-init user data. With no
//!   region in the request, the first region (by name) with capacity for the type is used.
//! - terminate: `POST /instance-operations/terminate`; an id Lambda does not know is
//!   already gone, which is success.
//! - list: `GET /instances`; the name maps back to bosun's instance id.
//! - instance types: `GET /instance-types`, with prices and the regions that have capacity.
//!
//! Lambda has no tags we can rely on, so the instance name is the only link back to bosun.
//! The `bosun-` prefix keeps machines someone launched by hand (named `training-box`, say)
//! from reading as bosun instances the reconciler would then adopt or terminate.
//!
//! Credentials: the API key comes from the environment variable named by `api_key_env`
//! (default `LAMBDA_API_KEY`) and is sent as a bearer token, as Lambda recommends.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bosun_config::{LambdaConfig, ProviderType};
use bosun_core::InstanceId;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::{self, Failure, HttpClient, Response, Secret};
use crate::provider::{
    self, InstanceTypeOffer, Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest,
    Provisioned,
};
use crate::startup::{self, Placement, Source};

/// Lambda Cloud's API.
pub const DEFAULT_BASE_URL: &str = "https://cloud.lambdalabs.com/api/v1";
/// Prefix of the names of the instances bosun launches (see the module docs).
pub const NAME_PREFIX: &str = "bosun-";
/// Lambda's limit on an instance name.
const MAX_NAME_LEN: usize = 64;

/// A Lambda Cloud account.
#[derive(Debug)]
pub struct LambdaProvider {
    name: String,
    base_url: Url,
    api_key: Secret,
    /// The variable the key came from, for error messages that say what to fix.
    api_key_env: String,
    /// Key names installed on new machines unless the pool names its own.
    ssh_key_names: Vec<String>,
    file_system_names: Vec<String>,
    http: HttpClient,
}

impl LambdaProvider {
    /// The provider for a `type: lambda` entry of the configuration, reading the API key from
    /// the variable named by `api_key_env` through `env`.
    pub fn from_config(
        name: &str,
        config: &LambdaConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let api_key_env = &config.api_key_env;
        let api_key = env(api_key_env).filter(|key| !key.trim().is_empty()).ok_or_else(|| {
            Failure::Unauthorized.error(
                name,
                format!(
                    "no Lambda Cloud API key: set the environment variable {api_key_env} \
                     (named by providers.{name}.api_key_env)"
                ),
            )
        })?;
        let base_url = http::parse_base_url(name, config.endpoint.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        Ok(Self {
            name: name.to_owned(),
            http: HttpClient::new(name, &base_url)?,
            base_url,
            api_key: Secret::new(api_key.trim()),
            api_key_env: api_key_env.clone(),
            ssh_key_names: config.ssh_key_names.clone(),
            file_system_names: config.file_system_names.clone(),
        })
    }

    /// Where the API key comes from (never the key).
    pub fn credential_source(&self) -> String {
        format!("the API key in {}", self.api_key_env)
    }

    /// Talks to `url` instead of the configured endpoint (tests).
    pub fn with_base_url(mut self, url: &str) -> Result<Self, ProviderError> {
        self.base_url = http::parse_base_url(&self.name, url)?;
        self.http = HttpClient::new(&self.name, &self.base_url)?;
        Ok(self)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Response, ProviderError> {
        let what = format!("{method} {path}");
        let mut request =
            self.http.request(method, http::join(&self.base_url, path)).bearer_auth(self.api_key.expose());
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        tracing::debug!(provider = %self.name, call = %what, "lambda API call");
        self.http.send(request, &what).await
    }

    /// Reads Lambda's `{"error": {"code", "message", "suggestion"}}` into the error the
    /// reconciler acts on.
    fn api_error(&self, what: &str, response: &Response) -> ProviderError {
        let parsed = serde_json::from_slice::<ApiError>(&response.body).ok().map(|e| e.error);
        let (code, mut message) = match &parsed {
            Some(e) => (e.code.as_str(), format!("{} ({})", e.message.trim(), e.code)),
            None => ("", format!("HTTP {}: {}", response.status.as_u16(), response.snippet())),
        };
        if let Some(suggestion) = parsed.as_ref().and_then(|e| e.suggestion.as_deref()).filter(|s| !s.is_empty()) {
            message.push_str("; ");
            message.push_str(suggestion);
        }
        let failure = classify(response.status.as_u16(), code, &message);
        if failure == Failure::Unauthorized {
            message.push_str(&format!("; check the API key in {}", self.api_key_env));
        }
        failure.error(&self.name, format!("{what}: {message}"))
    }

    async fn types(&self) -> Result<BTreeMap<String, TypeEntry>, ProviderError> {
        let what = "GET /instance-types";
        let response = self.call(Method::GET, "/instance-types", None).await?;
        if !response.is_success() {
            return Err(self.api_error(what, &response));
        }
        Ok(response.json::<Data<BTreeMap<String, TypeEntry>>>(&self.name, what)?.data)
    }

    /// The region to launch `instance_type` in when the request names none.
    async fn region_with_capacity(&self, instance_type: &str) -> Result<String, ProviderError> {
        let types = self.types().await?;
        let entry = types.get(instance_type).ok_or_else(|| {
            Failure::Invalid.error(&self.name, format!("Lambda Cloud offers no instance type {instance_type:?}"))
        })?;
        let mut regions: Vec<&str> = entry.regions_with_capacity_available.iter().map(|r| r.name.as_str()).collect();
        regions.sort_unstable();
        regions.first().map(|r| (*r).to_owned()).ok_or_else(|| {
            Failure::Capacity.error(&self.name, format!("no region has capacity for {instance_type} now"))
        })
    }
}

/// What an error status and Lambda error code mean for the reconciler.
fn classify(status: u16, code: &str, message: &str) -> Failure {
    if matches!(status, 401 | 403) || code.contains("invalid-api-key") || code.contains("account-inactive") {
        return Failure::Unauthorized;
    }
    // Capacity is judged before the status: Lambda has answered "no capacity" with 400,
    // 409 and 5xx statuses, and a quota is a capacity limit too (another provider may fit).
    if code.contains("insufficient-capacity")
        || code.contains("quota-exceeded")
        || message.to_ascii_lowercase().contains("capacity")
    {
        return Failure::Capacity;
    }
    // Lambda's documented prefix for failures of its upstream providers (outages).
    if code.starts_with("provider/") {
        return Failure::Unavailable;
    }
    Failure::from_status(reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY))
}

fn is_gone(status: u16, code: &str) -> bool {
    status == 404 || code.contains("object-does-not-exist") || code.contains("not-found")
}

/// The instance name bosun gives `id`.
pub fn instance_name(id: &InstanceId) -> String {
    format!("{NAME_PREFIX}{id}")
}

fn instance_id_from_name(name: Option<&str>) -> Option<InstanceId> {
    name?.strip_prefix(NAME_PREFIX)?.parse().ok()
}

fn state(status: &str) -> ProviderInstanceState {
    match status {
        "booting" => ProviderInstanceState::Pending,
        // An unhealthy machine still exists and bills; bosun's own health checks judge it.
        "active" | "unhealthy" => ProviderInstanceState::Running,
        "terminating" => ProviderInstanceState::Terminating,
        "terminated" | "preempted" => ProviderInstanceState::Terminated,
        other => {
            tracing::debug!(status = other, "unknown Lambda instance status; reading it as pending");
            ProviderInstanceState::Pending
        }
    }
}

/// `gpu_8x_h100_sxm5` -> 8, for entries without specs.
fn gpus_from_type_name(name: &str) -> u32 {
    name.strip_prefix("gpu_").and_then(|rest| rest.split_once("x_")).and_then(|(n, _)| n.parse().ok()).unwrap_or(0)
}

#[async_trait]
impl Provider for LambdaProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Lambda
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let name = instance_name(&request.instance_id);
        if name.len() > MAX_NAME_LEN {
            return Err(Failure::Invalid.error(
                &self.name,
                format!(
                    "instance id {} is too long for a Lambda instance name ({} characters at most after {NAME_PREFIX:?})",
                    request.instance_id,
                    MAX_NAME_LEN - NAME_PREFIX.len()
                ),
            ));
        }
        let region = match request.region.as_str() {
            "" => self.region_with_capacity(&request.instance_type).await?,
            region => region.to_owned(),
        };
        let placement = Placement { provider: ProviderType::Lambda, region: &region, zone: "" };
        let body = LaunchRequest {
            region_name: &region,
            instance_type_name: &request.instance_type,
            // The pool's keys, else the provider's; Lambda requires one.
            ssh_key_names: if request.ssh.keys.is_empty() { &self.ssh_key_names } else { &request.ssh.keys },
            file_system_names: &self.file_system_names,
            quantity: 1,
            name,
            user_data: startup::agent_script(request, placement, Source::Embedded),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| Failure::Invalid.error(&self.name, format!("cannot encode the launch request: {e}")))?;
        let what = format!("launch {} in {region}", request.instance_type);
        let response = self.call(Method::POST, "/instance-operations/launch", Some(body)).await?;
        if !response.is_success() {
            return Err(self.api_error(&what, &response));
        }
        let launched = response.json::<Data<Launched>>(&self.name, &what)?.data;
        let id = launched.instance_ids.into_iter().next().ok_or_else(|| {
            // Lambda accepted the call; if a machine was made anyway, list() finds it by name.
            Failure::Unavailable.error(&self.name, format!("{what}: Lambda returned no instance id"))
        })?;
        Ok(Provisioned { provider_instance_id: id, region, zone: String::new() })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let body = serde_json::to_vec(&TerminateRequest { instance_ids: [provider_instance_id] })
            .map_err(|e| Failure::Invalid.error(&self.name, format!("cannot encode the terminate request: {e}")))?;
        let what = format!("terminate {provider_instance_id}");
        let response = self.call(Method::POST, "/instance-operations/terminate", Some(body)).await?;
        if response.is_success() {
            return Ok(());
        }
        let code = serde_json::from_slice::<ApiError>(&response.body).map(|e| e.error.code).unwrap_or_default();
        if is_gone(response.status.as_u16(), &code) {
            tracing::debug!(provider = %self.name, id = provider_instance_id, "Lambda instance already gone");
            return Ok(());
        }
        Err(self.api_error(&what, &response))
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        let what = "GET /instances";
        let response = self.call(Method::GET, "/instances", None).await?;
        if !response.is_success() {
            return Err(self.api_error(what, &response));
        }
        let instances = response.json::<Data<Vec<Instance>>>(&self.name, what)?.data;
        Ok(instances
            .into_iter()
            .map(|i| ProviderInstance {
                instance_id: instance_id_from_name(i.name.as_deref()),
                state: state(&i.status),
                instance_type: i.instance_type.map(|t| t.name).unwrap_or_default(),
                region: i.region.map(|r| r.name).unwrap_or_default(),
                zone: String::new(),
                ssh_address: provider::ssh_address(i.ip.as_deref(), i.private_ip.as_deref()),
                provider_instance_id: i.id,
            })
            .collect())
    }

    async fn instance_types(&self) -> Result<Vec<InstanceTypeOffer>, ProviderError> {
        Ok(self
            .types()
            .await?
            .into_iter()
            .map(|(key, entry)| {
                let info = entry.instance_type;
                let name = if info.name.is_empty() { key } else { info.name };
                let gpu_count =
                    info.specs.map(|s| s.gpus).filter(|n| *n > 0).unwrap_or_else(|| gpus_from_type_name(&name));
                let gpu_model = if info.gpu_description.is_empty() { info.description } else { info.gpu_description };
                let mut regions: Vec<String> =
                    entry.regions_with_capacity_available.into_iter().map(|r| r.name).collect();
                regions.sort_unstable();
                InstanceTypeOffer {
                    name,
                    gpu_count,
                    gpu_model,
                    // Lambda prices in cents per hour, inside `instance_type` (Navarch read it
                    // from the entry's top level and so never saw a price).
                    price_per_hour: info.price_cents_per_hour.map(|cents| cents / 100.0),
                    regions_with_capacity: regions,
                }
            })
            .collect())
    }
}

#[derive(Serialize)]
struct LaunchRequest<'a> {
    region_name: &'a str,
    instance_type_name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ssh_key_names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    file_system_names: &'a [String],
    quantity: u32,
    name: String,
    user_data: String,
}

#[derive(Serialize)]
struct TerminateRequest<'a> {
    instance_ids: [&'a str; 1],
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Launched {
    instance_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Instance {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    region: Option<Named>,
    #[serde(default)]
    instance_type: Option<Named>,
    /// Public IPv4, once the machine has one.
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    private_ip: Option<String>,
}

#[derive(Deserialize)]
struct TypeEntry {
    instance_type: TypeInfo,
    #[serde(default)]
    regions_with_capacity_available: Vec<Named>,
}

#[derive(Deserialize)]
struct TypeInfo {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    gpu_description: String,
    #[serde(default)]
    price_cents_per_hour: Option<f64>,
    #[serde(default)]
    specs: Option<Specs>,
}

#[derive(Deserialize)]
struct Specs {
    #[serde(default)]
    gpus: u32,
}

#[derive(Deserialize)]
struct ApiError {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    suggestion: Option<String>,
}

#[cfg(test)]
mod tests;
