//! A cluster of real `boat node` processes on one machine: used by
//! `boat deploy`, by `boat bench` and by the integration tests.
//!
//! Layout under the cluster directory:
//! - `node-N/`: node N's data (sled log, snapshots);
//! - `shared/`: the directory every node shares (train jobs' data and
//!   outputs), with `shared/logs/nodes/node-N.log`, node N's log file;
//! - `node-N.pid`: pid of the running process;
//! - `node-N.hold`: while present, a supervisor does not restart node N
//!   (`reset.sh` uses it to wipe a node).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::client::HttpClient;

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub dir: PathBuf,
    pub boat_bin: PathBuf,
    pub ort_lib: Option<PathBuf>,
    pub http: Vec<SocketAddr>,
    pub raft: Vec<SocketAddr>,
    /// Extra arguments for every `boat node`.
    pub node_args: Vec<String>,
    /// File with the admin bearer token, handed to every node.
    pub admin_token_file: Option<PathBuf>,
    /// Copy node output to this process's stderr, each line prefixed with
    /// the node id (otherwise only the node log files get it).
    pub inherit_output: bool,
    /// How many of the nodes found the cluster (all by default); the others
    /// start with `--join` and wait for `boat cluster add`.
    pub founders: usize,
    /// Founders that restart with `--join` (wiped after they were removed,
    /// to be added back as learners).
    pub rejoin: std::collections::BTreeSet<usize>,
}

/// A loopback address of its own for one cluster: 127.x.y.z picked at
/// random. Clusters started side by side (tests run in parallel) then cannot
/// take each other's ports between reserving a port and binding it.
fn private_loopback() -> std::net::Ipv4Addr {
    let [a, b, c]: [u8; 3] = rand::random();
    std::net::Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254))
}

impl ClusterSpec {
    /// Nodes at the given addresses, with default options.
    pub fn with_addrs(dir: PathBuf, boat_bin: PathBuf, http: Vec<SocketAddr>, raft: Vec<SocketAddr>) -> Self {
        let founders = http.len();
        Self {
            dir,
            boat_bin,
            ort_lib: None,
            http,
            raft,
            node_args: Vec::new(),
            admin_token_file: None,
            inherit_output: false,
            founders,
            rejoin: Default::default(),
        }
    }

    /// `n` nodes on fixed ports `http_base + i` and `raft_base + i`.
    pub fn fixed(
        n: usize,
        host: &str,
        http_base: u16,
        raft_base: u16,
        dir: PathBuf,
        boat_bin: PathBuf,
    ) -> anyhow::Result<Self> {
        let addr = |port: u16| -> anyhow::Result<SocketAddr> {
            format!("{host}:{port}").parse().with_context(|| format!("bad host {host:?}"))
        };
        let http = (0..n).map(|i| addr(http_base + i as u16)).collect::<anyhow::Result<_>>()?;
        let raft = (0..n).map(|i| addr(raft_base + i as u16)).collect::<anyhow::Result<_>>()?;
        Ok(Self::with_addrs(dir, boat_bin, http, raft))
    }

    /// `n` nodes on free ports of a loopback address of their own. Every
    /// port is held until all are chosen, so none is handed out twice.
    pub fn free_ports(n: usize, dir: PathBuf, boat_bin: PathBuf) -> anyhow::Result<Self> {
        let host = private_loopback();
        let mut held = Vec::new();
        for _ in 0..2 * n {
            held.push(TcpListener::bind((host, 0)).with_context(|| format!("reserving a port on {host}"))?);
        }
        let addrs: Vec<SocketAddr> = held.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?;
        let (http, raft) = addrs.split_at(n);
        Ok(Self::with_addrs(dir, boat_bin, http.to_vec(), raft.to_vec()))
    }

    pub fn len(&self) -> usize {
        self.http.len()
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_empty()
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}"))
    }

    /// The directory every node shares: train jobs' data and outputs, and
    /// every log.
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.join("shared")
    }

    /// The nodes' own logs, in the shared directory.
    pub fn log_dir(&self) -> PathBuf {
        self.shared_dir().join("logs/nodes")
    }

    pub fn log_file(&self, i: usize) -> PathBuf {
        self.log_dir().join(format!("node-{i}.log"))
    }

    pub fn pid_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}.pid"))
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.dir.join("admin-token")
    }

    pub fn hold_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}.hold"))
    }

    /// The `boat node` command line for node `i`.
    pub fn command(&self, i: usize) -> Command {
        let mut cmd = Command::new(&self.boat_bin);
        cmd.arg("node")
            .arg("--id")
            .arg(i.to_string())
            .arg("--http")
            .arg(self.http[i].to_string())
            .arg("--raft")
            .arg(self.raft[i].to_string())
            .arg("--data-dir")
            .arg(self.node_dir(i))
            .arg("--log-dir")
            .arg(self.log_dir())
            .arg("--shared-dir")
            .arg(self.shared_dir());
        // A founder knows the founders; a joiner knows them and itself.
        for j in (0..self.founders.min(self.len())).chain((i >= self.founders).then_some(i)) {
            cmd.arg("--member").arg(format!("{j}={}/{}", self.raft[j], self.http[j]));
        }
        if i >= self.founders || self.rejoin.contains(&i) {
            cmd.arg("--join");
        }
        if let Some(lib) = &self.ort_lib {
            cmd.arg("--ort-lib").arg(lib);
        }
        if let Some(token) = &self.admin_token_file {
            cmd.arg("--admin-token-file").arg(token);
        }
        cmd.args(&self.node_args);
        if self.inherit_output {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }
}

