//! `bosun pricing` and `bosun usage`: model prices per million tokens, and what AI agents'
//! LLM requests used and cost.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bosun_api::{convert, v1};
use bosun_core::Clock as _;
use buffa::MessageField;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::remote::{Remote, call};
use crate::output::{self, Table};
use crate::views::time_text;

#[derive(Debug, Args)]
pub struct PricingArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PricingCommand,
}

#[derive(Debug, Subcommand)]
enum PricingCommand {
    /// Store the prices in a YAML file, all of them or none (admin). A list of
    /// {provider, model, input_per_mtok_usd, output_per_mtok_usd, cached_input_per_mtok_usd,
    /// effective_from, effective_to}, in US dollars per million tokens.
    Set { file: PathBuf },
    /// Every stored price, or only those that have not ended (--current).
    List {
        /// Only the prices that have not ended now.
        #[arg(long)]
        current: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum By {
    Model,
    Provider,
    Run,
    Actor,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Model => "model",
            By::Provider => "provider",
            By::Run => "run",
            By::Actor => "actor",
        }
    }
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    remote: Remote,
    /// Requests since this long ago (30d, 12h) or this RFC 3339 time; default 30d.
    #[arg(long, value_name = "DURATION|TIME")]
    since: Option<String>,
    /// How to group the requests.
    #[arg(long, value_enum, default_value_t = By::Model)]
    by: By,
}

/// A price as printed.
#[derive(Debug, Serialize)]
struct PriceRow {
    provider: String,
    model: String,
    input_per_mtok_usd: f64,
    output_per_mtok_usd: f64,
    /// `null`: cached input costs as input.
    cached_input_per_mtok_usd: Option<f64>,
    effective_from: Option<String>,
    effective_to: Option<String>,
    updated_by: String,
    updated_at: Option<String>,
}

impl PriceRow {
    fn from_wire(p: &v1::Price) -> Self {
        PriceRow {
            provider: p.provider.clone(),
            model: p.model.clone(),
            input_per_mtok_usd: p.input_per_mtok_usd,
            output_per_mtok_usd: p.output_per_mtok_usd,
            cached_input_per_mtok_usd: p.cached_input_per_mtok_usd,
            effective_from: time_text(&p.effective_from),
            effective_to: time_text(&p.effective_to),
            updated_by: p.updated_by.clone(),
            updated_at: time_text(&p.updated_at),
        }
    }
}

