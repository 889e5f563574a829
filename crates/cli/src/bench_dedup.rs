//! `boat bench dedup`: does the dedup window hold at full load?
//!
//! 64 clients send keyed predictions to the leader for `--minutes`, then
//! every key is sent again. Reports how many retries came back as
//! duplicates with their first index and term, the records each node
//! holds, and each node's memory (RSS) and disk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::bench::{BenchCluster, ClusterArgs};
use crate::client::HttpClient;
use crate::cluster::rss_mb;

#[derive(Debug, Clone, Args)]
pub struct DedupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Minutes of full load before the retries.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Run the nodes with this executable instead of this binary, for
    /// example a script that starts one of them under a heap profiler.
    #[arg(long)]
    pub node_bin: Option<std::path::PathBuf>,
}

/// (key number, index, term) of every acknowledged request.
type Acks = Vec<(usize, u64, u64)>;

async fn send_all(client: &HttpClient, url: &str, clients: usize, until: Instant, limit: usize) -> Acks {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let body = json!({"input": format!("d{n}")});
                if let Ok(r) = client.predict(&url, &body, Some(&format!("dedup-{n}"))).await {
                    if r.status.is_success() {
                        let (i, t) = (r.body["index"].as_u64().unwrap_or(0), r.body["term"].as_u64().unwrap_or(0));
                        let dup = r.body["duplicate"].as_bool().unwrap_or(false);
                        acks.push((n, i, if dup { t | 1 << 63 } else { t }));
                    }
                }
            }
            acks
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_unstable();
    all
}

fn disk_mb(dir: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        match std::fs::read_dir(p) {
            Ok(entries) => entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum(),
            Err(_) => 0,
        }
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

pub async fn run(args: DedupArgs) -> anyhow::Result<()> {
    let bench = BenchCluster::start_with(&args.cluster, args.node_bin.clone()).await?;
    let client = HttpClient::new()?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let url = bench.cluster.http(leader);
    let load = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let first = send_all(&client, &url, args.clients, started + load, usize::MAX).await;
    let rate = first.len() as f64 / started.elapsed().as_secs_f64();
    println!("load: {} keyed requests acknowledged in {:.0} s ({rate:.0} req/s)", first.len(), load.as_secs_f64());

    let mut held = Vec::new();
    for i in 0..bench.cluster.len() {
        let s = bench.cluster.client.status(&bench.cluster.http(i)).await?;
        let pid = bench.cluster.pid(i).unwrap_or(0);
        held.push(format!(
            "node {i}: {} records, RSS {:.0} MB, disk {:.0} MB",
            s.idempotency_records,
            rss_mb(pid),
            disk_mb(&bench.cluster.spec.node_dir(i))
        ));
    }

    // Every key again, as fast as the cluster answers (a replay is cheap).
    let sent = first.last().map_or(0, |(n, _, _)| n + 1);
    let retried = send_all(&client, &url, args.clients, Instant::now() + load * 4, sent).await;
    let firsts: std::collections::HashMap<usize, (u64, u64)> = first.iter().map(|(n, i, t)| (*n, (*i, *t))).collect();
    let same =
        retried.iter().filter(|(n, i, t)| t & (1 << 63) != 0 && firsts.get(n) == Some(&(*i, t & !(1 << 63)))).count();
    println!("retries: {} sent, {same} came back as duplicates with their first index and term", retried.len());
    for line in held {
        println!("{line}");
    }
    Ok(())
}
