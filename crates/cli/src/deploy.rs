//! `boat deploy`: start a local cluster and keep it running.
//!
//! The supervisor restarts any node that exits, whatever the reason (a
//! `/control` exit or crash, a kill), with a back-off for nodes that die
//! right after starting. SIGINT or SIGTERM stops every node cleanly.
//! `--docker` and `--swarm` run the nodes in containers instead
//! (`deploy_docker`, `deploy_swarm`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use crate::cluster::{ClusterSpec, LocalCluster};

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Directory for node data, logs and pid files.
    #[arg(long, default_value = ".boat")]
    pub dir: PathBuf,
    /// Address the nodes listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// HTTP port of node 0; node N uses this plus N.
    #[arg(long, default_value_t = 8080)]
    pub http_base: u16,
    /// Raft port of node 0; node N uses this plus N.
    #[arg(long, default_value_t = 9080)]
    pub raft_base: u16,
    /// Path of libonnxruntime.so (otherwise ORT_DYLIB_PATH).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Run every node in a container of its own on this machine's Docker
    /// engine, on a private network, with its HTTP port published on
    /// 127.0.0.1 (the --http-base ports). Builds Boat's image first.
    #[arg(long, conflicts_with = "swarm")]
    pub docker: bool,
    /// Run the nodes as a Docker Swarm stack, one service per node on an
    /// overlay network (see deploy/boat-stack.yml). Builds Boat's image
    /// first; this engine must be a Swarm manager (`boat swarm init`).
    #[arg(long)]
    pub swarm: bool,
    /// With --swarm: remove the stack (its volumes too with --wipe) and exit.
    #[arg(long, requires = "swarm")]
    pub down: bool,
    /// With --docker or --swarm: remove the nodes' data volumes as well
    /// when the deployment is removed.
    #[arg(long)]
    pub wipe: bool,
    /// With --docker or --swarm: the prefix of every container, service,
    /// network and volume name.
    #[arg(long, default_value = "boat")]
    pub project: String,
    /// With --docker or --swarm: the image the nodes run, built from this
    /// binary (train-job workers use it too).
    #[arg(long, default_value = "boat:latest")]
    pub image: String,
    /// Wipe node N of the --docker or --swarm deployment recorded in --dir
    /// and bring it back empty, then exit (what `reset.sh N` runs).
    #[arg(long, value_name = "N")]
    pub reset_node: Option<usize>,
    /// Start node N in a container (--docker) or a service (--swarm) of its
    /// own and add it to the deployment recorded in --dir (a learner that
    /// catches up, then a voter), then exit.
    #[arg(long, value_name = "N")]
    pub add_node: Option<usize>,
    /// Extra arguments passed to every `boat node` (after `--`).
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A node that ran at least this long before exiting is restarted at once.
const STABLE_RUN: Duration = Duration::from_secs(10);

struct Slot {
    started: Instant,
    next_start: Option<Instant>,
    backoff: Duration,
}

