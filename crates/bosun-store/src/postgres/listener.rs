//! Hearing other processes' commits: LISTEN on [`CHANNEL`].
//!
//! Every transaction that appends change records runs `pg_notify(CHANNEL, <its last
//! sequence number>)` (`commit.rs`); PostgreSQL delivers the notification when, and only
//! if, the transaction commits, to every session of the database listening, in commit
//! order. One task per store holds a listening connection of its own (not one of the
//! pool's, so the pool keeps its size) and turns notifications into [`ChangeSignal`]s.
//!
//! A connection can be lost (the database restarts, the network drops, an administrator
//! terminates the session) and the notifications sent meanwhile with it. The task then
//! connects again, at once and then with backoff, and signals that it listens again, so
//! followers read the log for whatever they missed. A connection quiet for [`QUIET`] is
//! asked a `SELECT 1`, so one that died silently is noticed too. An outage is logged once
//! when it begins and once when it ends.
//!
//! sqlx hands notifications over through a channel of its own, filled only while the
//! connection is read; this task reads it and does nothing else that waits, so the
//! channel holds at most what arrived during one `SELECT 1`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;

use crate::signals::{ChangeSignals, Signaller};
use crate::sql::map_err;

/// The notification channel of the change log.
pub(super) const CHANNEL: &str = "bosun_changes";
/// How the listening session shows in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "bosun-listener";
/// A connection that heard nothing this long is checked with a query.
const QUIET: Duration = Duration::from_secs(30);
/// The longest a connection attempt or a check may take.
const PATIENCE: Duration = Duration::from_secs(10);
/// The wait after a failed attempt: doubling from the first to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// A running listener; it stops when this is dropped.
#[derive(Debug)]
pub(super) struct Listener {
    signaller: Arc<Signaller>,
    _stop: oneshot::Sender<()>,
}

impl Listener {
    /// Starts listening on a connection made with `options` (must be called within a Tokio
    /// runtime).
    pub(super) fn start(options: PgConnectOptions) -> Self {
        let signaller = Arc::new(Signaller::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task_signaller = Arc::clone(&signaller);
        tokio::spawn(async move {
            tokio::select! {
                () = listen(options.application_name(APPLICATION_NAME), &task_signaller) => {}
                _ = stopped => {}
            }
        });
        Self { signaller, _stop: stop }
    }

    pub(super) fn subscribe(&self) -> ChangeSignals {
        self.signaller.subscribe()
    }
}

/// Listens until the task is stopped.
async fn listen(options: PgConnectOptions, signaller: &Signaller) {
    let mut backoff = BACKOFF.0;
    // Whether an outage began and was logged: the attempts within it are not.
    let mut outage = false;
    loop {
        match connect(&options).await {
            Ok(mut listener) => {
                if outage {
                    tracing::info!("listening for commits of other processes again");
                }
                backoff = BACKOFF.0;
                signaller.listening();
                // Returns only when the connection is lost: an outage begins.
                let cause = receive(&mut listener, signaller).await;
                tracing::warn!(
                    %cause,
                    "lost the connection listening for commits of other processes; reconnecting (their commits \
                     are not heard until then)"
                );
                outage = true;
            }
            Err(error) => {
                if !outage {
                    tracing::warn!(
                        error = %map_err(error, None),
                        "cannot listen for commits of other processes; retrying (their commits are not heard until \
                         then)"
                    );
                    outage = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// A new connection listening on [`CHANNEL`].
async fn connect(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    // A pool of one per connection, as sqlx's listener needs a pool: a lost connection's
    // pool goes with it, so closing the old one never holds up the new one.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(PATIENCE)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection is reported, not replaced behind our back: this task reconnects
    // itself so that it can tell followers.
    listener.eager_reconnect(false);
    tokio::time::timeout(PATIENCE, listener.listen(CHANNEL)).await.map_err(|_| sqlx::Error::PoolTimedOut)??;
    Ok(listener)
}

/// Signals every notification until the connection is lost; returns why it was.
async fn receive(listener: &mut PgListener, signaller: &Signaller) -> String {
    loop {
        // Cancelling `try_recv` while it waits loses nothing: sqlx consumes a message only
        // once it has all of it.
        match tokio::time::timeout(QUIET, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => signaller.heard(notification.payload().parse().unwrap_or(0)),
            Ok(Ok(None)) => return "the connection closed".to_owned(),
            Ok(Err(error)) => return map_err(error, None).to_string(),
            Err(_quiet) => {
                match tokio::time::timeout(PATIENCE, sqlx::query("SELECT 1").execute(&mut *listener)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return map_err(error, None).to_string(),
                    Err(_) => return format!("no answer to a check within {} s", PATIENCE.as_secs()),
                }
            }
        }
    }
}
