//! A machine's SSH server, in-process (russh's server side): it accepts one user with one
//! public key and runs each exec request with `sh`, the script on its standard input, as
//! sshd would. Switched "down", it drops every connection before the SSH handshake, as a
//! booting machine does.
//!
//! The keys in `testdata/` were made for these tests with `ssh-keygen` and guard nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use russh::keys::PublicKey;
use russh::server::{Auth, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::ChildStdin;

pub const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/testdata");

pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(TESTDATA).join(name)
}

/// One exec request the server ran.
#[derive(Debug, Clone)]
pub struct Exec {
    pub user: String,
    pub command: String,
    pub stdin: String,
}

#[derive(Debug, Default)]
struct Shared {
    execs: Mutex<Vec<Exec>>,
    connections: AtomicUsize,
    down: AtomicBool,
}

pub struct SshServer {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

impl SshServer {
    /// Serves `user` holding the private half of `authorized` (a `testdata/` file name).
    pub async fn start(user: &str, authorized: &str) -> SshServer {
        let host_key = russh::keys::load_secret_key(key_path("ssh_host_ed25519_key"), None).expect("host key");
        let authorized = PublicKey::read_openssh_file(key_path(&format!("{authorized}.pub"))).expect("public key");
        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            auth_rejection_time: std::time::Duration::from_millis(0),
            auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
            ..Default::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        let user = user.to_owned();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                if accepting.down.load(Ordering::SeqCst) {
                    drop(socket);
                    continue;
                }
                let handler = Machine {
                    user: user.clone(),
                    authorized: authorized.clone(),
                    shared: Arc::clone(&accepting),
                    logged_in: String::new(),
                    stdin: HashMap::new(),
                };
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                        let _ = session.await;
                    }
                });
            }
        });
        SshServer { address, shared }
    }

    /// Drops connections before the handshake (`true`) or serves them.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn execs(&self) -> Vec<Exec> {
        self.shared.execs.lock().expect("lock").clone()
    }
}

/// One connection's handler.
struct Machine {
    user: String,
    authorized: PublicKey,
    shared: Arc<Shared>,
    logged_in: String,
    /// Each running command's standard input, until the client's EOF.
    stdin: HashMap<ChannelId, (ChildStdin, usize)>,
}

impl russh::server::Handler for Machine {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if user == self.user && key.public_key.key_data() == self.authorized.key_data() {
            self.logged_in = user.to_owned();
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let index = {
            let mut execs = self.shared.execs.lock().expect("lock");
            execs.push(Exec { user: self.logged_in.clone(), command, stdin: String::new() });
            execs.len() - 1
        };
        self.stdin.insert(channel, (child.stdin.take().expect("stdin"), index));
        let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
        session.channel_success(channel)?;
        let handle = session.handle();
        tokio::spawn(async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            let status = child.wait().await.expect("wait");
            if !out.is_empty() {
                let _ = handle.data(channel, out).await;
            }
            if !err.is_empty() {
                let _ = handle.extended_data(channel, 1, err).await;
            }
            let code = u32::try_from(status.code().unwrap_or(255)).unwrap_or(255);
            let _ = handle.exit_status_request(channel, code).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        if let Some((stdin, index)) = self.stdin.get_mut(&channel) {
            let _ = stdin.write_all(data).await;
            self.shared.execs.lock().expect("lock")[*index].stdin.push_str(&String::from_utf8_lossy(data));
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        // Dropping the pipe is the shell's end of input.
        self.stdin.remove(&channel);
        Ok(())
    }
}