/// Returns the cluster's admin token file, creating it (mode 0600, 32
/// random bytes in hex) when it does not exist yet.
pub fn ensure_admin_token(path: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(f, "{token}")?;
    }
    Ok(path.to_path_buf())
}

/// Running node processes.
pub struct LocalCluster {
    pub spec: ClusterSpec,
    children: Vec<Option<Child>>,
    pub client: HttpClient,
}

impl LocalCluster {
    /// Starts the founding nodes (every node, unless the spec says fewer);
    /// the others are started later with [`Self::start_node`].
    pub fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&spec.dir).with_context(|| format!("creating {}", spec.dir.display()))?;
        let n = spec.len();
        let founders = spec.founders.min(n);
        let mut cluster = Self { spec, children: (0..n).map(|_| None).collect(), client: HttpClient::new()? };
        for i in 0..founders {
            cluster.start_node(i)?;
        }
        Ok(cluster)
    }

    pub fn http(&self, i: usize) -> String {
        format!("http://{}", self.spec.http[i])
    }

    pub fn len(&self) -> usize {
        self.spec.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spec.is_empty()
    }

    /// Starts node `i` (which must not be running).
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        if self.children[i].is_some() {
            bail!("node {i} is already running");
        }
        let mut child =
            self.spec.command(i).spawn().with_context(|| format!("spawning {}", self.spec.boat_bin.display()))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(prefix_lines(i, stderr));
        }
        if let Some(pid) = child.id() {
            let _ = std::fs::write(self.spec.pid_file(i), pid.to_string());
        }
        self.children[i] = Some(child);
        Ok(())
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().and_then(|c| c.id())
    }

    /// SIGKILLs node `i` and reaps it.
    pub async fn kill_node(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[i].take() {
            child.kill().await.with_context(|| format!("killing node {i}"))?;
        }
        Ok(())
    }

    /// SIGTERMs node `i` and waits up to `grace` before SIGKILL.
    pub async fn stop_node(&mut self, i: usize, grace: Duration) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[i].take() {
            if let Some(pid) = child.id() {
                // SAFETY-free libc call: sending a signal to our own child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                child.kill().await?;
            }
        }
        Ok(())
    }

    /// Checks whether node `i` has exited by itself; returns its exit
    /// status and forgets the process if so.
    pub fn reap(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let exited = match self.children[i].as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        };
        if exited.is_some() {
            self.children[i] = None;
        }
        exited
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    /// Deletes node `i`'s data and log file. The node must be stopped.
    pub fn wipe_node(&self, i: usize) -> anyhow::Result<()> {
        if self.children[i].is_some() {
            bail!("stop node {i} before wiping it");
        }
        remove_if_exists(&self.spec.node_dir(i))?;
        remove_if_exists(&self.spec.log_file(i))?;
        Ok(())
    }

    /// Waits until one node says it is leader and the others agree.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.agreed_leader().await {
                return Ok(l);
            }
            if Instant::now() > deadline {
                bail!("no leader agreed by all running nodes within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut leader = None;
        for i in (0..self.len()).filter(|i| self.is_running(*i)) {
            let s = self.client.status(&self.http(i)).await.ok()?;
            if s.is_leader {
                leader = Some(i);
            }
            let l = s.leader_id? as usize;
            if leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        leader.filter(|l| self.is_running(*l))
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_for_applied(&self, index: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for i in (0..self.len()).filter(|i| self.is_running(*i)) {
            loop {
                match self.client.status(&self.http(i)).await {
                    Ok(s) if s.last_applied >= index => break,
                    _ if Instant::now() > deadline => {
                        bail!("node {i} did not apply index {index} within {timeout:?}")
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        Ok(())
    }

    /// Stops every node (SIGTERM, then SIGKILL after the grace period).
    pub async fn shutdown(&mut self, grace: Duration) {
        for i in 0..self.len() {
            if let Err(e) = self.stop_node(i, grace).await {
                tracing::warn!(node = i, error = %e, "stopping node");
            }
            let _ = std::fs::remove_file(self.spec.pid_file(i));
        }
    }
}

/// Copies a node's output to our stderr, one prefixed line at a time.
async fn prefix_lines(i: usize, out: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[node {i}] {line}");
    }
}

fn remove_if_exists(p: &Path) -> anyhow::Result<()> {
    let res = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Resident memory of a process (VmRSS), in bytes, if it can be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// [`rss_bytes`] in MB, NaN when unknown (for reports).
pub fn rss_mb(pid: u32) -> f64 {
    rss_bytes(pid).map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}
