//! Bearer tokens and roles (SPEC 5): once registered, a node acts only for itself.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    a_node_cannot_act_for_another,
    roles_limit_what_callers_may_do,
    with_a_node_token_key_the_shared_token_cannot_take_over_a_node,
    deleting_a_node_revokes_its_token,
    failed_authentications_are_limited_per_peer,
);

async fn a_node_cannot_act_for_another(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let bootstrap = h.raw_agent(Some(AGENTS));
    let register = |node: &str| v1::RegisterRequest { node_id: node.to_owned(), ..Default::default() };
    let a = bootstrap.register_node(register("node-a")).await.expect("register a").into_owned();
    bootstrap.register_node(register("node-b")).await.expect("register b");
    assert!(a.node_token.starts_with("bosun-node.node-a."), "registration hands out a node token");
    let as_a = h.raw_agent(Some(&a.node_token));

    // A works as A.
    as_a.heartbeat(v1::HeartbeatRequest { node_id: "node-a".into(), ..Default::default() })
        .await
        .expect("own heartbeat");

    // ...and cannot heartbeat, report or ack as B.
    let seq = h.change_count().await;
    let heartbeat = as_a.heartbeat(v1::HeartbeatRequest { node_id: "node-b".into(), ..Default::default() }).await;
    let report = as_a.report_health(v1::ReportHealthRequest { node_id: "node-b".into(), ..Default::default() }).await;
    let ack = as_a
        .ack_command(v1::AckCommandRequest {
            node_id: "node-b".into(),
            command_id: "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071".into(),
            outcome: v1::AckOutcome::ACK_OUTCOME_SUCCEEDED.into(),
            ..Default::default()
        })
        .await;
    let poll = as_a.poll_commands(v1::PollCommandsRequest { node_id: "node-b".into(), ..Default::default() }).await;
    for (call, (code, message)) in
        [("heartbeat", refused(heartbeat)), ("report", refused(report)), ("ack", refused(ack)), ("poll", refused(poll))]
    {
        assert_eq!(code, ErrorCode::PermissionDenied, "{call}: {message}");
        assert!(message.contains("cannot act for node node-b"), "{call}: {message}");
    }
    // Nor re-register as B, which would let it take B over.
    let (code, _) = refused(as_a.register_node(register("node-b")).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert_eq!(h.change_count().await, seq, "nothing was written");

    // The shared bootstrap token only registers: it cannot heartbeat for a node.
    let (code, message) =
        refused(bootstrap.heartbeat(v1::HeartbeatRequest { node_id: "node-a".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "{message}");

    // A token pinned to n9 acts for n9 alone, registration included.
    let pinned = h.raw_agent(Some(PINNED_N9));
    pinned.register_node(register("n9")).await.expect("pinned token registers its node");
    let (code, _) = refused(pinned.register_node(register("node-c")).await);
    assert_eq!(code, ErrorCode::PermissionDenied);

    // The agent client re-registers on its own when its node token is refused.
    let client = h.agent_client();
    client.register(&registration("node-d"), None).await.expect("register d");
    client
        .heartbeat(&bosun_core::MetricSample {
            node_id: node_id("node-d"),
            at: bosun_core::Timestamp::from_unix_micros(0),
            cpu_percent: 1.0,
            memory_percent: 1.0,
            gpus: vec![],
        })
        .await
        .expect("heartbeat with the node token");
    h.stop().await;
}

async fn roles_limit_what_callers_may_do(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let list = v1::ListNodesRequest::default;

    let (code, message) = refused(h.admin(None).list_nodes(list()).await);
    assert_eq!(code, ErrorCode::Unauthenticated, "{message}");
    let (code, message) = refused(h.admin(Some("wrong")).list_nodes(list()).await);
    assert_eq!(code, ErrorCode::Unauthenticated, "{message}");
    let (code, message) = refused(h.admin(Some(AGENTS)).list_nodes(list()).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "agents cannot read the fleet: {message}");

    let operator = h.admin(Some(OPERATOR));
    assert_eq!(operator.list_nodes(list()).await.expect("operators read").into_owned().nodes.len(), 1);
    let cordon = v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
        ..Default::default()
    };
    let issued = operator.issue_command(cordon).await.expect("operators command").into_owned();
    assert_eq!(issued.command.as_option().expect("command").issued_by, "operator:oncall", "attributed to the token");
    let (code, message) =
        refused(operator.set_policy(v1::SetPolicyRequest { yaml: "x".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "{message}");
    assert!(message.contains("admin token"), "{message}");
    let (code, _) = refused(
        operator.delete_node(v1::DeleteNodeRequest { node_id: "n1".into(), force: true, ..Default::default() }).await,
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = refused(
        h.raw_agent(Some(OPERATOR))
            .register_node(v1::RegisterRequest { node_id: "n2".into(), ..Default::default() })
            .await,
    );
    assert_eq!(code, ErrorCode::PermissionDenied, "operators do not speak for nodes");
    h.stop().await;
}

async fn with_a_node_token_key_the_shared_token_cannot_take_over_a_node(backend: Backend) {
    let Some(h) = Harness::start_with(backend, settings_with_node_token_key()).await else { return };
    let state = tempfile::tempdir().expect("state dir");
    let agent = || {
        std::sync::Arc::new(
            bosun_api::AgentClient::new(&h.url(), Some(AGENTS.to_owned()))
                .expect("client")
                .with_state_dir(state.path()),
        )
    };
    agent().register(&registration("n1"), None).await.expect("first registration with the shared token");
    assert!(state.path().join("n1.token").exists(), "the node token is kept for restarts");

    // Whoever holds the shared token cannot register n1 again and so never learns its token.
    let bootstrap = h.raw_agent(Some(AGENTS));
    let (code, message) =
        refused(bootstrap.register_node(v1::RegisterRequest { node_id: "n1".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "{message}");
    assert!(message.contains("already registered"), "{message}");
    // Nor forge one from the shared token, as it could without the key.
    let forged = {
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(AGENTS.as_bytes()).expect("key");
        mac.update(b"bosun node token v1\0n1");
        format!("bosun-node.n1.{}", base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes()))
    };
    let (code, _) = refused(
        h.raw_agent(Some(&forged)).heartbeat(v1::HeartbeatRequest { node_id: "n1".into(), ..Default::default() }).await,
    );
    assert_eq!(code, ErrorCode::Unauthenticated);

    // The agent itself, restarted with its state directory, registers again and carries on.
    let restarted = agent();
    restarted.register(&registration("n1"), None).await.expect("re-registration with the kept node token");
    restarted
        .heartbeat(&bosun_core::MetricSample {
            node_id: node_id("n1"),
            at: bosun_core::Timestamp::from_unix_micros(0),
            cpu_percent: 1.0,
            memory_percent: 1.0,
            gpus: vec![],
        })
        .await
        .expect("heartbeat");
    // An agent that lost its token is told what to do.
    let amnesiac = h.agent_client();
    let error = amnesiac.register(&registration("n1"), None).await.expect_err("refused");
    assert!(error.to_string().contains("delete the node"), "{error}");
    h.stop().await;
}

async fn deleting_a_node_revokes_its_token(backend: Backend) {
    let Some(h) = Harness::start_with(backend, settings_with_node_token_key()).await else { return };
    let bootstrap = h.raw_agent(Some(AGENTS));
    let register = || v1::RegisterRequest { node_id: "n1".to_owned(), ..Default::default() };
    let first = bootstrap.register_node(register()).await.expect("register").into_owned();
    let as_n1 = h.raw_agent(Some(&first.node_token));
    let heartbeat = || v1::HeartbeatRequest { node_id: "n1".into(), ..Default::default() };
    as_n1.heartbeat(heartbeat()).await.expect("the node token works");

    h.root()
        .delete_node(v1::DeleteNodeRequest { node_id: "n1".into(), force: true, ..Default::default() })
        .await
        .expect("delete");
    // A deleted node's token registered it again before; now it is refused everywhere.
    let (code, message) = refused(as_n1.register_node(register()).await);
    assert_eq!(code, ErrorCode::Unauthenticated, "{message}");
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(refused(as_n1.heartbeat(heartbeat()).await).0, ErrorCode::Unauthenticated);

    // The agent token registers it again, later, as a new node with a new token (the
    // token names the registration's time).
    h.clock.advance(std::time::Duration::from_secs(1));
    let second = bootstrap.register_node(register()).await.expect("register again").into_owned();
    assert!(second.created, "a new node");
    assert_ne!(second.node_token, first.node_token);
    h.raw_agent(Some(&second.node_token)).heartbeat(heartbeat()).await.expect("the new token works");
    let (code, message) = refused(as_n1.heartbeat(heartbeat()).await);
    assert_eq!(code, ErrorCode::Unauthenticated, "the old token stays revoked: {message}");
    h.stop().await;
}

/// The raw answer (head and body) to one request with `token`.
async fn raw_answer(h: &Harness, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.server().local_addr()).await.expect("connect");
    let request = format!(
        "POST /bosun.v1.AdminService/ListNodes HTTP/1.0\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer.to_ascii_lowercase()
}

async fn failed_authentications_are_limited_per_peer(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    for guess in 0..20 {
        let answer = raw_answer(&h, &format!("guess-{guess}")).await;
        assert!(answer.starts_with("http/1.0 401"), "{answer}");
    }
    // The 21st failure in a row is not even looked at: 429, and when to come back.
    let answer = raw_answer(&h, "guess-20").await;
    assert!(answer.starts_with("http/1.0 429"), "{answer}");
    assert!(answer.contains("retry-after: 3"), "{answer}");
    assert!(answer.contains("resource_exhausted"), "{answer}");
    // During the penalty even a valid token from that peer waits.
    assert!(raw_answer(&h, ADMIN).await.starts_with("http/1.0 429"));

    // Once a failure is forgiven the peer is served again.
    h.clock.advance(std::time::Duration::from_secs(3));
    assert!(raw_answer(&h, ADMIN).await.starts_with("http/1.0 200"));
    let (_, metrics) = http(&h, "GET", "/metrics", &[], "").await;
    let throttled = metrics.lines().find(|l| l.starts_with("bosun_auth_throttled_total")).unwrap_or("");
    assert_eq!(throttled, "bosun_auth_throttled_total 2", "{metrics}");
    h.stop().await;
}
