//! The `providers` section: the clouds (and local stand-ins) pools provision from.
//!
//! Each type takes its own keys; a key another type takes is refused with the list of
//! keys this one accepts, so nothing is accepted that does nothing. Every cloud takes
//! `endpoint` (its API base URL: a VPC endpoint, a proxy, an emulator, an API-compatible
//! cloud); a Proxmox VE cluster takes the keys of a [`ProxmoxEndpoint`] instead. The
//! defaults of the machine options (image, disk, network) live here, so
//! `bosun config check` shows the values a provider will really send.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bosun_core::validation::check_identifier;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::duration::{ConfigDuration, given_or, require_positive};
use crate::proxmox::{ENDPOINT_KEYS, ProxmoxEndpoint, ProxmoxEndpointKeys};
use crate::schema;

/// A provider's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// In-process agents with fake GPUs, for demos and tests.
    Fake,
    /// Each instance is a local `bosun agent` process.
    Process,
    Lambda,
    Gcp,
    Aws,
    /// VMs cloned from a template on a Proxmox VE cluster.
    Proxmox,
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Fake => "fake",
            ProviderType::Process => "process",
            ProviderType::Lambda => "lambda",
            ProviderType::Gcp => "gcp",
            ProviderType::Aws => "aws",
            ProviderType::Proxmox => "proxmox",
        }
    }

    /// The type-specific keys a provider of this type accepts besides `type`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            ProviderType::Fake | ProviderType::Process => &["gpu_count"],
            ProviderType::Lambda => &["api_key_env", "endpoint", "ssh_key_names", "file_system_names"],
            ProviderType::Gcp => {
                &["project", "zone", "endpoint", "image", "network", "subnetwork", "service_account", "disk_size_gb"]
            }
            ProviderType::Aws => &[
                "region",
                "endpoint",
                "image_id",
                "subnet_id",
                "security_group_ids",
                "key_name",
                "instance_profile",
                "tags",
            ],
            ProviderType::Proxmox => &PROXMOX_KEYS,
        }
    }

    /// Whether machines of this type boot from an image a pool may choose (`pools.*.image`).
    pub fn takes_image(self) -> bool {
        matches!(self, ProviderType::Gcp | ProviderType::Aws)
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const DEFAULT_GPU_COUNT: u32 = 8;
const DEFAULT_LAMBDA_API_KEY_ENV: &str = "LAMBDA_API_KEY";
const DEFAULT_GCP_ZONE: &str = "us-central1-a";
/// Longest provider name; names are stored on every instance and node.
const MAX_PROVIDER_NAME_LEN: usize = 63;

/// AWS's Deep Learning Base AMI (NVIDIA driver, CUDA, Docker), resolved by EC2 at launch
/// from AWS's public SSM parameter (which needs `ssm:GetParameters` besides the EC2
/// permissions).
pub const DEFAULT_AWS_IMAGE: &str =
    "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id";
/// Google's Deep Learning VM image family with CUDA and the NVIDIA driver.
pub const DEFAULT_GCP_IMAGE: &str =
    "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570";
pub const DEFAULT_GCP_NETWORK: &str = "global/networks/default";
pub const DEFAULT_GCP_DISK_SIZE_GB: u32 = 200;
/// Compute Engine's smallest boot disk.
const MIN_GCP_DISK_SIZE_GB: u32 = 10;
/// The tags bosun writes itself on every EC2 machine; a configuration may not set them.
pub const AWS_RESERVED_TAGS: [&str; 2] = ["bosun-instance-id", "bosun-pool"];

/// How long a Proxmox task (a clone, a start, a stop, a destroy) may run before the
/// provider stops waiting for it. A full clone copies the template's disks.
pub const DEFAULT_PROXMOX_TASK_TIMEOUT: Duration = Duration::from_secs(600);
/// A `type: proxmox` entry's keys: the endpoint's, then the machines'.
const PROXMOX_KEYS: [&str; 11] = [
    ENDPOINT_KEYS[0],
    ENDPOINT_KEYS[1],
    ENDPOINT_KEYS[2],
    ENDPOINT_KEYS[3],
    ENDPOINT_KEYS[4],
    ENDPOINT_KEYS[5],
    "template_vmid",
    "storage",
    "hosts",
    "full_clone",
    "task_timeout",
];
/// Proxmox's vmids.
const PROXMOX_VMIDS: std::ops::RangeInclusive<u32> = 100..=999_999_999;

/// A `type: proxmox` entry: VMs cloned from a template VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxmoxConfig {
    /// The cluster's API, its token and TLS checks.
    pub endpoint: ProxmoxEndpoint,
    /// The VM (normally a template) every machine is cloned from, with its hardware:
    /// cores, memory, disks and GPUs passed through (`hostpciN`).
    pub template_vmid: u32,
    /// Where a full clone's disks go; without it, where the template's are.
    pub storage: Option<String>,
    /// The Proxmox nodes machines may run on; empty: any online node.
    pub hosts: Vec<String>,
    /// A full copy (`true`) or a linked clone (`false`, templates only); unset: Proxmox's
    /// default (linked for a template).
    pub full_clone: Option<bool>,
    /// How long each task may take.
    pub task_timeout: Duration,
}

