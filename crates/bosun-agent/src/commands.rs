//! Running the commands the control plane delivers, once each, and acknowledging them.
//!
//! Delivery is at least once (SPEC 3.4): a command whose acknowledgement was lost comes
//! back. The executor remembers the final acknowledgement of recent commands and sends it
//! again instead of running the command twice. Commands run one at a time, in delivery
//! order, so a CORDON issued after a DRAIN never overtakes it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bosun_core::command::MAX_COMMAND_PARAMETERS;
use bosun_core::{Clock, CommandKind, NodeId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::control_plane::{AckOutcome, CommandAck, ControlPlane, DeliveredCommand};
use crate::gpu::GpuSource;
use crate::hooks::{Hook, HookContext, Hooks};

/// How many finished commands are remembered for re-delivery. Redelivery happens within
/// minutes, long before this many newer commands arrive.
const REMEMBERED_COMMANDS: usize = 64;

/// Attempts to deliver one acknowledgement before leaving it to redelivery.
const ACK_ATTEMPTS: u32 = 8;

/// Longest detail value or message in an acknowledgement; the server accepts 4 KiB.
const MAX_DETAIL_BYTES: usize = 2048;

/// What the node has been told locally, for whatever runs work on it to consult.
/// Clones share the flags.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags(Arc<Flags>);

#[derive(Debug, Default)]
struct Flags {
    cordoned: AtomicBool,
    draining: AtomicBool,
}

impl NodeFlags {
    /// No new work should start here.
    pub fn is_cordoned(&self) -> bool {
        self.0.cordoned.load(Ordering::Relaxed)
    }

    /// Running work is being (or was) moved away.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    fn set(&self, cordoned: bool, draining: bool) {
        self.0.cordoned.store(cordoned, Ordering::Relaxed);
        self.0.draining.store(draining, Ordering::Relaxed);
    }
}

/// Whether the agent goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// TERMINATE finished: the agent stops.
    Terminate,
}

/// How one command ended.
struct Outcome {
    succeeded: bool,
    message: String,
    details: BTreeMap<String, String>,
    flow: Flow,
}

impl Outcome {
    fn new(result: Result<String, String>, details: BTreeMap<String, String>) -> Self {
        let (succeeded, message) = match result {
            Ok(message) => (true, message),
            Err(message) => (false, message),
        };
        Outcome { succeeded, message, details, flow: Flow::Continue }
    }
}

/// Runs delivered commands, persisting across re-registrations.
pub(crate) struct CommandExecutor {
    node_id: NodeId,
    hooks: Hooks,
    gpus: Arc<dyn GpuSource>,
    control: Arc<dyn ControlPlane>,
    clock: Arc<dyn Clock>,
    flags: NodeFlags,
    /// Final acknowledgements of recent commands, oldest first.
    finished: VecDeque<CommandAck>,
    backoff: Backoff,
}

impl CommandExecutor {
    pub(crate) fn new(
        node_id: NodeId,
        hooks: Hooks,
        gpus: Arc<dyn GpuSource>,
        control: Arc<dyn ControlPlane>,
        clock: Arc<dyn Clock>,
        flags: NodeFlags,
        seed: u64,
    ) -> Self {
        CommandExecutor {
            node_id,
            hooks,
            gpus,
            control,
            clock,
            flags,
            finished: VecDeque::new(),
            backoff: Backoff::new(BackoffPolicy::CALLS, seed),
        }
    }

