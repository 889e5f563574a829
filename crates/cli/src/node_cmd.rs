//! `boat node`: run one cluster node until SIGINT/SIGTERM or a `/control`
//! exit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use boat_admin::training::shared::SharedDir;
use boat_admin::training::{runtime, TrainingEnv};
use boat_admin::{HttpConfig, HttpServer};
use boat_raft::domains::training::WorkerRuntime;
use boat_raft::{BatchConfig, Batcher, BoatNode, Domains, Executor, NodeConfig, RaftNode, RaftTuning, Retention};
use boat_serving::{ModelRegistry, RegistryConfig};
use clap::Args;

/// Arguments of `boat node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// This node's id; must be one of the --member ids.
    #[arg(long)]
    pub id: u64,
    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Raft gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9080")]
    pub raft: SocketAddr,
    /// A cluster member as ID=RAFT_ADDR/HTTP_ADDR, once per member (this
    /// node included). Hosts may be names or IP addresses.
    #[arg(long = "member", required = true)]
    pub members: Vec<String>,
    /// The HTTP address clients reach this node at, when it is not the one
    /// in its --member entry (a port published from a container, say):
    /// followers redirect clients to the leader's advertised address.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_http: Option<String>,
    /// Benchmark reference only: run predictions inline, outside the log
    /// (nothing replicated or durable, no idempotency). Needs a one-member
    /// cluster.
    #[arg(long)]
    pub unreplicated: bool,
    /// Join a running cluster: an empty node waits for `boat cluster add`
    /// instead of founding a cluster with the --member list.
    #[arg(long)]
    pub join: bool,
    /// Directory for this node's Raft log, snapshots and state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Directory for this node's log file (node-ID.log); default: the
    /// shared directory's logs/nodes.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// The directory train jobs share: their data, trial outputs and logs.
    /// On several hosts, the same NFS mount on every one.
    #[arg(long, default_value = ".boat/shared")]
    pub shared_dir: PathBuf,
    /// Where train-job workers run unless a job says: local (child
    /// processes of the leader), docker, swarm, or auto: swarm on a Swarm
    /// manager and docker on another engine when Boat's worker image is
    /// there, local otherwise.
    #[arg(long, default_value = "auto")]
    pub worker_runtime: String,
    /// Boat's own worker image, for the docker and swarm runtimes.
    #[arg(long, default_value = "boat-worker:latest")]
    pub worker_image: String,
    /// Rotate the log file once it grows past this many bytes.
    #[arg(long, default_value_t = crate::logging::Rotation::default().max_bytes)]
    pub log_max_bytes: usize,
    /// Rotated log files kept (node-ID.log.1 is the newest), besides the current one.
    #[arg(long, default_value_t = crate::logging::Rotation::default().keep)]
    pub log_files: usize,
    /// Path of libonnxruntime.so (otherwise ORT_DYLIB_PATH).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// File holding the admin bearer token (needed for /control from non-loopback callers).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Largest accepted JSON request body, in bytes.
    #[arg(long, default_value_t = HttpConfig::DEFAULT_MAX_BODY)]
    pub max_body_bytes: usize,
    /// Largest accepted model upload, in bytes.
    #[arg(long, default_value_t = HttpConfig::DEFAULT_MAX_MODEL)]
    pub max_model_bytes: usize,
    /// Most requests packed into one log entry (1 turns batching off).
    #[arg(long, default_value_t = BatchConfig::default().max_batch)]
    pub max_batch: usize,
    /// Microseconds a batch may wait to fill once it could be proposed.
    #[arg(long, default_value_t = BatchConfig::default().max_wait.as_micros() as u64)]
    pub max_wait_us: u64,
    /// Batch entries per model that may be committing at once.
    #[arg(long, default_value_t = BatchConfig::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Requests queued or in flight before new ones get 429.
    #[arg(long, default_value_t = BatchConfig::default().queue_capacity)]
    pub queue_capacity: usize,
    /// ONNX Runtime sessions per model version (concurrent runs).
    #[arg(long, default_value_t = RegistryConfig::default().sessions_per_model)]
    pub sessions_per_model: usize,
    /// Most tensor elements one request may carry.
    #[arg(long, default_value_t = RegistryConfig::default().max_elements_per_request)]
    pub max_elements: usize,
    /// Milliseconds between the leader's digest checkpoints.
    #[arg(long, default_value_t = 2_000)]
    pub checkpoint_ms: u64,
    /// How long /predict waits for commit before answering 503.
    #[arg(long, default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// How long a linearizable read waits for the leader's read index and
    /// for this node to apply it before answering 503.
    #[arg(long, default_value_t = 3_000)]
    pub read_timeout_ms: u64,
    #[arg(long, default_value_t = RaftTuning::default().heartbeat_ms)]
    pub heartbeat_ms: u64,
    #[arg(long, default_value_t = RaftTuning::default().election_min_ms)]
    pub election_min_ms: u64,
    #[arg(long, default_value_t = RaftTuning::default().election_max_ms)]
    pub election_max_ms: u64,
    /// Entries between snapshots (the log is purged below each snapshot).
    #[arg(long, default_value_t = RaftTuning::default().snapshot_every)]
    pub snapshot_every: u64,
    /// Entries kept below a snapshot for followers that lag a little.
    #[arg(long, default_value_t = RaftTuning::default().keep_after_snapshot)]
    pub keep_after_snapshot: u64,
    /// Safety cap on prediction records held (oldest dropped first); they
    /// live on disk, a few hundred bytes each.
    #[arg(long, default_value_t = Retention::default().max_records)]
    pub max_records: u64,
    /// The dedup window, in seconds: a retry with the same key within it
    /// (by the leader's clock) gets the first outcome; older records are dropped.
    #[arg(long, default_value_t = Retention::default().max_age_ms / 1000)]
    pub record_ttl_s: u64,
}

