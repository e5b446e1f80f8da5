//! Site-specific actions the agent runs for commands: stop the scheduler on cordon,
//! evict jobs on drain, power off on terminate, anything for a custom command.
//!
//! A hook is either a shell command (what an operator writes in a config file) or an async
//! closure (what the simulator and embedders register). Both run under a time limit, and
//! what they print ends up in the command's acknowledgement.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{CommandKind, NodeId};

/// What a function hook returns: its output on success, a message on failure.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

type HookFn = dyn Fn(HookContext) -> HookFuture + Send + Sync;

/// One action, with the time it may take.
#[derive(Clone)]
pub struct Hook {
    action: Action,
    timeout: Duration,
}

#[derive(Clone)]
enum Action {
    Shell(Arc<str>),
    Function(Arc<HookFn>),
}

/// What a hook is told about the command it runs for. Shell hooks get it as environment
/// variables: `BOSUN_NODE_ID`, `BOSUN_COMMAND` and `BOSUN_PARAM_<NAME>` per parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct HookContext {
    pub node_id: NodeId,
    pub command: CommandKind,
    pub parameters: BTreeMap<String, String>,
}

/// What a hook printed (shell) or returned (function).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HookOutput {
    pub output: String,
    pub exit_code: Option<i32>,
}

/// A hook failed, timed out, or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct HookFailure {
    pub message: String,
    pub output: HookOutput,
}

impl Hook {
    /// Used unless [`Hook::with_timeout`] or the command says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

    /// Runs `script` with `sh -c`. It succeeds when it exits 0; on timeout the shell is
    /// killed.
    pub fn shell(script: impl Into<String>) -> Hook {
        Hook { action: Action::Shell(Arc::from(script.into())), timeout: Self::DEFAULT_TIMEOUT }
    }

    /// Runs an async closure: `Ok(output)` succeeds, `Err(message)` fails.
    pub fn function<F, Fut>(hook: F) -> Hook
    where
        F: Fn(HookContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let boxed = move |context: HookContext| -> HookFuture { Box::pin(hook(context)) };
        Hook { action: Action::Function(Arc::new(boxed)), timeout: Self::DEFAULT_TIMEOUT }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Hook {
        self.timeout = timeout;
        self
    }

    /// Runs the hook for `context`, within `timeout` if given (a DRAIN's `timeout`
    /// parameter), else within the hook's own limit.
    pub(crate) async fn run(&self, context: HookContext, timeout: Option<Duration>) -> Result<HookOutput, HookFailure> {
        let limit = timeout.unwrap_or(self.timeout);
        let timed_out = || HookFailure { message: format!("timed out after {limit:?}"), output: HookOutput::default() };
        match &self.action {
            Action::Function(hook) => match tokio::time::timeout(limit, hook(context)).await {
                Ok(Ok(output)) => Ok(HookOutput { output, exit_code: None }),
                Ok(Err(message)) => Err(HookFailure { message, output: HookOutput::default() }),
                Err(_) => Err(timed_out()),
            },
            Action::Shell(script) => {
                let child = shell_command(script, &context).spawn().map_err(|e| HookFailure {
                    message: format!("cannot start `{script}`: {e}"),
                    output: HookOutput::default(),
                })?;
                // Dropping the unfinished wait on timeout drops the child, which kills it.
                let finished = tokio::time::timeout(limit, child.wait_with_output()).await.map_err(|_| timed_out())?;
                let output = finished.map_err(|e| HookFailure {
                    message: format!("waiting for `{script}` failed: {e}"),
                    output: HookOutput::default(),
                })?;
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                if !output.stderr.is_empty() {
                    text.push_str(&String::from_utf8_lossy(&output.stderr));
                }
                let captured = HookOutput { output: text, exit_code: output.status.code() };
                if output.status.success() {
                    Ok(captured)
                } else {
                    Err(HookFailure { message: format!("`{script}` failed ({})", output.status), output: captured })
                }
            }
        }
    }
}

fn shell_command(script: &str, context: &HookContext) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        // Whatever a hook prints lands in the command's history on the server: keep the
        // agent's credentials out of its environment.
        .env_remove("BOSUN_TOKEN")
        .env("BOSUN_NODE_ID", context.node_id.as_str())
        .env("BOSUN_COMMAND", context.command.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in &context.parameters {
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        command.env(format!("BOSUN_PARAM_{name}"), value);
    }
    command
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hook = f.debug_struct("Hook");
        match &self.action {
            Action::Shell(script) => hook.field("shell", script),
            Action::Function(_) => hook.field("function", &".."),
        };
        hook.field("timeout", &self.timeout).finish()
    }
}

/// The hooks an agent runs for commands. A missing hook means the agent has nothing
/// site-specific to do: CORDON, UNCORDON and DRAIN still succeed, RESET_GPU asks the GPU
/// source (`nvidia-smi --gpu-reset` on NVML), REBOOT asks the GPU source too (which fails
/// on real machines and is simulated on fake ones), custom commands fail.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub cordon: Option<Hook>,
    pub uncordon: Option<Hook>,
    /// Evicts work; bounded by the DRAIN command's `timeout` parameter.
    pub drain: Option<Hook>,
    /// Runs on TERMINATE after the drain, before the agent stops.
    pub shutdown: Option<Hook>,
    pub reboot: Option<Hook>,
    /// Resets the GPU of a RESET_GPU command (parameter `gpu`, `BOSUN_PARAM_GPU` in shell).
    pub reset_gpu: Option<Hook>,
    /// Handlers for `custom:<name>` commands, by name.
    pub custom: BTreeMap<String, Hook>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> HookContext {
        HookContext {
            node_id: NodeId::new("node-1").expect("valid"),
            command: CommandKind::Drain,
            parameters: BTreeMap::from([("grace-period".to_owned(), "30".to_owned())]),
        }
    }

    #[tokio::test]
    async fn shell_hooks_see_the_command_and_report_output_and_status() {
        let hook = Hook::shell("echo \"$BOSUN_NODE_ID $BOSUN_COMMAND $BOSUN_PARAM_GRACE_PERIOD\"; echo oops >&2");
        let output = hook.run(context(), None).await.expect("exits 0");
        assert_eq!(output, HookOutput { output: "node-1 DRAIN 30\noops\n".into(), exit_code: Some(0) });

        let failure = Hook::shell("echo partial; exit 3").run(context(), None).await.expect_err("exits 3");
        assert_eq!(failure.output.exit_code, Some(3));
        assert_eq!(failure.output.output, "partial\n");
        assert!(failure.message.contains("exit status: 3"), "{}", failure.message);
    }

    #[tokio::test(start_paused = true)]
    async fn function_hooks_are_bounded_by_the_command_timeout() {
        let slow = Hook::function(|_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok("done".to_owned())
        });
        let failure = slow.run(context(), Some(Duration::from_secs(5))).await.expect_err("times out");
        assert_eq!(failure.message, "timed out after 5s");
        let failing = Hook::function(|ctx: HookContext| async move { Err(format!("cannot drain {}", ctx.node_id)) });
        assert_eq!(failing.run(context(), None).await.expect_err("fails").message, "cannot drain node-1");
        assert!(format!("{slow:?}").contains("function"));
    }
}