/// A `type: lambda` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    /// The environment variable holding the Lambda Cloud API key.
    pub api_key_env: String,
    /// The API base URL, instead of Lambda Cloud's.
    pub endpoint: Option<String>,
    /// SSH keys (their names in the Lambda account) installed on new machines; a pool's
    /// `ssh_keys` replace them for its machines.
    pub ssh_key_names: Vec<String>,
    /// Persistent file systems (by name) attached to new machines.
    pub file_system_names: Vec<String>,
}

/// A `type: gcp` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConfig {
    pub project: String,
    /// Where machines go unless a pool names zones.
    pub zone: String,
    /// The API base URL, instead of Compute Engine's.
    pub endpoint: Option<String>,
    /// Boot image or image family (`projects/P/global/images/family/F`); pools may override it.
    pub image: String,
    /// The VPC network: a name or a partial URL (`global/networks/NAME`).
    pub network: String,
    /// The subnetwork (needed on custom-mode networks): a name (in the machine's region)
    /// or a partial URL.
    pub subnetwork: Option<String>,
    /// The service account machines run as (its email, or `default`), with the
    /// `cloud-platform` scope; without one they run with none.
    pub service_account: Option<String>,
    pub disk_size_gb: u32,
}

/// A `type: aws` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// Without one, `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
    pub region: Option<String>,
    /// The EC2 API base URL, instead of `https://ec2.REGION.amazonaws.com/` (a VPC endpoint).
    pub endpoint: Option<String>,
    /// An AMI id, or `resolve:ssm:PARAMETER`; pools may override it.
    pub image_id: String,
    /// Without one, EC2 uses the default subnet of the default VPC.
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The EC2 key pair installed for SSH (a pool's single `ssh_keys` entry replaces it).
    pub key_name: Option<String>,
    /// An IAM instance profile, by name or ARN.
    pub instance_profile: Option<String>,
    /// Extra tags on every machine and volume.
    pub tags: BTreeMap<String, String>,
}

/// One entry of `providers`, with its type's defaults applied. Credentials are not part of
/// the configuration: cloud providers read them (the variable named by `api_key_env`, the
/// cloud's credential chain) when they start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    Fake { gpu_count: u32 },
    Process { gpu_count: u32 },
    Lambda(LambdaConfig),
    Gcp(GcpConfig),
    Aws(AwsConfig),
    Proxmox(ProxmoxConfig),
}

