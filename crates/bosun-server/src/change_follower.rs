//! The change follower: how a replica learns what other replicas commit.
//!
//! Several servers may share one PostgreSQL database. A server's own commits wake its
//! waiters at once (`ObservedStore::commit` wakes WatchEvents streams, `commands::issue`
//! the node's long poll); what another replica commits reaches this one through the
//! change log. One follower per server tails the log from the last record it read,
//! whenever the store signals that the log grew (PostgreSQL: LISTEN/NOTIFY, see
//! `bosun_store::ChangeSignals`) and, when no signal came, every
//! `Settings::change_poll_interval`, so a lost notification costs at most that. For each
//! batch it reads it:
//! - keeps the fleet view's node records current (registrations, status and health
//!   changes, deletions made by other replicas);
//! - wakes the long poll of every node with a command waiting for delivery (PENDING);
//! - re-reads the stored health policy when the policy changed;
//! - wakes every WatchEvents stream.
//!
//! It reads its own server's commits too and dispatches them again, which costs a wake-up
//! and a look at the store: every waiter re-reads the store and finds nothing new.
//! Memory and SQLite stores give no signals (only one process writes to them); no
//! follower runs there.

use std::collections::BTreeSet;
use std::sync::Arc;

use bosun_core::{ChangeOp, ChangeRecord, CommandState, Node, NodeId, ResourceKind};
use bosun_store::{ChangeFilter, ChangeSignal, ChangeSignals, SharedStore, StoreError};
use serde::Deserialize as _;
use tokio::sync::watch;

use crate::app::App;

/// Records read per store query.
const BATCH: u32 = 500;

/// Change signals subscribed to, and the end of the change log when they were.
#[derive(Debug)]
pub(crate) struct Subscription {
    signals: ChangeSignals,
    cursor: u64,
}

#[derive(Debug)]
pub(crate) struct ChangeFollower {
    app: Arc<App>,
    /// `None` once the store stopped signalling: the follower then reads on its timer only.
    signals: Option<ChangeSignals>,
    /// The sequence number of the last record dispatched.
    cursor: u64,
    /// Published after every batch: the change log has been dispatched through this.
    followed: watch::Sender<u64>,
    /// The listener connections counted so far.
    connections: u64,
    /// Whether reading the log failed last time (an outage is logged once).
    failing: bool,
}

impl ChangeFollower {
    /// Subscribes to `store`'s change signals and reads where its log ends, or `None` when
    /// it gives no signals. Taken before the server loads its fleet view, so that every
    /// change committed after that load is among those the follower reads; subscribing
    /// before reading the log's end means nothing committed in between is missed.
    pub(crate) async fn subscribe(store: &SharedStore) -> Result<Option<Subscription>, StoreError> {
        let Some(signals) = store.change_signals().await else {
            return Ok(None);
        };
        let cursor = store.last_change_seq().await?;
        Ok(Some(Subscription { signals, cursor }))
    }

    /// A follower for `app` from `subscription`; the returned receiver tells how far the
    /// log has been dispatched.
    pub(crate) fn start(app: &Arc<App>, subscription: Subscription) -> (Self, watch::Receiver<u64>) {
        let Subscription { signals, cursor } = subscription;
        let (followed, progress) = watch::channel(cursor);
        let connections = signals.latest().connections;
        let follower =
            Self { app: Arc::clone(app), signals: Some(signals), cursor, followed, connections, failing: false };
        (follower, progress)
    }

    /// Follows the log until the server shuts down.
    pub(crate) async fn run(mut self) {
        // A policy stored between the server's start and the follower's first look is not
        // in what it reads.
        if let Err(error) = self.app.policies.refresh(&self.app.store).await {
            tracing::warn!(%error, "cannot re-read the stored health policy; the janitor retries");
        }
        let interval = self.app.settings.change_poll_interval;
        loop {
            self.catch_up().await;
            tokio::select! {
                signal = next_signal(self.signals.as_mut()) => match signal {
                    Some(signal) => self.count_connections(signal),
                    None => {
                        tracing::warn!(?interval, "the store stopped signalling changes; reading the change log on a timer");
                        self.signals = None;
                    }
                },
                () = tokio::time::sleep(interval) => {}
                () = self.app.shutdown.cancelled() => return,
            }
        }
    }

    /// Counts the listener's reconnections (its first connection is not one).
    fn count_connections(&mut self, signal: ChangeSignal) {
        let reconnects = signal.connections.saturating_sub(self.connections.max(1));
        if reconnects > 0 {
            self.app.metrics.change_listener_reconnected(reconnects);
        }
        self.connections = self.connections.max(signal.connections);
    }

    /// Reads and dispatches every record after the cursor.
    async fn catch_up(&mut self) {
        loop {
            let filter = ChangeFilter { after_seq: self.cursor, ..ChangeFilter::default() };
            let batch = match self.app.store.list_changes(&filter, BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    if !self.failing {
                        tracing::warn!(%error, "cannot read the change log; other servers' changes wait until it can");
                        self.failing = true;
                    }
                    return;
                }
            };
            if self.failing {
                tracing::info!("reading the change log again");
                self.failing = false;
            }
            let Some(last) = batch.last().map(|change| change.seq) else {
                return;
            };
            self.dispatch(&batch).await;
            self.cursor = last;
            self.followed.send_replace(last);
            if batch.len() < BATCH as usize {
                return;
            }
        }
    }

    async fn dispatch(&self, batch: &[ChangeRecord]) {
        for change in batch.iter().filter(|change| change.kind == ResourceKind::Node) {
            self.track_node(change);
        }
        let waiting: BTreeSet<NodeId> = batch.iter().filter_map(pending_command_node).collect();
        for node in &waiting {
            self.app.waiters.wake(node);
        }
        if batch.iter().any(|change| change.kind == ResourceKind::Policy)
            && let Err(error) = self.app.policies.refresh(&self.app.store).await
        {
            tracing::warn!(%error, "cannot re-read the stored health policy; the janitor retries");
        }
        self.app.committed.notify_waiters();
    }

    /// Brings a node change into the fleet view. Records older than what the view holds
    /// change nothing (the view merges by registration and revision), so the follower's
    /// re-reading of its own server's commits is harmless.
    fn track_node(&self, change: &ChangeRecord) {
        let node = match Node::deserialize(&change.resource) {
            Ok(node) => node,
            Err(error) => {
                // A record this binary cannot read (a newer replica's): the node's next
                // heartbeat here, or the next restart, reads it from the store instead.
                tracing::debug!(%error, node = %change.resource_id, seq = change.seq, "cannot read a node change record");
                return;
            }
        };
        match change.op {
            ChangeOp::Created | ChangeOp::Updated => self.app.fleet.upsert(&node),
            ChangeOp::Deleted => {
                if self.app.fleet.deleted(&node) {
                    self.app.waiters.forget(&node.id);
                }
            }
        }
    }
}

/// The next signal, or never when there are none.
async fn next_signal(signals: Option<&mut ChangeSignals>) -> Option<ChangeSignal> {
    match signals {
        Some(signals) => signals.next().await,
        None => std::future::pending().await,
    }
}

/// The node of a command that waits for delivery, if `change` records one.
fn pending_command_node(change: &ChangeRecord) -> Option<NodeId> {
    if change.kind != ResourceKind::Command || change.resource.get("state")?.as_str()? != CommandState::Pending.as_str()
    {
        return None;
    }
    change.resource.get("node_id")?.as_str()?.parse().ok()
}
