//! LLM usage, model prices and control settings in the store: the rules their writes follow
//! on every backend (called from [`crate::apply`]), the row shapes the SQL backends share,
//! and the price list every store starts with.
//!
//! None of them has change records: usage is appended, and prices and settings are changed
//! through API calls that are audited.

use bosun_core::{
    Cost, LlmText, LlmUsage, LlmUsageId, Price, ResourceKind, Revision, RunId, Setting, Timestamp, UsageGroup,
    UsageKey, UsageRow,
};

use crate::apply::{Applied, Insert, Stamp, Transaction, check_expected};
use crate::error::{Result, StoreError};
use crate::sql::rows::SqlTime;
use crate::sql::{parse, unsigned};

/// The price list migration 12 seeds (USD per million tokens, from 2025-06-01), which the
/// memory store starts with too: (provider, model, input, output, cached input), in
/// micro-USD per million tokens.
pub const SEED: [(&str, &str, u64, u64, u64); 6] = [
    ("anthropic", "claude-opus-4", 15_000_000, 75_000_000, 1_500_000),
    ("anthropic", "claude-sonnet-4", 3_000_000, 15_000_000, 300_000),
    ("anthropic", "claude-3-5-haiku", 800_000, 4_000_000, 80_000),
    ("openai", "gpt-4o", 2_500_000, 10_000_000, 1_250_000),
    ("openai", "gpt-4o-mini", 150_000, 600_000, 75_000),
    ("openai", "o3", 2_000_000, 8_000_000, 500_000),
];

/// When the seeded prices start: 2025-06-01T00:00:00Z.
pub const SEED_FROM_MICROS: i64 = 1_748_736_000_000_000;

/// [`SEED`] as prices, ordered as [`crate::Store::pricing`] lists them.
pub fn seed_prices() -> Vec<Price> {
    let from = Timestamp::from_unix_micros(SEED_FROM_MICROS);
    let mut prices: Vec<Price> = SEED
        .iter()
        .map(|(provider, model, input, output, cached)| Price {
            provider: (*provider).into(),
            model: (*model).into(),
            input_per_mtok_micro_usd: *input,
            output_per_mtok_micro_usd: *output,
            cached_input_per_mtok_micro_usd: Some(*cached),
            effective_from: from,
            effective_to: None,
            updated_by: "migration".into(),
            updated_at: from,
        })
        .collect();
    prices.sort_by(|a, b| (&a.provider, &a.model, a.effective_from).cmp(&(&b.provider, &b.model, b.effective_from)));
    prices
}

/// Stores a price. The same (provider, model, effective_from) again replaces that price.
/// An open-ended price closes the model's open price where it starts, if that one started
/// earlier, and is refused if it started later (it would overlap it for ever: give it an
/// `effective_to`). A price with an end closes nothing: a lookup takes the price with the
/// latest start that covers its time, so the open price applies again after it ends.
pub(crate) async fn put_price<T: Transaction>(tx: &mut T, stamp: Stamp<'_>, price: &Price) -> Result<Applied> {
    price.check()?;
    let mut stored = price.clone();
    stored.updated_at = stamp.at;
    if price.effective_to.is_none()
        && let Some(open) = tx.open_price(&price.provider, &price.model).await?
        && open.effective_from != price.effective_from
    {
        if open.effective_from < price.effective_from {
            tx.close_price(&open, price.effective_from).await?;
        } else {
            return Err(StoreError::invalid(
                "effective_to",
                format_args!(
                    "{}/{} has a price from {}; a price starting earlier needs an end",
                    price.provider, price.model, open.effective_from
                ),
            ));
        }
    }
    tx.put_price(&stored).await?;
    Ok(Applied::stored(Revision::FIRST))
}

/// Records one LLM request, priced inside the transaction from the price of its model in
/// effect at its time; without one it is kept with its cost unknown. The same provider
/// request id twice is `AlreadyExists`.
pub(crate) async fn record_llm_usage<T: Transaction>(tx: &mut T, usage: &LlmUsage) -> Result<Applied> {
    usage.check()?;
    if let Some(run) = usage.run_id
        && tx.run(&run).await?.is_none()
    {
        return Err(StoreError::not_found(ResourceKind::Run, run));
    }
    let mut stored = usage.clone();
    stored.cost = match tx.price_at(&usage.provider, &usage.model, usage.at).await? {
        Some(price) => Some(price.cost(usage.input_tokens, usage.cached_input_tokens, usage.output_tokens)?),
        None => None,
    };
    match tx.insert_llm_usage(&stored).await? {
        Insert::Done => Ok(Applied::priced(stored.cost.map(|c| c.micro_usd))),
        Insert::KeyTaken => {
            let id = match &usage.request_id {
                Some(request) => format!("{}/{request}", usage.provider),
                None => usage.id.to_string(),
            };
            Err(StoreError::already_exists(ResourceKind::LlmUsage, id))
        }
    }
}

