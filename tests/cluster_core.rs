//! The cluster core against three real nodes: election, replicated
//! predictions, redirects, failover, catch-up, snapshots, idempotency,
//! partitions and bad input.

use std::time::Duration;

use boat_tests::{others, Sandbox};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_and_every_node_applies_the_prediction() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let statuses: Vec<_> = futures_status(&sb).await;
    assert_eq!(statuses.iter().filter(|s| s.is_leader).count(), 1, "exactly one leader: {statuses:#?}");
    for s in &statuses {
        assert_eq!(s.leader_id, Some(leader as u64));
        assert_eq!(s.members.len(), 3);
        assert!(["Leader", "Follower"].contains(&s.state.as_str()), "state {}", s.state);
    }

    let r = sb.predict(leader, "Hello", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["output"], "Hello");
    let index = r.body["index"].as_u64().expect("index");
    assert!(r.body["term"].as_u64().expect("term") >= 1);
    let id = r.body["id"].as_str().expect("id").to_string();

    let converged = sb.wait_for_convergence().await.unwrap();
    let digest = &converged[0].state_digest;
    assert!(!digest.is_empty());
    assert!(converged.iter().all(|s| &s.state_digest == digest && s.last_applied >= index));
    for i in 0..3 {
        // A stale read shows what this very node applied.
        let r = sb.client().get(&sb.url(i), &format!("/predictions/{id}?consistency=stale")).await.unwrap();
        assert_eq!(r.status, 200, "node {i}: {}", r.text);
        assert_eq!(r.body["index"], index, "node {i} recorded the same entry");
        assert_eq!(r.body["output"], "Hello");
    }

    let greeting = sb.client().get(&sb.url(leader), "/").await.unwrap();
    assert!(greeting.text.contains(&format!("Boat node {leader}")), "{}", greeting.text);
}

