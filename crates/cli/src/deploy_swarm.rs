//! `boat deploy --swarm`: the cluster as a Docker Swarm stack, one service
//! per node on an overlay network, from the committed stack file
//! (`deploy/boat-stack.yml`, compiled into the binary so that the command
//! and the file cannot drift apart).
//!
//! The stack is deployed with the Docker CLI (`docker stack deploy`), which
//! is what reads stack files; the values the file leaves open (image,
//! ports, advertised addresses, shared directory, token file) are set in
//! its environment. Unlike `--docker` the stack outlives the command, as
//! Swarm services do: `--down` removes it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat_admin::training::runtime;

use crate::deploy_docker::{build_image, leader_of, Layout};

/// The stack file, as committed.
pub const STACK_FILE: &str = include_str!("../../../deploy/boat-stack.yml");
/// The number of nodes the stack file describes.
pub const STACK_NODES: usize = 3;
/// The label Docker puts on everything a stack made.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";

/// The environment `docker stack deploy` reads the stack file with.
pub fn stack_env(layout: &Layout) -> Vec<(String, String)> {
    let mut env = vec![
        ("BOAT_IMAGE".to_string(), layout.image.clone()),
        ("BOAT_SHARED_DIR".to_string(), layout.shared_dir().to_string_lossy().into_owned()),
        ("BOAT_TOKEN_FILE".to_string(), layout.token_file().to_string_lossy().into_owned()),
    ];
    for i in 0..layout.nodes {
        env.push((format!("BOAT_HTTP_{i}"), layout.published_port(i).to_string()));
        env.push((format!("BOAT_ADVERTISE_{i}"), layout.published(i)));
    }
    env
}

fn docker_cli(args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut cmd = Command::new("docker");
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().context("running the docker command line (is it installed?)")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("docker {} failed: {}", args.join(" "), text.trim());
    }
    Ok(text)
}