/// Stores a setting: created at revision 1 when none has its name, replaced at the next
/// revision otherwise; with `expected`, only at that revision (compare-and-set).
pub(crate) async fn put_setting<T: Transaction>(
    tx: &mut T,
    stamp: Stamp<'_>,
    setting: &Setting,
    expected: Option<Revision>,
) -> Result<Applied> {
    setting.check()?;
    let mut stored = setting.clone();
    stored.updated_at = stamp.at;
    match tx.setting(&setting.name).await? {
        None => {
            if expected.is_some() {
                return Err(StoreError::not_found(ResourceKind::Setting, &setting.name));
            }
            stored.revision = Revision::FIRST;
            match tx.insert_setting(&stored).await? {
                Insert::Done => Ok(Applied::stored(stored.revision)),
                // A concurrent first put committed in between (PostgreSQL).
                Insert::KeyTaken => Err(StoreError::already_exists(ResourceKind::Setting, &setting.name)),
            }
        }
        Some(current) => {
            check_expected(ResourceKind::Setting, &setting.name, current.revision, expected)?;
            stored.revision = current.revision.next();
            tx.update_setting(&stored).await?;
            Ok(Applied::stored(stored.revision))
        }
    }
}

/// Sums usage into summary rows by key, as the SQL backends' GROUP BY does (the memory
/// store's summary).
pub(crate) fn summarize<'a>(by: UsageGroup, usages: impl Iterator<Item = &'a LlmUsage>) -> Result<Vec<UsageRow>> {
    let overflow = || StoreError::invalid("usage", "a sum is above the largest storable integer");
    let mut rows: std::collections::BTreeMap<UsageKey, UsageRow> = std::collections::BTreeMap::new();
    for usage in usages {
        let key = UsageKey::of(by, usage);
        let row = rows.entry(key.clone()).or_insert(UsageRow {
            key,
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cost_micro_usd: None,
            unpriced_requests: 0,
        });
        let add = |a: u64, b: u64| a.checked_add(b).filter(|s| *s <= i64::MAX as u64).ok_or_else(overflow);
        row.requests += 1;
        row.input_tokens = add(row.input_tokens, usage.input_tokens)?;
        row.output_tokens = add(row.output_tokens, usage.output_tokens)?;
        row.cached_input_tokens = add(row.cached_input_tokens, usage.cached_input_tokens)?;
        match usage.cost {
            Some(cost) => row.cost_micro_usd = Some(add(row.cost_micro_usd.unwrap_or(0), cost.micro_usd)?),
            None => row.unpriced_requests += 1,
        }
    }
    Ok(rows.into_values().collect())
}

/// The key columns a summary groups and orders by, in the order [`SummaryRow`] reads them
/// (absent ones selected as NULL).
pub(crate) fn group_columns(by: UsageGroup) -> (&'static str, &'static str) {
    // (selected: provider, model, run_id, actor; GROUP BY / ORDER BY)
    match by {
        UsageGroup::Model => ("provider, model, NULL, NULL", "provider, model"),
        UsageGroup::Provider => ("provider, NULL, NULL, NULL", "provider"),
        UsageGroup::Run => ("NULL, NULL, run_id, NULL", "run_id"),
        UsageGroup::Actor => ("NULL, NULL, NULL, actor", "actor"),
    }
}

/// A price row as both SQL backends read it.
#[derive(sqlx::FromRow)]
pub(crate) struct PriceRow<T> {
    pub provider: String,
    pub model: String,
    pub input_per_mtok_micro_usd: i64,
    pub output_per_mtok_micro_usd: i64,
    pub cached_input_per_mtok_micro_usd: Option<i64>,
    pub effective_from: T,
    pub effective_to: Option<T>,
    pub updated_by: String,
    pub updated_at: T,
}

impl PriceRow<()> {
    pub const COLUMNS: &'static str = "provider, model, input_per_mtok_micro_usd, output_per_mtok_micro_usd, \
        cached_input_per_mtok_micro_usd, effective_from, effective_to, updated_by, updated_at";
}

