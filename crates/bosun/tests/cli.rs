//! The operator CLI against real `bosun server` and `bosun agent` processes: the README's
//! quick start, output formats, exit codes, graceful shutdown and restart.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A process killed when the test ends, however it ends.
struct Running {
    child: Child,
    /// What a server wrote to stderr, collected by `reader` in the background.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn new(child: Child) -> Self {
        Running { child, stderr: Default::default(), reader: None }
    }

    /// Everything the process wrote to stderr; call it once the process exited.
    fn stderr(&mut self) -> String {
        // The reader ends when the exited process's pipe closes.
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.stderr.lock().expect("stderr").clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (for "unreachable" checks only: servers bind port 0 and say
/// where they listen, so no test races another for a port).
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// Starts `bosun server ARGS --listen LISTEN` and returns it with its URL, read from the
/// line it prints once it listens. A fixed address still held by a previous run (a
/// restart) is retried.
fn start_server(args: &[&std::ffi::OsStr], listen: &str) -> (Running, String) {
    use std::io::BufRead as _;
    for _ in 0..50 {
        let mut child = bosun()
            .arg("server")
            .args(args)
            .args(["--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = String::new();
        let url = lines.by_ref().map_while(Result::ok).find_map(|line| {
            seen.push_str(&line);
            seen.push('\n');
            line.split_once("bosun server listening on ")
                .map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_owned())
        });
        if let Some(url) = url {
            // Keep reading so the server never blocks on a full pipe.
            let mut running = Running::new(child);
            let collected = std::sync::Arc::clone(&running.stderr);
            running.reader = Some(std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let mut text = collected.lock().expect("stderr");
                    text.push_str(&line);
                    text.push('\n');
                }
            }));
            return (running, url);
        }
        let _ = child.wait();
        assert!(seen.contains("in use"), "the server did not start:\n{seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{listen} stayed in use");
}

fn server(store: &str) -> (Running, String) {
    start_server(&["--store".as_ref(), store.as_ref()], "127.0.0.1:0")
}

fn agent(url: &str, node: &str) -> Running {
    let child = bosun()
        .args(["agent", "--server", url, "--node-id", node, "--fake-gpus", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    Running::new(child)
}

/// Runs `bosun ARGS --server URL` until it succeeds (the server may still be starting).
fn eventually(url: &str, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        let output = run(bosun().args(args).args(["--server", url]));
        last = format!("{}{}", stdout(&output), stderr(&output));
        if output.status.success() && done(&stdout(&output)) {
            return stdout(&output);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("bosun {args:?} never gave the expected answer; last: {last}");
}

/// Child processes of `parent` running `bosun agent`, read from /proc.
fn agent_children(parent: u32) -> usize {
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let dir = entry.path();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // The parent pid is the second field after the command name in parentheses.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmdline.split(|b| *b == 0).nth(1) == Some(b"agent".as_slice())
        })
        .count()
}

fn sigterm(process: &Running) {
    let status = Command::new("kill").args(["-TERM", &process.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn quick_start_fleet_cli_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let (mut first, url) = server(&store);
    let _agents: Vec<_> = ["n1", "n2", "n3"].iter().map(|n| agent(&url, n)).collect();

    let json = eventually(&url, &["nodes", "list", "-o", "json"], |out| out.matches("\"node_id\"").count() == 3);
    let nodes: serde_json::Value = serde_json::from_str(&json).expect("a JSON array");
    for (i, node) in nodes.as_array().expect("array").iter().enumerate() {
        assert_eq!(node["node_id"], format!("n{}", i + 1));
        assert_eq!(node["status"], "ACTIVE");
        assert!(node["last_heartbeat"].is_string() || node["last_heartbeat"].is_null());
        for key in ["health", "pool", "provider", "region"] {
            assert!(node.get(key).is_some(), "{key} is present");
        }
    }
    let table = ok(bosun().args(["nodes", "list", "--server", &url]));
    assert!(table.starts_with("NODE  "), "{table}");
    // Navarch's habits: -s, the wire's status names, and a word when nothing matches.
    let active = ok(bosun().args(["nodes", "list", "--status", "NODE_STATUS_ACTIVE", "-s", &url]));
    assert_eq!(active.lines().count(), 4, "{active}");
    let none = ok(bosun().args(["nodes", "list", "--status", "cordoned", "-s", &url]));
    assert_eq!(none, "No nodes found.\n");
    assert_eq!(ok(bosun().args(["nodes", "list", "-l", "owner", "-s", &url])), "No nodes found.\n");
    assert_eq!(ok(bosun().args(["nodes", "list", "-l", "owner", "-o", "json", "-s", &url])).trim(), "[]");
    let yaml = ok(bosun().args(["nodes", "get", "n1", "-o", "yaml", "--server", &url]));
    assert!(yaml.contains("node_id: n1"), "{yaml}");

    let cordoned = ok(bosun().args(["nodes", "cordon", "n1", "--reason", "maintenance", "--server", &url]));
    assert!(cordoned.starts_with("CORDON n1: command "), "{cordoned}");
    eventually(&url, &["commands", "list", "--node", "n1", "-o", "json"], |out| out.contains("\"SUCCEEDED\""));
    let events = ok(bosun().args(["events", "--kind", "node", "--resource", "n1", "-o", "json", "--server", &url]));
    assert!(events.contains("maintenance"), "the reason is in the change log: {events}");

    // Bad input and unknown ids: exit 1 and one clear line.
    let line = fails_with_one_line(bosun().args(["nodes", "get", "ghost", "--server", &url]));
    assert!(line.contains("not_found") && line.contains("ghost"), "{line}");
    let line = fails_with_one_line(bosun().args(["nodes", "cordon", "bad id!", "--server", &url]));
    assert!(line.contains("invalid_argument") && line.contains("node_id"), "{line}");
    // No bootstrap ran on n1's machine (it has none); an unknown id is not found.
    let logs = ok(bosun().args(["nodes", "bootstrap-log", "n1", "--server", &url]));
    assert!(logs.starts_with("No bootstrap logs for n1"), "{logs}");
    let line = fails_with_one_line(bosun().args(["nodes", "bootstrap-log", "ghost", "--server", &url]));
    assert!(line.contains("not_found") && line.contains("ghost"), "{line}");

    // SIGTERM: a clean stop; a new server on the same file knows everything.
    sigterm(&first);
    let status = first.child.wait().expect("server exits");
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let address = url.trim_start_matches("http://");
    let (_second, _) = start_server(&["--store".as_ref(), store.as_ref()], address);
    let json = eventually(&url, &["nodes", "list", "-o", "json"], |out| out.contains("CORDONED"));
    assert_eq!(json.matches("\"node_id\"").count(), 3, "every node survives the restart");
    // The agents carry on: a command issued now is acknowledged.
    ok(bosun().args(["nodes", "drain", "n2", "--server", &url]));
    eventually(&url, &["commands", "list", "--node", "n2", "-o", "json"], |out| out.contains("\"SUCCEEDED\""));
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let url = format!("http://127.0.0.1:{}", unused_port());
    let line = fails_with_one_line(bosun().args(["nodes", "list", "--server", &url]));
    assert!(line.contains("cannot reach the bosun server") && line.contains(&url), "{line}");
    let line = fails_with_one_line(bosun().args(["nodes", "list", "--server", "ftp://x"]));
    assert!(line.contains("http://"), "{line}");
}

/// Replicas: `--server` takes a list; the agent and the CLI move past a server that is
/// down (nothing listens there: the connection is refused) to one that answers.
#[test]
fn a_server_list_moves_past_a_server_that_is_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let (_server, url) = server(&store);
    let down = format!("http://127.0.0.1:{}", unused_port());
    let list = format!("{down},{url}");
    let _agent = agent(&list, "n1");

    let json = eventually(&list, &["nodes", "list", "-o", "json"], |out| out.contains("\"ACTIVE\""));
    assert_eq!(json.matches("\"node_id\"").count(), 1, "{json}");
    let cordoned = ok(bosun().args(["nodes", "cordon", "n1", "--server", &list]));
    assert!(cordoned.starts_with("CORDON n1: command "), "{cordoned}");
    // The agent, heard through the live server only, acknowledges it.
    eventually(&list, &["commands", "list", "--node", "n1", "-o", "json"], |out| out.contains("\"SUCCEEDED\""));

    let both_down = format!("{down},http://127.0.0.1:{}", unused_port());
    let line = fails_with_one_line(bosun().args(["nodes", "list", "--server", &both_down]));
    assert!(line.contains("cannot reach the bosun server"), "{line}");
    let line = fails_with_one_line(bosun().args(["nodes", "list", "--server", &format!("{url},localhost:1")]));
    assert!(line.contains("\"localhost:1\"") && line.contains("http://"), "a bad entry is named: {line}");
}

/// SQLite cannot elect a leader: a second server on the same file is refused, naming the
/// file and the holder, before it migrates or reconciles anything.
#[test]
fn a_second_server_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bosun.db");
    let store = format!("sqlite://{}", file.display());
    let (first, url) = server(&store);
    // Were the lock broken, the second server would run: stop it after a minute and fail.
    let mut second = bosun()
        .args(["server", "--store", &store, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second server");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = second.kill();
            panic!("a second server on {} kept running", file.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    let address = url.trim_start_matches("http://");
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())) && stderr.contains(address),
        "names the holder and where it listens: {stderr}"
    );
    assert!(stderr.contains("stop the other one"), "{stderr}");
    assert!(stderr.contains("several replicas share a PostgreSQL store"), "{stderr}");
}

#[test]
fn policy_check_prints_exactly_the_json_array() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.yaml");
    std::fs::File::create(&events)
        .and_then(|mut f| {
            f.write_all(
                b"- {event_type: xid, metrics: {xid_code: 79}, gpu_index: 3}\n\
                  - {event_type: xid, metrics: {xid_code: 8}}\n\
                  - {event_type: thermal, metrics: {temperature: 50}}\n",
            )
        })
        .expect("write events");
    let out = ok(bosun().args(["policy", "check", "--default", "--events"]).arg(&events).args(["-o", "json"]));
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        parsed,
        serde_json::json!([
            {"event": {"event_type": "xid", "gpu_index": 3, "gpu_uuid": "", "system": "DCGM_HEALTH_WATCH_UNKNOWN",
                       "metrics": {"xid_code": "79"}, "message": ""},
             "result": "unhealthy", "action": "replace", "rule": "fatal-xid"},
            {"event": {"event_type": "xid", "gpu_index": null, "gpu_uuid": "", "system": "DCGM_HEALTH_WATCH_UNKNOWN",
                       "metrics": {"xid_code": "8"}, "message": ""},
             "result": "degraded", "action": "restart_app", "rule": "application-xid"},
            {"event": {"event_type": "thermal", "gpu_index": null, "gpu_uuid": "", "system": "DCGM_HEALTH_WATCH_UNKNOWN",
                       "metrics": {"temperature": "50"}, "message": ""},
             "result": "healthy", "action": "none", "rule": "default"},
        ])
    );
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "version: v1\nrules:\n  - name: oops\n    condition: 'event.+'\n    result: unhealthy\n")
        .expect("write");
    let line = fails_with_one_line(bosun().args(["policy", "check"]).arg(&broken));
    assert!(line.contains("oops"), "the error names the rule: {line}");
}

