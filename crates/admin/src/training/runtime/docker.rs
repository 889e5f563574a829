//! The `docker` runtime: each trial worker is one container on the leader's
//! Docker engine.
//!
//! A worker's container is named after its cluster, job, trial and attempt
//! and carries the same facts as labels, so that [`Runtime::list`] reads
//! what runs from the engine alone: a new leader on the same engine finds
//! the containers of the one before it. Containers have no restart policy
//! (a trial that fails is the orchestrator's to retry) and stay after they
//! end, until [`Runtime::remove`], so their exit code can be read.
//!
//! The helpers shared with the `swarm` runtime (names, labels, environment,
//! the shared mount, log forwarding, engine errors) live here too, as does
//! [`connect`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use boat_raft::domains::training::WorkerRuntime;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, HostConfig, Mount,
    MountType, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::{Stream, StreamExt};

use super::{
    LineSink, Runtime, RuntimeError, WorkerInfo, WorkerSpec, WorkerState, CONTAINER_SHARED_DIR, LABEL_ATTEMPT,
    LABEL_CLUSTER, LABEL_JOB, LABEL_TRIAL,
};

/// How long [`connect`] waits for the engine to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a container may stay made but not started before it counts
/// as failed.
const START_GRACE: Duration = Duration::from_secs(60);

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Connects to the local Docker engine (`DOCKER_HOST` when it names a Unix
/// socket, else `/var/run/docker.sock`) and checks that it answers. The
/// error says why no engine can be used, in a sentence.
pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_local_defaults().map_err(|e| format!("cannot set up a Docker client: {e}"))?;
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Err(_) => return Err(format!("the Docker engine at {socket} did not answer within {PING_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("no Docker engine answers at {socket}: {e}")),
        Ok(Ok(_)) => {}
    }
    // Lowers the API version the client asks for to what the engine speaks;
    // a client that sends no version at all fails this harmlessly.
    match docker.clone().negotiate_version().await {
        Ok(negotiated) => Ok(negotiated),
        Err(e) => {
            tracing::debug!("Docker API version not negotiated ({e}); the engine's default applies");
            Ok(docker)
        }
    }
}

/// Runs trial workers as containers on one Docker engine.
pub struct DockerRuntime {
    docker: Docker,
    cluster: String,
    /// The shared directory as the engine's host sees it; mounted at
    /// [`CONTAINER_SHARED_DIR`] in every worker.
    shared_dir_host: PathBuf,
    /// The image of Boat's own worker, for specs without an image.
    boat_image: String,
}

impl DockerRuntime {
    pub fn new(docker: Docker, cluster: String, shared_dir_host: PathBuf, boat_image: String) -> Self {
        Self { docker, cluster, shared_dir_host, boat_image }
    }

    fn image<'a>(&'a self, spec: &'a WorkerSpec) -> &'a str {
        spec.image.as_deref().unwrap_or(&self.boat_image)
    }

    /// What one listed container says of its worker; `None` for one that is
    /// not a worker (labels missing) or that went away meanwhile.
    async fn info(&self, c: ContainerSummary) -> Result<Option<WorkerInfo>, RuntimeError> {
        let (Some(id), Some(labels)) = (c.id, c.labels) else { return Ok(None) };
        let Some((job, trial, attempt)) = worker_labels_of(&labels) else { return Ok(None) };
        let state = match c.state {
            Some(ContainerSummaryStateEnum::RUNNING)
            | Some(ContainerSummaryStateEnum::PAUSED)
            | Some(ContainerSummaryStateEnum::RESTARTING)
            | Some(ContainerSummaryStateEnum::STOPPING) => WorkerState::Running,
            Some(ContainerSummaryStateEnum::REMOVING) => {
                WorkerState::Failed { reason: "the container is being removed".into() }
            }
            // Created (not started yet, or its start failed), exited, dead:
            // the details are in the container's own state.
            _ => match self.ended_state(&id, c.created).await? {
                Some(state) => state,
                None => return Ok(None),
            },
        };
        Ok(Some(WorkerInfo { id, job, trial, attempt, state }))
    }

    /// The state of a container that does not run, from its inspection.
    /// `created` is when the container was made (Unix seconds).
    async fn ended_state(&self, id: &str, created: Option<i64>) -> Result<Option<WorkerState>, RuntimeError> {
        let inspected = match self.docker.inspect_container(id, None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(engine_error(&format!("inspecting container {id}"), e)),
        };
        let state = inspected.state.unwrap_or_default();
        let error = state.error.filter(|e| !e.is_empty());
        Ok(Some(match state.status {
            // Launch starts a container right after making it: one that
            // stays unstarted was left by a leader that died in between.
            Some(ContainerStateStatusEnum::CREATED) => match error {
                Some(e) => WorkerState::Failed { reason: format!("the container did not start: {e}") },
                None if created.is_some_and(|t| unix_now() - t > START_GRACE.as_secs() as i64) => {
                    WorkerState::Failed { reason: "the container was made but never started".into() }
                }
                None => WorkerState::Running,
            },
            Some(ContainerStateStatusEnum::EXITED) if state.oom_killed == Some(true) => {
                WorkerState::Failed { reason: "killed by the engine for exceeding its memory limit".into() }
            }
            Some(ContainerStateStatusEnum::EXITED) => match error {
                Some(e) => WorkerState::Failed { reason: e },
                None => WorkerState::Exited { code: state.exit_code.unwrap_or(0) },
            },
            Some(ContainerStateStatusEnum::DEAD) => WorkerState::Failed {
                reason: format!(
                    "the engine marked the container dead{}",
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            },
            Some(ContainerStateStatusEnum::RUNNING)
            | Some(ContainerStateStatusEnum::PAUSED)
            | Some(ContainerStateStatusEnum::RESTARTING)
            | Some(ContainerStateStatusEnum::STOPPING) => WorkerState::Running,
            other => WorkerState::Failed {
                reason: format!("the container is in state {}", other.map(|s| s.to_string()).unwrap_or_default()),
            },
        }))
    }

    /// Streams a container's output into `log` on a task of its own, from
    /// `since_unix_s` on (0: from its start) until the container ends.
    fn stream_logs(&self, id: &str, since_unix_s: i64, log: LineSink) {
        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .since(since_unix_s.clamp(0, i32::MAX as i64) as i32)
            .build();
        let stream = self.docker.logs(id, Some(options));
        let what = format!("container {id}");
        // The engine ends a container's log stream when the container ends.
        tokio::spawn(forward_logs(stream, log, what, std::future::pending()));
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> WorkerRuntime {
        WorkerRuntime::Docker
    }

    async fn launch(&self, spec: &WorkerSpec, log: LineSink) -> Result<String, RuntimeError> {
        let name = worker_name(&self.cluster, spec);
        // A container of the same name is a leftover of an earlier try of
        // this very attempt (a leader that died between create and start).
        self.remove(&name).await?;
        let host_config = HostConfig {
            mounts: Some(vec![shared_mount(&self.shared_dir_host)?]),
            nano_cpus: nano_cpus(spec.cpus),
            memory: memory_bytes(spec.memory_mb),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(self.image(spec).to_string()),
            // The image's entrypoint stays; the arguments follow it.
            cmd: Some(spec.args.clone()),
            env: Some(worker_env(spec)),
            labels: Some(worker_labels(&self.cluster, spec)),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error(&format!("creating container {name} from {}", self.image(spec)), e))?;
        let id = created.id;
        if let Err(e) = self.docker.start_container(&id, None).await {
            let _ = self.remove(&id).await;
            return Err(engine_error(&format!("starting container {name}"), e));
        }
        self.stream_logs(&id, 0, log);
        Ok(id)
    }

    async fn list(&self) -> Result<Vec<WorkerInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_CLUSTER}={}", self.cluster)])]);
        let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let containers =
            self.docker.list_containers(Some(options)).await.map_err(|e| engine_error("listing containers", e))?;
        let mut workers = Vec::with_capacity(containers.len());
        for c in containers {
            if let Some(info) = self.info(c).await? {
                workers.push(info);
            }
        }
        Ok(workers)
    }

    async fn follow(&self, id: &str, since_unix_s: i64, log: LineSink) -> Result<(), RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Err(RuntimeError::Failed(format!("no container {id}"))),
            Err(e) => return Err(engine_error(&format!("inspecting container {id}"), e)),
        }
        self.stream_logs(id, since_unix_s, log);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(&format!("removing container {id}"), e)),
        }
    }
}

