//! Membership changes while the cluster serves: a fourth node joins as a
//! learner and is promoted, a voter is removed, and a wiped node comes
//! back through the same path; no acknowledged prediction is lost and the
//! replicas agree.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boat::client::Method;
use boat_tests::Sandbox;
use serde_json::{json, Value};

/// Predictions sent until `stop`, each with its own key, through whichever
/// node leads; returns the acknowledged (key, index) pairs.
fn serve(sb: &Sandbox, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(String, u64)>> {
    let (client, urls) = (sb.client().clone(), sb.urls());
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) && n < 5000 {
            n += 1;
            let key = format!("m-{n}");
            let deadline = Instant::now() + Duration::from_secs(15);
            let body = json!({"input": format!("hello {n}")});
            let r = client.predict_anywhere(&urls, &body, Some(&key), deadline).await.expect("served throughout");
            assert_eq!(r.status, 200, "{}", r.text);
            acked.push((key, r.body["index"].as_u64().unwrap()));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    })
}

async fn change(sb: &Sandbox, method: Method, path: &str, body: Option<Value>) -> Value {
    let token = sb.token();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The joiner knows no leader until it is added: ask the members.
        let mut leader = None;
        for i in (0..sb.cluster.len()).filter(|i| sb.cluster.is_running(*i)) {
            if sb.status(i).await.is_ok_and(|s| s.is_leader) {
                leader = Some(i);
            }
        }
        let Some(leader) = leader else {
            assert!(Instant::now() < deadline, "no leader for {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let r =
            sb.client().send_json(method.clone(), &sb.url(leader), path, body.as_ref(), Some(&token)).await.unwrap();
        if r.status == 200 {
            return r.body;
        }
        // A change still in progress or a leader change under way.
        assert!(matches!(r.status.as_u16(), 307 | 409 | 503), "{path}: {}", r.text);
        assert!(Instant::now() < deadline, "{path}: {}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn roles(members: &Value) -> Vec<(u64, String)> {
    members["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_u64().unwrap(), n["role"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_join_leave_and_rejoin_while_the_cluster_serves() {
    let mut sb = Sandbox::start_founders(4, 3, &["--snapshot-every", "100", "--keep-after-snapshot", "10"]).unwrap();
    sb.wait_for_leader().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = serve(&sb, stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A fourth node joins: a learner first, a voter once caught up (from a
    // snapshot: the log is purged by then).
    let leader = sb.wait_for_leader().await.unwrap();
    sb.wait_for_status(leader, "a purged log", |s| s.purged_index.is_some_and(|p| p > 0)).await.unwrap();
    sb.restart(3).unwrap();
    let (raft, http) = (sb.cluster.spec.raft.clone(), sb.cluster.spec.http.clone());
    let add = |id: usize| json!({"id": id, "raft_addr": raft[id].to_string(), "http_addr": http[id].to_string()});
    let members = change(&sb, Method::POST, "/api/cluster/nodes", Some(add(3))).await;
    assert_eq!(
        roles(&members),
        vec![(0, "voter".into()), (1, "voter".into()), (2, "voter".into()), (3, "voter".into())]
    );
    sb.wait_for_log(3, "installed snapshot from leader").await.unwrap();

    // A voter leaves.
    let members = change(&sb, Method::DELETE, "/api/cluster/nodes/1", None).await;
    assert_eq!(roles(&members).iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0, 2, 3]);
    sb.cluster.stop_node(1, Duration::from_secs(10)).await.unwrap();

    // A wiped node comes back through the same path: removed, wiped,
    // started as a joiner, added as a learner, promoted.
    change(&sb, Method::DELETE, "/api/cluster/nodes/2", None).await;
    sb.cluster.stop_node(2, Duration::from_secs(10)).await.unwrap();
    sb.cluster.wipe_node(2).unwrap();
    sb.cluster.spec.rejoin.insert(2);
    sb.restart(2).unwrap();
    let members = change(&sb, Method::POST, "/api/cluster/nodes", Some(add(2))).await;
    assert_eq!(roles(&members).iter().filter(|(_, r)| r == "voter").count(), 3, "{members}");
    assert!(sb.log(2).contains("joining a running cluster"));

    // Leadership moves to a chosen voter while the load runs.
    let leader = sb.wait_for_leader().await.unwrap();
    let target = [0usize, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    let members = change(&sb, Method::POST, "/api/cluster/leader", Some(json!({"id": target}))).await;
    assert_eq!(members["leader_id"].as_u64(), Some(target as u64), "{members}");
    assert_eq!(sb.wait_for_leader().await.unwrap(), target);
    assert!(sb.log(leader).contains("leadership handed over"), "the old leader handed over");

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = load.await.unwrap();
    assert!(acked.len() > 20, "served throughout: {} predictions", acked.len());

    // Every acknowledged prediction is in the replicated records, on every
    // remaining node, with the index it was acknowledged at.
    let live = [0usize, 2, 3];
    for (key, index) in acked.iter().step_by(7) {
        for &i in &live {
            let r = sb.client().get(&sb.url(i), &format!("/predictions/{key}")).await.unwrap();
            assert_eq!(r.status, 200, "node {i}, {key}: {}", r.text);
            assert_eq!(r.body["index"].as_u64(), Some(*index), "node {i}, {key}");
        }
    }
    // The remaining replicas agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for &i in &live {
            let s = sb.status(i).await.unwrap();
            seen.push((s.last_applied, s.state_digest));
        }
        if seen.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "replicas disagree: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