#[test]
fn policy_xids_prints_the_catalog_and_a_policy_overrides_it() {
    let table = ok(bosun().args(["policy", "xids"]));
    assert!(table.starts_with("# XID catalog 2026.12\nXID  ACTION"), "{table}");
    assert!(table.contains("\n13   restart_app  no        Graphics engine exception"), "{table}");
    assert!(table.contains("\n79   replace      yes       GPU has fallen off the bus"), "{table}");
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("site.yaml");
    std::fs::write(
        &policy,
        "xids: [{code: 13, name: our kernels never do this, action: reset_gpu, hardware: true}]\n\
         rules: [{name: all, condition: 'true', result: healthy}]\n",
    )
    .expect("write");
    let json: serde_json::Value =
        serde_json::from_str(&ok(bosun().args(["policy", "xids", "-o", "json", "--file"]).arg(&policy))).expect("JSON");
    assert_eq!(json["version"], "2026.12+policy");
    let xid_13 = json["xids"].as_array().expect("list").iter().find(|x| x["code"] == 13).expect("XID 13").clone();
    assert_eq!(
        xid_13,
        serde_json::json!({"code": 13, "name": "our kernels never do this", "action": "reset_gpu",
            "hardware": true, "source": "policy"})
    );
}

#[test]
fn config_check_redacts_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bosun.yaml");
    std::fs::write(
        &file,
        "server:\n  address: \":6000\"\nauth:\n  tokens:\n    - {name: ops, token: s3cret-value, role: admin}\n",
    )
    .expect("write");
    let out = ok(bosun().args(["config", "check"]).arg(&file));
    assert!(out.contains(":6000") && !out.contains("s3cret-value"), "{out}");
    std::fs::write(&file, "server:\n  adress: \":6000\"\n").expect("write");
    let line = fails_with_one_line(bosun().args(["config", "check"]).arg(&file));
    assert!(line.contains("server.adress"), "{line}");
}

#[test]
fn config_check_says_where_credentials_come_from_without_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bosun.yaml");
    std::fs::write(
        &file,
        "providers:\n  east: {type: aws, region: us-east-1, image_id: ami-0123abcd}\n  \
         lambda: {type: lambda, api_key_env: MY_LAMBDA_KEY}\n",
    )
    .expect("write");
    let aws = dir.path().join("credentials");
    std::fs::write(&aws, "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = very-secret\n").expect("write");
    let output = bosun()
        .args(["config", "check"])
        .arg(&file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &aws)
        .env("AWS_PROFILE", "ci")
        .env("HOME", dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("MY_LAMBDA_KEY")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("image_id: ami-0123abcd"), "{out}");
    assert!(out.contains(&format!("#   east: profile ci in {}", aws.display())), "{out}");
    assert!(out.contains("#   lambda: none usable here") && out.contains("MY_LAMBDA_KEY"), "{out}");
    assert!(!out.contains("very-secret") && !out.contains("AKIDCI"), "{out}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("warning: providers.lambda:"), "{err}");
}

