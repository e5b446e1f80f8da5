//! Filters and cursor pagination for list operations.
//!
//! Lists are ordered by each resource's stable key and paginated by key ("keyset"
//! pagination): a page ends at a key and the next page starts strictly after it. Under
//! concurrent inserts a record present when listing started is returned exactly once; no
//! page skips or repeats records because of rows added elsewhere.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bosun_core::{
    Actor, CommandId, CommandKind, CommandState, Health, InstanceState, LabelSelector, NodeId, NodeStatus, PoolName,
    ResourceKind, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Default number of items per page.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Largest page a single call returns.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// Where a page starts and how long it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_PAGE_SIZE, after: None }
    }
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    pub fn after(limit: u32, cursor: Cursor) -> Self {
        Self { limit, after: Some(cursor) }
    }

    /// The page size, checked against the bounds.
    pub fn checked_limit(&self) -> Result<u32> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(StoreError::invalid(
                "page_size",
                format_args!("{} is outside 1..={MAX_PAGE_SIZE}", self.limit),
            ));
        }
        Ok(self.limit)
    }

    /// The key the page starts after, checked to belong to a list of `kind`.
    pub fn start_after(&self, kind: ResourceKind) -> Result<Option<String>> {
        self.after.as_ref().map(|c| c.key_for(kind)).transpose()
    }

    /// Where a page of nodes in `order` starts, checked to come from a list in that order.
    pub fn start_after_node(&self, order: NodeOrder) -> Result<Option<NodeAfter>> {
        let Some(cursor) = &self.after else { return Ok(None) };
        let body = cursor.body(ResourceKind::Node)?;
        let after = match (order, body.s) {
            (NodeOrder::Id, None) => NodeAfter::Id(body.a),
            (NodeOrder::RecentlyChanged, Some(micros)) => {
                NodeAfter::Changed(Timestamp::from_unix_micros(micros), body.a)
            }
            _ => return Err(Cursor::invalid()),
        };
        Ok(Some(after))
    }
}

/// The order a list of nodes is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NodeOrder {
    /// By id, as every list is.
    #[default]
    Id,
    /// The newest status change first (ties: the greater id first), to see what just
    /// happened to a fleet.
    RecentlyChanged,
}

impl NodeOrder {
    /// Whether `a` comes before `b` in this order.
    pub fn compare(self, a: &bosun_core::Node, b: &bosun_core::Node) -> std::cmp::Ordering {
        match self {
            NodeOrder::Id => a.id.cmp(&b.id),
            NodeOrder::RecentlyChanged => (b.status_changed_at, &b.id).cmp(&(a.status_changed_at, &a.id)),
        }
    }

    /// Whether `node` comes after the position `after` in this order.
    pub fn is_after(self, node: &bosun_core::Node, after: &NodeAfter) -> bool {
        match after {
            NodeAfter::Id(id) => node.id.as_str() > id.as_str(),
            NodeAfter::Changed(at, id) => (node.status_changed_at, node.id.as_str()) < (*at, id.as_str()),
        }
    }

    /// A page of nodes fetched in this order, up to `limit + 1` of them.
    pub fn page(self, rows: Vec<bosun_core::Node>, limit: u32) -> Page<bosun_core::Node> {
        let mut page = Page::from_rows(rows, limit, ResourceKind::Node, |n| n.id.to_string());
        if let (NodeOrder::RecentlyChanged, Some(last)) = (self, page.items.last()) {
            page.next =
                page.next.map(|_| Cursor::sorted(ResourceKind::Node, last.status_changed_at, last.id.to_string()));
        }
        page
    }
}

/// Where a page of nodes starts: after this node, in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAfter {
    /// After this id ([`NodeOrder::Id`]).
    Id(String),
    /// After this node, whose status changed at this time ([`NodeOrder::RecentlyChanged`]).
    Changed(Timestamp, String),
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in key order: the extra row only
    /// tells whether another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, kind: ResourceKind, key: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor::new(kind, key(last)))
        } else {
            None
        };
        Page { items: rows, next }
    }
}

/// Every item of a list, read `MAX_PAGE_SIZE` at a time by `read` (one store list call
/// per page), following cursors to the last page.
pub async fn all_pages<T, F, Fut>(read: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    each_page(read, |page| items.extend(page)).await?;
    Ok(items)
}

/// Reads a list `MAX_PAGE_SIZE` at a time by `read`, following cursors to the last page,
/// and hands each page to `each` as it comes: memory stays bounded by one page.
pub async fn each_page<T, F, Fut>(mut read: F, mut each: impl FnMut(Vec<T>)) -> Result<()>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut page = PageRequest::first(MAX_PAGE_SIZE);
    loop {
        let batch = read(page).await?;
        each(batch.items);
        match batch.next {
            Some(cursor) => page = PageRequest::after(MAX_PAGE_SIZE, cursor),
            None => return Ok(()),
        }
    }
}

/// An opaque position in a list. Clients pass it back unchanged.
#[derive(Clone, PartialEq, Eq)]
pub struct Cursor(String);

#[derive(Serialize, Deserialize)]
struct CursorBody {
    k: ResourceKind,
    a: String,
    /// The sort key (microseconds) of the row the page ended at, in a list ordered by
    /// something else than its key; a cursor of one order is refused by the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
}

impl Cursor {
    fn new(kind: ResourceKind, after_key: String) -> Self {
        Self::encode(&CursorBody { k: kind, a: after_key, s: None })
    }

    fn sorted(kind: ResourceKind, sort_key: Timestamp, after_key: String) -> Self {
        Self::encode(&CursorBody { k: kind, a: after_key, s: Some(sort_key.unix_micros()) })
    }

