//! Test sandbox: a cluster of real `boat` processes on free loopback ports,
//! each node in its own directory under a temporary directory, with
//! `wait_for_*` helpers that poll instead of sleeping.
//!
//! The `boat` binary is taken from `BOAT_BIN`, or else from the workspace's
//! `target/debug/boat` (build it first: `cargo build --bin boat`). The ONNX
//! Runtime library comes from `ORT_DYLIB_PATH`, or else from `.ort/` where
//! `scripts/fetch-ort.sh` puts it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat::client::{HttpClient, Reply};
use boat::cluster::{ClusterSpec, LocalCluster};
use boat_raft::NodeStatus;
use serde_json::{json, Value};

pub use boat;

pub use boat::onnx_builder;

/// Generous bound for anything a healthy cluster does in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `boat` binary under test.
pub fn boat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BOAT_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/debug/boat");
    assert!(p.exists(), "{} is missing: run `cargo build --bin boat` or set BOAT_BIN", p.display());
    p
}

/// The ONNX Runtime library for the nodes.
pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".ort/libonnxruntime.so.1.31.1");
    assert!(p.exists(), "{} is missing: run scripts/fetch-ort.sh or set ORT_DYLIB_PATH", p.display());
    p
}

/// The nodes of a three-node cluster other than `leader`.
pub fn others(leader: usize) -> Vec<usize> {
    (0..3).filter(|i| *i != leader).collect()
}

/// A file of the repository's `models/` directory.
pub fn model_path(file: &str) -> PathBuf {
    workspace_root().join("models").join(file)
}

/// A running test cluster. Dropping it kills every node; when the test is
/// failing, the node logs are printed and the directory is kept.
pub struct Sandbox {
    pub cluster: LocalCluster,
    dir: Option<tempfile::TempDir>,
    bootstrapped: std::sync::atomic::AtomicBool,
}

impl Sandbox {
    /// Starts `n` nodes with extra `boat node` arguments.
    pub fn start(n: usize, node_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_founders(n, n, node_args)
    }

    /// Prepares `n` nodes and starts the first `founders`, which form the
    /// cluster; the others start later (`restart`) with `--join`.
    pub fn start_founders(n: usize, founders: usize, node_args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("boat-test-").tempdir()?;
        let mut spec = ClusterSpec::free_ports(n, dir.path().to_path_buf(), boat_bin())?;
        spec.founders = founders;
        spec.ort_lib = Some(ort_lib());
        spec.node_args = node_args.iter().map(|s| s.to_string()).collect();
        spec.admin_token_file = Some(boat::cluster::ensure_admin_token(&spec.admin_token_path())?);
        let cluster = LocalCluster::start(spec)?;
        Ok(Self { cluster, dir: Some(dir), bootstrapped: Default::default() })
    }

