//! The dashboard over plain HTTP: the overview of an open server, its security headers and
//! stylesheet, and the page a server with tokens shows instead of the fleet.

use bosun_agent::ControlPlane;
use bosun_server::Settings;
use bosun_store::Backend;

use crate::harness::*;

on_every_backend!(an_open_servers_overview_shows_its_nodes_under_a_strict_policy, a_server_with_tokens_shows_no_fleet);

/// A raw `GET path`: status, headers (lower-cased names) and body.
async fn get(h: &Harness, path: &str) -> (u16, String, String) {
    let address = h.server().local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn assert_strict_policy(head: &str) {
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff") && head.contains("x-frame-options: deny"), "{head}");
}

async fn an_open_servers_overview_shows_its_nodes_under_a_strict_policy(backend: Backend) {
    let settings = Settings { auth: Default::default(), ..settings() };
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    for node in ["gpu-1", "gpu-2", "gpu-3"] {
        h.agent_client().register(&registration(node), None).await.expect("register");
    }

    let (status, head, body) = get(&h, "/ui/").await;
    assert_eq!(status, 200, "{body}");
    assert_strict_policy(&head);
    assert!(head.contains("content-type: text/html; charset=utf-8") && head.contains("cache-control: no-store"));
    assert!(body.contains("<caption>3 nodes</caption>"), "{body}");
    let active = body.lines().find(|line| line.contains("<th scope=\"row\">ACTIVE</th>")).expect("an ACTIVE row");
    assert!(active.ends_with("<td>3</td></tr>"), "three ACTIVE nodes: {active}");
    assert!(body.contains("This server is open"), "an open server says so");
    assert!(body.contains("gpu-3"), "the registrations are among the recent changes: {body}");
    // Nothing inline for the policy to refuse.
    for inline in ["<script", "style=", " onclick=", "javascript:"] {
        assert!(!body.contains(inline), "{inline} in {body}");
    }

    let (status, head, css) = get(&h, "/ui/static/bosun.css").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css") && css.contains("prefers-color-scheme: dark"), "{head}");
    let (status, head, _) = get(&h, "/ui").await;
    assert_eq!(status, 303);
    assert!(head.contains("location: /ui/"), "{head}");
}

async fn a_server_with_tokens_shows_no_fleet(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");

    let (status, head, body) = get(&h, "/ui/").await;
    assert_eq!(status, 403, "{body}");
    assert_strict_policy(&head);
    assert!(body.contains("Sign-in needed") && body.contains("auth.tokens"), "{body}");
    assert!(!body.contains("gpu-1"), "nothing of the fleet: {body}");
}