    /// Runs commands from `inbox` until `stop` is cancelled, the inbox closes, or a
    /// TERMINATE completes (then returns [`Flow::Terminate`]). Cancelling `stop` abandons
    /// a running hook; shell hooks are killed. Ending cancels `stop`, which ends the
    /// agent's other loops.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<DeliveredCommand>, stop: CancellationToken) -> Flow {
        let _stop_sessions = stop.clone().drop_guard();
        loop {
            let command = tokio::select! {
                () = stop.cancelled() => return Flow::Continue,
                command = inbox.recv() => match command {
                    Some(command) => command,
                    None => return Flow::Continue,
                },
            };
            // Boxed: handling a command (hooks, processes) is a large future, and an idle
            // agent, of which the simulator runs a hundred thousand, should not carry it.
            let flow = tokio::select! {
                () = stop.cancelled() => return Flow::Continue,
                flow = Box::pin(self.handle(command)) => flow,
            };
            if flow == Flow::Terminate {
                return flow;
            }
        }
    }

    async fn handle(&mut self, command: DeliveredCommand) -> Flow {
        if let Some(ack) = self.finished.iter().find(|ack| ack.command_id == command.id).cloned() {
            debug!(command_id = %command.id, outcome = %ack.outcome, "command delivered again after it finished; acknowledging again");
            self.send(&ack).await;
            return Flow::Continue;
        }
        let span = info_span!("command", command_id = %command.id, kind = %command.kind);
        async {
            let outcome = if command.deadline.is_some_and(|deadline| self.clock.now() > deadline) {
                Outcome::new(Err("deadline passed before the agent could start it".into()), BTreeMap::new())
            } else {
                info!("starting command");
                self.send(&ack(&command, AckOutcome::Accepted, "started".into(), BTreeMap::new())).await;
                self.execute(&command).await
            };
            let result = if outcome.succeeded { AckOutcome::Succeeded } else { AckOutcome::Failed };
            info!(outcome = %result, message = %outcome.message, "command finished");
            let final_ack = ack(&command, result, outcome.message, outcome.details);
            self.send(&final_ack).await;
            if self.finished.len() == REMEMBERED_COMMANDS {
                self.finished.pop_front();
            }
            self.finished.push_back(final_ack);
            outcome.flow
        }
        .instrument(span)
        .await
    }

    async fn execute(&self, command: &DeliveredCommand) -> Outcome {
        let mut details = BTreeMap::new();
        match &command.kind {
            CommandKind::Cordon => {
                self.flags.set(true, self.flags.is_draining());
                let result =
                    self.optional_hook("cordon", self.hooks.cordon.as_ref(), command, None, &mut details).await;
                Outcome::new(result.map(|()| "cordoned".into()), details)
            }
            CommandKind::Uncordon => {
                self.flags.set(false, false);
                let result =
                    self.optional_hook("uncordon", self.hooks.uncordon.as_ref(), command, None, &mut details).await;
                Outcome::new(result.map(|()| "uncordoned".into()), details)
            }
            CommandKind::Drain => {
                let result = self.drain(command, &mut details).await;
                Outcome::new(result, details)
            }
            CommandKind::Terminate => self.terminate(command, details).await,
            CommandKind::RunDiagnostic => {
                let test = command.parameters.get("test").map_or("all", String::as_str);
                let report = self.gpus.run_diagnostic(test).await;
                let result = if report.passed { Ok(report.message) } else { Err(report.message) };
                Outcome::new(result, report.details)
            }
            CommandKind::Reboot => {
                let result = match &self.hooks.reboot {
                    Some(hook) => self
                        .run_hook("reboot", hook, command, None, &mut details)
                        .await
                        .map(|()| "reboot started".into()),
                    None => self.gpus.reboot_without_hook().await,
                };
                Outcome::new(result, details)
            }
            CommandKind::ResetGpu => {
                let result = match command.parameters.get("gpu").and_then(|gpu| gpu.trim().parse::<u32>().ok()) {
                    None => Err("RESET_GPU needs the parameter gpu=<index>".into()),
                    Some(index) => match &self.hooks.reset_gpu {
                        Some(hook) => self
                            .run_hook("reset_gpu", hook, command, None, &mut details)
                            .await
                            .map(|()| format!("GPU {index} reset")),
                        None => self.gpus.reset_gpu(index).await,
                    },
                };
                Outcome::new(result, details)
            }
            CommandKind::Custom(name) => {
                let result = match self.hooks.custom.get(name) {
                    Some(hook) => self
                        .run_hook("custom", hook, command, None, &mut details)
                        .await
                        .map(|()| format!("custom:{name} done")),
                    None => Err(format!("no handler for custom:{name}")),
                };
                Outcome::new(result, details)
            }
        }
    }

    /// Cordons, marks the node draining, and runs the drain hook within the command's
    /// `timeout` parameter. Without a hook there is nothing to drain.
    async fn drain(
        &self,
        command: &DeliveredCommand,
        details: &mut BTreeMap<String, String>,
    ) -> Result<String, String> {
        self.flags.set(true, true);
        let timeout = parse_timeout(&command.parameters)?;
        match &self.hooks.drain {
            Some(hook) => self.run_hook("drain", hook, command, timeout, details).await.map(|()| "drained".into()),
            None => Ok("nothing to drain: no drain hook configured".into()),
        }
    }

    /// Drains (a failed drain stops the termination unless `force=true`), runs the
    /// shutdown hook, and ends the agent whatever the hook did: the machine is going away.
    async fn terminate(&self, command: &DeliveredCommand, mut details: BTreeMap<String, String>) -> Outcome {
        if let Err(problem) = self.drain(command, &mut details).await {
            if !is_true(command.parameters.get("force")) {
                let message = format!("not terminating: {problem} (set force=true to terminate anyway)");
                return Outcome::new(Err(message), details);
            }
            warn!(%problem, "drain failed; terminating anyway (force=true)");
            details.insert("drain.error".into(), problem);
        }
        let result = match &self.hooks.shutdown {
            Some(hook) => self
                .run_hook("shutdown", hook, command, None, &mut details)
                .await
                .map(|()| "drained and shut down; the agent is stopping".into()),
            None => Ok("drained; no shutdown hook configured; the agent is stopping".into()),
        };
        Outcome { flow: Flow::Terminate, ..Outcome::new(result, details) }
    }

    async fn optional_hook(
        &self,
        stage: &str,
        hook: Option<&Hook>,
        command: &DeliveredCommand,
        timeout: Option<Duration>,
        details: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        match hook {
            Some(hook) => self.run_hook(stage, hook, command, timeout, details).await,
            None => Ok(()),
        }
    }

    /// Runs `hook`, recording its output and exit code as `<stage>.output` and
    /// `<stage>.exit_code`.
    async fn run_hook(
        &self,
        stage: &str,
        hook: &Hook,
        command: &DeliveredCommand,
        timeout: Option<Duration>,
        details: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let context = HookContext {
            node_id: self.node_id.clone(),
            command: command.kind.clone(),
            parameters: command.parameters.clone(),
        };
        let (result, output) = match hook.run(context, timeout).await {
            Ok(output) => (Ok(()), output),
            Err(failure) => (Err(format!("{stage} hook failed: {}", failure.message)), failure.output),
        };
        if !output.output.is_empty() {
            details.insert(format!("{stage}.output"), output.output);
        }
        if let Some(code) = output.exit_code {
            details.insert(format!("{stage}.exit_code"), code.to_string());
        }
        result
    }

    /// Sends `ack`, retrying transient failures a few times. A lost acceptance or result
    /// is not fatal: the server re-delivers an unacknowledged command, and the executor
    /// answers a re-delivered finished command with its remembered result.
    async fn send(&mut self, ack: &CommandAck) {
        self.backoff.reset();
        for attempt in 1..=ACK_ATTEMPTS {
            match self.control.ack_command(&self.node_id, ack).await {
                Ok(()) => return,
                Err(error) if error.is_retryable() && attempt < ACK_ATTEMPTS => {
                    debug!(%error, attempt, "acknowledgement failed; retrying");
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                Err(error) => {
                    warn!(%error, outcome = %ack.outcome, "could not acknowledge the command");
                    return;
                }
            }
        }
    }
}

