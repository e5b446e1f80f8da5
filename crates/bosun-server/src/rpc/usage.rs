//! LLM usage and model prices (OpsService's RecordLlmUsage, SetPricing, ListPricing,
//! SummarizeUsage): an AI agent reports each request it made, bosun prices it from the
//! stored price of its model, and operators read the sums.
//!
//! Pricing happens in the store, inside the transaction that records the request, so a
//! price set concurrently is either wholly before or wholly after it. A request whose
//! model has no price is kept with its cost unknown (and counted as unpriced), never
//! dropped: the tokens were spent whether or not bosun knows their price.

use std::time::Duration;

use bosun_api::{convert, usage, v1};
use bosun_core::{LlmText, LlmUsage, ResourceKind, RunId, UsageFilter, UsageGroup};
use bosun_store::{StoreError, WriteBatch, WriteOutcome};
use buffa::MessageField;

use crate::app::App;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The most of a prompt or a response a usage record keeps, in bytes (the rest is cut and
/// the record flagged): the record is for cost and review, and a long agent session
/// resends its whole context in every prompt.
pub(crate) const MAX_RECORDED_TEXT_BYTES: usize = 64 * 1024;
/// Prices one SetPricing call may set.
pub(crate) const MAX_PRICES: usize = 1_000;
/// How far back SummarizeUsage looks when not told.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// A token count the caller sent: signed on the wire so that a negative one is refused
/// here rather than wrapped into a huge unsigned count.
fn count(field: &str, value: i64) -> ApiResult<u64> {
    u64::try_from(value).map_err(|_| ApiError::invalid(field, format_args!("must be ≥ 0 (got {value})")))
}

/// The caller as a usage record or a price names them (the audit log's name).
fn who(caller: &Caller) -> String {
    caller.audit_identity().0
}

pub(crate) async fn record_llm_usage(
    app: &App,
    caller: &Caller,
    request: v1::RecordLlmUsageRequest,
) -> ApiResult<v1::RecordLlmUsageResponse> {
    let mut record = LlmUsage::new(who(caller), request.provider, request.model, app.now());
    record.input_tokens = count("input_tokens", request.input_tokens)?;
    record.output_tokens = count("output_tokens", request.output_tokens)?;
    record.cached_input_tokens = count("cached_input_tokens", request.cached_input_tokens)?;
    record.latency_ms = request.latency_ms.map(|ms| count("latency_ms", ms)).transpose()?;
    record.request_id = (!request.request_id.is_empty()).then_some(request.request_id);
    record.run_id = super::parsed::<RunId>("run_id", &request.run_id)?;
    record.prompt = request.prompt.map(|text| LlmText::bounded(text, MAX_RECORDED_TEXT_BYTES));
    record.response = request.response.map(|text| LlmText::bounded(text, MAX_RECORDED_TEXT_BYTES));
    // The store checks the rest (names, lengths, NULs), naming the field.
    record.check()?;

    let batch = WriteBatch::new(caller.actor(), "LLM usage recorded").record_llm_usage(record.clone());
    let committed = app.store.commit(batch).await.map_err(|error| match error {
        StoreError::NotFound { kind: ResourceKind::Run, id } => {
            ApiError::NotFound(format!("run_id: run {id} does not exist; name an existing run or leave run_id out"))
        }
        StoreError::AlreadyExists { kind: ResourceKind::LlmUsage, id } => ApiError::AlreadyExists(format!(
            "request_id: {id} was recorded before; each provider request id is recorded once (nothing was stored \
             this time)"
        )),
        other => other.into(),
    })?;
    let cost_micro_usd = match committed.outcomes.first() {
        Some(WriteOutcome::Priced { cost_micro_usd }) => *cost_micro_usd,
        other => return Err(ApiError::Internal(format!("a usage record was committed as {other:?}"))),
    };
    let note = match cost_micro_usd {
        Some(_) => String::new(),
        None => format!(
            "no price for {}/{} at {}; stored with cost unknown (an admin sets one with `bosun pricing set`)",
            record.provider, record.model, record.at
        ),
    };
    tracing::debug!(usage = %record.id, actor = %record.actor, model = %record.model, ?cost_micro_usd, "LLM usage recorded");
    Ok(v1::RecordLlmUsageResponse {
        id: record.id.to_string(),
        priced: cost_micro_usd.is_some(),
        cost_usd: cost_micro_usd.map(usage::usd),
        cost_micro_usd,
        note,
        prompt_truncated: record.prompt.as_ref().is_some_and(|t| t.truncated),
        response_truncated: record.response.as_ref().is_some_and(|t| t.truncated),
        ..Default::default()
    })
}

/// Stores every price given in one batch: all of them, or none.
pub(crate) async fn set_pricing(
    app: &App,
    caller: &Caller,
    request: v1::SetPricingRequest,
) -> ApiResult<v1::SetPricingResponse> {
    if request.prices.is_empty() {
        return Err(ApiError::invalid("prices", "is empty; give at least one price"));
    }
    if request.prices.len() > MAX_PRICES {
        return Err(ApiError::invalid(
            "prices",
            format_args!("{} prices; one call sets at most {MAX_PRICES}", request.prices.len()),
        ));
    }
    let updated_by = who(caller);
    let mut prices = Vec::with_capacity(request.prices.len());
    for (index, wire) in request.prices.iter().enumerate() {
        let price = usage::price_from_wire(index, wire, &updated_by)?;
        // The same key twice would silently keep only the last: say which entries clash.
        if let Some(first) = prices.iter().position(|(_, p): &(usize, bosun_core::Price)| {
            (&p.provider, &p.model, p.effective_from) == (&price.provider, &price.model, price.effective_from)
        }) {
            return Err(ApiError::invalid(
                &format!("prices[{index}]"),
                format_args!(
                    "{}/{} from {} is given twice (also prices[{}])",
                    price.provider, price.model, price.effective_from, prices[first].0
                ),
            ));
        }
        prices.push((index, price));
    }
    // Oldest first per model: each new price then closes the one before it, so a document
    // listing a model's price history stores it whatever its order.
    prices.sort_by(|(_, a), (_, b)| {
        (&a.provider, &a.model, a.effective_from).cmp(&(&b.provider, &b.model, b.effective_from))
    });
    let count = prices.len();
    let mut batch = WriteBatch::new(caller.actor(), format!("{count} model prices set"));
    for (_, price) in prices {
        batch = batch.put_price(price);
    }
    app.store.commit(batch).await?;
    tracing::info!(prices = count, actor = %updated_by, "model prices set");
    Ok(v1::SetPricingResponse { count: u32::try_from(count).unwrap_or(u32::MAX), ..Default::default() })
}

pub(crate) async fn list_pricing(app: &App, request: v1::ListPricingRequest) -> ApiResult<v1::ListPricingResponse> {
    let current_at = request.current_at.as_option().map(|at| convert::from_timestamp("current_at", at)).transpose()?;
    let prices = app.store.pricing(current_at).await?;
    Ok(v1::ListPricingResponse { prices: prices.iter().map(usage::price).collect(), ..Default::default() })
}

pub(crate) async fn summarize_usage(
    app: &App,
    request: v1::SummarizeUsageRequest,
) -> ApiResult<v1::SummarizeUsageResponse> {
    let since = match request.since.as_option() {
        Some(at) => convert::from_timestamp("since", at)?,
        None => app.now() - DEFAULT_WINDOW,
    };
    let by = super::parsed::<UsageGroup>("by", &request.by)?.unwrap_or(UsageGroup::Model);
    let rows = app.store.usage_summary(&UsageFilter { since, by }).await?;
    Ok(v1::SummarizeUsageResponse {
        rows: rows.iter().map(usage::usage_row).collect(),
        since: MessageField::some(convert::timestamp(since)),
        by: by.to_string(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_counts_and_bad_runs_are_refused_naming_the_field() {
        assert_eq!(count("input_tokens", 2000).expect("valid"), 2000);
        let message = count("input_tokens", -1).unwrap_err().to_string();
        assert!(message.starts_with("invalid input_tokens: must be ≥ 0"), "{message}");
        assert_eq!(super::super::parsed::<RunId>("run_id", "").expect("none"), None);
        let message = super::super::parsed::<RunId>("run_id", "not-a-run").unwrap_err().to_string();
        assert!(message.starts_with("invalid run_id:"), "{message}");
    }
}
