//! `boat bench`: measurements on a fresh local cluster started from this
//! binary, on free loopback ports, in a temporary directory.
//!
//! - `throughput`: closed-loop clients posting `/predict` to the leader, at
//!   each concurrency level, repeated; reports medians over the repeats.
//! - `failover`: SIGKILL the leader (`--fault kill`) or cut it off from
//!   every peer (`--fault partition`), time until a retrying client gets its
//!   first 200 from the new leader; median and worst over the runs.
//! - `serving`: the same models side by side in one run: raw in-process
//!   ONNX Runtime calls, a single-node cluster, a three-node cluster, and
//!   the three-node cluster with batching turned off.
//! - `memory`: node memory with large models loaded (`bench_memory`).
//! - `reads`: one client reading model metadata, linearizable and stale, on
//!   the leader and on a follower, rounds interleaved.
//! - `dedup`: full load, then every key again (`bench_dedup`).
//! - `admin`: admin calls over gRPC and REST side by side (`bench_admin`).
//! - `advisor`: the advisors on real training, and a train job's wall time
//!   with one and two workers (`bench_advisor`).
//! - `containers`: the cluster in containers against loopback processes,
//!   and failover after real faults (`bench_containers`).
//!
//! Every loop is bounded by time and by count, and stops by itself.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{HttpClient, Method};
use crate::cluster::{ClusterSpec, LocalCluster};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchKind,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchKind {
    /// Throughput and latency of /predict at several client counts.
    Throughput(ThroughputArgs),
    /// Time from SIGKILL of the leader to the first 200 from a new leader.
    Failover(FailoverArgs),
    /// Raw ONNX Runtime vs one node vs three nodes, with and without batching.
    Serving(crate::bench_serving::ServingArgs),
    /// Node memory with large models loaded, restarted and rejoined.
    Memory(crate::bench_memory::MemoryArgs),
    /// Latency of linearizable and stale reads on the leader and a follower.
    Reads(ReadsArgs),
    /// Full load for a while, then every key again: does the dedup window hold?
    Dedup(crate::bench_dedup::DedupArgs),
    /// The same admin calls over gRPC and REST, side by side.
    Admin(crate::bench_admin::AdminArgs),
    /// Random vs TPE on real training, and a train job with one and two workers.
    Advisor(crate::bench_advisor::AdvisorArgs),
    /// Three nodes in containers against loopback processes, and failover
    /// after docker kill and docker network disconnect.
    Containers(crate::bench_containers::ContainersArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReadsArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Sequential reads per kind and round.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Rounds; medians over them are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Nodes in the benchmark cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Extra arguments for every node.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Concurrent clients, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub clients: Vec<usize>,
    /// Seconds per trial.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Trials per client count; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Upper bound on requests per trial.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: usize,
}

#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Number of leader failures.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// How the leader fails: SIGKILL, or cut off from every peer.
    #[arg(long, value_enum, default_value_t = Fault::Kill)]
    pub fault: Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    Kill,
    Partition,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchKind::Throughput(a) => throughput(a).await,
        BenchKind::Failover(a) => failover(a).await,
        BenchKind::Serving(a) => crate::bench_serving::run(a).await,
        BenchKind::Memory(a) => crate::bench_memory::run(a).await,
        BenchKind::Reads(a) => reads(a).await,
        BenchKind::Dedup(a) => crate::bench_dedup::run(a).await,
        BenchKind::Admin(a) => crate::bench_admin::run(a).await,
        BenchKind::Advisor(a) => crate::bench_advisor::run(a).await,
        BenchKind::Containers(a) => crate::bench_containers::run(a).await,
    }
}