#[test]
fn config_check_reads_and_compiles_the_health_policy_it_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bosun.yaml");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&file, format!("server:\n  health_policy: {}\n", policy.display())).expect("write");
    let line = fails_with_one_line(bosun().args(["config", "check"]).arg(&file));
    assert!(line.contains("server.health_policy") && line.contains("cannot read"), "{line}");
    std::fs::write(&policy, "rules:\n  - {name: broken, condition: 'event.', result: unhealthy}\n").expect("write");
    let line = fails_with_one_line(bosun().args(["config", "check"]).arg(&file));
    assert!(line.contains("not a valid policy") && line.contains("broken"), "{line}");
    std::fs::write(&policy, "rules:\n  - {name: all, condition: 'true', result: healthy}\n").expect("write");
    ok(bosun().args(["config", "check"]).arg(&file));
    std::fs::write(&file, "pools:\n  p: {provider: fake, instance_type: t, max_nodes: 1, timezone: Mars/Base}\nproviders:\n  fake: {type: fake}\n").expect("write");
    let line = fails_with_one_line(bosun().args(["config", "check"]).arg(&file));
    assert!(line.contains("pools.p.timezone"), "{line}");
}

#[test]
fn the_quickstart_config_brings_up_a_pool_of_three() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart.yaml");
    let (_server, url) =
        start_server(&["--config".as_ref(), config.as_ref(), "--store".as_ref(), store.as_ref()], "127.0.0.1:0");
    let json = eventually(&url, &["nodes", "list", "--pool", "demo", "-o", "json"], |out| {
        out.matches("\"ACTIVE\"").count() == 3
    });
    let nodes: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert!(nodes.as_array().expect("array").iter().all(|n| n["pool"] == "demo" && n["provider"] == "local"));
    let instances = ok(bosun().args(["instances", "list", "-o", "json", "--server", &url]));
    assert_eq!(instances.matches("\"RUNNING\"").count(), 3, "{instances}");

    // The ledger: bringing the pool up was a scale run, with the fields the CLI promises.
    let runs =
        ok(bosun().args(["runs", "list", "--kind", "scale", "--target", "demo", "-o", "json", "--server", &url]));
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("JSON");
    let id = runs[0]["id"].as_str().expect("a scale run").to_owned();
    let run = ok(bosun().args(["runs", "get", &id, "-o", "json", "--server", &url]));
    let run: serde_json::Value = serde_json::from_str(&run).expect("JSON");
    assert_eq!((run["status"].as_str(), run["kind"].as_str()), (Some("succeeded"), Some("scale")), "{run}");
    assert_eq!(run["targets"], serde_json::json!(["pool:demo"]));
    assert_eq!(run["requested_by"], "system:pool-reconciler");
    assert!(run["approved_by"].is_null());
    let events = run["events"].as_array().expect("events");
    assert!(
        !events.is_empty() && events.iter().all(|e| e["seq"].is_u64() && e["type"].is_string() && e["at"].is_string())
    );
    // A finished run's events are printed and --follow ends on its own.
    let followed = ok(bosun().args(["runs", "events", &id, "--follow", "-o", "json", "--server", &url]));
    assert_eq!(followed.lines().count(), events.len(), "{followed}");
    let audit = ok(bosun().args(["audit", "-o", "json", "--server", &url]));
    assert!(audit.contains("bosun.v1.AgentService/RegisterNode"), "{audit}");

    // A runbook started from the CLI prints its id and status, and runs to the end.
    let runbook = dir.path().join("check.yaml");
    std::fs::write(&runbook, "name: check\nsteps:\n  - cordon: {reason: check}\n  - uncordon: {}\n").expect("write");
    ok(bosun().args(["runbooks", "apply"]).arg(&runbook).args(["--server", &url]));
    let node = nodes[0]["node_id"].as_str().expect("a node id");
    let started = ok(bosun().args(["runs", "start", "check", "--node", node, "-o", "json", "--server", &url]));
    let started: serde_json::Value = serde_json::from_str(&started).expect("JSON");
    assert_eq!(started["status"], "queued", "{started}");
    let id = started["id"].as_str().expect("run id");
    eventually(&url, &["runs", "get", id, "-o", "json"], |out| out.contains("\"status\": \"succeeded\""));
    let line = fails_with_one_line(bosun().args(["runs", "approve", id, "--server", &url]));
    assert!(line.contains("waits for no approval"), "{line}");
}

#[test]
fn the_process_provider_runs_a_pool_of_real_agent_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bosun.yaml");
    std::fs::write(
        &config,
        "server:\n  autoscale_interval: 1s\n  health_check_interval: 1s\nproviders:\n  local:\n    type: process\n    gpu_count: 2\n\
         pools:\n  procs:\n    provider: local\n    instance_type: h100-8x\n    region: local\n    min_nodes: 3\n    max_nodes: 3\n",
    )
    .expect("write config");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let (server, url) =
        start_server(&["--config".as_ref(), config.as_os_str(), "--store".as_ref(), store.as_ref()], "127.0.0.1:0");
    let json = eventually(&url, &["nodes", "list", "--pool", "procs", "-o", "json"], |out| {
        out.matches("\"ACTIVE\"").count() == 3
    });
    let nodes: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let ids: Vec<&str> = nodes.as_array().expect("array").iter().filter_map(|n| n["node_id"].as_str()).collect();
    assert_eq!(ids.len(), 3);
    // Each node is a separate `bosun agent` process, a child of the server.
    assert_eq!(agent_children(server.child.id()), 3, "three agent processes");
    // Terminating a node stops its process; the pool replaces the machine.
    ok(bosun().args(["nodes", "terminate", ids[0], "--server", &url]));
    eventually(&url, &["nodes", "list", "--pool", "procs", "-o", "json"], |out| {
        out.matches("\"ACTIVE\"").count() == 3 && out.contains("\"TERMINATED\"")
    });
    sigterm(&server);
}

#[test]
fn sim_run_writes_reports_and_exits_non_zero_naming_the_failed_assertion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("wrong.yaml");
    std::fs::write(
        &scenario,
        "name: wrong\nfleet: [{id: node-1}]\nevents: [{at: 0s, action: start_fleet}, {at: 5s, action: wait}]\n\
         assertions: [{type: node_status, target: node-1, expected: cordoned}]\n",
    )
    .expect("write scenario");
    let out = dir.path().join("run");
    let output = run(bosun().args(["sim", "run"]).arg(&scenario).arg("--virtual-time").arg("--out").arg(&out));
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("FAILED wrong"), "{text}");
    assert!(text.contains("assertion node_status node-1 expected cordoned but was active"), "{text}");
    for file in ["report.json", "report.html", "scenario.yaml"] {
        assert!(out.join(file).exists(), "{file}");
    }

    let output =
        run(bosun().args(["sim", "run", "../../scenarios/basic-fleet.yaml", "--virtual-time", "--out"]).arg(&out));
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
}

