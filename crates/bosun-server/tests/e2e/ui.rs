//! The dashboard over plain HTTP: the overview of an open server, its security headers and
//! stylesheet, and the page a server with tokens shows instead of the fleet.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::Clock as _;
use bosun_server::Settings;
use bosun_store::Backend;

use crate::harness::*;

on_every_backend!(
    an_open_servers_overview_shows_its_nodes_under_a_strict_policy,
    signing_in_takes_an_operator_token_from_this_sites_own_form,
    the_nodes_page_filters_and_pages_in_the_store_and_a_node_page_shows_its_history,
    a_confirmed_cordon_goes_through_the_api_as_the_signed_in_operator,
    an_open_node_page_hears_each_change_of_its_node,
    the_events_page_lists_the_newest_changes_by_filter_and_streams_new_ones,
    the_overview_shows_gpu_utilization_and_the_nodes_that_turned_unhealthy,
);

/// A raw `GET path`: status, head and body.
async fn get(h: &Harness, path: &str) -> (u16, String, String) {
    request(h, "GET", path, &[], "").await
}

/// A raw request: status, head (as sent: compare names with [`lower`]) and body.
async fn request(h: &Harness, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let address = h.server().local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_owned(), body.to_owned())
}

fn lower(head: &str) -> String {
    head.to_ascii_lowercase()
}

fn assert_strict_policy(head: &str) {
    let head = &lower(head);
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
    assert!(
        lower(&head).contains("content-type: text/html; charset=utf-8")
            && lower(&head).contains("cache-control: no-store")
    );
    assert!(body.contains("<caption>3 nodes</caption>"), "{body}");
    let active = body.lines().find(|line| line.contains(">ACTIVE</a></th>")).expect("an ACTIVE row");
    assert!(active.ends_with("<td>3</td></tr>"), "three ACTIVE nodes: {active}");
    assert!(body.contains("This server is open"), "an open server says so");
    assert!(body.contains("gpu-3"), "the registrations are among the recent changes: {body}");
    // Nothing inline for the policy to refuse.
    for inline in ["<script>", "style=", " onclick=", "javascript:"] {
        assert!(!body.contains(inline), "{inline} in {body}");
    }
    assert_eq!(body.matches("<script").count(), body.matches("<script src=\"/ui/static/bosun.js\"").count());

    let (status, head, css) = get(&h, "/ui/static/bosun.css").await;
    assert_eq!(status, 200);
    assert!(lower(&head).contains("content-type: text/css") && css.contains("prefers-color-scheme: dark"), "{head}");
    let (status, head, _) = get(&h, "/ui").await;
    assert_eq!(status, 303);
    assert!(lower(&head).contains("location: /ui/"), "{head}");
}

