//! How bosun's clients (the agent, the CLI, the simulator) reach a server: plain HTTP for
//! `http://` URLs, TLS for `https://` ones.
//!
//! TLS is rustls with the *ring* provider, built here rather than through connectrpc's
//! `client-tls` feature, which turns on rustls's default aws-lc-rs provider (a slow C
//! build). The server is verified against the system's roots, or against `--ca-file`
//! alone when one is given; `--insecure-skip-verify` verifies nothing and is named so
//! that nobody sets it by accident. A client certificate (`--client-cert`,
//! `--client-key`) is presented when the server asks for one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connectrpc::ConnectError;
use connectrpc::client::{BoxFuture, ClientBody, ClientTransport, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// TLS options of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust only the CA certificates in this PEM file (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Only for testing: anyone on the path can then read
    /// the traffic and the tokens in it.
    pub insecure_skip_verify: bool,
    /// PEM certificate chain presented to a server that asks for client certificates.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl ClientTls {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.insecure_skip_verify || self.client_cert.is_some() || self.client_key.is_some()
    }
}

/// Why a client could not be set up for TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS options (--ca-file, --insecure-skip-verify, --client-cert) need an https:// server URL")]
    PlainUrl,
    #[error("--client-cert and --client-key go together")]
    HalfClientCert,
    #[error("cannot read {what} {}: {cause}", path.display())]
    Read { what: &'static str, path: PathBuf, cause: String },
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// A client transport: plain HTTP or TLS.
#[derive(Clone)]
pub struct Transport(Inner);

#[derive(Clone)]
enum Inner {
    Plain(HttpClient),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, ClientBody>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Plain(_) => "Transport(plain)",
            Inner::Tls(_) => "Transport(tls)",
        })
    }
}

impl Transport {
    /// The transport for `uri`: TLS for `https`, plain HTTP otherwise. `http2_only`
    /// multiplexes every call over one connection (h2c or ALPN h2).
    pub fn new(uri: &http::Uri, tls: &ClientTls, http2_only: bool) -> Result<Self, TlsSetupError> {
        if uri.scheme_str() != Some("https") {
            if tls.is_set() {
                return Err(TlsSetupError::PlainUrl);
            }
            let client = if http2_only { HttpClient::plaintext_http2_only() } else { HttpClient::plaintext() };
            return Ok(Transport(Inner::Plain(client)));
        }
        let https = https_connector(tls, http2_only)?;
        let mut client = Client::builder(hyper_util::rt::TokioExecutor::new());
        client.timer(hyper_util::rt::TokioTimer::new());
        if http2_only {
            client.http2_only(true);
        }
        Ok(Transport(Inner::Tls(client.build(https))))
    }
}

/// A connector that opens TLS connections (ALPN `h2` only, or `h2` and `http/1.1`), for
/// callers that manage their own HTTP/2 connections.
pub fn https_connector(
    tls: &ClientTls,
    http2_only: bool,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, TlsSetupError> {
    let config = client_config(tls)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Requests are small; waiting for delayed ACKs would add 40 ms to calls.
    http.set_nodelay(true);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only();
    Ok(if http2_only {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_all_versions().wrap_connector(http)
    })
}

impl ClientTransport for Transport {
    type ResponseBody = hyper::body::Incoming;
    type Error = ConnectError;

    fn send(
        &self,
        request: http::Request<ClientBody>,
    ) -> BoxFuture<'static, Result<http::Response<Self::ResponseBody>, Self::Error>> {
        match &self.0 {
            Inner::Plain(client) => client.send(request),
            Inner::Tls(client) => {
                let client = client.clone();
                Box::pin(async move {
                    client
                        .request(request)
                        .await
                        .map_err(|e| ConnectError::unavailable_from_transport("HTTPS request failed", e))
                })
            }
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|e| TlsSetupError::Read { what, path: path.to_owned(), cause: e.to_string() })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Read { what, path: path.to_owned(), cause: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn client_config(tls: &ClientTls) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Tls(e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else if let Some(ca_file) = &tls.ca_file {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("CA file", ca_file)? {
            roots.add(cert).map_err(|e| TlsSetupError::Tls(format!("{}: {e}", ca_file.display())))?;
        }
        builder.with_root_certificates(roots)
    } else {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        builder.with_platform_verifier().map_err(|e| {
            TlsSetupError::Tls(format!("{e} (are the system's CA certificates installed? or pass --ca-file)"))
        })?
    };
    match (&tls.client_cert, &tls.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates("client certificate", cert)?;
            let key_pem = read("client key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsSetupError::Read {
                what: "client key",
                path: key.clone(),
                cause: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| TlsSetupError::Tls(e.to_string()))
        }
        _ => Err(TlsSetupError::HalfClientCert),
    }
}

/// `--insecure-skip-verify`: every certificate is accepted; signatures are still checked
/// so the handshake itself is sound.
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
