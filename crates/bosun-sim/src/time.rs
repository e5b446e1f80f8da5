//! Simulated time: a clock everyone reads and a driver that alone moves it.
//!
//! The simulator runs on a current-thread tokio runtime whose clock is paused, so every
//! timer of the server, the agents and the fake providers waits on simulated time. Tokio
//! would move a paused clock by itself whenever the runtime idles, including while a
//! request waits for SQLite's worker thread or PostgreSQL's socket, which would let time
//! race ahead of the work. [`TimeDriver::hold`] keeps one blocking task open for the whole
//! run, which tokio documents as inhibiting that auto-advance; the driver then moves time
//! in fixed steps and, after each, waits until every agent call it set off has been
//! answered. So a store that is slow in real time is never slow in simulated time, and a
//! 30-minute scenario runs as fast as the machine does the work (`--virtual-time`) or at a
//! fixed multiple of real time (`--time-scale X`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bosun_core::{Clock, Timestamp};
use tokio::time::Instant;

/// Simulated wall-clock time: a fixed origin plus the runtime's (paused) elapsed time.
#[derive(Debug, Clone)]
pub struct SimClock {
    origin: Timestamp,
    start: Instant,
}

impl SimClock {
    /// Starts at `origin` now. Must be called inside the simulation's runtime.
    pub fn starting_at(origin: Timestamp) -> Self {
        Self { origin, start: Instant::now() }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn origin(&self) -> Timestamp {
        self.origin
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        self.origin + self.start.elapsed()
    }
}

/// How fast simulated time runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the work allows.
    Virtual,
    /// At most this many simulated seconds per real second.
    Scaled(f64),
}

/// Calls in flight that time must wait for. Long polls are not counted: they wait on
/// simulated time themselves.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(&self.0))
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Leaves the in-flight count when dropped (also when the call's future is dropped).
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Real time the driver waits at most for in-flight calls before moving on anyway (a call
/// stuck this long is a bug or a dead server; the run carries on and reports it).
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Moves simulated time.
#[derive(Debug)]
pub struct TimeDriver {
    pace: Pace,
    step: Duration,
    in_flight: InFlight,
    real_start: std::time::Instant,
    clock: SimClock,
    /// Settles that hit [`SETTLE_LIMIT`].
    pub stuck_settles: u64,
    _hold: AutoAdvanceHold,
}

impl TimeDriver {
    /// Must be called inside a current-thread runtime started paused.
    pub fn new(pace: Pace, step: Duration, in_flight: InFlight, clock: SimClock) -> Self {
        Self {
            pace,
            step,
            in_flight,
            real_start: std::time::Instant::now(),
            clock,
            stuck_settles: 0,
            _hold: AutoAdvanceHold::new(),
        }
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    pub fn step(&self) -> Duration {
        self.step
    }

    /// Moves time forward by at most one step, not past `until`, then lets everything
    /// that woke run to completion. Returns the new simulated time.
    pub async fn step_towards(&mut self, until: Duration) -> Duration {
        let now = self.now();
        if until > now {
            tokio::time::advance((until - now).min(self.step)).await;
        }
        self.settle().await;
        if let Pace::Scaled(scale) = self.pace {
            let due = self.now().as_secs_f64() / scale;
            let behind = due - self.real_start.elapsed().as_secs_f64();
            if behind > 0.0 {
                real_pause(Duration::from_secs_f64(behind)).await;
            }
        }
        self.now()
    }

    /// Lets woken tasks run until no counted call is in flight.
    pub async fn settle(&mut self) {
        // Timers that fired wake their tasks at the next driver turn; a few yields let
        // them run up to their first call (which counts itself in flight).
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        let mut spins = 0u32;
        while self.in_flight.count() > 0 {
            spins += 1;
            if spins < 32 {
                tokio::task::yield_now().await;
            } else {
                // Waiting on another thread (SQLite's worker, PostgreSQL's socket): park
                // for real without letting simulated time move.
                real_pause(Duration::from_micros(100)).await;
            }
            if started.elapsed() > SETTLE_LIMIT {
                self.stuck_settles += 1;
                tracing::warn!(
                    in_flight = self.in_flight.count(),
                    "calls still in flight after 30 s of real time; moving on"
                );
                return;
            }
        }
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
    }
}

/// Waits for real time (on a blocking thread) without moving simulated time.
pub async fn real_pause(duration: Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(duration)).await;
}

/// A blocking task that stays open while it lives, inhibiting tokio's auto-advance of the
/// paused clock.
#[derive(Debug)]
struct AutoAdvanceHold {
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl AutoAdvanceHold {
    fn new() -> Self {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // The task's handle is dropped: the task ends when `release` is dropped.
        drop(tokio::task::spawn_blocking(move || {
            let _ = wait.recv();
        }));
        Self { release: Some(release) }
    }
}

impl Drop for AutoAdvanceHold {
    fn drop(&mut self) {
        self.release.take();
    }
}

/// A current-thread runtime with a paused clock, for a simulation.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_only_by_the_driver_even_while_work_waits_on_another_thread() {
        let rt = runtime().expect("runtime");
        rt.block_on(async {
            let clock = SimClock::starting_at(Timestamp::from_unix_micros(0));
            let in_flight = InFlight::default();
            let mut driver =
                TimeDriver::new(Pace::Virtual, Duration::from_millis(100), in_flight.clone(), clock.clone());
            // Work on another thread (as SQLite's is) while a timer is pending: a paused
            // runtime left alone would jump to the timer while it waits.
            let timer = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
            let guard = in_flight.enter();
            let work = tokio::spawn(async move {
                real_pause(Duration::from_millis(20)).await;
                drop(guard);
            });
            driver.settle().await;
            assert_eq!(in_flight.count(), 0, "settle waits for the call");
            assert!(clock.elapsed() < Duration::from_millis(1), "no time passed: {:?}", clock.elapsed());
            work.await.expect("work");
            assert!(!timer.is_finished());
            while driver.now() < Duration::from_secs(60) {
                driver.step_towards(Duration::from_secs(60)).await;
            }
            assert_eq!(driver.now(), Duration::from_secs(60));
            timer.await.expect("the timer fires at 60 s of simulated time");
        });
    }
}