/// A fresh cluster for one benchmark; removed when dropped.
pub struct BenchCluster {
    pub cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl BenchCluster {
    pub async fn start(args: &ClusterArgs) -> anyhow::Result<Self> {
        Self::start_with(args, None).await
    }

    /// A cluster whose nodes run `node_bin` (this binary when `None`).
    pub async fn start_with(args: &ClusterArgs, node_bin: Option<std::path::PathBuf>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("boat-bench-").tempdir()?;
        let bin = match node_bin {
            Some(b) => b,
            None => std::env::current_exe().context("locating the boat binary")?,
        };
        let mut spec = ClusterSpec::free_ports(args.nodes, dir.path().to_path_buf(), bin)?;
        spec.node_args = args.node_args.clone();
        spec.admin_token_file = Some(crate::cluster::ensure_admin_token(&spec.admin_token_path())?);
        let cluster = LocalCluster::start(spec)?;
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(Self { cluster, _dir: dir })
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.cluster.spec.admin_token_path()).unwrap_or_default().trim().to_string()
    }

    /// Creates the user `email` as an APP_DEVELOPER through the node at
    /// `url` and logs them in; answers their token.
    pub async fn developer(&self, http: &HttpClient, url: &str, email: &str, password: &str) -> anyhow::Result<String> {
        let user = json!({"email": email, "password": password, "role": "APP_DEVELOPER"});
        let r = http.send_json(Method::POST, url, "/api/users", Some(&user), Some(&self.token())).await?;
        if r.status != 201 {
            bail!("creating the user: {} {}", r.status, r.text);
        }
        let login = json!({"email": email, "password": password});
        let r = http.send_json(Method::POST, url, "/api/tokens", Some(&login), None).await?;
        Ok(r.body["token"].as_str().with_context(|| format!("logging in: {} {}", r.status, r.text))?.to_string())
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.cluster.len()).map(|i| self.cluster.http(i)).collect()
    }
}

