//! `bosun policy check (FILE | --default) [--events EVENTS] [-o json]`: the library half.
//!
//! The CLI loads the policy ([`Policy::from_yaml`] or [`Policy::builtin`]), reads sample
//! events with [`parse_events`], classifies them with [`Policy::classify_all`] and prints
//! [`event_rows`] as a table or [`render_json`] on stdout and [`render_errors`] on stderr.
//! Without events, [`rule_rows`] shows what was loaded. Tables are laid out by the CLI.

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

/// Rows of a listing: a header and cells, for the CLI to lay out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows<const N: usize> {
    pub header: [&'static str; N],
    pub rows: Vec<[String; N]>,
}

/// One row per event: number (from 1), type, GPU, result, action, rule, errors.
pub fn event_rows(events: &[ClassifiedEvent]) -> Rows<7> {
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
    Rows { header: ["#", "TYPE", "GPU", "RESULT", "ACTION", "RULE", "ERRORS"], rows: rows.collect() }
}

/// The rules of `policy`, in evaluation order: number, name, result, action, condition.
pub fn rule_rows(policy: &Policy) -> Rows<5> {
    let rows = policy.rules().iter().enumerate().map(|(index, rule)| {
        [
            (index + 1).to_string(),
            rule.name().to_owned(),
            result_word(rule.result()).to_owned(),
            rule.action().to_string(),
            rule.condition().split_whitespace().collect::<Vec<_>>().join(" "),
        ]
    });
    Rows { header: ["#", "RULE", "RESULT", "ACTION", "CONDITION"], rows: rows.collect() }
}

/// The XID catalog `policy` classifies with (`bosun policy xids`): code, action, whether a
/// hardware fault, name, source.
pub fn xid_rows(catalog: &XidCatalog) -> Rows<5> {
    let rows = catalog.entries().map(|xid| {
        [
            xid.code.to_string(),
            xid.action.to_string(),
            if xid.hardware { "yes" } else { "no" }.to_owned(),
            xid.name.clone(),
            xid.source.clone(),
        ]
    });
    Rows { header: ["XID", "ACTION", "HARDWARE", "NAME", "SOURCE"], rows: rows.collect() }
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

/// A JSON array with one object per event, in input order: the event as read (`event`:
/// `event_type`, `gpu_index` (null for the node), `gpu_uuid`, `system`, `metrics`,
/// `message`) and its verdict (`result`: `healthy` | `degraded` |
/// `unhealthy`, `action`, `rule`: NAME | null).
///
/// Rule errors are deliberately left out, so scripts can rely on this exact shape; they
/// belong on stderr ([`render_errors`]).
pub fn render_json(events: &[ClassifiedEvent]) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        event_type: String,
        gpu_index: Option<i32>,
        gpu_uuid: &'a str,
        system: String,
        metrics: &'a BTreeMap<String, String>,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Row<'a> {
        event: Event<'a>,
        result: &'static str,
        action: &'static str,
        rule: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = events
        .iter()
        .map(|ClassifiedEvent { event, verdict }| Row {
            event: Event {
                event_type: event.event_type.to_string(),
                gpu_index: (event.gpu_index >= 0).then_some(event.gpu_index),
                gpu_uuid: &event.gpu_uuid,
                system: event.system.to_string(),
                metrics: &event.metrics,
                message: &event.message,
            },
            result: result_word(verdict.health),
            action: verdict.action.as_str(),
            rule: verdict.rule.as_deref(),
        })
        .collect();
    // Strings, numbers and string maps always serialize.
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
