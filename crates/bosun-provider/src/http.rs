//! The HTTP client the cloud providers share: TLS, deadlines, bounded response bodies, and
//! the translation of transport failures into [`ProviderError`]s.
//!
//! Built on reqwest with rustls and the *ring* crypto provider. reqwest's default rustls
//! provider is aws-lc-rs, a large C build (minutes on a 2-core machine, and cmake on some
//! targets); ring builds in seconds and every cloud API here speaks TLS 1.2/1.3 with
//! suites ring implements. Certificates are checked against the system's roots
//! (rustls-platform-verifier), so a corporate CA installed on the host works. A client of
//! a self-hosted API (a Proxmox cluster with its own CA) may add roots from a PEM file or,
//! when its configuration says so, accept any certificate ([`ServerTrust`]).
//!
//! Credentials never live in the client: each provider adds its `Authorization` header
//! per request, so the client's `Debug` output and reqwest's errors cannot carry them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls_platform_verifier::BuilderVerifierExt;
use url::Url;

use crate::provider::ProviderError;

/// Every call has a deadline, so a hung cloud API cannot wedge the reconciler.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read. A page of 1,000 EC2 instances is a few MB; anything
/// much bigger is not an answer we can use, and reading it unbounded would let a
/// misbehaving endpoint exhaust the server's memory.
pub(crate) const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How much of an unparsable error body goes into an error message.
const SNIPPET_CHARS: usize = 300;

/// A credential. `Debug` never shows it, so it cannot leak through a derived `Debug` of a
/// provider or through a log line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which [`ProviderError`] a failure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Capacity,
    Unavailable,
    Unauthorized,
    Invalid,
}

impl Failure {
    pub(crate) fn error(self, provider: &str, message: impl Into<String>) -> ProviderError {
        let (provider, message) = (provider.to_owned(), message.into());
        match self {
            Failure::Capacity => ProviderError::Capacity { provider, message },
            Failure::Unavailable => ProviderError::Unavailable { provider, message },
            Failure::Unauthorized => ProviderError::Unauthorized { provider, message },
            Failure::Invalid => ProviderError::Invalid { provider, message },
        }
    }

    /// The default reading of an HTTP status, before a provider looks at error codes.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 | 403 => Failure::Unauthorized,
            408 | 429 => Failure::Unavailable,
            s if s >= 500 => Failure::Unavailable,
            _ => Failure::Invalid,
        }
    }
}

/// A response whose body was read in full (within [`MAX_RESPONSE_BYTES`]).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    /// An HTTP/1 reason phrase other than the status's usual one. Proxmox puts its error
    /// messages there (`500 storage 'x' does not exist`), with a body of `{"data":null}`.
    pub(crate) reason: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The start of the body as text, for error messages about bodies we could not parse.
    /// Only used on error responses: success bodies may carry secrets (a GCE listing
    /// includes instance metadata, bootstrap token and all).
    pub(crate) fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            return "(empty body)".to_owned();
        }
        let mut cut: String = text.chars().take(SNIPPET_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
        if text.chars().count() > SNIPPET_CHARS {
            cut.push_str("...");
        }
        cut
    }

    /// Decodes a JSON success body. A body that does not decode means the API changed or
    /// something between us and it (a proxy) answered: reported as unavailable so the
    /// reconciler retries, with serde's account of what did not match.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, provider: &str, what: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::Unavailable.error(provider, format!("{what}: the response is not the JSON expected: {e}"))
        })
    }
}

/// One provider's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    provider: String,
    max_body: usize,
}

impl HttpClient {
    /// A client for `provider` talking to `base_url`, trusting the system's roots.
    pub(crate) fn new(provider: &str, base_url: &Url) -> Result<Self, ProviderError> {
        Self::with_trust(provider, base_url, &ServerTrust::System)
    }

