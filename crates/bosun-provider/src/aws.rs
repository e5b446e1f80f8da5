//! The `aws` provider: EC2's Query API (form-encoded POSTs, XML answers), signed with
//! SigV4 (the `sigv4` module).
//!
//! - provision: `RunInstances` of one instance, tagged `bosun-instance-id`, `bosun-pool`,
//!   `Name` and the request's labels (instance and volumes), with the agent's start script
//!   as user data. The instance id is also the `ClientToken`, so EC2 itself makes a retried
//!   provision idempotent. Instances terminate (not stop) on shutdown and require IMDSv2.
//! - terminate: `TerminateInstances`; an id EC2 does not know is already gone.
//! - list: `DescribeInstances`, every page; the tag maps back to bosun's instance id.
//!
//! One provider serves one region: EC2 endpoints and signatures are per region.
//!
//! Credentials: the environment, a shared profile's static keys, or the instance role
//! through IMDSv2, in the AWS SDKs' order (the `credentials` module). The region: the
//! configured one, else `AWS_REGION`, `AWS_DEFAULT_REGION`, or the profile's `region`.
//!
//! The default image is resolved by EC2 from AWS's public SSM parameter for the Deep
//! Learning Base AMI, which needs `ssm:GetParameters` besides the EC2 permissions.

mod credentials;
mod sigv4;

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use bosun_config::{AwsConfig, ProviderType};
use bosun_core::InstanceId;
use chrono::Utc;
use reqwest::Method;
use roxmltree::{Document, Node};
use sha2::{Digest, Sha256};
use url::Url;

use self::credentials::AwsCredentials;
pub use self::credentials::{ACCESS_KEY_ENV, PROFILE_ENV, SECRET_KEY_ENV, SESSION_TOKEN_ENV};
use self::sigv4::Signable;
use crate::http::{self, Failure, HttpClient, Response};
use crate::provider::{
    self, Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest, Provisioned,
};
use crate::startup::{self, Placement, Source};

/// The EC2 API version spoken.
pub const API_VERSION: &str = "2016-11-15";
/// The tag carrying bosun's instance id.
pub const TAG_INSTANCE_ID: &str = "bosun-instance-id";
const TAG_POOL: &str = "bosun-pool";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Pages of `DescribeInstances` read at most (1,000 instances each).
const MAX_PAGES: usize = 200;
/// EC2's limit on a `ClientToken`.
const MAX_CLIENT_TOKEN: usize = 64;

/// Capacity and quota errors: another type, zone or provider may still succeed.
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
];
/// Refused credentials or permissions (`RequestExpired`: the server clock is off).
const UNAUTHORIZED_CODES: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "ExpiredToken",
    "RequestExpired",
    "OptInRequired",
    "Blocked",
];
const UNAVAILABLE_CODES: &[&str] =
    &["RequestLimitExceeded", "Throttling", "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"];

/// How new machines are built: the provider's options from its configuration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ec2Options {
    /// An AMI id, or `resolve:ssm:PARAMETER`; a pool's `image` replaces it.
    image_id: String,
    /// An EC2 key pair for SSH; a pool's single `ssh_keys` entry replaces it.
    key_name: Option<String>,
    /// Without one, EC2 uses the default VPC's default subnet of the zone.
    subnet_id: Option<String>,
    security_group_ids: Vec<String>,
    /// An IAM instance profile: an ARN, else a name.
    instance_profile: Option<String>,
    /// Extra tags on every machine and its volumes.
    tags: BTreeMap<String, String>,
}

impl Ec2Options {
    fn from_config(config: &AwsConfig) -> Self {
        Self {
            image_id: config.image_id.clone(),
            key_name: config.key_name.clone(),
            subnet_id: config.subnet_id.clone(),
            security_group_ids: config.security_group_ids.clone(),
            instance_profile: config.instance_profile.clone(),
            tags: config.tags.clone(),
        }
    }
}

/// One AWS account in one region.
#[derive(Debug)]
pub struct AwsProvider {
    name: String,
    region: String,
    endpoint: Url,
    credentials: AwsCredentials,
    options: Ec2Options,
    http: HttpClient,
}

