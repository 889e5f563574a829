//! The `boat` binary: parse arguments, set up logging, run the command.

use anyhow::Context;
use boat::rpc::Conn;
use boat::{admin_cmd, bench, deploy, images_cmd, logging, node_cmd, train_cmd};
use clap::{Parser, Subcommand};

// glibc's malloc and free were a sixth of a loaded node's CPU; mimalloc
// serves about a quarter more requests. Its 15 MB more RSS than glibc's was
// measured while it still used huge pages (see `disable_huge_pages`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Every node's Raft state and one verdict: healthy, degraded or no quorum.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Log in; the token is saved (mode 0600) for the other commands.
    Login {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        email: String,
        #[arg(long, env = "BOAT_PASSWORD", hide_env_values = true)]
        password: String,
        /// Token lifetime in seconds (default: 24 hours).
        #[arg(long, default_value_t = 0)]
        ttl_seconds: u64,
    },
    /// Revoke the saved (or given) token.
    Logout {
        #[command(flatten)]
        conn: Conn,
    },
    /// Create, list, ban and delete users.
    Users {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin_cmd::UsersCmd,
    },
    /// Upload, list, show and delete CSV datasets.
    Datasets {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin_cmd::DatasetsCmd,
    },
    /// Upload, list, roll back and delete models.
    Models {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin_cmd::ModelsCmd,
    },
    /// Create and manage apps (ensembles of model versions).
    Apps {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin_cmd::AppsCmd,
    },
    /// Add and remove nodes.
    Cluster {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin_cmd::ClusterCmd,
    },
    /// Model templates: built-in trainers and registered container images.
    Templates {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: train_cmd::TemplatesCmd,
    },
    /// Train jobs: create, list, show, stop, trials, best, watch.
    Jobs {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: train_cmd::JobsCmd,
    },
    /// Trial and node logs from the shared directory.
    Logs {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: train_cmd::LogsCmd,
    },
    /// Send a prediction to a model or an app, through the leader.
    Predict {
        #[command(flatten)]
        conn: Conn,
        /// The input, as JSON (a bare word is taken as a string).
        input: String,
        /// Model or app name (the echo model when absent).
        #[arg(long)]
        model: Option<String>,
        /// Pin a model version.
        #[arg(long)]
        version: Option<u64>,
        /// Idempotency key: a retry with the same key returns the first result.
        #[arg(long)]
        key: Option<String>,
    },
    /// Inject a failure into one node.
    Control {
        #[command(flatten)]
        conn: Conn,
        /// The node's address, e.g. 127.0.0.1:8082.
        url: String,
        #[command(subcommand)]
        cmd: admin_cmd::ControlCmd,
    },
    /// Measure throughput, latency and failover on a fresh local cluster.
    Bench(bench::BenchArgs),
    /// Build Boat's worker image on the local Docker engine.
    Images {
        #[command(subcommand)]
        cmd: images_cmd::ImagesCmd,
    },
    /// Make the local Docker engine a Swarm manager, or leave the Swarm.
    Swarm {
        #[command(subcommand)]
        cmd: images_cmd::SwarmCmd,
    },
    /// Run one train-job trial as the worker contract in the environment
    /// says (started by the orchestrator, in a process or a container).
    Worker,
}

/// Runs a client command; a failure is one line (JSON with `--json`) and
/// exit code 1.
fn client<F: std::future::Future<Output = anyhow::Result<()>>>(
    runtime: &tokio::runtime::Runtime,
    json: bool,
    f: F,
) -> ! {
    logging::init_client();
    match runtime.block_on(f) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let reason = match e.downcast_ref::<boat::rpc::RpcError>() {
                Some(rpc) => rpc.0.message().to_string(),
                None => format!("{e:#}"),
            };
            if json {
                println!("{}", serde_json::json!({"error": reason}));
            } else {
                eprintln!("error: {reason}");
            }
            std::process::exit(1)
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// huge pages on its arenas, and then one touched byte keeps 2 MiB
/// resident: with them an idle node held 106 MB instead of 61 MB, and one
/// after a minute of full load 180 MB instead of 134 MB. They bought about
/// 5% more throughput, measured side by side, within this machine's noise.
fn disable_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory
    // of ours; a kernel without it returns an error, which changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> anyhow::Result<()> {
    disable_huge_pages();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    match cli.command {
        Cmd::Node(args) => {
            let rotation = logging::Rotation { max_bytes: args.log_max_bytes, keep: args.log_files };
            let log_dir = args.log_dir.clone().unwrap_or_else(|| args.shared_dir.join("logs/nodes"));
            let _guard = logging::init_node(Some(&log_dir), &format!("node-{}.log", args.id), rotation)?;
            logging::log_panics();
            runtime.block_on(node_cmd::run(args))?;
        }
        Cmd::Deploy(args) => {
            logging::init_client();
            runtime.block_on(deploy::run(args))?;
        }
        Cmd::Status { conn } => {
            let json = conn.json;
            client(&runtime, json, async move {
                if admin_cmd::status(&conn).await? {
                    Ok(())
                } else {
                    anyhow::bail!("the cluster has no quorum")
                }
            })
        }
        Cmd::Login { conn, email, password, ttl_seconds } => {
            client(&runtime, conn.json, admin_cmd::login(&conn, email, password, ttl_seconds))
        }
        Cmd::Logout { conn } => client(&runtime, conn.json, admin_cmd::logout(&conn)),
        Cmd::Users { conn, cmd } => client(&runtime, conn.json, admin_cmd::users(&conn, cmd)),
        Cmd::Datasets { conn, cmd } => client(&runtime, conn.json, admin_cmd::datasets(&conn, cmd)),
        Cmd::Models { conn, cmd } => client(&runtime, conn.json, admin_cmd::models(&conn, cmd)),
        Cmd::Apps { conn, cmd } => client(&runtime, conn.json, admin_cmd::apps(&conn, cmd)),
        Cmd::Cluster { conn, cmd } => client(&runtime, conn.json, admin_cmd::cluster(&conn, cmd)),
        Cmd::Templates { conn, cmd } => client(&runtime, conn.json, train_cmd::templates(&conn, cmd)),
        Cmd::Jobs { conn, cmd } => client(&runtime, conn.json, train_cmd::jobs(&conn, cmd)),
        Cmd::Logs { conn, cmd } => client(&runtime, conn.json, train_cmd::logs(&conn, cmd)),
        Cmd::Predict { conn, input, model, version, key } => {
            client(&runtime, conn.json, admin_cmd::predict(&conn, input, model, key, version))
        }
        Cmd::Control { conn, url, cmd } => client(&runtime, conn.json, admin_cmd::control(&conn, &url, cmd)),
        Cmd::Bench(args) => {
            logging::init_client();
            runtime.block_on(bench::run(args))?;
        }
        Cmd::Images { cmd } => client(&runtime, false, images_cmd::images(cmd)),
        Cmd::Swarm { cmd } => client(&runtime, false, images_cmd::swarm(cmd)),
        Cmd::Worker => {
            drop(runtime);
            if let Err(e) = boat_training::worker::run_from_env() {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