/// Parses `ID=RAFT_ADDR/HTTP_ADDR`.
pub fn parse_member(spec: &str) -> anyhow::Result<(u64, BoatNode)> {
    let (id, addrs) = spec.split_once('=').context("member must look like ID=RAFT_ADDR/HTTP_ADDR")?;
    let (raft, http) = addrs.split_once('/').context("member must look like ID=RAFT_ADDR/HTTP_ADDR")?;
    let id: u64 = id.trim().parse().with_context(|| format!("member id {id:?} is not a number"))?;
    for a in [raft, http] {
        boat_raft::check_host_port(a).map_err(anyhow::Error::msg)?;
    }
    Ok((id, BoatNode { raft_addr: raft.to_string(), http_addr: http.to_string() }))
}

impl NodeArgs {
    fn members(&self) -> anyhow::Result<BTreeMap<u64, BoatNode>> {
        let mut out = BTreeMap::new();
        for m in &self.members {
            let (id, node) = parse_member(m)?;
            if out.insert(id, node).is_some() {
                bail!("member {id} is listed twice");
            }
        }
        Ok(out)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.election_min_ms <= self.heartbeat_ms || self.election_max_ms <= self.election_min_ms {
            bail!("need heartbeat_ms < election_min_ms < election_max_ms");
        }
        if self.max_body_bytes == 0 || self.snapshot_every == 0 || self.log_max_bytes == 0 {
            bail!("max_body_bytes, snapshot_every and log_max_bytes must be positive");
        }
        if self.unreplicated && (self.members.len() != 1 || self.join) {
            bail!("--unreplicated serves a one-member cluster alone (it is a benchmark reference)");
        }
        if let Some(a) = &self.advertise_http {
            boat_raft::check_host_port(a).map_err(|e| anyhow::anyhow!("--advertise-http: {e}"))?;
        }
        Ok(())
    }
}

