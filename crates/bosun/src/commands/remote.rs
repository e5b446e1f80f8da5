//! What every command that talks to a running server shares: where it is, the token, the
//! output format, and errors phrased for the operator.

use std::time::Duration;

use anyhow::anyhow;
use bosun_api::v1;
use clap::Args;
use connectrpc::client::{CallOptions, ClientConfig, HttpClient};
use connectrpc::{ConnectError, ErrorCode};

use crate::output::Format;

pub const DEFAULT_SERVER: &str = "http://localhost:50051";

#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The bosun server.
    #[arg(short, long, global = true, env = "BOSUN_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
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
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    bosun_config::duration::parse(text).map_err(|e| e.to_string())
}

impl Remote {
    fn config(&self) -> anyhow::Result<ClientConfig> {
        let uri = bosun_api::agent_client::server_uri(&self.server)?;
        let mut config = ClientConfig::new(uri).with_default_timeout(self.timeout);
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        Ok(config)
    }

    pub fn admin(&self) -> anyhow::Result<Admin> {
        Ok(Admin { client: v1::AdminServiceClient::new(HttpClient::plaintext(), self.config()?), remote: self.clone() })
    }
}

/// The AdminService client, with errors turned into operator messages.
pub struct Admin {
    pub client: v1::AdminServiceClient<HttpClient>,
    remote: Remote,
}

impl Admin {
    /// Explains a failed call: what the server said, and what to do about transport
    /// failures and refused credentials.
    pub fn explain(&self, error: ConnectError) -> anyhow::Error {
        let message = error.message.clone().unwrap_or_default();
        let server = &self.remote.server;
        match error.code {
            ErrorCode::Unavailable | ErrorCode::Unknown if is_transport(&message) => anyhow!(
                "cannot reach the bosun server at {server}: {message} (is `bosun server` running? set --server or BOSUN_SERVER)"
            ),
            ErrorCode::DeadlineExceeded => {
                anyhow!("the bosun server at {server} did not answer within {:?} (--timeout)", self.remote.timeout)
            }
            ErrorCode::Unauthenticated => anyhow!("{message} (pass a token with --token or BOSUN_TOKEN)"),
            code => anyhow!("{}: {message}", code.as_str()),
        }
    }

    /// Options for a call that may legitimately run long (watch streams).
    pub fn streaming_options(&self) -> CallOptions {
        CallOptions::default().with_timeout(Duration::from_secs(365 * 24 * 3600))
    }
}

fn is_transport(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["connect", "refused", "dns", "resolve", "transport", "broken pipe", "reset"].iter().any(|w| message.contains(w))
}

/// Calls `$method` on the admin client and explains a failure.
macro_rules! call {
    ($admin:expr, $method:ident, $request:expr) => {
        $admin.client.$method($request).await.map_err(|e| $admin.explain(e))?.into_owned()
    };
}
pub(crate) use call;