impl<T: SqlTime> PriceRow<T> {
    pub fn into_price(self) -> Result<Price> {
        Ok(Price {
            provider: self.provider,
            model: self.model,
            input_per_mtok_micro_usd: unsigned(
                "provider_pricing.input_per_mtok_micro_usd",
                self.input_per_mtok_micro_usd,
            )?,
            output_per_mtok_micro_usd: unsigned(
                "provider_pricing.output_per_mtok_micro_usd",
                self.output_per_mtok_micro_usd,
            )?,
            cached_input_per_mtok_micro_usd: self
                .cached_input_per_mtok_micro_usd
                .map(|v| unsigned("provider_pricing.cached_input_per_mtok_micro_usd", v))
                .transpose()?,
            effective_from: self.effective_from.timestamp(),
            effective_to: self.effective_to.map(SqlTime::timestamp),
            updated_by: self.updated_by,
            updated_at: self.updated_at.timestamp(),
        })
    }
}

/// One usage record as both SQL backends read it (the three tables joined; ids as text).
#[derive(sqlx::FromRow)]
pub(crate) struct UsageRecordRow<T> {
    pub id: String,
    pub run_id: Option<String>,
    pub actor: String,
    pub provider: String,
    pub model: String,
    pub request_id: Option<String>,
    pub prompt: Option<String>,
    pub prompt_truncated: bool,
    pub at: T,
    pub response: Option<String>,
    pub response_truncated: bool,
    pub latency_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cost_micro_usd: Option<i64>,
    pub priced_at: Option<T>,
}

fn text(value: Option<String>, truncated: bool) -> Option<LlmText> {
    value.map(|text| LlmText { text, truncated })
}

impl<T: SqlTime> UsageRecordRow<T> {
    pub fn into_usage(self) -> Result<LlmUsage> {
        let cost = match (self.cost_micro_usd, self.priced_at) {
            (Some(micro), Some(from)) => {
                Some(Cost { micro_usd: unsigned("token_usage.cost_micro_usd", micro)?, price_from: from.timestamp() })
            }
            (None, None) => None,
            _ => return Err(StoreError::corrupt("token_usage.priced_at", "set without a cost, or a cost without it")),
        };
        Ok(LlmUsage {
            id: parse::<LlmUsageId>("llm_requests.id", &self.id)?,
            run_id: self.run_id.as_deref().map(|r| parse::<RunId>("llm_requests.run_id", r)).transpose()?,
            actor: self.actor,
            provider: self.provider,
            model: self.model,
            request_id: self.request_id,
            input_tokens: unsigned("token_usage.input_tokens", self.input_tokens)?,
            output_tokens: unsigned("token_usage.output_tokens", self.output_tokens)?,
            cached_input_tokens: unsigned("token_usage.cached_input_tokens", self.cached_input_tokens)?,
            latency_ms: self.latency_ms.map(|l| unsigned("llm_responses.latency_ms", l)).transpose()?,
            prompt: text(self.prompt, self.prompt_truncated),
            response: text(self.response, self.response_truncated),
            cost,
            at: self.at.timestamp(),
        })
    }
}

/// A summary row as both SQL backends read it: the key columns (NULL when not grouped by),
/// then the sums.
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub run_id: Option<String>,
    pub actor: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cost_micro_usd: Option<i64>,
    pub unpriced_requests: i64,
}

impl SummaryRow {
    pub fn into_row(self, by: UsageGroup) -> Result<UsageRow> {
        let need = |v: Option<String>, what: &str| v.ok_or_else(|| StoreError::corrupt(what, "NULL in a summary key"));
        let key = match by {
            UsageGroup::Model => UsageKey::Model {
                provider: need(self.provider, "token_usage.provider")?,
                model: need(self.model, "token_usage.model")?,
            },
            UsageGroup::Provider => UsageKey::Provider { provider: need(self.provider, "token_usage.provider")? },
            UsageGroup::Run => UsageKey::Run {
                run_id: self.run_id.as_deref().map(|r| parse::<RunId>("token_usage.run_id", r)).transpose()?,
            },
            UsageGroup::Actor => UsageKey::Actor { actor: need(self.actor, "token_usage.actor")? },
        };
        Ok(UsageRow {
            key,
            requests: unsigned("requests", self.requests)?,
            input_tokens: unsigned("input_tokens", self.input_tokens)?,
            output_tokens: unsigned("output_tokens", self.output_tokens)?,
            cached_input_tokens: unsigned("cached_input_tokens", self.cached_input_tokens)?,
            cost_micro_usd: self.cost_micro_usd.map(|c| unsigned("cost_micro_usd", c)).transpose()?,
            unpriced_requests: unsigned("unpriced_requests", self.unpriced_requests)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_prices_are_valid_and_listed_in_key_order() {
        let prices = seed_prices();
        assert_eq!(prices.len(), SEED.len());
        for price in &prices {
            price.check().expect("a valid seed price");
        }
        assert_eq!(Timestamp::from_unix_micros(SEED_FROM_MICROS).to_rfc3339(), "2025-06-01T00:00:00.000000Z");
    }
}
