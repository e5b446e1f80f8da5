//! bosun's fleet simulator and heartbeat-ingest load generator.
//!
//! **Architecture Invariant:** the simulator reimplements no control-plane logic: it drives
//! the real server (in-process or remote) through the real API, as real agents would, and
//! reads every judgement (status, health, rule hits, decisions) back from it.
//!
//! - [`run`]: `bosun sim run SCENARIO.yaml`: the whole control plane (server, every loop,
//!   the chosen store, fake-provider pools) and simulated agents speaking the real API over
//!   loopback, on simulated time; events, assertions, stress-mode chaos, and a report.
//! - [`scenario`]: the scenario format (Navarch's, read strictly, plus bosun's keys).
//! - [`time`]: the simulated clock and the driver that moves it.
//! - `agents`: simulated machines and their instrumented control-plane clients.
//! - `stress` and `chaos`: stress mode's generated fleet and its failures.
//! - [`report`] and `html`: `report.json` and the self-contained `report.html`.
//! - [`load`]: `bosun sim load`: N agents heartbeating open-loop against a server; one
//!   JSON line of rate, latency percentiles, errors, CPU and RSS.

mod agents;
mod chaos;
mod html;
pub mod load;
mod remediation;
pub mod report;
pub mod run;
pub mod scenario;
mod stress;
pub mod time;

pub use report::Report;
pub use run::{RunOptions, SimError, run_scenario};
pub use scenario::{Scenario, ScenarioError};
pub use time::Pace;