/// Builds an acknowledgement within the server's limits.
fn ack(
    command: &DeliveredCommand,
    outcome: AckOutcome,
    message: String,
    details: BTreeMap<String, String>,
) -> CommandAck {
    let details = details.into_iter().take(MAX_COMMAND_PARAMETERS).map(|(key, value)| (key, clip(&value))).collect();
    CommandAck { command_id: command.id, outcome, message: clip(&message), details }
}

/// `text` fit for an acknowledgement: control characters (terminal colours from hook
/// output) replaced, and at most [`MAX_DETAIL_BYTES`], keeping the end, where a failing
/// script's explanation usually is.
fn clip(text: &str) -> String {
    let clean: String =
        text.chars().map(|c| if c.is_control() && !matches!(c, '\n' | '\t') { '?' } else { c }).collect();
    if clean.len() <= MAX_DETAIL_BYTES {
        return clean;
    }
    const MARK: &str = "[truncated] ";
    let mut start = clean.len() - (MAX_DETAIL_BYTES - MARK.len());
    while !clean.is_char_boundary(start) {
        start += 1;
    }
    format!("{MARK}{}", &clean[start..])
}

/// The `timeout` parameter: whole seconds (`300`) or with a unit (`90s`, `5m`, `1h`).
fn parse_timeout(parameters: &BTreeMap<String, String>) -> Result<Option<Duration>, String> {
    let Some(text) = parameters.get("timeout") else { return Ok(None) };
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid timeout parameter {text:?}: expected seconds such as 300, 90s, 5m or 1h")),
    };
    number
        .parse::<u64>()
        .map(|n| Some(Duration::from_secs(n.saturating_mul(scale))))
        .map_err(|_| format!("invalid timeout parameter {text:?}: expected seconds such as 300, 90s, 5m or 1h"))
}

fn is_true(value: Option<&String>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_accept_seconds_and_units() {
        let params = |v: &str| BTreeMap::from([("timeout".to_owned(), v.to_owned())]);
        assert_eq!(parse_timeout(&BTreeMap::new()), Ok(None));
        assert_eq!(parse_timeout(&params("300")), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_timeout(&params("90s")), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout(&params("5m")), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_timeout(&params("1h")), Ok(Some(Duration::from_secs(3600))));
        assert!(parse_timeout(&params("soon")).unwrap_err().contains("invalid timeout parameter \"soon\""));
        assert!(parse_timeout(&params("5d")).is_err());
    }

    #[test]
    fn acknowledgement_text_is_clipped_and_cleaned() {
        assert_eq!(clip("\u{1b}[31mred\u{1b}[0m\n"), "?[31mred?[0m\n");
        let long = format!("{}END", "é".repeat(2000));
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_DETAIL_BYTES && clipped.starts_with("[truncated] ") && clipped.ends_with("END"));
    }

    #[test]
    fn flags_parse_leniently() {
        assert!(is_true(Some(&"TRUE".to_owned())) && is_true(Some(&"1".to_owned())));
        assert!(!is_true(Some(&"no".to_owned())) && !is_true(None));
    }
}
