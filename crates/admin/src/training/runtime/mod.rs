//! Where trial workers run: one interface, three runtimes.
//!
//! - `local`: child processes of the leader (`boat worker`), killed with it;
//! - `docker`: containers on the leader's Docker engine, through bollard;
//! - `swarm`: Docker Swarm services, placed by the Swarm on any host.
//!
//! The orchestrator never trusts its own memory of what runs: each pass
//! starts from [`Runtime::list`], which reads the runtime itself (the
//! engine's containers or services carrying Boat's labels, or this
//! process's children). Containers mount the shared directory at
//! [`CONTAINER_SHARED_DIR`]; paths in a [`WorkerSpec`] are relative to the
//! shared directory, so each runtime places them where its workers see them.
//!
//! Both container runtimes use one engine connection ([`connect`]) and, for
//! Boat's own worker, the image [`build_boat_image`] makes from the running
//! `boat` binary (see [`image`]).

pub mod docker;
pub mod image;
pub mod local;
pub mod swarm;

pub use docker::{connect, DockerRuntime};
pub use image::{build_boat_image, image_exists};
pub use local::LocalRuntime;
pub use swarm::{is_manager, SwarmRuntime};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use boat_raft::domains::training::WorkerRuntime;

/// Where containers see the shared directory.
pub const CONTAINER_SHARED_DIR: &str = "/shared";

/// Labels every container or service a Boat orchestrator creates carries.
pub const LABEL_JOB: &str = "boat.job";
pub const LABEL_TRIAL: &str = "boat.trial";
pub const LABEL_ATTEMPT: &str = "boat.attempt";
/// Which cluster made it (the cluster's id), so that two clusters sharing
/// an engine never touch each other's workers.
pub const LABEL_CLUSTER: &str = "boat.cluster";

/// One trial worker to start.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub job: u64,
    pub trial: u32,
    pub attempt: u32,
    /// The image of a container template; `None` runs Boat's own worker
    /// (`boat worker`, or Boat's image in a container runtime).
    pub image: Option<String>,
    /// Arguments after the image's entrypoint (`["worker"]` for Boat's own
    /// worker; usually empty for a container template). The local runtime
    /// runs the `boat` binary with them.
    pub args: Vec<String>,
    /// Environment of the worker contract that is not a path.
    pub env: BTreeMap<String, String>,
    /// Environment variables holding paths, relative to the shared
    /// directory (`BOAT_TRAIN_PATH`, `BOAT_VAL_PATH`, `BOAT_OUTPUT_DIR`).
    pub paths: BTreeMap<String, PathBuf>,
    /// CPU cores and MiB of memory the worker may use (containers).
    pub cpus: f64,
    pub memory_mb: u64,
}

/// What a runtime knows of one worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    Running,
    /// Ended by itself with this exit code.
    Exited {
        code: i64,
    },
    /// The runtime could not run it or lost it (image missing, task
    /// rejected, killed by the engine).
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// The runtime's handle: a process id, a container or a service id.
    pub id: String,
    pub job: u64,
    pub trial: u32,
    pub attempt: u32,
    pub state: WorkerState,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the {0} runtime is not available here: {1}")]
    Unavailable(&'static str, String),
    #[error("{0}")]
    Failed(String),
}

/// Receives each line the worker writes to stdout or stderr, in order.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    fn kind(&self) -> WorkerRuntime;

    /// Starts a worker; answers its id. `log` gets its output lines until
    /// it ends.
    async fn launch(&self, spec: &WorkerSpec, log: LineSink) -> Result<String, RuntimeError>;

    /// Every worker of this cluster the runtime holds, running or ended but
    /// not yet removed.
    async fn list(&self) -> Result<Vec<WorkerInfo>, RuntimeError>;

    /// Follows the output of a worker started by another leader (after a
    /// failover), from about `since_unix_s` on.
    async fn follow(&self, id: &str, since_unix_s: i64, log: LineSink) -> Result<(), RuntimeError>;

    /// Stops a worker if it still runs, and removes it.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
}