impl ProviderConfig {
    pub fn provider_type(&self) -> ProviderType {
        match self {
            ProviderConfig::Fake { .. } => ProviderType::Fake,
            ProviderConfig::Process { .. } => ProviderType::Process,
            ProviderConfig::Lambda(_) => ProviderType::Lambda,
            ProviderConfig::Gcp(_) => ProviderType::Gcp,
            ProviderConfig::Aws(_) => ProviderType::Aws,
            ProviderConfig::Proxmox(_) => ProviderType::Proxmox,
        }
    }

    pub(crate) fn resolve(name: &str, raw: &schema::Provider) -> Result<Self, ConfigError> {
        let key = format!("providers.{name}");
        check_identifier("name", name, MAX_PROVIDER_NAME_LEN).map_err(|e| ConfigError::invalid(&key, e.problem))?;
        let kind = raw.kind.ok_or_else(|| {
            ConfigError::invalid(format!("{key}.type"), "is required: one of fake, process, lambda, gcp, aws, proxmox")
        })?;
        if let Some(unused) = given_keys(raw).into_iter().find(|k| !kind.keys().contains(k)) {
            return Err(ConfigError::invalid(
                format!("{key}.{unused}"),
                format_args!("is not used by providers of type {kind} (they take {})", kind.keys().join(", ")),
            ));
        }
        let field = Field { key: &key };
        Ok(match kind {
            ProviderType::Fake => Self::Fake { gpu_count: raw.gpu_count.unwrap_or(DEFAULT_GPU_COUNT) },
            ProviderType::Process => Self::Process { gpu_count: raw.gpu_count.unwrap_or(DEFAULT_GPU_COUNT) },
            ProviderType::Lambda => Self::Lambda(LambdaConfig {
                api_key_env: field
                    .text("api_key_env", &raw.api_key_env)?
                    .unwrap_or_else(|| DEFAULT_LAMBDA_API_KEY_ENV.to_owned()),
                endpoint: field.endpoint(&raw.endpoint)?,
                ssh_key_names: field.names("ssh_key_names", &raw.ssh_key_names)?,
                file_system_names: field.names("file_system_names", &raw.file_system_names)?,
            }),
            ProviderType::Gcp => Self::Gcp(GcpConfig {
                project: field.text("project", &raw.project)?.ok_or_else(|| {
                    ConfigError::invalid(format!("{key}.project"), "is required for providers of type gcp")
                })?,
                zone: field.text("zone", &raw.zone)?.unwrap_or_else(|| DEFAULT_GCP_ZONE.to_owned()),
                endpoint: field.endpoint(&raw.endpoint)?,
                image: field.text("image", &raw.image)?.unwrap_or_else(|| DEFAULT_GCP_IMAGE.to_owned()),
                network: field.text("network", &raw.network)?.unwrap_or_else(|| DEFAULT_GCP_NETWORK.to_owned()),
                subnetwork: field.text("subnetwork", &raw.subnetwork)?,
                service_account: field.service_account(&raw.service_account)?,
                disk_size_gb: match raw.disk_size_gb {
                    Some(size) if size < MIN_GCP_DISK_SIZE_GB => {
                        return Err(ConfigError::invalid(
                            format!("{key}.disk_size_gb"),
                            format_args!("is {size}; Compute Engine boot disks are at least {MIN_GCP_DISK_SIZE_GB} GB"),
                        ));
                    }
                    Some(size) => size,
                    None => DEFAULT_GCP_DISK_SIZE_GB,
                },
            }),
            ProviderType::Aws => Self::Aws(AwsConfig {
                region: field.text("region", &raw.region)?,
                endpoint: field.endpoint(&raw.endpoint)?,
                image_id: match field.text("image_id", &raw.image_id)? {
                    Some(image) => check_aws_image(&format!("{key}.image_id"), image)?,
                    None => DEFAULT_AWS_IMAGE.to_owned(),
                },
                subnet_id: field.prefixed("subnet_id", &raw.subnet_id, "subnet-")?,
                security_group_ids: field.ids("security_group_ids", &raw.security_group_ids, "sg-")?,
                key_name: field.text("key_name", &raw.key_name)?,
                instance_profile: field.text("instance_profile", &raw.instance_profile)?,
                tags: field.aws_tags(raw.tags.as_ref())?,
            }),
            ProviderType::Proxmox => Self::Proxmox(ProxmoxConfig {
                endpoint: ProxmoxEndpoint::resolve(&key, &endpoint_keys(raw))?,
                template_vmid: match raw.template_vmid {
                    None => {
                        return Err(field.invalid(
                            "template_vmid",
                            "is required for providers of type proxmox: the vmid of the VM to clone",
                        ));
                    }
                    Some(vmid) if !PROXMOX_VMIDS.contains(&vmid) => {
                        return Err(
                            field.invalid("template_vmid", format_args!("is {vmid}; vmids are 100 to 999999999"))
                        );
                    }
                    Some(vmid) => vmid,
                },
                storage: match field.text("storage", &raw.storage)? {
                    Some(storage) if !is_proxmox_name(&storage) => {
                        return Err(field.invalid(
                            "storage",
                            format_args!("{storage:?} is not a storage id (letters, digits, '-', '_', '.')"),
                        ));
                    }
                    other => other,
                },
                hosts: field.hosts(&raw.hosts)?,
                full_clone: raw.full_clone,
                task_timeout: {
                    let timeout = given_or(raw.task_timeout, DEFAULT_PROXMOX_TASK_TIMEOUT);
                    require_positive(&format!("{key}.task_timeout"), timeout)?;
                    timeout
                },
            }),
        })
    }

