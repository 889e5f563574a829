//! `boat deploy` as a user runs it: the supervisor restarts nodes that exit
//! or crash, `reset.sh` wipes a node that then rejoins from a snapshot, and
//! Ctrl-C stops everything.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use boat_tests::boat::client::HttpClient;
use boat_tests::{boat_bin, ort_lib, PATIENCE};
use serde_json::json;

/// Finds `2 * n` consecutive free loopback ports: n for HTTP, n for Raft.
fn free_port_block(n: u16) -> (u16, u16) {
    let start = 20_000 + (std::process::id() % 2_000) as u16 * 16;
    for base in (start..60_000).step_by(16) {
        let all_free = (0..2 * n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return (base, base + n);
        }
    }
    panic!("no block of free ports");
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Prints the supervisor's output (which carries every node's log lines)
/// when the test fails, so a failure explains itself.
struct ShowOutputOnFailure(PathBuf);

impl Drop for ShowOutputOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = text(&self.0);
            let tail: Vec<&str> = out.lines().rev().take(80).collect();
            eprintln!("---- boat deploy output (last 80 lines) ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_supervises_restarts_resets_and_stops_cleanly() {
    let dir = tempfile::Builder::new().prefix("boat-deploy-").tempdir().unwrap();
    let cluster_dir = dir.path().join(".boat");
    let (http_base, raft_base) = free_port_block(3);
    let out_path = dir.path().join("deploy.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let _show = ShowOutputOnFailure(out_path.clone());
    let mut deploy = tokio::process::Command::new(boat_bin())
        .args(["deploy", "--dir"])
        .arg(&cluster_dir)
        .args(["--http-base", &http_base.to_string(), "--raft-base", &raft_base.to_string()])
        .arg("--ort-lib")
        .arg(ort_lib())
        .args(["--", "--snapshot-every", "10", "--keep-after-snapshot", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let urls: Vec<String> = (0..3).map(|i| format!("http://127.0.0.1:{}", http_base + i)).collect();
    let client = HttpClient::new().unwrap();

    // The admin token exists and only its owner can read it.
    let token = cluster_dir.join("admin-token");
    wait_until("admin token written", || async { token.exists() }).await;
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    let secret = text(&token).trim().to_string();
    assert!(secret.len() >= 32);

    let deadline = Instant::now() + PATIENCE;
    for n in 0..25 {
        let r = client.predict_anywhere(&urls, &json!({"input": format!("d{n}")}), None, deadline).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }

    // exit and crash: the supervisor brings each node back.
    for (node, cmd) in [(2usize, "exit"), (1, "crash")] {
        let before = text(&cluster_dir.join(format!("node-{node}.pid")));
        let r = client.control(&urls[node], &json!({ "cmd": cmd })).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        wait_until("the supervisor restarts the node", || async {
            let now = text(&cluster_dir.join(format!("node-{node}.pid")));
            !now.is_empty() && now != before && client.status(&urls[node]).await.is_ok()
        })
        .await;
        assert!(text(&out_path).contains(&format!("node {node} exited")));
    }

    // reset.sh takes node 0 out of the cluster, wipes it, and adds it back
    // as a learner that installs a snapshot and is promoted to voter.
    let reset = std::process::Command::new(workspace().join("reset.sh"))
        .arg("0")
        .env("BOAT_DIR", &cluster_dir)
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let said = String::from_utf8_lossy(&reset.stdout);
    assert!(said.contains("removed node 0") && said.contains("is a voter again"), "{said}");
    let log0 = cluster_dir.join("shared/logs/nodes/node-0.log");
    assert!(text(&log0).contains("joining a running cluster"), "node 0 came back as a joiner");
    wait_until("node 0 rejoins from a snapshot", || async { text(&log0).contains("installed snapshot from leader") })
        .await;
    wait_until("all three nodes agree", || async {
        let mut seen = Vec::new();
        for u in &urls {
            match client.status(u).await {
                Ok(s) => seen.push((s.last_applied, s.state_digest)),
                Err(_) => return false,
            }
        }
        seen.windows(2).all(|w| w[0] == w[1]) && seen[0].0 > 0
    })
    .await;
    let voters = client.status(&urls[1]).await.unwrap().voters;
    assert_eq!(voters, vec![0, 1, 2], "node 0 votes again");

    // Ctrl-C stops every node and the supervisor.
    let pid = deploy.id().unwrap() as i32;
    // Our own child process.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = tokio::time::timeout(PATIENCE, deploy.wait()).await.expect("deploy stops").unwrap();
    assert!(status.success(), "{status}");
    for port in (0..3).flat_map(|i| [http_base + i, raft_base + i]) {
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is still held");
    }
    assert!(!text(&out_path).contains(&secret), "the admin token must never be printed");
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
