//! Connection hygiene: connections that send nothing, stall in their headers or body, or
//! sit idle are closed after their timeouts; beyond `api.max_connections` new connections
//! are closed on arrival and counted, and the served ones are unaffected.
//!
//! Nothing here sleeps: each test waits (bounded) for the server to close a socket.

use std::time::Duration;

use bosun_api::v1;
use bosun_store::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

on_sql_backends!(stalled_and_idle_connections_are_closed, connections_beyond_the_limit_are_closed_and_counted);

/// Generous bound on how long the server may take to act on a sub-second timeout.
const BOUND: Duration = Duration::from_secs(15);

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.server().local_addr()).await.expect("connect")
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    });
    read.await.expect("the server closed the connection");
    String::from_utf8_lossy(&received).into_owned()
}

async fn stalled_and_idle_connections_are_closed(backend: Backend) {
    let mut settings = settings();
    settings.header_read_timeout = Duration::from_millis(300);
    settings.idle_timeout = Duration::from_millis(300);
    settings.request_body_timeout = Duration::from_millis(300);
    let Some(h) = Harness::start_with(backend, settings).await else { return };

    // Connected, silent.
    let mut silent = connect(&h).await;
    assert_eq!(until_closed(&mut silent).await, "");

    // Half a request head (slowloris).
    let mut partial = connect(&h).await;
    partial.write_all(b"POST /bosun.v1.AdminService/ListNodes HTTP/1.1\r\nhost: x\r\n").await.expect("send");
    until_closed(&mut partial).await;

    // Headers, then a body that never arrives: answered with an error, not held.
    let mut body = connect(&h).await;
    let bearer = format!("Bearer {ADMIN}");
    let head = format!(
        "POST /bosun.v1.AdminService/ListNodes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         authorization: {bearer}\r\ncontent-length: 100\r\n\r\n{{"
    );
    body.write_all(head.as_bytes()).await.expect("send");
    let answer = until_closed(&mut body).await;
    assert!(answer.contains("deadline_exceeded") && answer.contains("request_body_timeout"), "{answer}");

    // A complete request on a keep-alive connection, then nothing: closed when idle.
    let mut idle = connect(&h).await;
    let request = format!(
        "POST /bosun.v1.AdminService/ListNodes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         authorization: {bearer}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    idle.write_all(request.as_bytes()).await.expect("send");
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // HTTP/2 (gRPC, Connect) connections are closed when idle too: the client's next
    // call reconnects.
    h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("served");
    h.stop().await;
}

async fn connections_beyond_the_limit_are_closed_and_counted(backend: Backend) {
    let mut settings = settings();
    settings.max_connections = 3;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&h).await;
        // A byte proves the server accepted and is serving it.
        stream.write_all(b"G").await.expect("send");
        held.push(stream);
    }
    let mut extra = connect(&h).await;
    assert_eq!(until_closed(&mut extra).await, "", "closed on arrival");

    drop(held.pop());
    // The freed slot serves again (the server notices the close asynchronously).
    let metrics = tokio::time::timeout(BOUND, async {
        loop {
            if let Some((200, body)) = try_http(&h, "GET", "/metrics", &[], "").await {
                return body;
            }
            tokio::task::yield_now().await;
        }
    });
    let body = metrics.await.expect("a connection was served once one closed");
    let rejected = body.lines().find(|l| l.starts_with("bosun_connections_rejected_total")).unwrap_or("");
    assert!(!rejected.is_empty() && !rejected.ends_with(" 0"), "{body}");
    drop(held);
    h.stop().await;
}
