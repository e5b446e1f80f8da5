//! LLM usage, model prices and control settings: price windows, cost from the price in
//! effect, unknown models kept unpriced, request ids recorded once, text truncation flags,
//! settings' compare-and-set and usage summaries. No case depends on the seeded prices but
//! the one that checks every backend seeds the same.

use std::time::Duration;

use bosun_core::{
    Actor, Cost, LlmText, LlmUsage, Price, Revision, RunKind, RunStatus, Setting, TaskRun, Timestamp, UsageFilter,
    UsageGroup, UsageKey, UsageRow,
};
use serde_json::json;

use super::{Ctx, E, assert_err, batch};
use crate::write::{Write, WriteOutcome};

fn acme(model: &str, from: Timestamp) -> Price {
    Price {
        provider: "acme".into(),
        model: model.into(),
        input_per_mtok_micro_usd: 3_000_000,
        output_per_mtok_micro_usd: 15_000_000,
        cached_input_per_mtok_micro_usd: Some(300_000),
        effective_from: from,
        effective_to: None,
        updated_by: "alice".into(),
        updated_at: from,
    }
}

async fn acme_prices(ctx: &Ctx, current_at: Option<Timestamp>) -> Vec<Price> {
    let prices = ctx.store.pricing(current_at).await.expect("pricing");
    prices.into_iter().filter(|p| p.provider == "acme").collect()
}

fn usage(ctx: &Ctx, model: &str, input: u64, cached: u64, output: u64) -> LlmUsage {
    let mut usage = LlmUsage::new("oncall", "acme", model, ctx.now());
    usage.input_tokens = input;
    usage.cached_input_tokens = cached;
    usage.output_tokens = output;
    usage
}

async fn record(ctx: &Ctx, usage: &LlmUsage) -> Option<u64> {
    let committed =
        ctx.store.commit(batch("usage").with(Write::RecordLlmUsage(Box::new(usage.clone())))).await.expect("record");
    match committed.outcomes[0] {
        WriteOutcome::Priced { cost_micro_usd } => cost_micro_usd,
        other => panic!("a usage record is priced, got {other:?}"),
    }
}

pub(crate) async fn a_new_price_closes_the_open_one_and_prices_list_by_key(ctx: &Ctx) {
    let t0 = ctx.now();
    ctx.store.commit(batch("price").put_price(acme("acme-large", t0))).await.expect("first price");
    let t1 = ctx.clock.advance(Duration::from_secs(3600));
    let mut cheaper = acme("acme-large", t1);
    cheaper.input_per_mtok_micro_usd = 2_000_000;
    ctx.store.commit(batch("price").put_price(cheaper.clone()).put_price(acme("acme-small", t0))).await.expect("more");

    let all = acme_prices(ctx, None).await;
    let keys: Vec<(&str, Timestamp, Option<Timestamp>)> =
        all.iter().map(|p| (p.model.as_str(), p.effective_from, p.effective_to)).collect();
    assert_eq!(keys, [("acme-large", t0, Some(t1)), ("acme-large", t1, None), ("acme-small", t0, None)]);
    assert_eq!(all[1], Price { updated_at: t1, ..cheaper.clone() }, "every field round-trips, stamped when stored");
    let current: Vec<Timestamp> = acme_prices(ctx, Some(t1)).await.iter().map(|p| p.effective_from).collect();
    assert_eq!(current, [t1, t0], "a price that ended is not current");

    // The same key again replaces that price.
    cheaper.output_per_mtok_micro_usd = 9_000_000;
    ctx.store.commit(batch("fix").put_price(cheaper)).await.expect("replace");
    let all = acme_prices(ctx, None).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].output_per_mtok_micro_usd, 9_000_000);

    // An open-ended price starting before the open one would overlap it for ever.
    let early = acme("acme-large", t0 - Duration::from_secs(60));
    let message = assert_err!(ctx.store.commit(batch("early").put_price(early.clone())).await, E::Invalid(_));
    assert!(message.contains("effective_to"), "{message}");
    let bounded = Price { effective_to: Some(t0), ..early };
    ctx.store.commit(batch("early").put_price(bounded)).await.expect("a bounded earlier price");
    // A price with an end closes nothing: the open price applies again after it.
    let (t2, t3) = (t1 + Duration::from_secs(3600), t1 + Duration::from_secs(7200));
    let promotion = Price { effective_to: Some(t3), ..acme("acme-large", t2) };
    ctx.store.commit(batch("promotion").put_price(promotion)).await.expect("a bounded later price");
    let open: Vec<Timestamp> = acme_prices(ctx, None)
        .await
        .iter()
        .filter(|p| p.model == "acme-large" && p.effective_to.is_none())
        .map(|p| p.effective_from)
        .collect();
    assert_eq!(open, [t1], "the open price stays open");
    // An ended price made open-ended again would overlap the open one for ever.
    let reopened = acme("acme-large", t0);
    let message = assert_err!(ctx.store.commit(batch("reopen").put_price(reopened)).await, E::Invalid(_));
    assert!(message.contains("effective_to"), "{message}");
    let mut nameless = acme("", t1);
    nameless.provider = "acme".into();
    let message = assert_err!(ctx.store.commit(batch("bad").put_price(nameless)).await, E::Invalid(_));
    assert!(message.contains("model"), "{message}");
}

