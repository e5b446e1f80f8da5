//! LLM usage, model prices and their cost, and control settings.
//!
//! Money is integers: a price is micro-USD per million tokens (3.0 USD/Mtok is
//! 3 000 000) and a cost is micro-USD, so the store sums costs exactly and every backend
//! agrees to the micro-dollar. [`Price::cost`] is the only place a cost is computed.
//!
//! Token counts are split so they add up: `input_tokens` is the **uncached** input,
//! `cached_input_tokens` the input served from the provider's prompt cache, and
//! `output_tokens` what the model wrote.

use serde::{Deserialize, Serialize};

use crate::validation::{ValidationError, check_identifier, check_name, check_stored_int, check_timestamp};
use crate::{LlmUsageId, Revision, RunId, Timestamp};

/// Micro-USD in one US dollar.
pub const MICRO_USD_PER_USD: u64 = 1_000_000;
/// Prices are per this many tokens.
pub const TOKENS_PER_PRICE: u64 = 1_000_000;
/// The highest price bosun takes: 1 000 000 USD per million tokens, in micro-USD.
pub const MAX_PRICE_MICRO_USD: u64 = 1_000_000 * MICRO_USD_PER_USD;
/// The longest prompt or response text a usage record keeps, in bytes; callers bound text
/// further with [`LlmText::bounded`].
pub const MAX_LLM_TEXT_BYTES: usize = 1024 * 1024;
/// The most tokens of each kind one request may report: far above any model's context,
/// and low enough that the store's sums over billions of requests stay exact integers.
pub const MAX_TOKENS_PER_REQUEST: u64 = 1_000_000_000;
/// The longest provider request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 255;
/// The longest setting name.
pub const MAX_SETTING_NAME_LEN: usize = 128;
/// The largest setting value, in bytes of JSON.
pub const MAX_SETTING_BYTES: usize = 64 * 1024;

/// A provider's or model's name: required, at most [`crate::validation::MAX_NAME_LEN`]
/// bytes, no control characters, no surrounding blanks.
fn check_llm_name(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if value.trim() != value {
        return Err(ValidationError::new(field, format_args!("{value:?} has leading or trailing blanks")));
    }
    check_name(field, value)
}

fn check_price(field: &str, micro_usd: u64) -> Result<(), ValidationError> {
    if micro_usd > MAX_PRICE_MICRO_USD {
        return Err(ValidationError::new(
            field,
            format_args!("{micro_usd} micro-USD per million tokens is above the limit of {MAX_PRICE_MICRO_USD}"),
        ));
    }
    Ok(())
}

/// What one model of one provider costs from `effective_from` until `effective_to`
/// (open-ended when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub provider: String,
    pub model: String,
    /// Uncached input, micro-USD per million tokens.
    pub input_per_mtok_micro_usd: u64,
    pub output_per_mtok_micro_usd: u64,
    /// Cached input; `None` when the provider charges cached input as input.
    pub cached_input_per_mtok_micro_usd: Option<u64>,
    pub effective_from: Timestamp,
    /// The first instant the price no longer applies.
    pub effective_to: Option<Timestamp>,
    pub updated_by: String,
    /// Set by the store when it stores the price.
    pub updated_at: Timestamp,
}

impl Price {
    /// Whether the price applies at `at`: from its start (inclusive) to its end (exclusive).
    pub fn covers(&self, at: Timestamp) -> bool {
        self.effective_from <= at && self.effective_to.is_none_or(|to| at < to)
    }

    /// Checks every field, naming the first bad one.
    pub fn check(&self) -> Result<(), ValidationError> {
        check_llm_name("provider", &self.provider)?;
        check_llm_name("model", &self.model)?;
        check_price("input_per_mtok_micro_usd", self.input_per_mtok_micro_usd)?;
        check_price("output_per_mtok_micro_usd", self.output_per_mtok_micro_usd)?;
        if let Some(cached) = self.cached_input_per_mtok_micro_usd {
            check_price("cached_input_per_mtok_micro_usd", cached)?;
        }
        check_timestamp("effective_from", self.effective_from)?;
        if let Some(to) = self.effective_to {
            check_timestamp("effective_to", to)?;
            if to <= self.effective_from {
                return Err(ValidationError::new(
                    "effective_to",
                    format_args!("{to} is not after effective_from {}", self.effective_from),
                ));
            }
        }
        if self.updated_by.trim().is_empty() {
            return Err(ValidationError::new("updated_by", "is required"));
        }
        check_name("updated_by", &self.updated_by)
    }

