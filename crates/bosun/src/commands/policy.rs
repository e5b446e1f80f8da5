//! `bosun policy`: check a health policy locally, or get, set and test the server's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bosun_api::v1;
use bosun_core::Clock as _;
use bosun_policy::{Policy, check};
use clap::{Args, Subcommand};

use super::read;
use super::remote::{Remote, call};
use crate::output::{self, Format};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (no server needed) and classify sample events with it.
    Check {
        /// The policy file.
        #[arg(required_unless_present = "default", conflicts_with = "default")]
        file: Option<PathBuf>,
        /// Check the built-in default policy.
        #[arg(long)]
        default: bool,
        /// A YAML or JSON list of events (keys event_type, system, gpu_index, gpu_uuid, message, metrics).
        #[arg(long, value_name = "EVENTS")]
        events: Option<PathBuf>,
    },
    /// Print the server's active policy.
    Get,
    /// Replace the server's active policy (admin); the old one stays if this one is invalid.
    Set { file: PathBuf },
    /// Classify sample events on the server, with its active policy or the one given.
    Test {
        #[arg(long, value_name = "EVENTS")]
        events: PathBuf,
        /// Test this policy instead of the active one.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the XID catalog (no server needed): each XID's name, the immediate action
    /// bosun takes (none, restart_app, reset_gpu, reboot, replace), whether it is a
    /// hardware fault, and the classification's source.
    Xids {
        /// Show the catalog as this policy's `xids` section overrides it.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub async fn run(args: &PolicyArgs) -> anyhow::Result<ExitCode> {
    let format = args.remote.output;
    match &args.command {
        PolicyCommand::Check { file, default, events } => {
            check_locally(file.as_deref(), *default, events.as_deref(), format)
        }
        PolicyCommand::Xids { file } => {
            let policy = match file {
                Some(path) => {
                    let text = read(path, "policy")?;
                    Policy::from_yaml(&text).with_context(|| format!("{} is not a valid policy", path.display()))?
                }
                None => Policy::builtin()?,
            };
            let catalog = policy.xid_catalog();
            match format {
                Format::Table => {
                    println!("# XID catalog {}", catalog.version());
                    print!("{}", table(check::xid_rows(catalog)));
                }
                _ => {
                    let value: serde_json::Value =
                        serde_json::from_str(&check::render_xids_json(catalog)).unwrap_or_default();
                    print!("{}", output::render(format, &value, String::new)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Get => {
            let admin = args.remote.admin()?;
            let policy = call!(admin, get_policy, v1::GetPolicyRequest::default());
            #[derive(serde::Serialize)]
            struct Active<'a> {
                name: &'a str,
                source: &'a str,
                rules: u32,
                yaml: &'a str,
            }
            let active = Active { name: &policy.name, source: &policy.source, rules: policy.rules, yaml: &policy.yaml };
            print!(
                "{}",
                output::render(format, &active, || format!(
                    "# policy {:?} ({} rules) from {}\n{}",
                    active.name, active.rules, active.source, active.yaml
                ))?
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Set { file } => {
            let admin = args.remote.admin()?;
            let yaml = read(file, "policy")?;
            let set = call!(admin, set_policy, v1::SetPolicyRequest { yaml, ..Default::default() });
            println!("policy {:?} active ({} rules)", set.name, set.rules);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { events, file } => {
            let admin = args.remote.admin()?;
            let text = read(events, "events file")?;
            let now = bosun_core::SystemClock.now();
            let events = check::parse_events(&text, now).with_context(|| format!("in {}", events.display()))?;
            let yaml = file.as_deref().map(|f| read(f, "policy")).transpose()?.unwrap_or_default();
            let request = v1::TestPolicyRequest {
                yaml,
                events: events.iter().map(bosun_api::convert::health_event).collect(),
                ..Default::default()
            };
            let tested = call!(admin, test_policy, request);
            let classified: Vec<bosun_core::ClassifiedEvent> = events
                .into_iter()
                .zip(&tested.verdicts)
                .map(|(event, v)| bosun_core::ClassifiedEvent {
                    event,
                    verdict: bosun_core::Verdict {
                        health: bosun_api::convert::health_from("result", v.result)
                            .unwrap_or(bosun_core::Health::Unknown),
                        rule: v.rule.clone(),
                        action: bosun_api::convert::remediation_action_from("action", v.action)
                            .unwrap_or(bosun_core::RemediationAction::None),
                        errors: v.errors.clone(),
                    },
                })
                .collect();
            print_classified(&classified, format);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_locally(
    file: Option<&Path>,
    default: bool,
    events: Option<&Path>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let policy = match (file, default) {
        (_, true) => Policy::builtin()?,
        (Some(path), false) => {
            let text = read(path, "policy")?;
            match Policy::from_yaml(&text) {
                Ok(policy) => policy,
                Err(error) => {
                    eprintln!("error: {} is not a valid policy: {error}", path.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        (None, false) => anyhow::bail!("give a policy FILE or --default"),
    };
    let Some(events) = events else {
        match format {
            Format::Table => print!("{}", table(check::rule_rows(&policy))),
            _ => {
                let rules: Vec<_> = policy
                    .rules()
                    .iter()
                    .map(|r| serde_json::json!({"name": r.name(), "condition": r.condition(), "result": r.result().as_str().to_ascii_lowercase(), "action": r.action().as_str()}))
                    .collect();
                let summary = serde_json::json!({"name": policy.name(), "valid": true, "rules": rules});
                print!("{}", output::render(format, &summary, String::new)?);
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let text = read(events, "events file")?;
    let parsed = match check::parse_events(&text, bosun_core::SystemClock.now()) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("error: {}: {error}", events.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    print_classified(&policy.classify_all(parsed), format);
    Ok(ExitCode::SUCCESS)
}

/// Prints classified events: a table or exactly the JSON array of `check::render_json`;
/// rule errors go to stderr so the output's shape never changes.
fn print_classified(classified: &[bosun_core::ClassifiedEvent], format: Format) {
    match format {
        Format::Json => println!("{}", check::render_json(classified)),
        Format::Yaml => {
            let rows: serde_json::Value = serde_json::from_str(&check::render_json(classified)).unwrap_or_default();
            print!("{}", serde_yaml::to_string(&rows).unwrap_or_default());
        }
        Format::Table => print!("{}", table(check::event_rows(classified))),
    }
    eprint!("{}", check::render_errors(classified));
}

/// Lays out a policy listing with the CLI's table.
fn table<const N: usize>(rows: check::Rows<N>) -> String {
    let mut table = output::Table::new(rows.header);
    for row in rows.rows {
        table.row(row);
    }
    table.render()
}
