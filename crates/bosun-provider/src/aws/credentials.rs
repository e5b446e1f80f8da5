//! Where the AWS provider's credentials come from: the chain the AWS SDKs walk, in their
//! order, for the sources a control plane meets.
//!
//! 1. The environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//!    credentials, `AWS_SESSION_TOKEN`.
//! 2. A shared profile: `AWS_PROFILE` (else `default`) in the credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) or the config file
//!    (`AWS_CONFIG_FILE`, else `~/.aws/config`, where it is `[profile NAME]`). Only static
//!    keys are read; a profile that assumes a role, uses SSO or runs a credential process
//!    is refused by name rather than skipped, so the chain never silently falls through
//!    to other credentials than the ones the operator chose.
//! 3. The instance role, through the EC2 instance metadata service with IMDSv2 session
//!    tokens (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`;
//!    `AWS_EC2_METADATA_DISABLED=true` turns it off). Role credentials expire: they are
//!    fetched again five minutes before their expiration.
//!
//! The source is chosen once, when the provider is built, without any network call, so
//! `bosun config check` can say which one the server will use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Clock, SystemClock, Timestamp};
use ini::{Ini, ParseOption};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::sigv4::Credentials;
use crate::http::{self, Failure, HttpClient, Secret};
use crate::provider::ProviderError;

pub const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";
pub const PROFILE_ENV: &str = "AWS_PROFILE";
const CREDENTIALS_FILE_ENV: &str = "AWS_SHARED_CREDENTIALS_FILE";
const CONFIG_FILE_ENV: &str = "AWS_CONFIG_FILE";
const IMDS_ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
const IMDS_DISABLED_ENV: &str = "AWS_EC2_METADATA_DISABLED";
const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// How long an IMDSv2 session token lives (it is used only for the two calls after it).
const IMDS_TOKEN_TTL_SECONDS: &str = "300";
/// The metadata service is on the machine's own link: an answer takes milliseconds, and
/// off EC2 nothing answers at all, which must not hold a reconcile pass for long.
const IMDS_TIMEOUT: Duration = Duration::from_secs(3);
/// Role credentials are replaced this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Profile keys that obtain credentials in ways bosun does not implement.
const UNSUPPORTED_PROFILE_KEYS: [&str; 6] =
    ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file", "credential_source"];

/// The credential chain's choice, and what it needs to produce credentials.
#[derive(Debug)]
pub(crate) struct AwsCredentials {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// Keys from the environment or a profile, fixed for the process's life.
    Static {
        credentials: Credentials,
        origin: String,
    },
    InstanceRole(Imds),
}

/// What resolving the chain found besides the credentials.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) credentials: AwsCredentials,
    /// The selected profile's `region`, for when neither the configuration nor the
    /// environment names one.
    pub(crate) profile_region: Option<String>,
}

impl AwsCredentials {
    /// Walks the chain through `env` (variables, and `HOME` for the default file paths).
    pub(crate) fn resolve(provider: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, ProviderError> {
        Self::resolve_with_clock(provider, env, Arc::new(SystemClock))
    }

    pub(crate) fn resolve_with_clock(
        provider: &str,
        env: &dyn Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Resolved, ProviderError> {
        let set = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let unauthorized = |message: String| Failure::Unauthorized.error(provider, message);
        let profile = Profile::load(provider, env)?;
        let profile_region = profile.as_ref().and_then(|p| p.get("region")).map(str::to_owned);

        match (set(ACCESS_KEY_ENV), set(SECRET_KEY_ENV)) {
            (Some(access_key_id), Some(secret)) => {
                let credentials = Credentials {
                    access_key_id,
                    secret_access_key: Secret::new(secret),
                    session_token: set(SESSION_TOKEN_ENV).map(Secret::new),
                };
                let origin = format!("the environment ({ACCESS_KEY_ENV}, {SECRET_KEY_ENV})");
                return Ok(Resolved {
                    credentials: Self { source: Source::Static { credentials, origin } },
                    profile_region,
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(unauthorized(format!(
                    "only one of {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} is set; set both, or neither to use a \
                     profile or the instance role"
                )));
            }
            (None, None) => {}
        }

        let explicit_profile = set(PROFILE_ENV);
        if let Some(profile) = &profile {
            if let Some(credentials) = profile.static_credentials(provider)? {
                let origin = format!("profile {} in {}", profile.name, profile.origin());
                return Ok(Resolved {
                    credentials: Self { source: Source::Static { credentials, origin } },
                    profile_region,
                });
            }
            if let Some(key) = UNSUPPORTED_PROFILE_KEYS.iter().find(|k| profile.get(k).is_some()) {
                return Err(unauthorized(format!(
                    "profile {} ({}) gets its credentials through {key}, which bosun does not read; give the \
                     profile aws_access_key_id and aws_secret_access_key, export them as {ACCESS_KEY_ENV} and \
                     {SECRET_KEY_ENV}, or run bosun under an instance role",
                    profile.name,
                    profile.origin()
                )));
            }
            if explicit_profile.is_some() {
                return Err(unauthorized(format!(
                    "profile {} ({PROFILE_ENV}) in {} has no aws_access_key_id and aws_secret_access_key",
                    profile.name,
                    profile.origin()
                )));
            }
        } else if let Some(name) = &explicit_profile {
            return Err(unauthorized(format!(
                "profile {name} ({PROFILE_ENV}) is in neither {} nor {}",
                credentials_file(env).map_or_else(|| "~/.aws/credentials".to_owned(), |p| p.display().to_string()),
                config_file(env).map_or_else(|| "~/.aws/config".to_owned(), |p| p.display().to_string()),
            )));
        }

        if set(IMDS_DISABLED_ENV).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(unauthorized(format!(
                "no AWS credentials: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} (and {SESSION_TOKEN_ENV} for \
                 temporary credentials), or a profile with {PROFILE_ENV}; the instance role is off \
                 ({IMDS_DISABLED_ENV})"
            )));
        }
        let endpoint = set(IMDS_ENDPOINT_ENV).unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.to_owned());
        let imds = Imds::new(provider, &endpoint, clock)?;
        Ok(Resolved { credentials: Self { source: Source::InstanceRole(imds) }, profile_region })
    }

    /// Where the credentials come from, in words (never the secret).
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            Source::Static { origin, .. } => origin.clone(),
            Source::InstanceRole(imds) => format!(
                "the instance role, from the EC2 instance metadata service (IMDSv2) at {} (works on an EC2 \
                 machine with an instance profile)",
                imds.endpoint
            ),
        }
    }