/// `stress.report_file` and `stress.html_report_file` land inside `--out`; `stress.seed`
/// decides unless `--seed` is given.
#[test]
fn sim_run_writes_the_stress_report_files_and_honours_the_seeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("stress.yaml");
    std::fs::write(
        &scenario,
        "name: small-stress
stress:
  duration: 20s
  seed: 5
  report_file: stress-report.json
  html_report_file: stress-report.html
  fleet_gen: {total_nodes: 3, startup: {pattern: instant}}
",
    )
    .expect("write scenario");
    let seed_of = |out: &std::path::Path| {
        let text = std::fs::read_to_string(out.join("stress-report.json")).expect("stress.report_file written");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["name"], "small-stress");
        json["seed"].as_u64().expect("seed")
    };

    let out = dir.path().join("scenario-seed");
    let output = run(bosun().args(["sim", "run"]).arg(&scenario).arg("--virtual-time").arg("--out").arg(&out));
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert_eq!(seed_of(&out), 5, "stress.seed");
    let html = std::fs::read_to_string(out.join("stress-report.html")).expect("stress.html_report_file written");
    assert_eq!(html, std::fs::read_to_string(out.join("report.html")).expect("report.html"));

    let out = dir.path().join("flag-seed");
    let output =
        run(bosun().args(["sim", "run"]).arg(&scenario).args(["--virtual-time", "--seed", "9", "--out"]).arg(&out));
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert_eq!(seed_of(&out), 9, "--seed overrides stress.seed");
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.starts_with("stress-report")), "nothing written outside --out: {files:?}");
}

#[test]
fn sim_validate_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(&scenario, "name: bad\nevents:\n  - at: 1s\n    action: inject_failure\n    target: n\n    params: {failure_type: xid_error, xid: 79}\n")
        .expect("write scenario");
    let line = fails_with_one_line(bosun().args(["sim", "validate"]).arg(&scenario));
    assert!(line.contains("events[0].params.xid") && line.contains("unknown key `xid`"), "{line}");
    std::fs::write(&scenario, "name: ok\nfleet: [{id: n}]\nevents:\n  - at: 1s\n    action: inject_failure\n    target: n\n    params: {failure_type: xid_error, xid_code: 79}\n")
        .expect("write scenario");
    let listed = ok(bosun().args(["sim", "validate"]).arg(&scenario));
    assert!(
        listed.contains("inject_failure n failure_type=xid_error xid_code=79"),
        "each event with its parameters: {listed}"
    );
    let output = run(bosun().args(["sim", "validate", "../../scenarios/stress/1000-node-chaos.yaml"]));
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1000 generated nodes"));
    // The runbook scenario at fleet scale (run with `bosun sim run`; too long for the suite).
    let output = run(bosun().args(["sim", "validate", "../../scenarios/stress/1000-node-drain.yaml"]));
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(listed.contains("start_run drain-all selector=generated=true"), "{listed}");
}