/// `boat-<cluster>-j<job>-t<trial>-a<attempt>`, with the cluster's id cut
/// down to letters, digits and dashes and shortened so that the whole name
/// is a valid DNS label (which Swarm service names must be).
pub(super) fn worker_name(cluster: &str, spec: &WorkerSpec) -> String {
    const MAX: usize = 63;
    let suffix = format!("-j{}-t{}-a{}", spec.job, spec.trial, spec.attempt);
    let mut cluster: String =
        cluster.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    cluster.truncate(MAX.saturating_sub("boat-".len() + suffix.len()));
    let cluster = cluster.trim_matches('-');
    if cluster.is_empty() {
        format!("boat{suffix}")
    } else {
        format!("boat-{cluster}{suffix}")
    }
}

/// The labels every worker carries.
pub(super) fn worker_labels(cluster: &str, spec: &WorkerSpec) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_JOB.to_string(), spec.job.to_string()),
        (LABEL_TRIAL.to_string(), spec.trial.to_string()),
        (LABEL_ATTEMPT.to_string(), spec.attempt.to_string()),
        (LABEL_CLUSTER.to_string(), cluster.to_string()),
    ])
}

/// Job, trial and attempt read back from a worker's labels.
pub(super) fn worker_labels_of(labels: &HashMap<String, String>) -> Option<(u64, u32, u32)> {
    Some((
        labels.get(LABEL_JOB)?.parse().ok()?,
        labels.get(LABEL_TRIAL)?.parse().ok()?,
        labels.get(LABEL_ATTEMPT)?.parse().ok()?,
    ))
}