pub(crate) async fn usage_is_priced_from_the_price_in_effect_at_its_time(ctx: &Ctx) {
    let before = usage(ctx, "acme-large", 2000, 1000, 1000);
    let t0 = ctx.clock.advance(Duration::from_secs(60));
    ctx.store.commit(batch("price").put_price(acme("acme-large", t0))).await.expect("price");
    let priced = usage(ctx, "acme-large", 2000, 1000, 1000);
    // (2000 * 3.0 + 1000 * 0.3 + 1000 * 15.0) / 10^6 USD = 0.0213 USD.
    assert_eq!(record(ctx, &priced).await, Some(21_300));
    assert_eq!(record(ctx, &before).await, None, "no price was in effect yet");
    let stored = ctx.store.llm_usage(&priced.id).await.expect("read back");
    assert_eq!(stored, LlmUsage { cost: Some(Cost { micro_usd: 21_300, price_from: t0 }), ..priced.clone() });

    let t1 = ctx.clock.advance(Duration::from_secs(60));
    let mut dearer = acme("acme-large", t1);
    dearer.cached_input_per_mtok_micro_usd = None;
    ctx.store.commit(batch("price").put_price(dearer)).await.expect("new price");
    // Cached input at the input price now: 2000 * 3 + 1000 * 3 + 1000 * 15 = 24000.
    assert_eq!(record(ctx, &usage(ctx, "acme-large", 2000, 1000, 1000)).await, Some(24_000));
    // Rounded half up to a micro-dollar: 1 cached token costs 0.3, 2 cost 0.6.
    ctx.store.commit(batch("price").put_price(acme("acme-tiny", t1))).await.expect("price");
    let tiny = |cached| usage(ctx, "acme-tiny", 0, cached, 0);
    assert_eq!(record(ctx, &tiny(1)).await, Some(0));
    assert_eq!(record(ctx, &tiny(2)).await, Some(1));
    assert_eq!(record(ctx, &tiny(5)).await, Some(2));
}

pub(crate) async fn an_unknown_model_is_kept_with_its_cost_unknown(ctx: &Ctx) {
    let mystery = usage(ctx, "acme-mystery", 10, 0, 5);
    assert_eq!(record(ctx, &mystery).await, None);
    assert_eq!(ctx.store.llm_usage(&mystery.id).await.expect("kept").cost, None);
    let filter = UsageFilter { since: mystery.at, by: UsageGroup::Model };
    let rows = ctx.store.usage_summary(&filter).await.expect("summary");
    assert_eq!(
        rows,
        [UsageRow {
            key: UsageKey::Model { provider: "acme".into(), model: "acme-mystery".into() },
            requests: 1,
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 0,
            cost_micro_usd: None,
            unpriced_requests: 1,
        }]
    );
    assert_err!(ctx.store.llm_usage(&bosun_core::LlmUsageId::new_at(ctx.now())).await, E::NotFound { .. });
}

pub(crate) async fn a_provider_request_id_is_recorded_once(ctx: &Ctx) {
    let mut first = usage(ctx, "acme-large", 1, 0, 1);
    first.request_id = Some("req-1".into());
    record(ctx, &first).await;
    let mut again = usage(ctx, "acme-large", 7, 0, 7);
    again.request_id = Some("req-1".into());
    let message = assert_err!(
        ctx.store.commit(batch("again").with(Write::RecordLlmUsage(Box::new(again.clone())))).await,
        E::AlreadyExists { .. }
    );
    assert!(message.contains("acme/req-1"), "{message}");
    assert_err!(ctx.store.llm_usage(&again.id).await, E::NotFound { .. });
    let mut elsewhere = again.clone();
    elsewhere.provider = "other".into();
    record(ctx, &elsewhere).await;
    let mut no_id = usage(ctx, "acme-large", 1, 0, 1);
    record(ctx, &no_id).await;
    no_id.id = bosun_core::LlmUsageId::new_at(ctx.now());
    record(ctx, &no_id).await;
}