    /// A client for `provider` talking to `base_url`, checking its certificate as `trust` says.
    pub(crate) fn with_trust(provider: &str, base_url: &Url, trust: &ServerTrust) -> Result<Self, ProviderError> {
        let invalid = |message: String| Failure::Invalid.error(provider, message);
        let mut builder = client_builder(trust).map_err(invalid)?.timeout(REQUEST_TIMEOUT);
        // Proxies from HTTPS_PROXY etc. apply to real clouds, but a loopback endpoint (a
        // local emulator, the tests' mock) and the clouds' metadata services (link-local,
        // answering only from the machine itself) are reached directly.
        if is_local(base_url) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| invalid(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Self { client, provider: provider.to_owned(), max_body: MAX_RESPONSE_BYTES })
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request` and reads its body. `what` names the call in error messages
    /// (`"GET /instances"`); transport failures and oversized bodies are
    /// [`ProviderError::Unavailable`]. HTTP error statuses are returned, not mapped: each
    /// provider reads its own error format.
    pub(crate) async fn send(&self, request: RequestBuilder, what: &str) -> Result<Response, ProviderError> {
        let unavailable = |message: String| Failure::Unavailable.error(&self.provider, format!("{what}: {message}"));
        let mut response = request.send().await.map_err(|e| unavailable(transport_message(e)))?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|reason| String::from_utf8_lossy(reason.as_bytes()).chars().filter(|c| !c.is_control()).collect());
        if response.content_length().is_some_and(|len| len > self.max_body as u64) {
            return Err(unavailable(format!("the response is larger than {} bytes", self.max_body)));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(transport_message(e)))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(unavailable(format!("the response is larger than {} bytes", self.max_body)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, reason, body })
    }

    #[cfg(test)]
    pub(crate) fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }
}

/// A client builder with bosun's HTTP defaults, for every HTTP client of the control plane
/// (cloud APIs, the webhook notifier): TLS through rustls with *ring* and the system's CA
/// roots, a connect timeout, no redirects (an API has no reason to redirect, and following
/// one could send a signed request somewhere nobody chose), bosun's user agent. Callers set
/// their own request timeout.
pub fn https_client_builder() -> Result<reqwest::ClientBuilder, String> {
    client_builder(&ServerTrust::System)
}

fn client_builder(trust: &ServerTrust) -> Result<reqwest::ClientBuilder, String> {
    let tls = tls_config(trust).map_err(|e| match trust {
        ServerTrust::System => {
            format!("cannot set up TLS: {e} (are the system's CA certificates, e.g. ca-certificates, installed?)")
        }
        ServerTrust::WithRoots { file, .. } => format!("cannot set up TLS with the CA file {}: {e}", file.display()),
        ServerTrust::AnyCertificate => format!("cannot set up TLS: {e}"),
    })?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bosun/", env!("CARGO_PKG_VERSION"))))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerTrust {
    /// Against the system's roots.
    System,
    /// Against the system's roots and these certificates, read from `file` ([`read_ca_file`]).
    WithRoots { file: std::path::PathBuf, roots: Vec<CertificateDer<'static>> },
    /// Not at all: any certificate is accepted. Only when a configuration says so in as
    /// many words (`verify_tls: false`): anyone on the path can read the traffic.
    AnyCertificate,
}

fn tls_config(trust: &ServerTrust) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions()?;
    let builder = match trust {
        ServerTrust::System => builder.with_platform_verifier()?,
        ServerTrust::WithRoots { roots, .. } => {
            let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(roots.iter().cloned(), provider)?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
        ServerTrust::AnyCertificate => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        }
    };
    Ok(builder.with_no_client_auth())
}

/// The certificates of a PEM file, for [`ServerTrust::WithRoots`]. The error names the
/// file and what is wrong with it.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let roots = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA file {} is not valid PEM: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("the CA file {} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}

/// [`ServerTrust::AnyCertificate`]: every certificate is accepted; the handshake's
/// signatures are still checked, so the connection itself is sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Loopback, link-local, or a cloud's metadata host name.
fn is_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unicast_link_local(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("metadata.google.internal")
        }
        None => false,
    }
}

/// A transport error in words an operator can act on. The URL is left out (the caller
/// names the call), and the cause chain is kept: "connection refused" is the useful part.
/// A transport error in a sentence, without its URL (which may carry credentials).
pub fn transport_message(error: reqwest::Error) -> String {
    if error.is_timeout() {
        // The deadline is the call's own (30 s, longer for GCE's operation wait).
        return "timed out waiting for an answer".to_owned();
    }
    let prefix = if error.is_connect() { "cannot connect" } else { "request failed" };
    format!("{prefix}: {}", chain(&error.without_url()))
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest often repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Joins `path` (starting with '/') onto `base`, keeping any path `base` has (the Lambda
/// and GCE bases end in `/api/v1` and `/compute/v1`).
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// Parses a base URL given to `with_base_url`.
pub(crate) fn parse_base_url(provider: &str, url: &str) -> Result<Url, ProviderError> {
    let parsed =
        Url::parse(url).map_err(|e| Failure::Invalid.error(provider, format!("base URL {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(Failure::Invalid.error(provider, format!("base URL {url:?} must be http(s)://host[:port][/path]")));
    }
    Ok(parsed)
}

/// Whether `value` is safe as one path segment of an API URL. Cloud ids, zones and
/// project ids are; anything else (a `/`, a `..`) could make a crafted id address a
/// different resource, so it is refused before any call.
pub(crate) fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Lowercase hex of `bytes` (SigV4 and name hashes).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{MockApi, Reply};

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_not_buffered() {
        let mock = MockApi::start().await;
        mock.on("GET /big", Reply::text(200, &"x".repeat(2048)));
        mock.on("GET /small", Reply::text(200, "ok"));
        let base = parse_base_url("p", &mock.url).unwrap();
        let client = HttpClient::new("p", &base).unwrap().with_max_body(1024);

        let err = client.send(client.request(Method::GET, join(&base, "/big")), "GET /big").await.unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
        assert_eq!(err.to_string(), "p: temporarily unavailable: GET /big: the response is larger than 1024 bytes");
        let ok = client.send(client.request(Method::GET, join(&base, "/small")), "GET /small").await.unwrap();
        assert_eq!((ok.status.as_u16(), ok.body.as_slice()), (200, b"ok".as_slice()));
    }

    #[test]
    fn snippets_are_short_single_line_text() {
        let response = Response {
            status: StatusCode::BAD_GATEWAY,
            reason: None,
            body: format!("a\nb{}", "c".repeat(400)).into_bytes(),
        };
        let snippet = response.snippet();
        assert!(snippet.starts_with("a b"));
        assert!(snippet.ends_with("..."));
        assert_eq!(snippet.chars().count(), SNIPPET_CHARS + 3);
        assert_eq!(
            Response { status: StatusCode::BAD_GATEWAY, reason: None, body: Vec::new() }.snippet(),
            "(empty body)"
        );
    }

    #[test]
    fn urls_join_under_the_base_path() {
        let base = parse_base_url("p", "https://cloud.example/api/v1/").unwrap();
        assert_eq!(join(&base, "/instances").as_str(), "https://cloud.example/api/v1/instances");
        let root = parse_base_url("p", "http://127.0.0.1:9").unwrap();
        assert_eq!(join(&root, "/x").as_str(), "http://127.0.0.1:9/x");
        assert!(is_local(&root));
        assert!(!is_local(&base));
        for metadata in ["http://169.254.169.254", "http://metadata.google.internal/computeMetadata/v1"] {
            assert!(is_local(&parse_base_url("p", metadata).unwrap()), "{metadata}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }

    #[test]
    fn path_segments_refuse_traversal() {
        for ok in ["us-central1-a", "i-0abc", "bosun-x.y_z", "example.com:proj"] {
            assert!(is_path_segment(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a?b", "a%2F"] {
            assert!(!is_path_segment(bad), "{bad}");
        }
    }
}
