//! `boat bench containers`: the cluster in containers (`boat deploy
//! --docker`'s layout) against the same cluster as loopback processes, in
//! one run: `/predict` throughput side by side (trials interleaved), then
//! failover in containers after `docker kill` of the leader and after
//! `docker network disconnect` of the leader.
//!
//! Everything it makes on the engine (an image, containers, a network,
//! volumes) carries a project name of its own and is removed at the end,
//! also when a step fails.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};
use clap::Args;
use serde_json::json;

use crate::bench::{closed_loop, median, percentile_ms, BenchCluster, ClusterArgs};
use crate::client::HttpClient;
use crate::deploy_docker::{build_image, leader_of, prepare_host_dir, Containers, Layout};

#[derive(Debug, Clone, Args)]
pub struct ContainersArgs {
    /// Leader failures per kind of fault.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Concurrent clients in the throughput trials.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds per throughput trial.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Throughput trials per setup (interleaved); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// First of the three published ports on 127.0.0.1.
    #[arg(long, default_value_t = 18080)]
    pub http_base: u16,
    /// Path of libonnxruntime.so (otherwise ORT_DYLIB_PATH).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<std::path::PathBuf>,
}

/// One setup's throughput trials.
#[derive(Debug, Clone, Default)]
struct Figures {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: usize,
}

pub async fn run(args: ContainersArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("boat-bench-containers-").tempdir()?;
    let project = format!("boat-bench-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let layout = Layout {
        mode: "docker".into(),
        project: project.clone(),
        nodes: 3,
        http_base: args.http_base,
        image: format!("{project}:latest"),
        host_dir: prepare_host_dir(&dir.path().join(".boat"))?,
        node_args: Vec::new(),
    };
    let containers = Containers::connect(layout.clone()).await?;
    let result = measure(&args, &containers).await;
    containers.remove_all(true).await.context("removing the benchmark's containers")?;
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::new().force(true).build();
    if let Err(e) = containers.docker.remove_image(&layout.image, Some(options), None).await {
        eprintln!("bench: removing image {}: {e}", layout.image);
    }
    result
}

async fn measure(args: &ContainersArgs, containers: &Containers) -> anyhow::Result<()> {
    let l = &containers.layout;
    build_image(&containers.docker, l, args.ort_lib.as_deref()).await?;
    containers.ensure_network().await?;
    for i in 0..l.nodes {
        containers.start_node(i, false).await?;
    }
    let local = BenchCluster::start(&ClusterArgs { nodes: 3, node_args: Vec::new() }).await?;
    let client = HttpClient::new()?;
    let in_containers = wait_for_leader(&client, l).await?;
    let on_loopback = local.cluster.wait_for_leader(Duration::from_secs(30)).await?;

    let body = json!({"input": "Hello"});
    let duration = Duration::from_secs(args.seconds);
    let setups =
        [("loopback processes", local.cluster.http(on_loopback)), ("containers", l.url(in_containers as usize))];
    let mut figures: Vec<Figures> = vec![Figures::default(); setups.len()];
    for _ in 0..args.repeat {
        for (k, (_, url)) in setups.iter().enumerate() {
            let t = closed_loop(&client, url, body.clone(), args.clients, duration, 10_000_000).await;
            figures[k].rps.push(t.ok as f64 / t.elapsed.as_secs_f64());
            figures[k].p50.push(percentile_ms(&t.latencies, 50.0));
            figures[k].p99.push(percentile_ms(&t.latencies, 99.0));
            figures[k].errors += t.errors;
        }
    }
    println!(
        "/predict (echo model), three nodes, {} clients, {}s trials x {}, medians",
        args.clients, args.seconds, args.repeat
    );
    println!("{:<20} {:>10} {:>8} {:>8} {:>7}", "setup", "req/s", "p50 ms", "p99 ms", "errors");
    let mut rps = Vec::new();
    for ((name, _), f) in setups.iter().zip(figures.iter_mut()) {
        let m = median(&mut f.rps);
        rps.push(m);
        println!("{name:<20} {m:>10.0} {:>8.2} {:>8.2} {:>7}", median(&mut f.p50), median(&mut f.p99), f.errors);
    }
    println!("containers / loopback: {:.2}x", rps[1] / rps[0]);
    drop(local);

    for fault in ["kill", "disconnect"] {
        let mut times = Vec::new();
        for run in 0..args.runs {
            let leader = wait_for_leader(&client, l).await? as usize;
            let warm = client.predict(&l.url(leader), &json!({"input": "warm"}), None).await?;
            if !warm.status.is_success() {
                bail!("warm-up prediction failed: {}", warm.text);
            }
            let name = l.container(leader);
            // From the request to the engine: its answer to a kill comes
            // after the container is gone, which takes a while.
            let t0 = Instant::now();
            match fault {
                "kill" => containers.docker.kill_container(&name, None).await?,
                _ => {
                    let request = NetworkDisconnectRequest { container: name.clone(), force: Some(true) };
                    containers.docker.disconnect_network(&l.network(), request).await?
                }
            }
            let others: Vec<String> = (0..l.nodes).filter(|&i| i != leader).map(|i| l.url(i)).collect();
            let r = client
                .predict_anywhere(
                    &others,
                    &json!({"input": format!("{fault} {run}")}),
                    None,
                    t0 + Duration::from_secs(30),
                )
                .await?;
            let took = t0.elapsed();
            if !r.status.is_success() {
                bail!("prediction after the {fault} failed: {}", r.text);
            }
            println!(
                "{fault} run {:>2}: node {leader} failed, node {} served after {:>7.1} ms",
                run + 1,
                r.body["node_id"],
                took.as_secs_f64() * 1e3
            );
            times.push(took.as_secs_f64() * 1e3);
            match fault {
                "kill" => containers.restart_node(leader).await?,
                _ => {
                    let endpoint = EndpointSettings { aliases: Some(vec![name.clone()]), ..Default::default() };
                    let request = NetworkConnectRequest { container: name.clone(), endpoint_config: Some(endpoint) };
                    containers.docker.connect_network(&l.network(), request).await?
                }
            }
            let committed = r.body["index"].as_u64().unwrap_or(0);
            wait_for_applied(&client, l, committed).await?;
        }
        let worst = times.iter().cloned().fold(f64::MIN, f64::max);
        let what =
            if fault == "kill" { "docker kill of the leader" } else { "docker network disconnect of the leader" };
        println!("{what}: median {:.1} ms, worst {worst:.1} ms over {} runs", median(&mut times), times.len());
    }
    Ok(())
}

async fn wait_for_leader(client: &HttpClient, l: &Layout) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(leader) = leader_of(client, l).await {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            bail!("no leader among the containers after a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_applied(client: &HttpClient, l: &Layout, index: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..l.nodes {
        loop {
            if client.status(&l.url(i)).await.is_ok_and(|s| s.last_applied >= index) {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {i} did not apply entry {index} within a minute");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