    /// The cost of a request priced at this price, in micro-USD:
    /// `(input · input_price + cached · cached_price + output · output_price) / 10^6`,
    /// rounded half up to a whole micro-dollar (cached input at the input price when no
    /// cached price is set). Exact: the products are summed in `i128` and rounded once.
    /// A cost above the largest storable integer is refused, naming `cost_micro_usd`.
    pub fn cost(
        &self,
        input_tokens: u64,
        cached_input_tokens: u64,
        output_tokens: u64,
    ) -> Result<Cost, ValidationError> {
        let cached_price = self.cached_input_per_mtok_micro_usd.unwrap_or(self.input_per_mtok_micro_usd);
        let terms = [
            (input_tokens, self.input_per_mtok_micro_usd),
            (cached_input_tokens, cached_price),
            (output_tokens, self.output_per_mtok_micro_usd),
        ];
        let too_large = || ValidationError::new("cost_micro_usd", "the cost is above the largest storable amount");
        let mut total: i128 = 0;
        for (tokens, price) in terms {
            let term = i128::from(tokens).checked_mul(i128::from(price)).ok_or_else(too_large)?;
            total = total.checked_add(term).ok_or_else(too_large)?;
        }
        let per = i128::from(TOKENS_PER_PRICE);
        let micro_usd = (total + per / 2) / per;
        let micro_usd = u64::try_from(micro_usd).map_err(|_| too_large())?;
        check_stored_int("cost_micro_usd", micro_usd).map_err(|_| too_large())?;
        Ok(Cost { micro_usd, price_from: self.effective_from })
    }

    /// A price given in US dollars per million tokens (as the API and `bosun pricing set`
    /// take it), in micro-USD, rounded to the nearest micro-dollar: finite, not negative,
    /// at most [`MAX_PRICE_MICRO_USD`].
    pub fn micro_usd_from_usd(field: &str, usd_per_mtok: f64) -> Result<u64, ValidationError> {
        if !usd_per_mtok.is_finite() || usd_per_mtok < 0.0 {
            return Err(ValidationError::new(
                field,
                format_args!("{usd_per_mtok} is not a price (finite, at least 0)"),
            ));
        }
        let micro = (usd_per_mtok * MICRO_USD_PER_USD as f64).round();
        if micro > MAX_PRICE_MICRO_USD as f64 {
            return Err(ValidationError::new(
                field,
                format_args!("{usd_per_mtok} USD per million tokens is above the limit of 1000000"),
            ));
        }
        // In range and integral, so the conversion is exact.
        Ok(micro as u64)
    }
}

/// What a request cost, and which price it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub micro_usd: u64,
    /// The `effective_from` of the price used.
    pub price_from: Timestamp,
}

impl Cost {
    /// The cost in US dollars (for display; sums are made in micro-USD).
    pub fn usd(self) -> f64 {
        self.micro_usd as f64 / MICRO_USD_PER_USD as f64
    }
}

/// A prompt or response as kept: at most a bound of bytes, and whether it was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmText {
    pub text: String,
    pub truncated: bool,
}

impl LlmText {
    /// `text` cut to at most `max_bytes` (at a character boundary), flagged when cut.
    pub fn bounded(mut text: String, max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(MAX_LLM_TEXT_BYTES);
        if text.len() <= max_bytes {
            return LlmText { text, truncated: false };
        }
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        LlmText { text, truncated: true }
    }

