//! Building a cloud provider from its configuration entry.

use bosun_config::ProviderConfig;

use crate::aws::AwsProvider;
use crate::gcp::GcpProvider;
use crate::http::Failure;
use crate::lambda::LambdaProvider;
use crate::provider::{Provider, ProviderError};

/// The provider for a `lambda`, `gcp` or `aws` entry of the configuration, with
/// credentials read through `env` (`std::env::var(..).ok()` in production). A missing
/// credential is [`ProviderError::Unauthorized`] naming the variable to set. The local
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
        ProviderConfig::Fake { .. } | ProviderConfig::Process { .. } => {
            return Err(
                Failure::Invalid.error(name, format!("{} providers are not cloud providers", config.provider_type()))
            );
        }
    })
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
        ];
        for (config, kind) in configs {
            let provider = from_config("cloud", &config, env).unwrap();
            assert_eq!((provider.name(), provider.kind()), ("cloud", kind));
        }
        let err = from_config("local", &ProviderConfig::Fake { gpu_count: 8 }, env).unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err}");
    }
}