#[test]
fn a_memory_store_needs_no_migration_flag() {
    let (_server, url) = start_server(&["--store".as_ref(), "memory://".as_ref()], "127.0.0.1:0");
    let out = eventually(&url, &["nodes", "list", "-o", "json"], |_| true);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn version_and_help_stay_to_the_point() {
    let version = ok(bosun().arg("version"));
    assert!(version.starts_with(&format!("bosun {} (", env!("CARGO_PKG_VERSION"))), "{version}");
    let help = ok(bosun().args(["nodes", "get", "--help"]));
    assert!(help.contains("Usage: bosun nodes get [OPTIONS] <NODE>"), "{help}");
    assert!(
        !help.contains("--store") && !help.contains("--log"),
        "client commands do not offer store or log flags: {help}"
    );
    assert!(ok(bosun().args(["db", "--help"])).contains("--store"));
}

#[test]
fn a_server_whose_database_file_is_deleted_stops_with_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bosun.db");
    let store = format!("sqlite://{}", db.display());
    let (mut server, url) = start_server(&["--store".as_ref(), store.as_ref()], "127.0.0.1:0");
    eventually(&url, &["nodes", "list"], |_| true);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&db).expect("db").permissions().mode() & 0o777, 0o600, "created owner-only");

    std::fs::remove_file(&db).expect("delete the database under the server");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "rules:\n  - {name: r, condition: 'false', result: degraded}\n").expect("policy");
    let line = fails_with_one_line(bosun().args(["policy", "set", policy.to_str().expect("path"), "--server", &url]));
    assert!(line.contains("answered 503") && line.contains("was deleted"), "{line}");

    // The server stops by itself, non-zero, saying why.
    let mut status = None;
    for _ in 0..100 {
        status = server.child.try_wait().expect("wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("the server exited");
    assert!(!status.success(), "{status}");
    let stderr = server.stderr();
    assert!(stderr.contains("error: the server stopped: the database file"), "{stderr}");
}

/// `GET /readyz` of the server at `url` (`http://HOST:PORT`), or the connection error.
fn readyz(url: &str) -> String {
    use std::io::Read as _;
    let address = url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return "unreachable".to_owned() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return "unreachable".to_owned();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_once("\r\n\r\n").map_or(response.clone(), |(_, body)| body.trim().to_owned())
}

/// Waits until one of `urls` says it leads; returns its index and how long that took.
fn await_leader(urls: &[&str], limit: Duration) -> (usize, Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(index) = urls.iter().position(|url| readyz(url) == "ready: leader") {
            return (index, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "no replica leads after {limit:?}: {:?}",
            urls.iter().map(|u| readyz(u)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three `bosun server` processes on one PostgreSQL database and agents that know all
/// three: one leads; kill -9 of the leader makes another lead within the lease, the agents
/// carry on through the others, and a SIGTERM hands over within about one renew interval.
#[test]
fn three_replicas_on_postgres_fail_over() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(database) = runtime.block_on(bosun_store::testing::TestLocation::new(bosun_store::Backend::Postgres))
    else {
        return;
    };
    let store = match &database.location {
        bosun_store::StoreLocation::Postgres { url } => url.to_string(),
        other => panic!("a PostgreSQL location, got {other}"),
    };
    let mut servers: Vec<Option<(Running, String)>> = ["ctl-a", "ctl-b", "ctl-c"]
        .iter()
        .map(|id| {
            Some(start_server(
                &["--store".as_ref(), store.as_ref(), "--replica-id".as_ref(), id.as_ref()],
                "127.0.0.1:0",
            ))
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.as_ref().expect("running").1.clone()).collect();
    let all = urls.join(",");
    let _agents: Vec<Running> = ["n1", "n2", "n3"].iter().map(|node| agent(&all, node)).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let (leader, _) = await_leader(&url_refs, Duration::from_secs(30));
    let followers = url_refs.iter().filter(|u| readyz(u) == "ready: follower").count();
    assert_eq!(followers, 2, "exactly one leader among three");
    let listed =
        eventually(&all, &["replicas", "list", "-o", "json"], |out| out.matches("\"replica_id\"").count() == 3);
    let replicas: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let leaders: Vec<&serde_json::Value> =
        replicas.as_array().expect("a list").iter().filter(|r| r["leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "{listed}");
    assert_eq!(leaders[0]["epoch"], 1, "{listed}");
    assert_eq!(leaders[0]["address"], urls[leader].as_str(), "{listed}");
    eventually(&all, &["nodes", "list", "-o", "json"], |out| out.matches("\"ACTIVE\"").count() == 3);

    // kill -9: a follower takes over once it has seen the lease unchanged for 10 s.
    let (mut killed, _) = servers[leader].take().expect("running");
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("reaped");
    let rest: Vec<&str> = url_refs.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, u)| *u).collect();
    let (new_leader, failover) = await_leader(&rest, Duration::from_secs(40));
    println!("kill -9 of the leader to a new leader: {failover:?}");
    // The agents carry on through the surviving servers; a command reaches them.
    let survivors = rest.join(",");
    eventually(&survivors, &["nodes", "list", "-o", "json"], |out| out.matches("\"ACTIVE\"").count() == 3);
    ok(bosun().args(["nodes", "cordon", "n1", "--server", &survivors]));
    eventually(&survivors, &["commands", "list", "--node", "n1", "-o", "json"], |out| out.contains("\"SUCCEEDED\""));
    let leases = ok(bosun().args(["events", "--kind", "lease", "-o", "json", "--server", &survivors]));
    assert!(
        leases.matches("\"kind\": \"lease\"").count() + leases.matches("\"kind\":\"lease\"").count() >= 2,
        "{leases}"
    );

    // SIGTERM: the leader releases the lease; the last replica leads within a renew or two.
    let index = url_refs.iter().position(|u| *u == rest[new_leader]).expect("a server");
    let (stopping, _) = servers[index].take().expect("running");
    sigterm(&stopping);
    let last: Vec<&str> = rest.iter().filter(|u| **u != rest[new_leader]).copied().collect();
    let (_, handover) = await_leader(&last, Duration::from_secs(20));
    println!("SIGTERM of the leader to a new leader: {handover:?}");
    drop(stopping);
    drop(servers);
}

#[test]
fn the_proxmox_mock_serves_its_token_only_and_feeds_the_inventory() {
    use std::io::Read as _;
    let mock = proxmox_mock(&["--vms", "2", "--containers", "3"]);
    let address = mock.url.trim_start_matches("http://").to_owned();
    let (token_id, secret) = (&mock.token_id, &mock.secret);
    let get = |authorization: &str| {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        write!(
            stream,
            "GET /api2/json/cluster/resources HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        answer
    };
    let answer = get(&format!("PVEAPIToken={token_id}={secret}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("\"type\":\"qemu\"").count(), 3, "two VMs and the template: {answer}");
    assert_eq!(answer.matches("\"template\":1").count(), 1, "{answer}");
    assert_eq!(answer.matches("\"type\":\"lxc\"").count(), 3, "{answer}");
    assert!(get("PVEAPIToken=someone@pve!x=guess").starts_with("HTTP/1.1 401"));

    // A server with the mock as its inventory source: records, sync history and tasks.
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).expect("secret");
    let config = dir.path().join("bosun.yaml");
    std::fs::write(
        &config,
        format!(
            "inventory:\n  sources:\n    - name: pve1\n      type: proxmox\n      url: http://{address}\n      \
             token_id: \"{token_id}\"\n      token_secret_file: {}\n      interval: 1h\n",
            secret_file.display()
        ),
    )
    .expect("config");
    let (_server, url) = start_server(
        &["--config".as_ref(), config.as_os_str(), "--store".as_ref(), "memory://".as_ref()],
        "127.0.0.1:0",
    );
    eventually(&url, &["inventory", "sync", "-o", "json"], |out| out.contains("\"pve1\""));
    let vms: serde_json::Value =
        serde_json::from_str(&ok(bosun().args(["vms", "list", "-o", "json", "--server", &url]))).expect("vms as JSON");
    assert!(vms.as_array().is_some_and(|vms| vms.len() >= 2 && vms.iter().all(|v| v["source"] == "pve1")), "{vms}");
    let syncs: serde_json::Value = serde_json::from_str(&ok(bosun().args([
        "inventory",
        "syncs",
        "--source",
        "pve1",
        "-o",
        "json",
        "--server",
        &url,
    ])))
    .expect("syncs as JSON");
    // Newest first: the read at start created the records, the one asked for found them.
    let oldest = syncs.as_array().and_then(|syncs| syncs.last()).expect("a sync");
    assert!(oldest["created"].as_u64().is_some_and(|n| n >= 5) && oldest["error"].is_null(), "{syncs}");
    assert!(syncs[0]["unchanged"].as_u64().is_some_and(|n| n >= 5), "{syncs}");
    let runs = ok(bosun().args(["runs", "list", "--kind", "external", "-o", "json", "--server", &url]));
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("runs as JSON");
    assert!(runs.as_array().is_some_and(|runs| !runs.is_empty()), "the nodes' tasks are runs: {runs}");
}

#[test]
fn inventory_diff_exits_1_on_drift_and_the_server_records_its_declarations_drift() {
    let mock = proxmox_mock(&["--nodes", "1", "--vms", "2", "--containers", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("secret"), &mock.secret).expect("write");
    let declaration = |name: &str, text: &str| {
        std::fs::write(path(name), text).expect("write");
        path(name).display().to_string()
    };
    // VMs 100 and 101 (gpu-vm-0, gpu-vm-1, 16 cores), container 102 (svc-0), and the template
    // VM 9000 (read, never unexpected: no template is declared), all on pve1.
    let matching = declaration(
        "matching.yaml",
        "source: pve1\nvms:\n  - vmid: 100\n    name: gpu-vm-0\n    cpus: 16\n  - vmid: 101\n\
         containers:\n  - name: svc-0\n    status: running\n",
    );
    let drifting =
        declaration("drifting.yaml", "source: pve1\nvms:\n  - vmid: 100\n    cpus: 8\n  - vmid: 999\ncontainers: []\n");
    let bad = declaration("bad.yaml", "source: pve1\nvms:\n  - vmid: 100\n    cpu: 8\n");
    std::fs::write(
        path("bosun.yaml"),
        format!(
            "inventory:\n  sources:\n    - name: pve1\n      type: proxmox\n      url: {}\n      \
             token_id: \"{}\"\n      token_secret_file: {}\n  declaration: {drifting}\n",
            mock.url,
            mock.token_id,
            path("secret").display()
        ),
    )
    .expect("write");
    let (_server, url) = start_server(
        &["--store".as_ref(), "memory://".as_ref(), "--config".as_ref(), path("bosun.yaml").as_os_str()],
        "127.0.0.1:0",
    );
    // The source is read when the server starts.
    eventually(&url, &["inventory", "sources", "-o", "json"], |out| out.contains("\"syncs\": 1"));

    let same = ok(bosun().args(["inventory", "diff", &matching, "--server", &url]));
    assert_eq!(same, "no drift: 4 records of pve1 as declared\n");

    let output = run(bosun().args(["inventory", "diff", &drifting, "--server", &url]));
    assert_eq!(output.status.code(), Some(1), "drift exits 1: {}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "missing vm pve1/999\nunexpected vm pve1/101 (gpu-vm-1)\nunexpected container pve1/102 (svc-0)\n\
         changed vm pve1/100 (gpu-vm-0) cpus: declared 8, actual 16\ndrift: 1 missing, 2 unexpected, 1 changed\n"
    );
    let output = run(bosun().args(["inventory", "diff", &drifting, "-o", "json", "--server", &url]));
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("a JSON report");
    assert_eq!(report["changed"][0]["field"], "cpus");
    assert_eq!(
        (report["changed"][0]["declared"].as_u64(), report["changed"][0]["actual"].as_u64()),
        (Some(8), Some(16))
    );
    assert_eq!(report["missing"][0]["vmid"], 999);

    // A bad declaration exits 2 (1 is drift), with one line naming the file, key and line.
    let output = run(bosun().args(["inventory", "diff", &bad, "--server", &url]));
    assert_eq!(output.status.code(), Some(2), "trouble is not drift: {}", stderr(&output));
    let line = stderr(&output).trim_end().to_owned();
    assert!(line.starts_with("error: ") && !line.contains('\n'), "{line}");
    assert!(line.contains(&format!("{bad}: vms[0].cpu: unknown key")) && line.ends_with("(line 4)"), "{line}");

    // The server checks its own declaration (the drifting one) right after its sync.
    let history = eventually(&url, &["inventory", "history", "drift", "declaration", "-o", "json"], |_| true);
    let events: serde_json::Value = serde_json::from_str(&history).expect("a JSON array");
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(events[0]["resource"]["missing"][0]["vmid"], 999, "{history}");
    let line = fails_with_one_line(bosun().args(["inventory", "history", "drift", "other", "--server", &url]));
    assert!(line.contains("no drift is recorded under \"other\""), "{line}");
}

/// The README's inventory walk-through with a service: the server syncs the Proxmox mock
/// and the configured services at start, `services get` lists the VMs the tags select,
/// and `-l` filters a list by label selector.
#[test]
fn services_group_the_mocks_tagged_vms_and_lists_filter_by_selector() {
    let mock = proxmox_mock(&["--nodes", "2", "--vms", "4", "--containers", "2"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("pve-secret");
    std::fs::write(&secret_file, &mock.secret).expect("write the secret");
    let config = dir.path().join("inventory.yaml");
    let text = format!(
        "inventory:
  sources:
    - name: pve1
      type: proxmox
      url: {}
      token_id: \"{}\"
      token_secret_file: {}
  services:
    - name: training
      selector: training
      kinds: [vm]
      description: the VMs tagged training
",
        mock.url,
        mock.token_id,
        secret_file.display()
    );
    std::fs::write(&config, text).expect("write the config");
    let (_server, url) = start_server(
        &["--config".as_ref(), config.as_os_str(), "--store".as_ref(), "memory://".as_ref()],
        "127.0.0.1:0",
    );

    // Synced at start: the service, then (once pve1 is read) its members.
    let json =
        eventually(&url, &["services", "get", "training", "-o", "json"], |out| out.contains("\"member_count\": 2"));
    let service: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!((service["selector"].as_str(), service["member_count"].as_u64()), (Some("training"), Some(2)), "{json}");
    let members: Vec<&str> =
        service["members"].as_array().expect("members").iter().filter_map(|m| m["key"].as_str()).collect();
    assert_eq!(members, ["100", "102"], "{json}");
    let table = ok(bosun().args(["services", "get", "training", "--server", &url]));
    assert!(table.contains("2 members:") && table.contains("pve1/102"), "{table}");
    let listed = ok(bosun().args(["services", "list", "--server", &url]));
    assert!(listed.starts_with("ID  ") && listed.contains("services/training"), "{listed}");

    let json = ok(bosun().args(["vms", "list", "-l", "gpu,inference", "-o", "json", "--server", &url]));
    let vms: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let keys: Vec<&str> = vms.as_array().expect("array").iter().filter_map(|v| v["key"].as_str()).collect();
    assert_eq!(keys, ["101", "103"], "{json}");
    assert_eq!(vms[0]["labels"], serde_json::json!({"gpu": "", "inference": ""}));
    let named = ok(bosun().args(["vms", "list", "--name", "gpu-vm-0", "-o", "json", "--server", &url]));
    assert_eq!(named.matches("\"vmid\"").count(), 1, "{named}");
    let line = fails_with_one_line(bosun().args(["vms", "list", "-l", "bad key", "--server", &url]));
    assert!(line.contains("invalid_argument") && line.contains("label_selector"), "{line}");
    let line = fails_with_one_line(bosun().args(["hosts", "list", "-l", "gpu", "--server", &url]));
    assert!(line.contains("invalid_argument") && line.contains("labels"), "{line}");
}

/// `bosun dev proxmox-mock`'s URL, token and template, read from what it prints.
struct ProxmoxMock {
    _process: Running,
    url: String,
    token_id: String,
    secret: String,
    template_vmid: String,
}

fn proxmox_mock(args: &[&str]) -> ProxmoxMock {
    use std::io::BufRead as _;
    let mut child = bosun()
        .args(["dev", "proxmox-mock", "--address", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the mock");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut line = || lines.next().expect("a line").expect("text");
    let banner = line();
    let url = banner
        .split_once("http://")
        .and_then(|(_, rest)| rest.split(' ').next())
        .map(|address| format!("http://{address}"))
        .unwrap_or_else(|| panic!("no URL in {banner:?}"));
    let token_id = line().trim_start_matches("token_id: ").trim_matches('"').to_owned();
    let secret = line().trim_start_matches("token secret: ").to_owned();
    let template = line();
    let template_vmid = template
        .strip_prefix("template_vmid: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no template in {template:?}"))
        .to_owned();
    ProxmoxMock { _process: Running::new(child), url, token_id, secret, template_vmid }
}

#[test]
fn nodes_get_drain_and_terminate_show_a_proxmox_pool_machines_vm_and_workloads() {
    let mock = proxmox_mock(&["--nodes", "2", "--vms", "2", "--containers", "1"]);
    assert_eq!(mock.template_vmid, "9000");
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("pve-token");
    std::fs::write(&secret, &mock.secret).expect("write the secret");
    let endpoint =
        format!("url: {}\n    token_id: \"{}\"\n    token_secret_file: {}", mock.url, mock.token_id, secret.display());
    // The README's pool against the mock.
    let config = dir.path().join("bosun.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  autoscale_interval: 1s\n  heartbeat_interval: 1s\nproviders:\n  pve:\n    type: proxmox\n    {endpoint}\n    \
             template_vmid: {}\npools:\n  pve-gpu:\n    provider: pve\n    instance_type: pve-a100\n    \
             min_nodes: 1\n    max_nodes: 2\ninventory:\n  sources:\n    - name: pve1\n      type: proxmox\n      \
             {}\n      interval: 30s\n",
            mock.template_vmid,
            endpoint.replace("\n    ", "\n      "),
        ),
    )
    .expect("write config");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let (_server, url) =
        start_server(&["--config".as_ref(), config.as_os_str(), "--store".as_ref(), store.as_ref()], "127.0.0.1:0");

    // The pool clones the template; the clone's agent registers under the VM's name (its
    // instance id), as cloud-init makes it the host name.
    let listed = eventually(&url, &["instances", "list", "--pool", "pve-gpu", "-o", "json"], |out| {
        out.contains("PENDING_REGISTRATION") && out.contains("\"provider_instance_id\": \"pve")
    });
    let instances: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let instance = instances[0]["instance_id"].as_str().expect("an instance id").to_owned();
    let state = dir.path().join("agent-state");
    let _agent = Running::new(
        bosun()
            .args(["agent", "--server", &url, "--node-id", &instance, "--fake-gpus", "2"])
            .args(["--provider", "pve", "--pool", "pve-gpu", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agent"),
    );
    eventually(&url, &["instances", "list", "--pool", "pve-gpu", "-o", "json"], |out| out.contains("\"RUNNING\""));
    ok(bosun().args(["commands", "issue", &instance, "--type", "custom:fake-process", "--server", &url]).args([
        "-p",
        "pid=4242",
        "-p",
        "gpu=1",
        "-p",
        "name=train",
        "-p",
        "memory=8GiB",
    ]));
    eventually(&url, &["workloads", "list", "--node", &instance, "-o", "json"], |out| out.contains("\"train\""));
    ok(bosun().args(["inventory", "sync", "--server", &url]));
    let vms = ok(bosun().args(["vms", "list", "--node", &instance, "-o", "json", "--server", &url]));
    let vms: serde_json::Value = serde_json::from_str(&vms).expect("JSON");
    assert_eq!(vms.as_array().map(Vec::len), Some(1), "{vms}");
    assert_eq!(
        (vms[0]["name"].as_str(), vms[0]["node_id"].as_str()),
        (Some(instance.as_str()), Some(instance.as_str()))
    );
    let vm_id = format!("pve1/{}", vms[0]["vmid"]);

    // nodes get: the VM and the workloads, in a table and as JSON beside the node's fields.
    let shown = ok(bosun().args(["nodes", "get", &instance, "--server", &url]));
    let vm_line = shown.lines().find(|l| l.starts_with("vm:")).unwrap_or_else(|| panic!("no vm line:\n{shown}"));
    assert!(vm_line.contains(&vm_id) && vm_line.contains(&format!("({instance}, running on pve")), "{vm_line}");
    assert!(shown.contains("PID   PROCESS  GPUS  GPU MEMORY"), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("4242  train    1     8.0 GiB")), "{shown}");
    let json = ok(bosun().args(["nodes", "get", &instance, "-o", "json", "--server", &url]));
    let node: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!((node["node_id"].as_str(), node["gpu_count"].as_u64()), (Some(instance.as_str()), Some(2)));
    assert_eq!(node["inventory"]["vm"]["name"], instance.as_str(), "{node}");
    assert!(node["inventory"]["host"].is_null());
    assert_eq!(node["inventory"]["workloads"][0]["pid"], 4242);

    // drain and terminate say what they affect.
    let drained = ok(bosun().args(["nodes", "drain", &instance, "--server", &url]));
    assert!(drained.starts_with(&format!("DRAIN {instance}: command ")), "{drained}");
    assert!(
        drained.contains(&format!("GPU workloads on {instance} (1):\n  pid 4242 train on GPU 1, 8.0 GiB\n")),
        "{drained}"
    );
    let terminated = ok(bosun().args(["nodes", "terminate", &instance, "-o", "json", "--server", &url]));
    let terminated: serde_json::Value = serde_json::from_str(&terminated).expect("JSON");
    assert_eq!(
        (terminated["type"].as_str(), terminated["node_id"].as_str()),
        (Some("TERMINATE"), Some(instance.as_str()))
    );
    assert_eq!(terminated["workloads"][0]["process_name"], "train", "{terminated}");
    // The pool terminates the instance: its VM is stopped and destroyed.
    eventually(&url, &["instances", "get", &instance, "-o", "json"], |out| out.contains("\"TERMINATED\""));
}

#[test]
fn mcp_disable_status_and_enable_set_the_stored_kill_switch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let config = dir.path().join("bosun.yaml");
    std::fs::write(
        &config,
        "auth:\n  tokens:\n    - {name: root, token: root-secret, role: admin}\n    - {name: oncall, token: oncall-secret, role: operator}\n",
    )
    .expect("write");
    let (_server, url) =
        start_server(&["--config".as_ref(), config.as_ref(), "--store".as_ref(), store.as_ref()], "127.0.0.1:0");
    let as_token = |token: &str, args: &[&str]| {
        let mut command = bosun();
        command.args(["mcp"]).args(args).args(["--server", &url, "--token", token]);
        command
    };
    let status = eventually(&url, &["mcp", "status", "-o", "json", "--token", "oncall-secret"], |_| true);
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(status["enabled"], true, "{status}");
    assert!(status["changed_by"].is_null(), "never set: {status}");

    let disabled = ok(&mut as_token("oncall-secret", &["disable", "--reason", "incident 42"]));
    assert!(disabled.starts_with("MCP: disabled\n"), "{disabled}");
    assert!(disabled.contains("set by oncall at ") && disabled.contains("reason: incident 42"), "{disabled}");
    let status = ok(&mut as_token("oncall-secret", &["status", "-o", "json"]));
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(
        (&status["enabled"], &status["config_enabled"], &status["stored_enabled"]),
        (&false.into(), &true.into(), &false.into())
    );
    assert_eq!((status["changed_by"].as_str(), status["reason"].as_str()), (Some("oncall"), Some("incident 42")));
    assert!(status["changed_at"].is_string(), "{status}");

    let line = fails_with_one_line(&mut as_token("oncall-secret", &["enable"]));
    assert!(line.contains("permission_denied") && line.contains("admin token"), "{line}");
    let enabled = ok(&mut as_token("root-secret", &["enable"]));
    assert!(enabled.starts_with("MCP: enabled\n") && enabled.contains("set by root"), "{enabled}");

    // The tools, each enabled or disabled for every agent.
    let tools = ok(&mut as_token("oncall-secret", &["tools"]));
    assert!(tools.starts_with("NAME"), "{tools}");
    assert!(
        tools.lines().any(|l| l.starts_with("terminate_node") && l.contains("destructive") && l.contains(" yes ")),
        "{tools}"
    );
    let off = ok(&mut as_token("oncall-secret", &["tool", "disable", "terminate_node"]));
    assert_eq!(off, "tool terminate_node disabled\n");
    let tools = ok(&mut as_token("oncall-secret", &["tools", "-o", "json"]));
    let tools: serde_json::Value = serde_json::from_str(&tools).expect("JSON");
    let terminate = tools.as_array().expect("array").iter().find(|t| t["name"] == "terminate_node").expect("listed");
    assert_eq!((&terminate["enabled"], &terminate["risk"]), (&false.into(), &"destructive".into()), "{terminate}");
    assert_eq!(terminate["input_schema"]["type"], "object", "{terminate}");
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["tool", "enable", "terminate_node"]));
    assert!(line.contains("permission_denied"), "{line}");
    ok(&mut as_token("root-secret", &["tool", "enable", "terminate_node"]));
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["tool", "disable", "drop_tables"]));
    assert!(line.contains("not_found") && line.contains("drop_tables"), "{line}");
    // A session's calls: a run that does not exist, or is not a run id, says so.
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["calls", "019b0000-0000-7000-8000-000000000000"]));
    assert!(line.contains("not_found"), "{line}");
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["calls", "yesterday"]));
    assert!(line.contains("invalid_argument") && line.contains("run_id"), "{line}");
}

