//! Building a cloud provider from its configuration entry.

use bosun_config::ProviderConfig;

use crate::aws::AwsProvider;
use crate::gcp::GcpProvider;
use crate::http::Failure;
use crate::lambda::LambdaProvider;
use crate::provider::{Provider, ProviderError};
use crate::proxmox::ProxmoxProvider;

/// The provider for a `lambda`, `gcp`, `aws` or `proxmox` entry of the configuration, with
/// credentials read through `env` (`std::env::var(..).ok()` in production). A missing
/// credential is [`ProviderError::Unauthorized`] naming the variable (or file) to set. The local
/// `fake` and `process` providers need more than their entry and are built elsewhere.
pub fn from_config(
    name: &str,
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Box<dyn Provider>, ProviderError> {
    Ok(match config {
        ProviderConfig::Lambda(lambda) => Box::new(LambdaProvider::from_config(name, lambda, env)?),
        ProviderConfig::Gcp(gcp) => Box::new(GcpProvider::from_config(name, gcp, env)?),
        ProviderConfig::Aws(aws) => Box::new(AwsProvider::from_config(name, aws, env)?),
        ProviderConfig::Proxmox(proxmox) => Box::new(ProxmoxProvider::from_config(name, proxmox, env)?),
        ProviderConfig::Fake { .. } | ProviderConfig::Process { .. } => {
            return Err(
                Failure::Invalid.error(name, format!("{} providers are not cloud providers", config.provider_type()))
            );
        }
    })
}

/// Where the provider for `config` would take its credentials from here (read through
/// `env`), in words and without the secret: `bosun config check` prints it. `None` for
/// the local providers, which need none; an error when the provider could not start.
/// Nothing is contacted: a metadata service is named, not asked.
pub fn credential_source(
    name: &str,
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ProviderError> {
    Ok(Some(match config {
        ProviderConfig::Lambda(lambda) => LambdaProvider::from_config(name, lambda, env)?.credential_source(),
        ProviderConfig::Gcp(gcp) => GcpProvider::from_config(name, gcp, env)?.credential_source(),
        ProviderConfig::Aws(aws) => AwsProvider::from_config(name, aws, env)?.credential_source(),
        ProviderConfig::Proxmox(proxmox) => ProxmoxProvider::from_config(name, proxmox, env)?.credential_source(),
        ProviderConfig::Fake { .. } | ProviderConfig::Process { .. } => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use bosun_config::ProviderType;

    use super::*;
    use crate::mock::provider_config;

    #[test]
    fn builds_each_cloud_and_refuses_local_kinds() {
        let env = |_: &str| Some("value".to_owned());
        let configs = [
            (provider_config("{type: lambda, api_key_env: K}"), ProviderType::Lambda),
            (provider_config("{type: gcp, project: p}"), ProviderType::Gcp),
            (provider_config("{type: aws, region: us-east-1}"), ProviderType::Aws),
            (
                provider_config(
                    "{type: proxmox, url: 'https://pve:8006', token_id: 'b@pve!t', token_secret_env: T, \
                     template_vmid: 9000}",
                ),
                ProviderType::Proxmox,
            ),
        ];
        for (config, kind) in configs {
            let provider = from_config("cloud", &config, env).unwrap();
            assert_eq!((provider.name(), provider.kind()), ("cloud", kind));
        }
        let err = from_config("local", &ProviderConfig::Fake { gpu_count: 8 }, env).unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err}");
    }

    #[test]
    fn credential_sources_are_named_without_secrets() {
        let env = |var: &str| match var {
            "K" => Some("lambda-secret".to_owned()),
            "GOOGLE_OAUTH_ACCESS_TOKEN" => Some("ya29.secret".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("aws-secret".to_owned()),
            "PVE_TOKEN" => Some("pve-secret".to_owned()),
            _ => None,
        };
        let described = |entry: &str| credential_source("c", &provider_config(entry), env);
        let cases = [
            ("{type: lambda, api_key_env: K}", "the API key in K"),
            (
                "{type: gcp, project: p}",
                "the access token in GOOGLE_OAUTH_ACCESS_TOKEN (it expires after about an hour)",
            ),
            ("{type: aws, region: us-east-1}", "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"),
            (
                "{type: proxmox, url: 'https://pve:8006', token_id: 'bosun@pve!pools', token_secret_env: PVE_TOKEN, \
                 template_vmid: 9000}",
                "the API token bosun@pve!pools with its secret in the environment variable PVE_TOKEN",
            ),
        ];
        for (entry, expected) in cases {
            assert_eq!(described(entry).unwrap().as_deref(), Some(expected), "{entry}");
        }
        assert_eq!(described("{type: fake}").unwrap(), None);
        let missing = described("{type: lambda, api_key_env: MISSING}").unwrap_err();
        assert!(missing.to_string().contains("set the environment variable MISSING"), "{missing}");
    }
}
