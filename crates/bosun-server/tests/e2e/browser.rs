//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `scripts/test` installs when missing). Each test
//! saves a screenshot of every page it looks at under `$CARGO_TARGET_TMPDIR/ui-screenshots`.
//! Without a chromedriver the tests are skipped with one line, unless every backend is
//! required (`BOSUN_TEST_REQUIRE_ALL_BACKENDS`, as under `scripts/test`): then they fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::Clock as _;
use bosun_server::Settings;
use bosun_store::Backend;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::*;

/// A chromedriver and the browser session it started; both end when this is dropped.
struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> Option<String> {
    if let Ok(path) = std::env::var("BOSUN_TEST_CHROMEDRIVER") {
        return Some(path);
    }
    let found = Command::new("chromedriver").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    found.is_ok_and(|status| status.success()).then(|| "chromedriver".to_owned())
}

/// A headless Chromium for `test`, or `None` (skipped) when there is no chromedriver.
async fn browser(test: &str) -> Option<Browser> {
    let Some(driver) = chromedriver() else {
        assert!(
            std::env::var_os("BOSUN_TEST_REQUIRE_ALL_BACKENDS").is_none(),
            "no chromedriver: install chromium and chromium-driver (scripts/test does) or set BOSUN_TEST_CHROMEDRIVER"
        );
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let driver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), serde_json::json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--window-size=1280,900"
        ] }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // Chromedriver takes a moment to listen: try until it answers (bounded).
    let mut last_error = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
            Ok(client) => {
                let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
                std::fs::create_dir_all(&shots).expect("screenshot directory");
                return Some(Browser { client, driver, shots: shots.join(test) });
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer: {last_error:?}");
}

