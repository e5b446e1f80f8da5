//! LLM prices and usage on the wire (OpsService's RecordLlmUsage, SetPricing, ListPricing,
//! SummarizeUsage).
//!
//! The wire speaks US dollars (`double`) because callers think in them; the store keeps
//! micro-USD integers so sums are exact. Prices coming in are converted once, here, with
//! [`Price::micro_usd_from_usd`]; costs going out carry both the dollars and the exact
//! micro-USD.

use bosun_core::usage::MICRO_USD_PER_USD;
use bosun_core::{Price, Timestamp, UsageKey, UsageRow, ValidationError};

use crate::convert::{from_timestamp, opt_stamp, stamp};
use crate::v1;

/// Micro-USD as US dollars, for display (sums are made in micro-USD).
pub fn usd(micro_usd: u64) -> f64 {
    micro_usd as f64 / MICRO_USD_PER_USD as f64
}

pub fn price(p: &Price) -> v1::Price {
    v1::Price {
        provider: p.provider.clone(),
        model: p.model.clone(),
        input_per_mtok_usd: usd(p.input_per_mtok_micro_usd),
        output_per_mtok_usd: usd(p.output_per_mtok_micro_usd),
        cached_input_per_mtok_usd: p.cached_input_per_mtok_micro_usd.map(usd),
        effective_from: stamp(p.effective_from),
        effective_to: opt_stamp(p.effective_to),
        updated_by: p.updated_by.clone(),
        updated_at: stamp(p.updated_at),
        ..Default::default()
    }
}

/// A price a caller sent, as `prices[index]`, attributed to `updated_by`; every field is
/// checked and a bad one named (`prices[2].input_per_mtok_usd`). The store stamps
/// `updated_at`.
pub fn price_from_wire(index: usize, p: &v1::Price, updated_by: &str) -> Result<Price, ValidationError> {
    let field = |name: &str| format!("prices[{index}].{name}");
    let money = |name: &str, value: f64| Price::micro_usd_from_usd(&field(name), value);
    let effective_from = match p.effective_from.as_option() {
        Some(at) => from_timestamp(&field("effective_from"), at)?,
        None => return Err(ValidationError::new(field("effective_from"), "is required")),
    };
    let effective_to = p.effective_to.as_option().map(|at| from_timestamp(&field("effective_to"), at)).transpose()?;
    let price = Price {
        provider: p.provider.clone(),
        model: p.model.clone(),
        input_per_mtok_micro_usd: money("input_per_mtok_usd", p.input_per_mtok_usd)?,
        output_per_mtok_micro_usd: money("output_per_mtok_usd", p.output_per_mtok_usd)?,
        cached_input_per_mtok_micro_usd: p
            .cached_input_per_mtok_usd
            .map(|value| money("cached_input_per_mtok_usd", value))
            .transpose()?,
        effective_from,
        effective_to,
        updated_by: updated_by.to_owned(),
        updated_at: Timestamp::UNIX_EPOCH,
    };
    // Price::check names its own fields (`model`, `effective_to`); put them under the entry.
    price.check().map_err(|e| ValidationError::new(field(&e.field), e.problem))?;
    Ok(price)
}

pub fn usage_row(r: &UsageRow) -> v1::UsageRow {
    let mut row = v1::UsageRow {
        requests: r.requests,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cached_input_tokens: r.cached_input_tokens,
        cost_usd: r.cost_micro_usd.map(usd),
        cost_micro_usd: r.cost_micro_usd,
        unpriced_requests: r.unpriced_requests,
        ..Default::default()
    };
    match &r.key {
        UsageKey::Model { provider, model } => {
            row.provider = provider.clone();
            row.model = model.clone();
        }
        UsageKey::Provider { provider } => row.provider = provider.clone(),
        UsageKey::Run { run_id } => row.run_id = run_id.map(|id| id.to_string()).unwrap_or_default(),
        UsageKey::Actor { actor } => row.actor = actor.clone(),
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> v1::Price {
        v1::Price {
            provider: "acme".into(),
            model: "acme-large".into(),
            input_per_mtok_usd: 3.0,
            output_per_mtok_usd: 15.0,
            cached_input_per_mtok_usd: Some(0.3),
            effective_from: stamp(Timestamp::from_unix_micros(1_767_225_600_000_000)),
            ..Default::default()
        }
    }

    #[test]
    fn prices_round_trip_in_dollars() {
        let price = price_from_wire(0, &wire(), "root").expect("valid");
        assert_eq!(
            (price.input_per_mtok_micro_usd, price.output_per_mtok_micro_usd, price.cached_input_per_mtok_micro_usd),
            (3_000_000, 15_000_000, Some(300_000))
        );
        let back = super::price(&price);
        assert_eq!((back.input_per_mtok_usd, back.cached_input_per_mtok_usd), (3.0, Some(0.3)));
    }

    /// A way to spoil a price, and the field its error must name.
    type Spoil = (fn(&mut v1::Price), &'static str);

    #[test]
    fn bad_prices_name_the_entry_and_field() {
        let cases: [Spoil; 6] = [
            (|p| p.input_per_mtok_usd = -1.0, "prices[3].input_per_mtok_usd"),
            (|p| p.output_per_mtok_usd = f64::NAN, "prices[3].output_per_mtok_usd"),
            (|p| p.cached_input_per_mtok_usd = Some(f64::INFINITY), "prices[3].cached_input_per_mtok_usd"),
            (|p| p.effective_from = Default::default(), "prices[3].effective_from"),
            (|p| p.effective_to = p.effective_from.clone(), "prices[3].effective_to"),
            (|p| p.model.clear(), "prices[3].model"),
        ];
        for (spoil, field) in cases {
            let mut p = wire();
            spoil(&mut p);
            assert_eq!(price_from_wire(3, &p, "root").unwrap_err().field, field);
        }
    }
}