/// A Connect JSON call (`POST /bosun.v1.Service/Method`) to the server at `url` as `token`,
/// over HTTP/1.0 so the answer is not chunked:
/// the HTTP status code and the body.
fn connect_json(url: &str, method: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::Read as _;
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = format!(
        "POST /{method} HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

#[test]
fn pricing_set_and_list_and_usage_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    let config = dir.path().join("bosun.yaml");
    std::fs::write(
        &config,
        "auth:\n  tokens:\n    - {name: root, token: root-secret, role: admin}\n    - {name: oncall, token: oncall-secret, role: operator}\n",
    )
    .expect("write");
    let (_server, url) =
        start_server(&["--config".as_ref(), config.as_ref(), "--store".as_ref(), store.as_ref()], "127.0.0.1:0");
    eventually(&url, &["pricing", "list", "--token", "oncall-secret"], |_| true);
    let as_token = |token: &str, args: &[&str]| {
        let mut command = bosun();
        command.args(args).args(["--server", &url, "--token", token]);
        command
    };

    let prices = dir.path().join("prices.yaml");
    std::fs::write(
        &prices,
        "- {provider: acme, model: acme-large, input_per_mtok_usd: 3.0, output_per_mtok_usd: 15.0,\n   \
         cached_input_per_mtok_usd: 0.3, effective_from: \"2026-01-01T00:00:00Z\"}\n",
    )
    .expect("write");
    let file = prices.to_str().expect("path");
    // Setting prices takes an admin.
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["pricing", "set", file]));
    assert!(line.contains("permission_denied") && line.contains("admin token"), "{line}");
    assert_eq!(ok(&mut as_token("root-secret", &["pricing", "set", file])), "set 1 price\n");

    let table = ok(&mut as_token("oncall-secret", &["pricing", "list", "--current"]));
    assert!(
        table.starts_with("PROVIDER ") && table.lines().next().is_some_and(|h| h.contains("CACHED INPUT $/MTOK")),
        "{table}"
    );
    let acme = table.lines().find(|l| l.starts_with("acme ")).unwrap_or_else(|| panic!("no acme line:\n{table}"));
    let cells: Vec<&str> = acme.split_whitespace().collect();
    assert_eq!(cells, ["acme", "acme-large", "3", "15", "0.3", "2026-01-01T00:00:00.000000Z", "-"], "{acme}");
    let json = ok(&mut as_token("oncall-secret", &["pricing", "list", "-o", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let acme = listed.as_array().expect("an array").iter().find(|p| p["provider"] == "acme").expect("acme");
    assert_eq!(
        (&acme["input_per_mtok_usd"], &acme["cached_input_per_mtok_usd"], &acme["updated_by"]),
        (&3.0.into(), &0.3.into(), &"root".into())
    );

    // Bad files name the entry and the key; nothing is sent.
    std::fs::write(&prices, "- {provider: acme, model: m, input_per_mtok_usd: 1, output_per_mtok_usd: 1, effective_from: \"2026-01-01T00:00:00Z\", colour: red}\n").expect("write");
    let line = fails_with_one_line(&mut as_token("root-secret", &["pricing", "set", file]));
    assert!(line.contains("[0].colour") && line.contains("unknown key"), "{line}");
    std::fs::write(&prices, "- {provider: acme, model: m, input_per_mtok_usd: -1, output_per_mtok_usd: 1, effective_from: \"2026-01-01T00:00:00Z\"}\n").expect("write");
    let line = fails_with_one_line(&mut as_token("root-secret", &["pricing", "set", file]));
    assert!(line.contains("[0].input_per_mtok_usd") && line.contains("-1 is not a price"), "{line}");

    // An AI agent reports its requests over the API's JSON (as an operator); the usage
    // since 2025 is summed per model. The real clock is past 2026-01-01, so the price covers.
    let record = "bosun.v1.OpsService/RecordLlmUsage";
    let (status, body) = connect_json(
        &url,
        record,
        "oncall-secret",
        r#"{"provider": "acme", "model": "acme-large", "inputTokens": 2000, "cachedInputTokens": 1000, "outputTokens": 1000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let recorded: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((&recorded["priced"], &recorded["costUsd"]), (&true.into(), &0.0213.into()), "{recorded}");
    assert_eq!(recorded["costMicroUsd"], "21300", "proto3 JSON writes 64-bit integers as strings: {body}");
    let (status, body) = connect_json(
        &url,
        record,
        "oncall-secret",
        r#"{"provider": "acme", "model": "acme-mystery", "inputTokens": 5}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("stored with cost unknown"), "{body}");
    let (status, body) = connect_json(
        &url,
        record,
        "oncall-secret",
        r#"{"provider": "acme", "model": "acme-large", "inputTokens": -1}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_argument") && body.contains("input_tokens: must be"), "{body}");

    let json = ok(&mut as_token("oncall-secret", &["usage", "--since", "2025-01-01T00:00:00Z", "-o", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let keys = |row: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = row.as_object().expect("an object").keys().cloned().collect();
        keys.sort();
        keys
    };
    let expected = [
        "cached_input_tokens",
        "cost_usd",
        "input_tokens",
        "model",
        "output_tokens",
        "provider",
        "requests",
        "unpriced_requests",
    ];
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    for row in rows.as_array().expect("an array") {
        assert_eq!(keys(row), expected, "{row}");
    }
    assert_eq!(
        (&rows[0]["model"], &rows[0]["requests"], &rows[0]["input_tokens"], &rows[0]["cost_usd"]),
        (&"acme-large".into(), &1.into(), &2000.into(), &0.0213.into())
    );
    assert_eq!(
        (&rows[1]["model"], &rows[1]["cost_usd"], &rows[1]["unpriced_requests"]),
        (&"acme-mystery".into(), &serde_json::Value::Null, &1.into())
    );
    let table = ok(&mut as_token("oncall-secret", &["usage", "--since", "3650d"]));
    let cells = |model: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.contains(model)).unwrap_or_else(|| panic!("no {model} line:\n{table}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(cells("acme-large"), ["acme", "acme-large", "1", "2000", "1000", "1000", "$0.0213", "0"], "{table}");
    assert_eq!(cells("acme-mystery"), ["acme", "acme-mystery", "1", "5", "0", "0", "unknown", "1"], "{table}");
    let by_actor = ok(&mut as_token("oncall-secret", &["usage", "--by", "actor", "-o", "json"]));
    let by_actor: serde_json::Value = serde_json::from_str(&by_actor).expect("JSON");
    assert_eq!((&by_actor[0]["actor"], &by_actor[0]["requests"]), (&"oncall".into(), &2.into()), "{by_actor}");
    let line = fails_with_one_line(&mut as_token("oncall-secret", &["usage", "--since", "last tuesday"]));
    assert!(line.contains("--since"), "{line}");
}
