//! LLM usage, prices and settings on PostgreSQL: queries shared by the store's reads (on
//! the pool) and the row operations behind `Transaction`'s usage methods (in a transaction,
//! where reads lock their row with `FOR UPDATE`).

use bosun_core::{LlmUsage, LlmUsageId, Price, Revision, Setting, Timestamp, UsageFilter, UsageGroup, UsageRow};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::types::Json;
use sqlx::{Executor, Postgres};

use super::time;
use crate::error::{Result, StoreError};
use crate::sql::{SlowLog, map_err, unsigned};
use crate::usage::{PriceRow, SummaryRow, UsageRecordRow};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
type Time = DateTime<Utc>;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn lock_clause(lock: bool) -> &'static str {
    if lock { " FOR UPDATE" } else { "" }
}

pub(super) async fn pricing<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    current_at: Option<Timestamp>,
) -> Result<Vec<Price>> {
    let sql = format!(
        "SELECT {} FROM provider_pricing WHERE $1::timestamptz IS NULL OR effective_to IS NULL OR effective_to > $1 \
         ORDER BY provider, model, effective_from",
        PriceRow::COLUMNS
    );
    let rows: Vec<PriceRow<Time>> = slow
        .run(
            "provider_pricing.list",
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(current_at.map(time)).fetch_all(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(PriceRow::into_price).collect()
}

/// The model's price matching `condition` with the latest start (`$3`: the time, when
/// the condition names one).
pub(super) async fn model_price<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    condition: &str,
    provider: &str,
    model: &str,
    at: Option<Timestamp>,
) -> Result<Option<Price>> {
    let sql = format!(
        "SELECT {} FROM provider_pricing WHERE provider = $1 AND model = $2 AND {condition} \
         ORDER BY effective_from DESC LIMIT 1",
        PriceRow::COLUMNS
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(provider.to_owned()).bind(model.to_owned());
    if let Some(at) = at {
        query = query.bind(time(at));
    }
    let row: Option<PriceRow<Time>> =
        slow.run("provider_pricing.get", query.fetch_optional(executor)).await.map_err(|e| map_err(e, None))?;
    row.map(PriceRow::into_price).transpose()
}

/// Holds a lock on (provider, model) until the transaction ends.
pub(super) async fn lock_model<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    provider: &str,
    model: &str,
) -> Result<()> {
    slow.run(
        "provider_pricing.lock",
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bosun.price/' || $1 || '/' || $2, 0))")
            .bind(provider.to_owned())
            .bind(model.to_owned())
            .execute(executor),
    )
    .await
    .map_err(|e| map_err(e, None))?;
    Ok(())
}

pub(super) const OPEN: &str = "effective_to IS NULL";
pub(super) const IN_EFFECT: &str = "effective_from <= $3 AND (effective_to IS NULL OR $3 < effective_to)";

pub(super) fn put_price(p: &Price) -> Query<'static> {
    sqlx::query(
        "INSERT INTO provider_pricing (provider, model, input_per_mtok_micro_usd, output_per_mtok_micro_usd, \
         cached_input_per_mtok_micro_usd, effective_from, effective_to, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (provider, model, effective_from) DO UPDATE SET \
         input_per_mtok_micro_usd = excluded.input_per_mtok_micro_usd, \
         output_per_mtok_micro_usd = excluded.output_per_mtok_micro_usd, \
         cached_input_per_mtok_micro_usd = excluded.cached_input_per_mtok_micro_usd, \
         effective_to = excluded.effective_to, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(p.provider.clone())
    .bind(p.model.clone())
    .bind(int(p.input_per_mtok_micro_usd))
    .bind(int(p.output_per_mtok_micro_usd))
    .bind(p.cached_input_per_mtok_micro_usd.map(int))
    .bind(time(p.effective_from))
    .bind(p.effective_to.map(time))
    .bind(p.updated_by.clone())
    .bind(time(p.updated_at))
}

pub(super) fn close_price(p: &Price, to: Timestamp) -> Query<'static> {
    sqlx::query(
        "UPDATE provider_pricing SET effective_to = $4 WHERE provider = $1 AND model = $2 AND effective_from = $3",
    )
    .bind(p.provider.clone())
    .bind(p.model.clone())
    .bind(time(p.effective_from))
    .bind(time(to))
}

pub(super) fn insert_request(u: &LlmUsage) -> Query<'static> {
    sqlx::query(
        "INSERT INTO llm_requests (id, run_id, actor, provider, model, request_id, prompt, prompt_truncated, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(u.id.as_uuid())
    .bind(u.run_id.map(|r| r.as_uuid()))
    .bind(u.actor.clone())
    .bind(u.provider.clone())
    .bind(u.model.clone())
    .bind(u.request_id.clone())
    .bind(u.prompt.as_ref().map(|p| p.text.clone()))
    .bind(u.prompt.as_ref().is_some_and(|p| p.truncated))
    .bind(time(u.at))
}

pub(super) fn insert_response(u: &LlmUsage) -> Query<'static> {
    sqlx::query("INSERT INTO llm_responses (request, response, response_truncated, latency_ms) VALUES ($1, $2, $3, $4)")
        .bind(u.id.as_uuid())
        .bind(u.response.as_ref().map(|r| r.text.clone()))
        .bind(u.response.as_ref().is_some_and(|r| r.truncated))
        .bind(u.latency_ms.map(int))
}

