//! The findings of an attack on a release build (issue 11), each as a test that failed
//! before its fix: hostile documents, numbers and bodies are refused with
//! `invalid_argument` naming the problem, and the server keeps serving everyone else.

use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(nested_policy_documents_are_refused_and_the_server_stays_responsive);

/// A 400 KB flow mapping nested 100,000 deep: libyaml needs minutes of CPU for it.
fn nested_policy() -> String {
    format!("rules: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000))
}

async fn nested_policy_documents_are_refused_and_the_server_stays_responsive(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let admin = h.root();
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let request = v1::TestPolicyRequest { yaml: nested_policy(), ..Default::default() };
                refused(admin.test_policy(request).await)
            })
        })
        .collect();
    // Served while the documents are being refused.
    let nodes = admin.list_nodes(v1::ListNodesRequest::default()).await.expect("ListNodes answers");
    assert!(nodes.into_owned().nodes.is_empty());
    for sender in senders {
        let (code, message) = sender.await.expect("sender");
        assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
        assert!(message.contains("nests more than 32 levels deep"), "{message}");
    }

    let set = admin.set_policy(v1::SetPolicyRequest { yaml: nested_policy(), ..Default::default() }).await;
    assert_eq!(refused(set).0, ErrorCode::InvalidArgument);

    // A condition the CEL compiler would recurse on 4,000 times (it aborted the process).
    let chain = format!("rules:\n  - {{name: deep, condition: '{}1 > 0', result: unhealthy}}\n", "1 + ".repeat(4000));
    let (code, message) = refused(admin.test_policy(v1::TestPolicyRequest { yaml: chain, ..Default::default() }).await);
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    assert!(message.contains("the limit is 32"), "{message}");
    h.stop().await;
}
