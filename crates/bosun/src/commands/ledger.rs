//! The operations ledger from the command line: `bosun runbooks`, `bosun runs`,
//! `bosun approvals` and `bosun audit`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bosun_api::{convert, v1};
use buffa::MessageField;
use clap::{Args, Subcommand};

use super::read;
use super::remote::{Remote, call, parse_duration};
use crate::output;
use crate::views::ledger::{
    ApprovalRuleRow, ArtifactRow, AuditRow, RunEventRow, RunRow, RunbookRow, approval_rule_table, artifact_table,
    audit_table, event_table, run_detail, run_table, runbook_table,
};

#[derive(Debug, Args)]
pub struct RunbooksArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: RunbooksCommand,
}

#[derive(Debug, Subcommand)]
enum RunbooksCommand {
    /// Store a runbook (YAML); a changed text becomes its next version.
    Apply { file: PathBuf },
    /// Every stored runbook.
    List,
    /// One runbook, with the text as applied.
    Get { name: String },
}

pub async fn run_runbooks(args: &RunbooksArgs) -> anyhow::Result<ExitCode> {
    let ops = args.remote.ops()?;
    let format = args.remote.output;
    let text = match &args.command {
        RunbooksCommand::Apply { file } => {
            let yaml = read(file, "runbook")?;
            let applied = call!(ops, apply_runbook, v1::ApplyRunbookRequest { yaml, ..Default::default() });
            let row = applied.runbook.as_option().map(RunbookRow::from_wire);
            match (&row, format) {
                (Some(row), output::Format::Table) => format!(
                    "runbook {} {} (version {})\n",
                    row.name,
                    if applied.changed { "applied" } else { "unchanged" },
                    row.version
                ),
                _ => output::render(format, &row, String::new)?,
            }
        }
        RunbooksCommand::List => {
            // Every page: runbooks are few, and a list that stops short would mislead.
            let mut request = v1::ListRunbooksRequest::default();
            let mut rows: Vec<RunbookRow> = Vec::new();
            loop {
                let listed = call!(ops, list_runbooks, request.clone());
                rows.extend(listed.runbooks.iter().map(RunbookRow::from_wire));
                if listed.next_page_token.is_empty() {
                    break;
                }
                request.page_token = listed.next_page_token.clone();
            }
            output::render(format, &rows, || runbook_table(&rows).render())?
        }
        RunbooksCommand::Get { name } => {
            let got = call!(ops, get_runbook, v1::GetRunbookRequest { name: name.clone(), ..Default::default() });
            let row = got.runbook.as_option().map(RunbookRow::from_wire);
            output::render(format, &row, || row.as_ref().map(|r| r.spec.clone()).unwrap_or_default())?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Runs, newest first: runbook runs and bosun's own actions (replacements, scaling,
    /// drift repairs).
    List {
        /// queued, awaiting_approval, running, succeeded, failed, cancelled or rejected.
        #[arg(long)]
        status: Option<String>,
        /// runbook, replacement, scale, drift_repair, provider_operation, external, ai_session (an AI
        /// agent's MCP session) or ai_action (an action it asked for that awaited approval).
        #[arg(long)]
        kind: Option<String>,
        /// Runs acting on this node, pool or instance.
        #[arg(long)]
        target: Option<String>,
        /// Runs per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow pages up to this many runs in all.
        #[arg(long)]
        all: bool,
    },
    /// Start a runbook over nodes: those named (--node, repeated), those a label selector
    /// matches, a pool's, or the runbook's own targets. Prints the run id.
    Start {
        runbook: String,
        /// A node to run on (repeat for more).
        #[arg(long = "node", conflicts_with_all = ["selector", "pool"])]
        nodes: Vec<String>,
        /// Nodes whose labels match, e.g. gpu=h100,zone=a.
        #[arg(long, conflicts_with = "pool")]
        selector: Option<String>,
        /// Every node of this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Why, for the ledger.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop a run that has not finished (commands it already issued are not withdrawn).
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Approve the step a run waits for (someone other than its requester, holding the
    /// role the approval names).
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject the step a run waits for: the run ends `rejected`.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// One run with its events.
    Get { id: String },
    /// A run's events, oldest first; with --follow, new ones as they come until the run
    /// has finished.
    Events {
        id: String,
        /// Only events numbered after this one.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, short)]
        follow: bool,
    },
    /// A run's artifacts; with --name, that artifact's content (to --out or stdout).
    Artifacts {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, requires = "name")]
        out: Option<PathBuf>,
    },
}

pub async fn run_runs(args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let ops = args.remote.ops()?;
    let format = args.remote.output;
    let text = match &args.command {
        RunsCommand::List { status, kind, target, limit, all } => {
            let mut request = v1::ListRunsRequest {
                status: status.clone().unwrap_or_default(),
                kind: kind.clone().unwrap_or_default(),
                target: target.clone().unwrap_or_default(),
                page_size: *limit,
                ..Default::default()
            };
            let mut rows = Vec::new();
            loop {
                let page = call!(ops, list_runs, request.clone());
                rows.extend(page.runs.iter().map(|r| RunRow::from_wire(r, false)));
                if !all || page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token.clone();
            }
            output::render(format, &rows, || run_table(&rows).render())?
        }
        RunsCommand::Start { runbook, nodes, selector, pool, reason } => {
            let request = v1::StartRunRequest {
                runbook: runbook.clone(),
                nodes: nodes.clone(),
                selector: selector.clone().unwrap_or_default(),
                pool: pool.clone().unwrap_or_default(),
                reason: reason.clone().unwrap_or_default(),
                ..Default::default()
            };
            let started = call!(ops, start_run, request);
            run_outcome(format, started.run.as_option(), "started")?
        }
        RunsCommand::Cancel { id, reason } => {
            let request = v1::CancelRunRequest {
                run_id: id.clone(),
                reason: reason.clone().unwrap_or_default(),
                ..Default::default()
            };
            let cancelled = call!(ops, cancel_run, request);
            run_outcome(format, cancelled.run.as_option(), "cancelled")?
        }
        RunsCommand::Approve { id, reason } => {
            let request = v1::ApproveRunRequest {
                run_id: id.clone(),
                reason: reason.clone().unwrap_or_default(),
                ..Default::default()
            };
            let approved = call!(ops, approve_run, request);
            run_outcome(format, approved.run.as_option(), "approved")?
        }
        RunsCommand::Reject { id, reason } => {
            let request = v1::RejectRunRequest { run_id: id.clone(), reason: reason.clone(), ..Default::default() };
            let rejected = call!(ops, reject_run, request);
            run_outcome(format, rejected.run.as_option(), "rejected")?
        }
        RunsCommand::Get { id } => {
            let got = call!(ops, get_run, v1::GetRunRequest { run_id: id.clone(), ..Default::default() });
            let row = got.run.as_option().map(|r| RunRow::from_wire(r, true));
            output::render(format, &row, || row.as_ref().map(run_detail).unwrap_or_default())?
        }
        RunsCommand::Events { id, after, follow: false } => {
            let listed = call!(
                ops,
                list_run_events,
                v1::ListRunEventsRequest { run_id: id.clone(), after_seq: *after, ..Default::default() }
            );
            let rows: Vec<RunEventRow> = listed.events.iter().map(RunEventRow::from_wire).collect();
            output::render(format, &rows, || event_table(&rows).render())?
        }
        RunsCommand::Events { id, after, follow: true } => {
            follow_events(&ops, id, *after, format).await?;
            String::new()
        }
        RunsCommand::Artifacts { id, name: None, .. } => {
            let listed =
                call!(ops, list_artifacts, v1::ListArtifactsRequest { run_id: id.clone(), ..Default::default() });
            let rows: Vec<ArtifactRow> = listed.artifacts.iter().map(ArtifactRow::from_wire).collect();
            output::render(format, &rows, || artifact_table(&rows).render())?
        }
        RunsCommand::Artifacts { id, name: Some(name), out } => {
            let got = call!(
                ops,
                get_artifact,
                v1::GetArtifactRequest { run_id: id.clone(), name: name.clone(), ..Default::default() }
            );
            match out {
                Some(path) => {
                    std::fs::write(path, &got.content).with_context(|| format!("cannot write {}", path.display()))?;
                    format!("wrote {} bytes to {}\n", got.content.len(), path.display())
                }
                None => {
                    use std::io::Write as _;
                    std::io::stdout().write_all(&got.content)?;
                    String::new()
                }
            }
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// What a change to a run prints: its id (a table), or `{"id", "status"}` (JSON/YAML).
fn run_outcome(format: output::Format, run: Option<&v1::Run>, done: &str) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Outcome<'a> {
        id: &'a str,
        status: &'a str,
    }
    let run = run.context("the server answered without the run")?;
    if format == output::Format::Table {
        // The id alone on stdout, for scripts; what happened on stderr, for people.
        eprintln!("run {} {done}: {}", run.id, run.status);
        return Ok(format!("{}\n", run.id));
    }
    output::render(format, &Outcome { id: &run.id, status: &run.status }, String::new)
}

/// Prints a run's events as they are appended, one line each (one JSON object per line
/// with `-o json`), until the run has finished and every event is printed.
async fn follow_events(
    ops: &super::remote::Ops,
    id: &str,
    mut after: u64,
    format: output::Format,
) -> anyhow::Result<()> {
    const FINAL: [&str; 4] = ["succeeded", "failed", "cancelled", "rejected"];
    loop {
        // The status first: events appended before a run finished are all in the store
        // once it reads as finished.
        let run = call!(ops, get_run, v1::GetRunRequest { run_id: id.to_owned(), ..Default::default() });
        let finished = run.run.as_option().is_some_and(|r| FINAL.contains(&r.status.as_str()));
        let listed = call!(
            ops,
            list_run_events,
            v1::ListRunEventsRequest { run_id: id.to_owned(), after_seq: after, ..Default::default() }
        );
        for event in &listed.events {
            let row = RunEventRow::from_wire(event);
            match format {
                output::Format::Json => println!("{}", serde_json::to_string(&row)?),
                _ => println!(
                    "{:>5}  {}  {:<18} {}",
                    row.seq,
                    row.at.as_deref().unwrap_or("-"),
                    row.event_type,
                    row.message
                ),
            }
            after = after.max(event.seq);
        }
        if finished && listed.events.is_empty() {
            let status = run.run.as_option().map(|r| r.status.clone()).unwrap_or_default();
            eprintln!("run {id} {status}");
            return Ok(());
        }
        if listed.events.is_empty() {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// The approval policy: which operations need a person's approval.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// The rules in the order they are tried (the built-in rule when none are set).
    Get,
    /// Replace the rules with a file's (admin); the old ones stay if it is invalid.
    Set { file: PathBuf },
    /// Decide a sample operation with the server's rules, or with a file's.
    Test {
        /// The operation, e.g. terminate.
        #[arg(long)]
        tool: String,
        /// read, write or destructive.
        #[arg(long)]
        risk: String,
        /// Nodes acted on at once.
        #[arg(long, default_value_t = 1)]
        targets: u32,
        #[arg(long)]
        pool: Option<String>,
        /// The pool's size, for the fraction of it acted on.
        #[arg(long, default_value_t = 0)]
        pool_size: u32,
        #[arg(long)]
        actor: Option<String>,
        /// agent, operator or admin.
        #[arg(long)]
        role: Option<String>,
        /// Test these rules instead of the server's.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub async fn run_approvals(args: &ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let ops = args.remote.ops()?;
    let format = args.remote.output;
    let ApprovalsCommand::Policy(command) = &args.command;
    let text = match command {
        PolicyCommand::Get => {
            let got = call!(ops, get_approval_policy, v1::GetApprovalPolicyRequest::default());
            let rows: Vec<ApprovalRuleRow> = got.rules.iter().map(ApprovalRuleRow::from_wire).collect();
            output::render(format, &rows, || {
                let note = if got.builtin { "(built-in: no rules are set)\n" } else { "" };
                format!("{note}{}", approval_rule_table(&rows).render())
            })?
        }
        PolicyCommand::Set { file } => {
            let yaml = read(file, "approval policy")?;
            let set = call!(ops, set_approval_policy, v1::SetApprovalPolicyRequest { yaml, ..Default::default() });
            let rows: Vec<ApprovalRuleRow> = set.rules.iter().map(ApprovalRuleRow::from_wire).collect();
            output::render(format, &rows, || format!("approval policy set: {} rules\n", rows.len()))?
        }
        PolicyCommand::Test { tool, risk, targets, pool, pool_size, actor, role, file } => {
            let yaml = file.as_deref().map(|f| read(f, "approval policy")).transpose()?.unwrap_or_default();
            let request = v1::TestApprovalPolicyRequest {
                tool: tool.clone(),
                risk: risk.clone(),
                actor: actor.clone().unwrap_or_default(),
                role: role.clone().unwrap_or_default(),
                targets: *targets,
                pool: pool.clone().unwrap_or_default(),
                pool_size: *pool_size,
                yaml,
                ..Default::default()
            };
            let decided = call!(ops, test_approval_policy, request);
            #[derive(serde::Serialize)]
            struct Decided {
                decision: String,
                role: Option<String>,
                rule: Option<String>,
                error: Option<String>,
            }
            let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            let row = Decided {
                decision: decided.decision.clone(),
                role: non_empty(&decided.role),
                rule: non_empty(&decided.rule),
                error: non_empty(&decided.error),
            };
            output::render(format, &row, || {
                let mut line = row.decision.clone();
                if let Some(role) = &row.role {
                    line.push_str(&format!(" ({role})"));
                }
                line.push_str(&match &row.rule {
                    Some(rule) => format!(" by rule {rule}"),
                    None => " (no rule matched)".to_owned(),
                });
                if let Some(error) = &row.error {
                    line.push_str(&format!("; the rule failed to evaluate: {error}"));
                }
                line + "\n"
            })?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    remote: Remote,
    /// Calls by this token name.
    #[arg(long)]
    actor: Option<String>,
    /// Calls of this method, e.g. bosun.v1.AdminService/IssueCommand.
    #[arg(long)]
    method: Option<String>,
    /// ok, refused or failed.
    #[arg(long)]
    outcome: Option<String>,
    /// Calls in the last DURATION, e.g. 24h.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    since: Option<std::time::Duration>,
    /// Entries numbered after this one.
    #[arg(long, default_value_t = 0)]
    after: u64,
    #[arg(long, default_value_t = 500)]
    limit: u32,
}

pub async fn run_audit(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    use bosun_core::Clock as _;
    let ops = args.remote.ops()?;
    let since = args.since.map(|ago| convert::timestamp(bosun_core::SystemClock.now() - ago));
    let request = v1::ListAuditRequest {
        actor: args.actor.clone().unwrap_or_default(),
        method: args.method.clone().unwrap_or_default(),
        outcome: args.outcome.clone().unwrap_or_default(),
        since: since.map_or_else(MessageField::none, MessageField::some),
        after_seq: args.after,
        limit: args.limit,
        ..Default::default()
    };
    let listed = call!(ops, list_audit, request);
    let rows: Vec<AuditRow> = listed.entries.iter().map(AuditRow::from_wire).collect();
    print!("{}", output::render(args.remote.output, &rows, || audit_table(&rows).render())?);
    Ok(ExitCode::SUCCESS)
}
