//! `bosun replicas`: the control-plane replicas serving the store, and which one leads.

use std::process::ExitCode;

use bosun_api::v1;
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output;
use crate::views::{self, ReplicaRow};

#[derive(Debug, Args)]
pub struct ReplicasArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ReplicasCommand,
}

#[derive(Debug, Subcommand)]
enum ReplicasCommand {
    /// Every replica as it last announced itself (every 2 s while it runs), and the leader.
    List,
}

pub async fn run(args: &ReplicasArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let text = match &args.command {
        ReplicasCommand::List => {
            let listed = call!(admin, list_replicas, v1::ListReplicasRequest::default());
            let replicas: Vec<ReplicaRow> = listed.replicas.iter().map(ReplicaRow::from_wire).collect();
            output::render(args.remote.output, &replicas, || views::replica_table(&replicas).render())?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