fn price_table(rows: &[PriceRow]) -> String {
    let mut table = Table::new([
        "PROVIDER",
        "MODEL",
        "INPUT $/MTOK",
        "OUTPUT $/MTOK",
        "CACHED INPUT $/MTOK",
        "EFFECTIVE FROM",
        "TO",
    ]);
    for row in rows {
        table.row([
            row.provider.clone(),
            row.model.clone(),
            row.input_per_mtok_usd.to_string(),
            row.output_per_mtok_usd.to_string(),
            row.cached_input_per_mtok_usd.map_or_else(|| "as input".to_owned(), |usd| usd.to_string()),
            row.effective_from.clone().unwrap_or_else(|| "-".to_owned()),
            row.effective_to.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.render()
}

/// A usage summary row as printed: `provider`, `model` always (null when not grouped by
/// them), `run_id` or `actor` when grouped by them; `cost_usd` null when nothing was priced.
#[derive(Debug, Serialize)]
struct UsageRow {
    provider: Option<String>,
    model: Option<String>,
    /// Present when grouped by run; null for the requests made for no run.
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    requests: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    cost_usd: Option<f64>,
    unpriced_requests: u64,
    /// Exact, for the table; the JSON has `cost_usd`.
    #[serde(skip)]
    cost_micro_usd: Option<u64>,
}

impl UsageRow {
    fn from_wire(r: &v1::UsageRow, by: By) -> Self {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        UsageRow {
            provider: text(&r.provider),
            model: text(&r.model),
            run_id: (by == By::Run).then(|| text(&r.run_id).map_or(serde_json::Value::Null, serde_json::Value::String)),
            actor: if by == By::Actor { Some(r.actor.clone()) } else { None },
            requests: r.requests,
            input_tokens: r.input_tokens,
            cached_input_tokens: r.cached_input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            unpriced_requests: r.unpriced_requests,
            cost_micro_usd: r.cost_micro_usd,
        }
    }
}

/// Micro-USD as dollars, exactly: at least four decimals (`$0.0213`, `$12.5000`), more
/// when the amount needs them (`$0.000003`).
fn dollars(micro_usd: u64) -> String {
    let fraction = format!("{:06}", micro_usd % 1_000_000);
    let kept = fraction.trim_end_matches('0');
    let kept = if kept.len() < 4 { &fraction[..4] } else { kept };
    format!("${}.{kept}", micro_usd / 1_000_000)
}

fn usage_table(rows: &[UsageRow], by: By) -> String {
    let key = |row: &UsageRow| -> [String; 2] {
        let dash = || "-".to_owned();
        match by {
            By::Model => [row.provider.clone().unwrap_or_else(dash), row.model.clone().unwrap_or_else(dash)],
            By::Provider => [row.provider.clone().unwrap_or_else(dash), String::new()],
            By::Run => [row.run_id.as_ref().and_then(|v| v.as_str()).unwrap_or("(no run)").to_owned(), String::new()],
            By::Actor => [row.actor.clone().unwrap_or_else(dash), String::new()],
        }
    };
    let heading: [&str; 2] = match by {
        By::Model => ["PROVIDER", "MODEL"],
        By::Provider => ["PROVIDER", ""],
        By::Run => ["RUN", ""],
        By::Actor => ["ACTOR", ""],
    };
    let mut table =
        Table::new([heading[0], heading[1], "REQUESTS", "INPUT", "CACHED INPUT", "OUTPUT", "COST", "UNPRICED"]);
    for row in rows {
        let [first, second] = key(row);
        table.row([
            first,
            second,
            row.requests.to_string(),
            row.input_tokens.to_string(),
            row.cached_input_tokens.to_string(),
            row.output_tokens.to_string(),
            row.cost_micro_usd.map_or_else(|| "unknown".to_owned(), dollars),
            row.unpriced_requests.to_string(),
        ]);
    }
    table.render()
}

/// `--since`: a duration back from now (`30d`), or an RFC 3339 time.
fn since(text: &str) -> anyhow::Result<bosun_core::Timestamp> {
    if let Ok(ago) = bosun_config::duration::parse(text) {
        return Ok(bosun_core::SystemClock.now() - ago);
    }
    text.parse::<bosun_core::Timestamp>().map_err(|_| {
        anyhow::anyhow!("--since {text:?} is neither a duration (30d, 12h) nor an RFC 3339 time (2026-01-01T00:00:00Z)")
    })
}

pub async fn run_pricing(args: &PricingArgs) -> anyhow::Result<ExitCode> {
    let ops = args.remote.ops()?;
    let format = args.remote.output;
    let text = match &args.command {
        PricingCommand::Set { file } => {
            let text = super::read(file, "price list")?;
            let entries = bosun_config::pricing::parse_price_list(&text)
                .with_context(|| format!("the price list {}", file.display()))?;
            let prices = entries
                .iter()
                .map(|e| v1::Price {
                    provider: e.provider.clone(),
                    model: e.model.clone(),
                    input_per_mtok_usd: e.input_per_mtok_usd,
                    output_per_mtok_usd: e.output_per_mtok_usd,
                    cached_input_per_mtok_usd: e.cached_input_per_mtok_usd,
                    effective_from: MessageField::some(convert::timestamp(e.effective_from)),
                    effective_to: e
                        .effective_to
                        .map_or_else(MessageField::none, |to| MessageField::some(convert::timestamp(to))),
                    ..Default::default()
                })
                .collect();
            let set = call!(ops, set_pricing, v1::SetPricingRequest { prices, ..Default::default() });
            #[derive(Serialize)]
            struct Set {
                count: u32,
            }
            output::render(format, &Set { count: set.count }, || {
                format!("set {} price{}\n", set.count, if set.count == 1 { "" } else { "s" })
            })?
        }
        PricingCommand::List { current } => {
            let current_at = current.then(|| convert::timestamp(bosun_core::SystemClock.now()));
            let request = v1::ListPricingRequest {
                current_at: current_at.map_or_else(MessageField::none, MessageField::some),
                ..Default::default()
            };
            let listed = call!(ops, list_pricing, request);
            let rows: Vec<PriceRow> = listed.prices.iter().map(PriceRow::from_wire).collect();
            output::render(format, &rows, || price_table(&rows))?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub async fn run_usage(args: &UsageArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(since).transpose()?;
    let ops = args.remote.ops()?;
    let request = v1::SummarizeUsageRequest {
        since: since.map(convert::timestamp).map_or_else(MessageField::none, MessageField::some),
        by: args.by.name().to_owned(),
        ..Default::default()
    };
    let summary = call!(ops, summarize_usage, request);
    let rows: Vec<UsageRow> = summary.rows.iter().map(|r| UsageRow::from_wire(r, args.by)).collect();
    print!("{}", output::render(args.remote.output, &rows, || usage_table(&rows, args.by))?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_print_exactly_with_at_least_four_decimals() {
        assert_eq!(dollars(21_300), "$0.0213");
        assert_eq!(dollars(12_500_000), "$12.5000");
        assert_eq!(dollars(3), "$0.000003");
        assert_eq!(dollars(0), "$0.0000");
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert!(since("30d").is_ok());
        assert_eq!(since("2026-01-01T00:00:00Z").expect("a time").to_string(), "2026-01-01T00:00:00.000000Z");
        let message = since("last tuesday").unwrap_err().to_string();
        assert!(message.contains("--since"), "{message}");
    }
}