    /// Credentials to sign the next request with.
    pub(crate) async fn current(&self) -> Result<Credentials, ProviderError> {
        match &self.source {
            Source::Static { credentials, .. } => Ok(credentials.clone()),
            Source::InstanceRole(imds) => imds.credentials().await,
        }
    }

    /// What to tell an operator whose credentials were refused.
    pub(crate) fn fix_hint(&self) -> String {
        match &self.source {
            Source::Static { origin, .. } => format!("check the credentials in {origin}"),
            Source::InstanceRole(_) => "check the permissions of the instance role".to_owned(),
        }
    }
}

/// The selected profile, merged from both files (the credentials file wins per key).
#[derive(Debug)]
struct Profile {
    name: String,
    /// `(file, properties)` in precedence order.
    sections: Vec<(PathBuf, Vec<(String, String)>)>,
}

impl Profile {
    fn load(provider: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Profile>, ProviderError> {
        let name = env(PROFILE_ENV).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let name = name.unwrap_or_else(|| "default".to_owned());
        let mut sections = Vec::new();
        if let Some(path) = credentials_file(env)
            && let Some(ini) = read_ini(provider, &path)?
            && let Some(found) = find_section(&ini, |section| section == name)
        {
            sections.push((path, found));
        }
        if let Some(path) = config_file(env)
            && let Some(ini) = read_ini(provider, &path)?
        {
            // The config file names profiles `[profile NAME]`; `[default]` is the exception.
            let found = find_section(&ini, |section| {
                section.strip_prefix("profile ").map(str::trim) == Some(name.as_str())
                    || (name == "default" && section == "default")
            });
            if let Some(found) = found {
                sections.push((path, found));
            }
        }
        Ok((!sections.is_empty()).then_some(Profile { name, sections }))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .flat_map(|(_, properties)| properties.iter())
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn origin(&self) -> String {
        let files: Vec<String> = self.sections.iter().map(|(path, _)| path.display().to_string()).collect();
        files.join(" and ")
    }

    fn static_credentials(&self, provider: &str) -> Result<Option<Credentials>, ProviderError> {
        match (self.get("aws_access_key_id"), self.get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => Ok(Some(Credentials {
                access_key_id: id.to_owned(),
                secret_access_key: Secret::new(secret),
                session_token: self.get("aws_session_token").map(Secret::new),
            })),
            (None, None) => Ok(None),
            _ => Err(Failure::Unauthorized.error(
                provider,
                format!(
                    "profile {} in {} has only one of aws_access_key_id and aws_secret_access_key",
                    self.name,
                    self.origin()
                ),
            )),
        }
    }
}

fn home_file(env: &dyn Fn(&str) -> Option<String>, override_var: &str, relative: &str) -> Option<PathBuf> {
    let set = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match set(override_var) {
        Some(path) => Some(expand_home(&path, set("HOME").as_deref())),
        None => set("HOME").map(|home| Path::new(&home).join(relative)),
    }
}

fn credentials_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    home_file(env, CREDENTIALS_FILE_ENV, ".aws/credentials")
}

fn config_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    home_file(env, CONFIG_FILE_ENV, ".aws/config")
}

fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The file's sections, or `None` when it does not exist. Values are read literally (no
/// quote or escape processing: secret keys may hold any character), and the AWS format's
/// indented sub-properties (`s3 =` then `  max_concurrent_requests = 20`) are kept inside
/// the value they belong to rather than read as keys of the profile.
fn read_ini(provider: &str, path: &Path) -> Result<Option<Ini>, ProviderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(Failure::Unauthorized.error(provider, format!("cannot read {}: {error}", path.display())));
        }
    };
    let options = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    Ini::load_from_str_opt(&text, options).map(Some).map_err(|error| {
        // The parser's own message may quote the text it stumbled on, which could be part
        // of a key: only the line is reported.
        Failure::Unauthorized
            .error(provider, format!("{} is not a valid AWS profile file (near line {})", path.display(), error.line))
    })
}

