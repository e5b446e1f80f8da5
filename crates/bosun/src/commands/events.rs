//! `bosun events`: the change log — one resource's history, an audit trail by actor, or
//! everything, and with `--follow` every change as it is committed.

use std::process::ExitCode;

use bosun_api::v1;
use clap::Args;

use super::remote::{Remote, call};
use crate::output::{self, Format};
use crate::views::{self, EventRow};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    remote: Remote,
    /// Only changes to this kind of resource: node, instance, command, pool or policy.
    #[arg(long)]
    kind: Option<String>,
    /// With --kind: one resource's history.
    #[arg(long, requires = "kind")]
    resource: Option<String>,
    /// Only changes made by node:<id>, operator:<name> or system:<component>.
    #[arg(long)]
    actor: Option<String>,
    /// Only changes after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many (the oldest first).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep printing changes as they happen (JSON and YAML: one document per line).
    #[arg(long, short)]
    follow: bool,
}

pub async fn run(args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let request = v1::ListEventsRequest {
        after_seq: args.after,
        kind: args.kind.clone().unwrap_or_default(),
        resource_id: args.resource.clone().unwrap_or_default(),
        actor: args.actor.clone().unwrap_or_default(),
        limit: args.limit,
        ..Default::default()
    };
    let listed = call!(admin, list_events, request);
    let rows: Vec<EventRow> = listed.events.iter().map(EventRow::from_wire).collect();
    if !args.follow {
        print!("{}", output::render(format, &rows, || views::event_table(&rows).render())?);
        return Ok(ExitCode::SUCCESS);
    }
    // Following: print what exists, then stream from where the list ended, so nothing is
    // missed or repeated in between.
    let after = rows.last().map_or(listed.last_seq.max(args.after), |r| r.seq.max(listed.last_seq));
    for row in &rows {
        print_line(format, row)?;
    }
    let request = v1::WatchEventsRequest {
        after_seq: after,
        kind: args.kind.clone().unwrap_or_default(),
        resource_id: args.resource.clone().unwrap_or_default(),
        actor: args.actor.clone().unwrap_or_default(),
        ..Default::default()
    };
    let options = admin.streaming_options();
    let mut stream = admin
        .servers
        .call(|client| client.watch_events_with_options(request.clone(), options.clone()))
        .await
        .map_err(|e| admin.explain(e))?;
    loop {
        tokio::select! {
            message = stream.message() => match message.map_err(|e| admin.explain(e))? {
                Some(event) => print_line(format, &EventRow::from_wire(&event.to_owned_message()))?,
                None => anyhow::bail!("the server closed the event stream (it is shutting down?)"),
            },
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn print_line(format: Format, row: &EventRow) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string(row)?),
        Format::Yaml => print!("---\n{}", serde_yaml::to_string(row)?),
        Format::Table => println!(
            "{:>6}  {}  {:<8} {:<24} {:<8} {:<12} {:<24} {}",
            row.seq,
            row.at.as_deref().unwrap_or("-"),
            row.kind,
            row.resource_id,
            row.op,
            row.state().unwrap_or("-"),
            row.actor,
            row.reason.as_deref().unwrap_or("-")
        ),
    }
    Ok(())
}
