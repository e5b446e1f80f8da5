//! Crash durability (SPEC 11): a child process performs hard-state writes and prints each
//! acknowledged node id; we kill it with SIGKILL at random moments, again and again, then
//! check that every acknowledged write is present and `bosun db check` is clean.
//!
//! "Random moments" are chosen by counting acknowledgements, not by sleeping: the kill
//! lands after a random number of acks, while the writer is somewhere inside its next
//! transaction.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::Arc;

use bosun_core::{FakeClock, InstanceState, NodeId};
use bosun_store::testing::{TestLocation, test_options};
use bosun_store::{Backend, CommandFilter, Database, PageRequest, StoreLocation};
use common::{bosun, ok};
use rand::{Rng as _, SeedableRng as _};

const ROUNDS: usize = 20;

fn url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Postgres { url } => url.to_string(),
        other => other.to_string(),
    }
}

/// Runs the writer until it has acknowledged `acks` writes, then kills it with SIGKILL.
/// Returns every id it acknowledged (it may get one or two more out before the signal).
fn write_then_kill(store: &str, prefix: &str, acks: usize) -> Vec<NodeId> {
    let mut child = bosun()
        .args(["debug", "--store", store, "crash-writer", "--prefix", prefix])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the crash writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    while acked.len() < acks {
        match lines.next() {
            Some(Ok(line)) => {
                let id = line.strip_prefix("ack ").unwrap_or_else(|| panic!("unexpected output {line:?}"));
                acked.push(id.parse().expect("a node id"));
            }
            Some(Err(e)) => panic!("reading the writer's output: {e}"),
            None => panic!("the writer exited early: {:?}", child.wait()),
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // Anything it printed before dying was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(id.parse().expect("a node id"));
        }
    }
    acked
}

async fn survives_repeated_sigkill(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let store_url = url(&test.location);
    ok(bosun().args(["db", "--store", &store_url, "migrate", "up"]));

    let seed = rand::random::<u64>();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        let acks = rng.random_range(1..=30);
        acknowledged.extend(write_then_kill(&store_url, &format!("r{round:02}"), acks));
    }

    let database = Database::connect(&test.location).await.expect("connect after the crashes");
    database.ensure_current().await.expect("schema intact");
    let store = database.into_store(test_options(Arc::new(FakeClock::at_default_epoch()))).await.expect("open store");
    for id in &acknowledged {
        let node = store.node(id).await.unwrap_or_else(|e| panic!("acknowledged node {id} was lost: {e}"));
        assert_eq!(node.id, *id);
        let instance = store.instance_for_node(id).await.expect("lookup").expect("its instance");
        assert_eq!(instance.state, InstanceState::Running);
        let filter = CommandFilter { node_id: Some(id.clone()), ..CommandFilter::default() };
        let commands = store.list_commands(&filter, &PageRequest::first(10)).await.expect("commands");
        assert_eq!(commands.items.len(), 1, "the command written with node {id}");
    }
    let findings = store.check_integrity().await.expect("check");
    assert!(findings.is_empty(), "integrity problems after crashes: {findings:?}");
    store.close().await;
    let report = ok(bosun().args(["db", "--store", &store_url, "check"]));
    assert!(report.contains("consistent"), "{report}");
    assert!(acknowledged.len() >= ROUNDS);
}

#[tokio::test]
async fn sqlite_survives_repeated_sigkill() {
    survives_repeated_sigkill(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_survives_repeated_sigkill() {
    survives_repeated_sigkill(Backend::Postgres).await;
}
