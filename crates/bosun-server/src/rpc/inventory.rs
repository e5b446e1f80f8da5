//! The inventory's RPCs (served by AdminService): list and get records of one kind (a
//! service with its members), how the sources stand, and a sync now.

use std::collections::BTreeMap;

use bosun_api::{convert, v1};
use bosun_core::inventory::{InventoryKind, InventoryRecord, RecordState, SourceStatus, SourceType};
use bosun_core::{LabelSelector, SourceName, ValidationError};
use bosun_store::inventory::InventoryFilter;
use bosun_store::{PageRequest, query};
use buffa::MessageField;

use super::{next_token, page_size, page_token};
use crate::app::App;
use crate::error::{ApiError, ApiResult};

fn kind(text: &str) -> ApiResult<InventoryKind> {
    if text.is_empty() {
        return Err(ApiError::invalid("kind", "is required: host, vm, container, storage, workload or service"));
    }
    text.parse().map_err(|e: ValidationError| ApiError::Invalid(ValidationError::new("kind", e.problem)))
}

fn text(field: &str, value: &str) -> ApiResult<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 255 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must be at most 255 printable characters"));
    }
    Ok(Some(value.to_owned()))
}

/// The longest label selector a list accepts, in bytes (64 terms of a key and a value).
const MAX_SELECTOR_LEN: usize = 32 * 1024;

fn selector(field: &str, value: &str) -> ApiResult<Option<LabelSelector>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_SELECTOR_LEN {
        return Err(ApiError::invalid(field, format_args!("is longer than {MAX_SELECTOR_LEN} bytes")));
    }
    Ok(Some(convert::label_selector(field, value)?))
}

fn source_name(field: &str, value: &str) -> ApiResult<Option<SourceName>> {
    text(field, value)?.map(|v| v.parse().map_err(|e: ValidationError| ApiError::Invalid(e.within(field)))).transpose()
}

/// The record's JSON document, its labels included for the kinds that have them (a
/// VM's and a container's are left out of the stored document when empty, a workload's
/// are derived).
fn document(record: &InventoryRecord) -> String {
    // A record of plain strings and numbers always serializes.
    let mut document = serde_json::to_value(record).unwrap_or_default();
    if let (Some(labels), Some(fields)) = (record.state.labels(), document.as_object_mut()) {
        fields.insert("labels".to_owned(), serde_json::to_value(labels.as_ref()).unwrap_or_default());
    }
    document.to_string()
}

/// A record on the wire: its summary fields and the whole record as JSON.
pub(crate) fn record(record: &InventoryRecord) -> v1::InventoryRecord {
    v1::InventoryRecord {
        kind: record.kind().as_str().to_owned(),
        id: record.id(),
        source: record.source.to_string(),
        key: record.key.clone(),
        name: record.state.name().to_owned(),
        status: record.state.status().to_owned(),
        host: record.state.host().unwrap_or_default().to_owned(),
        node_id: record.state.node().map(ToString::to_string).unwrap_or_default(),
        gone_at: record.gone_at.map(convert::timestamp).into(),
        revision: record.revision.get(),
        json: document(record),
        ..Default::default()
    }
}

pub(crate) async fn list(app: &App, request: v1::ListInventoryRequest) -> ApiResult<v1::ListInventoryResponse> {
    let gone = match request.gone.as_str() {
        "" => None,
        "true" => Some(true),
        "false" => Some(false),
        other => return Err(ApiError::invalid("gone", format_args!("{other:?} is not true, false or empty"))),
    };
    let filter = InventoryFilter {
        kind: kind(&request.kind)?,
        source: source_name("source", &request.source)?,
        host: text("host", &request.host)?,
        node: text("node_id", &request.node_id)?
            .map(|n| n.parse().map_err(|e: ValidationError| ApiError::Invalid(e.within("node_id"))))
            .transpose()?,
        status: text("status", &request.status)?,
        gone,
        name: text("name", &request.name)?,
        labels: selector("label_selector", &request.label_selector)?,
    };
    let limit = page_size("page_size", request.page_size, query::DEFAULT_PAGE_SIZE, query::MAX_PAGE_SIZE)?;
    let page =
        app.store.list_inventory(&filter, &PageRequest { limit, after: page_token(&request.page_token) }).await?;
    Ok(v1::ListInventoryResponse {
        records: page.items.iter().map(record).collect(),
        next_page_token: next_token(page.next),
        ..Default::default()
    })
}