/// The worker's environment as `KEY=value` entries: the plain variables,
/// then each path variable pointing into the shared mount.
pub(super) fn worker_env(spec: &WorkerSpec) -> Vec<String> {
    let plain = spec.env.iter().map(|(k, v)| format!("{k}={v}"));
    let paths = spec.paths.iter().map(|(k, rel)| format!("{k}={}", in_container(rel).display()));
    plain.chain(paths).collect()
}

/// Where a path relative to the shared directory is inside a container.
/// Only its normal components count, so it cannot point outside the mount.
pub(super) fn in_container(rel: &Path) -> PathBuf {
    let mut path = PathBuf::from(CONTAINER_SHARED_DIR);
    path.extend(rel.components().filter_map(|c| match c {
        Component::Normal(part) => Some(part),
        _ => None,
    }));
    path
}

/// The bind mount of the host's shared directory at [`CONTAINER_SHARED_DIR`].
pub(super) fn shared_mount(host: &Path) -> Result<Mount, RuntimeError> {
    if !host.is_absolute() {
        return Err(RuntimeError::Failed(format!("the shared directory {host:?} must be an absolute path")));
    }
    Ok(Mount {
        target: Some(CONTAINER_SHARED_DIR.to_string()),
        source: Some(host.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(false),
        ..Default::default()
    })
}

/// CPU cores as the engine counts them (billionths of a core); no limit
/// for zero.
pub(super) fn nano_cpus(cpus: f64) -> Option<i64> {
    (cpus > 0.0).then(|| (cpus * 1e9).round() as i64)
}

/// MiB as bytes; no limit for zero.
pub(super) fn memory_bytes(memory_mb: u64) -> Option<i64> {
    (memory_mb > 0).then(|| memory_mb.saturating_mul(1024 * 1024).min(i64::MAX as u64) as i64)
}

/// Whether the engine answered 404 (no such container, service, image).
pub(super) fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::DockerResponseServerError { status_code: 404, .. })
}

/// An engine error in a sentence: what was being done, and what the engine
/// said.
pub(super) fn engine_error(doing: &str, e: EngineError) -> RuntimeError {
    match e {
        EngineError::DockerResponseServerError { status_code, message } => {
            RuntimeError::Failed(format!("{doing}: the engine answered {status_code}: {message}"))
        }
        e => RuntimeError::Failed(format!("{doing}: {e}")),
    }
}

/// Collects output chunks of one stream (stdout or stderr) into lines.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, chunk: &[u8], log: &LineSink) {
        self.0.extend_from_slice(chunk);
        while let Some(end) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=end).collect();
            emit(&line[..end], log);
        }
    }

    fn flush(&mut self, log: &LineSink) {
        if !self.0.is_empty() {
            emit(&std::mem::take(&mut self.0), log);
        }
    }
}

fn emit(line: &[u8], log: &LineSink) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    log(&String::from_utf8_lossy(line));
}