pub(super) fn insert_token_usage(u: &LlmUsage) -> Query<'static> {
    sqlx::query(
        "INSERT INTO token_usage (request, run_id, actor, provider, model, input_tokens, output_tokens, \
         cached_input_tokens, cost_micro_usd, priced_at, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(u.id.as_uuid())
    .bind(u.run_id.map(|r| r.as_uuid()))
    .bind(u.actor.clone())
    .bind(u.provider.clone())
    .bind(u.model.clone())
    .bind(int(u.input_tokens))
    .bind(int(u.output_tokens))
    .bind(int(u.cached_input_tokens))
    .bind(u.cost.map(|c| int(c.micro_usd)))
    .bind(u.cost.map(|c| time(c.price_from)))
    .bind(time(u.at))
}

/// A usage record's columns (those of `UsageRecordRow`, the id first), from its request
/// (`q`), response (`a`) and token usage (`u`).
macro_rules! usage_select {
    () => {
        "SELECT q.id::text AS id, q.run_id::text AS run_id, q.actor, q.provider, q.model, q.request_id, \
         q.prompt, q.prompt_truncated, q.at, a.response, a.response_truncated, a.latency_ms, \
         u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cost_micro_usd, u.priced_at \
         FROM llm_requests q JOIN llm_responses a ON a.request = q.id JOIN token_usage u ON u.request = q.id"
    };
}
pub(super) use usage_select;

pub(super) async fn llm_usage<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &LlmUsageId,
) -> Result<Option<LlmUsage>> {
    let row: Option<UsageRecordRow<Time>> = slow
        .run(
            "llm_requests.get",
            sqlx::query_as(concat!(usage_select!(), " WHERE q.id = $1")).bind(id.as_uuid()).fetch_optional(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(UsageRecordRow::into_usage).transpose()
}

pub(super) async fn usage_summary<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    filter: &UsageFilter,
) -> Result<Vec<UsageRow>> {
    let (selected, grouped) = match filter.by {
        UsageGroup::Model => ("provider, model, NULL::text AS run_id, NULL::text AS actor", "provider, model"),
        UsageGroup::Provider => {
            ("provider, NULL::text AS model, NULL::text AS run_id, NULL::text AS actor", "provider")
        }
        UsageGroup::Run => {
            ("NULL::text AS provider, NULL::text AS model, run_id::text AS run_id, NULL::text AS actor", "run_id")
        }
        UsageGroup::Actor => ("NULL::text AS provider, NULL::text AS model, NULL::text AS run_id, actor", "actor"),
    };
    let sql = format!(
        "SELECT {selected}, COUNT(*) AS requests, SUM(input_tokens)::int8 AS input_tokens, \
         SUM(output_tokens)::int8 AS output_tokens, SUM(cached_input_tokens)::int8 AS cached_input_tokens, \
         SUM(cost_micro_usd)::int8 AS cost_micro_usd, \
         COUNT(*) FILTER (WHERE cost_micro_usd IS NULL) AS unpriced_requests \
         FROM token_usage WHERE at >= $1 GROUP BY {grouped} ORDER BY {grouped} NULLS FIRST"
    );
    let rows: Vec<SummaryRow> = slow
        .run(
            "token_usage.summary",
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(time(filter.since)).fetch_all(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(|row| row.into_row(filter.by)).collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct SettingRow {
    name: String,
    value: Json<serde_json::Value>,
    updated_by: String,
    updated_at: Time,
    revision: i64,
}

impl SettingRow {
    pub(super) fn into_setting(self) -> Result<Setting> {
        Ok(Setting {
            name: self.name,
            value: self.value.0,
            updated_by: self.updated_by,
            updated_at: Timestamp::from_datetime(self.updated_at),
            revision: Revision::new(unsigned("control_settings.revision", self.revision)?)
                .ok_or_else(|| StoreError::corrupt("control_settings.revision", "revision 0"))?,
        })
    }
}

pub(super) async fn setting<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    name: &str,
    lock: bool,
) -> Result<Option<Setting>> {
    let sql = format!(
        "SELECT name, value, updated_by, updated_at, revision FROM control_settings WHERE name = $1{}",
        lock_clause(lock)
    );
    let row: Option<SettingRow> = slow
        .run(
            "control_settings.get",
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name.to_owned()).fetch_optional(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(SettingRow::into_setting).transpose()
}

pub(super) const INSERT_SETTING: &str =
    "INSERT INTO control_settings (name, value, updated_by, updated_at, revision) VALUES ($1, $2::json, $3, $4, $5)";
pub(super) const UPDATE_SETTING: &str =
    "UPDATE control_settings SET value = $2::json, updated_by = $3, updated_at = $4, revision = $5 WHERE name = $1";

pub(super) fn bind_setting(sql: &'static str, s: &Setting) -> Query<'static> {
    sqlx::query(sql)
        .bind(s.name.clone())
        .bind(crate::sql::to_json(&s.value))
        .bind(s.updated_by.clone())
        .bind(time(s.updated_at))
        .bind(int(s.revision.get()))
}
