//! `boat deploy --docker`: the cluster as containers on this machine's
//! Docker engine, one per node, each with its own address on a private
//! network.
//!
//! Every node runs Boat's image (the one train-job workers use, built from
//! this binary) as container `<project>-N`, reachable by that name on the
//! network `<project>-net`, with its data in the named volume
//! `<project>-data-N`, a restart policy, the shared directory and the admin
//! token mounted from the host, and its HTTP port published on
//! `127.0.0.1:<http-base + N>`, which it advertises to clients. Every
//! container, the network and the volumes carry the label
//! `boat.deploy=<project>`: only what carries it is ever changed or removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use boat_admin::training::runtime;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use bollard::Docker;
use serde::{Deserialize, Serialize};

/// Where a node listens inside its container.
pub const HTTP_PORT: u16 = 8080;
pub const RAFT_PORT: u16 = 9080;
const DATA_DIR: &str = "/data";
const TOKEN_PATH: &str = "/run/boat/admin.token";
/// Marks everything a deployment made, with its project name as value.
pub const LABEL_DEPLOY: &str = "boat.deploy";

/// What a deployment is made of: names, ports and the node command. Written
/// to `<dir>/deploy.json` while it runs, so that `reset.sh` and `--down`
/// find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    /// `docker` or `swarm`.
    pub mode: String,
    pub project: String,
    pub nodes: usize,
    pub http_base: u16,
    pub image: String,
    /// The host directory holding the admin token and the shared directory.
    pub host_dir: PathBuf,
    /// Extra arguments for every `boat node`.
    pub node_args: Vec<String>,
}

impl Layout {
    pub fn container(&self, i: usize) -> String {
        format!("{}-{i}", self.project)
    }

    pub fn volume(&self, i: usize) -> String {
        format!("{}-data-{i}", self.project)
    }

    pub fn network(&self) -> String {
        format!("{}-net", self.project)
    }

    /// The port node `i` is published on, on the host.
    pub fn published_port(&self, i: usize) -> u16 {
        self.http_base + i as u16
    }

    /// The address clients on the host reach node `i` at.
    pub fn published(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.published_port(i))
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.published(i))
    }

    pub fn token_file(&self) -> PathBuf {
        self.host_dir.join("admin-token")
    }

    pub fn shared_dir(&self) -> PathBuf {
        self.host_dir.join("shared")
    }

    /// While this file exists the foreground command leaves node `i`
    /// alone (`reset.sh` is working on it).
    pub fn hold_file(&self, i: usize) -> PathBuf {
        self.host_dir.join(format!("node-{i}.hold"))
    }

    pub fn record_file(dir: &Path) -> PathBuf {
        dir.join("deploy.json")
    }

    /// `ID=RAFT/HTTP` of node `i`, by its name on the network.
    pub fn member(&self, i: usize) -> String {
        let c = self.container(i);
        format!("{i}={c}:{RAFT_PORT}/{c}:{HTTP_PORT}")
    }

    /// The arguments after the image's entrypoint (`/boat`) for node `i`.
    pub fn node_command(&self, i: usize, join: bool) -> Vec<String> {
        let mut cmd: Vec<String> = ["node", "--id", &i.to_string()].map(String::from).into();
        cmd.extend(["--http".into(), format!("0.0.0.0:{HTTP_PORT}"), "--raft".into(), format!("0.0.0.0:{RAFT_PORT}")]);
        // A node added later lists itself as well.
        for j in 0..self.nodes.max(i + 1) {
            cmd.extend(["--member".into(), self.member(j)]);
        }
        cmd.extend(["--advertise-http".into(), self.published(i)]);
        cmd.extend(["--data-dir".into(), DATA_DIR.into()]);
        cmd.extend(["--shared-dir".into(), runtime::CONTAINER_SHARED_DIR.into()]);
        cmd.extend(["--admin-token-file".into(), TOKEN_PATH.into()]);
        cmd.extend(["--worker-image".into(), self.image.clone()]);
        if join {
            cmd.push("--join".into());
        }
        cmd.extend(self.node_args.iter().cloned());
        cmd
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(LABEL_DEPLOY.to_string(), self.project.clone())])
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = Self::record_file(dir);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    /// Nodes are added in order, so that `0..nodes` stays the deployment.
    pub fn check_next_node(&self, i: usize) -> anyhow::Result<()> {
        if i < self.nodes {
            bail!("node {i} is part of the deployment already");
        }
        if i > self.nodes {
            bail!("the next node of this deployment is node {}: add nodes in order", self.nodes);
        }
        Ok(())
    }

    /// Records node `i` (just added) in `deploy.json`, for `reset.sh`, the
    /// admin requests and the foreground watch.
    pub fn record_added(&self, i: usize) -> anyhow::Result<()> {
        let mut now = Self::load(&self.host_dir).unwrap_or_else(|_| self.clone());
        now.nodes = now.nodes.max(i + 1);
        now.save(&self.host_dir)
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = Self::record_file(dir);
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading {}: is a deployment running?", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::DockerResponseServerError { status_code: 404, .. })
}

