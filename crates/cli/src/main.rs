//! The `boat` binary: parse arguments, set up logging, run the command.

use anyhow::Context;
use boat::commands::{self, ControlCmd, PredictArgs, Target};
use boat::{bench, deploy, logging, models_cmd, node_cmd};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "boat", version, about = "Raft-replicated, fault-tolerant ML prediction serving")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once at start-up; the size of the node variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run one cluster node.
    Node(node_cmd::NodeArgs),
    /// Start a local cluster and restart nodes that exit; Ctrl-C stops it.
    Deploy(deploy::DeployArgs),
    /// Show every node's Raft state.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Send a prediction to the leader.
    Predict {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: PredictArgs,
    },
    /// Upload, list, roll back and delete models.
    Models(models_cmd::ModelsArgs),
    /// Inject a failure into one node.
    Control {
        /// The node's base URL, e.g. http://127.0.0.1:8082.
        url: String,
        #[command(subcommand)]
        cmd: ControlCmd,
    },
    /// Measure throughput, latency and failover on a fresh local cluster.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    match cli.command {
        Cmd::Node(args) => {
            let rotation = logging::Rotation { max_bytes: args.log_max_bytes, keep: args.log_files };
            let _guard = logging::init_node(args.log_dir.as_deref(), &format!("node-{}.log", args.id), rotation)?;
            logging::log_panics();
            runtime.block_on(node_cmd::run(args))?;
        }
        Cmd::Deploy(args) => {
            logging::init_client();
            runtime.block_on(deploy::run(args))?;
        }
        Cmd::Status { target } => {
            logging::init_client();
            runtime.block_on(commands::status(&target))?;
        }
        Cmd::Predict { target, args } => {
            logging::init_client();
            runtime.block_on(commands::predict(&target, args))?;
        }
        Cmd::Models(args) => {
            logging::init_client();
            runtime.block_on(models_cmd::run(args))?;
        }
        Cmd::Control { url, cmd } => {
            logging::init_client();
            runtime.block_on(commands::control(&url, cmd))?;
        }
        Cmd::Bench(args) => {
            logging::init_client();
            runtime.block_on(bench::run(args))?;
        }
    }
    Ok(())
}