    /// The cluster's admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.cluster.spec.admin_token_path()).unwrap_or_default().trim().to_string()
    }

    /// Uploads `models/<file>` as model `name` through node `i`.
    pub async fn upload(&self, i: usize, name: &str, file: &str) -> anyhow::Result<Reply> {
        let bytes = std::fs::read(model_path(file))?;
        self.client().upload_model(&self.url(i), name, bytes, Some(&self.token())).await
    }

    /// A JSON call with a bearer token.
    pub async fn api(
        &self,
        i: usize,
        method: boat::client::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> Reply {
        self.client().send_json(method, &self.url(i), path, body.as_ref(), Some(token)).await.expect("node answers")
    }

    /// Uploads the shipped `datasets/<file>` as a classification dataset.
    pub async fn upload_dataset(&self, i: usize, name: &str, file: &str, token: &str) {
        let bytes = std::fs::read(workspace_root().join("datasets").join(file)).expect("shipped dataset");
        let path = format!("/api/datasets/{name}?task=classification");
        let url = self.url(i);
        let r = self.client().send_raw(boat::client::Method::POST, &url, &path, "text/csv", bytes, Some(token));
        let r = r.await.expect("node answers");
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// Polls train job `id` through any running node until `done` holds.
    pub async fn wait_for_job(&self, id: u64, token: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        loop {
            for i in (0..self.cluster.len()).filter(|i| self.cluster.is_running(*i)) {
                let path = format!("/api/jobs/{id}");
                if let Ok(r) =
                    self.client().send_json(boat::client::Method::GET, &self.url(i), &path, None, Some(token)).await
                {
                    if r.status == 200 {
                        if done(&r.body) {
                            return r.body;
                        }
                        last = r.body;
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "job {id} did not get there in {within:?}: {last}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The shared directory's path, as the nodes see it.
    pub fn shared_dir(&self) -> PathBuf {
        self.cluster.spec.shared_dir()
    }

    /// Polls `/status` of every running node until `check` holds for all.
    pub async fn wait_for_all(&self, what: &str, check: impl Fn(&NodeStatus) -> bool) -> anyhow::Result<()> {
        for i in (0..self.cluster.len()).filter(|i| self.cluster.is_running(*i)) {
            self.wait_for_status(i, what, &check).await?;
        }
        Ok(())
    }

    pub fn client(&self) -> &HttpClient {
        &self.cluster.client
    }

    pub fn url(&self, i: usize) -> String {
        self.cluster.http(i)
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.cluster.len()).map(|i| self.url(i)).collect()
    }

    pub async fn status(&self, i: usize) -> anyhow::Result<NodeStatus> {
        self.client().status(&self.url(i)).await
    }

    /// Waits for a leader. The first time, also waits until the first
    /// leader has created the bootstrap superadmin, so that its entry never
    /// lands in the middle of what a test measures.
    pub async fn wait_for_leader(&self) -> anyhow::Result<usize> {
        let leader = self.cluster.wait_for_leader(PATIENCE).await?;
        if !self.bootstrapped.load(std::sync::atomic::Ordering::Relaxed) {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let token = self.token();
                let me = self
                    .client()
                    .send_json(boat::client::Method::GET, &self.url(leader), "/api/users/me", None, Some(&token))
                    .await;
                if me.is_ok_and(|r| r.status == 200) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the bootstrap superadmin was not created within {PATIENCE:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.bootstrapped.store(true, std::sync::atomic::Ordering::Relaxed);
            // Let every node apply it too.
            self.wait_for_convergence().await?;
            return self.cluster.wait_for_leader(PATIENCE).await;
        }
        Ok(leader)
    }

    /// Polls until `check` holds for node `i`'s status.
    pub async fn wait_for_status(
        &self,
        i: usize,
        what: &str,
        check: impl Fn(&NodeStatus) -> bool,
    ) -> anyhow::Result<NodeStatus> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(s) = self.status(i).await {
                if check(&s) {
                    return Ok(s);
                }
            }
            if Instant::now() > deadline {
                bail!("node {i}: {what} did not happen within {PATIENCE:?} (last status: {:?})", self.status(i).await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has applied the same index, then
    /// returns their statuses (so digests can be compared).
    pub async fn wait_for_convergence(&self) -> anyhow::Result<Vec<NodeStatus>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut all = Vec::new();
            for i in (0..self.cluster.len()).filter(|i| self.cluster.is_running(*i)) {
                if let Ok(s) = self.status(i).await {
                    all.push(s);
                }
            }
            let running = (0..self.cluster.len()).filter(|i| self.cluster.is_running(*i)).count();
            let leader_commit = all.iter().find(|s| s.is_leader).map(|s| s.commit_index);
            if all.len() == running
                && leader_commit.is_some_and(|c| all.iter().all(|s| s.last_applied == c && s.commit_index == c))
            {
                return Ok(all);
            }
            if Instant::now() > deadline {
                bail!("nodes did not converge within {PATIENCE:?}: {all:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One `/predict` with `input` to node `i`.
    pub async fn predict(&self, i: usize, input: &str, key: Option<&str>) -> anyhow::Result<Reply> {
        self.client().predict(&self.url(i), &json!({ "input": input }), key).await
    }

    /// A prediction sent to whichever node leads, retried through elections.
    pub async fn predict_anywhere(&self, body: &Value, key: Option<&str>) -> anyhow::Result<Reply> {
        self.client().predict_anywhere(&self.urls(), body, key, Instant::now() + PATIENCE).await
    }

    pub async fn control(&self, i: usize, cmd: Value) -> anyhow::Result<Reply> {
        self.client().control(&self.url(i), &cmd).await
    }

    /// Node `i`'s log file, as text.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.cluster.spec.log_file(i)).unwrap_or_default()
    }

    /// Polls node `i`'s log file until it contains `needle`.
    pub async fn wait_for_log(&self, i: usize, needle: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while !self.log(i).contains(needle) {
            if Instant::now() > deadline {
                bail!("node {i}'s log never showed {needle:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Rebuilds two replicas: `restarted` is killed and restarts from its
    /// own snapshot and log; `wiped` is stopped, wiped and restarted, and
    /// waits until it has installed the leader's snapshot.
    pub async fn rebuild(&mut self, restarted: usize, wiped: usize) -> anyhow::Result<()> {
        self.cluster.kill_node(restarted).await?;
        self.cluster.stop_node(wiped, Duration::from_secs(10)).await?;
        self.cluster.wipe_node(wiped)?;
        self.restart(restarted)?;
        self.restart(wiped)?;
        self.wait_for_log(wiped, "installed snapshot from leader").await
    }

    /// Restarts node `i` after a kill or exit.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.cluster.reap(i);
        self.cluster.start_node(i).context("restarting node")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for i in 0..self.cluster.len() {
            if let Some(pid) = self.cluster.pid(i) {
                // Our own child: SIGKILL so nothing outlives the test.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                for i in 0..self.cluster.len() {
                    let log = self.log(i);
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("---- node {i} log (last 40 lines) ----");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
                eprintln!("test directory kept at {}", kept.display());
            }
        }
    }
}
