//! The dashboard over plain HTTP: the overview of an open server, its security headers and
//! stylesheet, and the page a server with tokens shows instead of the fleet.

use bosun_agent::ControlPlane;
use bosun_server::Settings;
use bosun_store::Backend;

use crate::harness::*;

on_every_backend!(
    an_open_servers_overview_shows_its_nodes_under_a_strict_policy,
    a_server_with_tokens_shows_no_fleet,
    the_nodes_page_filters_and_pages_in_the_store_and_a_node_page_shows_its_history,
);

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
    let active = body.lines().find(|line| line.contains(">ACTIVE</a></th>")).expect("an ACTIVE row");
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

fn open_settings() -> Settings {
    Settings { auth: Default::default(), ..settings() }
}

/// The node ids a nodes page lists, in its order.
fn listed(body: &str) -> Vec<String> {
    body.split("<th scope=\"row\"><a href=\"/ui/nodes/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The `href` of the link whose text is `text`, as the browser would follow it.
fn link(body: &str, text: &str) -> Option<String> {
    let (before, _) = body.split_once(&format!(">{text}</a>"))?;
    let href = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#x3d;", "=").replace("&#61;", "="))
}

async fn the_nodes_page_filters_and_pages_in_the_store_and_a_node_page_shows_its_history(backend: Backend) {
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    let agent = h.agent_client();
    for i in 0..120 {
        let mut registration = registration(&format!("gpu-{i:03}"));
        if i % 4 == 0 {
            registration.labels.insert("team", "ml").expect("label");
        }
        if i == 7 {
            registration.labels.insert("note", "<b>bold</b>").expect("label");
        }
        agent.register(&registration, None).await.expect("register");
    }

    // Pages of 100 in id order; the next page continues where the first stopped.
    let (status, head, first) = get(&h, "/ui/nodes").await;
    assert_eq!(status, 200, "{first}");
    assert_strict_policy(&head);
    let ids = listed(&first);
    assert_eq!((ids.len(), ids[0].as_str(), ids[99].as_str()), (100, "gpu-000", "gpu-099"));
    assert!(first.contains("8 × NVIDIA H100 80GB HBM3"), "GPUs shown");
    assert!(
        first.contains("note=&#60;b&#62;bold&#60;/b&#62;") || first.contains("note=&lt;b&gt;bold&lt;/b&gt;"),
        "escaped"
    );
    assert!(!first.contains("<b>bold</b>"), "a label is text, never markup");
    let next = link(&first, "Next page").expect("a next page");
    let (status, _, second) = get(&h, &next).await;
    assert_eq!(status, 200, "{second}");
    let ids = listed(&second);
    assert_eq!((ids.len(), ids[0].as_str(), ids[19].as_str()), (20, "gpu-100", "gpu-119"));
    assert!(link(&second, "Next page").is_none() && link(&second, "First page").is_some());

    // Filters are in the query string, so a filtered view is a link.
    let (_, _, ml) = get(&h, "/ui/nodes?label=team%3Dml&status=ACTIVE").await;
    assert_eq!(listed(&ml).len(), 30, "every fourth node");
    assert!(ml.contains("<option value=\"ACTIVE\" selected>"), "the form shows the filter");
    let (_, _, none) = get(&h, "/ui/nodes?status=CORDONED").await;
    assert!(listed(&none).is_empty());
    for (query, field) in [("status=SLEEPING", "status"), ("label=bad%20key", "label"), ("after=garbage", "page_token")]
    {
        let (status, _, body) = get(&h, &format!("/ui/nodes?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(field), "{query} names {field}: {body}");
    }

    // A node's page: its facts, GPUs and history.
    let (status, head, node) = get(&h, "/ui/nodes/gpu-007").await;
    assert_eq!(status, 200, "{node}");
    assert_strict_policy(&head);
    assert!(node.contains("<h1>Node gpu-007</h1>") && node.contains("<dd data-field=\"status\">ACTIVE</dd>"));
    assert!(node.contains("GPU-gpu-007-7") && node.contains("81920 MiB"), "its GPUs");
    assert!(node.contains("<td>created</td>") && node.contains("registered"), "its change history: {node}");
    let (status, _, missing) = get(&h, "/ui/nodes/gpu-999").await;
    assert_eq!(status, 404, "{missing}");
    assert!(missing.contains("there is no node gpu-999"));
    let (status, _, bad) = get(&h, "/ui/nodes/bad%20id").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("node id"), "{bad}");
}
