//! Where the GCP provider's access tokens come from, first match wins:
//!
//! 1. `GOOGLE_OAUTH_ACCESS_TOKEN`: a token as is (`gcloud auth print-access-token`; it
//!    expires after about an hour).
//! 2. `GOOGLE_OAUTH_ACCESS_TOKEN_FILE`: a file a refresher keeps current, read on every call.
//! 3. Application Default Credentials: the JSON file named by
//!    `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
//!    `~/.config/gcloud/application_default_credentials.json` (`CLOUDSDK_CONFIG` moves it).
//!    A `service_account` key signs a JWT assertion (RS256) that the token endpoint
//!    exchanges for an access token (RFC 7523); an `authorized_user` file (from `gcloud auth
//!    application-default login`) trades its refresh token.
//! 4. The GCE metadata server (`GCE_METADATA_HOST`, else `metadata.google.internal`):
//!    the machine's service account, on a Google Cloud VM.
//!
//! Tokens from 3 and 4 are cached and fetched again five minutes before they expire. The
//! source is chosen when the provider is built, without a network call, and a file that
//! is named but unusable is an error then, not a reason to fall through to the next
//! source.
//!
//! The assertion is signed with *ring*, the crypto library rustls already uses here: it
//! implements RSASSA-PKCS1-v1_5 with SHA-256 in constant time, so no second RSA crate is
//! built; a JWT is otherwise three base64url segments.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bosun_core::{Clock, SystemClock, Timestamp};
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::http::{self, Failure, HttpClient, Response, Secret};
use crate::provider::ProviderError;

pub const TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
pub const TOKEN_FILE_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN_FILE";
pub const APPLICATION_CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
const METADATA_HOST_ENV: &str = "GCE_METADATA_HOST";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// What the tokens may do: manage Compute Engine, nothing else.
const SCOPE: &str = "https://www.googleapis.com/auth/compute";
/// An assertion's lifetime; Google accepts at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// Tokens are replaced this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The metadata server is on the machine's own link; off GCE nothing answers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// The token source the chain chose.
pub(crate) struct GcpCredentials {
    provider: String,
    source: Source,
    clock: Arc<dyn Clock>,
    /// The current token and its expiry, for the sources that fetch tokens. A tokio mutex:
    /// concurrent calls wait for one fetch.
    cached: tokio::sync::Mutex<Option<(Secret, Timestamp)>>,
}

enum Source {
    Token(Secret),
    TokenFile(PathBuf),
    /// Tokens fetched (and cached) from an endpoint.
    Fetched(Fetcher),
}

enum Fetcher {
    ServiceAccount(Box<ServiceAccount>),
    AuthorizedUser(AuthorizedUser),
    Metadata { url: Url, http: HttpClient },
}

struct ServiceAccount {
    file: PathBuf,
    email: String,
    key_id: String,
    key: RsaKeyPair,
    token_uri: Url,
    http: HttpClient,
}

struct AuthorizedUser {
    file: PathBuf,
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_uri: Url,
    http: HttpClient,
}

impl fmt::Debug for GcpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpCredentials").field("source", &self.describe()).finish_non_exhaustive()
    }
}