/// The properties of the first section whose name (inner spaces collapsed) `matches`.
fn find_section(ini: &Ini, matches: impl Fn(&str) -> bool) -> Option<Vec<(String, String)>> {
    ini.iter().find_map(|(section, properties)| {
        let section = section?.split_whitespace().collect::<Vec<_>>().join(" ");
        matches(&section).then(|| properties.iter().map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect())
    })
}

/// The EC2 instance metadata service, asked with IMDSv2 session tokens.
#[derive(Debug)]
struct Imds {
    provider: String,
    endpoint: Url,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    /// The role's current credentials and when they expire. A tokio mutex: concurrent
    /// calls wait for one refresh instead of each asking the service.
    cached: tokio::sync::Mutex<Option<(Credentials, Timestamp)>>,
}

/// The answer of `/latest/meta-data/iam/security-credentials/ROLE`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    #[serde(default)]
    code: String,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

impl Imds {
    fn new(provider: &str, endpoint: &str, clock: Arc<dyn Clock>) -> Result<Self, ProviderError> {
        let endpoint = http::parse_base_url(provider, endpoint)?;
        Ok(Self {
            provider: provider.to_owned(),
            http: HttpClient::new(provider, &endpoint)?,
            endpoint,
            clock,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    fn failure(&self, failure: Failure, message: impl std::fmt::Display) -> ProviderError {
        failure.error(&self.provider, format!("instance role ({}): {message}", self.endpoint))
    }

    async fn credentials(&self) -> Result<Credentials, ProviderError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if let Some((credentials, expires)) = cached.as_ref()
            && now + REFRESH_MARGIN < *expires
        {
            return Ok(credentials.clone());
        }
        let (credentials, expires) = self.fetch().await?;
        *cached = Some((credentials.clone(), expires));
        Ok(credentials)
    }

    async fn fetch(&self) -> Result<(Credentials, Timestamp), ProviderError> {
        // Off EC2 nothing answers: the service is unreachable, which a retry will not fix
        // but which is no reason to give up on the provider either.
        let token =
            Secret::new(self.call(Method::PUT, "/latest/api/token", None, "get an IMDSv2 session token").await?);
        let roles = self
            .call(Method::GET, "/latest/meta-data/iam/security-credentials/", Some(&token), "list the instance role")
            .await?;
        let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned) else {
            return Err(self.failure(
                Failure::Unauthorized,
                "this machine has no IAM instance profile attached; attach one, or give bosun keys",
            ));
        };
        if !http::is_path_segment(&role) {
            return Err(self.failure(Failure::Unavailable, format!("the service named an odd role {role:?}")));
        }
        let body = self
            .call(
                Method::GET,
                &format!("/latest/meta-data/iam/security-credentials/{role}"),
                Some(&token),
                "read the role's credentials",
            )
            .await?;
        let parsed: RoleCredentials = serde_json::from_str(&body).map_err(|e| {
            self.failure(Failure::Unavailable, format!("the role's credentials are not the JSON expected: {e}"))
        })?;
        if !parsed.code.is_empty() && parsed.code != "Success" {
            return Err(self.failure(Failure::Unauthorized, format!("the service answered {}", parsed.code)));
        }
        let expires: Timestamp = parsed.expiration.parse().map_err(|_| {
            self.failure(Failure::Unavailable, format!("unreadable expiration {:?}", parsed.expiration))
        })?;
        tracing::debug!(provider = %self.provider, %role, %expires, "instance role credentials fetched");
        Ok((
            Credentials {
                access_key_id: parsed.access_key_id,
                secret_access_key: Secret::new(parsed.secret_access_key),
                session_token: Some(Secret::new(parsed.token)),
            },
            expires,
        ))
    }

    /// One call; the answer's text.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        what: &str,
    ) -> Result<String, ProviderError> {
        let mut request = self.http.request(method, http::join(&self.endpoint, path)).timeout(IMDS_TIMEOUT);
        request = match token {
            Some(token) => request.header("x-aws-ec2-metadata-token", token.expose()),
            None => request.header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL_SECONDS),
        };
        let response = self.http.send(request, what).await.map_err(|error| {
            self.failure(Failure::Unavailable, format!("{} (is this an EC2 machine?)", error.detail()))
        })?;
        if !response.is_success() {
            let status = response.status.as_u16();
            let failure = if status == 404 { Failure::Unauthorized } else { Failure::from_status(response.status) };
            return Err(self.failure(failure, format!("{what}: HTTP {status}")));
        }
        String::from_utf8(response.body)
            .map_err(|_| self.failure(Failure::Unavailable, format!("{what}: the answer is not text")))
    }
}

#[cfg(test)]
mod tests;
