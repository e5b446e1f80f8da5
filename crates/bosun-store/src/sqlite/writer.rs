//! The writer: one thread owning SQLite's only write connection.
//!
//! Hard-state batches are group-committed. With `synchronous=FULL` every SQLite commit
//! waits for an fsync, which would cap one-batch-per-transaction writers at the disk's sync
//! rate. Instead the writer takes every batch queued while the previous commit was syncing,
//! applies each inside its own savepoint (a failing batch is rolled back alone and reported
//! to its caller) and commits the group with one fsync. Every caller still returns only
//! after its data is durable.
//!
//! Other write work (soft-state flushes, retention) runs as a job in its own transaction
//! between groups.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::commit::apply_batch;
use super::file::FileIdentity;
use crate::error::{Result, StoreError};
use crate::sql::SlowLog;
use crate::store::StoreOptions;
use crate::write::{Committed, WriteBatch};

/// Most batches committed together; bounds the time one transaction holds the writer
/// (about a tenth of a second at this size).
const MAX_GROUP: usize = 256;
/// Jobs waiting for the writer before callers are made to wait to enqueue.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Committed>>;
/// Work on the write connection, given the identity of the file it must still write to.
type WriteJob = Box<dyn FnOnce(&mut Connection, &FileIdentity) + Send>;

enum Job {
    Commit(WriteBatch, Reply),
    Run(WriteJob),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the writer thread; the thread ends when the handle is dropped or closed.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::unavailable("the SQLite store is closed")
}

impl Writer {
    pub fn start(conn: Connection, identity: FileIdentity, options: StoreOptions) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let slow = SlowLog { threshold: options.slow_statement };
        std::thread::Builder::new()
            .name("bosun-sqlite-writer".to_owned())
            .spawn(move || run(conn, &identity, queue, &options, slow))?;
        Ok(Self { jobs })
    }

    /// Commits `batch` (with whatever other batches are waiting) and returns once durable.
    pub async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        if batch.is_empty() {
            return Ok(Committed { outcomes: Vec::new() });
        }
        let (reply, result) = oneshot::channel();
        self.jobs.send(Job::Commit(batch, reply)).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }

    /// Runs `work` on the write connection, between commit groups, once the database
    /// file is known to still be the one at its path.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = oneshot::channel();
        let job = Job::Run(Box::new(move |conn, identity| {
            let _ = reply.send(identity.check().and_then(|()| work(conn)));
        }));
        self.jobs.send(job).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }

    /// Stops the thread and closes the connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Shutdown(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn run(
    mut conn: Connection,
    identity: &FileIdentity,
    mut queue: mpsc::Receiver<Job>,
    options: &StoreOptions,
    slow: SlowLog,
) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        match job {
            Job::Commit(batch, reply) => {
                let mut group = vec![(batch, reply)];
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(Job::Commit(batch, reply)) => group.push((batch, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // Checked once per group (a stat, microseconds): nothing is acknowledged
                // into a file that was deleted or replaced.
                if let Err(lost) = identity.check() {
                    for (_, reply) in group {
                        let _ = reply.send(Err(lost.clone()));
                    }
                    continue;
                }
                let started = Instant::now();
                // A panic would be a bug in bosun; it drops the group's replies (their
                // callers see Unavailable) and rolls the transaction back, but must not
                // take the writer down with it.
                if catch_unwind(AssertUnwindSafe(|| commit_group(&mut conn, options, group))).is_err() {
                    tracing::error!("the SQLite writer recovered from a panic while committing");
                }
                slow.observe("commit_group", started.elapsed());
            }
            Job::Run(work) => {
                if catch_unwind(AssertUnwindSafe(|| work(&mut conn, identity))).is_err() {
                    tracing::error!("the SQLite writer recovered from a panic in a write job");
                }
            }
            Job::Shutdown(done) => {
                drop(conn);
                let _ = done.send(());
                return;
            }
        }
    }
}

fn commit_group(conn: &mut Connection, options: &StoreOptions, group: Vec<(WriteBatch, Reply)>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return fail_all(group.into_iter().map(|(_, reply)| (reply, Ok(empty()))), &error),
    };
    let mut results = Vec::with_capacity(group.len());
    for (batch, reply) in group {
        let applied = match tx.savepoint() {
            Ok(savepoint) => match apply_batch(&savepoint, options, &batch) {
                // A savepoint that fails to release leaves the transaction in an unknown
                // state: abandon the group.
                Ok(committed) => savepoint.commit().map(|()| Ok(committed)),
                // Dropping the savepoint rolls this batch back, and only this batch.
                Err(error) => Ok(Err(error)),
            },
            Err(error) => Err(error),
        };
        match applied {
            Ok(result) => results.push((reply, result)),
            Err(error) => {
                results.push((reply, Ok(empty())));
                return fail_all(results, &error);
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (reply, result) in results {
                // The caller may have gone away; its batch is committed all the same.
                let _ = reply.send(result);
            }
        }
        Err(error) => fail_all(results, &error),
    }
}

fn empty() -> Committed {
    Committed { outcomes: Vec::new() }
}

/// Fails every reply of an abandoned group: batches that had applied were rolled back
/// with it; batches that had failed keep their own error.
fn fail_all(results: impl IntoIterator<Item = (Reply, Result<Committed>)>, cause: &rusqlite::Error) {
    for (reply, result) in results {
        let _ = reply.send(match result {
            Ok(_) => Err(StoreError::unavailable(format!("the commit failed: {cause}"))),
            Err(own) => Err(own),
        });
    }
}
