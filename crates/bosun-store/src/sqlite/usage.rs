//! LLM usage, prices and settings on SQLite: reads (on a reader, or the writer inside a
//! commit) and the row operations behind `Transaction`'s usage methods.

use bosun_core::{LlmUsage, LlmUsageId, Price, Revision, Setting, Timestamp, UsageFilter, UsageRow};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};

use super::micros;
use super::read::{collect, one, text};
use crate::apply::Insert;
use crate::error::Result;
use crate::sql::{to_json, unsigned};
use crate::usage::{PriceRow, SummaryRow, UsageRecordRow, group_columns};

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn price_row(row: &Row<'_>) -> Result<Price> {
    PriceRow::<i64> {
        provider: row.get(0)?,
        model: row.get(1)?,
        input_per_mtok_micro_usd: row.get(2)?,
        output_per_mtok_micro_usd: row.get(3)?,
        cached_input_per_mtok_micro_usd: row.get(4)?,
        effective_from: row.get(5)?,
        effective_to: row.get(6)?,
        updated_by: row.get(7)?,
        updated_at: row.get(8)?,
    }
    .into_price()
}

fn prices(conn: &Connection, condition: &str, params: &[Value]) -> Result<Vec<Price>> {
    let sql = format!(
        "SELECT {} FROM provider_pricing WHERE {condition} ORDER BY provider, model, effective_from",
        PriceRow::COLUMNS
    );
    collect(conn, &sql, params, price_row)
}

pub(super) fn pricing(conn: &Connection, current_at: Option<Timestamp>) -> Result<Vec<Price>> {
    match current_at {
        None => prices(conn, "1 = 1", &[]),
        Some(at) => prices(conn, "effective_to IS NULL OR effective_to > ?1", &[Value::Integer(micros(at))]),
    }
}

fn model_price(
    conn: &Connection,
    condition: &str,
    provider: &str,
    model: &str,
    at: Option<Timestamp>,
) -> Result<Option<Price>> {
    let sql = format!(
        "SELECT {} FROM provider_pricing WHERE provider = ?1 AND model = ?2 AND {condition} \
         ORDER BY effective_from DESC LIMIT 1",
        PriceRow::COLUMNS
    );
    let mut params = vec![text(provider), text(model)];
    if let Some(at) = at {
        params.push(Value::Integer(micros(at)));
    }
    one(conn, &sql, &params, price_row)
}

pub(super) fn open_price(conn: &Connection, provider: &str, model: &str) -> Result<Option<Price>> {
    model_price(conn, "effective_to IS NULL", provider, model, None)
}

pub(super) fn price_at(conn: &Connection, provider: &str, model: &str, at: Timestamp) -> Result<Option<Price>> {
    model_price(conn, "effective_from <= ?3 AND (effective_to IS NULL OR ?3 < effective_to)", provider, model, Some(at))
}

pub(super) fn put_price(conn: &Connection, p: &Price) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO provider_pricing (provider, model, input_per_mtok_micro_usd, output_per_mtok_micro_usd, \
         cached_input_per_mtok_micro_usd, effective_from, effective_to, updated_by, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (provider, model, effective_from) DO UPDATE SET \
         input_per_mtok_micro_usd = excluded.input_per_mtok_micro_usd, \
         output_per_mtok_micro_usd = excluded.output_per_mtok_micro_usd, \
         cached_input_per_mtok_micro_usd = excluded.cached_input_per_mtok_micro_usd, \
         effective_to = excluded.effective_to, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.provider,
        p.model,
        int(p.input_per_mtok_micro_usd),
        int(p.output_per_mtok_micro_usd),
        p.cached_input_per_mtok_micro_usd.map(int),
        micros(p.effective_from),
        p.effective_to.map(micros),
        p.updated_by,
        micros(p.updated_at)
    ])?;
    Ok(())
}

/// Inserts a price as it is (a load): the same key twice is refused.
pub(super) fn insert_price(conn: &Connection, p: &Price) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO provider_pricing (provider, model, input_per_mtok_micro_usd, output_per_mtok_micro_usd, \
         cached_input_per_mtok_micro_usd, effective_from, effective_to, updated_by, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        p.provider,
        p.model,
        int(p.input_per_mtok_micro_usd),
        int(p.output_per_mtok_micro_usd),
        p.cached_input_per_mtok_micro_usd.map(int),
        micros(p.effective_from),
        p.effective_to.map(micros),
        p.updated_by,
        micros(p.updated_at)
    ])
}

pub(super) fn close_price(conn: &Connection, p: &Price, to: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE provider_pricing SET effective_to = ?4 WHERE provider = ?1 AND model = ?2 AND effective_from = ?3",
    )?
    .execute(params![p.provider, p.model, micros(p.effective_from), micros(to)])?;
    Ok(())
}