impl AwsProvider {
    /// The provider for a `type: aws` entry of the configuration, reading the region
    /// (when the entry has none) and the credentials through `env`.
    pub fn from_config(
        name: &str,
        config: &AwsConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let set = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let resolved = AwsCredentials::resolve(name, &env)?;
        let region = config
            .region
            .clone()
            .or_else(|| set("AWS_REGION"))
            .or_else(|| set("AWS_DEFAULT_REGION"))
            .or(resolved.profile_region)
            .ok_or_else(|| {
                Failure::Invalid.error(
                    name,
                    format!("no AWS region: set providers.{name}.region, AWS_REGION, or region in the profile"),
                )
            })?;
        if !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(Failure::Invalid.error(name, format!("{region:?} is not an AWS region")));
        }
        let default_endpoint = format!("https://ec2.{region}.amazonaws.com/");
        let endpoint = http::parse_base_url(name, config.endpoint.as_deref().unwrap_or(&default_endpoint))?;
        Ok(Self {
            name: name.to_owned(),
            region,
            http: HttpClient::new(name, &endpoint)?,
            endpoint,
            credentials: resolved.credentials,
            options: Ec2Options::from_config(config),
        })
    }

    /// Where the credentials come from, in words (never the secret).
    pub fn credential_source(&self) -> String {
        self.credentials.describe()
    }

    /// Talks to `url` instead of the configured endpoint (tests). Requests are still
    /// signed for the provider's region.
    pub fn with_base_url(mut self, url: &str) -> Result<Self, ProviderError> {
        self.endpoint = http::parse_base_url(&self.name, url)?;
        self.http = HttpClient::new(&self.name, &self.endpoint)?;
        Ok(self)
    }

    /// Sends one signed Query API call.
    async fn call(&self, action: &str, params: &[(String, String)]) -> Result<Response, ProviderError> {
        // The serializer is not `Send`: it must be gone before the first await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action).append_pair("Version", API_VERSION);
            for (key, value) in params {
                form.append_pair(key, value);
            }
            form.finish()
        };
        let credentials = self.credentials.current().await?;
        let now = Utc::now();
        let amz_date = now.format(sigv4::AMZ_DATE).to_string();
        // reqwest sends the URL's authority as `Host` (the port only when not the
        // scheme's default): the same text is signed.
        let host = match (self.endpoint.host_str(), self.endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let mut headers =
            vec![("content-type", CONTENT_TYPE), ("host", host.as_str()), ("x-amz-date", amz_date.as_str())];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token", token.expose()));
        }
        let signable = Signable {
            method: "POST",
            path: self.endpoint.path(),
            query: &[],
            headers: &headers,
            payload: body.as_bytes(),
        };
        let authorization = sigv4::authorization(&credentials, &self.region, "ec2", &signable, now);

        let mut request = self
            .http
            .request(Method::POST, self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-date", &amz_date)
            .header(reqwest::header::AUTHORIZATION, authorization);
        if let Some(token) = &credentials.session_token {
            request = request.header("x-amz-security-token", token.expose());
        }
        tracing::debug!(provider = %self.name, action, "EC2 API call");
        self.http.send(request.body(body), action).await
    }

    fn api_error(&self, what: &str, response: &Response) -> ProviderError {
        let status = response.status.as_u16();
        let (failure, mut message) = match error_code(&response.body) {
            Some((code, message)) => (classify(status, &code), format!("{} ({code})", message.trim())),
            None => (classify(status, ""), format!("HTTP {status}: {}", response.snippet())),
        };
        if failure == Failure::Unauthorized {
            message.push_str(&format!(
                "; {}, their permissions in {}, and the clock",
                self.credentials.fix_hint(),
                self.region
            ));
        }
        failure.error(&self.name, format!("{what}: {message}"))
    }

    /// Parses a success body as XML.
    fn parse<'a>(&self, what: &str, response: &'a Response) -> Result<Document<'a>, ProviderError> {
        let unexpected = |e: String| {
            Failure::Unavailable.error(&self.name, format!("{what}: the response is not the XML expected: {e}"))
        };
        let text = std::str::from_utf8(&response.body).map_err(|e| unexpected(e.to_string()))?;
        Document::parse(text).map_err(|e| unexpected(e.to_string()))
    }

    fn run_params(&self, request: &ProvisionRequest) -> Vec<(String, String)> {
        let placement = Placement { provider: ProviderType::Aws, region: &self.region, zone: &request.zone };
        let user_data = startup::agent_script(request, placement, Source::Embedded);
        let image = request.image.as_ref().unwrap_or(&self.options.image_id);
        let mut params: Vec<(String, String)> = vec![
            ("ImageId".into(), image.clone()),
            ("InstanceType".into(), request.instance_type.clone()),
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("ClientToken".into(), client_token(&request.instance_id)),
            ("UserData".into(), base64::engine::general_purpose::STANDARD.encode(user_data)),
            // A machine that shuts itself down is gone, not a stopped volume that bills.
            ("InstanceInitiatedShutdownBehavior".into(), "terminate".into()),
            // IMDSv2 only: the user data holds the agent token.
            ("MetadataOptions.HttpTokens".into(), "required".into()),
            ("MetadataOptions.HttpEndpoint".into(), "enabled".into()),
        ];
        if !request.zone.is_empty() {
            params.push(("Placement.AvailabilityZone".into(), request.zone.clone()));
        }
        // The pool's key pair, else the provider's (configuration allows a pool one).
        if let Some(key) = request.ssh.keys.first().or(self.options.key_name.as_ref()) {
            params.push(("KeyName".into(), key.clone()));
        }
        if let Some(profile) = &self.options.instance_profile {
            let field = if profile.starts_with("arn:") { "IamInstanceProfile.Arn" } else { "IamInstanceProfile.Name" };
            params.push((field.into(), profile.clone()));
        }
        if let Some(subnet) = &self.options.subnet_id {
            params.push(("SubnetId".into(), subnet.clone()));
        }
        for (i, group) in self.options.security_group_ids.iter().enumerate() {
            params.push((format!("SecurityGroupId.{}", i + 1), group.clone()));
        }
        let mut tags: Vec<(String, String)> = vec![
            (TAG_INSTANCE_ID.into(), request.instance_id.to_string()),
            ("Name".into(), format!("bosun-{}", request.instance_id)),
        ];
        if let Some(pool) = &request.pool {
            tags.push((TAG_POOL.into(), pool.to_string()));
        }
        // The configured tags (which may rename the machine), then the pool's labels.
        for (key, value) in &self.options.tags {
            match tags.iter_mut().find(|(k, _)| k == key) {
                Some(tag) => tag.1.clone_from(value),
                None => tags.push((key.clone(), value.clone())),
            }
        }
        for (key, value) in request.labels.iter() {
            if !tags.iter().any(|(k, _)| k == key) {
                tags.push((key.to_owned(), value.to_owned()));
            }
        }
        for (spec, resource) in ["instance", "volume"].iter().enumerate() {
            let prefix = format!("TagSpecification.{}", spec + 1);
            params.push((format!("{prefix}.ResourceType"), (*resource).to_owned()));
            for (i, (key, value)) in tags.iter().enumerate() {
                params.push((format!("{prefix}.Tag.{}.Key", i + 1), key.clone()));
                params.push((format!("{prefix}.Tag.{}.Value", i + 1), value.clone()));
            }
        }
        params
    }
}