async fn signing_in_takes_an_operator_token_from_this_sites_own_form(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");
    let origin = format!("http://{}", h.server().local_addr());
    let same_site = [("origin", origin.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let sign_in = |token: &str| format!("token={token}&next=%2Fui%2Fnodes%2Fgpu-1");

    // Every page leads to the sign-in form, which comes back to it.
    for path in ["/ui/", "/ui/nodes?status=ACTIVE", "/ui/nodes/gpu-1"] {
        let (status, head, body) = get(&h, path).await;
        assert_eq!(status, 303, "{path}: {body}");
        assert!(lower(&head).contains("location: /ui/login?next=%2fui%2f"), "{path}: {head}");
        assert!(!body.contains("gpu-1"));
    }
    let (status, head, form) = get(&h, "/ui/login?next=%2Fui%2Fnodes").await;
    assert_eq!(status, 200, "{form}");
    assert_strict_policy(&head);
    assert!(form.contains("<label for=\"token\">") && form.contains("type=\"password\""), "{form}");
    assert!(form.contains("value=\"/ui/nodes\""), "where to go after: {form}");

    // A wrong token, an agent token, and a form from another site are refused.
    let (status, head, body) = request(&h, "POST", "/ui/login", &same_site, &sign_in("guess")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("the token is not valid here") && !lower(&head).contains("set-cookie"), "{head}");
    let (status, head, body) = request(&h, "POST", "/ui/login", &same_site, &sign_in(AGENTS)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agent tokens cannot sign in") && !lower(&head).contains("set-cookie"), "{head}");
    let evil = [("origin", "http://evil.example"), ("content-type", "application/x-www-form-urlencoded")];
    let (status, head, body) = request(&h, "POST", "/ui/login", &evil, &sign_in(OPERATOR)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-site request refused") && !lower(&head).contains("set-cookie"), "{head}");
    let cross = [("sec-fetch-site", "cross-site")];
    assert_eq!(request(&h, "POST", "/ui/login", &cross, &sign_in(OPERATOR)).await.0, 403);
    assert_eq!(request(&h, "POST", "/ui/login", &[], &sign_in(OPERATOR)).await.0, 403, "no origin at all");

    // An operator signs in: an HttpOnly, SameSite=Strict cookie, then the page asked for.
    let (status, head, body) = request(&h, "POST", "/ui/login", &same_site, &sign_in(OPERATOR)).await;
    assert_eq!(status, 303, "{body}");
    assert!(lower(&head).contains("location: /ui/nodes/gpu-1"), "{head}");
    let set_cookie = head.lines().find(|l| lower(l).starts_with("set-cookie: ")).expect("a cookie").to_owned();
    for attribute in ["httponly", "samesite=strict", "path=/ui", "max-age=28800"] {
        assert!(lower(&set_cookie).contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!lower(&set_cookie).contains("secure"), "plain HTTP: {set_cookie}");
    // The cookie's value, as the browser sends it back.
    let value = set_cookie["set-cookie: ".len()..].split(';').next().expect("a value").to_owned();
    let cookie = [("cookie", value.as_str())];
    let (status, _, node) = request(&h, "GET", "/ui/nodes/gpu-1", &cookie, "").await;
    assert_eq!(status, 200, "{node}");
    assert!(node.contains("Signed in as operator:oncall") && node.contains("<h1>Node gpu-1</h1>"), "{node}");
    assert!(!node.contains("This server is open"));

    // A cookie altered by one character, or one past its 8 hours, signs no one in.
    let tampered = format!("{}x", value);
    assert_eq!(request(&h, "GET", "/ui/", &[("cookie", tampered.as_str())], "").await.0, 303);
    h.clock.advance(std::time::Duration::from_secs(8 * 3600));
    assert_eq!(request(&h, "GET", "/ui/", &cookie, "").await.0, 303, "expired");

    // Signing out clears the cookie.
    let fresh = signed_in(&h, OPERATOR).await;
    let signing_out = [("origin", origin.as_str()), ("cookie", fresh.as_str())];
    let (status, head, _) = request(&h, "POST", "/ui/logout", &signing_out, "").await;
    assert_eq!(status, 303);
    assert!(lower(&head).contains("set-cookie: bosun_session=;") && lower(&head).contains("max-age=0"), "{head}");

    // Each attempt is in the audit log, as API calls are.
    let audit = h.ops(Some(ADMIN)).list_audit(v1::ListAuditRequest::default()).await.expect("audit").into_owned();
    let attempts: Vec<(&str, &str, &str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.method.starts_with("bosun.ui/"))
        .map(|e| (e.method.as_str(), e.actor.as_str(), e.outcome.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("bosun.ui/SignIn", "anonymous", "refused", "unauthenticated"),
            ("bosun.ui/SignIn", "fleet", "refused", "permission_denied"),
            ("bosun.ui/SignIn", "anonymous", "refused", "permission_denied"),
            ("bosun.ui/SignIn", "anonymous", "refused", "permission_denied"),
            ("bosun.ui/SignIn", "anonymous", "refused", "permission_denied"),
            ("bosun.ui/SignIn", "oncall", "ok", "ok"),
            ("bosun.ui/SignIn", "oncall", "ok", "ok"),
            ("bosun.ui/SignOut", "oncall", "ok", "ok"),
        ],
        "{audit:?}"
    );
    assert!(
        audit.entries.iter().filter(|e| e.method.starts_with("bosun.ui/")).all(|e| !e.peer.is_empty()),
        "{audit:?}"
    );
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

/// Signs in with `token` and answers the cookie to send back.
async fn signed_in(h: &Harness, token: &str) -> String {
    let origin = format!("http://{}", h.server().local_addr());
    let headers = [("origin", origin.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let (status, head, body) = request(h, "POST", "/ui/login", &headers, &format!("token={token}")).await;
    assert_eq!(status, 303, "{body}");
    let line = head.lines().find(|l| lower(l).starts_with("set-cookie: ")).expect("a cookie");
    line["set-cookie: ".len()..].split(';').next().expect("a value").to_owned()
}

async fn a_confirmed_cordon_goes_through_the_api_as_the_signed_in_operator(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");
    let cookie = signed_in(&h, OPERATOR).await;
    let origin = format!("http://{}", h.server().local_addr());
    let form = [("cookie", cookie.as_str()), ("origin", origin.as_str())];

    // The node's page links to each action; an action first asks for confirmation.
    let (_, _, node) = request(&h, "GET", "/ui/nodes/gpu-1", &form, "").await;
    assert!(node.contains("href=\"/ui/nodes/gpu-1/cordon\"") && node.contains("href=\"/ui/nodes/gpu-1/terminate\""));
    let (status, head, confirm) = request(&h, "GET", "/ui/nodes/gpu-1/cordon", &form, "").await;
    assert_eq!(status, 200, "{confirm}");
    assert_strict_policy(&head);
    assert!(confirm.contains("<h1>Cordon node gpu-1?</h1>") && confirm.contains("action=\"/ui/nodes/gpu-1/cordon\""));
    assert!(confirm.contains("<label for=\"reason\">"), "{confirm}");
    assert_eq!(request(&h, "GET", "/ui/nodes/gpu-1/explode", &form, "").await.0, 404);

    // Posted from elsewhere, nothing happens.
    let evil = [("cookie", cookie.as_str()), ("origin", "http://evil.example")];
    let (status, _, body) = request(&h, "POST", "/ui/nodes/gpu-1/cordon", &evil, "reason=x").await;
    assert_eq!(status, 403, "{body}");
    let commands = || async {
        let request = v1::ListCommandsRequest { node_id: "gpu-1".into(), ..Default::default() };
        h.root().list_commands(request).await.expect("commands").into_owned().commands
    };
    assert!(commands().await.is_empty(), "a cross-site form issues nothing");

    // Confirmed: the API's IssueCommand, as the signed-in operator, audited as such.
    let (status, head, body) = request(&h, "POST", "/ui/nodes/gpu-1/cordon", &form, "reason=disk+errors").await;
    assert_eq!(status, 303, "{body}");
    assert!(lower(&head).contains("location: /ui/nodes/gpu-1?done="), "{head}");
    let issued = commands().await;
    assert_eq!(issued.len(), 1);
    assert_eq!((issued[0].issued_by.as_str(), issued[0].reason.as_str()), ("operator:oncall", "disk errors"));
    let location = head.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")));
    let (_, _, after) = request(&h, "GET", location.expect("a location"), &form, "").await;
    assert!(after.contains(&format!("Command {} issued.", issued[0].command_id)), "{after}");
    let audit = h.ops(Some(ADMIN)).list_audit(v1::ListAuditRequest::default()).await.expect("audit").into_owned();
    let entry = audit.entries.iter().find(|e| e.method.ends_with("/IssueCommand")).expect("an audit entry");
    assert_eq!((entry.actor.as_str(), entry.outcome.as_str()), ("oncall", "ok"), "{entry:?}");
    assert!(entry.request_id.starts_with("ui-"), "{entry:?}");

    // The commands page shows it under way, and filters by state and node.
    let (status, _, under_way) = request(&h, "GET", "/ui/commands", &form, "").await;
    assert_eq!(status, 200, "{under_way}");
    assert!(under_way.contains(&issued[0].command_id) && under_way.contains("operator:oncall"), "{under_way}");
    let (_, _, all) = request(&h, "GET", "/ui/commands?state=all&node=gpu-1", &form, "").await;
    assert!(all.contains(&issued[0].command_id), "{all}");
    let (_, _, other) = request(&h, "GET", "/ui/commands?node=gpu-9", &form, "").await;
    assert!(other.contains("No commands match."), "{other}");
    let (status, _, bad) = request(&h, "GET", "/ui/commands?state=SLEEPING", &form, "").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("state"), "{bad}");

    // What the API refuses is shown on the confirmation, with its reason.
    let (status, _, refused) = request(&h, "POST", "/ui/nodes/gpu-9/cordon", &form, "").await;
    assert_eq!(status, 404, "{refused}");
    assert!(refused.contains("The API refused: not_found"), "{refused}");
}

async fn an_open_node_page_hears_each_change_of_its_node(backend: Backend) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");
    let (status, head, script) = get(&h, "/ui/static/bosun.js").await;
    assert_eq!(status, 200);
    assert!(lower(&head).contains("content-type: text/javascript") && script.contains("EventSource"), "{head}");
    let (_, _, page) = get(&h, "/ui/nodes/gpu-1").await;
    assert!(page.contains("<div id=\"live\" data-live=\"/ui/nodes/gpu-1/live\">"), "{page}");

    // The page's event stream: one event per change of the node, as it is committed.
    let address = h.server().local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!("GET /ui/nodes/gpu-1/live HTTP/1.1\r\nhost: {address}\r\naccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let mut head = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        if line.is_empty() {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    assert!(head[0].contains(" 200 "), "{head:?}");
    assert!(head.iter().any(|l| l.starts_with("content-type: text/event-stream")), "{head:?}");

    let cordon = v1::IssueCommandRequest {
        node_id: "gpu-1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
        reason: "live".into(),
        ..Default::default()
    };
    h.root().issue_command(cordon).await.expect("cordon");
    // A bound on a broken stream, not a wait: the event is written when the change commits.
    let heard = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line == "event: change" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the cordon was heard");
}

async fn the_events_page_lists_the_newest_changes_by_filter_and_streams_new_ones(backend: Backend) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    for node in ["gpu-1", "gpu-2", "gpu-3"] {
        h.agent_client().register(&registration(node), None).await.expect("register");
    }
    let (status, head, events) = get(&h, "/ui/events").await;
    assert_eq!(status, 200, "{events}");
    assert_strict_policy(&head);
    let order: Vec<usize> = ["gpu-3", "gpu-2", "gpu-1"]
        .iter()
        .map(|n| events.find(&format!("<a href=\"/ui/nodes/{n}\">{n}</a>")).expect("listed"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {events}");
    assert!(events.contains("data-live=\"/ui/events/live\""), "{events}");
    let (_, _, one) = get(&h, "/ui/events?kind=node&resource=gpu-2").await;
    assert!(one.contains("gpu-2") && !one.contains("gpu-1") && !one.contains(">gpu-3<"), "{one}");
    assert!(one.contains("value=\"gpu-2\""), "the form keeps the filter");
    for (query, field) in [("kind=planet", "kind"), ("resource=gpu-1", "resource_id")] {
        let (status, _, body) = get(&h, &format!("/ui/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(field), "{query}: {body}");
    }

    // New changes reach an open page's stream as they are committed.
    let address = h.server().local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!("GET /ui/events/live?kind=node HTTP/1.1\r\nhost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut lines = tokio::io::BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await.expect("read") {
        if line.is_empty() {
            break;
        }
    }
    h.agent_client().register(&registration("gpu-4"), None).await.expect("register");
    // A bound on a broken stream, not a wait: the event is written when the change commits.
    let heard = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line == "data: node" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the registration was heard");
}

/// Pools need a provider, which the memory store's harness does not run.
mod pool_pages {
    use bosun_store::Backend;

    use super::{assert_strict_policy, get, lower, open_settings, request};
    use crate::harness::*;

    on_sql_backends!(a_pools_page_shows_its_size_decisions_and_instances);

    async fn a_pools_page_shows_its_size_decisions_and_instances(backend: Backend) {
        let mut spec = bosun_core::PoolSpec::single_provider("fake", "h100-8x", 2, 10);
        spec.region = "local".into();
        let fake = bosun_provider::fake::FakeSettings::default();
        let started =
            Harness::start_with_fake_pool_and_settings(backend, "training", spec, fake, open_settings()).await;
        let Some((h, _cloud)) = started else { return };
        h.server().reconcile_pools().await.expect("reconcile");

        let (status, _, pools) = get(&h, "/ui/pools").await;
        assert_eq!(status, 200, "{pools}");
        assert!(pools.contains("<a href=\"/ui/pools/training\">training</a>"), "{pools}");
        let (status, head, pool) = get(&h, "/ui/pools/training").await;
        assert_eq!(status, 200, "{pool}");
        assert_strict_policy(&head);
        assert!(pool.contains("<h1>Pool training</h1>") && pool.contains("between 2 and 10"), "{pool}");
        assert!(pool.contains("Size over time") && pool.contains("<td>2</td>"), "the decision to reach 2: {pool}");
        assert_eq!(pool.matches("<tr><td>i-").count(), 2, "its two instances: {pool}");
        assert!(pool.contains("fake (priority"), "its provider: {pool}");
        let (status, _, missing) = get(&h, "/ui/pools/nope").await;
        assert_eq!(status, 404, "{missing}");

        // Scaling by hand: confirmed, then the API's ScalePool.
        let (status, _, confirm) = get(&h, "/ui/pools/training/scale?target=3").await;
        assert_eq!(status, 200, "{confirm}");
        assert!(confirm.contains("<h1>Scale pool training to 3 nodes?</h1>"), "{confirm}");
        let origin = format!("http://{}", h.server().local_addr());
        let form = [("origin", origin.as_str()), ("content-type", "application/x-www-form-urlencoded")];
        let evil = [("origin", "http://evil.example")];
        assert_eq!(request(&h, "POST", "/ui/pools/training/scale", &evil, "target=9").await.0, 403);
        for (body, status, says) in
            [("target=99", 400, "The API refused: invalid_argument"), ("target=many", 400, "not a number")]
        {
            let (got, _, page) = request(&h, "POST", "/ui/pools/training/scale", &form, body).await;
            assert_eq!(got, status, "{body}: {page}");
            assert!(page.contains(says), "{body}: {page}");
        }
        let (status, head, body) = request(&h, "POST", "/ui/pools/training/scale", &form, "target=3").await;
        assert_eq!(status, 303, "{body}");
        assert!(lower(&head).contains("location: /ui/pools/training"), "{head}");
        let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
        assert_eq!(pool.status.last_decision.expect("a decision").target, 3);
        h.stop().await;
    }
}

fn gpus_at(h: &Harness, node: &str, percents: &[f64]) -> bosun_core::MetricSample {
    let gpus = percents
        .iter()
        .enumerate()
        .map(|(index, &utilization_percent)| bosun_core::GpuSample {
            index: index as u32,
            temperature_c: 50.0,
            power_w: 300.0,
            utilization_percent,
            memory_used_bytes: 1 << 30,
        })
        .collect();
    bosun_core::MetricSample { node_id: node_id(node), at: h.clock.now(), cpu_percent: 5.0, memory_percent: 5.0, gpus }
}

/// The count in the overview's utilization row `tenth` (0: 0–10 %).
fn utilization_count(overview: &str, tenth: usize) -> String {
    let (_, rest) = overview.split_once(&format!("data-utilization=\"{tenth}\">")).expect("a utilization row");
    rest.split('<').next().expect("a count").to_owned()
}

/// The section of `page` that begins at the element with id `id`.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

async fn the_overview_shows_gpu_utilization_and_the_nodes_that_turned_unhealthy(backend: Backend) {
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    let agent = h.agent_client();
    for node in ["gpu-1", "gpu-2", "gpu-3", "gpu-4"] {
        agent.register(&registration(node), None).await.expect("register");
    }
    agent.heartbeat(&gpus_at(&h, "gpu-1", &[95.0, 85.0])).await.expect("heartbeat");
    agent.heartbeat(&gpus_at(&h, "gpu-2", &[15.0])).await.expect("heartbeat");
    h.clock.advance(std::time::Duration::from_secs(1));
    let xid = bosun_core::HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: 0,
        gpu_uuid: "GPU-gpu-3-0".into(),
        system: bosun_core::HealthSystem::Driver,
        event_type: bosun_core::EventType::Xid,
        metrics: [("xid_code".to_owned(), "79".to_owned())].into(),
        message: "Xid 79: GPU has fallen off the bus".into(),
    };
    agent.report_health(&node_id("gpu-3"), &[], &[xid]).await.expect("report");
    h.wait_for_node("gpu-3", "UNHEALTHY", |n| status_of(n) == v1::NodeStatus::Unhealthy).await;

    let (status, _, overview) = get(&h, "/ui/").await;
    assert_eq!(status, 200, "{overview}");
    // gpu-1 averages 90 %, gpu-2 15 %; gpu-4 is in service without metrics.
    assert_eq!(utilization_count(&overview, 9), "1", "{overview}");
    assert_eq!(utilization_count(&overview, 1), "1", "{overview}");
    assert_eq!(utilization_count(&overview, 0), "0", "{overview}");
    assert!(overview.contains("1 nodes in service reported no GPU metrics"), "{overview}");
    assert!(overview.contains("<meter min=\"0\" max=\"1\" value=\"1\""), "bars on one scale: {overview}");
    let unhealthy = section(&overview, "unhealthy");
    assert_eq!(listed(unhealthy), ["gpu-3"], "{unhealthy}");
    assert!(overview.contains("href=\"/ui/nodes?status=UNHEALTHY&amp;sort=changed\""), "{overview}");

    // The nodes page finds it by health, by text in its id, and puts it first by change.
    let (_, _, by_health) = get(&h, "/ui/nodes?health=UNHEALTHY").await;
    assert_eq!(listed(&by_health), ["gpu-3"]);
    assert!(by_health.contains("<option value=\"UNHEALTHY\" selected>"), "{by_health}");
    let (_, _, by_text) = get(&h, "/ui/nodes?q=u-2").await;
    assert_eq!(listed(&by_text), ["gpu-2"]);
    let (_, _, by_change) = get(&h, "/ui/nodes?sort=changed").await;
    assert_eq!(listed(&by_change)[0], "gpu-3", "the newest change first");
    assert!(by_change.contains("by newest status change"), "{by_change}");
    let too_long = format!("/ui/nodes?q={}", "x".repeat(300));
    for (query, field) in
        [("/ui/nodes?sort=sideways", "sort"), ("/ui/nodes?health=GREEN", "health"), (too_long.as_str(), "q")]
    {
        let (status, _, body) = get(&h, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(field), "{query} names {field}: {body}");
    }

    // A node page shows the GPU workloads its agent reports and the runs that target it.
    let workload = bosun_core::inventory::Workload {
        node_id: node_id("gpu-1"),
        gpu_indexes: vec![0, 1],
        pid: 4242,
        process_name: "train.py".into(),
        container_id: Some("ab".repeat(32)),
        pod: None,
        gpu_memory_bytes: 8 << 30,
        started_at: Some(h.clock.now()),
    };
    agent.report_workloads(&node_id("gpu-1"), &[workload]).await.expect("workloads");
    let ops = h.ops(None);
    let runbook = "name: look\nsteps:\n  - cordon: {reason: look}\n";
    ops.apply_runbook(v1::ApplyRunbookRequest { yaml: runbook.into(), ..Default::default() }).await.expect("apply");
    let started = v1::StartRunRequest { runbook: "look".into(), nodes: vec!["gpu-1".into()], ..Default::default() };
    let run = ops.start_run(started).await.expect("start").into_owned().run.as_option().cloned().expect("a run");
    let (_, _, node) = get(&h, "/ui/nodes/gpu-1").await;
    let workloads = section(&node, "workloads-heading");
    assert!(
        workloads.contains("<td>4242</td><td>train.py</td><td>0, 1</td><td>8192 MiB</td><td>abababababab</td>"),
        "{workloads}"
    );
    let runs = section(&node, "runs-heading");
    assert!(runs.contains(&format!("<code>{}</code></td><td>runbook</td>", run.id)), "{runs}");
    let (_, _, other) = get(&h, "/ui/nodes/gpu-2").await;
    assert!(other.contains("No GPU workloads reported.") && other.contains("No runs target this node."), "{other}");

    // An hour on, the overview no longer lists it (the silent others may have turned
    // UNHEALTHY since, by liveness); the nodes page still does.
    h.clock.advance(std::time::Duration::from_secs(3601));
    let (_, _, later) = get(&h, "/ui/").await;
    if !later.contains("No node turned UNHEALTHY in the last hour.") {
        assert!(!listed(section(&later, "unhealthy")).contains(&"gpu-3".to_owned()), "{later}");
    }
    let (_, _, still) = get(&h, "/ui/nodes?health=UNHEALTHY&q=gpu-3").await;
    assert_eq!(listed(&still), ["gpu-3"]);
}
