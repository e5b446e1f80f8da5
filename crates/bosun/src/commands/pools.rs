//! `bosun pools`: the pools the server keeps at size, and the demand schedulers report.

use std::process::ExitCode;

use bosun_api::v1;
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output;
use crate::views::{self, PoolRow};

#[derive(Debug, Args)]
pub struct PoolsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PoolsCommand,
}

#[derive(Debug, Subcommand)]
enum PoolsCommand {
    /// Every pool with its size and last decision.
    List,
    /// One pool: spec, last scaling decision with its inputs and reason, provider backoff.
    Get { name: String },
    /// Move a pool to N nodes now (within min..max); an autoscaler resumes after the cooldown.
    Scale { name: String, target: u32 },
    /// Report a scheduler's demand for a pool (read by the queue autoscaler).
    Demand {
        name: String,
        #[arg(long, default_value_t = 0)]
        pending_jobs: u32,
        #[arg(long, default_value_t = 0)]
        queue_depth: u32,
    },
}

pub async fn run(args: &PoolsArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let text = match &args.command {
        PoolsCommand::List => {
            let listed = call!(admin, list_pools, v1::ListPoolsRequest::default());
            let pools: Vec<PoolRow> = listed.pools.iter().map(PoolRow::from_wire).collect();
            output::render(format, &pools, || views::pool_table(&pools).render())?
        }
        PoolsCommand::Get { name } => {
            let got = call!(admin, get_pool, v1::GetPoolRequest { name: name.clone(), ..Default::default() });
            let pool = PoolRow::from_wire(got.pool.as_option().unwrap_or(&v1::Pool::default()));
            output::render(format, &pool, || views::pool_detail(&pool))?
        }
        PoolsCommand::Scale { name, target } => {
            let request = v1::ScalePoolRequest { name: name.clone(), target: *target, ..Default::default() };
            let scaled = call!(admin, scale_pool, request);
            let reason = scaled.decision.as_option().map(|d| d.reason.clone()).unwrap_or_default();
            format!("pool {name}: {reason}\n")
        }
        PoolsCommand::Demand { name, pending_jobs, queue_depth } => {
            let request = v1::ReportPoolDemandRequest {
                pool: name.clone(),
                pending_jobs: *pending_jobs,
                queue_depth: *queue_depth,
                ..Default::default()
            };
            let _reported = call!(admin, report_pool_demand, request);
            format!("demand for pool {name} reported: {pending_jobs} pending jobs, queue depth {queue_depth}\n")
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
