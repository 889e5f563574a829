//! The `swarm` runtime: each trial worker is one Docker Swarm service with
//! a single replica, which the Swarm places on any of its hosts.
//!
//! The leader talks to the engine of a Swarm manager. A worker's service is
//! replicated with one replica and the restart condition `none`: its one
//! task runs to its end and is never replaced, so the task's final state
//! (and its container's exit code) is the worker's result. The service
//! stays until [`Runtime::remove`] deletes it, which also stops the task
//! if it still runs. Service and containers carry Boat's labels, and
//! [`Runtime::list`] reads them back from the manager, so a new leader
//! finds the workers of the one before it.
//!
//! The shared directory is bind-mounted at [`super::CONTAINER_SHARED_DIR`]
//! from the same host path on whichever host runs the task. On a Swarm of
//! more than one host that path must therefore exist on every host and hold
//! the same files: an NFS (or other network file system) mount at the same
//! place everywhere. The image must be present on every host too, or be
//! pullable by each of them (see [`super::image`] for loading Boat's image).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use boat_raft::domains::training::WorkerRuntime;
use bollard::models::Limit;
use bollard::models::{
    LocalNodeState, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder};
use bollard::Docker;

use super::docker::{
    engine_error, forward_logs, is_not_found, memory_bytes, nano_cpus, shared_mount, worker_env, worker_labels,
    worker_labels_of, worker_name,
};
use super::{LineSink, Runtime, RuntimeError, WorkerInfo, WorkerSpec, WorkerState, LABEL_CLUSTER};

/// Whether the engine is a manager of an active Swarm, and so can run
/// services. Any error (no engine, an engine outside a Swarm) is a no.
pub async fn is_manager(docker: &Docker) -> bool {
    match docker.info().await {
        Ok(info) => info
            .swarm
            .is_some_and(|s| s.control_available == Some(true) && s.local_node_state == Some(LocalNodeState::ACTIVE)),
        Err(e) => {
            tracing::debug!("Docker engine info unavailable: {e}");
            false
        }
    }
}

/// Runs trial workers as Swarm services, through a manager's engine.
pub struct SwarmRuntime {
    docker: Docker,
    cluster: String,
    /// The shared directory's path on every Swarm host (the same on each).
    shared_dir_host: PathBuf,
    /// The image of Boat's own worker, for specs without an image.
    boat_image: String,
}

impl SwarmRuntime {
    pub fn new(docker: Docker, cluster: String, shared_dir_host: PathBuf, boat_image: String) -> Self {
        Self { docker, cluster, shared_dir_host, boat_image }
    }

    fn stream_logs(&self, id: &str, since_unix_s: i64, log: LineSink) {
        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .since(since_unix_s.clamp(0, i32::MAX as i64) as i32)
            .build();
        let stream = self.docker.service_logs(id, Some(options));
        let what = format!("service {id}");
        // The engine keeps a service's log stream open after its task has
        // ended (and even after the service is gone): it is closed here
        // once the worker has ended and its output has gone quiet.
        let ended = until_ended(self.docker.clone(), id.to_string());
        tokio::spawn(forward_logs(stream, log, what, ended));
    }
}

/// How often [`until_ended`] looks at a service.
const ENDED_POLL: Duration = Duration::from_secs(1);

/// Completes once the worker of `service` has ended or the service is gone.
async fn until_ended(docker: Docker, service: String) {
    loop {
        tokio::time::sleep(ENDED_POLL).await;
        match docker.inspect_service(&service, None).await {
            Err(e) if is_not_found(&e) => return,
            // The engine may be back soon; the log stream fails otherwise.
            Err(_) => continue,
            Ok(_) => {}
        }
        if tasks(&docker, &service).await.is_ok_and(|t| state_of(&t) != WorkerState::Running) {
            return;
        }
    }
}

async fn tasks(docker: &Docker, service: &str) -> Result<Vec<Task>, RuntimeError> {
    let filters = HashMap::from([("service", vec![service.to_string()])]);
    let options = ListTasksOptionsBuilder::new().filters(&filters).build();
    docker.list_tasks(Some(options)).await.map_err(|e| engine_error(&format!("listing tasks of {service}"), e))
}

/// A worker's state from its service's tasks. With one replica and no
/// restarts there is one task; should there be more, one still active
/// means running, else the newest one tells.
fn state_of(tasks: &[Task]) -> WorkerState {
    let state = |t: &Task| t.status.as_ref().and_then(|s| s.state);
    if tasks.is_empty() || tasks.iter().any(|t| state(t).is_some_and(is_active)) {
        // No task yet: the orchestrator has not made it; it will.
        return WorkerState::Running;
    }
    let newest = tasks.iter().max_by(|a, b| a.created_at.cmp(&b.created_at)).expect("not empty");
    let status = newest.status.clone().unwrap_or_default();
    // An exit code counts only where a container ran.
    let exit_code = status
        .container_status
        .as_ref()
        .filter(|c| c.container_id.as_deref().is_some_and(|id| !id.is_empty()))
        .and_then(|c| c.exit_code);
    // The task's error, else its last message ("preparing", "started").
    let reason = || {
        let state = status.state.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
        match [status.err.as_deref(), status.message.as_deref()].into_iter().flatten().find(|s| !s.is_empty()) {
            Some(said) => format!("the task ended {state}: {said}"),
            None => format!("the task ended {state}"),
        }
    };
    match status.state {
        Some(TaskState::COMPLETE) => WorkerState::Exited { code: exit_code.unwrap_or(0) },
        // A failed task's container ended with a non-zero code, unless the
        // task failed before or around it.
        Some(TaskState::FAILED) => match exit_code {
            Some(code) if code != 0 => WorkerState::Exited { code },
            _ => WorkerState::Failed { reason: reason() },
        },
        Some(TaskState::REJECTED) => WorkerState::Failed { reason: reason() },
        _ => match exit_code {
            Some(code) => WorkerState::Exited { code },
            None => WorkerState::Failed { reason: reason() },
        },
    }
}