/// Inserts the request first: a taken id or provider request id stops there.
pub(super) fn insert_llm_usage(conn: &Connection, u: &LlmUsage) -> Result<Insert> {
    let inserted = super::commit::insert(
        conn.prepare_cached(
            "INSERT INTO llm_requests (id, run_id, actor, provider, model, request_id, prompt, prompt_truncated, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            u.id.to_string(),
            u.run_id.map(|r| r.to_string()),
            u.actor,
            u.provider,
            u.model,
            u.request_id,
            u.prompt.as_ref().map(|p| p.text.as_str()),
            u.prompt.as_ref().is_some_and(|p| p.truncated),
            micros(u.at)
        ]),
    )?;
    if inserted == Insert::KeyTaken {
        return Ok(inserted);
    }
    conn.prepare_cached(
        "INSERT INTO llm_responses (request, response, response_truncated, latency_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        u.id.to_string(),
        u.response.as_ref().map(|r| r.text.as_str()),
        u.response.as_ref().is_some_and(|r| r.truncated),
        u.latency_ms.map(int)
    ])?;
    conn.prepare_cached(
        "INSERT INTO token_usage (request, run_id, actor, provider, model, input_tokens, output_tokens, \
         cached_input_tokens, cost_micro_usd, priced_at, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        u.id.to_string(),
        u.run_id.map(|r| r.to_string()),
        u.actor,
        u.provider,
        u.model,
        int(u.input_tokens),
        int(u.output_tokens),
        int(u.cached_input_tokens),
        u.cost.map(|c| int(c.micro_usd)),
        u.cost.map(|c| micros(c.price_from)),
        micros(u.at)
    ])?;
    Ok(Insert::Done)
}

/// A usage record's columns, from its request (`q`), response (`a`) and token usage (`u`).
pub(super) const USAGE_SELECT: &str = "SELECT q.id, q.run_id, q.actor, q.provider, q.model, q.request_id, q.prompt, \
     q.prompt_truncated, q.at, a.response, a.response_truncated, a.latency_ms, u.input_tokens, u.output_tokens, \
     u.cached_input_tokens, u.cost_micro_usd, u.priced_at \
     FROM llm_requests q JOIN llm_responses a ON a.request = q.id JOIN token_usage u ON u.request = q.id";

/// A row of [`USAGE_SELECT`].
pub(super) fn usage_row(row: &Row<'_>) -> Result<LlmUsage> {
    UsageRecordRow::<i64> {
        id: row.get(0)?,
        run_id: row.get(1)?,
        actor: row.get(2)?,
        provider: row.get(3)?,
        model: row.get(4)?,
        request_id: row.get(5)?,
        prompt: row.get(6)?,
        prompt_truncated: row.get(7)?,
        at: row.get(8)?,
        response: row.get(9)?,
        response_truncated: row.get(10)?,
        latency_ms: row.get(11)?,
        input_tokens: row.get(12)?,
        output_tokens: row.get(13)?,
        cached_input_tokens: row.get(14)?,
        cost_micro_usd: row.get(15)?,
        priced_at: row.get(16)?,
    }
    .into_usage()
}

pub(super) fn llm_usage(conn: &Connection, id: &LlmUsageId) -> Result<Option<LlmUsage>> {
    one(conn, &format!("{USAGE_SELECT} WHERE q.id = ?1"), &[text(id.to_string())], usage_row)
}

pub(super) fn usage_summary(conn: &Connection, filter: &UsageFilter) -> Result<Vec<UsageRow>> {
    let (selected, grouped) = group_columns(filter.by);
    let sql = format!(
        "SELECT {selected}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), \
         SUM(cost_micro_usd), SUM(cost_micro_usd IS NULL) FROM token_usage WHERE at >= ?1 \
         GROUP BY {grouped} ORDER BY {grouped}"
    );
    collect(conn, &sql, &[Value::Integer(micros(filter.since))], |row| {
        SummaryRow {
            provider: row.get(0)?,
            model: row.get(1)?,
            run_id: row.get(2)?,
            actor: row.get(3)?,
            requests: row.get(4)?,
            input_tokens: row.get(5)?,
            output_tokens: row.get(6)?,
            cached_input_tokens: row.get(7)?,
            cost_micro_usd: row.get(8)?,
            unpriced_requests: row.get(9)?,
        }
        .into_row(filter.by)
    })
}

pub(super) fn setting_row(row: &Row<'_>) -> Result<Setting> {
    let value: String = row.get(1)?;
    Ok(Setting {
        name: row.get(0)?,
        value: parse_json(&value)?,
        updated_by: row.get(2)?,
        updated_at: Timestamp::from_unix_micros(row.get(3)?),
        revision: Revision::new(unsigned("control_settings.revision", row.get::<_, i64>(4)?)?)
            .ok_or_else(|| crate::StoreError::corrupt("control_settings.revision", "revision 0"))?,
    })
}

fn parse_json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::corrupt("control_settings.value", e))
}

pub(super) fn setting(conn: &Connection, name: &str) -> Result<Option<Setting>> {
    one(
        conn,
        "SELECT name, value, updated_by, updated_at, revision FROM control_settings WHERE name = ?1",
        &[text(name)],
        setting_row,
    )
}

pub(super) const INSERT_SETTING: &str =
    "INSERT INTO control_settings (name, value, updated_by, updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const UPDATE_SETTING: &str =
    "UPDATE control_settings SET value = ?2, updated_by = ?3, updated_at = ?4, revision = ?5 WHERE name = ?1";

pub(super) fn write_setting(conn: &Connection, sql: &str, s: &Setting) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        s.name,
        to_json(&s.value),
        s.updated_by,
        micros(s.updated_at),
        int(s.revision.get())
    ])
}