/// An ADC file: the fields of both kinds bosun reads.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A token endpoint's or the metadata server's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// OAuth's error answer (`{"error": "invalid_grant", "error_description": "..."}`).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl GcpCredentials {
    /// Walks the chain through `env` (variables, and `HOME` for gcloud's file).
    pub(crate) fn resolve(provider: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        Self::resolve_with_clock(provider, env, Arc::new(SystemClock))
    }

    pub(crate) fn resolve_with_clock(
        provider: &str,
        env: &dyn Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ProviderError> {
        let set = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let source = if let Some(token) = set(TOKEN_ENV) {
            Source::Token(Secret::new(token))
        } else if let Some(path) = set(TOKEN_FILE_ENV) {
            Source::TokenFile(PathBuf::from(path))
        } else if let Some(path) = set(APPLICATION_CREDENTIALS_ENV) {
            read_credentials_file(provider, Path::new(&path), APPLICATION_CREDENTIALS_ENV)?
        } else if let Some(path) = gcloud_file(&set).filter(|path| path.is_file()) {
            read_credentials_file(provider, &path, "gcloud's application default credentials")?
        } else {
            let host = set(METADATA_HOST_ENV).unwrap_or_else(|| DEFAULT_METADATA_HOST.to_owned());
            let base = http::parse_base_url(provider, &format!("http://{host}"))?;
            let url = http::join(&base, "/computeMetadata/v1/instance/service-accounts/default/token");
            Source::Fetched(Fetcher::Metadata { http: HttpClient::new(provider, &base)?, url })
        };
        Ok(Self { provider: provider.to_owned(), source, clock, cached: tokio::sync::Mutex::new(None) })
    }

    /// Where the tokens come from, in words (never a secret).
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            Source::Token(_) => format!("the access token in {TOKEN_ENV} (it expires after about an hour)"),
            Source::TokenFile(path) => format!("the access token file {} ({TOKEN_FILE_ENV})", path.display()),
            Source::Fetched(Fetcher::ServiceAccount(account)) => {
                format!("service account {} (key file {})", account.email, account.file.display())
            }
            Source::Fetched(Fetcher::AuthorizedUser(user)) => {
                format!("the user credentials of gcloud application-default login ({})", user.file.display())
            }
            Source::Fetched(Fetcher::Metadata { url, .. }) => format!(
                "the machine's service account, from the GCE metadata server ({}; works on a Google Cloud VM)",
                url.host_str().unwrap_or_default()
            ),
        }
    }

    /// An access token for the next call.
    pub(crate) async fn token(&self) -> Result<Secret, ProviderError> {
        match &self.source {
            Source::Token(token) => Ok(token.clone()),
            Source::TokenFile(path) => self.read_token_file(path).await,
            Source::Fetched(fetcher) => {
                let mut cached = self.cached.lock().await;
                let now = self.clock.now();
                if let Some((token, expires)) = cached.as_ref()
                    && now + REFRESH_MARGIN < *expires
                {
                    return Ok(token.clone());
                }
                let (token, lifetime) = self.fetch(fetcher, now).await?;
                *cached = Some((token.clone(), now + lifetime));
                Ok(token)
            }
        }
    }

    fn failure(&self, failure: Failure, message: impl fmt::Display) -> ProviderError {
        failure.error(&self.provider, format!("{}: {message}", self.describe()))
    }

    async fn read_token_file(&self, path: &Path) -> Result<Secret, ProviderError> {
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            Failure::Unauthorized.error(
                &self.provider,
                format!("cannot read the access token file {} ({TOKEN_FILE_ENV}): {e}", path.display()),
            )
        })?;
        match text.trim() {
            "" => Err(Failure::Unauthorized.error(
                &self.provider,
                format!("the access token file {} ({TOKEN_FILE_ENV}) is empty", path.display()),
            )),
            token => Ok(Secret::new(token)),
        }
    }

    /// A new token and how long it lives.
    async fn fetch(&self, fetcher: &Fetcher, now: Timestamp) -> Result<(Secret, Duration), ProviderError> {
        let (http, request, what) = match fetcher {
            Fetcher::ServiceAccount(account) => {
                let assertion = account.assertion(now).map_err(|e| self.failure(Failure::Invalid, e))?;
                let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)];
                let request = post_form(&account.http, &account.token_uri, &form);
                (&account.http, request, "exchange the signed assertion for a token")
            }
            Fetcher::AuthorizedUser(user) => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", &user.client_id),
                    ("client_secret", user.client_secret.expose()),
                    ("refresh_token", user.refresh_token.expose()),
                ];
                let request = post_form(&user.http, &user.token_uri, &form);
                (&user.http, request, "refresh the user's token")
            }
            Fetcher::Metadata { url, http } => {
                let request = http
                    .request(Method::GET, url.clone())
                    .header("Metadata-Flavor", "Google")
                    .timeout(METADATA_TIMEOUT);
                (http, request, "ask the metadata server for a token")
            }
        };
        let response = http.send(request, what).await.map_err(|error| {
            let hint = match fetcher {
                Fetcher::Metadata { .. } => " (is this a Google Cloud VM?)",
                _ => "",
            };
            self.failure(Failure::Unavailable, format!("{}{hint}", error.detail()))
        })?;
        if !response.is_success() {
            return Err(self.token_error(what, &response));
        }
        let answer: TokenAnswer = serde_json::from_slice(&response.body).map_err(|e| {
            self.failure(Failure::Unavailable, format!("{what}: the answer is not the JSON expected: {e}"))
        })?;
        // Without a lifetime, assume Google's usual hour.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        tracing::debug!(provider = %self.provider, lifetime_s = lifetime.as_secs(), "GCP access token fetched");
        Ok((Secret::new(answer.access_token), lifetime))
    }

    fn token_error(&self, what: &str, response: &Response) -> ProviderError {
        let status = response.status.as_u16();
        let failure = match Failure::from_status(response.status) {
            // The token endpoint answers a refused grant with 400.
            Failure::Invalid => Failure::Unauthorized,
            other => other,
        };
        let detail = match serde_json::from_slice::<OAuthError>(&response.body) {
            Ok(e) if e.error_description.is_empty() => e.error,
            Ok(e) => format!("{} ({})", e.error_description.trim(), e.error),
            Err(_) => format!("HTTP {status}: {}", response.snippet()),
        };
        self.failure(failure, format!("{what}: {detail}"))
    }
}