/// Runs a node until it is told to stop. Returns true when it stopped
/// because of a `/control` exit.
pub async fn run(args: NodeArgs) -> anyhow::Result<bool> {
    args.validate()?;
    return_large_allocations();
    let members = args.members()?;
    if args.unreplicated {
        tracing::warn!("unreplicated: predictions run outside the log, with no replication or durability");
    }
    boat_serving::init_runtime(args.ort_lib.as_deref()).context("loading ONNX Runtime")?;
    let registry_config =
        RegistryConfig { sessions_per_model: args.sessions_per_model, max_elements_per_request: args.max_elements };
    registry_config.validate().map_err(anyhow::Error::msg)?;
    let executor = Executor::new(ModelRegistry::new(registry_config));
    let metrics = boat_admin::metrics::install().context("installing the metrics recorder")?;
    let admin_token = match &args.admin_token_file {
        None => None,
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?.trim().to_string())
        }
    };
    let config = NodeConfig {
        id: args.id,
        raft_listen: args.raft,
        members,
        data_dir: args.data_dir.clone(),
        tuning: RaftTuning {
            heartbeat_ms: args.heartbeat_ms,
            election_min_ms: args.election_min_ms,
            election_max_ms: args.election_max_ms,
            snapshot_every: args.snapshot_every,
            keep_after_snapshot: args.keep_after_snapshot,
        },
        checkpoint_every: Duration::from_millis(args.checkpoint_ms.max(1)),
        join: args.join,
        advertise_http: args.advertise_http.clone(),
    };
    let domains = Domains {
        executor,
        retention: Retention { max_records: args.max_records, max_age_ms: args.record_ttl_s * 1000 },
    };
    let node = RaftNode::start(config, domains).await.context("starting raft")?;
    let batch = BatchConfig {
        max_batch: args.max_batch,
        max_wait: Duration::from_micros(args.max_wait_us),
        max_in_flight: args.max_in_flight,
        queue_capacity: args.queue_capacity,
    };
    let batcher = Batcher::new(&node, batch).map_err(anyhow::Error::msg).context("batching settings")?;
    let training = training_env(&args).await?;
    let http = HttpServer::bind(
        node.clone(),
        batcher,
        HttpConfig {
            listen: args.http,
            max_body_bytes: args.max_body_bytes,
            max_model_bytes: args.max_model_bytes,
            write_timeout: Duration::from_millis(args.write_timeout_ms),
            read_timeout: Duration::from_millis(args.read_timeout_ms),
            admin_token,
            unreplicated: args.unreplicated,
        },
        Some(metrics),
        training,
    )
    .await
    .with_context(|| format!("binding HTTP on {}", args.http))?;
    tracing::info!(node_id = args.id, http = %args.http, raft = %args.raft, data = %args.data_dir.display(), "node started");
    let by_exit = http.serve(shutdown_signal()).await.context("HTTP server")?;
    tracing::info!(by_exit, "stopping");
    node.shutdown().await;
    Ok(by_exit)
}

/// Makes glibc serve every allocation of 1 MiB or more with its own mapping,
/// returned to the system when freed. By default glibc raises that
/// threshold after the first large block is freed (up to 32 MiB), after
/// which the transient copies of model files (upload bodies, assembled
/// blobs read for loading) stay in the heap for good.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tuning parameter (under the
    // allocator's own lock); it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The shared directory (made absolute, so workers find it from anywhere)
/// and the worker runtimes this node offers: always local processes, and
/// the docker and swarm runtimes when a Docker engine answers.
async fn training_env(args: &NodeArgs) -> anyhow::Result<TrainingEnv> {
    std::fs::create_dir_all(&args.shared_dir)
        .with_context(|| format!("creating the shared directory {}", args.shared_dir.display()))?;
    let shared = std::fs::canonicalize(&args.shared_dir)?;
    let program = std::env::current_exe().context("finding this boat binary for local workers")?;
    let wanted = match args.worker_runtime.as_str() {
        "auto" => None,
        other => Some(
            WorkerRuntime::parse(other)
                .with_context(|| format!("--worker-runtime {other:?}: use auto, local, docker or swarm"))?,
        ),
    };
    let mut env = TrainingEnv::local_only(SharedDir::new(shared.clone()), program, "");
    match runtime::connect().await {
        Err(why) => env.docker_unavailable = Some(why),
        Ok(docker) => {
            // Workers are labelled with the shared directory's identity: the
            // nodes of one cluster share it, two clusters on one engine do not.
            let cluster = boat_raft::sha256_hex(shared.to_string_lossy().as_bytes())[..12].to_string();
            let image = args.worker_image.clone();
            let manager = runtime::is_manager(&docker).await;
            let has_image = runtime::image_exists(&docker, &image).await;
            env.docker = Some(Arc::new(runtime::DockerRuntime::new(
                docker.clone(),
                cluster.clone(),
                shared.clone(),
                image.clone(),
            )));
            if manager {
                env.swarm = Some(Arc::new(runtime::SwarmRuntime::new(docker, cluster, shared, image.clone())));
            } else {
                env.swarm_unavailable = Some("this Docker engine is not a Swarm manager (boat swarm init)".into());
            }
            env.docker_unavailable = None;
            // Auto picks containers only when Boat's worker image is there.
            env.default_runtime = match (wanted, manager, has_image) {
                (Some(w), _, _) => w,
                (None, true, true) => WorkerRuntime::Swarm,
                (None, false, true) => WorkerRuntime::Docker,
                (None, _, false) => WorkerRuntime::Local,
            };
        }
    }
    if let Some(w) = wanted {
        env.runtime(w).map_err(anyhow::Error::msg).with_context(|| format!("--worker-runtime {}", w.as_str()))?;
        env.default_runtime = w;
    }
    tracing::info!(
        default = env.default_runtime.as_str(),
        docker = env.docker.is_some(),
        swarm = env.swarm.is_some(),
        "training workers"
    );
    Ok(env)
}
