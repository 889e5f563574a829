//! Model files live in each node's blob store, not in memory or in the
//! encoded state: a node wiped while large models exist rejoins from a thin
//! snapshot plus streamed blobs, holds the files on disk, serves the models,
//! and uses no more memory than a node that loaded them itself.

use std::collections::BTreeMap;
use std::time::Duration;

use boat_tests::onnx_builder::matmul_model;
use boat_tests::{others, Sandbox};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_node_rejoins_with_model_files_on_disk_and_serves_them() {
    let mut sb = Sandbox::start(3, &["--snapshot-every", "10", "--keep-after-snapshot", "2"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let token = sb.token();
    // Three models of about 6 MB each: every one travels as several chunks.
    let mut files = BTreeMap::new();
    for (i, width) in [400_000u64, 380_000, 360_000].into_iter().enumerate() {
        let bytes = matmul_model(width, i as u32 + 1);
        let r =
            sb.client().upload_model(&sb.url(leader), &format!("big{i}"), bytes.clone(), Some(&token)).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
        files.insert(r.body["sha256"].as_str().unwrap().to_string(), bytes.len() as u64);
    }
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    let total: u64 = files.values().sum();

    let wiped = others(leader)[0];
    sb.cluster.stop_node(wiped, Duration::from_secs(10)).await.unwrap();
    sb.cluster.wipe_node(wiped).unwrap();
    // Entries the wiped node must take from a snapshot, not the log.
    for n in 0..12 {
        let r = sb.predict(leader, &format!("while away {n}"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    sb.restart(wiped).unwrap();
    sb.wait_for_log(wiped, "installed snapshot from leader").await.unwrap();
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");

    // The files are on the wiped node's disk, named by their hash.
    let dir = sb.cluster.spec.node_dir(wiped);
    for (sha, len) in &files {
        let meta = std::fs::metadata(dir.join("blobs").join(sha)).unwrap_or_else(|e| panic!("blob {sha}: {e}"));
        assert_eq!(meta.len(), *len);
    }
    // The snapshot it keeps names them without holding them.
    let snap = std::fs::metadata(dir.join("snapshots/current.snap")).unwrap().len();
    assert!(snap < 256 * 1024, "a {snap}-byte snapshot for {total} bytes of models");

    // It has every model loaded, and runs new predictions itself.
    let listed = sb.client().get(&sb.url(wiped), "/api/models?consistency=stale").await.unwrap();
    for m in listed.body["models"].as_array().unwrap() {
        for v in m["versions"].as_array().unwrap() {
            assert_eq!(v["loaded"], true, "{} v{} on node {wiped}", m["name"], v["version"]);
        }
    }
    let body = json!({"model": "mlp", "input": [5.0, 3.0, 1.5, 0.2]});
    let r = sb.client().predict(&sb.url(leader), &body, Some("after-rejoin")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let there = sb.client().get(&sb.url(wiped), "/predictions/after-rejoin").await.unwrap();
    assert_eq!(there.status, 200, "{}", there.text);
    assert_eq!(there.body["output"], r.body["output"]);

    // Memory: the rejoined node holds the same loaded models as a node that
    // loaded them from its own uploads, and not the files on top of them.
    let rss =
        |i: usize| boat_tests::boat::cluster::rss_bytes(sb.cluster.pid(i).unwrap()).expect("VmRSS of a running node");
    // Both other nodes loaded the models from their own uploads; how much
    // of the upload buffers their allocators keep varies by tens of MB from
    // run to run, so the larger of the two is the reference.
    let (rejoined, reference) = (rss(wiped), rss(others(leader)[1]).max(rss(leader)));
    eprintln!(
        "RSS: rejoined node {} MB, nodes that applied the uploads up to {} MB, models {} MB",
        rejoined >> 20,
        reference >> 20,
        total >> 20
    );
    assert!(rejoined < reference + total / 2, "rejoined {rejoined} B against {reference} B with {total} B of models");
}