    pub(crate) fn to_schema(&self) -> schema::Provider {
        let mut raw = schema::Provider { kind: Some(self.provider_type()), ..schema::Provider::default() };
        let list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
        match self {
            Self::Fake { gpu_count } | Self::Process { gpu_count } => raw.gpu_count = Some(*gpu_count),
            Self::Lambda(lambda) => {
                raw.api_key_env = Some(lambda.api_key_env.clone());
                raw.endpoint = lambda.endpoint.clone();
                raw.ssh_key_names = list(&lambda.ssh_key_names);
                raw.file_system_names = list(&lambda.file_system_names);
            }
            Self::Gcp(gcp) => {
                raw.project = Some(gcp.project.clone());
                raw.zone = Some(gcp.zone.clone());
                raw.endpoint = gcp.endpoint.clone();
                raw.image = Some(gcp.image.clone());
                raw.network = Some(gcp.network.clone());
                raw.subnetwork = gcp.subnetwork.clone();
                raw.service_account = gcp.service_account.clone();
                raw.disk_size_gb = Some(gcp.disk_size_gb);
            }
            Self::Aws(aws) => {
                raw.region = aws.region.clone();
                raw.endpoint = aws.endpoint.clone();
                raw.image_id = Some(aws.image_id.clone());
                raw.subnet_id = aws.subnet_id.clone();
                raw.security_group_ids = list(&aws.security_group_ids);
                raw.key_name = aws.key_name.clone();
                raw.instance_profile = aws.instance_profile.clone();
                raw.tags = (!aws.tags.is_empty()).then(|| aws.tags.clone());
            }
            Self::Proxmox(proxmox) => {
                let endpoint = proxmox.endpoint.to_keys();
                raw.url = endpoint.url;
                raw.token_id = endpoint.token_id;
                raw.token_secret_env = endpoint.token_secret_env;
                raw.token_secret_file = endpoint.token_secret_file;
                raw.verify_tls = endpoint.verify_tls;
                raw.ca_file = endpoint.ca_file;
                raw.template_vmid = Some(proxmox.template_vmid);
                raw.storage = proxmox.storage.clone();
                raw.hosts = list(&proxmox.hosts);
                raw.full_clone = proxmox.full_clone;
                raw.task_timeout = Some(ConfigDuration(proxmox.task_timeout));
            }
        }
        raw
    }
}

