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
    /// Validate FILE and print the effective configuration, secrets redacted.
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
    match bosun_config::Config::load(file) {
        Ok(config) => {
            print!("{}", config.to_redacted_yaml());
            print_credential_sources(&config);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