/// The containers of one deployment on one engine.
pub struct Containers {
    pub docker: Docker,
    pub layout: Layout,
}

impl Containers {
    pub async fn connect(layout: Layout) -> anyhow::Result<Self> {
        let docker = runtime::connect().await.map_err(anyhow::Error::msg)?;
        Ok(Self { docker, layout })
    }

    /// Creates the network, or checks that the one of that name is this
    /// deployment's.
    pub async fn ensure_network(&self) -> anyhow::Result<()> {
        let name = self.layout.network();
        match self.docker.inspect_network(&name, None).await {
            Ok(n) => {
                let ours = n.labels.unwrap_or_default().get(LABEL_DEPLOY) == Some(&self.layout.project);
                if !ours {
                    bail!("a Docker network named {name} exists and is not this deployment's; remove it or choose another --project");
                }
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                let request = NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(self.layout.labels()),
                    ..Default::default()
                };
                self.docker.create_network(request).await.with_context(|| format!("creating network {name}"))?;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("inspecting network {name}")),
        }
    }

    async fn ensure_volume(&self, i: usize) -> anyhow::Result<()> {
        let name = self.layout.volume(i);
        match self.docker.inspect_volume(&name).await {
            Ok(v) => {
                if v.labels.get(LABEL_DEPLOY) != Some(&self.layout.project) {
                    bail!("a Docker volume named {name} exists and is not this deployment's");
                }
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                let request = VolumeCreateRequest {
                    name: Some(name.clone()),
                    labels: Some(self.layout.labels()),
                    ..Default::default()
                };
                self.docker.create_volume(request).await.with_context(|| format!("creating volume {name}"))?;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("inspecting volume {name}")),
        }
    }

    /// Removes container `name` if this deployment made it; refuses to
    /// touch one it did not.
    async fn remove_container(&self, name: &str) -> anyhow::Result<()> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(LABEL_DEPLOY) != Some(&self.layout.project) {
                    bail!("a container named {name} exists and is not this deployment's");
                }
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                match self.docker.remove_container(name, Some(options)).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("removing container {name}")),
                }
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("inspecting container {name}")),
        }
    }

    /// (Re)creates and starts node `i`'s container; `join` starts an empty
    /// node that waits to be added.
    pub async fn start_node(&self, i: usize, join: bool) -> anyhow::Result<()> {
        let l = &self.layout;
        let name = l.container(i);
        self.ensure_volume(i).await?;
        self.remove_container(&name).await?;
        let mounts = vec![
            Mount {
                target: Some(DATA_DIR.into()),
                source: Some(l.volume(i)),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            },
            Mount {
                target: Some(runtime::CONTAINER_SHARED_DIR.into()),
                source: Some(l.shared_dir().to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                ..Default::default()
            },
            Mount {
                target: Some(TOKEN_PATH.into()),
                source: Some(l.token_file().to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            },
        ];
        let port = format!("{HTTP_PORT}/tcp");
        let binding =
            PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(l.published_port(i).to_string()) };
        let host_config = HostConfig {
            mounts: Some(mounts),
            port_bindings: Some(HashMap::from([(port.clone(), Some(vec![binding]))])),
            // Restarted whenever it exits (a crash, a /control exit, a
            // kill), until the deployment removes it.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let endpoint = EndpointSettings { aliases: Some(vec![name.clone()]), ..Default::default() };
        let body = ContainerCreateBody {
            image: Some(l.image.clone()),
            hostname: Some(name.clone()),
            cmd: Some(l.node_command(i, join)),
            exposed_ports: Some(vec![port]),
            labels: Some(l.labels()),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(l.network(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.docker.start_container(&name, None).await.with_context(|| format!("starting container {name}"))?;
        Ok(())
    }

    /// Whether node `i`'s container has stopped (exited and not being
    /// restarted), and how often the engine has restarted it.
    pub async fn node_state(&self, i: usize) -> anyhow::Result<(bool, i64)> {
        use bollard::models::ContainerStateStatusEnum as S;
        let c = self.docker.inspect_container(&self.layout.container(i), None).await?;
        let status = c.state.and_then(|s| s.status);
        let stopped = matches!(status, Some(S::EXITED | S::DEAD | S::CREATED));
        Ok((stopped, c.restart_count.unwrap_or(0)))
    }

    /// Starts node `i`'s existing container again.
    pub async fn restart_node(&self, i: usize) -> anyhow::Result<()> {
        let name = self.layout.container(i);
        self.docker.start_container(&name, None).await.with_context(|| format!("starting container {name}"))
    }

    /// Removes every container of this deployment and its network, and its
    /// volumes too when `wipe`.
    pub async fn remove_all(&self, wipe: bool) -> anyhow::Result<()> {
        let filter = format!("{LABEL_DEPLOY}={}", self.layout.project);
        let filters = HashMap::from([("label", vec![filter.as_str()])]);
        let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let containers = self.docker.list_containers(Some(options)).await.context("listing containers")?;
        for c in containers {
            if let Some(id) = c.id {
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                match self.docker.remove_container(&id, Some(options)).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e).with_context(|| format!("removing container {id}")),
                }
            }
        }
        // Only a network this deployment made (its label says so): one that
        // merely has the same name is left alone.
        let network = self.layout.network();
        match self.docker.inspect_network(&network, None).await {
            Ok(n) if n.labels.as_ref().and_then(|l| l.get(LABEL_DEPLOY)) == Some(&self.layout.project) => {
                match self.docker.remove_network(&network).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e).with_context(|| format!("removing network {network}")),
                }
            }
            Ok(_) => eprintln!("boat: network {network} is not labelled as this deployment's; left alone"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("inspecting network {network}")),
        }
        if wipe {
            // By label: nodes added after the deployment started have
            // volumes too.
            let options = bollard::query_parameters::ListVolumesOptionsBuilder::new().filters(&filters).build();
            let volumes = self.docker.list_volumes(Some(options)).await.context("listing volumes")?;
            for v in volumes.volumes.unwrap_or_default() {
                let options = RemoveVolumeOptionsBuilder::new().force(true).build();
                match self.docker.remove_volume(&v.name, Some(options)).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e).with_context(|| format!("removing volume {}", v.name)),
                }
            }
        }
        Ok(())
    }

    /// Removes node `i`'s data volume, if this deployment made it.
    pub async fn remove_volume(&self, i: usize) -> anyhow::Result<()> {
        let name = self.layout.volume(i);
        match self.docker.inspect_volume(&name).await {
            Ok(v) if v.labels.get(LABEL_DEPLOY) == Some(&self.layout.project) => {
                let options = RemoveVolumeOptionsBuilder::new().force(true).build();
                match self.docker.remove_volume(&name, Some(options)).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("removing volume {name}")),
                }
            }
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("inspecting volume {name}")),
        }
    }
}