pub(crate) async fn texts_keep_their_truncation_flags_and_runs_must_exist(ctx: &Ctx) {
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], ctx.now());
    ctx.store.commit(batch("session").create_run(run.clone())).await.expect("an AI session");
    let mut with_text = usage(ctx, "acme-large", 1, 0, 1);
    with_text.run_id = Some(run.id);
    with_text.request_id = Some("req-text".into());
    with_text.latency_ms = Some(850);
    with_text.prompt = Some(LlmText::bounded("why is n1 unhealthy? ".repeat(10), 32));
    with_text.response = Some(LlmText::bounded("XID 79: the GPU fell off the bus".into(), 1024));
    record(ctx, &with_text).await;
    let stored = ctx.store.llm_usage(&with_text.id).await.expect("read back");
    assert_eq!(stored, with_text);
    let prompt = stored.prompt.expect("a prompt");
    assert!(prompt.truncated && prompt.text.len() == 32, "{prompt:?}");
    assert!(!stored.response.expect("a response").truncated);

    let mut nul = usage(ctx, "acme-large", 1, 0, 1);
    nul.response = Some(LlmText { text: "a\0b".into(), truncated: false });
    let message =
        assert_err!(ctx.store.commit(batch("bad").with(Write::RecordLlmUsage(Box::new(nul)))).await, E::Invalid(_));
    assert!(message.contains("response"), "{message}");
    let mut huge = usage(ctx, "acme-large", u64::MAX, 0, 1);
    let message = assert_err!(
        ctx.store.commit(batch("bad").with(Write::RecordLlmUsage(Box::new(huge.clone())))).await,
        E::Invalid(_)
    );
    assert!(message.contains("input_tokens"), "{message}");
    huge.input_tokens = 1;
    huge.run_id = Some(bosun_core::RunId::new_at(ctx.now()));
    assert_err!(ctx.store.commit(batch("bad").with(Write::RecordLlmUsage(Box::new(huge)))).await, E::NotFound { .. });
}

pub(crate) async fn settings_change_by_compare_and_set(ctx: &Ctx) {
    let name = Setting::MCP_ENABLED;
    assert_eq!(ctx.store.setting(name).await.expect("read"), None);
    let off = Setting::new(name, json!(false), "oncall", Timestamp::UNIX_EPOCH);
    assert_err!(
        ctx.store.commit(batch("cas").put_setting(off.clone(), Some(Revision::FIRST))).await,
        E::NotFound { .. }
    );
    let committed = ctx.store.commit(batch("disable").put_setting(off.clone(), None)).await.expect("create");
    assert_eq!(committed.outcomes[0], WriteOutcome::Stored { revision: Revision::FIRST });
    let stored = ctx.store.setting(name).await.expect("read").expect("stored");
    assert_eq!(stored, Setting { updated_at: ctx.now(), ..off });

    let on = Setting::new(name, json!(true), "root", ctx.now());
    let committed =
        ctx.store.commit(batch("enable").put_setting(on.clone(), Some(Revision::FIRST))).await.expect("cas");
    let second = Revision::FIRST.next();
    assert_eq!(committed.outcomes[0], WriteOutcome::Stored { revision: second });
    assert_err!(
        ctx.store.commit(batch("stale").put_setting(on.clone(), Some(Revision::FIRST))).await,
        E::Conflict { .. }
    );
    let stored = ctx.store.setting(name).await.expect("read").expect("stored");
    assert_eq!((stored.value, stored.updated_by.as_str(), stored.revision), (json!(true), "root", second));
    let bad = Setting::new("no spaces", json!(1), "root", ctx.now());
    assert_err!(ctx.store.commit(batch("bad").put_setting(bad, None)).await, E::Invalid(_));
}

