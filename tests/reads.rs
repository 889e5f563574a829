//! Read consistency against three real nodes: a read that starts after a
//! write was acknowledged sees it on every node; without a leader a
//! linearizable read is refused (503) while a stale read answers.

use boat_tests::boat::client::Method;
use boat_tests::{model_path, others, Sandbox};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_write_is_seen_by_an_immediate_read_on_every_other_node() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let followers = others(leader);
    let token = sb.token();
    let (c, url) = (sb.client(), |i: usize| sb.url(i));
    let files =
        [std::fs::read(model_path("mlp.onnx")).unwrap(), std::fs::read(model_path("iris_logreg.onnx")).unwrap()];

    for round in 0..12u64 {
        // A model upload, sent to a follower and redirected as a client would follow it.
        let first =
            c.upload_model(&url(followers[0]), "m", files[(round % 2) as usize].clone(), Some(&token)).await.unwrap();
        assert_eq!(first.status, 307, "{}", first.text);
        let location = first.header("location").unwrap().to_string();
        assert!(location.ends_with("/api/models/m"), "the redirect keeps the path: {location}");
        let leader_url = location.trim_end_matches("/api/models/m").to_string();
        let up = c.upload_model(&leader_url, "m", files[(round % 2) as usize].clone(), Some(&token)).await.unwrap();
        assert_eq!(up.status, 201, "{}", up.text);
        let version = up.body["version"].as_u64().unwrap();
        for &f in &followers {
            let ready = c.get(&url(f), "/v2/models/m/ready").await.unwrap();
            assert_eq!(ready.status, 200, "round {round}, node {f}: {}", ready.text);
            assert_eq!(ready.body["version"], version.to_string(), "round {round}: node {f} serves the new default");
            let meta = c.get(&url(f), "/v2/models/m").await.unwrap();
            assert_eq!(meta.body["versions"].as_array().unwrap().last().unwrap(), &json!(version.to_string()));
            let listed = c.get(&url(f), "/api/models/m").await.unwrap();
            assert_eq!(listed.body["default_version"], version, "round {round}, node {f}");
        }

        // A prediction acknowledged by the leader is at once found everywhere.
        let key = format!("read-after-write-{round}");
        let p = sb.predict(leader, &format!("hello {round}"), Some(&key)).await.unwrap();
        assert_eq!(p.status, 200, "{}", p.text);
        for &f in &followers {
            let r = c.get(&url(f), &format!("/predictions/{key}")).await.unwrap();
            assert_eq!(r.status, 200, "round {round}, node {f}: {}", r.text);
            assert_eq!(r.body["index"], p.body["index"]);
            assert_eq!(r.body["output"], format!("hello {round}"));
        }

        // A rollback too.
        if version > 1 {
            let back = c
                .send_json(
                    Method::POST,
                    &url(leader),
                    "/api/models/m/default",
                    Some(&json!({"version": 1})),
                    Some(&token),
                )
                .await
                .unwrap();
            assert_eq!(back.status, 200, "{}", back.text);
            for &f in &followers {
                let ready = c.get(&url(f), "/v2/models/m/ready").await.unwrap();
                assert_eq!(ready.body["version"], "1", "round {round}: node {f} sees the rollback");
            }
        }
    }

    // The opt-out reads local state and says so in no way other than speed.
    let stale = c.get(&url(followers[1]), "/api/models?consistency=stale").await.unwrap();
    assert_eq!(stale.status, 200, "{}", stale.text);
    let bad = c.get(&url(followers[1]), "/api/models?consistency=eventual").await.unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.body["error"].as_str().unwrap().contains("stale"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_reachable_leader_reads_are_refused_unless_stale() {
    let mut sb = Sandbox::start(3, &["--read-timeout-ms", "1000"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let p = sb.predict(leader, "before", Some("k-before")).await.unwrap();
    assert_eq!(p.status, 200, "{}", p.text);
    sb.wait_for_convergence().await.unwrap();

    // A leader cut off from both peers cannot confirm it still leads.
    let peers: Vec<u64> = others(leader).iter().map(|i| *i as u64).collect();
    let r = sb.control(leader, json!({"cmd": "partition", "peers": peers, "duration_ms": 60_000})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let refused = sb.client().get(&sb.url(leader), "/predictions/k-before").await.unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    assert!(refused.body["error"].as_str().unwrap().contains("stale"), "{}", refused.text);
    let stale = sb.client().get(&sb.url(leader), "/predictions/k-before?consistency=stale").await.unwrap();
    assert_eq!(stale.status, 200, "{}", stale.text);
    let _ = sb.control(leader, json!({"cmd": "heal"})).await.unwrap();

    // A node alone: no leader at all.
    let alone = others(leader)[0];
    for i in (0..3).filter(|i| *i != alone) {
        sb.cluster.kill_node(i).await.unwrap();
    }
    sb.wait_for_status(alone, "no leader", |s| s.leader_id.is_none()).await.unwrap();
    for path in ["/api/models", "/v2/models/echo", "/v2/models/echo/ready", "/predictions/k-before"] {
        let r = sb.client().get(&sb.url(alone), path).await.unwrap();
        assert_eq!(r.status, 503, "{path}: {}", r.text);
        assert_eq!(r.header("retry-after"), Some("1"), "{path}");
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = sb.client().get(&sb.url(alone), &format!("{path}{sep}consistency=stale")).await.unwrap();
        assert_eq!(r.status, 200, "{path} stale: {}", r.text);
    }
    // Status and probes stay local.
    assert_eq!(sb.client().get(&sb.url(alone), "/status").await.unwrap().status, 200);
    assert_eq!(sb.client().get(&sb.url(alone), "/v2/health/live").await.unwrap().status, 200);
}
