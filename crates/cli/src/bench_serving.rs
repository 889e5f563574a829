//! `boat bench serving`: one table, measured in one run on the same models:
//! raw in-process ONNX Runtime calls, the unreplicated reference (one
//! `boat node --unreplicated`: the same HTTP API and request handling, the
//! model run inline, no log, no fsync), a one-node cluster, a three-node
//! cluster, and the three-node cluster with batching off (one request per
//! log entry). Throughput and latency are medians over the repeats.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat_serving::{ModelRegistry, RegistryConfig, Tensor};
use clap::Args;
use serde_json::json;

use crate::bench::{closed_loop, median, percentile_ms, BenchCluster, ClusterArgs};
use crate::client::HttpClient;

#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Models as NAME=PATH (ONNX files with one FP32 input of shape [-1, 4]).
    #[arg(
        long = "model",
        value_delimiter = ',',
        default_value = "mlp=models/mlp.onnx,sklearn_logreg=models/iris_logreg.onnx"
    )]
    pub models: Vec<String>,
    /// Concurrent clients, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub clients: Vec<usize>,
    /// Seconds per trial.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Trials per setting; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Upper bound on requests per trial.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: usize,
}

const ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

struct Row {
    model: String,
    setup: &'static str,
    clients: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

fn parse_models(specs: &[String]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    specs
        .iter()
        .map(|s| {
            let (name, path) = s.split_once('=').context("models are NAME=PATH")?;
            let bytes = std::fs::read(PathBuf::from(path)).with_context(|| format!("reading {path}"))?;
            Ok((name.to_string(), bytes))
        })
        .collect()
}

/// Closed-loop in-process calls: `clients` blocking threads call the
/// registry directly (sessions are shared through its pool).
fn raw_trial(
    registry: &ModelRegistry,
    name: &str,
    clients: usize,
    duration: Duration,
    max: usize,
) -> (usize, Duration, Vec<Duration>) {
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(max));
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (registry, name, budget) = (registry.clone(), name.to_string(), budget.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < deadline
                    && budget
                        .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |b| {
                            b.checked_sub(1)
                        })
                        .is_ok()
                {
                    let input = Tensor::new("input", vec![1, 4], ROW.to_vec().into());
                    let t = Instant::now();
                    if let Ok(input) = input {
                        if registry.infer(&name, 1, vec![input]).is_ok() {
                            lat.push(t.elapsed());
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles.into_iter().filter_map(|h| h.join().ok()).flatten().collect();
    all.sort();
    (all.len(), start.elapsed(), all)
}

fn summarize(
    model: &str,
    setup: &'static str,
    clients: usize,
    trials: Vec<(usize, Duration, Vec<Duration>, usize)>,
) -> Row {
    let (mut rps, mut p50, mut p99, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for (ok, elapsed, lat, err) in trials {
        rps.push(ok as f64 / elapsed.as_secs_f64());
        p50.push(percentile_ms(&lat, 50.0));
        p99.push(percentile_ms(&lat, 99.0));
        errors += err;
    }
    Row {
        model: model.to_string(),
        setup,
        clients,
        rps: median(&mut rps),
        p50: median(&mut p50),
        p99: median(&mut p99),
        errors,
    }
}

async fn cluster_rows(
    args: &ServingArgs,
    models: &[(String, Vec<u8>)],
    setup: &'static str,
    cluster: ClusterArgs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let bench = BenchCluster::start(&cluster).await?;
    let client = HttpClient::new()?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let url = bench.cluster.http(leader);
    for (name, bytes) in models {
        let r = client.upload_model(&url, name, bytes.clone(), Some(&bench.token())).await?;
        if r.status.as_u16() != 201 {
            bail!("uploading {name}: {}", r.text);
        }
        let body = json!({"model": name, "input": ROW});
        for &clients in &args.clients {
            let mut trials = Vec::new();
            for _ in 0..args.repeat {
                let t = closed_loop(
                    &client,
                    &url,
                    body.clone(),
                    clients,
                    Duration::from_secs(args.seconds),
                    args.max_requests,
                )
                .await;
                trials.push((t.ok, t.elapsed, t.latencies, t.errors));
            }
            let row = summarize(name, setup, clients, trials);
            eprintln!("  {:<16} {:<22} {:>3} clients: {:>8.0} req/s", row.model, row.setup, clients, row.rps);
            rows.push(row);
        }
    }
    Ok(())
}

pub async fn run(args: ServingArgs) -> anyhow::Result<()> {
    let models = parse_models(&args.models)?;
    boat_serving::init_runtime(None).context("loading ONNX Runtime (set ORT_DYLIB_PATH)")?;
    // The raw reference runs one session per core, so that concurrent
    // clients are not serialised behind one session.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let registry = ModelRegistry::new(RegistryConfig { sessions_per_model: cores, ..RegistryConfig::default() });
    let mut rows = Vec::new();
    eprintln!("measuring (this takes a few minutes)...");
    for (name, bytes) in &models {
        registry.load(name, 1, bytes)?;
        for &clients in &args.clients {
            let (registry, name2, secs, max, repeat) =
                (registry.clone(), name.clone(), args.seconds, args.max_requests, args.repeat);
            let trials = tokio::task::spawn_blocking(move || {
                (0..repeat)
                    .map(|_| {
                        let (ok, el, lat) = raw_trial(&registry, &name2, clients, Duration::from_secs(secs), max);
                        (ok, el, lat, 0)
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            let row = summarize(name, "(a) raw ONNX Runtime", clients, trials);
            eprintln!("  {:<16} {:<22} {:>3} clients: {:>8.0} req/s", row.model, row.setup, clients, row.rps);
            rows.push(row);
        }
    }
    let plain =
        |nodes: usize, extra: &[&str]| ClusterArgs { nodes, node_args: extra.iter().map(|s| s.to_string()).collect() };
    cluster_rows(&args, &models, "(r) unreplicated", plain(1, &["--unreplicated"]), &mut rows).await?;
    cluster_rows(&args, &models, "(b) 1 node", plain(1, &[]), &mut rows).await?;
    cluster_rows(&args, &models, "(c) 3 nodes", plain(3, &[]), &mut rows).await?;
    cluster_rows(&args, &models, "(c) 3 nodes, no batching", plain(3, &["--max-batch", "1"]), &mut rows).await?;

    println!(
        "{:<16} {:<26} {:>7} {:>10} {:>9} {:>9} {:>7}",
        "model", "setup", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for r in &rows {
        println!(
            "{:<16} {:<26} {:>7} {:>10.0} {:>9.3} {:>9.3} {:>7}",
            r.model, r.setup, r.clients, r.rps, r.p50, r.p99, r.errors
        );
    }
    println!();
    for (name, _) in &models {
        for &clients in &args.clients {
            let find = |setup: &str| {
                rows.iter().find(|r| &r.model == name && r.setup == setup && r.clients == clients).map(|r| r.rps)
            };
            if let (Some(b), Some(nb)) = (find("(c) 3 nodes"), find("(c) 3 nodes, no batching")) {
                println!(
                    "{name}, {clients} clients: batching gives {:.2}x the throughput of one request per entry",
                    b / nb
                );
            }
            if let (Some(reference), Some(c3)) = (find("(r) unreplicated"), find("(c) 3 nodes")) {
                println!(
                    "{name}, {clients} clients: 3 nodes / unreplicated reference = {:.2}x the throughput",
                    c3 / reference
                );
            }
            let p50 = |setup: &str| {
                rows.iter().find(|r| &r.model == name && r.setup == setup && r.clients == clients).map(|r| r.p50)
            };
            if let (Some(reference), Some(c3)) = (p50("(r) unreplicated"), p50("(c) 3 nodes")) {
                println!("{name}, {clients} clients: p50 {c3:.3} ms on 3 nodes against {reference:.3} ms unreplicated");
            }
            if let (Some(raw), Some(c3)) = (find("(a) raw ONNX Runtime"), find("(c) 3 nodes")) {
                println!(
                    "{name}, {clients} clients: the 3-node cluster runs at {:.1}% of raw in-process throughput",
                    100.0 * c3 / raw
                );
            }
        }
    }
    Ok(())
}