/// EC2's idempotency token for `id`: the id itself when it fits, else its hash.
fn client_token(id: &InstanceId) -> String {
    if id.as_str().len() <= MAX_CLIENT_TOKEN {
        id.to_string()
    } else {
        http::hex(&Sha256::digest(id.as_str().as_bytes()))
    }
}

fn classify(status: u16, code: &str) -> Failure {
    if CAPACITY_CODES.contains(&code) {
        Failure::Capacity
    } else if UNAUTHORIZED_CODES.contains(&code) {
        Failure::Unauthorized
    } else if UNAVAILABLE_CODES.contains(&code) {
        Failure::Unavailable
    } else {
        Failure::from_status(reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY))
    }
}

/// The code and message of an EC2 error (`<Response><Errors><Error><Code>`), or of the
/// `<ErrorResponse><Error>` form other AWS front ends answer with.
fn error_code(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = Document::parse(text).ok()?;
    let error = doc.descendants().find(|n| n.is_element() && n.tag_name().name() == "Error")?;
    let code = child_text(error, "Code")?.to_owned();
    Some((code, child_text(error, "Message").unwrap_or_default().to_owned()))
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)?.text()
}

/// The `<item>`s of every `<instancesSet>` (one per reservation in DescribeInstances).
fn instance_items<'a, 'i>(doc: &'a Document<'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "instancesSet")
        .flat_map(|set| set.children().filter(|c| c.is_element() && c.tag_name().name() == "item"))
}

