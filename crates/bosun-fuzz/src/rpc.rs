//! RPC targets: the input's first byte picks one of the bosun.v1 methods, the rest is the request
//! body, sent as Connect JSON or binary protobuf to a real server (memory store, no tokens,
//! so every request reaches its handler) over loopback. Any 5xx answer is a failure.

use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// Every method of AgentService and AdminService.
pub use bosun_api::V1_METHODS as RPCS;

/// A server on loopback for the whole process, with its own runtime.
struct Target {
    runtime: tokio::runtime::Runtime,
    url: String,
    client: Client<HttpConnector, Full<Bytes>>,
    // Kept alive for the process.
    _server: bosun_server::ServerHandle,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fuzz target");
        let server = runtime.block_on(async {
            let clock: std::sync::Arc<dyn bosun_core::Clock> =
                std::sync::Arc::new(bosun_core::FakeClock::at_default_epoch());
            let store: bosun_store::SharedStore =
                std::sync::Arc::new(bosun_store::MemoryStore::new(bosun_store::StoreOptions::new(clock.clone())));
            let settings = bosun_server::Settings {
                // Long polls answer at once: a fuzz input must not wait.
                command_poll_wait: Duration::from_millis(1),
                ..bosun_server::Settings::default()
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            bosun_server::Server::start(listener, store, clock, settings, false).await.expect("server starts")
        });
        let url = server.url();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Target { runtime, url, client, _server: server }
    })
}

/// Sends `body` to the method picked by `data[0]` and returns the HTTP status and body.
pub fn call(data: &[u8], content_type: &str) -> Option<(u16, String)> {
    let (&selector, body) = data.split_first()?;
    let method = RPCS[usize::from(selector) % RPCS.len()];
    let target = target();
    let request = hyper::Request::post(format!("{}{method}", target.url))
        .header("content-type", content_type)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a request");
    target.runtime.block_on(async {
        let response = tokio::time::timeout(Duration::from_secs(30), target.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} did not answer within 30 s"))
            .unwrap_or_else(|error| panic!("{method}: the connection failed: {error}"));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    })
}

fn check(data: &[u8], content_type: &str) {
    if let Some((status, body)) = call(data, content_type) {
        let method = RPCS[usize::from(data[0]) % RPCS.len()];
        assert!(status < 500, "{method} answered {status}: {body}");
    }
}

/// Connect JSON decoding of every RPC, through the handlers.
pub fn rpc_json(data: &[u8]) {
    check(data, "application/json");
}

/// Binary protobuf decoding of every RPC, through the handlers.
pub fn rpc_proto(data: &[u8]) {
    check(data, "application/proto");
}
