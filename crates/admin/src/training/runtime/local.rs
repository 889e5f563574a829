//! The `local` runtime: trial workers as child processes of the leader.
//!
//! Each worker is `boat worker` (or whatever `args` say) with the worker
//! contract in its environment. The kernel kills it when the process that
//! started it dies (`PR_SET_PDEATHSIG`), so a crashed leader leaves no
//! orphan training behind; the orchestrator removes every local worker
//! when this node stops leading. What runs is known only to this process,
//! so a new leader finds none of the old leader's workers and requeues
//! their trials.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use boat_raft::domains::training::WorkerRuntime;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{LineSink, Runtime, RuntimeError, WorkerInfo, WorkerSpec, WorkerState};

struct Child {
    info: WorkerInfo,
    /// Asks the task that waits for the process to kill it.
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct LocalRuntime {
    /// The program workers run (this `boat` binary).
    program: PathBuf,
    shared_dir: PathBuf,
    children: Arc<Mutex<HashMap<String, Child>>>,
}

impl LocalRuntime {
    pub fn new(program: PathBuf, shared_dir: PathBuf) -> Self {
        Self { program, shared_dir, children: Default::default() }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends every line of `out` to `log`, to the end: bytes that are not
/// UTF-8 are replaced rather than ending the reading, which would leave the
/// worker blocked on a full pipe.
async fn forward(out: impl AsyncRead + Unpin, log: LineSink) {
    let mut out = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match out.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log(text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    fn kind(&self) -> WorkerRuntime {
        WorkerRuntime::Local
    }

    async fn launch(&self, spec: &WorkerSpec, log: LineSink) -> Result<String, RuntimeError> {
        if spec.image.is_some() {
            return Err(RuntimeError::Unavailable(
                "local",
                "a container template needs the docker or swarm runtime".into(),
            ));
        }
        // stdout and stderr share one pipe, so that the log keeps the order
        // the worker wrote in (its last line, often the error, stays last).
        let (reader, writer) = std::io::pipe().map_err(|e| RuntimeError::Failed(format!("creating a pipe: {e}")))?;
        let writer_too = writer.try_clone().map_err(|e| RuntimeError::Failed(format!("creating a pipe: {e}")))?;
        let output = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
            .map_err(|e| RuntimeError::Failed(format!("reading the worker's pipe: {e}")))?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&spec.args)
            .envs(&spec.env)
            .envs(spec.paths.iter().map(|(k, rel)| (k, self.shared_dir.join(rel))))
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too);
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes one async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| RuntimeError::Failed(format!("starting {:?}: {e}", self.program)))?;
        // Our copies of the pipe's write end go with the command, so that
        // the reader sees the end when the worker exits.
        drop(cmd);
        let pid = child.id().unwrap_or(0);
        let id = format!("local-{pid}");
        let info = WorkerInfo {
            id: id.clone(),
            job: spec.job,
            trial: spec.trial,
            attempt: spec.attempt,
            state: WorkerState::Running,
        };
        let (kill, killed) = tokio::sync::oneshot::channel();
        self.children().insert(id.clone(), Child { info, kill: Some(kill) });
        let children = self.children.clone();
        let worker = id.clone();
        tokio::spawn(async move {
            let out = tokio::spawn(forward(output, log));
            let status = tokio::select! {
                s = child.wait() => s,
                _ = killed => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let _ = out.await;
            let state = match status {
                Ok(s) => match s.code() {
                    Some(code) => WorkerState::Exited { code: code as i64 },
                    None => WorkerState::Failed { reason: format!("killed by a signal ({s})") },
                },
                Err(e) => WorkerState::Failed { reason: format!("waiting for the worker: {e}") },
            };
            if let Some(c) = children.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&worker) {
                c.info.state = state;
            }
        });
        Ok(id)
    }

    async fn list(&self) -> Result<Vec<WorkerInfo>, RuntimeError> {
        Ok(self.children().values().map(|c| c.info.clone()).collect())
    }

    async fn follow(&self, id: &str, _since_unix_s: i64, _log: LineSink) -> Result<(), RuntimeError> {
        // Output of this process's own children is forwarded from launch;
        // another process's children cannot be followed.
        if self.children().contains_key(id) {
            Ok(())
        } else {
            Err(RuntimeError::Failed(format!("worker {id} is not a child of this node")))
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(kill) = self.children().remove(id).and_then(|mut c| c.kill.take()) {
            // The waiting task kills it; it may have ended already.
            let _ = kill.send(());
        }
        Ok(())
    }
}