    fn check(&self, field: &str) -> Result<(), ValidationError> {
        if self.text.len() > MAX_LLM_TEXT_BYTES {
            return Err(ValidationError::new(
                field,
                format_args!("is {} bytes long; the limit is {MAX_LLM_TEXT_BYTES}", self.text.len()),
            ));
        }
        if self.text.contains('\0') {
            return Err(ValidationError::new(field, "contains a NUL character"));
        }
        Ok(())
    }
}

/// One LLM request an agent reported: who made it, on which model, the tokens it used and
/// what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub id: LlmUsageId,
    /// The run (an AI session, say) the request was made for.
    pub run_id: Option<RunId>,
    /// Who reported it (a token's name).
    pub actor: String,
    pub provider: String,
    pub model: String,
    /// The provider's id of the request; unique per provider when given.
    pub request_id: Option<String>,
    /// Uncached input tokens.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub latency_ms: Option<u64>,
    pub prompt: Option<LlmText>,
    pub response: Option<LlmText>,
    /// Filled in by the store from the price of the model at `at`; `None` when no price
    /// covers it (the request is kept, counted as unpriced).
    pub cost: Option<Cost>,
    pub at: Timestamp,
}

impl LlmUsage {
    /// A request of `model` at `at` with no tokens, text or run yet.
    pub fn new(actor: impl Into<String>, provider: impl Into<String>, model: impl Into<String>, at: Timestamp) -> Self {
        LlmUsage {
            id: LlmUsageId::new_at(at),
            run_id: None,
            actor: actor.into(),
            provider: provider.into(),
            model: model.into(),
            request_id: None,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            latency_ms: None,
            prompt: None,
            response: None,
            cost: None,
            at,
        }
    }

    /// Checks every field, naming the first bad one. The cost is the store's to set and is
    /// not checked here.
    pub fn check(&self) -> Result<(), ValidationError> {
        check_llm_name("actor", &self.actor)?;
        check_llm_name("provider", &self.provider)?;
        check_llm_name("model", &self.model)?;
        if let Some(request_id) = &self.request_id {
            if request_id.is_empty() {
                return Err(ValidationError::new("request_id", "is empty; leave it out instead"));
            }
            if request_id.len() > MAX_REQUEST_ID_LEN {
                return Err(ValidationError::new(
                    "request_id",
                    format_args!("is {} bytes long; the limit is {MAX_REQUEST_ID_LEN}", request_id.len()),
                ));
            }
            check_name("request_id", request_id)?;
        }
        for (field, tokens) in [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cached_input_tokens", self.cached_input_tokens),
        ] {
            if tokens > MAX_TOKENS_PER_REQUEST {
                return Err(ValidationError::new(
                    field,
                    format_args!("{tokens} tokens in one request is above the limit of {MAX_TOKENS_PER_REQUEST}"),
                ));
            }
        }
        if let Some(latency) = self.latency_ms {
            check_stored_int("latency_ms", latency)?;
        }
        if let Some(prompt) = &self.prompt {
            prompt.check("prompt")?;
        }
        if let Some(response) = &self.response {
            response.check("response")?;
        }
        check_timestamp("at", self.at)
    }
}

/// A named control setting kept in the store, changed with compare-and-set on its
/// revision (the MCP kill switch is [`Setting::MCP_ENABLED`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: serde_json::Value,
    pub updated_by: String,
    /// Set by the store when it stores the setting.
    pub updated_at: Timestamp,
    pub revision: Revision,
}

impl Setting {
    /// Whether AI agents may use the MCP server: `{"enabled": bool, "reason": text}`
    /// (no row: on).
    pub const MCP_ENABLED: &'static str = "mcp.enabled";

    pub fn new(
        name: impl Into<String>,
        value: serde_json::Value,
        updated_by: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        Setting { name: name.into(), value, updated_by: updated_by.into(), updated_at: at, revision: Revision::FIRST }
    }