fn tag<'a>(instance: Node<'a, '_>, key: &str) -> Option<&'a str> {
    child(instance, "tagSet")?
        .children()
        .filter(|c| c.is_element())
        .find(|item| child_text(*item, "key") == Some(key))
        .and_then(|item| child_text(item, "value"))
}

fn availability_zone<'a>(instance: Node<'a, '_>) -> Option<&'a str> {
    child_text(child(instance, "placement")?, "availabilityZone")
}

fn state(name: &str) -> ProviderInstanceState {
    match name {
        "pending" => ProviderInstanceState::Pending,
        "running" => ProviderInstanceState::Running,
        "shutting-down" | "stopping" => ProviderInstanceState::Terminating,
        // A stopped instance runs nothing (its volumes still bill); terminate() removes it.
        "terminated" | "stopped" => ProviderInstanceState::Terminated,
        other => {
            tracing::debug!(state = other, "unknown EC2 instance state; reading it as pending");
            ProviderInstanceState::Pending
        }
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Aws
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        if !request.region.is_empty() && request.region != self.region {
            return Err(Failure::Invalid.error(
                &self.name,
                format!(
                    "this provider launches in {}, the request asks for {}: configure an aws provider for {}",
                    self.region, request.region, request.region
                ),
            ));
        }
        let what = format!("RunInstances {} in {}", request.instance_type, self.region);
        let response = self.call("RunInstances", &self.run_params(request)).await?;
        if !response.is_success() {
            return Err(self.api_error(&what, &response));
        }
        let doc = self.parse(&what, &response)?;
        let instance = instance_items(&doc).next();
        let Some(id) = instance.and_then(|i| child_text(i, "instanceId")) else {
            return Err(Failure::Unavailable.error(&self.name, format!("{what}: EC2 returned no instance id")));
        };
        let zone = instance.and_then(availability_zone).unwrap_or(&request.zone);
        Ok(Provisioned { provider_instance_id: id.to_owned(), region: self.region.clone(), zone: zone.to_owned() })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let what = format!("TerminateInstances {provider_instance_id}");
        let params = [("InstanceId.1".to_owned(), provider_instance_id.to_owned())];
        let response = self.call("TerminateInstances", &params).await?;
        if response.is_success() {
            return Ok(());
        }
        if error_code(&response.body).is_some_and(|(code, _)| code == "InvalidInstanceID.NotFound") {
            tracing::debug!(provider = %self.name, id = provider_instance_id, "EC2 instance already gone");
            return Ok(());
        }
        Err(self.api_error(&what, &response))
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        let what = "DescribeInstances";
        let mut instances = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = vec![("MaxResults".to_owned(), "1000".to_owned())];
            if let Some(token) = &next_token {
                params.push(("NextToken".to_owned(), token.clone()));
            }
            let response = self.call("DescribeInstances", &params).await?;
            if !response.is_success() {
                return Err(self.api_error(what, &response));
            }
            let doc = self.parse(what, &response)?;
            for item in instance_items(&doc) {
                let Some(id) = child_text(item, "instanceId") else { continue };
                let zone = availability_zone(item).unwrap_or_default();
                instances.push(ProviderInstance {
                    provider_instance_id: id.to_owned(),
                    instance_id: tag(item, TAG_INSTANCE_ID).and_then(|v| v.parse().ok()),
                    state: state(child(item, "instanceState").and_then(|s| child_text(s, "name")).unwrap_or_default()),
                    instance_type: child_text(item, "instanceType").unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    zone: zone.to_owned(),
                    ssh_address: provider::ssh_address(
                        child_text(item, "ipAddress"),
                        child_text(item, "privateIpAddress"),
                    ),
                });
            }
            let token = doc
                .root_element()
                .children()
                .find(|c| c.is_element() && c.tag_name().name() == "nextToken")
                .and_then(|n| n.text())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            match token {
                Some(token) if next_token.as_ref() == Some(&token) => {
                    return Err(Failure::Unavailable.error(&self.name, format!("{what}: EC2 repeated a page token")));
                }
                Some(token) => next_token = Some(token),
                None => return Ok(instances),
            }
        }
        Err(Failure::Unavailable.error(&self.name, format!("{what}: more than {MAX_PAGES} pages")))
    }
}

#[cfg(test)]
mod tests;
