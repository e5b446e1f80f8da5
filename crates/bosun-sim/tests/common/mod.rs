//! Running scenarios in tests, each on a fresh database of one backend.

#![allow(dead_code)] // Each test file uses a different subset.

use std::sync::Arc;

use bosun_core::FakeClock;
use bosun_sim::{Pace, Report, RunOptions, Scenario, run_scenario};
use bosun_store::testing::{TestLocation, test_options};
use bosun_store::{Backend, SharedStore};

pub fn inline(text: &str) -> Scenario {
    Scenario::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

pub fn run_on(backend: Backend, scenario: &Scenario, seed: u64) -> Option<Report> {
    run_with(backend, scenario, RunOptions { pace: Pace::Virtual, seed: Some(seed), ..RunOptions::default() })
}

pub fn run_with(backend: Backend, scenario: &Scenario, options: RunOptions) -> Option<Report> {
    Finished::run(backend, scenario, options).map(|finished| finished.report)
}

/// A finished run whose store can still be read: what the control plane recorded.
pub struct Finished {
    pub report: Report,
    location: TestLocation,
    runtime: tokio::runtime::Runtime,
}

impl Finished {
    /// Runs `scenario` with `seed` on virtual time; `None` when `backend` may be skipped.
    pub fn seeded(backend: Backend, scenario: &Scenario, seed: u64) -> Option<Finished> {
        Self::run(backend, scenario, RunOptions { pace: Pace::Virtual, seed: Some(seed), ..RunOptions::default() })
    }

    pub fn run(backend: Backend, scenario: &Scenario, options: RunOptions) -> Option<Finished> {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let location = runtime.block_on(TestLocation::new(backend))?;
        let report = run_scenario(scenario, &location.location, &options).expect("the simulation runs");
        Some(Finished { report, location, runtime })
    }

    /// Reads the run's store with `read`.
    pub fn read<T>(&self, read: impl AsyncFnOnce(&SharedStore) -> T) -> T {
        self.runtime.block_on(async {
            let clock = Arc::new(FakeClock::at_default_epoch());
            let store = bosun_store::open_store(&self.location.location, test_options(clock)).await.expect("open");
            let value = read(&store).await;
            store.close().await;
            value
        })
    }
}
