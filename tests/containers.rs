//! The cluster as containers, as a user deploys it (`boat deploy --docker`),
//! with faults made outside the process: `docker kill` of the leader,
//! `docker network disconnect` of the leader, `docker pause` of a follower.
//!
//! Each test deploys under a project name and an image tag of its own and
//! removes every container, network, volume and image carrying them, even
//! when it fails; it touches nothing else. Without a Docker engine it says
//! why and passes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use boat_tests::boat::client::HttpClient;
use boat_tests::{boat_bin, ort_lib};
use serde_json::json;

const LABEL: &str = "boat.deploy";
const PATIENCE: Duration = Duration::from_secs(60);

fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn engine_missing() -> Option<String> {
    let (ok, out) = docker(&["info", "--format", "{{.ServerVersion}}"]);
    (!ok).then(|| out.trim().to_string())
}

/// `n` consecutive free ports on 127.0.0.1.
fn free_ports(n: u16) -> u16 {
    let start = 30_000 + (std::process::id() % 1_000) as u16 * 16;
    (start..60_000)
        .step_by(16)
        .find(|base| (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
        .expect("a block of free ports")
}

/// Removes what a deployment made when it goes out of scope.
struct Cleanup {
    project: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.project);
        for id in docker(&["ps", "-aq", "--filter", &filter]).1.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        for id in docker(&["network", "ls", "-q", "--filter", &filter]).1.split_whitespace() {
            docker(&["network", "rm", id]);
        }
        for id in docker(&["volume", "ls", "-q", "--filter", &filter]).1.split_whitespace() {
            docker(&["volume", "rm", "-f", id]);
        }
        docker(&["rmi", "-f", &self.image]);
    }
}

