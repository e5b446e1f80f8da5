//! LLM usage and model prices through OpsService: an admin sets a price, an operator's AI
//! agent reports requests, bosun prices them exactly and sums them; unknown models are
//! kept unpriced, bad counts and prices are refused naming the field, and only the right
//! tokens may do each.

use bosun_api::v1;
use bosun_core::Timestamp;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    usage_is_priced_exactly_and_summed,
    unknown_models_are_kept_with_their_cost_unknown,
    bad_usage_and_prices_are_refused_naming_the_field,
    only_the_right_tokens_set_prices_and_record_usage,
);

/// 2026-01-01T00:00:00Z: the harness's fake clock starts there, so usage recorded at once
/// falls inside a price starting then (a price covers its first instant).
const NEW_YEAR_MICROS: i64 = 1_767_225_600_000_000;

fn acme_large() -> v1::Price {
    v1::Price {
        provider: "acme".into(),
        model: "acme-large".into(),
        input_per_mtok_usd: 3.0,
        output_per_mtok_usd: 15.0,
        cached_input_per_mtok_usd: Some(0.3),
        effective_from: buffa::MessageField::some(bosun_api::convert::timestamp(Timestamp::from_unix_micros(
            NEW_YEAR_MICROS,
        ))),
        ..Default::default()
    }
}

fn prices(prices: Vec<v1::Price>) -> v1::SetPricingRequest {
    v1::SetPricingRequest { prices, ..Default::default() }
}

fn request(model: &str, input: i64, cached: i64, output: i64) -> v1::RecordLlmUsageRequest {
    v1::RecordLlmUsageRequest {
        provider: "acme".into(),
        model: model.into(),
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        ..Default::default()
    }
}

fn by(by: &str) -> v1::SummarizeUsageRequest {
    v1::SummarizeUsageRequest { by: by.into(), ..Default::default() }
}

async fn usage_is_priced_exactly_and_summed(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let (admin, operator) = (h.ops(Some(ADMIN)), h.ops(Some(OPERATOR)));
    let set = admin.set_pricing(prices(vec![acme_large()])).await.expect("set pricing").into_owned();
    assert_eq!(set.count, 1);
    let listed = operator.list_pricing(v1::ListPricingRequest::default()).await.expect("list").into_owned();
    let acme: Vec<&v1::Price> = listed.prices.iter().filter(|p| p.provider == "acme").collect();
    assert_eq!(acme.len(), 1);
    assert_eq!(
        (acme[0].input_per_mtok_usd, acme[0].output_per_mtok_usd, acme[0].cached_input_per_mtok_usd),
        (3.0, 15.0, Some(0.3))
    );
    assert_eq!(acme[0].updated_by, "root");
    assert!(listed.prices.iter().any(|p| p.updated_by == "migration"), "the seeded prices are listed too");

    // (2000 * 3.0 + 1000 * 0.3 + 1000 * 15.0) / 10^6 USD = 0.0213 USD.
    let mut with_text = request("acme-large", 2000, 1000, 1000);
    with_text.request_id = "req-1".into();
    with_text.latency_ms = Some(850);
    with_text.prompt = Some("why is n1 unhealthy? ".repeat(5000));
    with_text.response = Some("XID 79".into());
    let recorded = operator.record_llm_usage(with_text.clone()).await.expect("record").into_owned();
    assert!(recorded.priced, "{recorded:?}");
    assert_eq!((recorded.cost_micro_usd, recorded.cost_usd), (Some(21_300), Some(0.0213)));
    assert!(recorded.note.is_empty());
    assert!(recorded.prompt_truncated && !recorded.response_truncated, "a 100 KiB prompt is cut to 64 KiB");
    assert!(!recorded.id.is_empty());

    // The same provider request id again is refused, and nothing more is counted.
    let (code, message) = refused(operator.record_llm_usage(with_text).await);
    assert_eq!(code, ErrorCode::AlreadyExists);
    assert!(message.starts_with("request_id: acme/req-1"), "{message}");

    let summary = operator.summarize_usage(by("model")).await.expect("summary").into_owned();
    assert_eq!(summary.by, "model");
    let row = summary.rows.iter().find(|r| r.model == "acme-large").expect("a row for acme-large");
    assert_eq!(
        (row.provider.as_str(), row.requests, row.input_tokens, row.cached_input_tokens, row.output_tokens),
        ("acme", 1, 2000, 1000, 1000)
    );
    assert_eq!((row.cost_usd, row.cost_micro_usd, row.unpriced_requests), (Some(0.0213), Some(21_300), 0));
    // The default grouping is by model; by actor names the operator's token.
    let default = operator.summarize_usage(v1::SummarizeUsageRequest::default()).await.expect("summary");
    assert_eq!(default.into_owned().by, "model");
    let actors = operator.summarize_usage(by("actor")).await.expect("by actor").into_owned();
    let actors: Vec<(&str, u64)> = actors.rows.iter().map(|r| (r.actor.as_str(), r.requests)).collect();
    assert_eq!(actors, [("oncall", 1)]);

    // Past the 30 days SummarizeUsage looks back by default, the request is no longer summed.
    h.clock.advance(std::time::Duration::from_secs(31 * 24 * 3600));
    let later = operator.summarize_usage(by("model")).await.expect("summary").into_owned();
    assert!(later.rows.is_empty(), "{:?}", later.rows);
    h.stop().await;
}

