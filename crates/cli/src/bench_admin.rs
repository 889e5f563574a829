//! `boat bench admin`: the same admin calls over gRPC and REST, side by
//! side, on the leader of a fresh cluster: a linearizable read (list the
//! apps), a write (stop and start an app, one log entry each) and a login
//! (an argon2 check plus a log entry). Rounds interleave the two faces so
//! that both see the same machine; medians over the rounds are reported.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat_admin::admin_grpc::pb;
use boat_admin::admin_grpc::pb::admin_client::AdminClient;
use clap::Args;
use serde_json::json;
use tonic::transport::Channel;

use crate::bench::{median, percentile_ms, BenchCluster, ClusterArgs};
use crate::client::{HttpClient, Method};

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Calls per kind, face and round.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Rounds; medians over them are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

fn authorized<T>(body: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().context("token header")?);
    Ok(req)
}

const PASSWORD: &str = "bench-password-1";

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let bench = BenchCluster::start(&args.cluster).await?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let url = bench.cluster.http(leader);
    let http = HttpClient::new()?;
    let mut grpc: AdminClient<Channel> = AdminClient::connect(url.clone()).await?;
    // A developer with an app to read and to stop and start.
    let token = bench.developer(&http, &url, "bench@example.org", PASSWORD).await?;
    let app = json!({"name": "bench", "members": [{"model": "echo"}]});
    let r = http.send_json(Method::POST, &url, "/api/apps", Some(&app), Some(&token)).await?;
    if r.status != 201 {
        bail!("creating the app: {} {}", r.status, r.text);
    }

    let kinds = ["read: list apps", "write: stop or start an app", "login"];
    // [kind][face] → per-round p50s (and p99s).
    let mut p50 = vec![[Vec::new(), Vec::new()]; kinds.len()];
    let mut p99 = vec![[Vec::new(), Vec::new()]; kinds.len()];
    for _ in 0..args.repeat {
        for (k, kind) in kinds.iter().enumerate() {
            // Logins cost an argon2 hash each: fewer of them.
            let calls = if k == 2 { (args.calls / 10).max(5) } else { args.calls };
            for face in 0..2 {
                let mut lat = Vec::with_capacity(calls);
                for n in 0..calls {
                    let running = n % 2 == 1;
                    let t = Instant::now();
                    let ok = match (k, face) {
                        (0, 0) => grpc.list_apps(authorized(pb::Empty {}, &token)?).await.is_ok(),
                        (0, _) => {
                            http.send_json(Method::GET, &url, "/api/apps", None, Some(&token)).await?.status == 200
                        }
                        (1, 0) => {
                            let req = authorized(pb::NameRef { name: "bench".into() }, &token)?;
                            if running {
                                grpc.start_app(req).await.is_ok()
                            } else {
                                grpc.stop_app(req).await.is_ok()
                            }
                        }
                        (1, _) => {
                            let path = if running { "/api/apps/bench/start" } else { "/api/apps/bench/stop" };
                            http.send_json(Method::POST, &url, path, None, Some(&token)).await?.status == 200
                        }
                        (_, 0) => {
                            let body = pb::LoginRequest {
                                email: "bench@example.org".into(),
                                password: PASSWORD.into(),
                                ttl_seconds: 60,
                            };
                            grpc.login(tonic::Request::new(body)).await.is_ok()
                        }
                        (_, _) => {
                            let body = json!({"email": "bench@example.org", "password": PASSWORD, "ttl_seconds": 60});
                            http.send_json(Method::POST, &url, "/api/tokens", Some(&body), None).await?.status == 200
                        }
                    };
                    if !ok {
                        bail!("{kind} over {} failed", if face == 0 { "gRPC" } else { "REST" });
                    }
                    lat.push(t.elapsed());
                }
                lat.sort();
                p50[k][face].push(percentile_ms(&lat, 50.0));
                p99[k][face].push(percentile_ms(&lat, 99.0));
            }
        }
    }
    println!(
        "admin calls on the leader, one client, {} rounds (logins: a tenth of the calls), medians of the rounds",
        args.repeat
    );
    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "call", "gRPC p50 ms", "REST p50 ms", "gRPC p99 ms", "REST p99 ms", "REST/gRPC"
    );
    for (k, kind) in kinds.iter().enumerate() {
        let (g50, r50) = (median(&mut p50[k][0]), median(&mut p50[k][1]));
        let (g99, r99) = (median(&mut p99[k][0]), median(&mut p99[k][1]));
        println!("{kind:<30} {g50:>12.3} {r50:>12.3} {g99:>12.3} {r99:>12.3} {:>10.2}", r50 / g50);
    }
    let doc = http.get(&url, "/api/openapi.json").await?;
    let paths = doc.body["paths"].as_object().map_or(0, |p| p.len());
    let operations: usize = doc.body["paths"]
        .as_object()
        .map(|p| {
            p.values()
                .map(|v| {
                    v.as_object().map_or(0, |o| {
                        o.keys().filter(|k| ["get", "post", "put", "delete"].contains(&k.as_str())).count()
                    })
                })
                .sum()
        })
        .unwrap_or(0);
    println!("OpenAPI document: {paths} paths, {operations} operations");
    Ok(())
}