/// How long the foreground loop waits between looks at the cluster.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Builds Boat's image from this binary under `layout.image`.
pub async fn build_image(docker: &Docker, layout: &Layout, ort_lib: Option<&Path>) -> anyhow::Result<()> {
    let ort_lib = ort_lib.context("the image needs the ONNX Runtime library: set ORT_DYLIB_PATH or --ort-lib")?;
    let boat = std::env::current_exe().context("locating the boat binary")?;
    eprintln!("boat: building image {} from {}", layout.image, boat.display());
    runtime::build_boat_image(docker, &layout.image, &boat, ort_lib).await?;
    Ok(())
}

/// The host side of a deployment: the token and the shared directory,
/// both mounted into every node.
pub fn prepare_host_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("shared"))
        .with_context(|| format!("creating {}", dir.join("shared").display()))?;
    let dir = std::fs::canonicalize(dir)?;
    crate::cluster::ensure_admin_token(&dir.join("admin-token"))?;
    Ok(dir)
}

/// The leader as the published ports tell it, if any node names one.
pub async fn leader_of(client: &crate::client::HttpClient, layout: &Layout) -> Option<u64> {
    for i in 0..layout.nodes {
        if let Ok(s) = client.status(&layout.url(i)).await {
            if s.is_leader {
                return Some(s.node_id);
            }
        }
    }
    None
}