impl Browser {
    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The text of the first element `css` selects, found again when the page it was on
    /// was replaced meanwhile (a form's answer arriving), within a bound.
    async fn text(&self, css: &str) -> String {
        let mut last_error = None;
        for _ in 0..200 {
            let found = self.client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await;
            match found {
                Ok(element) => match element.text().await {
                    Ok(text) => return text,
                    Err(error) => last_error = Some(error),
                },
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: {last_error:?}")
    }

    /// Waits (within a bound) until the element `css` selects says `want`: after a form is
    /// submitted the old page may still be showing.
    async fn expect_text(&self, css: &str, want: &str) {
        let mut seen = String::new();
        for _ in 0..400 {
            seen = self.text(css).await;
            if seen == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} says {seen:?}, not {want:?}");
    }

    /// Saves a screenshot as `<test>-<name>.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self
            .shots
            .with_file_name(format!("{}-{name}.png", self.shots.file_name().and_then(|n| n.to_str()).unwrap_or("ui")));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    async fn close(self) {
        let client = self.client.clone();
        drop(self);
        let _ = client.close().await;
    }
}

fn open_settings() -> Settings {
    Settings { auth: Default::default(), ..settings() }
}

on_every_backend!(the_overview_shows_the_fleet_and_an_open_node_page_turns_unhealthy_without_a_reload);
// Signing in and cross-site forms need one backend: they are the server's, not the store's.
#[tokio::test]
async fn signing_in_then_cordoning_names_the_operator() {
    signing_in_and_cordoning(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_form_posted_from_another_site_changes_nothing() {
    cross_site_form(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_page_pages_through_a_large_fleet_with_filters() {
    nodes_page_of_a_large_fleet(Backend::Sqlite).await;
}

async fn the_overview_shows_the_fleet_and_an_open_node_page_turns_unhealthy_without_a_reload(backend: Backend) {
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    let Some(browser) = browser(&format!("overview-{backend:?}").to_lowercase()).await else { return };
    let agent = h.agent_client();
    for node in ["gpu-1", "gpu-2", "gpu-3"] {
        agent.register(&registration(node), None).await.expect("register");
    }
    let base = h.url();
    browser.goto(&format!("{base}/ui/")).await;
    let started = std::time::Instant::now();
    browser.expect_text("[data-count='ACTIVE/UNKNOWN']", "3").await;
    eprintln!("overview usable after {:?}", started.elapsed());
    browser.shot("overview").await;
    browser.goto(&format!("{base}/ui/nodes")).await;
    assert!(browser.text("main table").await.contains("gpu-3"));
    browser.shot("nodes").await;

    // An open node page: a fatal XID turns it UNHEALTHY on the page without a reload.
    browser.goto(&format!("{base}/ui/nodes/gpu-1")).await;
    browser.expect_text("[data-field='status']", "ACTIVE").await;
    browser.client.execute("window.__stillThisPage = true; return null;", vec![]).await.expect("mark the page");
    let xid = bosun_core::HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: 0,
        gpu_uuid: "GPU-gpu-1-0".into(),
        system: bosun_core::HealthSystem::Driver,
        event_type: bosun_core::EventType::Xid,
        metrics: [("xid_code".to_owned(), "79".to_owned())].into(),
        message: "Xid 79: GPU has fallen off the bus".into(),
    };
    let injected = std::time::Instant::now();
    agent.report_health(&node_id("gpu-1"), &[], &[xid]).await.expect("report");
    let status = browser.client.wait().at_most(Duration::from_secs(20));
    status
        .for_element(Locator::XPath("//dd[@data-field='status' and text()='UNHEALTHY']"))
        .await
        .expect("UNHEALTHY on the open page");
    eprintln!("fault shown on the open page after {:?}", injected.elapsed());
    let same_page = browser.client.execute("return window.__stillThisPage === true;", vec![]).await.expect("ask");
    assert_eq!(same_page, serde_json::json!(true), "no reload");
    // The page's own script did it, allowed by the Content-Security-Policy.
    let redrawn = browser.client.execute("return document.documentElement.dataset.updatedAt !== undefined;", vec![]);
    assert_eq!(redrawn.await.expect("ask"), serde_json::json!(true), "redrawn by bosun.js");
    browser.shot("node-unhealthy").await;
    browser.close().await;
}

async fn signing_in_and_cordoning(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let Some(browser) = browser("sign-in").await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");
    let base = h.url();
    let sign_in = |token: &'static str| {
        let client = browser.client.clone();
        async move {
            let form = client.form(Locator::Css("form.login")).await.expect("the form");
            form.set_by_name("token", token).await.expect("type the token");
            form.submit().await.expect("submit");
        }
    };

    browser.goto(&format!("{base}/ui/nodes/gpu-1")).await;
    browser.expect_text("h1", "Sign in").await;
    sign_in("not-a-token").await;
    browser.expect_text("[role='alert']", "the token is not valid here").await;
    browser.shot("wrong-token").await;
    sign_in(AGENTS).await;
    browser.expect_text("[role='alert']", "agent tokens cannot sign in to the dashboard").await;
    sign_in(OPERATOR).await;
    browser.expect_text("h1", "Node gpu-1").await;
    browser.shot("signed-in").await;

    // Cordon asks for confirmation; confirmed, the command names the signed-in operator.
    browser.client.find(Locator::LinkText("Cordon")).await.expect("a Cordon button").click().await.expect("click");
    browser.expect_text("h1", "Cordon node gpu-1?").await;
    browser.shot("confirm-cordon").await;
    let form = browser.client.form(Locator::Css("form.confirm")).await.expect("the confirmation");
    form.set_by_name("reason", "fan noise").await.expect("reason");
    form.submit().await.expect("confirm");
    let done = browser.text("[role='status'].done").await;
    assert!(done.starts_with("Command ") && done.ends_with(" issued."), "{done}");
    let admin = h.root();
    let listed = admin.list_commands(v1::ListCommandsRequest { node_id: "gpu-1".into(), ..Default::default() });
    let commands = listed.await.expect("commands").into_owned().commands;
    assert_eq!((commands[0].issued_by.as_str(), commands[0].reason.as_str()), ("operator:oncall", "fan noise"));
    browser.shot("cordoned").await;
    browser.close().await;
}

/// A page of another site (another port: another origin, the same site) that posts a
/// cordon to the dashboard as soon as it loads, as a forged form would.
async fn evil_site(target: &str) -> String {
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}/ui/nodes/gpu-1/cordon\">\
         <input name=reason value=forged></form><script>document.getElementById('f').submit()</script>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/")
}

async fn cross_site_form(backend: Backend) {
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    let Some(browser) = browser("cross-site").await else { return };
    h.agent_client().register(&registration("gpu-1"), None).await.expect("register");
    // Even on an open server, where no cookie is needed, the browser's own word on where
    // the form came from refuses it.
    browser.goto(&evil_site(&h.url()).await).await;
    browser.expect_text("h1", "Refused").await;
    assert!(browser.text("[role='alert']").await.contains("cross-site request refused"));
    browser.shot("refused").await;
    let admin = h.root();
    let listed = admin.list_commands(v1::ListCommandsRequest { node_id: "gpu-1".into(), ..Default::default() });
    assert!(listed.await.expect("commands").into_owned().commands.is_empty(), "nothing was issued");
    browser.close().await;
}

/// How many nodes the large-fleet test seeds: 10,000, or `BOSUN_UI_SEED_NODES` (to
/// measure the nodes page at 100,000: `BOSUN_UI_SEED_NODES=100000 cargo nextest run -p
/// bosun-server --test e2e large_fleet --no-capture`).
fn large_fleet_size() -> u32 {
    std::env::var("BOSUN_UI_SEED_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
}

/// `node-NNNNN`: every fourth has `team=ml`, every seventh is UNHEALTHY (its health).
async fn seed_large_fleet(h: &Harness, count: u32) {
    let store = h.server().store();
    let now = h.clock.now();
    let mut batch = bosun_store::WriteBatch::new(bosun_core::Actor::system("seed"), "a large fleet");
    for i in 0..count {
        let mut registration = registration(&format!("node-{i:05}"));
        registration.gpus.truncate(1);
        if i % 4 == 0 {
            registration.labels.insert("team", "ml").expect("label");
        }
        let mut node = bosun_core::Node::register(&registration, now).expect("a node");
        if i % 7 == 0 {
            node.health = bosun_core::Health::Unhealthy;
        }
        batch = batch.create_node(node, registration.gpus);
        if batch.writes.len() == 500 {
            store
                .commit(std::mem::replace(
                    &mut batch,
                    bosun_store::WriteBatch::new(bosun_core::Actor::system("seed"), "a large fleet"),
                ))
                .await
                .expect("seed");
        }
    }
    if !batch.writes.is_empty() {
        store.commit(batch).await.expect("seed");
    }
}

impl Browser {
    /// The node ids of the nodes page's table, in order.
    async fn listed_nodes(&self) -> Vec<String> {
        let rows = self.client.find_all(Locator::Css("main table tbody th[scope='row']")).await.expect("rows");
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.text().await.expect("an id"));
        }
        ids
    }

    /// Follows the link `text` and waits for the page it leads to.
    async fn follow(&self, text: &str) {
        let before = self.client.current_url().await.expect("url");
        self.client.find(Locator::LinkText(text)).await.expect(text).click().await.expect("click");
        self.wait_for_page_after(&before).await;
    }

    /// How long the current page took, by the browser's own clock (Navigation Timing, ms
    /// from the start of navigation): its answer's first byte, and the page loaded.
    async fn navigation_timing(&self) -> String {
        let script = "const t = performance.getEntriesByType('navigation')[0]; \
                      return [t.responseStart, t.domInteractive, t.loadEventEnd];";
        let timing = self.client.execute(script, vec![]).await.expect("timing");
        let ms = |i: usize| timing[i].as_f64().unwrap_or(f64::NAN);
        format!("first byte after {:.0} ms, usable after {:.0} ms, loaded after {:.0} ms", ms(0), ms(1), ms(2))
    }

    /// Waits (within a bound) until another page than `before` has loaded.
    async fn wait_for_page_after(&self, before: &url::Url) {
        for _ in 0..400 {
            let moved = self.client.current_url().await.is_ok_and(|url| url != *before);
            let ready = self.client.execute("return document.readyState;", vec![]).await;
            if moved && ready.is_ok_and(|state| state == serde_json::json!("complete")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no page loaded after {before}");
    }
}

async fn nodes_page_of_a_large_fleet(backend: Backend) {
    let Some(h) = Harness::start_with(backend, open_settings()).await else { return };
    let Some(browser) = browser("large-fleet").await else { return };
    let count = large_fleet_size();
    let seeding = std::time::Instant::now();
    seed_large_fleet(&h, count).await;
    eprintln!("seeded {count} nodes in {:?}", seeding.elapsed());
    let base = h.url();

    // The first page, timed by the browser itself (Navigation Timing): when the server's
    // answer began to arrive, and when the page was loaded and usable.
    browser.goto(&format!("{base}/ui/nodes")).await;
    eprintln!("nodes page ({count} nodes): {}", browser.navigation_timing().await);
    browser.expect_text("main table caption", "100 nodes on this page, by id").await;
    let first = browser.listed_nodes().await;
    assert_eq!((first.len(), first[0].as_str(), first[99].as_str()), (100, "node-00000", "node-00099"));
    browser.shot("nodes").await;
    for _ in 0..3 {
        browser.follow("Next page").await;
    }
    assert_eq!(browser.listed_nodes().await[0], "node-00300", "three pages on");
    browser.follow("First page").await;
    assert_eq!(browser.listed_nodes().await[0], "node-00000");

    // Filters from the form: UNHEALTHY nodes of team ml, every 28th node.
    let form = browser.client.form(Locator::Css("form.filters")).await.expect("the filters");
    form.set_by_name("health", "UNHEALTHY").await.expect("health");
    form.set_by_name("label", "team=ml").await.expect("label");
    let unfiltered = browser.client.current_url().await.expect("url");
    form.submit().await.expect("filter");
    browser.wait_for_page_after(&unfiltered).await;
    eprintln!("filtered nodes page: {}", browser.navigation_timing().await);
    let url = browser.client.current_url().await.expect("url");
    assert!(url.as_str().contains("health=UNHEALTHY") && url.as_str().contains("label=team%3Dml"), "{url}");
    let matching = (0..count).filter(|i| i % 28 == 0).count();
    let mut seen: Vec<String> = browser.listed_nodes().await;
    browser.shot("filtered").await;
    while browser.client.find(Locator::LinkText("Next page")).await.is_ok() {
        browser.follow("Next page").await;
        seen.extend(browser.listed_nodes().await);
    }
    assert_eq!(seen.len(), matching);
    let expected: Vec<String> = (0..count).filter(|i| i % 28 == 0).map(|i| format!("node-{i:05}")).collect();
    assert_eq!(seen, expected, "every match once, in order");
    browser.shot("filtered-last-page").await;

    // Search by id, and the newest status changes first.
    browser.goto(&format!("{base}/ui/nodes?q=0999")).await;
    let found = browser.listed_nodes().await;
    assert!(found.contains(&"node-00999".to_owned()) && found.iter().all(|id| id.contains("0999")), "{found:?}");
    browser.shot("search").await;
    browser.goto(&format!("{base}/ui/nodes?sort=changed&health=UNHEALTHY")).await;
    eprintln!("nodes page by newest change: {}", browser.navigation_timing().await);
    browser.expect_text("main table caption", "100 nodes on this page, by newest status change").await;
    browser.shot("by-change").await;
    browser.close().await;
}