pub(crate) fn check_port_free(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    TcpListener::bind(addr).map(drop).with_context(|| format!("{addr} is in use; is another cluster running?"))
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 99 {
        bail!("--nodes must be between 1 and 99");
    }
    if let Some(i) = args.reset_node {
        let layout = crate::deploy_docker::Layout::load(&args.dir)?;
        return match layout.mode.as_str() {
            "docker" => crate::deploy_docker::reset_node(layout, i).await,
            _ => crate::deploy_swarm::reset_node(layout, i).await,
        };
    }
    if let Some(i) = args.add_node {
        let layout = crate::deploy_docker::Layout::load(&args.dir)?;
        return match layout.mode.as_str() {
            "docker" => crate::deploy_docker::add_node(layout, i).await,
            _ => crate::deploy_swarm::add_node(layout, i).await,
        };
    }
    if args.docker || args.swarm {
        return run_in_containers(args).await;
    }
    let bin = std::env::current_exe().context("locating the boat binary")?;
    let mut spec = ClusterSpec::fixed(args.nodes, &args.host, args.http_base, args.raft_base, args.dir.clone(), bin)?;
    spec.ort_lib = args.ort_lib.clone();
    spec.node_args = args.node_args.clone();
    spec.inherit_output = true;
    spec.admin_token_file = Some(crate::cluster::ensure_admin_token(&spec.admin_token_path())?);
    for addr in spec.http.iter().chain(&spec.raft) {
        check_port_free(*addr)?;
    }
    let mut cluster = LocalCluster::start(spec)?;
    let now = Instant::now();
    let mut slots: Vec<Slot> =
        (0..args.nodes).map(|_| Slot { started: now, next_start: None, backoff: MIN_BACKOFF }).collect();

    eprintln!(
        "boat: started {} nodes; data in {}/node-N, logs in {}",
        args.nodes,
        args.dir.display(),
        cluster.spec.log_dir().display()
    );
    for i in 0..args.nodes {
        eprintln!("boat:   node {i}: http://{}  (raft {})", cluster.spec.http[i], cluster.spec.raft[i]);
    }
    eprintln!("boat: try  curl {}/status   and   curl -L -X POST -H 'Content-Type: application/json' -d '{{\"input\": \"Hello\"}}' {}/predict", cluster.http(0), cluster.http(0));
    eprintln!(
        "boat: admin token in {} (mode 0600); send it as  -H \"Authorization: Bearer $(cat {})\"",
        cluster.spec.admin_token_path().display(),
        cluster.spec.admin_token_path().display()
    );
    eprintln!("boat: Ctrl-C stops the cluster");

    let shutdown = crate::node_cmd::shutdown_signal();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut announced_leader = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(status) = cluster.reap(i) {
                let ran = slot.started.elapsed();
                slot.backoff = if ran >= STABLE_RUN { MIN_BACKOFF } else { (slot.backoff * 2).min(MAX_BACKOFF) };
                let wait = if ran >= STABLE_RUN { Duration::ZERO } else { slot.backoff };
                eprintln!("boat: node {i} exited ({status}) after {ran:.1?}; restarting in {wait:?}");
                slot.next_start = Some(Instant::now() + wait);
            }
            if cluster.is_running(i) || cluster.spec.hold_file(i).exists() {
                continue;
            }
            let due = slot.next_start.is_none_or(|t| Instant::now() >= t);
            if due {
                // A node whose data is gone (reset.sh) was removed from the
                // cluster first: it comes back empty, as a joiner, and
                // reset.sh adds it as a learner and promotes it.
                let wiped = !cluster.spec.node_dir(i).join("raft.sled").exists();
                if wiped && cluster.spec.dir.join(format!("node-{i}.rejoin")).exists() {
                    cluster.spec.rejoin.insert(i);
                } else {
                    cluster.spec.rejoin.remove(&i);
                }
                match cluster.start_node(i) {
                    Ok(()) => eprintln!("boat: node {i} started (pid {})", cluster.pid(i).unwrap_or(0)),
                    Err(e) => eprintln!("boat: node {i} failed to start: {e:#}"),
                }
                slot.started = Instant::now();
                slot.next_start = Some(Instant::now() + slot.backoff);
            }
        }
        if let Ok(Some(leader)) = tokio::time::timeout(Duration::from_millis(50), leader_of(&cluster)).await {
            if announced_leader != Some(leader) {
                eprintln!("boat: node {leader} is the leader ({})", cluster.http(leader as usize));
                announced_leader = Some(leader);
            }
        }
    }
    eprintln!("boat: stopping all nodes");
    cluster.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

async fn run_in_containers(args: DeployArgs) -> anyhow::Result<()> {
    if !args.project.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || args.project.is_empty()
    {
        bail!("--project must be lower-case letters, digits and dashes");
    }
    let host_dir = crate::deploy_docker::prepare_host_dir(&args.dir)?;
    let layout = crate::deploy_docker::Layout {
        mode: if args.docker { "docker" } else { "swarm" }.into(),
        project: args.project.clone(),
        nodes: args.nodes,
        http_base: args.http_base,
        image: args.image.clone(),
        host_dir,
        node_args: args.node_args.clone(),
    };
    if args.docker {
        crate::deploy_docker::run(layout, args.ort_lib.as_deref(), args.wipe).await
    } else if args.down {
        crate::deploy_swarm::down(&layout, args.wipe).await
    } else {
        crate::deploy_swarm::up(layout, args.ort_lib.as_deref()).await
    }
}

async fn leader_of(cluster: &LocalCluster) -> Option<u64> {
    for i in 0..cluster.len() {
        if let Ok(s) = cluster.client.status(&cluster.http(i)).await {
            if s.is_leader {
                return Some(s.node_id);
            }
        }
    }
    None
}
