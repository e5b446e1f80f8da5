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
        ProviderConfig::Lambda { .. } => Box::new(LambdaProvider::from_config(name, config, env)?),
        ProviderConfig::Gcp { .. } => Box::new(GcpProvider::from_config(name, config, env)?),
        ProviderConfig::Aws { .. } => Box::new(AwsProvider::from_config(name, config, env)?),
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

    #[test]
    fn builds_each_cloud_and_refuses_local_kinds() {
        let env = |_: &str| Some("value".to_owned());
        let configs = [
            (ProviderConfig::Lambda { api_key_env: "K".into() }, ProviderType::Lambda),
            (ProviderConfig::Gcp { project: "p".into(), zone: "us-central1-a".into() }, ProviderType::Gcp),
            (ProviderConfig::Aws { region: Some("us-east-1".into()) }, ProviderType::Aws),
        ];
        for (config, kind) in configs {
            let provider = from_config("cloud", &config, env).unwrap();
            assert_eq!((provider.name(), provider.kind()), ("cloud", kind));
        }
        let err = from_config("local", &ProviderConfig::Fake { gpu_count: 8 }, env).unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err}");
    }
}
