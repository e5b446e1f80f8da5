//! Hidden helpers for bosun's own tests.
//!
//! `bosun debug crash-writer` performs hard-state writes forever and prints `ack <node id>`
//! after each commit returns. The crash-durability test kills it with SIGKILL at random
//! moments and then checks that every acknowledged write survived.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::command::CommandRequest;
use bosun_core::instance::InstanceRequest;
use bosun_core::{
    Actor, Clock as _, Command, CommandKind, Health, Instance, InstanceId, InstanceTrigger, Labels, Node, NodeId,
    NodeMetadata, NodeRegistration, SystemClock,
};
use bosun_store::{Database, StoreLocation, StoreOptions, WriteBatch};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DebugArgs {
    #[command(flatten)]
    pub store: super::StoreArg,
    #[command(subcommand)]
    command: DebugCommand,
}

#[derive(Debug, Subcommand)]
enum DebugCommand {
    /// Write nodes, instances and commands until killed, printing `ack <node id>` after each
    /// commit.
    CrashWriter {
        /// Prefix of the node ids written, so repeated runs never collide.
        #[arg(long)]
        prefix: String,
    },
}

pub async fn run(location: &StoreLocation, args: &DebugArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DebugCommand::CrashWriter { prefix } => crash_writer(location, prefix).await,
    }
}

async fn crash_writer(location: &StoreLocation, prefix: &str) -> anyhow::Result<ExitCode> {
    let database = Database::connect(location).await?;
    database.ensure_current().await?;
    let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
    let mut stdout = std::io::stdout().lock();
    let mut previous: Option<Node> = None;
    for i in 0u64.. {
        let now = SystemClock.now();
        let id = NodeId::new(format!("{prefix}-{i:06}"))?;
        let node = Node::register(
            &NodeRegistration {
                node_id: id.clone(),
                provider: "fake".into(),
                region: "local".into(),
                zone: "local-a".into(),
                instance_type: "h100-8x".into(),
                pool: None,
                labels: Labels::new(),
                gpus: Vec::new(),
                metadata: NodeMetadata { hostname: id.to_string(), ..NodeMetadata::default() },
            },
            now,
        )?;
        let mut instance = Instance::start_provisioning(
            InstanceRequest {
                id: InstanceId::new(id.as_str())?,
                provider: "fake".into(),
                region: "local".into(),
                zone: "local-a".into(),
                instance_type: "h100-8x".into(),
                pool: None,
                labels: Labels::new(),
            },
            now,
        )?;
        instance.node_id = Some(id.clone());
        instance.apply(InstanceTrigger::AgentRegistered, "node registered", now)?;
        let command = Command::issue(
            CommandRequest {
                node_id: id.clone(),
                kind: CommandKind::Reboot,
                parameters: Default::default(),
                reason: "crash test".into(),
                time_to_live: Duration::from_secs(3600),
            },
            Actor::system("crash-writer"),
            now,
        )?;
        let mut batch = WriteBatch::new(Actor::system("crash-writer"), "crash test")
            .create_node(node, Vec::new())
            .create_instance(instance)
            .create_command(command);
        // Also update the previous node, so updates are interrupted too.
        if let Some(mut last) = previous.take() {
            last.health = Health::Healthy;
            batch = batch.update_node(last);
        }
        store.commit(batch).await?;
        writeln!(stdout, "ack {id}")?;
        stdout.flush()?;
        previous = Some(store.node(&id).await?);
    }
    Ok(ExitCode::SUCCESS)
}
