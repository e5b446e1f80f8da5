//! `bosun policy check (FILE | --default) [--events EVENTS] [-o json]`: the library half.
//!
//! The CLI loads the policy ([`Policy::from_yaml`] or [`Policy::builtin`]), reads sample
//! events with [`parse_events`], classifies them with [`Policy::classify_all`] and prints
//! [`render_table`] or [`render_json`] on stdout and [`render_errors`] on stderr. Without
//! events, [`render_rules`] shows what was loaded.

use std::collections::BTreeMap;
use std::fmt;

use bosun_core::xid::XidCatalog;
use bosun_core::{ClassifiedEvent, EventType, Health, HealthEvent, HealthSystem, Timestamp, ValidationError};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{DocumentKind, PolicyError};
use crate::policy::Policy;
use crate::strict;

/// One event as written in an events file. Only `event_type` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an event: a map with at least `event_type`")]
struct EventInput {
    #[serde(deserialize_with = "event_type")]
    event_type: EventType,
    #[serde(default = "unknown_system", deserialize_with = "system")]
    system: HealthSystem,
    /// Defaults to -1, the node as a whole.
    #[serde(default = "node_level")]
    gpu_index: i32,
    #[serde(default)]
    gpu_uuid: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    metrics: BTreeMap<String, MetricText>,
    /// RFC 3339; defaults to the time the file is read.
    #[serde(default)]
    timestamp: Option<Timestamp>,
}

/// Reads an events file: a YAML or JSON list of events with the keys `event_type`,
/// `system`, `gpu_index`, `gpu_uuid`, `message`, `metrics` and `timestamp`.
///
/// `event_type` and `system` accept their names in any case, and `system` its short form
/// (`MEM` for `DCGM_HEALTH_WATCH_MEM`). Metric values may be strings, numbers or bools and
/// become text as on the wire. Events without a `timestamp` get `now`. Unknown keys and
/// invalid values are errors naming their path, e.g. `events[2].system`.
pub fn parse_events(text: &str, now: Timestamp) -> Result<Vec<HealthEvent>, PolicyError> {
    let inputs: Vec<EventInput> = strict::from_yaml(text, DocumentKind::Events, "events")?;
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let event = HealthEvent {
                timestamp: input.timestamp.unwrap_or(now),
                gpu_index: input.gpu_index,
                gpu_uuid: input.gpu_uuid,
                system: input.system,
                event_type: input.event_type,
                metrics: input.metrics.into_iter().map(|(key, value)| (key, value.0)).collect(),
                message: input.message,
            };
            event.validate().map(|()| event).map_err(|error| {
                let error = error.within(&format!("events[{index}]"));
                PolicyError::Document { document: DocumentKind::Events, path: error.field, problem: error.problem }
            })
        })
        .collect()
}

/// A table with one row per event: number (from 1), type, GPU, result, action, rule, errors.
pub fn render_table(events: &[ClassifiedEvent]) -> String {
    let rows = events.iter().enumerate().map(|(index, classified)| {
        let ClassifiedEvent { event, verdict } = classified;
        [
            (index + 1).to_string(),
            event.event_type.to_string(),
            if event.gpu_index < 0 { "node".to_owned() } else { event.gpu_index.to_string() },
            result_word(verdict.health).to_owned(),
            verdict.action.to_string(),
            verdict.rule.clone().unwrap_or_else(|| "-".to_owned()),
            if verdict.errors.is_empty() { "-".to_owned() } else { verdict.errors.join("; ") },
        ]
    });
    table(["#", "TYPE", "GPU", "RESULT", "ACTION", "RULE", "ERRORS"], rows)
}

/// The rules of `policy`, in evaluation order: number, name, result, action, condition.
pub fn render_rules(policy: &Policy) -> String {
    let rows = policy.rules().iter().enumerate().map(|(index, rule)| {
        [
            (index + 1).to_string(),
            rule.name().to_owned(),
            result_word(rule.result()).to_owned(),
            rule.action().to_string(),
            rule.condition().split_whitespace().collect::<Vec<_>>().join(" "),
        ]
    });
    table(["#", "RULE", "RESULT", "ACTION", "CONDITION"], rows)
}

