//! Several servers on one PostgreSQL database: what one commits reaches the others
//! through LISTEN/NOTIFY and their change followers, not at their next poll.
//!
//! The servers run with a change poll interval and a long-poll wait of an hour, and the
//! background loops off (no janitor re-reads the policy), so within a test's bounded wait
//! only a notification can wake a replica. Only PostgreSQL is shared by replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_agent::ControlPlane;
use bosun_api::{AgentClient, v1};
use bosun_store::Backend;

use crate::harness::*;
use crate::policy::{STRICT, thermal};

/// Far beyond any wait of these tests.
const NEVER: Duration = Duration::from_secs(3600);
/// The longest a test waits for a replica to react before it fails.
const GUARD: Duration = Duration::from_secs(10);

fn replica_settings() -> bosun_server::Settings {
    bosun_server::Settings { change_poll_interval: NEVER, command_poll_wait: NEVER, ..settings() }
}

/// Two servers on one fresh PostgreSQL database, or `None` when PostgreSQL may be skipped.
async fn two_replicas() -> Option<(Harness, Harness)> {
    let a = Harness::start_with(Backend::Postgres, replica_settings()).await?;
    let b = a.replica().await;
    Some((a, b))
}

/// A gauge or counter of a server's `/metrics`, 0 when absent.
async fn metric(h: &Harness, series: &str) -> f64 {
    let text = h.get_text("/metrics").await;
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// Waits (at network speed, bounded) until `h` has `count` calls of `method` waiting for
/// a commit, so that what is committed next can only reach them by waking them.
async fn wait_until_waiting(h: &Harness, method: &str, count: f64) {
    let series = format!("bosun_requests_waiting{{method=\"{method}\"}}");
    for _ in 0..200 {
        if metric(h, &series).await == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{method}: {count} calls never waited ({} do)", metric(h, &series).await);
}

/// Issues a cordon of `node` through `a` while `agent`'s long poll for it waits on `b`;
/// returns the time from the IssueCommand call to the poll's answer.
async fn cordon_wakes_poll(a: &Harness, b: &Harness, agent: &Arc<AgentClient>, node: &str) -> Duration {
    let client = Arc::clone(agent);
    let id = node_id(node);
    let poll = tokio::spawn(async move { client.poll_commands(&id, NEVER).await });
    wait_until_waiting(b, "PollCommands", 1.0).await;
    let issued = Instant::now();
    let command = a
        .root()
        .issue_command(v1::IssueCommandRequest {
            node_id: node.to_owned(),
            r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
            ..Default::default()
        })
        .await
        .expect("issue through A")
        .into_owned()
        .command
        .into_option()
        .expect("command");
    let delivered = tokio::time::timeout(GUARD, poll)
        .await
        .unwrap_or_else(|_| panic!("the poll on B was not woken within {GUARD:?}"))
        .expect("poll task")
        .expect("poll");
    let latency = issued.elapsed();
    assert_eq!(delivered.iter().map(|c| c.id.to_string()).collect::<Vec<_>>(), [command.command_id]);
    latency
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_issued_on_one_replica_wakes_a_long_poll_on_another() {
    let Some((a, b)) = two_replicas().await else { return };
    let agent = b.agent_client();
    agent.register(&registration("n1"), None).await.expect("register through B");
    let mut latencies = Vec::new();
    for _ in 0..20 {
        latencies.push(cordon_wakes_poll(&a, &b, &agent, "n1").await);
        // Uncordoned through B, so the next cordon is legal; B's own commit.
        let request = v1::IssueCommandRequest {
            node_id: "n1".to_owned(),
            r#type: v1::CommandType::COMMAND_TYPE_UNCORDON.into(),
            ..Default::default()
        };
        b.root().issue_command(request).await.expect("uncordon through B");
        let uncordon = agent.poll_commands(&node_id("n1"), Duration::ZERO).await.expect("poll");
        assert_eq!(uncordon.len(), 1, "B's own command, found at once");
    }
    latencies.sort();
    eprintln!(
        "cross-replica wake-up (IssueCommand on A to PollCommands answered on B), {} runs: min {:?}, median {:?}, \
         max {:?}",
        latencies.len(),
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_on_one_replica_judges_the_next_report_on_another() {
    let Some((a, b)) = two_replicas().await else { return };
    let client = b.agent_client();
    client.register(&registration("n1"), None).await.expect("register through B");

    a.root().set_policy(v1::SetPolicyRequest { yaml: STRICT.into(), ..Default::default() }).await.expect("set on A");
    let seq = a.change_count().await;
    tokio::time::timeout(GUARD, b.server().followed_through(seq))
        .await
        .unwrap_or_else(|_| panic!("B did not follow the policy change within {GUARD:?}"));
    let active = b.root().get_policy(v1::GetPolicyRequest::default()).await.expect("get").into_owned();
    assert_eq!(active.name, "strict-thermal", "B's active policy");

    // 75 C: healthy under the built-in policy, fatal under A's.
    client.report_health(&node_id("n1"), &[], &[thermal(&b, 75)]).await.expect("report to B");
    assert_eq!(status_of(&b.node("n1").await), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "judged by A's policy");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_replica_sees_what_another_commits() {
    let Some((a, b)) = two_replicas().await else { return };
    let request = v1::WatchEventsRequest { from_now: true, ..Default::default() };
    let mut stream = b.root().watch_events(request).await.expect("watch B");
    wait_until_waiting(&b, "WatchEvents", 1.0).await;

    a.agent_client().register(&registration("n1"), None).await.expect("register through A");
    let event = tokio::time::timeout(GUARD, stream.message())
        .await
        .unwrap_or_else(|_| panic!("the watch on B saw nothing within {GUARD:?}"))
        .expect("stream")
        .expect("an event")
        .to_owned_message();
    assert_eq!((event.kind.as_str(), event.resource_id.as_str(), event.op.as_str()), ("node", "n1", "created"));
    drop(stream);
    b.stop().await;
    a.stop().await;
}

/// Another replica's registrations and deletions reach this replica's fleet view (what its
/// `/metrics`, pool counts and liveness judge from) through the change follower, with no
/// reload of the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registered_or_deleted_on_one_replica_is_in_another_ones_fleet_view() {
    let Some((a, b)) = two_replicas().await else { return };
    let active = "bosun_nodes{status=\"ACTIVE\",health=\"UNKNOWN\"}";
    assert_eq!(metric(&b, active).await, 0.0);
    a.agent_client().register(&registration("n1"), None).await.expect("register through A");
    let seq = a.change_count().await;
    tokio::time::timeout(GUARD, b.server().followed_through(seq))
        .await
        .unwrap_or_else(|_| panic!("B did not follow the registration within {GUARD:?}"));
    assert_eq!(metric(&b, active).await, 1.0, "B's view holds the node A registered");

    let request = v1::DeleteNodeRequest { node_id: "n1".into(), force: true, ..Default::default() };
    a.root().delete_node(request).await.expect("delete through A");
    let seq = a.change_count().await;
    tokio::time::timeout(GUARD, b.server().followed_through(seq))
        .await
        .unwrap_or_else(|_| panic!("B did not follow the deletion within {GUARD:?}"));
    assert_eq!(metric(&b, active).await, 0.0, "B's view forgot the node A deleted");
    b.stop().await;
    a.stop().await;
}

/// The listening connections are cut (as a database restart or an administrator would);
/// each replica connects again, counts it, and a later command still wakes B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_listens_again_after_its_connection_is_cut() {
    let Some((a, b)) = two_replicas().await else { return };
    let agent = b.agent_client();
    agent.register(&registration("n1"), None).await.expect("register through B");
    cordon_wakes_poll(&a, &b, &agent, "n1").await;
    assert_eq!(metric(&b, "bosun_change_listener_reconnects_total").await, 0.0);

    let cut = bosun_store::testing::cut_change_listeners(a.location()).await;
    assert!(cut >= 1, "B's listener was connected, since it woke B");
    let uncordon = v1::IssueCommandRequest {
        node_id: "n1".to_owned(),
        r#type: v1::CommandType::COMMAND_TYPE_UNCORDON.into(),
        ..Default::default()
    };
    b.root().issue_command(uncordon).await.expect("uncordon through B");
    agent.poll_commands(&node_id("n1"), Duration::ZERO).await.expect("take the uncordon");
    cordon_wakes_poll(&a, &b, &agent, "n1").await;
    assert_eq!(metric(&b, "bosun_change_listener_reconnects_total").await, 1.0, "B counted its reconnection");
    b.stop().await;
    a.stop().await;
}