impl ServiceAccount {
    /// The signed JWT (RFC 7523) asking for a token with [`SCOPE`].
    fn assertion(&self, now: Timestamp) -> Result<String, String> {
        let issued = now.as_datetime().timestamp();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.key_id});
        let claims = json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri.as_str(),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME.as_secs() as i64,
        });
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| "cannot sign the token request with the service account's key".to_owned())?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

fn post_form(http: &HttpClient, url: &Url, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    http.request(Method::POST, url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

fn gcloud_file(set: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let config_dir = set("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".config/gcloud")))?;
    Some(config_dir.join("application_default_credentials.json"))
}

/// Reads an ADC file named by `origin`; anything unusable in it is an error naming the file
/// and the field, never its secrets.
fn read_credentials_file(provider: &str, path: &Path, origin: &str) -> Result<Source, ProviderError> {
    let refused =
        |message: String| Failure::Unauthorized.error(provider, format!("{} ({origin}): {message}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| refused(format!("cannot read it: {e}")))?;
    // serde's message for a bad file names a line and column, never a value.
    let file: CredentialsFile =
        serde_json::from_str(&text).map_err(|e| refused(format!("not a credentials JSON file: {e}")))?;
    let field = |name: &str, value: Option<String>| {
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| refused(format!("{name} is missing")))
    };
    let token_uri = file.token_uri.clone().filter(|u| !u.trim().is_empty());
    let token_uri = http::parse_base_url(provider, token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI))?;
    let http = HttpClient::new(provider, &token_uri)?;
    match file.kind.as_str() {
        "service_account" => {
            let pem = field("private_key", file.private_key)?;
            let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
                .map_err(|_| refused("private_key is not a PEM-encoded PKCS#8 key".to_owned()))?;
            let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                .map_err(|e| refused(format!("private_key is not a usable RSA key: {e}")))?;
            Ok(Source::Fetched(Fetcher::ServiceAccount(Box::new(ServiceAccount {
                file: path.to_owned(),
                email: field("client_email", file.client_email)?,
                key_id: field("private_key_id", file.private_key_id)?,
                key,
                token_uri,
                http,
            }))))
        }
        "authorized_user" => Ok(Source::Fetched(Fetcher::AuthorizedUser(AuthorizedUser {
            file: path.to_owned(),
            client_id: field("client_id", file.client_id)?,
            client_secret: Secret::new(field("client_secret", file.client_secret)?),
            refresh_token: Secret::new(field("refresh_token", file.refresh_token)?),
            token_uri,
            http,
        }))),
        "" => Err(refused("it has no type".to_owned())),
        other => Err(refused(format!(
            "credentials of type {other} are not supported; use a service account key (type service_account) \
             or gcloud auth application-default login"
        ))),
    }
}

#[cfg(test)]
mod tests;
