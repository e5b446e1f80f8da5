//! The API port: accepting connections, TLS, and the limits every connection lives under.
//!
//! One accept loop serves plain HTTP or TLS (rustls, ALPN `h2` and `http/1.1`), HTTP/1.1
//! and HTTP/2 alike (gRPC needs h2), and enforces:
//! - **a connection limit** (`api.max_connections`, kept below the file limit): a
//!   connection over the limit is closed at once, counted in
//!   `bosun_connections_rejected_total` and logged (at most once a minute), so the
//!   connections being served keep their file descriptors;
//! - **a header-read timeout**: a connection must finish its TLS handshake, or send its
//!   first byte and then a request's headers, within `api.header_read_timeout`;
//! - **an idle timeout**: a connection with no request in flight for `api.idle_timeout`
//!   is closed (gracefully: HTTP/2 GOAWAY);
//! - **HTTP/2 stream limits** (`api.max_concurrent_streams`, hyper's reset-flood guard).
//!
//! The request body timeout is enforced per request by the router (`http.rs`), where an
//! error can be answered in the caller's protocol.

mod activity;
mod first_byte;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use futures::FutureExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use self::activity::Activity;
use self::first_byte::FirstByteDeadline;
use self::tls::ReloadableTls;
use crate::metrics::Metrics;

/// File descriptors kept free of connections: the store, log files, the blocking pool's
/// needs and the occasional outbound call.
const RESERVED_FILES: u64 = 256;

/// Who is on the other end of a request's connection, attached to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// The peer presented a client certificate the configured client CA verified.
    pub client_certified: bool,
}

/// How connections are accepted and bounded.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub tls: Option<Arc<ReloadableTls>>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_concurrent_streams: u32,
}

/// Raises the soft limit on open files to the hard limit and returns the soft limit now
/// in force. A server holding thousands of agent connections needs far more than the
/// usual default of 1,024.
pub(crate) fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit; connections are bounded by the current one");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// `configured` connections, or fewer when the file limit cannot hold them.
pub(crate) fn effective_max_connections(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else { return configured };
    let fit = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX).max(1);
    if fit < configured {
        tracing::warn!(
            configured,
            serving = fit,
            file_limit = limit,
            "api.max_connections is above what the open-file limit allows; raise the hard limit (ulimit -Hn, \
             LimitNOFILE=) to serve more"
        );
        return fit;
    }
    configured
}

/// Serves `router` on `listener` until `shutdown`, then waits for open connections to
/// finish (they are asked to close at once; in-flight requests complete). `killed` drops
/// every connection at once instead, as the end of the process would.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    transport: Transport,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    killed: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(transport.max_connections));
    let connections = TaskTracker::new();
    let rejections = RejectionLog::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: transient.
                // Back off briefly rather than spin.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.connection_rejected();
            rejections.note(transport.max_connections, peer);
            drop(stream);
            continue;
        };
        // A response written in several segments (HTTP/2 headers, data, trailers) must
        // not wait for the client's delayed ACK (40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let connection = Connection {
            router: router.clone(),
            transport: transport.clone(),
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
            peer,
            _permit: permit,
        };
        let killed = killed.clone();
        connections.spawn(async move {
            tokio::select! {
                () = connection.run(stream) => {}
                () = killed.cancelled() => {}
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The answer to a request whose handler panicked.
fn internal_error() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = r#"{"code":"internal","message":"the server failed to answer this request (a bug in bosun, logged)"}"#;
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, [(axum::http::header::CONTENT_TYPE, "application/json")], body)
        .into_response()
}

/// Logs that the connection limit was reached, at most once a minute.
#[derive(Debug, Default)]
struct RejectionLog {
    last: std::sync::Mutex<Option<Instant>>,
    since_last: AtomicU64,
}

impl RejectionLog {
    fn note(&self, limit: usize, peer: SocketAddr) {
        let rejected = self.since_last.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            self.since_last.store(0, Ordering::Relaxed);
            tracing::warn!(
                limit,
                rejected,
                %peer,
                "connection limit reached: new connections are closed at once (api.max_connections)"
            );
        }
    }
}

/// One accepted connection.
struct Connection {
    router: Router,
    transport: Transport,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    peer: SocketAddr,
    /// Released when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let _open = self.metrics.connection_opened();
        let deadline = self.transport.header_read_timeout;
        match self.transport.tls.clone() {
            None => self.serve(FirstByteDeadline::new(stream, deadline), false).await,
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        // rustls verified any chain it kept against the client CA.
                        let certified = stream.get_ref().1.peer_certificates().is_some_and(|chain| !chain.is_empty());
                        self.serve(stream, certified).await;
                    }
                    Ok(Err(error)) => tracing::debug!(peer = %self.peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve<I>(self, io: I, client_certified: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::default());
        let peer = Peer { addr: self.peer, client_certified };
        let router = self.router;
        let requests = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer);
            let in_flight = requests.start();
            let router = router.clone();
            async move {
                // A panic is a bug in bosun; it answers 500 (internal) rather than dropping
                // the connection and every request multiplexed on it.
                let response = std::panic::AssertUnwindSafe(router.oneshot(request.map(axum::body::Body::new)))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        tracing::error!("a request handler panicked (a bug in bosun); answered 500");
                        Ok(internal_error())
                    });
                drop(in_flight);
                response
            }
        });

        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.transport.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.transport.max_concurrent_streams)
            // Dead peers holding HTTP/2 connections are found by pings.
            .keep_alive_interval(Some(self.transport.idle_timeout))
            .keep_alive_timeout(Duration::from_secs(20));
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle = activity.idle_for(self.transport.idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = &mut idle, if !closing => {
                    tracing::debug!(peer = %self.peer, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = self.shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