    fn encode(body: &CursorBody) -> Self {
        Cursor(URL_SAFE_NO_PAD.encode(serde_json::to_vec(body).unwrap_or_default()))
    }

    fn invalid() -> StoreError {
        StoreError::invalid("page_token", "is not a token returned by this list")
    }

    /// Accepts a cursor received from a client; it is checked when used.
    pub fn from_token(token: impl Into<String>) -> Self {
        Cursor(token.into())
    }

    pub fn as_token(&self) -> &str {
        &self.0
    }

    fn key_for(&self, kind: ResourceKind) -> Result<String> {
        let body = self.body(kind)?;
        if body.s.is_some() {
            return Err(Self::invalid());
        }
        Ok(body.a)
    }

    fn body(&self, kind: ResourceKind) -> Result<CursorBody> {
        let bytes = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| Self::invalid())?;
        let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| Self::invalid())?;
        if body.k != kind {
            return Err(Self::invalid());
        }
        Ok(body)
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

/// Which nodes to list. Empty fields do not filter; set fields are AND-ed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFilter {
    pub status: Option<NodeStatus>,
    pub pool: Option<PoolName>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub labels: LabelSelector,
    pub health: Option<Health>,
    /// Only nodes whose id contains this text (empty: every node).
    pub id_contains: String,
}

impl NodeFilter {
    pub fn matches(&self, node: &bosun_core::Node) -> bool {
        self.status.is_none_or(|s| node.status == s)
            && self.health.is_none_or(|h| node.health == h)
            && node.id.as_str().contains(self.id_contains.as_str())
            && self.pool.as_ref().is_none_or(|p| node.pool.as_ref() == Some(p))
            && self.provider.as_ref().is_none_or(|p| &node.provider == p)
            && self.region.as_ref().is_none_or(|r| &node.region == r)
            && node.labels.matches(&self.labels)
    }
}

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFilter {
    /// Any of these states (empty: all).
    pub states: Vec<InstanceState>,
    pub pool: Option<PoolName>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub node_id: Option<NodeId>,
    pub labels: LabelSelector,
}

impl InstanceFilter {
    pub fn matches(&self, instance: &bosun_core::Instance) -> bool {
        (self.states.is_empty() || self.states.contains(&instance.state))
            && self.pool.as_ref().is_none_or(|p| instance.pool.as_ref() == Some(p))
            && self.provider.as_ref().is_none_or(|p| &instance.provider == p)
            && self.region.as_ref().is_none_or(|r| &instance.region == r)
            && self.node_id.as_ref().is_none_or(|n| instance.node_id.as_ref() == Some(n))
            && instance.labels.matches(&self.labels)
    }
}

/// Which commands to list. Commands are listed in issue order (their ids are UUIDv7).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandFilter {
    pub node_id: Option<NodeId>,
    /// Any of these states (empty: all).
    pub states: Vec<CommandState>,
    pub kind: Option<CommandKind>,
}

impl CommandFilter {
    pub fn matches(&self, command: &bosun_core::Command) -> bool {
        self.node_id.as_ref().is_none_or(|n| &command.node_id == n)
            && (self.states.is_empty() || self.states.contains(&command.state))
            && self.kind.as_ref().is_none_or(|k| &command.kind == k)
    }
}

/// Which change records to read: a sequence range, optionally narrowed to one resource,
/// one kind or one actor. Returned in sequence order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    /// Only records with a sequence number greater than this.
    pub after_seq: u64,
    /// Only records with a sequence number up to and including this.
    pub up_to_seq: Option<u64>,
    pub kind: Option<ResourceKind>,
    /// With `kind`, one resource's history.
    pub resource_id: Option<String>,
    pub actor: Option<Actor>,
}

impl ChangeFilter {
    pub fn resource(kind: ResourceKind, id: impl ToString) -> Self {
        Self { kind: Some(kind), resource_id: Some(id.to_string()), ..Self::default() }
    }

    pub fn matches(&self, change: &bosun_core::ChangeRecord) -> bool {
        change.seq > self.after_seq
            && self.up_to_seq.is_none_or(|up| change.seq <= up)
            && self.kind.is_none_or(|k| change.kind == k)
            && self.resource_id.as_ref().is_none_or(|id| &change.resource_id == id)
            && self.actor.as_ref().is_none_or(|a| &change.actor == a)
    }
}

/// The command id as a list key: its hyphenated text sorts like the UUID's bytes.
pub(crate) fn command_key(id: &CommandId) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_list() {
        let page = Page::from_rows(vec![1, 2, 3], 2, ResourceKind::Node, |n: &i32| format!("n{n}"));
        assert_eq!(page.items, [1, 2]);
        let next = page.next.expect("more rows");
        let request = PageRequest::after(2, next);
        assert_eq!(request.start_after(ResourceKind::Node).expect("valid"), Some("n2".to_owned()));
        assert!(request.start_after(ResourceKind::Instance).is_err());
        assert!(PageRequest::after(2, Cursor::from_token("garbage!")).start_after(ResourceKind::Node).is_err());
        let last = Page::from_rows(vec![1, 2], 2, ResourceKind::Node, |n: &i32| n.to_string());
        assert_eq!(last.next, None);
    }

    #[test]
    fn page_size_bounds() {
        assert!(PageRequest::first(0).checked_limit().is_err());
        assert!(PageRequest::first(MAX_PAGE_SIZE + 1).checked_limit().is_err());
        assert_eq!(PageRequest::first(MAX_PAGE_SIZE).checked_limit().expect("ok"), MAX_PAGE_SIZE);
    }
}
