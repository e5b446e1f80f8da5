//! Slow statements are logged at WARN by name, never with their parameters.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_core::{Actor, Node, NodeRegistration};

use crate::testing::{TestStore, test_options};
use crate::{Backend, WriteBatch};

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log capture. Global, not thread-local: the store logs from its own
/// threads too, and tracing caches a callsite's interest the first time any thread hits it.
fn captured() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this test binary");
        captured
    })
}

async fn logs_names_not_parameters(backend: Backend) {
    let captured = captured();

    // A zero threshold makes every statement "slow".
    let Some(test) = TestStore::open_with(backend, |clock| crate::StoreOptions {
        slow_statement: Duration::ZERO,
        ..test_options(clock)
    })
    .await
    else {
        return;
    };
    let secret = format!("tenant-acme-secret-{backend}");
    let secret = secret.as_str();
    let registration = NodeRegistration {
        node_id: secret.parse().expect("valid id"),
        provider: "gcp".into(),
        region: "hunter2-region".into(),
        zone: "z".into(),
        instance_type: "t".into(),
        pool: None,
        labels: Default::default(),
        gpus: Vec::new(),
        metadata: Default::default(),
    };
    let node = Node::register(&registration, bosun_core::Timestamp::UNIX_EPOCH).expect("new node");
    test.store
        .commit(WriteBatch::new(Actor::system("test"), "register").create_node(node, Vec::new()))
        .await
        .expect("commit");
    test.store.node(&secret.parse().expect("valid id")).await.expect("read");

    let logs = String::from_utf8(captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone()).expect("utf-8 logs");
    assert!(logs.contains("WARN") && logs.contains("slow store statement"), "no slow-statement warning in: {logs}");
    assert!(logs.contains("statement=\"nodes.get\""), "the statement must be named: {logs}");
    assert!(!logs.contains(secret) && !logs.contains("hunter2"), "parameter values leaked into logs: {logs}");
}

#[tokio::test]
async fn sqlite_logs_slow_statements_by_name() {
    logs_names_not_parameters(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_logs_slow_statements_by_name() {
    logs_names_not_parameters(Backend::Postgres).await;
}
