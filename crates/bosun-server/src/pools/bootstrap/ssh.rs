//! The SSH client of the bootstrap (russh): connect with the pool's user and key, run one
//! script per session, collect its output and exit status.
//!
//! Host keys are not verified: a new cloud machine's key is unknown to bosun until it
//! boots, and no provider here publishes it through its API (Navarch skips the check too).
//! The fingerprint is logged, so an operator can compare it with the machine's console.
//! The bootstrap sends the agent token over this channel; run it over networks you trust
//! (a VPC, a private subnet) until host keys are pinned.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
use russh::{ChannelMsg, Disconnect};

use super::script::Output;

/// How long a machine has to accept the connection and the key.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a session could not run commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SshError {
    /// Nothing answered (yet): the machine is still booting, or a firewall is in the way.
    #[error("cannot reach {address}: {message}")]
    Unreachable { address: SocketAddr, message: String },
    /// The machine answered and refused the user or key.
    #[error("{address} refused user {user} with the pool's key (is the key installed for that user?)")]
    Refused { address: SocketAddr, user: String },
    /// The session broke.
    #[error("SSH session with {address} failed: {message}")]
    Session { address: SocketAddr, message: String },
}

/// The private key of `ssh_private_key_path`, read for each attempt (so a rotated key is
/// used at once); a leading `~/` is the server's home.
pub(super) fn load_key(path: &Path) -> Result<PrivateKey, String> {
    let expanded = match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_owned(),
    };
    russh::keys::load_secret_key(&expanded, None).map_err(|error| match error {
        russh::keys::Error::KeyIsEncrypted => format!(
            "the SSH key {} is protected by a passphrase, which bosun cannot enter; use a key without one",
            expanded.display()
        ),
        other => format!("cannot read the SSH key {}: {other}", expanded.display()),
    })
}

/// Accepts the machine's host key (see the module docs) and logs its fingerprint.
struct AcceptHostKey {
    address: SocketAddr,
}

impl client::Handler for AcceptHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fingerprint = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256).to_string(),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256).to_string()
            }
        };
        tracing::info!(address = %self.address, %fingerprint, "SSH host key of a machine being bootstrapped");
        Ok(true)
    }
}

/// An authenticated session.
pub(super) struct Session {
    address: SocketAddr,
    handle: Handle<AcceptHostKey>,
}

/// What one command did.
#[derive(Debug)]
pub(super) struct Ran {
    pub stdout: String,
    pub stderr: String,
    /// `None`: it did not finish (timed out, or the session broke).
    pub exit_code: Option<u32>,
    pub duration: Duration,
}

impl Session {
    /// Connects and authenticates as `user` with `key`.
    pub(super) async fn open(address: SocketAddr, user: &str, key: PrivateKey) -> Result<Session, SshError> {
        let unreachable = |message: String| SshError::Unreachable { address, message };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            ..client::Config::default()
        });
        let connect = client::connect(config, address, AcceptHostKey { address });
        // Anything that goes wrong before authentication (refused, reset, a half-started
        // sshd) is a machine still booting: retried, not logged.
        let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => return Err(unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Ok(Ok(handle)) => handle,
        };
        let session = |error: russh::Error| SshError::Session { address, message: error.to_string() };
        // RSA keys sign with the strongest hash the server takes; others ignore it.
        let hash = handle.best_supported_rsa_hash().await.map_err(session)?.flatten();
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(session)?;
        if !auth.success() {
            return Err(SshError::Refused { address, user: user.to_owned() });
        }
        Ok(Session { address, handle })
    }

    /// Runs [`super::script::REMOTE_COMMAND`] with `script` on its standard input, for at
    /// most `timeout`.
    pub(super) async fn run(&self, script: &str, timeout: Duration) -> Result<Ran, SshError> {
        let started = Instant::now();
        let session = |error: russh::Error| SshError::Session { address: self.address, message: error.to_string() };
        let mut channel = self.handle.channel_open_session().await.map_err(session)?;
        channel.exec(true, super::script::REMOTE_COMMAND).await.map_err(session)?;
        channel.data(script.as_bytes()).await.map_err(session)?;
        channel.eof().await.map_err(session)?;
        let (mut stdout, mut stderr, mut exit_code) = (Output::default(), Output::default(), None);
        let finished = tokio::time::timeout(timeout, async {
            while let Some(message) = channel.wait().await {
                match message {
                    ChannelMsg::Data { data } => stdout.push(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.push(&data),
                    ChannelMsg::ExitStatus { exit_status } => exit_code = Some(exit_status),
                    _ => {}
                }
            }
        })
        .await;
        if finished.is_err() {
            // Closing the channel ends the remote command (sshd hangs it up).
            let _ = channel.close().await;
            stderr.push(format!("\n[bosun stopped waiting after {}s]\n", timeout.as_secs()).as_bytes());
        }
        Ok(Ran { stdout: stdout.into_text(), stderr: stderr.into_text(), exit_code, duration: started.elapsed() })
    }

    pub(super) async fn close(self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "bootstrap done", "en").await;
    }
}