/// Task states before the end: being scheduled, prepared, started, running.
fn is_active(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY
            | TaskState::STARTING
            | TaskState::RUNNING
    )
}

#[async_trait::async_trait]
impl Runtime for SwarmRuntime {
    fn kind(&self) -> WorkerRuntime {
        WorkerRuntime::Swarm
    }

    async fn launch(&self, spec: &WorkerSpec, log: LineSink) -> Result<String, RuntimeError> {
        let name = worker_name(&self.cluster, spec);
        // A service of the same name is a leftover of an earlier try of this
        // very attempt.
        self.remove(&name).await?;
        let labels = worker_labels(&self.cluster, spec);
        let image = spec.image.clone().unwrap_or_else(|| self.boat_image.clone());
        let service = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(labels.clone()),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.clone()),
                    // `Args`, not `Command`: the image's entrypoint stays.
                    args: Some(spec.args.clone()),
                    env: Some(worker_env(spec)),
                    labels: Some(labels),
                    mounts: Some(vec![shared_mount(&self.shared_dir_host)?]),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: nano_cpus(spec.cpus),
                        memory_bytes: memory_bytes(spec.memory_mb),
                        pids: None,
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_service(service, None)
            .await
            .map_err(|e| engine_error(&format!("creating service {name} from {image}"), e))?;
        for warning in created.warnings.unwrap_or_default() {
            tracing::info!("creating service {name}: {warning}");
        }
        let id = created
            .id
            .ok_or_else(|| RuntimeError::Failed(format!("creating service {name}: the engine answered no id")))?;
        self.stream_logs(&id, 0, log);
        Ok(id)
    }

    async fn list(&self) -> Result<Vec<WorkerInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_CLUSTER}={}", self.cluster)])]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let services =
            self.docker.list_services(Some(options)).await.map_err(|e| engine_error("listing services", e))?;
        let mut workers = Vec::with_capacity(services.len());
        for service in services {
            let Some(id) = service.id else { continue };
            let Some(labels) = service.spec.and_then(|s| s.labels) else { continue };
            let Some((job, trial, attempt)) = worker_labels_of(&labels) else { continue };
            let state = state_of(&tasks(&self.docker, &id).await?);
            workers.push(WorkerInfo { id, job, trial, attempt, state });
        }
        Ok(workers)
    }

    async fn follow(&self, id: &str, since_unix_s: i64, log: LineSink) -> Result<(), RuntimeError> {
        match self.docker.inspect_service(id, None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Err(RuntimeError::Failed(format!("no service {id}"))),
            Err(e) => return Err(engine_error(&format!("inspecting service {id}"), e)),
        }
        self.stream_logs(id, since_unix_s, log);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(&format!("removing service {id}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerStatus, TaskStatus};

    use super::*;

    fn task(state: TaskState, created: &str, container: Option<(&str, i64)>, err: Option<&str>) -> Task {
        Task {
            created_at: Some(created.into()),
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(Into::into),
                container_status: container.map(|(id, code)| ContainerStatus {
                    container_id: Some(id.into()),
                    exit_code: Some(code),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn task_states_map_to_worker_states() {
        assert_eq!(state_of(&[]), WorkerState::Running);
        assert_eq!(state_of(&[task(TaskState::PREPARING, "1", None, None)]), WorkerState::Running);
        assert_eq!(state_of(&[task(TaskState::COMPLETE, "1", Some(("c", 0)), None)]), WorkerState::Exited { code: 0 });
        assert_eq!(
            state_of(&[task(TaskState::FAILED, "1", Some(("c", 3)), Some("task: non-zero exit (3)"))]),
            WorkerState::Exited { code: 3 }
        );
        assert_eq!(
            state_of(&[task(TaskState::REJECTED, "1", Some(("", 0)), Some("No such image: x"))]),
            WorkerState::Failed { reason: "the task ended rejected: No such image: x".into() }
        );
        assert!(matches!(state_of(&[task(TaskState::SHUTDOWN, "1", None, None)]), WorkerState::Failed { .. }));
        // The newest task tells.
        assert_eq!(
            state_of(&[
                task(TaskState::COMPLETE, "2024-01-02", Some(("b", 0)), None),
                task(TaskState::FAILED, "2024-01-01", Some(("a", 1)), None),
            ]),
            WorkerState::Exited { code: 0 }
        );
    }
}