async fn unknown_models_are_kept_with_their_cost_unknown(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let operator = h.ops(Some(OPERATOR));
    let recorded = operator.record_llm_usage(request("acme-mystery", 10, 0, 5)).await.expect("record").into_owned();
    assert!(!recorded.priced);
    assert_eq!((recorded.cost_usd, recorded.cost_micro_usd), (None, None));
    assert!(recorded.note.starts_with("no price for acme/acme-mystery at 2026-01-01T00:00:00"), "{}", recorded.note);
    assert!(recorded.note.contains("stored with cost unknown"), "{}", recorded.note);

    let summary = operator.summarize_usage(by("provider")).await.expect("summary").into_owned();
    assert_eq!(summary.rows.len(), 1, "{:?}", summary.rows);
    let row = &summary.rows[0];
    assert_eq!((row.provider.as_str(), row.model.as_str()), ("acme", ""), "grouped by provider alone");
    assert_eq!((row.requests, row.input_tokens, row.output_tokens), (1, 10, 5));
    assert_eq!((row.cost_usd, row.cost_micro_usd, row.unpriced_requests), (None, None, 1));
    h.stop().await;
}

async fn bad_usage_and_prices_are_refused_naming_the_field(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let (admin, operator) = (h.ops(Some(ADMIN)), h.ops(Some(OPERATOR)));
    let cases: [(v1::RecordLlmUsageRequest, ErrorCode, &str); 6] = [
        (request("acme-large", -1, 0, 0), ErrorCode::InvalidArgument, "invalid input_tokens: must be ≥ 0"),
        (request("acme-large", 0, -5, 0), ErrorCode::InvalidArgument, "invalid cached_input_tokens: must be ≥ 0"),
        (request("acme-large", 0, 0, -1), ErrorCode::InvalidArgument, "invalid output_tokens: must be ≥ 0"),
        (request("", 1, 0, 1), ErrorCode::InvalidArgument, "invalid model: is required"),
        (
            v1::RecordLlmUsageRequest { run_id: "not-a-run".into(), ..request("acme-large", 1, 0, 1) },
            ErrorCode::InvalidArgument,
            "invalid run_id:",
        ),
        (
            v1::RecordLlmUsageRequest {
                run_id: bosun_core::RunId::new_at(Timestamp::from_unix_micros(NEW_YEAR_MICROS)).to_string(),
                ..request("acme-large", 1, 0, 1)
            },
            ErrorCode::NotFound,
            "run_id: run ",
        ),
    ];
    for (bad, code, start) in cases {
        let (got, message) = refused(operator.record_llm_usage(bad).await);
        assert_eq!(got, code, "{message}");
        assert!(message.starts_with(start), "{message:?} does not start with {start:?}");
    }
    let summary = operator.summarize_usage(by("model")).await.expect("summary").into_owned();
    assert!(summary.rows.is_empty(), "nothing refused was stored: {:?}", summary.rows);
    let (code, message) = refused(operator.summarize_usage(by("colour")).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.starts_with("invalid by:"), "{message}");

    // One bad price refuses the whole list: the good one before it is not stored.
    let negative = v1::Price { model: "acme-small".into(), output_per_mtok_usd: -0.5, ..acme_large() };
    let (code, message) = refused(admin.set_pricing(prices(vec![acme_large(), negative])).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.starts_with("invalid prices[1].output_per_mtok_usd:"), "{message}");
    let nan = v1::Price { input_per_mtok_usd: f64::NAN, ..acme_large() };
    let (_, message) = refused(admin.set_pricing(prices(vec![nan])).await);
    assert!(message.starts_with("invalid prices[0].input_per_mtok_usd:"), "{message}");
    let no_start = v1::Price { effective_from: Default::default(), ..acme_large() };
    let (_, message) = refused(admin.set_pricing(prices(vec![no_start])).await);
    assert!(message.starts_with("invalid prices[0].effective_from: is required"), "{message}");
    let (_, message) = refused(admin.set_pricing(prices(vec![acme_large(), acme_large()])).await);
    assert!(message.starts_with("invalid prices[1]:") && message.contains("given twice"), "{message}");
    let (_, message) = refused(admin.set_pricing(prices(vec![acme_large(); 1001])).await);
    assert!(message.starts_with("invalid prices: 1001 prices"), "{message}");
    let (_, message) = refused(admin.set_pricing(prices(vec![])).await);
    assert!(message.starts_with("invalid prices: is empty"), "{message}");
    let listed = admin.list_pricing(v1::ListPricingRequest::default()).await.expect("list").into_owned();
    assert!(listed.prices.iter().all(|p| p.provider != "acme"), "no acme price was stored");
    h.stop().await;
}