/// `boat deploy --docker`: starts the containers, stays in the foreground
/// reporting leader changes and restarts, and removes the containers and
/// the network on SIGINT or SIGTERM (the volumes too with `wipe`).
pub async fn run(layout: Layout, ort_lib: Option<&Path>, wipe: bool) -> anyhow::Result<()> {
    let dir = layout.host_dir.clone();
    let containers = Containers::connect(layout).await?;
    let mut l = containers.layout.clone();
    for i in 0..l.nodes {
        crate::deploy::check_port_free(format!("127.0.0.1:{}", l.published_port(i)).parse()?)?;
    }
    // Listening from the start: a Ctrl-C while the image builds or the
    // containers start removes what was made so far.
    let shutdown = crate::node_cmd::shutdown_signal();
    tokio::pin!(shutdown);
    let started = async {
        build_image(&containers.docker, &l, ort_lib).await?;
        containers.ensure_network().await?;
        l.save(&dir)?;
        for i in 0..l.nodes {
            containers.start_node(i, false).await?;
        }
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        r = started => r,
        _ = &mut shutdown => Err(anyhow::anyhow!("interrupted while starting")),
    };
    if let Err(e) = outcome {
        let _ = containers.remove_all(wipe).await;
        let _ = std::fs::remove_file(Layout::record_file(&dir));
        return Err(e);
    }
    eprintln!("boat: started {} node containers on network {} (image {})", l.nodes, l.network(), l.image);
    for i in 0..l.nodes {
        eprintln!(
            "boat:   node {i}: {}  (container {}, {}:{HTTP_PORT} on the network; data in volume {})",
            l.url(i),
            l.container(i),
            l.container(i),
            l.volume(i)
        );
    }
    eprintln!("boat: logs: docker logs {}-N, and {}/logs/nodes", l.project, l.shared_dir().display());
    eprintln!(
        "boat: try  curl {}/status   and   curl -L -X POST -H 'Content-Type: application/json' -d '{{\"input\": \"Hello\"}}' {}/predict",
        l.url(0),
        l.url(0)
    );
    eprintln!(
        "boat: admin token in {} (mode 0600); /control and admin writes need  -H \"Authorization: Bearer $(cat {})\"",
        l.token_file().display(),
        l.token_file().display()
    );
    let keep = if wipe { "and their volumes" } else { "(the volumes stay; --wipe removes them)" };
    eprintln!("boat: Ctrl-C stops and removes the containers and the network {keep}");

    let client = crate::client::HttpClient::new()?;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    let mut announced = None;
    let mut restarts = vec![0i64; l.nodes];
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        // Nodes added with `--add-node` are watched too.
        if let Ok(now) = Layout::load(&dir) {
            if now.project == l.project && now.nodes > l.nodes {
                restarts.resize(now.nodes, 0);
                l = now;
            }
        }
        for (i, seen) in restarts.iter_mut().enumerate() {
            if l.hold_file(i).exists() {
                continue;
            }
            match containers.node_state(i).await {
                // The engine restarts a container that exits or crashes,
                // but not one stopped through it (`docker kill`, `docker
                // stop`): like the local supervisor, start those again.
                Ok((true, _)) => {
                    eprintln!("boat: node {i}'s container was stopped; starting it again");
                    if let Err(e) = containers.restart_node(i).await {
                        eprintln!("boat: node {i}: {e:#}");
                    }
                }
                Ok((false, n)) if n > *seen => {
                    eprintln!("boat: node {i}'s container was restarted by its policy ({n} restarts)");
                    *seen = n;
                }
                Ok(_) => {}
                Err(e) => eprintln!("boat: node {i}: {e:#}"),
            }
        }
        if let Ok(Some(leader)) = tokio::time::timeout(Duration::from_millis(500), leader_of(&client, &l)).await {
            if announced != Some(leader) {
                eprintln!("boat: node {leader} is the leader ({})", l.url(leader as usize));
                announced = Some(leader);
            }
        }
    }
    eprintln!("boat: removing the containers and the network{}", if wipe { " and the volumes" } else { "" });
    containers.remove_all(wipe).await?;
    let _ = std::fs::remove_file(Layout::record_file(&dir));
    Ok(())
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An admin request to whichever node answers it, following a redirect to
/// the leader. `Ok(false)` when no node accepted it.
pub async fn admin_request(
    layout: &Layout,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let token = std::fs::read_to_string(layout.token_file()).context("reading the admin token")?;
    // Redirects are followed here: reqwest would drop the token on the way.
    let http = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).build()?;
    for i in 0..layout.nodes {
        let mut url = format!("{}{path}", layout.url(i));
        for _hop in 0..3 {
            let mut req = http.request(method.clone(), &url).bearer_auth(token.trim());
            if let Some(b) = body {
                req = req.json(b);
            }
            let Ok(resp) = req.send().await else { break };
            if resp.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
                match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                    Some(l) => url = l.to_string(),
                    None => break,
                }
                continue;
            }
            if resp.status().is_success() {
                return Ok(true);
            }
            eprintln!("boat: {method} {path} on {url}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
            break;
        }
    }
    Ok(false)
}