    pub fn check(&self) -> Result<(), ValidationError> {
        check_identifier("name", &self.name, MAX_SETTING_NAME_LEN)?;
        let size = serde_json::to_string(&self.value).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > MAX_SETTING_BYTES {
            return Err(ValidationError::new(
                "value",
                format_args!("is {size} bytes of JSON; the limit is {MAX_SETTING_BYTES}"),
            ));
        }
        if self.updated_by.trim().is_empty() {
            return Err(ValidationError::new("updated_by", "is required"));
        }
        check_name("updated_by", &self.updated_by)
    }
}

named_enum!(
    /// How a usage summary groups requests.
    UsageGroup, field = "by" {
        Model => "model",
        Provider => "provider",
        Run => "run",
        Actor => "actor",
    }
);

/// Which usage a summary covers and how it groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageFilter {
    /// Requests at or after this time.
    pub since: Timestamp,
    pub by: UsageGroup,
}

/// The group a summary row stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum UsageKey {
    Model {
        provider: String,
        model: String,
    },
    Provider {
        provider: String,
    },
    /// `run_id: None` groups the requests made for no run.
    Run {
        run_id: Option<RunId>,
    },
    Actor {
        actor: String,
    },
}

impl UsageKey {
    /// The group `usage` falls in when grouping `by`.
    pub fn of(by: UsageGroup, usage: &LlmUsage) -> Self {
        match by {
            UsageGroup::Model => UsageKey::Model { provider: usage.provider.clone(), model: usage.model.clone() },
            UsageGroup::Provider => UsageKey::Provider { provider: usage.provider.clone() },
            UsageGroup::Run => UsageKey::Run { run_id: usage.run_id },
            UsageGroup::Actor => UsageKey::Actor { actor: usage.actor.clone() },
        }
    }
}

