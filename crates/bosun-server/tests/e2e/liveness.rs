//! Liveness (SPEC 3.3): silence longer than the heartbeat timeout makes a node UNHEALTHY,
//! except during the start-up grace; nodes that never heartbeated are judged from their
//! registration.

use std::time::Duration;

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::{Clock, MetricSample};
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(silent_nodes_become_unhealthy_after_the_grace, a_restart_forgives_silence_for_the_grace);

fn sample(h: &Harness, node: &str) -> MetricSample {
    MetricSample { node_id: node_id(node), at: h.clock.now(), cpu_percent: 10.0, memory_percent: 20.0, gpus: vec![] }
}

async fn silent_nodes_become_unhealthy_after_the_grace(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let timeout = h.settings.heartbeat_timeout;
    let client = h.agent_client();
    for node in ["alive", "silent", "never"] {
        client.register(&registration(node), None).await.expect("register");
    }
    client.heartbeat(&sample(&h, "alive")).await.expect("heartbeat");
    client.heartbeat(&sample(&h, "silent")).await.expect("heartbeat");

    // Still inside the start-up grace: nobody is judged, however long the silence.
    h.clock.advance(h.settings.startup_grace - Duration::from_secs(1));
    assert!(h.server().judge_liveness().await.expect("judge").is_empty());

    h.clock.advance(timeout);
    client.heartbeat(&sample(&h, "alive")).await.expect("heartbeat");
    let mut marked = h.server().judge_liveness().await.expect("judge");
    marked.sort();
    assert_eq!(marked, [node_id("never"), node_id("silent")]);
    for node in ["silent", "never"] {
        let node = h.node(node).await;
        assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
        assert_eq!(node.status_reason, "heartbeat timeout");
    }
    let alive = h.node("alive").await;
    assert_eq!(status_of(&alive), v1::NodeStatus::NODE_STATUS_ACTIVE);
    assert!(alive.last_heartbeat.is_set(), "the newest heartbeat is visible before it is flushed");
    assert!(h.server().judge_liveness().await.expect("judge").is_empty(), "judged once");
    assert_eq!(h.node("silent").await.unhealthy_streak, 1);

    // Each further timeout of silence counts in the streak, so replacement
    // (unhealthy_after: 2) fires for a dead agent that sends no reports.
    h.clock.advance(timeout);
    client.heartbeat(&sample(&h, "alive")).await.expect("heartbeat");
    assert!(h.server().judge_liveness().await.expect("judge").is_empty());
    assert_eq!(h.node("silent").await.unhealthy_streak, 2);
    assert_eq!(h.node("alive").await.unhealthy_streak, 0);

    // Heartbeats reach the store at the next flush: the newest of each node.
    assert_eq!(h.server().flush().await.expect("flush"), 2);
    assert_eq!(h.server().flush().await.expect("flush"), 0);
    h.stop().await;
}

async fn a_restart_forgives_silence_for_the_grace(backend: Backend) {
    let Some(mut h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    h.clock.advance(h.settings.startup_grace + Duration::from_secs(1));
    client.register(&registration("n2"), None).await.expect("register");
    client.heartbeat(&sample(&h, "n1")).await.expect("heartbeat");
    client.heartbeat(&sample(&h, "n2")).await.expect("heartbeat");

    // The server is down for twice the timeout: its agents could not reach it, which says
    // nothing about them.
    h.restart_after(h.settings.heartbeat_timeout * 2).await;
    assert!(h.server().judge_liveness().await.expect("judge").is_empty(), "blind during the grace after a start");
    h.clock.advance(Duration::from_secs(10));
    client.heartbeat(&sample(&h, "n1")).await.expect("the agent carries on after the restart");
    h.clock.advance(h.settings.startup_grace - Duration::from_secs(5));
    assert_eq!(
        h.server().judge_liveness().await.expect("judge"),
        [node_id("n2")],
        "after the grace, only the node that stayed silent is judged"
    );
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    h.stop().await;
}
