//! What every command that talks to a running server shares: where it is, the token, the
//! output format, and errors phrased for the operator.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use bosun_api::servers::{Failover, Servers, server_uris};
use bosun_api::{ClientTls, Transport, v1};
use clap::Args;
use connectrpc::client::{CallOptions, ClientConfig};
use connectrpc::{ConnectError, ErrorCode};

use crate::output::Format;

pub const DEFAULT_SERVER: &str = "http://localhost:50051";

#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The bosun server; several servers separated by commas (the next is tried when no
    /// connection can be made to one).
    #[arg(short, long, global = true, env = "BOSUN_SERVER", default_value = DEFAULT_SERVER, value_name = "URL[,URL...]")]
    pub server: String,
    /// Bearer token (operator or admin).
    #[arg(long, global = true, env = "BOSUN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Give up on a call after this long, e.g. 30s.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How a client verifies an `https://` server and proves itself to it.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Trust only the CA certificates in this PEM file for an https:// server (default: the
    /// system's roots).
    #[arg(long, global = true, env = "BOSUN_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For testing only: anyone on the network path can
    /// then read the traffic, tokens included.
    #[arg(long, global = true, env = "BOSUN_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,
    /// PEM client certificate, for a server with api.tls.client_ca_file.
    #[arg(long, global = true, env = "BOSUN_CLIENT_CERT", value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "BOSUN_CLIENT_KEY", value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    pub fn client_tls(&self) -> ClientTls {
        if self.insecure_skip_verify {
            tracing::warn!("--insecure-skip-verify: the server's certificate is not checked");
        }
        ClientTls {
            ca_file: self.ca_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    bosun_config::duration::parse(text).map_err(|e| e.to_string())
}

impl Remote {
    fn config(&self, uri: http::Uri) -> ClientConfig {
        let mut config = ClientConfig::new(uri).with_default_timeout(self.timeout);
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        config
    }

    pub fn admin(&self) -> anyhow::Result<Admin> {
        let tls = self.tls.client_tls();
        let mut servers = Vec::new();
        for uri in server_uris(&self.server)? {
            let transport = Transport::new(&uri, &tls, false)?;
            let name = uri.to_string().trim_end_matches('/').to_owned();
            servers.push((name, v1::AdminServiceClient::new(transport, self.config(uri))));
        }
        // Some operator calls are not safe to repeat: move on only when nothing was sent.
        Ok(Admin { servers: Servers::new(servers, Failover::Unsent), remote: self.clone() })
    }
}

impl Remote {
    /// The OpsService client (runbooks, runs, approvals, audit).
    pub fn ops(&self) -> anyhow::Result<Ops> {
        let tls = self.tls.client_tls();
        let mut servers = Vec::new();
        for uri in server_uris(&self.server)? {
            let transport = Transport::new(&uri, &tls, false)?;
            let name = uri.to_string().trim_end_matches('/').to_owned();
            servers.push((name, v1::OpsServiceClient::new(transport, self.config(uri))));
        }
        Ok(Ops { servers: Servers::new(servers, Failover::Unsent), remote: self.clone() })
    }
}

/// The OpsService client, with errors turned into operator messages.
pub struct Ops {
    pub servers: Servers<v1::OpsServiceClient<Transport>>,
    remote: Remote,
}

impl Ops {
    pub fn explain(&self, error: ConnectError) -> anyhow::Error {
        explain(&self.remote, error)
    }
}

/// The AdminService client, with errors turned into operator messages.
pub struct Admin {
    pub servers: Servers<v1::AdminServiceClient<Transport>>,
    remote: Remote,
}

impl Admin {
    /// Explains a failed call: what the server said, and what to do about transport
    /// failures and refused credentials.
    pub fn explain(&self, error: ConnectError) -> anyhow::Error {
        explain(&self.remote, error)
    }

    /// Options for a call that may legitimately run long (watch streams).
    pub fn streaming_options(&self) -> CallOptions {
        CallOptions::default().with_timeout(Duration::from_secs(365 * 24 * 3600))
    }
}

/// A failed call in the operator's terms: no server there, a server whose store is down,
/// refused credentials, or what the server said.
fn explain(remote: &Remote, error: ConnectError) -> anyhow::Error {
    let message = error.message.clone().unwrap_or_default();
    let server = &remote.server;
    // A transport failure carries its cause; an error the server sent does not.
    let from_transport = std::error::Error::source(&error).is_some();
    let unreachable = from_transport || is_transport(&message) && !from_server(&message);
    match error.code {
        ErrorCode::Unavailable | ErrorCode::Unknown if unreachable => anyhow!(
            "cannot reach the bosun server at {server}: {message} (is `bosun server` running? set --server or \
             BOSUN_SERVER)"
        ),
        ErrorCode::Unavailable => anyhow!(
            "the bosun server at {server} answered 503 unavailable: {message} (the server is up but its store is \
             not; it recovers by itself once the store is back, so retry shortly)"
        ),
        ErrorCode::ResourceExhausted => anyhow!("the bosun server at {server} is refusing this for now: {message}"),
        ErrorCode::DeadlineExceeded => {
            anyhow!("the bosun server at {server} did not answer within {:?} (--timeout)", remote.timeout)
        }
        ErrorCode::Unauthenticated => anyhow!("{message} (pass a token with --token or BOSUN_TOKEN)"),
        code => anyhow!("{}: {message}", code.as_str()),
    }
}

/// Messages of the server's own unavailable answers (see bosun-store's `StoreError`).
fn from_server(message: &str) -> bool {
    message.starts_with("store unavailable") || message.starts_with("store lost")
}

fn is_transport(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["connect", "refused", "dns", "resolve", "transport", "broken pipe", "reset"].iter().any(|w| message.contains(w))
}

/// Calls `$method` on the admin client and explains a failure.
macro_rules! call {
    ($admin:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $admin.servers.call(|client| client.$method(request.clone())).await.map_err(|e| $admin.explain(e))?.into_owned()
    }};
}
pub(crate) use call;

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Remote {
        Remote {
            server: "http://bosun.example:50051".into(),
            token: None,
            timeout: Duration::from_secs(30),
            output: Format::Table,
            tls: TlsArgs::default(),
        }
    }

    #[test]
    fn no_server_and_a_server_whose_store_is_down_read_differently() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let transport = ConnectError::unavailable_from_transport("HTTP request failed", refused);
        let text = explain(&remote(), transport).to_string();
        assert!(text.starts_with("cannot reach the bosun server at http://bosun.example:50051"), "{text}");

        // PostgreSQL down: the server's message mentions a refused connection too.
        let store_down = ConnectError::unavailable("store unavailable: database error: connection refused");
        let text = explain(&remote(), store_down).to_string();
        assert!(text.starts_with("the bosun server at http://bosun.example:50051 answered 503 unavailable"), "{text}");
        assert!(text.contains("its store is not"), "{text}");
    }
}