/// `reset.sh N` for a `--docker` deployment: removes node `i` from the
/// cluster, deletes its container and volume, starts it empty as a joiner
/// and adds it back (a learner that catches up, then a voter). When the
/// cluster cannot change its membership, the node restarts empty as the
/// same voter instead (see ARCHITECTURE.md, "A wiped node").
pub async fn reset_node(layout: Layout, i: usize) -> anyhow::Result<()> {
    if i >= layout.nodes {
        bail!("there is no node {i}");
    }
    let hold = layout.hold_file(i);
    std::fs::write(&hold, b"").with_context(|| format!("writing {}", hold.display()))?;
    let _release = RemoveOnDrop(hold);
    let removed = admin_request(
        &layout,
        reqwest::Method::DELETE,
        &format!("/api/cluster/nodes/{i}"),
        None,
        Duration::from_secs(30),
    )
    .await?;
    if removed {
        eprintln!("reset.sh: removed node {i} from the cluster");
    } else {
        eprintln!("reset.sh: could not remove node {i}; it will rejoin as the same voter");
    }
    let containers = Containers::connect(layout.clone()).await?;
    containers.remove_container(&layout.container(i)).await?;
    containers.remove_volume(i).await?;
    eprintln!("reset.sh: wiped node {i} (container {} and volume {})", layout.container(i), layout.volume(i));
    containers.start_node(i, removed).await?;
    if !removed {
        eprintln!("reset.sh: node {i} restarts empty and catches up from the leader");
        return Ok(());
    }
    add_member(&layout, i, &layout.container(i)).await?;
    eprintln!("reset.sh: node {i} caught up as a learner and is a voter again");
    Ok(())
}

/// `boat deploy --add-node N` for a `--docker` deployment: starts node `i`
/// empty, as a joiner, in a container of its own on the network (published
/// on `http_base + i`), and adds it to the cluster: a learner that catches
/// up, then a voter.
pub async fn add_node(layout: Layout, i: usize) -> anyhow::Result<()> {
    layout.check_next_node(i)?;
    let containers = Containers::connect(layout.clone()).await?;
    if containers.docker.inspect_container(&layout.container(i), None).await.is_ok() {
        bail!("container {} exists already: node {i} is part of the deployment", layout.container(i));
    }
    crate::deploy::check_port_free(layout.published(i).parse()?)?;
    containers.start_node(i, true).await?;
    add_member(&layout, i, &layout.container(i)).await?;
    layout.record_added(i)?;
    eprintln!("boat: node {i} ({}) caught up as a learner and is a voter", layout.url(i));
    Ok(())
}

/// Adds node `i`, running as a joiner and named `c` on the network, to the
/// cluster and waits until it is a voter.
pub async fn add_member(layout: &Layout, i: usize, c: &str) -> anyhow::Result<()> {
    let add = serde_json::json!({
        "id": i, "raft_addr": format!("{c}:{RAFT_PORT}"), "http_addr": format!("{c}:{HTTP_PORT}"), "catch_up_seconds": 180
    });
    if admin_request(layout, reqwest::Method::POST, "/api/cluster/nodes", Some(&add), Duration::from_secs(200)).await? {
        Ok(())
    } else {
        bail!("node {i} did not come back; add it with: boat cluster add {i} {c}:{RAFT_PORT} {c}:{HTTP_PORT}")
    }
}