/// The endpoint keys of a `type: proxmox` entry.
fn endpoint_keys(raw: &schema::Provider) -> ProxmoxEndpointKeys {
    ProxmoxEndpointKeys {
        url: raw.url.clone(),
        token_id: raw.token_id.clone(),
        token_secret_env: raw.token_secret_env.clone(),
        token_secret_file: raw.token_secret_file.clone(),
        verify_tls: raw.verify_tls,
        ca_file: raw.ca_file.clone(),
    }
}

/// A Proxmox node or storage id: letters, digits, '-', '_' and '.'.
fn is_proxmox_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The type-specific keys set in `raw`.
fn given_keys(raw: &schema::Provider) -> Vec<&'static str> {
    let set = [
        ("api_key_env", raw.api_key_env.is_some()),
        ("project", raw.project.is_some()),
        ("zone", raw.zone.is_some()),
        ("region", raw.region.is_some()),
        ("gpu_count", raw.gpu_count.is_some()),
        ("endpoint", raw.endpoint.is_some()),
        ("image_id", raw.image_id.is_some()),
        ("subnet_id", raw.subnet_id.is_some()),
        ("security_group_ids", raw.security_group_ids.is_some()),
        ("key_name", raw.key_name.is_some()),
        ("instance_profile", raw.instance_profile.is_some()),
        ("tags", raw.tags.is_some()),
        ("ssh_key_names", raw.ssh_key_names.is_some()),
        ("file_system_names", raw.file_system_names.is_some()),
        ("image", raw.image.is_some()),
        ("network", raw.network.is_some()),
        ("subnetwork", raw.subnetwork.is_some()),
        ("service_account", raw.service_account.is_some()),
        ("disk_size_gb", raw.disk_size_gb.is_some()),
        ("url", raw.url.is_some()),
        ("token_id", raw.token_id.is_some()),
        ("token_secret_env", raw.token_secret_env.is_some()),
        ("token_secret_file", raw.token_secret_file.is_some()),
        ("verify_tls", raw.verify_tls.is_some()),
        ("ca_file", raw.ca_file.is_some()),
        ("template_vmid", raw.template_vmid.is_some()),
        ("storage", raw.storage.is_some()),
        ("hosts", raw.hosts.is_some()),
        ("full_clone", raw.full_clone.is_some()),
        ("task_timeout", raw.task_timeout.is_some()),
    ];
    set.into_iter().filter(|(_, given)| *given).map(|(key, _)| key).collect()
}

/// Checks of one provider entry's values; errors name `providers.NAME.KEY`.
struct Field<'a> {
    key: &'a str,
}