/// One group of a usage summary. Rows come ordered by their key (requests for no run
/// first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub key: UsageKey,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    /// The sum of the known costs; `None` when no request of the group was priced.
    pub cost_micro_usd: Option<u64>,
    /// Requests of the group whose cost is unknown (no price covered their model).
    pub unpriced_requests: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme(cached: Option<u64>) -> Price {
        Price {
            provider: "acme".into(),
            model: "acme-large".into(),
            input_per_mtok_micro_usd: 3_000_000,
            output_per_mtok_micro_usd: 15_000_000,
            cached_input_per_mtok_micro_usd: cached,
            effective_from: Timestamp::from_unix_micros(0),
            effective_to: None,
            updated_by: "test".into(),
            updated_at: Timestamp::from_unix_micros(0),
        }
    }

    #[test]
    fn cost_is_exact_and_rounds_half_up() {
        let price = acme(Some(300_000));
        // (2000 * 3 + 1000 * 0.3 + 1000 * 15) USD / 10^6 = 0.0213 USD.
        assert_eq!(price.cost(2000, 1000, 1000).unwrap().micro_usd, 21_300);
        let cases = [
            // (input, cached, output, micro-USD)
            (0, 0, 0, 0),
            (1, 0, 0, 3),  // 3.0 exactly
            (0, 1, 0, 0),  // 0.3 rounds down
            (0, 2, 0, 1),  // 0.6 rounds up
            (0, 5, 0, 2),  // 1.5 rounds half up
            (1, 1, 1, 18), // 3 + 0.3 + 15 = 18.3
            (1_000_000, 0, 0, 3_000_000),
        ];
        for (input, cached, output, expected) in cases {
            assert_eq!(price.cost(input, cached, output).unwrap().micro_usd, expected, "{input}/{cached}/{output}");
        }
    }

    #[test]
    fn cached_input_without_its_own_price_costs_as_input() {
        assert_eq!(acme(None).cost(0, 1000, 0).unwrap().micro_usd, 3_000);
    }

    #[test]
    fn a_cost_too_large_to_store_is_refused() {
        let mut price = acme(None);
        price.input_per_mtok_micro_usd = MAX_PRICE_MICRO_USD;
        let max = crate::validation::MAX_STORED_INT;
        let err = price.cost(max, max, max).unwrap_err();
        assert_eq!(err.field, "cost_micro_usd");
        // The largest counts at ordinary prices still fit.
        assert!(acme(Some(0)).cost(max / 1_000_000, 0, 0).is_ok());
    }

    #[test]
    fn prices_cover_their_window() {
        let mut price = acme(None);
        price.effective_from = Timestamp::from_unix_micros(10);
        price.effective_to = Some(Timestamp::from_unix_micros(20));
        let covered: Vec<i64> = (8..22).filter(|t| price.covers(Timestamp::from_unix_micros(*t))).collect();
        assert_eq!(covered, (10..20).collect::<Vec<_>>());
    }

    /// A way to spoil a record, and the field its error must name.
    type Spoil<T> = (fn(&mut T), &'static str);

    #[test]
    fn bad_prices_name_the_field() {
        let cases: [Spoil<Price>; 6] = [
            (|p| p.provider.clear(), "provider"),
            (|p| p.model = " acme".into(), "model"),
            (|p| p.model = "m".repeat(300), "model"),
            (|p| p.output_per_mtok_micro_usd = MAX_PRICE_MICRO_USD + 1, "output_per_mtok_micro_usd"),
            (|p| p.effective_to = Some(p.effective_from), "effective_to"),
            (|p| p.updated_by.clear(), "updated_by"),
        ];
        for (spoil, field) in cases {
            let mut price = acme(None);
            spoil(&mut price);
            assert_eq!(price.check().unwrap_err().field, field);
        }
        assert!(acme(None).check().is_ok());
    }

    #[test]
    fn usd_prices_convert_to_micro_usd() {
        assert_eq!(Price::micro_usd_from_usd("p", 3.0).unwrap(), 3_000_000);
        assert_eq!(Price::micro_usd_from_usd("p", 0.3).unwrap(), 300_000);
        assert_eq!(Price::micro_usd_from_usd("p", 0.0000004).unwrap(), 0);
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e7] {
            assert_eq!(Price::micro_usd_from_usd("input_per_mtok_usd", bad).unwrap_err().field, "input_per_mtok_usd");
        }
    }

    #[test]
    fn text_is_bounded_at_a_character_boundary() {
        let kept = LlmText::bounded("héllo".into(), 2);
        assert_eq!(kept, LlmText { text: "h".into(), truncated: true });
        assert_eq!(LlmText::bounded("hi".into(), 2), LlmText { text: "hi".into(), truncated: false });
    }

    #[test]
    fn bad_usage_names_the_field() {
        let at = Timestamp::from_unix_micros(0);
        let cases: [Spoil<LlmUsage>; 6] = [
            (|u| u.model.clear(), "model"),
            (|u| u.request_id = Some(String::new()), "request_id"),
            (|u| u.input_tokens = u64::MAX, "input_tokens"),
            (|u| u.output_tokens = MAX_TOKENS_PER_REQUEST + 1, "output_tokens"),
            (|u| u.cached_input_tokens = u64::MAX, "cached_input_tokens"),
            (|u| u.prompt = Some(LlmText { text: "a\0".into(), truncated: false }), "prompt"),
        ];
        for (spoil, field) in cases {
            let mut usage = LlmUsage::new("oncall", "acme", "acme-large", at);
            spoil(&mut usage);
            assert_eq!(usage.check().unwrap_err().field, field);
        }
        assert!(LlmUsage::new("oncall", "acme", "acme-large", at).check().is_ok());
        let mut most = LlmUsage::new("oncall", "acme", "acme-large", at);
        most.input_tokens = MAX_TOKENS_PER_REQUEST;
        assert!(most.check().is_ok(), "the limit itself is allowed");
    }

    #[test]
    fn settings_are_named_and_bounded() {
        let at = Timestamp::from_unix_micros(0);
        assert!(Setting::new(Setting::MCP_ENABLED, serde_json::json!(false), "root", at).check().is_ok());
        assert_eq!(Setting::new("a b", serde_json::json!(1), "root", at).check().unwrap_err().field, "name");
        let big = serde_json::json!("x".repeat(MAX_SETTING_BYTES));
        assert_eq!(Setting::new("big", big, "root", at).check().unwrap_err().field, "value");
    }
}
