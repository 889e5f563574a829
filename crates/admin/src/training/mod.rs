//! Training on the node: templates, train jobs, their orchestration and
//! workers, and the shared directory.
//!
//! - [`jobs`]: the service behind every face (create, list, show, stop a
//!   job; its trials and best trials; templates; trial logs);
//! - [`orchestrator`]: the leader task that drives the jobs;
//! - [`runtime`]: where workers run (local processes, Docker, Swarm);
//! - [`shared`]: the shared directory's layout;
//! - [`logs`]: trial logs, parsed and rotated.

pub mod jobs;
pub mod logs;
pub mod orchestrator;
pub mod runtime;
pub mod shared;

use std::sync::Arc;

use boat_raft::domains::training::WorkerRuntime;

use runtime::local::LocalRuntime;
use runtime::Runtime;
use shared::SharedDir;

/// A node's training resources: the shared directory and the runtimes it
/// can start workers on.
pub struct TrainingEnv {
    pub shared: SharedDir,
    pub local: Arc<LocalRuntime>,
    pub docker: Option<Arc<dyn Runtime>>,
    pub swarm: Option<Arc<dyn Runtime>>,
    /// The runtime a job gets when it names none.
    pub default_runtime: WorkerRuntime,
    /// Why the container runtimes are missing, for error messages.
    pub docker_unavailable: Option<String>,
    /// Why the swarm runtime is missing while docker is there.
    pub swarm_unavailable: Option<String>,
}

impl TrainingEnv {
    /// Only the local runtime (no Docker engine answered, or none wanted).
    pub fn local_only(shared: SharedDir, program: std::path::PathBuf, why: impl Into<String>) -> Self {
        let local = Arc::new(LocalRuntime::new(program, shared.root().to_path_buf()));
        Self {
            shared,
            local,
            docker: None,
            swarm: None,
            default_runtime: WorkerRuntime::Local,
            docker_unavailable: Some(why.into()),
            swarm_unavailable: None,
        }
    }

    pub fn runtime(&self, kind: WorkerRuntime) -> Result<Arc<dyn Runtime>, String> {
        let missing = || {
            let why = match kind {
                WorkerRuntime::Swarm => self.swarm_unavailable.as_deref().or(self.docker_unavailable.as_deref()),
                _ => self.docker_unavailable.as_deref(),
            };
            format!("the {} runtime is not available on this node: {}", kind.as_str(), why.unwrap_or("not configured"))
        };
        match kind {
            WorkerRuntime::Local => Ok(self.local.clone()),
            WorkerRuntime::Docker => self.docker.clone().ok_or_else(missing),
            WorkerRuntime::Swarm => self.swarm.clone().ok_or_else(missing),
        }
    }
}
