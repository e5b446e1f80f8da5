//! SSH bootstrap: running a pool's `setup_commands` on machines whose agent has not
//! registered, and the logs of what ran.

mod logs;

pub(crate) use logs::bootstrap_logs;