async fn futures_status(sb: &Sandbox) -> Vec<boat_raft::NodeStatus> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(sb.status(i).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_redirects_to_the_leader() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let follower = others(leader)[0];
    let r = sb.predict(follower, "Hi", None).await.unwrap();
    assert_eq!(r.status, 307, "{}", r.text);
    let leader_http = sb.cluster.spec.http[leader].to_string();
    assert_eq!(r.header("location"), Some(format!("http://{leader_http}/predict").as_str()));
    assert_eq!(r.body["leader_id"], leader as u64);
    assert_eq!(r.body["leader_http"], leader_http);
    assert!(r.body["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_elects_another_and_the_dead_node_catches_up() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let old = sb.wait_for_leader().await.unwrap();
    for n in 0..5 {
        let r = sb.predict(old, &format!("before-{n}"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    sb.cluster.kill_node(old).await.unwrap();

    let r = sb.predict_anywhere(&json!({"input": "after failover"}), Some("after-failover")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["output"], "after failover");
    let new = r.body["node_id"].as_u64().unwrap() as usize;
    assert_ne!(new, old, "a new leader served");

    sb.restart(old).unwrap();
    let converged = sb.wait_for_convergence().await.unwrap();
    assert_eq!(converged.len(), 3);
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
    let r = sb.client().get(&sb.url(old), "/predictions/after-failover?consistency=stale").await.unwrap();
    assert_eq!(r.status, 200, "the restarted node caught up: {}", r.text);
    assert_eq!(r.body["output"], "after failover");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_node_rejoins_from_a_snapshot() {
    let args = ["--snapshot-every", "20", "--keep-after-snapshot", "5"];
    let mut sb = Sandbox::start(3, &args).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let victim = others(leader)[1];
    for n in 0..60 {
        let r = sb.predict(leader, &format!("p{n}"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    sb.wait_for_convergence().await.unwrap();
    let leader_status = sb.status(leader).await.unwrap();
    assert!(leader_status.purged_index.is_some(), "the leader purged its log: {leader_status:?}");

    sb.cluster.stop_node(victim, Duration::from_secs(10)).await.unwrap();
    sb.cluster.wipe_node(victim).unwrap();
    assert!(!sb.cluster.spec.node_dir(victim).exists());
    sb.restart(victim).unwrap();

    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
    sb.wait_for_log(victim, "installed snapshot from leader").await.unwrap();
    let s = sb.status(victim).await.unwrap();
    assert!(s.snapshot_index.is_some(), "{s:?}");
    assert_eq!(s.predictions_run, 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_retry_after_failover_returns_the_first_result_once() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let old = sb.wait_for_leader().await.unwrap();
    let first = sb.predict(old, "exactly once", Some("key-1")).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["duplicate"], false);
    sb.wait_for_convergence().await.unwrap();

    sb.cluster.kill_node(old).await.unwrap();
    let retry = sb.predict_anywhere(&json!({"input": "exactly once"}), Some("key-1")).await.unwrap();
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_ne!(retry.body["node_id"], old as u64);
    assert_eq!(retry.body["duplicate"], true);
    for field in ["id", "output", "index", "term"] {
        assert_eq!(retry.body[field], first.body[field], "{field} differs");
    }
    // The body's "id" is the same key, and the run count did not move.
    let body_retry = sb.predict_anywhere(&json!({"input": "exactly once", "id": "key-1"}), None).await.unwrap();
    assert_eq!(body_retry.body["index"], first.body["index"]);
    let after = sb.wait_for_convergence().await.unwrap();
    assert!(after.iter().all(|s| s.predictions_run == 1), "the request ran once: {after:#?}");

    // Reusing the key for a different request is refused.
    let conflict = sb.predict_anywhere(&json!({"input": "something else"}), Some("key-1")).await.unwrap();
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert!(conflict.body["error"].is_string());

    sb.restart(old).unwrap();
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_leader_is_replaced_and_its_uncommitted_entry_never_shows() {
    let sb = Sandbox::start(3, &["--write-timeout-ms", "2000"]).unwrap();
    let old = sb.wait_for_leader().await.unwrap();
    let peers: Vec<u64> = others(old).iter().map(|i| *i as u64).collect();
    let r = sb.control(old, json!({"cmd": "partition", "peers": peers, "duration_ms": 120_000})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["faults"]["partitioned"].as_object().map(|m| m.len()), Some(2));

    // The cut-off leader cannot commit: the client gets 503 with the key.
    let lost = sb.predict(old, "lost write", Some("lost-1")).await.unwrap();
    assert_eq!(lost.status, 503, "{}", lost.text);
    assert!(lost.header("retry-after").is_some());

    // The majority elects a new leader that serves.
    let majority = others(old);
    let new = sb
        .wait_for_status(majority[0], "a new leader", |s| s.leader_id.is_some_and(|l| l != old as u64))
        .await
        .unwrap();
    let new = new.leader_id.unwrap() as usize;
    let served = sb.predict(new, "majority write", None).await.unwrap();
    assert_eq!(served.status, 200, "{}", served.text);

    let r = sb.control(old, json!({"cmd": "heal"})).await.unwrap();
    assert_eq!(r.status, 200);
    let s = sb
        .wait_for_status(old, "the old leader steps down", |s| !s.is_leader && s.leader_id == Some(new as u64))
        .await
        .unwrap();
    assert_eq!(s.state, "Follower");
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
    for i in 0..3 {
        let r = sb.client().get(&sb.url(i), "/predictions/lost-1?consistency=stale").await.unwrap();
        assert_eq!(r.status, 404, "node {i} applied the uncommitted entry: {}", r.text);
    }
    // The key was never used by a committed entry: it runs fresh now.
    let fresh = sb.predict(new, "lost write", Some("lost-1")).await.unwrap();
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert_eq!(fresh.body["duplicate"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_cut_off_or_stopped_for_a_while_does_not_depose_the_leader() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let term = sb.status(leader).await.unwrap().term;
    let [cut, stopped] = others(leader)[..] else { unreachable!() };
    let settle = Duration::from_millis(1500); // several leases

    // Cut off from both peers for many leases: without a pre-vote it would
    // raise its term again and again, and its first message after the heal
    // would depose the leader.
    let peers: Vec<u64> = others(cut).iter().map(|i| *i as u64).collect();
    let r = sb.control(cut, json!({"cmd": "partition", "peers": peers, "duration_ms": 60_000})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(sb.status(cut).await.unwrap().term, term, "the cut-off follower raised its term");
    sb.control(cut, json!({"cmd": "heal"})).await.unwrap();
    let ok = sb.predict(leader, "after the heal", None).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);

    // Stopped (SIGSTOP) for many leases: when it runs again its clock says
    // it has heard nothing for two seconds, but the others have.
    let pid = sb.cluster.pid(stopped).unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_millis(2000)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    tokio::time::sleep(settle).await;

    for i in 0..3 {
        let s = sb.status(i).await.unwrap();
        assert_eq!((s.leader_id, s.term), (Some(leader as u64), term), "node {i}: {s:?}");
    }
    let ok = sb.predict(leader, "after the stop", None).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    sb.wait_for_convergence().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_whose_disk_stalls_keeps_leading_until_the_stall_outlasts_its_allowance() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let term = sb.status(leader).await.unwrap().term;

    // Each flush on the leader takes 600 ms longer: more than twice the
    // 250 ms lease, during which openraft's core sends no heartbeat. The
    // leader's beacons keep the followers from standing, and every write
    // commits.
    let r = sb.control(leader, json!({"cmd": "slow_disk", "ms": 600})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sb.status(leader).await.unwrap().faults.slow_disk_ms, 600);
    for i in 0..3 {
        let ok = sb.predict(leader, &format!("slow disk {i}"), None).await.unwrap();
        assert_eq!(ok.status, 200, "write {i} on a slow disk: {}", ok.text);
    }
    for i in 0..3 {
        let s = sb.status(i).await.unwrap();
        assert_eq!((s.leader_id, s.term), (Some(leader as u64), term), "node {i} after the stalls: {s:?}");
    }

    // A flush that takes 4 s: the core is stuck past the beacons' allowance
    // (1 s), they stop, and the others elect a leader of their own.
    sb.control(leader, json!({"cmd": "slow_disk", "ms": 4000})).await.unwrap();
    let stuck = {
        let (client, url) = (sb.client().clone(), sb.url(leader));
        tokio::spawn(async move { client.post_json(&url, "/predict", &json!({"input": "stuck"})).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_millis(3500);
    let new_leader = 'found: loop {
        for i in others(leader) {
            if let Ok(s) = sb.status(i).await {
                if s.term > term && s.leader_id.is_some_and(|l| l != leader as u64) {
                    break 'found s.leader_id.unwrap() as usize;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "no new leader while the old one's disk was stuck");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ok = sb.predict(new_leader, "after the stuck disk", None).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    stuck.abort();
    sb.control(leader, json!({"cmd": "heal"})).await.unwrap();
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.iter().all(|s| s.leader_id == Some(new_leader as u64)), "{converged:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delay_and_heal_are_reported_and_writes_still_commit() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    // The documented one-liner, `curl -d '{"cmd": ...}'`, sends a form content type.
    let form = "application/x-www-form-urlencoded";
    let r = sb
        .client()
        .post_raw(&sb.url(leader), "/control", form, br#"{"cmd": "delay", "ms": 30}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.body["faults"]["delay_ms"], 30, "{}", r.text);
    assert_eq!(sb.status(leader).await.unwrap().faults.delay_ms, 30);
    let p = sb.predict(leader, "slow", None).await.unwrap();
    assert_eq!(p.status, 200, "{}", p.text);
    sb.control(leader, json!({"cmd": "heal"})).await.unwrap();
    assert_eq!(sb.status(leader).await.unwrap().faults.delay_ms, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_and_crash_stop_the_process_and_it_rejoins() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let [a, b] = others(leader)[..] else { unreachable!() };
    for (node, cmd) in [(a, "exit"), (b, "crash")] {
        let r = sb.control(node, json!({ "cmd": cmd })).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        let deadline = std::time::Instant::now() + boat_tests::PATIENCE;
        let status = loop {
            if let Some(s) = sb.cluster.reap(node) {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "node {node} did not stop after {cmd}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.success(), cmd == "exit", "{cmd}: {status}");
        let r = sb.predict(leader, &format!("while {node} is down"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        sb.restart(node).unwrap();
        let converged = sb.wait_for_convergence().await.unwrap();
        assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_json_4xx_and_the_node_stays_up() {
    let sb = Sandbox::start(3, &["--max-body-bytes", "2048"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let url = sb.url(leader);
    let c = sb.client();
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed JSON", "application/json", b"{\"input\": ".to_vec(), 400),
        ("missing input", "application/json", b"{\"inp\": 1}".to_vec(), 422),
        ("wrong content type", "text/plain", b"{\"input\": \"x\"}".to_vec(), 415),
        ("oversized body", "application/json", format!("{{\"input\": \"{}\"}}", "x".repeat(4096)).into_bytes(), 413),
        ("unknown model", "application/json", b"{\"input\": \"x\", \"model\": \"nope\"}".to_vec(), 404),
        ("input of the wrong type for the model", "application/json", b"{\"input\": {\"a\": 1}}".to_vec(), 422),
        ("empty idempotency key", "application/json", b"{\"input\": \"x\", \"id\": \"\"}".to_vec(), 400),
    ];
    for (what, ct, body, want) in cases {
        let r = c.post_raw(&url, "/predict", ct, body).await.unwrap();
        assert_eq!(r.status.as_u16(), want, "{what}: {}", r.text);
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: no JSON error in {}", r.text);
    }
    let r = c.post_raw(&url, "/control", "application/json", b"{\"cmd\": \"explode\"}".to_vec()).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    let r = c
        .post_raw(&url, "/control", "application/json", b"{\"cmd\": \"partition\", \"peers\": [42]}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    let r = c.get(&url, "/no/such/path").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body["error"].is_string());

    // Still up and serving.
    let ok = sb.predict(leader, "still here", None).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    sb.wait_for_convergence().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_keep_the_log_bounded() {
    let sb = Sandbox::start(3, &["--snapshot-every", "50", "--keep-after-snapshot", "10"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    for n in 0..400 {
        let r = sb.predict(leader, &format!("n{n}"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let converged = sb.wait_for_convergence().await.unwrap();
    for s in converged {
        assert!(s.last_applied >= 400);
        assert!(s.log_entries <= 50 + 10 + 64, "node {} holds {} log entries", s.node_id, s.log_entries);
        assert!(s.snapshot_index.is_some_and(|i| i >= 300), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_majority_a_node_answers_503_with_retry_after() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let [a, b] = others(leader)[..] else { unreachable!() };
    sb.cluster.kill_node(leader).await.unwrap();
    sb.cluster.kill_node(a).await.unwrap();
    let s = sb.wait_for_status(b, "no leader known", |s| s.leader_id.is_none()).await.unwrap();
    assert!(!s.is_leader);
    let r = sb.predict(b, "nobody to commit", None).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert!(r.body["error"].is_string());
    // Once a majority is back, the same node serves or redirects again.
    sb.restart(a).unwrap();
    sb.restart(leader).unwrap();
    sb.wait_for_leader().await.unwrap();
    let r = sb.predict_anywhere(&json!({"input": "back"}), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_leader_stops_taking_writes_and_the_majority_serves() {
    // 300-600 ms election timeouts: a leader without its majority for 600 ms refuses writes.
    let sb = Sandbox::start(3, &[]).unwrap();
    let old = sb.wait_for_leader().await.unwrap();
    let peers: Vec<u64> = others(old).iter().map(|i| *i as u64).collect();
    let r = sb.control(old, json!({"cmd": "partition", "peers": peers, "duration_ms": 60_000})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let cut_at = std::time::Instant::now();

    // Within a few election timeouts the old leader answers 503 at once,
    // naming the reason, instead of holding requests it cannot commit.
    let bound = Duration::from_millis(10 * 600);
    let refused = loop {
        let r = sb.predict(old, "cut off", None).await.unwrap();
        if r.status == 503 && r.body["error"].as_str().is_some_and(|e| e.contains("majority")) {
            break r;
        }
        assert!(cut_at.elapsed() < bound, "still accepting after {:?}: {} {}", cut_at.elapsed(), r.status, r.text);
    };
    assert_eq!(refused.header("retry-after"), Some("1"));
    let t = std::time::Instant::now();
    let again = sb.predict(old, "cut off again", None).await.unwrap();
    assert_eq!(again.status, 503, "{}", again.text);
    assert!(t.elapsed() < Duration::from_secs(1), "refused without waiting for a commit");
    let s = sb.status(old).await.unwrap();
    assert!(s.is_leader, "openraft still calls it leader; it just will not take writes");

    // The majority elects a new leader and serves.
    let majority = others(old);
    let urls: Vec<String> = majority.iter().map(|i| sb.url(*i)).collect();
    let body = json!({"input": "majority"});
    let deadline = std::time::Instant::now() + boat_tests::PATIENCE;
    let served = sb.client().predict_anywhere(&urls, &body, None, deadline).await.unwrap();
    assert_eq!(served.status, 200, "{}", served.text);
    assert_ne!(served.body["node_id"].as_u64(), Some(old as u64));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_logs_rotate_and_keep_the_configured_number_of_files() {
    let sb = Sandbox::start(1, &["--log-max-bytes", "2000", "--log-files", "2"]).unwrap();
    sb.wait_for_leader().await.unwrap();
    // Every control command logs a line: about 8 KB in all.
    for _ in 0..80 {
        assert_eq!(sb.control(0, json!({"cmd": "heal"})).await.unwrap().status, 200);
    }
    let dir = sb.cluster.spec.log_dir();
    let name = |suffix: &str| dir.join(format!("node-0.log{suffix}"));
    let deadline = std::time::Instant::now() + boat_tests::PATIENCE;
    while !name(".2").exists() {
        assert!(std::time::Instant::now() < deadline, "the log never rotated twice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["node-0.log", "node-0.log.1", "node-0.log.2"], "the current file and two rotated ones");
    for suffix in [".1", ".2"] {
        let len = std::fs::metadata(name(suffix)).unwrap().len();
        assert!((2000..2000 + 4096).contains(&len), "node-0.log{suffix} has {len} bytes");
    }
}
