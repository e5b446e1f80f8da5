//! Model price lists, set with `bosun pricing set FILE`: a list of prices per million
//! tokens, in US dollars.
//!
//! ```yaml
//! - {provider: acme, model: acme-large, input_per_mtok_usd: 3.0, output_per_mtok_usd: 15.0,
//!    cached_input_per_mtok_usd: 0.3, effective_from: "2026-01-01T00:00:00Z"}
//! ```
//!
//! Each price is checked here as the server will check it (finite, not negative, within
//! bosun's limit, a valid window), so a mistake is named with its entry before anything is
//! sent; the server checks again, as it checks every caller.

use bosun_core::{Price, Timestamp};
use serde::Deserialize;

use crate::ConfigError;

/// The largest price list accepted.
pub const MAX_PRICE_LIST_BYTES: usize = 1024 * 1024;
/// Prices one list may hold (SetPricing's limit).
pub const MAX_PRICES: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    provider: String,
    model: String,
    input_per_mtok_usd: f64,
    output_per_mtok_usd: f64,
    #[serde(default)]
    cached_input_per_mtok_usd: Option<f64>,
    effective_from: String,
    #[serde(default)]
    effective_to: Option<String>,
}

/// One price as written, in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEntry {
    pub provider: String,
    pub model: String,
    pub input_per_mtok_usd: f64,
    pub output_per_mtok_usd: f64,
    pub cached_input_per_mtok_usd: Option<f64>,
    pub effective_from: Timestamp,
    pub effective_to: Option<Timestamp>,
}

fn time(key: &str, text: &str) -> Result<Timestamp, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::invalid(key, format_args!("{text:?} is not an RFC 3339 time; write e.g. \"2026-01-01T00:00:00Z\""))
    })
}

/// Parses a price list. Keys are named with their entry (`[2].model`); unknown keys are
/// refused.
pub fn parse_price_list(text: &str) -> Result<Vec<PriceEntry>, ConfigError> {
    let limits = bosun_yaml::Limits::FILE.with_max_bytes(MAX_PRICE_LIST_BYTES);
    let raw: Vec<RawPrice> = crate::parse::parse_document(text, &limits)?;
    if raw.is_empty() {
        return Err(ConfigError::invalid("prices", "the list is empty; give at least one price"));
    }
    if raw.len() > MAX_PRICES {
        return Err(ConfigError::invalid("prices", format_args!("{} prices; the limit is {MAX_PRICES}", raw.len())));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let key = |name: &str| format!("[{index}].{name}");
            let entry = PriceEntry {
                effective_from: time(&key("effective_from"), &raw.effective_from)?,
                effective_to: raw.effective_to.as_deref().map(|to| time(&key("effective_to"), to)).transpose()?,
                provider: raw.provider,
                model: raw.model,
                input_per_mtok_usd: raw.input_per_mtok_usd,
                output_per_mtok_usd: raw.output_per_mtok_usd,
                cached_input_per_mtok_usd: raw.cached_input_per_mtok_usd,
            };
            // The server's checks, so the entry is named here rather than by index there.
            let micro = |name: &str, usd: f64| Price::micro_usd_from_usd(name, usd);
            let price = Price {
                provider: entry.provider.clone(),
                model: entry.model.clone(),
                input_per_mtok_micro_usd: micro("input_per_mtok_usd", entry.input_per_mtok_usd)
                    .map_err(|e| ConfigError::from_validation(&format!("[{index}]"), e))?,
                output_per_mtok_micro_usd: micro("output_per_mtok_usd", entry.output_per_mtok_usd)
                    .map_err(|e| ConfigError::from_validation(&format!("[{index}]"), e))?,
                cached_input_per_mtok_micro_usd: entry
                    .cached_input_per_mtok_usd
                    .map(|usd| micro("cached_input_per_mtok_usd", usd))
                    .transpose()
                    .map_err(|e| ConfigError::from_validation(&format!("[{index}]"), e))?,
                effective_from: entry.effective_from,
                effective_to: entry.effective_to,
                updated_by: "bosun pricing set".into(),
                updated_at: entry.effective_from,
            };
            price.check().map_err(|e| ConfigError::from_validation(&format!("[{index}]"), e))?;
            Ok(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: &str = "\
- {provider: acme, model: acme-large, input_per_mtok_usd: 3.0, output_per_mtok_usd: 15.0,
   cached_input_per_mtok_usd: 0.3, effective_from: \"2026-01-01T00:00:00Z\"}
- provider: acme
  model: acme-small
  input_per_mtok_usd: 1
  output_per_mtok_usd: 5
  effective_from: 2026-01-01T00:00:00Z
  effective_to: 2027-01-01T00:00:00Z
";

    #[test]
    fn a_price_list_parses() {
        let prices = parse_price_list(ACME).expect("valid");
        assert_eq!(prices.len(), 2);
        assert_eq!(
            (prices[0].model.as_str(), prices[0].input_per_mtok_usd, prices[0].cached_input_per_mtok_usd),
            ("acme-large", 3.0, Some(0.3))
        );
        assert_eq!(prices[0].effective_from.to_string(), "2026-01-01T00:00:00.000000Z");
        assert_eq!((prices[1].output_per_mtok_usd, prices[1].cached_input_per_mtok_usd), (5.0, None));
        assert!(prices[1].effective_to.is_some());
    }

    #[test]
    fn mistakes_name_the_entry_and_key() {
        let cases = [
            (ACME.replace("model: acme-small", "model: acme-small\n  colour: red"), "[1].colour", "unknown key"),
            (
                ACME.replace("output_per_mtok_usd: 15.0", "output_per_mtok_usd: -15.0"),
                "[0].output_per_mtok_usd",
                "not a price",
            ),
            (
                ACME.replace("input_per_mtok_usd: 1\n", "input_per_mtok_usd: .nan\n"),
                "[1].input_per_mtok_usd",
                "not a price",
            ),
            (ACME.replace("2027-01-01", "2025-01-01"), "[1].effective_to", "not after"),
            (ACME.replace("\"2026-01-01T00:00:00Z\"", "yesterday"), "[0].effective_from", "RFC 3339"),
            (ACME.replace("  model: acme-small\n", ""), "[1]", "model"),
            ("[]".to_owned(), "prices", "empty"),
        ];
        for (text, key, problem) in cases {
            let error = parse_price_list(&text).unwrap_err().to_string();
            assert!(error.contains(key) && error.contains(problem), "{key}: {error}");
        }
    }
}