/// Latency percentiles in milliseconds (nearest rank).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One closed-loop trial: `clients` tasks post to `url` until the time or
/// the request budget runs out.
pub struct Trial {
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

pub async fn closed_loop(
    client: &HttpClient,
    url: &str,
    body: Value,
    clients: usize,
    duration: Duration,
    max_requests: usize,
) -> Trial {
    let start = Instant::now();
    let deadline = start + duration;
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(max_requests));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, body, budget) = (client.clone(), url.to_string(), body.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline
                && budget
                    .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |b| {
                        b.checked_sub(1)
                    })
                    .is_ok()
            {
                let t = Instant::now();
                match client.predict(&url, &body, None).await {
                    Ok(r) if r.status.is_success() => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut trial = Trial { ok: 0, errors: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for t in tasks {
        if let Ok((lat, errors)) = t.await {
            trial.ok += lat.len();
            trial.errors += errors;
            trial.latencies.extend(lat);
        }
    }
    trial.elapsed = start.elapsed();
    trial.latencies.sort();
    trial
}

async fn throughput(args: ThroughputArgs) -> anyhow::Result<()> {
    let bench = BenchCluster::start(&args.cluster).await?;
    let client = HttpClient::new()?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let url = bench.cluster.http(leader);
    let body = json!({"input": "Hello"});
    println!(
        "/predict on a {}-node cluster (echo model), {}s trials x {}, medians",
        args.cluster.nodes, args.seconds, args.repeat
    );
    println!("{:>8} {:>12} {:>10} {:>10} {:>8}", "clients", "req/s", "p50 ms", "p99 ms", "errors");
    for &clients in &args.clients {
        let (mut rps, mut p50, mut p99, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..args.repeat {
            let t =
                closed_loop(&client, &url, body.clone(), clients, Duration::from_secs(args.seconds), args.max_requests)
                    .await;
            rps.push(t.ok as f64 / t.elapsed.as_secs_f64());
            p50.push(percentile_ms(&t.latencies, 50.0));
            p99.push(percentile_ms(&t.latencies, 99.0));
            errors += t.errors;
        }
        println!(
            "{:>8} {:>12.0} {:>10.2} {:>10.2} {:>8}",
            clients,
            median(&mut rps),
            median(&mut p50),
            median(&mut p99),
            errors
        );
    }
    Ok(())
}

async fn reads(args: ReadsArgs) -> anyhow::Result<()> {
    let bench = BenchCluster::start(&args.cluster).await?;
    let client = HttpClient::new()?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let follower = (0..bench.cluster.len()).find(|i| *i != leader).context("a follower")?;
    let kinds = [
        ("follower, linearizable", follower, "/v2/models/echo"),
        ("follower, stale", follower, "/v2/models/echo?consistency=stale"),
        ("leader, linearizable", leader, "/v2/models/echo"),
        ("leader, stale", leader, "/v2/models/echo?consistency=stale"),
    ];
    let mut p50 = vec![Vec::new(); kinds.len()];
    let mut p99 = vec![Vec::new(); kinds.len()];
    for _ in 0..args.repeat {
        for (k, (_, node, path)) in kinds.iter().enumerate() {
            let url = bench.cluster.http(*node);
            let mut lat = Vec::with_capacity(args.reads);
            for _ in 0..args.reads {
                let t = Instant::now();
                let r = client.get(&url, path).await?;
                if !r.status.is_success() {
                    bail!("{path} on node {node}: {} {}", r.status, r.text);
                }
                lat.push(t.elapsed());
            }
            lat.sort();
            p50[k].push(percentile_ms(&lat, 50.0));
            p99[k].push(percentile_ms(&lat, 99.0));
        }
    }
    println!("GET /v2/models/echo, one client, {} reads x {} rounds, medians", args.reads, args.repeat);
    println!("| read | p50 ms | p99 ms |\n|---|---:|---:|");
    for (k, (label, _, _)) in kinds.iter().enumerate() {
        println!("| {label} | {:.3} | {:.3} |", median(&mut p50[k]), median(&mut p99[k]));
    }
    Ok(())
}

async fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    if args.cluster.nodes < 3 {
        bail!("failover needs at least three nodes");
    }
    let mut bench = BenchCluster::start(&args.cluster).await?;
    let client = HttpClient::new()?;
    let urls = bench.urls();
    let mut times = Vec::new();
    let what = match args.fault {
        Fault::Kill => "SIGKILL the leader",
        Fault::Partition => "cut the leader off from every peer",
    };
    println!(
        "failover on a {}-node cluster: {what}, time to the first 200 from a new leader for a retrying client",
        args.cluster.nodes
    );
    for run in 0..args.runs {
        let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
        let warm = client.predict(&urls[leader], &json!({"input": "warm"}), None).await?;
        if !warm.status.is_success() {
            bail!("warm-up prediction failed: {}", warm.text);
        }
        match args.fault {
            Fault::Kill => bench.cluster.kill_node(leader).await?,
            Fault::Partition => {
                let peers: Vec<usize> = (0..urls.len()).filter(|i| *i != leader).collect();
                let cmd = json!({"cmd": "partition", "peers": peers, "duration_ms": 60_000});
                let r = client.control(&urls[leader], &cmd).await?;
                if !r.status.is_success() {
                    bail!("partition failed: {}", r.text);
                }
            }
        }
        let t0 = Instant::now();
        let r = client
            .predict_anywhere(&urls, &json!({"input": format!("failover {run}")}), None, t0 + Duration::from_secs(30))
            .await?;
        let took = t0.elapsed();
        if !r.status.is_success() {
            bail!("prediction after failover failed: {}", r.text);
        }
        println!(
            "run {:>2}: node {leader} failed, node {} served after {:>7.1} ms",
            run + 1,
            r.body["node_id"],
            took.as_secs_f64() * 1000.0
        );
        times.push(took.as_secs_f64() * 1000.0);
        match args.fault {
            Fault::Kill => bench.cluster.start_node(leader)?,
            Fault::Partition => {
                client.control(&urls[leader], &json!({"cmd": "heal"})).await?;
            }
        }
        let committed =
            bench.cluster.client.status(&urls[r.body["node_id"].as_u64().unwrap_or(0) as usize]).await?.commit_index;
        bench.cluster.wait_for_applied(committed, Duration::from_secs(30)).await?;
    }
    let worst = times.iter().cloned().fold(f64::MIN, f64::max);
    println!("failover over {} runs: median {:.1} ms, worst {:.1} ms", times.len(), median(&mut times), worst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v[..1], 99.0), 1.0);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