async fn only_the_right_tokens_set_prices_and_record_usage(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let operator = h.ops(Some(OPERATOR));
    let (code, message) = refused(operator.set_pricing(prices(vec![acme_large()])).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "{message}");
    assert!(message.contains("needs an admin token"), "{message}");
    let agent = h.ops(Some(AGENTS));
    for result in [
        agent.record_llm_usage(request("acme-large", 1, 0, 1)).await.map(|_| ()),
        agent.set_pricing(prices(vec![acme_large()])).await.map(|_| ()),
        agent.list_pricing(v1::ListPricingRequest::default()).await.map(|_| ()),
        agent.summarize_usage(by("model")).await.map(|_| ()),
    ] {
        assert_eq!(refused(result).0, ErrorCode::PermissionDenied);
    }
    assert_eq!(refused(h.ops(None).summarize_usage(by("model")).await).0, ErrorCode::Unauthenticated);

    // Prices set and usage recorded are audited, the refusals too.
    let admin = h.ops(Some(ADMIN));
    admin.set_pricing(prices(vec![acme_large()])).await.expect("admin sets prices");
    operator.record_llm_usage(request("acme-large", 1, 0, 1)).await.expect("operator records usage");
    let audit = admin.list_audit(v1::ListAuditRequest::default()).await.expect("audit").into_owned();
    let seen: Vec<(&str, &str, &str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.method.contains("Pricing") || e.method.contains("LlmUsage"))
        .map(|e| (e.actor.as_str(), e.method.as_str(), e.outcome.as_str(), e.resource.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("oncall", "bosun.v1.OpsService/SetPricing", "refused", ""),
            ("fleet", "bosun.v1.OpsService/RecordLlmUsage", "refused", ""),
            ("fleet", "bosun.v1.OpsService/SetPricing", "refused", ""),
            ("fleet", "bosun.v1.OpsService/ListPricing", "refused", ""),
            ("root", "bosun.v1.OpsService/SetPricing", "ok", "pricing"),
            ("oncall", "bosun.v1.OpsService/RecordLlmUsage", "ok", "llm_model:acme/acme-large"),
        ]
    );
    h.stop().await;
}