/// The XID catalog `policy` classifies with (`bosun policy xids`): code, action, whether a
/// hardware fault, name, source.
pub fn render_xids(catalog: &XidCatalog) -> String {
    let rows = catalog.entries().map(|xid| {
        [
            xid.code.to_string(),
            xid.action.to_string(),
            if xid.hardware { "yes" } else { "no" }.to_owned(),
            xid.name.clone(),
            xid.source.clone(),
        ]
    });
    table(["XID", "ACTION", "HARDWARE", "NAME", "SOURCE"], rows)
}

/// The catalog as JSON: `{"version": ..., "xids": [{code, name, action, hardware, source}]}`.
pub fn render_xids_json(catalog: &XidCatalog) -> String {
    #[derive(Serialize)]
    struct Catalog<'a> {
        version: &'a str,
        xids: Vec<&'a bosun_core::xid::Xid>,
    }
    let catalog = Catalog { version: catalog.version(), xids: catalog.entries().collect() };
    // Strings, numbers and bools always serialize.
    serde_json::to_string_pretty(&catalog).unwrap_or_default()
}

/// A JSON array with one object per event, in input order:
/// `{"result": "healthy" | "degraded" | "unhealthy", "action": ACTION, "rule": NAME | null}`.
///
/// Rule errors are deliberately left out, so scripts can rely on this exact shape; they
/// belong on stderr ([`render_errors`]).
pub fn render_json(events: &[ClassifiedEvent]) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        result: &'static str,
        action: &'static str,
        rule: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = events
        .iter()
        .map(|classified| Row {
            result: result_word(classified.verdict.health),
            action: classified.verdict.action.as_str(),
            rule: classified.verdict.rule.as_deref(),
        })
        .collect();
    // A list of static strings and string slices always serializes.
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

/// One line per rule error, `event N: rule "NAME": problem`, for stderr; empty when every
/// rule evaluated cleanly.
pub fn render_errors(events: &[ClassifiedEvent]) -> String {
    events
        .iter()
        .enumerate()
        .flat_map(|(index, classified)| {
            classified.verdict.errors.iter().map(move |error| format!("event {}: {error}\n", index + 1))
        })
        .collect()
}

/// A verdict in the policy file's vocabulary: `healthy`, `degraded`, `unhealthy`. Rules
/// never give `UNKNOWN`; were one to appear it counts as healthy, as in every worst-of.
fn result_word(health: Health) -> &'static str {
    match health {
        Health::Degraded => "degraded",
        Health::Unhealthy => "unhealthy",
        Health::Healthy | Health::Unknown => "healthy",
    }
}

/// Left-aligned columns two spaces apart, header first, no trailing spaces.
fn table<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = std::iter::once(header.map(str::to_owned)).chain(rows).collect();
    let mut widths = [0; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column + 1 < N {
                line.push_str(&format!("{cell:<width$}  "));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn event_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<EventType, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse().map_err(|error: ValidationError| de::Error::custom(error.problem))
}

fn system<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HealthSystem, D::Error> {
    const PREFIX: &str = "DCGM_HEALTH_WATCH_";
    let name = String::deserialize(deserializer)?;
    let full = match name.get(..PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => name.clone(),
        _ => format!("{PREFIX}{name}"),
    };
    full.parse().map_err(|_| {
        let short: Vec<&str> = HealthSystem::ALL
            .iter()
            .map(|system| system.as_str().strip_prefix(PREFIX).unwrap_or(system.as_str()))
            .collect();
        de::Error::custom(format_args!(
            "{name:?} is not a system; use one of {} (or DCGM_HEALTH_WATCH_...)",
            short.join(", ")
        ))
    })
}

fn unknown_system() -> HealthSystem {
    HealthSystem::Unknown
}

fn node_level() -> i32 {
    -1
}

/// A metric value written as a string, number or bool, kept as the text the wire carries.
#[derive(Debug)]
struct MetricText(String);

impl<'de> Deserialize<'de> for MetricText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MetricTextVisitor)
    }
}

struct MetricTextVisitor;

impl Visitor<'_> for MetricTextVisitor {
    type Value = MetricText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or bool")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<MetricText, E> {
        Ok(MetricText(value.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<MetricText, E> {
        Ok(MetricText(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<MetricText, E> {
        Ok(MetricText(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<MetricText, E> {
        Ok(MetricText(value.to_string()))
    }

    /// `{:?}` keeps a fractional part (`95.0`, not `95`), so a double stays a double.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<MetricText, E> {
        Ok(MetricText(format!("{value:?}")))
    }
}
