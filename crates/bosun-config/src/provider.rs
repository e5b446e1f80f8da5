//! The `providers` section: the clouds (and local stand-ins) pools provision from.

use std::fmt;

use bosun_core::validation::check_identifier;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
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
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Fake => "fake",
            ProviderType::Process => "process",
            ProviderType::Lambda => "lambda",
            ProviderType::Gcp => "gcp",
            ProviderType::Aws => "aws",
        }
    }

    /// The type-specific keys a provider of this type accepts besides `type`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            ProviderType::Fake | ProviderType::Process => &["gpu_count"],
            ProviderType::Lambda => &["api_key_env"],
            ProviderType::Gcp => &["project", "zone"],
            ProviderType::Aws => &["region"],
        }
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

/// One entry of `providers`, with its type's defaults applied. Credentials are not part of
/// the configuration: cloud providers read them (e.g. the variable named by
/// `api_key_env`) when they start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    Fake {
        gpu_count: u32,
    },
    Process {
        gpu_count: u32,
    },
    Lambda {
        /// The environment variable holding the Lambda Cloud API key.
        api_key_env: String,
    },
    Gcp {
        project: String,
        zone: String,
    },
    Aws {
        region: Option<String>,
    },
}

impl ProviderConfig {
    pub fn provider_type(&self) -> ProviderType {
        match self {
            ProviderConfig::Fake { .. } => ProviderType::Fake,
            ProviderConfig::Process { .. } => ProviderType::Process,
            ProviderConfig::Lambda { .. } => ProviderType::Lambda,
            ProviderConfig::Gcp { .. } => ProviderType::Gcp,
            ProviderConfig::Aws { .. } => ProviderType::Aws,
        }
    }

    pub(crate) fn resolve(name: &str, raw: &schema::Provider) -> Result<Self, ConfigError> {
        let key = format!("providers.{name}");
        check_identifier("name", name, MAX_PROVIDER_NAME_LEN).map_err(|e| ConfigError::invalid(&key, e.problem))?;
        let kind = raw.kind.ok_or_else(|| {
            ConfigError::invalid(format!("{key}.type"), "is required: one of fake, process, lambda, gcp, aws")
        })?;
        let given = [
            ("api_key_env", raw.api_key_env.is_some()),
            ("project", raw.project.is_some()),
            ("zone", raw.zone.is_some()),
            ("region", raw.region.is_some()),
            ("gpu_count", raw.gpu_count.is_some()),
        ];
        if let Some((unused, _)) = given.iter().find(|(k, set)| *set && !kind.keys().contains(k)) {
            return Err(ConfigError::invalid(
                format!("{key}.{unused}"),
                format_args!("is not used by providers of type {kind} (they take {})", kind.keys().join(", ")),
            ));
        }
        let non_empty = |field: &str, value: &Option<String>| match value.as_deref() {
            Some("") => Err(ConfigError::invalid(format!("{key}.{field}"), "is empty")),
            other => Ok(other.map(str::to_owned)),
        };
        Ok(match kind {
            ProviderType::Fake => Self::Fake { gpu_count: raw.gpu_count.unwrap_or(DEFAULT_GPU_COUNT) },
            ProviderType::Process => Self::Process { gpu_count: raw.gpu_count.unwrap_or(DEFAULT_GPU_COUNT) },
            ProviderType::Lambda => Self::Lambda {
                api_key_env: non_empty("api_key_env", &raw.api_key_env)?
                    .unwrap_or_else(|| DEFAULT_LAMBDA_API_KEY_ENV.to_owned()),
            },
            ProviderType::Gcp => Self::Gcp {
                project: non_empty("project", &raw.project)?.ok_or_else(|| {
                    ConfigError::invalid(format!("{key}.project"), "is required for providers of type gcp")
                })?,
                zone: non_empty("zone", &raw.zone)?.unwrap_or_else(|| DEFAULT_GCP_ZONE.to_owned()),
            },
            ProviderType::Aws => Self::Aws { region: non_empty("region", &raw.region)? },
        })
    }

    pub(crate) fn to_schema(&self) -> schema::Provider {
        let mut raw = schema::Provider { kind: Some(self.provider_type()), ..schema::Provider::default() };
        match self {
            Self::Fake { gpu_count } | Self::Process { gpu_count } => raw.gpu_count = Some(*gpu_count),
            Self::Lambda { api_key_env } => raw.api_key_env = Some(api_key_env.clone()),
            Self::Gcp { project, zone } => {
                raw.project = Some(project.clone());
                raw.zone = Some(zone.clone());
            }
            Self::Aws { region } => raw.region = region.clone(),
        }
        raw
    }
}