/// How long an output stream may stay silent, once its worker is known to
/// have ended, before it is taken to have said everything.
const QUIET_AFTER_END: Duration = Duration::from_secs(1);

/// Sends every line of an engine log stream to `log`, stdout and stderr
/// each cut into lines on its own, until the stream ends, or until
/// `worker_ended` completes and the stream then goes quiet (for streams the
/// engine keeps open after the worker's end).
pub(super) async fn forward_logs<S, E>(stream: S, log: LineSink, what: String, worker_ended: E)
where
    S: Stream<Item = Result<LogOutput, EngineError>>,
    E: Future<Output = ()>,
{
    let mut stream = std::pin::pin!(stream);
    let mut worker_ended = std::pin::pin!(worker_ended);
    let mut ended = false;
    let (mut out, mut err) = (Lines::default(), Lines::default());
    loop {
        let item = if ended {
            match tokio::time::timeout(QUIET_AFTER_END, stream.next()).await {
                Ok(item) => item,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                item = stream.next() => item,
                () = &mut worker_ended => {
                    ended = true;
                    continue;
                }
            }
        };
        match item {
            None => break,
            Some(Ok(LogOutput::StdErr { message })) => err.push(&message, &log),
            Some(Ok(other)) => out.push(other.as_ref(), &log),
            Some(Err(e)) => {
                tracing::warn!("the output of {what} stopped: {e}");
                break;
            }
        }
    }
    out.flush(&log);
    err.flush(&log);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn spec() -> WorkerSpec {
        WorkerSpec {
            job: 7,
            trial: 3,
            attempt: 1,
            image: None,
            args: vec![],
            env: BTreeMap::from([("BOAT_SEED".to_string(), "42".to_string())]),
            paths: BTreeMap::from([
                ("BOAT_OUTPUT_DIR".to_string(), PathBuf::from("jobs/7/trials/3")),
                ("BOAT_TRAIN_PATH".to_string(), PathBuf::from("/../etc/passwd")),
            ]),
            cpus: 0.5,
            memory_mb: 256,
        }
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(worker_name("c1", &spec()), "boat-c1-j7-t3-a1");
        assert_eq!(worker_name("My_Cluster.x", &spec()), "boat-my-cluster-x-j7-t3-a1");
        assert_eq!(worker_name("--", &spec()), "boat-j7-t3-a1");
        let long = worker_name(&"a".repeat(200), &spec());
        assert!(long.len() <= 63 && long.ends_with("-j7-t3-a1"), "{long}");
    }

    #[test]
    fn paths_land_in_the_shared_mount() {
        let env = worker_env(&spec());
        assert_eq!(
            env,
            ["BOAT_SEED=42", "BOAT_OUTPUT_DIR=/shared/jobs/7/trials/3", "BOAT_TRAIN_PATH=/shared/etc/passwd"]
        );
        assert_eq!(worker_labels_of(&worker_labels("c", &spec())), Some((7, 3, 1)));
        assert_eq!(nano_cpus(0.5), Some(500_000_000));
        assert_eq!(nano_cpus(0.0), None);
        assert_eq!(memory_bytes(256), Some(256 << 20));
        assert!(shared_mount(Path::new("relative")).is_err());
    }

    #[tokio::test]
    async fn output_is_cut_into_lines_per_stream() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink: LineSink = {
            let lines = lines.clone();
            Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_string()))
        };
        let chunks = vec![
            Ok(LogOutput::StdOut { message: "one\ntw".into() }),
            Ok(LogOutput::StdErr { message: "err\r\n".into() }),
            Ok(LogOutput::StdOut { message: "o\nthree".into() }),
        ];
        forward_logs(futures::stream::iter(chunks), sink.clone(), "test".into(), std::future::pending()).await;
        assert_eq!(*lines.lock().unwrap(), ["one", "err", "two", "three"]);

        // A stream that stays open ends once its worker has and it is quiet.
        lines.lock().unwrap().clear();
        let open =
            futures::stream::iter([Ok(LogOutput::StdOut { message: "last".into() })]).chain(futures::stream::pending());
        let started = std::time::Instant::now();
        forward_logs(open, sink, "test".into(), tokio::time::sleep(Duration::from_millis(100))).await;
        assert_eq!(*lines.lock().unwrap(), ["last"]);
        assert!(started.elapsed() >= QUIET_AFTER_END);
    }
}
