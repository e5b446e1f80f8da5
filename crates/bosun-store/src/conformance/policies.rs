//! The stored health policy: one document, with revisions and history like any resource.

use bosun_core::{Revision, StoredPolicy};

use super::{Ctx, E, assert_err, batch};
use crate::query::ChangeFilter;

fn policy(ctx: &Ctx, name: &str, document: &str) -> StoredPolicy {
    StoredPolicy { name: name.into(), document: document.into(), updated_at: ctx.now(), revision: Revision::FIRST }
}

const FIRST: &str = "# strict thermal limits\nmetadata:\n  name: strict\nrules: []\n";

pub(crate) async fn put_replace_and_delete(ctx: &Ctx) {
    assert_eq!(ctx.store.policy().await.expect("read"), None, "nothing is stored at first");

    ctx.store.commit(batch("operator").put_policy(policy(ctx, "strict", FIRST))).await.expect("put");
    let stored = ctx.store.policy().await.expect("read").expect("stored");
    assert_eq!((stored.name.as_str(), stored.document.as_str(), stored.revision.get()), ("strict", FIRST, 1));
    assert_eq!(stored.updated_at, ctx.now());

    ctx.store.commit(batch("operator").put_policy(policy(ctx, "lenient", "rules: []"))).await.expect("replace");
    let stored = ctx.store.policy().await.expect("read").expect("stored");
    assert_eq!((stored.name.as_str(), stored.revision.get()), ("lenient", 2));

    ctx.store.commit(batch("operator").delete_policy(Some(stored.revision))).await.expect("delete");
    assert_eq!(ctx.store.policy().await.expect("read"), None);
    assert_err!(ctx.store.commit(batch("operator").delete_policy(None)).await, E::NotFound { .. });

    let changes = ctx.store.list_changes(&ChangeFilter::resource(bosun_core::ResourceKind::Policy, "active"), 10).await;
    let changes = changes.expect("history");
    let ops: Vec<_> = changes.iter().map(|c| (c.op.as_str(), c.revision.get())).collect();
    assert_eq!(ops, [("created", 1), ("updated", 2), ("deleted", 2)]);
    assert_eq!(changes[0].resource["document"], FIRST, "the snapshot holds the document as given");
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn expected_revision_is_checked(ctx: &Ctx) {
    let put = |expected| crate::Write::PutPolicy { policy: Box::new(policy(ctx, "strict", FIRST)), expected };
    let mut b = batch("operator");
    b.push(put(Some(Revision::FIRST)));
    assert_err!(ctx.store.commit(b).await, E::NotFound { .. });

    ctx.store.commit(batch("operator").put_policy(policy(ctx, "strict", FIRST))).await.expect("put");
    let mut stale = batch("operator");
    stale.push(put(Some(Revision::FIRST.next())));
    assert_err!(ctx.store.commit(stale).await, E::Conflict { .. });
    let mut current = batch("operator");
    current.push(put(Some(Revision::FIRST)));
    ctx.store.commit(current).await.expect("put at the stored revision");
    assert_err!(ctx.store.commit(batch("operator").delete_policy(Some(Revision::FIRST))).await, E::Conflict { .. });
}

pub(crate) async fn invalid_document_is_rejected(ctx: &Ctx) {
    let message =
        assert_err!(ctx.store.commit(batch("operator").put_policy(policy(ctx, "strict", " "))).await, E::Invalid(_));
    assert_eq!(message, "invalid policy.document: is empty");
    assert_eq!(ctx.store.policy().await.expect("read"), None);
}
