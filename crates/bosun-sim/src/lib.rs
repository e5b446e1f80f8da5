//! The fleet simulator and load generator.
//!
//! **Architecture Invariant:** the simulator reimplements no control-plane logic: it drives
//! the real server (in-process or remote) through the real API, as real agents would.
//!
//! Layout:
//! - [`load`]: `bosun sim load`, the heartbeat-ingest benchmark.

pub mod load;
