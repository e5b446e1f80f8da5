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

/// Says, as YAML comments after the configuration, where each cloud provider would take
/// its credentials from in this environment (never the secrets). Missing credentials are
/// an environment matter, not an error of the file: they are warned about on stderr.
fn print_credential_sources(config: &bosun_config::Config) {
    let mut lines = Vec::new();
    for (name, provider) in &config.providers {
        match bosun_provider::cloud::credential_source(name, provider, |var| std::env::var(var).ok()) {
            Ok(Some(source)) => lines.push(format!("#   {name}: {source}")),
            Ok(None) => {}
            Err(error) => {
                lines.push(format!("#   {name}: none usable here ({error})"));
                eprintln!("warning: providers.{name}: the server would not start here: {error}");
            }
        }
    }
    if !lines.is_empty() {
        println!("# Credentials the providers use in this environment:");
        println!("{}", lines.join("\n"));
    }
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
    print_credential_sources(&config);
    Ok(ExitCode::SUCCESS)
}

/// Reads and compiles the health policy file as the server will at start.
fn check_policy_file(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    bosun_policy::Policy::from_yaml(&text).map_err(|e| format!("{} is not a valid policy: {e}", path.display()))?;
    Ok(())
}