/// What is left of the project on the engine: containers, networks, volumes.
fn leftovers(project: &str) -> String {
    let filter = format!("label={LABEL}={project}");
    ["ps -aq", "network ls -q", "volume ls -q"]
        .iter()
        .map(|cmd| {
            let mut args: Vec<&str> = cmd.split(' ').collect();
            args.extend(["--filter", &filter]);
            docker(&args).1.trim().to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

struct Deployment {
    project: String,
    base: u16,
    nodes: usize,
    child: tokio::process::Child,
    out: PathBuf,
    http: HttpClient,
    // Fields drop in this order, after `Drop::drop` has stopped the deploy
    // command: the engine is swept before the directory its containers
    // write into is removed.
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Stop `boat deploy` and wait for it, so that no container it is
        // still creating appears after the sweep.
        let _ = self.child.start_kill();
        let until = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Deployment {
    async fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("boat-containers-").tempdir().unwrap();
        let project = format!("boat-t{:06x}", rand_suffix());
        let image = format!("{project}:test");
        let cleanup = Cleanup { project: project.clone(), image: image.clone() };
        let base = free_ports(4);
        let out = dir.path().join("deploy.out");
        // One file for both streams, so they do not overwrite each other.
        let log = std::fs::File::create(&out).unwrap();
        let child = tokio::process::Command::new(boat_bin())
            .args(["deploy", "--docker", "--wipe", "--project", &project, "--image", &image])
            .args(["--http-base", &base.to_string(), "--dir"])
            .arg(dir.path().join(".boat"))
            .arg("--ort-lib")
            .arg(ort_lib())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = HttpClient::new().unwrap();
        Self { project, base, nodes: 3, child, out, http, _cleanup: cleanup, _dir: dir }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.base + i as u16)
    }

    fn container(&self, i: usize) -> String {
        format!("{}-{i}", self.project)
    }

    fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The node of `among` that leads, once every one of `among` that
    /// answers names it and at least two do.
    async fn leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut named = Vec::new();
            for &i in among {
                if let Ok(s) = self.http.status(&self.url(i)).await {
                    named.push(s.leader_id.map(|l| l as usize));
                }
            }
            if let Some(Some(l)) = named.first().copied() {
                if among.contains(&l) && named.len() >= 2 && named.iter().all(|x| *x == Some(l)) {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node `i`'s status once it counts `n` voters.
    async fn voters(&self, i: usize, n: usize) -> boat_raft::NodeStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(s) = self.http.status(&self.url(i)).await {
                if s.voters.len() == n {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "node {i} never counted {n} voters:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node has applied the same entries, with the same
    /// state digest.
    async fn converged(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut seen = Vec::new();
            for i in 0..self.nodes {
                if let Ok(s) = self.http.status(&self.url(i)).await {
                    seen.push((s.last_applied, s.state_digest));
                }
            }
            if seen.len() == self.nodes && seen.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(Instant::now() < deadline, "the nodes did not converge: {seen:?}\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `i` answers and has applied at least `index`.
    async fn caught_up(&self, i: usize, index: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(s) = self.http.status(&self.url(i)).await {
                if s.last_applied >= index {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "node {i} did not catch up to {index}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn predict(&self, i: usize, input: &str, key: Option<&str>) -> boat_tests::boat::client::Reply {
        self.http.predict(&self.url(i), &json!({ "input": input }), key).await.unwrap()
    }

    async fn predict_anywhere(&self, among: &[usize], input: &str) -> (boat_tests::boat::client::Reply, Duration) {
        let t0 = Instant::now();
        let urls: Vec<String> = among.iter().map(|&i| self.url(i)).collect();
        let r = self.http.predict_anywhere(&urls, &json!({ "input": input }), None, t0 + PATIENCE).await.unwrap();
        (r, t0.elapsed())
    }

    fn inspect(&self, i: usize, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.container(i)]).1.trim().to_string()
    }
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (t.subsec_nanos() ^ std::process::id().rotate_left(12)) & 0xff_ffff
}

fn index_of(r: &boat_tests::boat::client::Reply) -> u64 {
    r.body["index"].as_u64().unwrap_or_else(|| panic!("no index in {}", r.text))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_of_containers_survives_kill_disconnect_and_pause() {
    if let Some(why) = engine_missing() {
        eprintln!("skipped: no Docker engine here ({why})");
        return;
    }
    let mut d = Deployment::start().await;
    let all = [0, 1, 2];
    let leader = d.leader(&all).await;

    // Served through the published ports; a follower redirects to the
    // leader's published address, not its address on the network.
    let r = d.predict(leader, "hello", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["node_id"], leader as u64);
    let follower = (leader + 1) % 3;
    let r = d.predict(follower, "redirected", None).await;
    assert_eq!(r.status, 307, "{}", r.text);
    let published = format!("127.0.0.1:{}", d.base + leader as u16);
    assert_eq!(r.body["leader_http"], published.as_str(), "{}", r.text);
    let location = r.headers["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("http://{published}/predict"));
    let s = d.http.status(&d.url(follower)).await.unwrap();
    assert_eq!(s.client_http, format!("127.0.0.1:{}", d.base + follower as u16));
    assert!(s.members.iter().all(|m| m.http_addr == format!("{}-{}:8080", d.project, m.id)), "{:?}", s.members);

    // docker kill of the leader: another leader serves, and the foreground
    // `boat deploy` starts the killed container again (the engine's restart
    // policy leaves a container killed by hand alone); it catches up.
    let (ok, out) = docker(&["kill", &d.container(leader)]);
    assert!(ok, "{out}");
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let (r, took) = d.predict_anywhere(&others, "after the kill").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.body["node_id"], leader as u64);
    eprintln!("docker kill of the leader: served again after {took:?}");
    let committed = index_of(&r);
    let deadline = Instant::now() + PATIENCE;
    while d.inspect(leader, "{{.RestartCount}} {{.State.Running}}") == "0 false"
        || d.inspect(leader, "{{.State.Running}}") != "true"
    {
        assert!(Instant::now() < deadline, "the killed container was not restarted:\n{}", d.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.caught_up(leader, committed).await;

    // docker network disconnect of the leader: the majority elects a new
    // leader; after reconnecting, the old one follows it, and the write it
    // was sent while cut off never shows up.
    let old = d.leader(&all).await;
    let net = format!("{}-net", d.project);
    let (ok, out) = docker(&["network", "disconnect", &net, &d.container(old)]);
    assert!(ok, "{out}");
    // A keyed write handed to the cut-off leader at once, from inside its
    // own container (its published port went with the network).
    let key = "sent-to-the-cut-off-leader";
    let cut_off = {
        let c = d.container(old);
        std::thread::spawn(move || {
            let args = ["exec", &c, "/boat", "predict", "--node", "http://127.0.0.1:8080", "--timeout-s", "2"];
            docker(&[&args[..], &["--key", key, "\"lost\""]].concat()).1
        })
    };
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let (r, took) = d.predict_anywhere(&majority, "during the partition").await;
    assert_eq!(r.status, 200, "{}", r.text);
    eprintln!("docker network disconnect of the leader: served again after {took:?}");
    let new = d.leader(&majority).await;
    assert_ne!(new, old);
    let cut_off = cut_off.join().unwrap();
    let (ok, out) = docker(&["network", "connect", "--alias", &d.container(old), &net, &d.container(old)]);
    assert!(ok, "{out}");
    let (r, _) = d.predict_anywhere(&all, "after the partition").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let healed = index_of(&r);
    d.caught_up(old, healed).await;
    let s = d.http.status(&d.url(old)).await.unwrap();
    assert!(!s.is_leader, "the old leader still leads: {s:?}");
    for i in all {
        let r = d.http.get(&d.url(i), &format!("/predictions/{key}?consistency=stale")).await.unwrap();
        assert_eq!(r.status, 404, "node {i} holds the cut-off leader's write ({cut_off}): {}", r.text);
    }

    // docker pause of a follower: the others serve; it catches up after.
    let leader = d.leader(&all).await;
    let paused = (leader + 1) % 3;
    let (ok, out) = docker(&["pause", &d.container(paused)]);
    assert!(ok, "{out}");
    let running: Vec<usize> = all.iter().copied().filter(|&i| i != paused).collect();
    let mut last = 0;
    for n in 0..20 {
        let (r, _) = d.predict_anywhere(&running, &format!("while paused {n}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        last = index_of(&r);
    }
    let (ok, out) = docker(&["unpause", &d.container(paused)]);
    assert!(ok, "{out}");
    d.caught_up(paused, last).await;
    d.converged().await;

    // /control from the host needs the admin token (the node listens on
    // the network, not on loopback); a crash is restarted by the policy.
    let leader = d.leader(&all).await;
    let victim = (leader + 2) % 3;
    let r = d.http.control(&d.url(victim), &json!({"cmd": "crash"})).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let token = std::fs::read_to_string(d.dir().join(".boat/admin-token")).unwrap();
    let r = d
        .http
        .send_json(
            boat_tests::boat::client::Method::POST,
            &d.url(victim),
            "/control",
            Some(&json!({"cmd": "crash"})),
            Some(token.trim()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = Instant::now() + PATIENCE;
    while d.inspect(victim, "{{.RestartCount}}") == "0" {
        assert!(Instant::now() < deadline, "the crashed container was not restarted:\n{}", d.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // reset.sh wipes a node (container and volume) and it comes back as a
    // learner, then a voter, with the cluster's state.
    let reset = Command::new(boat_tests::workspace_root().join("reset.sh"))
        .arg(victim.to_string())
        .env("BOAT_DIR", d.dir().join(".boat"))
        .env("BOAT_BIN", boat_bin())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&reset.stdout), String::from_utf8_lossy(&reset.stderr));
    assert!(reset.status.success(), "reset.sh failed: {said}");
    assert!(said.contains("is a voter again"), "{said}");
    let (r, _) = d.predict_anywhere(&all, "after the reset").await;
    assert_eq!(r.status, 200, "{}", r.text);
    d.caught_up(victim, index_of(&r)).await;
    d.converged().await;

    // A fourth node added through the membership commands, found by name.
    let add = Command::new(boat_bin())
        .args(["deploy", "--add-node", "3", "--dir"])
        .arg(d.dir().join(".boat"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&add.stdout), String::from_utf8_lossy(&add.stderr));
    assert!(add.status.success(), "--add-node failed: {said}");
    d.nodes = 4;
    let s = d.voters(3, 4).await;
    assert_eq!(s.client_http, format!("127.0.0.1:{}", d.base + 3));
    let (r, _) = d.predict_anywhere(&[0, 1, 2, 3], "four nodes").await;
    assert_eq!(r.status, 200, "{}", r.text);
    d.converged().await;

    // Ctrl-C removes the containers, the network and (with --wipe) the volumes.
    let pid = d.child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(PATIENCE, d.child.wait()).await.expect("deploy stops").unwrap();
    assert!(status.success(), "{status}:\n{}", d.output());
    assert_eq!(leftovers(&d.project), "", "left behind:\n{}", d.output());
}

fn swarm_active() -> bool {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).1.trim() == "active"
}

/// Leaves the Swarm the test made (and the bridge network the Swarm made
/// with it), after the stack and its volumes are gone.
struct SwarmCleanup {
    project: String,
    image: String,
    left_swarm: bool,
    made_gwbridge: bool,
}

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        docker(&["stack", "rm", &self.project]);
        let filter = format!("label=com.docker.stack.namespace={}", self.project);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !docker(&["ps", "-aq", "--filter", &filter]).1.trim().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
        for id in docker(&["volume", "ls", "-q", "--filter", &filter]).1.split_whitespace() {
            docker(&["volume", "rm", "-f", id]);
        }
        if self.left_swarm {
            docker(&["swarm", "leave", "--force"]);
            if self.made_gwbridge {
                docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
        docker(&["rmi", "-f", &self.image]);
    }
}

/// The container running node `i`'s task, once there is one.
fn task_container(project: &str, i: usize) -> Option<String> {
    let filter = format!("label=com.docker.swarm.service.name={project}_boat-{i}");
    docker(&["ps", "-q", "--filter", &filter]).1.split_whitespace().next().map(String::from)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swarm_stack_serves_after_its_leader_is_killed() {
    if let Some(why) = engine_missing() {
        eprintln!("skipped: no Docker engine here ({why})");
        return;
    }
    let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"]).0;
    let init = !swarm_active();
    if init {
        let (ok, out) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(ok, "{out}");
    }
    let project = format!("boat-s{:06x}", rand_suffix());
    let image = format!("{project}:test");
    // Declared before the cleanup, so it is removed after the stack.
    let dir = tempfile::Builder::new().prefix("boat-swarm-").tempdir().unwrap();
    let _cleanup = SwarmCleanup {
        project: project.clone(),
        image: image.clone(),
        left_swarm: init,
        made_gwbridge: init && !had_gwbridge,
    };
    let base = free_ports(4);
    let up = Command::new(boat_bin())
        .args(["deploy", "--swarm", "--project", &project, "--image", &image])
        .args(["--http-base", &base.to_string(), "--dir"])
        .arg(dir.path().join(".boat"))
        .arg("--ort-lib")
        .arg(ort_lib())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr));
    assert!(up.status.success(), "boat deploy --swarm failed: {said}");
    let http = HttpClient::new().unwrap();
    let url = |i: usize| format!("http://127.0.0.1:{}", base + i as u16);
    let urls: Vec<String> = (0..3).map(url).collect();

    let t0 = Instant::now();
    let r = http.predict_anywhere(&urls, &json!({"input": "hello"}), None, t0 + PATIENCE).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let leader = r.body["node_id"].as_u64().unwrap() as usize;
    // A follower redirects to the leader's published address.
    let r = http.predict(&url((leader + 1) % 3), &json!({"input": "redirected"}), None).await.unwrap();
    assert_eq!(r.status, 307, "{}", r.text);
    assert_eq!(r.body["leader_http"], format!("127.0.0.1:{}", base + leader as u16));

    // docker kill of the leader's task: another node serves, the Swarm
    // starts a new task for it, and that task catches up from its volume
    // and the leader.
    let killed = task_container(&project, leader).expect("the leader's task container");
    let (ok, out) = docker(&["kill", &killed]);
    assert!(ok, "{out}");
    let others: Vec<String> = (0..3).filter(|&i| i != leader).map(url).collect();
    let t0 = Instant::now();
    let r = http.predict_anywhere(&others, &json!({"input": "after the kill"}), None, t0 + PATIENCE).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    eprintln!("docker kill of the Swarm leader's task: served again after {:?}", t0.elapsed());
    let committed = r.body["index"].as_u64().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let replaced = task_container(&project, leader).is_some_and(|c| c != killed);
        let caught_up = match http.status(&url(leader)).await {
            Ok(s) => s.last_applied >= committed,
            Err(_) => false,
        };
        if replaced && caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "node {leader} did not come back (replaced: {replaced})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // /control with the token: a crash, and the Swarm replaces the task.
    let victim = (leader + 1) % 3;
    let volume = format!("{project}_data-{victim}");
    let created = || docker(&["volume", "inspect", "--format", "{{.CreatedAt}}", &volume]).1.trim().to_string();
    let volume_before = created();
    assert!(!volume_before.is_empty(), "no volume {volume}");
    let token = std::fs::read_to_string(dir.path().join(".boat/admin-token")).unwrap();
    let crash = json!({"cmd": "crash"});
    let r = http.control(&url(victim), &crash).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = http
        .send_json(boat_tests::boat::client::Method::POST, &url(victim), "/control", Some(&crash), Some(token.trim()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);

    // reset.sh: the node's service scaled to zero, its volume removed, and
    // back as the same voter, empty, catching up from the leader.
    let reset = Command::new(boat_tests::workspace_root().join("reset.sh"))
        .arg(victim.to_string())
        .env("BOAT_DIR", dir.path().join(".boat"))
        .env("BOAT_BIN", boat_bin())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&reset.stdout), String::from_utf8_lossy(&reset.stderr));
    assert!(reset.status.success(), "reset.sh failed: {said}");
    // The volume was removed and made again (its time has one-second
    // resolution: the scaling down and up takes longer than that).
    let volume_after = created();
    assert!(!volume_after.is_empty() && volume_after != volume_before, "{volume} not recreated: {said}");
    let t0 = Instant::now();
    let r = http.predict_anywhere(&urls, &json!({"input": "after the reset"}), None, t0 + PATIENCE).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let committed = r.body["index"].as_u64().unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !http.status(&url(victim)).await.is_ok_and(|s| s.last_applied >= committed) {
        assert!(Instant::now() < deadline, "node {victim} did not catch up after reset.sh: {said}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A fourth node, as a service of its own on the stack's network.
    let add = Command::new(boat_bin())
        .args(["deploy", "--add-node", "3", "--dir"])
        .arg(dir.path().join(".boat"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&add.stdout), String::from_utf8_lossy(&add.stderr));
    assert!(add.status.success(), "--add-node failed: {said}");
    let deadline = Instant::now() + PATIENCE;
    while !http.status(&url(3)).await.is_ok_and(|s| s.voters == vec![0, 1, 2, 3]) {
        assert!(Instant::now() < deadline, "node 3 never counted four voters: {said}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // --down removes the stack; --wipe its volumes.
    let down = Command::new(boat_bin())
        .args(["deploy", "--swarm", "--down", "--wipe", "--project", &project, "--dir"])
        .arg(dir.path().join(".boat"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&down.stdout), String::from_utf8_lossy(&down.stderr));
    assert!(down.status.success(), "boat deploy --swarm --down failed: {said}");
    let filter = format!("label=com.docker.stack.namespace={project}");
    for what in
        [&["service", "ls", "-q"][..], &["network", "ls", "-q"], &["volume", "ls", "-q"], &["secret", "ls", "-q"]]
    {
        let left = docker(&[what, &["--filter", &filter]].concat()).1;
        assert_eq!(left.trim(), "", "{what:?} left behind");
    }
}
