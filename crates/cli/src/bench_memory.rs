//! `boat bench memory`: what large models cost a node in memory.
//!
//! Starts a fresh three-node cluster, uploads `--models` generated ONNX
//! files of `--mb` megabytes each, and reports every node's resident memory
//! (VmRSS) idle, with the models loaded, after a follower restarts (its state
//! rebuilt from its snapshot and log) and after a follower is wiped and
//! rejoins from the leader's snapshot. ONNX Runtime's own share is measured
//! apart by loading the same files into a registry in this process, so the
//! report separates what the runtime holds from what Boat holds.
//!
//! `--node-bin` runs the nodes from another `boat` binary (an older build,
//! say) so two versions can be compared with the same command.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use boat_serving::{ModelRegistry, RegistryConfig};
use clap::Args;

use crate::bench::{BenchCluster, ClusterArgs};
use crate::cluster::rss_mb;
use crate::onnx_builder::matmul_model;

#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Models to upload.
    #[arg(long, default_value_t = 5)]
    pub models: usize,
    /// Size of each model file, in MB.
    #[arg(long, default_value_t = 50)]
    pub mb: u64,
    /// Run the nodes from this `boat` binary instead of this one.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

/// RSS of every node, once it has stopped moving (or after a bound).
async fn settled_rss(bench: &BenchCluster) -> Vec<f64> {
    let sample = || (0..bench.cluster.len()).map(|i| bench.cluster.pid(i).map_or(f64::NAN, rss_mb)).collect::<Vec<_>>();
    let mut last = sample();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sample();
        if now.iter().zip(&last).all(|(a, b)| (a - b).abs() < 1.0) {
            return now;
        }
        last = now;
    }
    last
}

fn row(label: &str, values: &[f64]) {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>8.0}")).collect();
    println!("| {label:<34} | {} |", cells.join(" | "));
}

pub async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let files: Vec<Vec<u8>> =
        (0..args.models).map(|i| matmul_model(args.mb * 1024 * 1024 / 16, i as u32 + 1)).collect();
    let total_mb = files.iter().map(|f| f.len()).sum::<usize>() as f64 / (1024.0 * 1024.0);

    // ONNX Runtime's own share: the same files in a registry in this process.
    boat_serving::init_runtime(None).context("loading ONNX Runtime (set ORT_DYLIB_PATH)")?;
    let before = rss_mb(std::process::id());
    let registry = ModelRegistry::new(RegistryConfig::default());
    for (i, f) in files.iter().enumerate() {
        registry.load(&format!("m{i}"), 1, f)?;
    }
    let runtime_share = rss_mb(std::process::id()) - before;
    drop(registry);

    let mut bench = BenchCluster::start_with(&args.cluster, args.node_bin.clone()).await?;
    let n = bench.cluster.len();
    println!(
        "{} models of {} MB ({total_mb:.0} MB in all); ONNX Runtime alone holds {runtime_share:.0} MB for them",
        args.models, args.mb
    );
    let header: Vec<String> = (0..n).map(|i| format!("node {i}")).collect();
    println!("| RSS (MB)                           | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(n));
    row("idle, echo only", &settled_rss(&bench).await);

    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let token = bench.token();
    let url = bench.cluster.http(leader);
    let started = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let r = bench.cluster.client.upload_model(&url, &format!("m{i}"), f.clone(), Some(&token)).await?;
        anyhow::ensure!(r.status.is_success(), "upload {i}: {} {}", r.status, r.text);
    }
    let upload_s = started.elapsed().as_secs_f64();
    let commit = bench.cluster.client.status(&url).await?.commit_index;
    bench.cluster.wait_for_applied(commit, Duration::from_secs(120)).await?;
    row("models loaded", &settled_rss(&bench).await);

    let follower = (0..n).find(|i| *i != leader).context("a follower")?;
    bench.cluster.kill_node(follower).await?;
    bench.cluster.reap(follower);
    bench.cluster.start_node(follower)?;
    bench.cluster.wait_for_applied(commit, Duration::from_secs(120)).await?;
    row(&format!("node {follower} restarted"), &settled_rss(&bench).await);

    bench.cluster.kill_node(follower).await?;
    bench.cluster.reap(follower);
    bench.cluster.wipe_node(follower)?;
    bench.cluster.start_node(follower)?;
    bench.cluster.wait_for_applied(commit, Duration::from_secs(120)).await?;
    row(&format!("node {follower} wiped and rejoined"), &settled_rss(&bench).await);
    println!("uploads took {upload_s:.1} s ({:.0} MB/s)", total_mb / upload_s);
    Ok(())
}
