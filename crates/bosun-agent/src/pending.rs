//! Health events the control plane has not accepted yet: bounded, sent in reports of at
//! most [`MAX_REPORT_EVENTS`], and never sent again once refused as invalid.
//!
//! A machine spewing XIDs must not grow the agent without bound nor wedge its reporting:
//! beyond [`MAX_PENDING_EVENTS`] the oldest events are dropped and counted, and the count
//! goes to the control plane with the next report (as the `events` check), so an operator
//! learns that events were lost rather than not learning of them at all.

use std::collections::VecDeque;

use bosun_core::health::MAX_REPORT_EVENTS;
use bosun_core::{CheckResult, Health, HealthEvent};
use tracing::warn;

/// Events kept while the control plane does not accept them.
pub(crate) const MAX_PENDING_EVENTS: usize = 4 * MAX_REPORT_EVENTS;

/// The name of the check that reports dropped events.
pub(crate) const DROPPED_CHECK: &str = "events";

#[derive(Debug, Default)]
pub(crate) struct PendingEvents {
    events: VecDeque<HealthEvent>,
    /// Dropped since the last accepted report.
    dropped: u64,
}

impl PendingEvents {
    /// Queues newly collected events, dropping the oldest beyond the bound.
    pub(crate) fn push(&mut self, events: Vec<HealthEvent>) {
        self.events.extend(events);
        let over = self.events.len().saturating_sub(MAX_PENDING_EVENTS);
        if over > 0 {
            warn!(dropped = over, "too many unsent health events; dropping the oldest");
            self.events.drain(..over);
            self.dropped += over as u64;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The oldest events, as many as one report may carry.
    pub(crate) fn next_report(&mut self) -> &[HealthEvent] {
        let count = self.events.len().min(MAX_REPORT_EVENTS);
        &self.events.make_contiguous()[..count]
    }

    /// The check result that tells the control plane how many events were dropped since
    /// its last accepted report, if any were.
    pub(crate) fn dropped_check(&self) -> Option<CheckResult> {
        (self.dropped > 0).then(|| CheckResult {
            name: DROPPED_CHECK.to_owned(),
            status: Health::Degraded,
            message: format!(
                "{} health events were dropped: more arrived than the agent holds ({MAX_PENDING_EVENTS}) while \
                 the control plane did not accept them",
                self.dropped
            ),
            details: [("dropped".to_owned(), self.dropped.to_string())].into(),
        })
    }

    /// The control plane accepted a report carrying the first `count` events (and the
    /// dropped count).
    pub(crate) fn accepted(&mut self, count: usize) {
        self.events.drain(..count.min(self.events.len()));
        self.dropped = 0;
    }

    /// The control plane refused a report carrying the first `count` events as invalid:
    /// sending them again would be refused again, so they are dropped (and counted).
    pub(crate) fn refused(&mut self, count: usize) {
        let count = count.min(self.events.len());
        self.events.drain(..count);
        self.dropped += count as u64;
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::{EventType, HealthSystem, Timestamp};

    use super::*;

    fn events(n: usize) -> Vec<HealthEvent> {
        (0..n)
            .map(|i| HealthEvent {
                timestamp: Timestamp::UNIX_EPOCH,
                gpu_index: 0,
                gpu_uuid: String::new(),
                system: HealthSystem::Driver,
                event_type: EventType::Xid,
                metrics: [("xid_code".to_owned(), "13".to_owned())].into(),
                message: format!("event {i}"),
            })
            .collect()
    }

    #[test]
    fn reports_are_split_at_the_servers_limit_and_overflow_is_counted() {
        let mut pending = PendingEvents::default();
        pending.push(events(MAX_PENDING_EVENTS + 10));
        assert_eq!(pending.dropped, 10);
        assert_eq!(pending.next_report().len(), MAX_REPORT_EVENTS);
        assert_eq!(pending.next_report()[0].message, "event 10", "the oldest were dropped");
        let check = pending.dropped_check().expect("a check");
        assert_eq!((check.status, check.details["dropped"].as_str()), (Health::Degraded, "10"));
        pending.accepted(MAX_REPORT_EVENTS);
        assert_eq!(pending.dropped_check(), None, "reported once");
        for _ in 0..3 {
            let sent = pending.next_report().len();
            pending.accepted(sent);
        }
        assert!(pending.is_empty());
    }

    #[test]
    fn refused_events_are_not_sent_again() {
        let mut pending = PendingEvents::default();
        pending.push(events(5));
        pending.refused(5);
        assert!(pending.is_empty());
        assert_eq!(pending.dropped_check().expect("counted").details["dropped"], "5");
    }
}