pub(crate) async fn usage_summaries_group_by_model_provider_run_and_actor(ctx: &Ctx) {
    let t0 = ctx.now();
    ctx.store.commit(batch("price").put_price(acme("acme-large", t0))).await.expect("price");
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], t0);
    ctx.store.commit(batch("session").create_run(run.clone())).await.expect("an AI session");
    let old = usage(ctx, "acme-large", 1_000_000, 0, 0);
    record(ctx, &old).await;
    let since = ctx.clock.advance(Duration::from_secs(60));
    let mut in_run = usage(ctx, "acme-large", 2000, 1000, 1000);
    in_run.run_id = Some(run.id);
    record(ctx, &in_run).await;
    let mut by_bob = usage(ctx, "acme-large", 1000, 0, 0);
    by_bob.actor = "bob".into();
    record(ctx, &by_bob).await;
    let mut unknown = usage(ctx, "acme-mystery", 5, 0, 5);
    unknown.run_id = Some(run.id);
    record(ctx, &unknown).await;
    let mut elsewhere = usage(ctx, "gizmo-1", 7, 0, 0);
    elsewhere.provider = "gizmo".into();
    record(ctx, &elsewhere).await;

    let row = |key, requests, input, output, cached, cost, unpriced| UsageRow {
        key,
        requests,
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        cost_micro_usd: cost,
        unpriced_requests: unpriced,
    };
    let summary = |by| async move { ctx.store.usage_summary(&UsageFilter { since, by }).await.expect("summary") };
    let model = |provider: &str, model: &str| UsageKey::Model { provider: provider.into(), model: model.into() };
    assert_eq!(
        summary(UsageGroup::Model).await,
        [
            row(model("acme", "acme-large"), 2, 3000, 1000, 1000, Some(21_300 + 3000), 0),
            row(model("acme", "acme-mystery"), 1, 5, 5, 0, None, 1),
            row(model("gizmo", "gizmo-1"), 1, 7, 0, 0, None, 1),
        ]
    );
    let provider = |p: &str| UsageKey::Provider { provider: p.into() };
    assert_eq!(
        summary(UsageGroup::Provider).await,
        [row(provider("acme"), 3, 3005, 1005, 1000, Some(24_300), 1), row(provider("gizmo"), 1, 7, 0, 0, None, 1),]
    );
    assert_eq!(
        summary(UsageGroup::Run).await,
        [
            row(UsageKey::Run { run_id: None }, 2, 1007, 0, 0, Some(3000), 1),
            row(UsageKey::Run { run_id: Some(run.id) }, 2, 2005, 1005, 1000, Some(21_300), 1),
        ]
    );
    let actor = |a: &str| UsageKey::Actor { actor: a.into() };
    assert_eq!(
        summary(UsageGroup::Actor).await,
        [row(actor("bob"), 1, 1000, 0, 0, Some(3000), 0), row(actor("oncall"), 3, 2012, 1005, 1000, Some(21_300), 2)]
    );
    let all = ctx.store.usage_summary(&UsageFilter { since: t0, by: UsageGroup::Provider }).await.expect("all");
    assert_eq!(all[0].requests, 4, "since is inclusive and reaches the older request");
    assert_eq!(all[0].cost_micro_usd, Some(24_300 + 3_000_000));
}

pub(crate) async fn every_backend_starts_with_the_same_prices(ctx: &Ctx) {
    let seeded: Vec<Price> =
        ctx.store.pricing(None).await.expect("pricing").into_iter().filter(|p| p.updated_by == "migration").collect();
    assert_eq!(seeded, crate::usage::seed_prices());
}

pub(crate) async fn the_usage_views_return_what_the_data_implies(ctx: &Ctx) {
    // The summary view judges "the last 30 days" by the database's own clock.
    let now = bosun_core::Clock::now(&bosun_core::SystemClock);
    let day = Duration::from_secs(24 * 3600);
    ctx.store.commit(batch("price").put_price(acme("acme-large", now - 60 * day))).await.expect("price");
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], now);
    ctx.store.commit(batch("session").create_run(run.clone())).await.expect("an AI session");
    let at = |mut usage: LlmUsage, when: Timestamp| {
        usage.at = when;
        usage
    };
    let mut in_run = at(usage(ctx, "acme-large", 2000, 1000, 1000), now);
    in_run.run_id = Some(run.id);
    let mut unknown = at(usage(ctx, "acme-mystery", 5, 0, 5), now);
    unknown.run_id = Some(run.id);
    let old = at(usage(ctx, "acme-large", 1_000_000, 0, 0), now - 40 * day);
    for usage in [&in_run, &unknown, &old] {
        record(ctx, usage).await;
    }

    let text = |s: &str| Some(s.to_owned());
    let recent = super::ledger::raw_sql(
        ctx,
        "SELECT model, CAST(requests AS TEXT), CAST(input_tokens AS TEXT), CAST(output_tokens AS TEXT), \
         CAST(cached_input_tokens AS TEXT), CAST(CAST(ROUND(cost_usd * 1000000) AS INTEGER) AS TEXT), \
         CAST(unpriced_requests AS TEXT) FROM recent_token_usage_summary WHERE provider = 'acme' ORDER BY model",
    )
    .await
    .expect("recent_token_usage_summary");
    assert_eq!(
        recent,
        [
            vec![text("acme-large"), text("1"), text("2000"), text("1000"), text("1000"), text("21300"), text("0")],
            vec![text("acme-mystery"), text("1"), text("5"), text("5"), text("0"), None, text("1")],
        ],
        "the 40-day-old request is outside the window"
    );
    let cost = super::ledger::raw_sql(
        ctx,
        &format!(
            "SELECT kind, CAST(requests AS TEXT), CAST(CAST(ROUND(cost_usd * 1000000) AS INTEGER) AS TEXT), \
             CAST(unpriced_requests AS TEXT) FROM run_cost WHERE CAST(run_id AS TEXT) = '{}'",
            run.id
        ),
    )
    .await
    .expect("run_cost");
    assert_eq!(cost, [vec![text("ai_session"), text("2"), text("21300"), text("1")]]);
}
