//! Change signals: how a process hears that a store's change log grew, whoever committed.
//!
//! A signal says "the log holds records up to at least this sequence number", never which
//! records: a follower keeps its own position and reads the log from there, so a signal
//! that is late, repeated or merged with the next one loses nothing. Signals live in a
//! `watch` channel (the latest value only), so a slow follower costs no memory.

use tokio::sync::watch;

/// What a store has heard about its change log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeSignal {
    /// The log holds records up to at least this sequence number (0 until one was heard).
    pub seq: u64,
    /// How many times the store started listening: once at first, and again after every
    /// lost connection. Commits made while it was not listening were not heard, so a
    /// follower reads the log whenever this grows.
    pub connections: u64,
}

/// A subscription to a store's [`ChangeSignal`]s (see [`crate::Store::change_signals`]).
#[derive(Debug, Clone)]
pub struct ChangeSignals {
    receiver: watch::Receiver<ChangeSignal>,
}

impl ChangeSignals {
    /// Waits for the next signal and returns the latest state, or `None` once the store
    /// stopped signalling (it was closed).
    pub async fn next(&mut self) -> Option<ChangeSignal> {
        self.receiver.changed().await.ok()?;
        Some(*self.receiver.borrow_and_update())
    }

    /// The latest state, without waiting.
    pub fn latest(&self) -> ChangeSignal {
        *self.receiver.borrow()
    }
}

/// The sending half, kept by whatever hears the store's commits.
#[derive(Debug)]
pub(crate) struct Signaller {
    sender: watch::Sender<ChangeSignal>,
}

impl Signaller {
    pub(crate) fn new() -> Self {
        Self { sender: watch::Sender::new(ChangeSignal::default()) }
    }

    pub(crate) fn subscribe(&self) -> ChangeSignals {
        ChangeSignals { receiver: self.sender.subscribe() }
    }

    /// The log grew to at least `seq`.
    pub(crate) fn heard(&self, seq: u64) {
        self.sender.send_if_modified(|signal| {
            let grew = seq > signal.seq;
            signal.seq = signal.seq.max(seq);
            grew
        });
    }

    /// Listening (again): whatever was committed meanwhile must be read from the log.
    pub(crate) fn listening(&self) {
        self.sender.send_modify(|signal| signal.connections += 1);
    }
}