/// Deploys the stack and waits for a leader.
pub async fn up(layout: Layout, ort_lib: Option<&std::path::Path>) -> anyhow::Result<()> {
    if layout.nodes != STACK_NODES {
        bail!("the stack file describes {STACK_NODES} nodes; edit deploy/boat-stack.yml for another number");
    }
    let docker = runtime::connect().await.map_err(anyhow::Error::msg)?;
    if !runtime::is_manager(&docker).await {
        bail!("this Docker engine is not a Swarm manager: run `boat swarm init` first");
    }
    build_image(&docker, &layout, ort_lib).await?;
    let env = stack_env(&layout);
    docker_cli(&["stack", "deploy", "--detach=true", "--compose-file", "-", &layout.project], &env, Some(STACK_FILE))?;
    layout.save(&layout.host_dir)?;
    eprintln!("boat: deployed stack {} ({} services, image {})", layout.project, layout.nodes, layout.image);
    let client = crate::client::HttpClient::new()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let leader = loop {
        if let Some(l) = leader_of(&client, &layout).await {
            break l;
        }
        if Instant::now() > deadline {
            bail!(
                "no node of stack {} leads after two minutes; see `docker service ps {}_boat-0`",
                layout.project,
                layout.project
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for i in 0..layout.nodes {
        eprintln!("boat:   node {i}: {}  (service {}_boat-{i})", layout.url(i), layout.project);
    }
    eprintln!("boat: node {leader} is the leader ({})", layout.url(leader as usize));
    eprintln!(
        "boat: logs: docker service logs {}_boat-N, and {}/logs/nodes",
        layout.project,
        layout.shared_dir().display()
    );
    eprintln!(
        "boat: admin token in {}; /control and admin writes need  -H \"Authorization: Bearer $(cat {})\"",
        layout.token_file().display(),
        layout.token_file().display()
    );
    eprintln!("boat: remove it with  boat deploy --swarm --down --project {} [--wipe]", layout.project);
    Ok(())
}

/// Removes the stack, waits for its containers and network to go, and
/// removes its volumes when `wipe`.
pub async fn down(layout: &Layout, wipe: bool) -> anyhow::Result<()> {
    let project = &layout.project;
    docker_cli(&["stack", "rm", project], &[], None)?;
    let filter = format!("label={LABEL_STACK}={project}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let containers = docker_cli(&["ps", "-aq", "--filter", &filter], &[], None)?;
        let networks = docker_cli(&["network", "ls", "-q", "--filter", &filter], &[], None)?;
        if containers.trim().is_empty() && networks.trim().is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("stack {project}'s containers or network are still there after a minute");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if wipe {
        // The volumes stay until no container uses them; the last ones may
        // take a moment to be released.
        for id in docker_cli(&["volume", "ls", "-q", "--filter", &filter], &[], None)?.split_whitespace() {
            docker_cli(&["volume", "rm", "-f", id], &[], None)?;
        }
    }
    let _ = std::fs::remove_file(Layout::record_file(&layout.host_dir));
    eprintln!("boat: removed stack {project}{}", if wipe { " and its volumes" } else { "" });
    Ok(())
}

/// `reset.sh N` for a `--swarm` deployment: stops node `i`'s service,
/// removes its volume and starts it again, empty; it rejoins as the same
/// voter and catches up from the leader (see ARCHITECTURE.md, "A wiped
/// node"). On several hosts, the volume is removed on this host only: run
/// it on the host the node is pinned to.
pub async fn reset_node(layout: Layout, i: usize) -> anyhow::Result<()> {
    if i >= layout.nodes {
        bail!("there is no node {i}");
    }
    let service = format!("{}_boat-{i}", layout.project);
    let volume = format!("{}_data-{i}", layout.project);
    docker_cli(&["service", "scale", "--detach=true", &format!("{service}=0")], &[], None)?;
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker_cli(&["ps", "-q", "--filter", &filter], &[], None)?.trim().is_empty() {
        if Instant::now() > deadline {
            bail!("{service}'s container still runs after a minute");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The Swarm keeps the containers of ended tasks (its task history);
    // they hold on to the volume.
    for id in docker_cli(&["ps", "-aq", "--filter", &filter], &[], None)?.split_whitespace() {
        docker_cli(&["rm", "-f", id], &[], None)?;
    }
    docker_cli(&["volume", "rm", "-f", &volume], &[], None)?;
    eprintln!("reset.sh: wiped node {i} (service {service}, volume {volume})");
    docker_cli(&["service", "scale", "--detach=true", &format!("{service}=1")], &[], None)?;
    eprintln!("reset.sh: node {i} restarts empty and catches up from the leader");
    Ok(())
}

/// `boat deploy --add-node N` for a `--swarm` deployment: creates service
/// `boat-N` like the stack's own (same network, secret, shared directory,
/// a volume of its own, published in host mode on `http_base + N`, labelled
/// as part of the stack so that `--down` removes it), started empty as a
/// joiner, and adds it to the cluster.
pub async fn add_node(layout: Layout, i: usize) -> anyhow::Result<()> {
    layout.check_next_node(i)?;
    let p = &layout.project;
    let name = format!("boat-{i}");
    let service = format!("{p}_{name}");
    let label = format!("{LABEL_STACK}={p}");
    let mut args: Vec<String> =
        ["service", "create", "--detach=true", "--name", &service, "--hostname", &name].map(String::from).into();
    args.extend([
        "--network".into(),
        format!("name={p}_cluster,alias={name}"),
        "--endpoint-mode".into(),
        "dnsrr".into(),
    ]);
    args.extend(["--secret".into(), format!("source={p}_admin-token,target=admin-token")]);
    args.extend(["--mount".into(), format!("type=volume,source={p}_data-{i},target=/data,volume-label={label}")]);
    args.extend(["--mount".into(), format!("type=bind,source={},target=/shared", layout.shared_dir().display())]);
    args.extend(["--publish".into(), format!("mode=host,target=8080,published={}", layout.published_port(i))]);
    args.extend(["--restart-condition".into(), "any".into(), "--restart-delay".into(), "1s".into()]);
    args.extend(["--label".into(), label.clone(), "--container-label".into(), label]);
    args.extend([layout.image.clone(), "node".into(), "--id".into(), i.to_string()]);
    args.extend(["--http".into(), "0.0.0.0:8080".into(), "--raft".into(), "0.0.0.0:9080".into()]);
    for j in 0..layout.nodes.max(i + 1) {
        args.extend(["--member".into(), format!("{j}=boat-{j}:9080/boat-{j}:8080")]);
    }
    args.extend(["--advertise-http".into(), layout.published(i), "--data-dir".into(), "/data".into()]);
    args.extend([
        "--shared-dir".into(),
        "/shared".into(),
        "--admin-token-file".into(),
        "/run/secrets/admin-token".into(),
    ]);
    args.extend(["--worker-image".into(), layout.image.clone(), "--join".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_cli(&args, &[], None)?;
    crate::deploy_docker::add_member(&layout, i, &name).await?;
    layout.record_added(i)?;
    eprintln!("boat: node {i} ({}, service {service}) caught up as a learner and is a voter", layout.url(i));
    Ok(())
}
