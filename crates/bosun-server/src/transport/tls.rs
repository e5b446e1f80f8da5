//! TLS for the API port: rustls with the ring provider, certificates from PEM files,
//! reloaded on SIGHUP and when the files change, and optional client certificates.
//!
//! A reload builds a whole new `ServerConfig` and swaps it in: connections accepted after
//! it use the new certificate, open ones keep the one they were accepted with. A reload
//! that fails (a half-written file, a key that does not match) is logged and the current
//! configuration stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bosun_config::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

/// How often the files are looked at for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {cause}", path.display())]
    Read { what: &'static str, path: PathBuf, cause: String },
    #[error("{} holds no {what}", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("the certificate {} and the key {} do not form a usable pair: {cause}", cert.display(), key.display())]
    Pair { cert: PathBuf, key: PathBuf, cause: String },
    #[error("the client CA {} cannot verify client certificates: {cause}", path.display())]
    ClientCa { path: PathBuf, cause: String },
}

/// The server's TLS configuration, reloadable.
#[derive(Debug)]
pub(crate) struct ReloadableTls {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    /// Modification times the current configuration was loaded from.
    loaded_from: std::sync::Mutex<Vec<Option<SystemTime>>>,
}

impl ReloadableTls {
    pub(crate) fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let stamps = stamps(&files);
        let config = build(&files)?;
        Ok(Self { files, config: ArcSwap::from_pointee(config), loaded_from: std::sync::Mutex::new(stamps) })
    }

    /// The configuration new connections are accepted with.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Whether AgentService callers must present a client certificate.
    pub(crate) fn requires_agent_certificates(&self) -> bool {
        self.files.client_ca_file.is_some()
    }

    /// Re-reads the files; keeps the current configuration on error.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.files);
        let config = build(&self.files)?;
        self.config.store(Arc::new(config));
        *self.loaded_from.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        tracing::info!(cert = %self.files.cert_file.display(), "TLS certificate reloaded");
        Ok(())
    }

    fn changed(&self) -> bool {
        *self.loaded_from.lock().unwrap_or_else(|p| p.into_inner()) != stamps(&self.files)
    }

    /// Reloads on SIGHUP and when a file's modification time changes, until `stop`.
    pub(crate) fn watch(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are reloaded when they change");
                    None
                }
            };
            let mut ticks = tokio::time::interval(WATCH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let asked = tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => false,
                    Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => None } } => true,
                };
                if (asked || self.changed())
                    && let Err(error) = self.reload()
                {
                    tracing::error!(%error, "TLS reload failed; still serving the previous certificate");
                }
            }
        })
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [Some(&files.cert_file), Some(&files.key_file), files.client_ca_file.as_ref()]
        .into_iter()
        .flatten()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { what, path: path.to_owned(), cause: e.to_string() })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Read {
        what,
        path: path.to_owned(),
        cause: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_owned() });
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = certificates("certificate", &files.cert_file)?;
    let key_pem = read("private key", &files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Read {
        what: "private key",
        path: files.key_file.clone(),
        cause: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions().map_err(
            |e| TlsError::Pair { cert: files.cert_file.clone(), key: files.key_file.clone(), cause: e.to_string() },
        )?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("client CA", path)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa { path: path.clone(), cause: e.to_string() })?;
            }
            // Operators' clients need no certificate: a presented one must verify, and
            // AgentService calls without one are refused (see `Authenticate`).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa { path: path.clone(), cause: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Pair {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        cause: e.to_string(),
    })?;
    // HTTP/2 first: gRPC needs it, and Connect clients multiplex on it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