/// By `SOURCE/KEY`; else by a name or key that only one record of the kind has.
pub(crate) async fn get(app: &App, request: v1::GetInventoryRequest) -> ApiResult<v1::GetInventoryResponse> {
    let kind = kind(&request.kind)?;
    let id = text("id", &request.id)?.ok_or_else(|| ApiError::invalid("id", "is required: SOURCE/KEY or a name"))?;
    if let Some((source, key)) = id.split_once('/')
        && let Ok(source) = source.parse::<SourceName>()
    {
        match app.store.inventory_record(kind, &source, key).await {
            Ok(found) => return answer(app, &found).await,
            Err(bosun_store::StoreError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let by_name = InventoryFilter { name: Some(id.clone()), ..InventoryFilter::kind(kind) };
    let mut matches = app.store.list_inventory(&by_name, &PageRequest::first(2)).await?.items;
    if matches.is_empty() {
        // A key without its source (`104`): look in each source once (the agents' source
        // has a status row per node).
        let names: std::collections::BTreeSet<SourceName> =
            app.store.inventory_sources().await?.into_iter().map(|s| s.source).collect();
        for source in names {
            match app.store.inventory_record(kind, &source, &id).await {
                Ok(found) => matches.push(found),
                Err(bosun_store::StoreError::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
    }
    match matches.len() {
        1 => answer(app, &matches[0]).await,
        0 => Err(ApiError::NotFound(format!("{kind} {id} not found (give SOURCE/KEY, a key or a name)"))),
        _ => Err(ApiError::invalid(
            "id",
            format_args!(
                "{id:?} names more than one {kind}; give SOURCE/KEY ({} or {})",
                matches[0].id(),
                matches[1].id()
            ),
        )),
    }
}

/// A record found by a get: a service with its members.
async fn answer(app: &App, found: &InventoryRecord) -> ApiResult<v1::GetInventoryResponse> {
    let mut response = v1::GetInventoryResponse { record: MessageField::some(record(found)), ..Default::default() };
    if let RecordState::Service(service) = &found.state {
        let (members, count) = crate::inventory_services::members(app, service).await?;
        response.members = members.iter().map(record).collect();
        response.member_count = count;
    }
    Ok(response)
}

/// Every source: the configured ones (read or not yet), and the agents' scopes folded
/// into one line.
pub(crate) async fn sources(app: &App) -> ApiResult<Vec<v1::InventorySourceStatus>> {
    let stored = app.store.inventory_sources().await?;
    let mut by_source: BTreeMap<SourceName, Vec<SourceStatus>> = BTreeMap::new();
    for status in stored {
        by_source.entry(status.source.clone()).or_default().push(status);
    }
    for source in &app.inventory.entries {
        by_source.entry(source.name.clone()).or_default();
    }
    let services = crate::inventory_services::source()?;
    Ok(by_source
        .into_iter()
        .map(|(name, scopes)| {
            let configured = app.inventory.get(&name);
            let services_configured = name == services && !app.settings.inventory_services.is_empty();
            let mut line = v1::InventorySourceStatus {
                source: name.to_string(),
                r#type: scopes.first().map_or(SourceType::Proxmox, |s| s.source_type).as_str().to_owned(),
                configured: configured.is_some() || services_configured,
                scopes: scopes.len() as u64,
                url: configured.map(|c| c.url.clone()).unwrap_or_default(),
                ..Default::default()
            };
            let failing: Vec<&SourceStatus> = scopes.iter().filter(|s| s.error.is_some()).collect();
            line.error = match (scopes.len(), failing.first()) {
                (_, None) => String::new(),
                (1, Some(first)) => first.error.clone().unwrap_or_default(),
                (_, Some(first)) => format!(
                    "{} of {} scopes failed; {}: {}",
                    failing.len(),
                    scopes.len(),
                    first.scope.as_stored(),
                    first.error.as_deref().unwrap_or_default()
                ),
            };
            if let Some(last) = scopes.iter().map(|s| s.last_sync_at).max() {
                line.last_sync_at = MessageField::some(convert::timestamp(last));
            }
            if let Some(success) = scopes.iter().filter_map(|s| s.last_success_at).max() {
                line.last_success_at = MessageField::some(convert::timestamp(success));
            }
            for scope in &scopes {
                line.created += scope.counts.created;
                line.updated += scope.counts.updated;
                line.back += scope.counts.back;
                line.gone += scope.counts.gone;
                line.unchanged += scope.counts.unchanged;
                line.syncs += scope.syncs;
            }
            line
        })
        .collect())
}

/// Most sync records one ListInventorySyncs answers.
const MAX_SYNCS: u32 = 1000;
const DEFAULT_SYNCS: u32 = 50;

/// The sync history, newest first.
pub(crate) async fn syncs(
    app: &App,
    request: v1::ListInventorySyncsRequest,
) -> ApiResult<v1::ListInventorySyncsResponse> {
    let source = source_name("source", &request.source)?;
    let limit = match request.limit {
        0 => DEFAULT_SYNCS,
        n if n > MAX_SYNCS => {
            return Err(ApiError::invalid("limit", format_args!("{n} is more than {MAX_SYNCS}")));
        }
        n => n,
    };
    let syncs = app.store.inventory_syncs(source.as_ref(), limit).await?;
    let syncs = syncs
        .into_iter()
        .map(|s| v1::InventorySync {
            id: s.id,
            source: s.source.to_string(),
            scope: s.scope.as_stored().to_owned(),
            started_at: MessageField::some(convert::timestamp(s.started_at)),
            finished_at: MessageField::some(convert::timestamp(s.finished_at)),
            created: s.counts.created,
            updated: s.counts.updated,
            back: s.counts.back,
            gone: s.counts.gone,
            unchanged: s.counts.unchanged,
            error: s.error.unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    Ok(v1::ListInventorySyncsResponse { syncs, ..Default::default() })
}

/// Reads one configured source, or every one (the services' included), now.
pub(crate) async fn sync(app: &App, request: v1::SyncInventoryRequest) -> ApiResult<v1::SyncInventoryResponse> {
    let wanted = source_name("source", &request.source)?;
    let services = crate::inventory_services::source()?;
    if let Some(name) = &wanted
        && app.inventory.get(name).is_none()
        && *name != services
    {
        let configured: Vec<String> = app.inventory.entries.iter().map(|s| s.name.to_string()).collect();
        return Err(ApiError::NotFound(format!(
            "inventory source {name} is not configured (configured: {})",
            if configured.is_empty() { "none; see inventory.sources".to_owned() } else { configured.join(", ") }
        )));
    }
    if wanted.as_ref() == Some(&services) && app.settings.inventory_services.is_empty() {
        return Err(ApiError::NotFound(
            "no services are configured (see inventory.services); the leader marks stored ones gone when it starts leading"
                .to_owned(),
        ));
    }
    for source in app.inventory.entries.iter().filter(|s| wanted.as_ref().is_none_or(|w| *w == s.name)) {
        crate::inventory::sync_source(app, source).await?;
    }
    if wanted.as_ref().is_none_or(|w| *w == services) {
        crate::inventory_services::sync(app).await?;
    }
    let mut sources = sources(app).await?;
    sources.retain(|s| s.configured && wanted.as_ref().is_none_or(|w| w.as_str() == s.source));
    Ok(v1::SyncInventoryResponse { sources, ..Default::default() })
}