impl Field<'_> {
    fn invalid(&self, field: &str, problem: impl fmt::Display) -> ConfigError {
        ConfigError::invalid(format!("{}.{field}", self.key), problem)
    }

    /// A text value, refused when empty.
    fn text(&self, field: &str, value: &Option<String>) -> Result<Option<String>, ConfigError> {
        match value.as_deref() {
            Some(text) if text.trim().is_empty() => Err(self.invalid(field, "is empty")),
            other => Ok(other.map(str::to_owned)),
        }
    }

    /// A list of names, none empty.
    fn names(&self, field: &str, values: &Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let values = values.clone().unwrap_or_default();
        if let Some(i) = values.iter().position(|v| v.trim().is_empty()) {
            return Err(self.invalid(&format!("{field}[{i}]"), "is empty"));
        }
        Ok(values)
    }

    /// An API base URL: `http(s)://host[:port][/path]`.
    fn endpoint(&self, value: &Option<String>) -> Result<Option<String>, ConfigError> {
        let Some(endpoint) = self.text("endpoint", value)? else { return Ok(None) };
        match url::Url::parse(&endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(Some(endpoint)),
            Ok(_) => {
                Err(self.invalid("endpoint", format_args!("{endpoint:?} must be an http(s)://host[:port][/path] URL")))
            }
            Err(e) => Err(self.invalid("endpoint", format_args!("{endpoint:?} is not a URL: {e}"))),
        }
    }

    /// Proxmox node names, each once.
    fn hosts(&self, values: &Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let hosts = self.names("hosts", values)?;
        for (i, host) in hosts.iter().enumerate() {
            if !is_proxmox_name(host) {
                return Err(self.invalid(
                    &format!("hosts[{i}]"),
                    format_args!("{host:?} is not a node name (letters, digits, '-', '_', '.')"),
                ));
            }
            if let Some(first) = hosts[..i].iter().position(|h| h == host) {
                return Err(self.invalid(&format!("hosts[{i}]"), format_args!("{host:?} is already hosts[{first}]")));
            }
        }
        Ok(hosts)
    }

    /// An AWS resource id with its type's prefix (`subnet-`, `sg-`).
    fn prefixed(&self, field: &str, value: &Option<String>, prefix: &str) -> Result<Option<String>, ConfigError> {
        match self.text(field, value)? {
            Some(id) if !is_aws_id(&id, prefix) => {
                Err(self.invalid(field, format_args!("{id:?} is not an id of the form {prefix}0123abcd")))
            }
            other => Ok(other),
        }
    }

    /// A list of AWS resource ids with their type's prefix.
    fn ids(&self, field: &str, values: &Option<Vec<String>>, prefix: &str) -> Result<Vec<String>, ConfigError> {
        let ids = self.names(field, values)?;
        for (i, id) in ids.iter().enumerate() {
            self.prefixed(&format!("{field}[{i}]"), &Some(id.clone()), prefix)?;
        }
        Ok(ids)
    }

    fn service_account(&self, value: &Option<String>) -> Result<Option<String>, ConfigError> {
        match self.text("service_account", value)? {
            Some(account) if account != "default" && !account.contains('@') => Err(self.invalid(
                "service_account",
                format_args!("{account:?} is neither a service account email nor `default`"),
            )),
            other => Ok(other),
        }
    }

    /// EC2 tag rules (keys up to 128 characters, values up to 256, no `aws:` prefix), and
    /// none of the tags bosun sets itself.
    fn aws_tags(&self, tags: Option<&BTreeMap<String, String>>) -> Result<BTreeMap<String, String>, ConfigError> {
        let tags = tags.cloned().unwrap_or_default();
        for (tag, value) in &tags {
            let field = format!("tags.{tag}");
            if tag.trim().is_empty() || tag.chars().count() > 128 {
                return Err(self.invalid(&field, "tag keys are 1 to 128 characters"));
            }
            if tag.to_ascii_lowercase().starts_with("aws:") {
                return Err(self.invalid(&field, "the aws: prefix is reserved by AWS"));
            }
            if AWS_RESERVED_TAGS.contains(&tag.as_str()) {
                return Err(self.invalid(&field, "is set by bosun on every machine; choose another key"));
            }
            if value.chars().count() > 256 {
                return Err(self.invalid(&field, "tag values are at most 256 characters"));
            }
        }
        Ok(tags)
    }
}

fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// An AMI id (`ami-0123abcd`) or `resolve:ssm:PARAMETER`, which EC2 resolves at launch.
pub(crate) fn check_aws_image(key: &str, image: String) -> Result<String, ConfigError> {
    let ssm = image.strip_prefix("resolve:ssm:").is_some_and(|parameter| !parameter.trim().is_empty());
    if ssm || is_aws_id(&image, "ami-") {
        Ok(image)
    } else {
        Err(ConfigError::invalid(
            key,
            format_args!("{image:?} is neither an AMI id (ami-0123abcd) nor resolve:ssm:PARAMETER"),
        ))
    }
}
