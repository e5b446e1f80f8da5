//! `bosun config`: check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate FILE (and the health policy it names) and print the effective
    /// configuration, secrets redacted.
    Check { file: PathBuf },
}

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { file } = &args.command;
    let config = match bosun_config::Config::load(file) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // The server would refuse to start on a policy file it cannot read or compile.
    if let Some(path) = &config.server.health_policy
        && let Err(problem) = check_policy_file(path)
    {
        eprintln!("error: {}: server.health_policy: {problem}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    print!("{}", config.to_redacted_yaml());
    Ok(ExitCode::SUCCESS)
}

/// Reads and compiles the health policy file as the server will at start.
fn check_policy_file(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    bosun_policy::Policy::from_yaml(&text).map_err(|e| format!("{} is not a valid policy: {e}", path.display()))?;
    Ok(())
}
