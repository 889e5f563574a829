//! The serving engine against a real three-node cluster: replicated model
//! uploads, the Open Inference Protocol, known outputs of real sklearn
//! models, bad input rejected before commit, atomic rollout under load,
//! restarted and reset nodes, async results across failover, batching,
//! back-pressure, metrics and divergence detection.

use std::time::Duration;

use boat::client::Method;
use boat_raft::sha256_hex;
use boat_tests::{model_path, others, Sandbox};
use serde_json::{json, Value};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(model_path("expected.json")).unwrap()).unwrap()
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(p), Some(q)) => (p - q).abs() <= 1e-5,
            _ => a == b,
        },
    }
}

fn v2_request(rows: &Value) -> Value {
    let rows = rows.as_array().unwrap();
    let flat: Vec<Value> = rows.iter().flat_map(|r| r.as_array().unwrap().clone()).collect();
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 4], "data": flat}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_models_serve_known_outputs_on_every_replica() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let c = sb.client();
    let url = sb.url(leader);

    // Writes need the right token.
    let bytes = std::fs::read(model_path("mlp.onnx")).unwrap();
    let r = c.upload_model(&url, "mlp", bytes.clone(), None).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = c.upload_model(&url, "mlp", bytes.clone(), Some("wrong")).await.unwrap();
    assert_eq!(r.status, 401, "an invalid token is no token: {}", r.text);
    assert!(r.body["error"].is_string());

    let up = sb.upload(leader, "mlp", "mlp.onnx").await.unwrap();
    assert_eq!(up.status, 201, "{}", up.text);
    assert_eq!(up.body["name"], "mlp");
    assert_eq!(up.body["version"], 1);
    assert_eq!(up.body["sha256"], sha256_hex(&bytes));
    assert_eq!(up.body["inputs"][0]["name"], "input");
    assert_eq!(up.body["inputs"][0]["shape"], json!([-1, 4]));
    let up = sb.upload(leader, "iris", "iris_logreg.onnx").await.unwrap();
    assert_eq!(up.status, 201, "{}", up.text);

    // A follower redirects uploads to the leader.
    let f = others(leader)[0];
    let r = c.upload_model(&sb.url(f), "mlp", bytes.clone(), Some(&sb.token())).await.unwrap();
    assert_eq!(r.status, 307, "{}", r.text);

    let exp = expected();
    // Open Inference Protocol, MLP, several rows in one request.
    let r = c.post_json(&url, "/v2/models/mlp/infer", &v2_request(&exp["inputs"])).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["model_name"], "mlp");
    assert_eq!(r.body["model_version"], "1");
    let outputs = r.body["outputs"].as_array().unwrap();
    let probs = outputs.iter().find(|o| o["name"] == "probabilities").expect("probabilities output");
    assert_eq!(probs["datatype"], "FP32");
    assert_eq!(probs["shape"], json!([6, 3]));
    let want: Vec<Value> =
        exp["mlp"]["probabilities"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().clone()).collect();
    assert!(close(&probs["data"], &Value::Array(want)), "{probs}");
    let labels = outputs.iter().find(|o| o["name"] == "label").unwrap();
    assert_eq!(labels["data"], exp["mlp"]["label"]);

    // Boat form, sklearn classifier with ZipMap: a sequence of maps.
    for (row, input) in exp["inputs"].as_array().unwrap().iter().enumerate() {
        let r = c.predict(&url, &json!({"model": "iris", "input": input}), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["output"]["output_label"], json!([exp["iris_logreg"]["output_label"][row]]));
        assert!(
            close(&r.body["output"]["output_probability"], &json!([exp["iris_logreg"]["output_probability"][row]])),
            "{}",
            r.text
        );
    }
    // Only the outputs asked for.
    let mut req = v2_request(&json!([exp["inputs"][0]]));
    req["outputs"] = json!([{"name": "output_label"}]);
    let r = c.post_json(&url, "/v2/models/iris/infer", &req).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["outputs"][0]["data"], json!([0]));

    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");

    // Metadata, readiness and the listing, on a follower too.
    let m = c.get(&sb.url(f), "/v2/models/mlp").await.unwrap();
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["inputs"][0]["shape"], json!([-1, 4]));
    assert_eq!(m.body["versions"], json!(["1"]));
    assert_eq!(c.get(&sb.url(f), "/v2/models/mlp/versions/1/ready").await.unwrap().status, 200);
    assert_eq!(c.get(&sb.url(f), "/v2/health/live").await.unwrap().status, 200);
    assert_eq!(c.get(&sb.url(f), "/v2/health/ready").await.unwrap().status, 200);
    let list = c.get(&sb.url(f), "/api/models").await.unwrap();
    let models = list.body["models"].as_array().unwrap();
    let mlp = models.iter().find(|m| m["name"] == "mlp").expect("mlp listed");
    assert_eq!(mlp["default_version"], 1);
    assert_eq!(mlp["versions"][0]["sha256"], sha256_hex(&bytes));
    assert_eq!(mlp["versions"][0]["size_bytes"], bytes.len());
    assert_eq!(mlp["versions"][0]["loaded"], true);
    assert!(mlp["versions"][0]["uploaded_at_ms"].as_u64().unwrap() > 0);
    assert!(models.iter().any(|m| m["name"] == "echo"), "the built-in echo model is listed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_commit() {
    let sb = Sandbox::start(3, &["--max-elements", "1000", "--checkpoint-ms", "600000"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let c = sb.client();
    let url = sb.url(leader);
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    let fixed = sb.upload(leader, "fixed", "fixed_batch.onnx").await.unwrap();
    assert_eq!(fixed.status, 201, "{}", fixed.text);

    // An invalid ONNX file is refused and never committed.
    let before = sb.status(leader).await.unwrap();
    let r = c.upload_model(&url, "junk", b"not an onnx file".to_vec(), Some(&sb.token())).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("invalid model"), "{}", r.text);
    let r = c.post_raw(&url, "/api/models/bad name", "application/octet-stream", vec![1]).await.unwrap();
    assert!(r.status.is_client_error(), "{}", r.text);
    let list = c.get(&url, "/api/models").await.unwrap();
    assert!(!list.text.contains("junk"));

    let tensor = |datatype: &str, shape: Value, data: Value| json!({"inputs": [{"name": "input", "datatype": datatype, "shape": shape, "data": data}]});
    let four = json!([5.1, 3.5, 1.4, 0.2]);
    let cases: Vec<(&str, &str, Value, u16)> = vec![
        ("wrong datatype", "/v2/models/mlp/infer", tensor("INT64", json!([1, 4]), json!([5, 3, 1, 0])), 422),
        (
            "shape does not match data",
            "/v2/models/mlp/infer",
            tensor("FP32", json!([1, 4]), json!([1.0, 2.0, 3.0])),
            422,
        ),
        (
            "wrong trailing dimension",
            "/v2/models/mlp/infer",
            tensor("FP32", json!([1, 3]), json!([1.0, 2.0, 3.0])),
            422,
        ),
        (
            "unknown input name",
            "/v2/models/mlp/infer",
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": four}]}),
            422,
        ),
        ("unknown datatype", "/v2/models/mlp/infer", tensor("FP128", json!([1, 4]), four.clone()), 422),
        ("value out of range", "/v2/models/mlp/infer", tensor("FP32", json!([1, 4]), json!([1e300, 0, 0, 0])), 422),
        (
            "unknown output",
            "/v2/models/mlp/infer",
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": four}], "outputs": [{"name": "nope"}]}),
            422,
        ),
        ("oversized tensor", "/v2/models/mlp/infer", tensor("FP32", json!([500, 4]), json!(vec![0.5; 2000])), 422),
        ("fixed batch dimension", "/v2/models/fixed/infer", tensor("FP32", json!([2, 4]), json!(vec![0.5; 8])), 422),
        ("unknown model", "/v2/models/nope/infer", tensor("FP32", json!([1, 4]), four.clone()), 404),
        ("unknown version", "/v2/models/mlp/versions/7/infer", tensor("FP32", json!([1, 4]), four.clone()), 404),
        ("not an inference request", "/v2/models/mlp/infer", json!([1, 2, 3]), 422),
    ];
    for (what, path, body, want) in cases {
        let r = c.post_json(&url, path, &body).await.unwrap();
        assert_eq!(r.status.as_u16(), want, "{what}: {}", r.text);
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {}", r.text);
    }
    let boat_cases = [
        (json!({"model": "mlp", "input": "a string"}), 422),
        (json!({"model": "mlp", "input": [1.0, 2.0]}), 422),
        (json!({"model": "mlp", "input": [[1.0, 2.0, 3.0, 4.0], [1.0]]}), 422),
        (json!({"model": "mlp", "input": [1, 2, 3, 4], "version": 9}), 404),
    ];
    for (body, want) in boat_cases {
        let r = c.predict(&url, &body, None).await.unwrap();
        assert_eq!(r.status.as_u16(), want, "{body}: {}", r.text);
        assert!(r.body["error"].is_string(), "{}", r.text);
    }
    let after = sb.status(leader).await.unwrap();
    assert_eq!(after.last_log_index, before.last_log_index, "nothing was committed for bad requests");
    assert_eq!(after.state_digest, before.state_digest);

    let ok = c.post_json(&url, "/v2/models/mlp/infer", &tensor("FP32", json!([1, 4]), four)).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_takes_over_at_its_index_under_load() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let url = sb.url(leader);
    assert_eq!(sb.upload(leader, "m", "mlp.onnx").await.unwrap().status, 201);

    let load = |worker: usize| {
        let (c, url) = (sb.client().clone(), url.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0..60 {
                let body = json!({"model": "m", "input": [5.1, 3.5, 1.4, 0.2], "id": format!("w{worker}-{n}")});
                let r = c.predict(&url, &body, None).await.unwrap();
                assert_eq!(r.status, 200, "{}", r.text);
                seen.push(r.body);
            }
            seen
        })
    };
    let workers: Vec<_> = (0..4).map(load).collect();
    // Let some requests land on version 1 first.
    sb.wait_for_status(leader, "predictions under way", |s| s.predictions_run >= 20).await.unwrap();
    let up = sb.upload(leader, "m", "iris_logreg.onnx").await.unwrap();
    assert_eq!(up.status, 201, "{}", up.text);
    assert_eq!(up.body["version"], 2);
    let switch = up.body["index"].as_u64().unwrap();

    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let (mut v1, mut v2) = (0, 0);
    for a in &answers {
        let index = a["index"].as_u64().unwrap();
        let version = a["version"].as_u64().unwrap();
        if index < switch {
            assert_eq!(version, 1, "entry {index} before the upload at {switch} ran {a}");
            assert!(a["output"].get("probabilities").is_some(), "{a}");
            v1 += 1;
        } else {
            assert!(index > switch);
            assert_eq!(version, 2, "entry {index} after the upload at {switch} ran {a}");
            assert!(a["output"].get("output_probability").is_some(), "{a}");
            v2 += 1;
        }
    }
    assert!(v1 > 0 && v2 > 0, "the load straddled the upload ({v1} before, {v2} after)");

    // Every replica recorded the same version for the same request.
    sb.wait_for_convergence().await.unwrap();
    for a in answers.iter().step_by(17) {
        let id = a["id"].as_str().unwrap();
        for i in 0..3 {
            let r = sb.client().get(&sb.url(i), &format!("/predictions/{id}")).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.body["version"], a["version"], "node {i}, request {id}");
            assert_eq!(r.body["index"], a["index"]);
        }
    }

    // Roll back, then delete the newer version; the default cannot go.
    let token = sb.token();
    let c = sb.client();
    let r = c
        .send_json(reqwest_post(), &url, "/api/models/m/default", Some(&json!({"version": 1})), Some(&token))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let p = c.predict(&url, &json!({"model": "m", "input": [5.1, 3.5, 1.4, 0.2]}), None).await.unwrap();
    assert_eq!(p.body["version"], 1, "{}", p.text);
    let r = c.send_json(reqwest_delete(), &url, "/api/models/m/versions/1", None, Some(&token)).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    let r = c
        .send_json(reqwest_post(), &url, "/api/models/m/default", Some(&json!({"version": 99})), Some(&token))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    let r = c.send_json(reqwest_delete(), &url, "/api/models/nope/versions/1", None, Some(&token)).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    let r =
        c.send_json(reqwest_post(), &url, "/api/models/m/default", Some(&json!({"version": 1})), None).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = c.send_json(reqwest_delete(), &url, "/api/models/m/versions/2", None, Some(&token)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let p = c.predict(&url, &json!({"model": "m", "input": [5.1, 3.5, 1.4, 0.2], "version": 2}), None).await.unwrap();
    assert_eq!(p.status, 404, "{}", p.text);
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
}

fn reqwest_post() -> boat_tests::boat::client::Method {
    boat_tests::boat::client::Method::POST
}

fn reqwest_delete() -> boat_tests::boat::client::Method {
    boat_tests::boat::client::Method::DELETE
}

#[tokio::test(flavor = "multi_thread")]
async fn restarted_and_reset_nodes_serve_the_same_models() {
    let mut sb = Sandbox::start(3, &["--snapshot-every", "10", "--keep-after-snapshot", "2"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    assert_eq!(sb.upload(leader, "iris", "iris_logreg.onnx").await.unwrap().status, 201);
    assert_eq!(sb.upload(leader, "iris", "mlp.onnx").await.unwrap().status, 201);
    let [restarted, wiped] = others(leader)[..] else { unreachable!() };
    for n in 0..25 {
        let r = sb
            .predict_anywhere(&json!({"model": "iris", "input": [6.0, 3.0, 4.0, 1.0 + n as f64 / 10.0]}), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let c = sb.client().clone();
    let urls = sb.urls();
    let listing = |i: usize| {
        let (c, url) = (c.clone(), urls[i].clone());
        async move { c.get(&url, "/api/models").await.unwrap().body }
    };
    let reference = listing(leader).await;

    sb.rebuild(restarted, wiped).await.unwrap();
    sb.wait_for_convergence().await.unwrap();
    for i in [restarted, wiped] {
        assert_eq!(listing(i).await, reference, "node {i} lists the same models, versions and checksums");
    }
    // New predictions run on every node, including the rebuilt ones.
    for n in 0..5 {
        let r = sb
            .predict_anywhere(&json!({"model": "mlp", "input": [5.0, 3.0, 1.5, 0.1 * n as f64]}), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn async_results_survive_a_failover() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let c = sb.client().clone();
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    let r = c
        .post_json(&sb.url(leader), "/predict?async=true", &json!({"model": "mlp", "input": [5.1, 3.5, 1.4, 0.2]}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["index"].as_u64().unwrap() > 0);
    assert_eq!(r.header("location"), Some(format!("/predictions/{id}").as_str()));
    let v2 = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [7.0, 3.2, 4.7, 1.4]}], "parameters": {"async": true}});
    let r2 = c.post_json(&sb.url(leader), "/v2/models/mlp/infer", &v2).await.unwrap();
    assert_eq!(r2.status, 202, "{}", r2.text);
    let id2 = r2.body["id"].as_str().unwrap().to_string();

    sb.cluster.kill_node(leader).await.unwrap();
    let survivor = others(leader)[0];
    sb.wait_for_status(survivor, "a new leader", |s| s.leader_id.is_some_and(|l| l != leader as u64)).await.unwrap();
    let exp = expected();
    for (id, row) in [(id, 0), (id2, 2)] {
        let deadline = std::time::Instant::now() + boat_tests::PATIENCE;
        let done = loop {
            let r = c.get(&sb.url(survivor), &format!("/predictions/{id}")).await.unwrap();
            if r.status == 200 {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "no result for {id}: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done.body["status"], "done", "{}", done.text);
        assert_eq!(done.body["output"]["label"], json!([exp["mlp"]["label"][row]]));
        assert!(
            close(&done.body["output"]["probabilities"], &json!([exp["mlp"]["probabilities"][row]])),
            "{}",
            done.text
        );
    }
    let unknown = c.get(&sb.url(survivor), "/predictions/never-seen").await.unwrap();
    assert!(matches!(unknown.status.as_u16(), 404 | 307), "{}", unknown.text);
    sb.restart(leader).unwrap();
    sb.wait_for_convergence().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_entries_and_runs_and_metrics_show_it() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let url = sb.url(leader);
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    let exp = expected();
    let mut tasks = Vec::new();
    for n in 0..96usize {
        let (c, url, input) = (sb.client().clone(), url.clone(), exp["inputs"][n % 6].clone());
        tasks.push(tokio::spawn(async move {
            (n % 6, c.predict(&url, &json!({"model": "mlp", "input": input}), None).await.unwrap())
        }));
    }
    let mut indexes = std::collections::HashSet::new();
    for t in tasks {
        let (row, r) = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(close(&r.body["output"]["probabilities"], &json!([exp["mlp"]["probabilities"][row]])), "{}", r.text);
        indexes.insert(r.body["index"].as_u64().unwrap());
    }
    assert!(indexes.len() < 96, "96 concurrent requests were packed into fewer entries ({})", indexes.len());
    let m = sb.client().get(&url, "/metrics").await.unwrap();
    assert_eq!(m.status, 200);
    for name in [
        "boat_requests_total{model=\"mlp\",outcome=\"ok\"} 96",
        "boat_entry_requests_count",
        "boat_batch_size_bucket{model=\"mlp\",le=\"64\"}",
        "# TYPE boat_commit_seconds histogram",
        "boat_queue_seconds",
        "boat_commit_seconds",
        "boat_inference_seconds",
        "boat_raft_term",
        "boat_raft_commit_index",
        "boat_raft_leader_changes_total",
    ] {
        assert!(m.text.contains(name), "metrics lack {name}:\n{}", m.text);
    }
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429() {
    let sb = Sandbox::start(3, &["--queue-capacity", "2", "--max-in-flight", "1"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    // Slow commits down so that requests pile up. (An append has one
    // heartbeat interval to complete, so the delay stays well below it.)
    sb.control(leader, json!({"cmd": "delay", "ms": 30})).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..30 {
        let (c, url) = (sb.client().clone(), sb.url(leader));
        tasks.push(tokio::spawn(
            async move { c.predict(&url, &json!({"input": format!("q{n}")}), None).await.unwrap() },
        ));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            429 => {
                assert!(r.body["error"].is_string(), "{}", r.text);
                assert_eq!(r.header("retry-after"), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} served, {refused} refused");
    sb.control(leader, json!({"cmd": "heal"})).await.unwrap();
    assert_eq!(sb.predict(leader, "after", None).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_computes_differently_is_reported() {
    let sb = Sandbox::start(3, &["--checkpoint-ms", "100"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let odd = others(leader)[0];
    let healthy = others(leader)[1];
    assert_eq!(sb.predict(leader, "one", None).await.unwrap().status, 200);
    sb.wait_for_convergence().await.unwrap();
    let r = sb.control(odd, json!({"cmd": "diverge"})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sb.predict(leader, "two", None).await.unwrap().status, 200);
    let s = sb.wait_for_status(odd, "divergence reported", |s| s.divergence.is_some()).await.unwrap();
    let d = s.divergence.unwrap();
    assert_ne!(d.local_digest, d.leader_digest);
    let ready = sb.client().get(&sb.url(odd), "/v2/health/ready").await.unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(sb.client().get(&sb.url(odd), "/metrics").await.unwrap().text.contains("boat_divergence_total 1"));
    sb.wait_for_log(odd, "differs from the leader").await.unwrap();
    assert!(sb.status(healthy).await.unwrap().divergence.is_none());
    assert!(sb.status(leader).await.unwrap().divergence.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_of_several_megabytes_travels_in_chunks() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let width = 200_000; // 4 x 200k floats: about 3.2 MB, four chunks.
    let bytes = boat_tests::onnx_builder::matmul_model(width, 7);
    assert!(bytes.len() > 3 * 1024 * 1024);
    let before = sb.status(leader).await.unwrap().last_log_index;
    let r = sb.client().upload_model(&sb.url(leader), "wide", bytes.clone(), Some(&sb.token())).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["sha256"], sha256_hex(&bytes));
    assert_eq!(r.body["outputs"][0]["shape"], json!([-1, width]));
    let index = r.body["index"].as_u64().unwrap();
    assert!(index >= before + 5, "four chunk entries and the completing entry: {before} -> {index}");

    let p = sb.predict(leader, "ignored", None).await.unwrap();
    assert_eq!(p.status, 200);
    let req = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 0.0, 0.0, 0.0]}],
                     "outputs": [{"name": "output"}]});
    let out = sb.client().post_json(&sb.url(leader), "/v2/models/wide/infer", &req).await.unwrap();
    assert_eq!(out.status, 200, "{}", &out.text[..out.text.len().min(300)]);
    assert_eq!(out.body["outputs"][0]["shape"], json!([1, width]));
    let converged = sb.wait_for_convergence().await.unwrap();
    assert!(converged.windows(2).all(|w| w[0].state_digest == w[1].state_digest), "{converged:#?}");
    for i in 0..3 {
        let m = sb.client().get(&sb.url(i), "/api/models/wide").await.unwrap();
        assert_eq!(m.body["versions"][0]["loaded"], true, "node {i}: {}", m.text);
        assert_eq!(m.body["versions"][0]["size_bytes"], bytes.len());
    }
}

/// The benchmarks' reference: the same API, the model run inline, nothing
/// in the log. Its answers are the cluster's answers.
#[tokio::test(flavor = "multi_thread")]
async fn the_unreplicated_reference_answers_like_the_cluster_without_the_log() {
    // No checkpoints, so that the log holds only what the test writes.
    let sb = Sandbox::start(1, &["--unreplicated", "--checkpoint-ms", "600000"]).unwrap();
    sb.wait_for_leader().await.unwrap();
    let up = sb.upload(0, "iris", "iris_logreg.onnx").await.unwrap();
    assert_eq!(up.status, 201, "models still arrive through the log: {}", up.text);
    let before = sb.status(0).await.unwrap();
    let exp = expected();
    let c = sb.client();
    let url = sb.url(0);
    for (i, row) in exp["inputs"].as_array().unwrap().iter().enumerate() {
        let r = c.predict(&url, &json!({"model": "iris", "input": [row]}), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["output"]["output_label"], json!([exp["iris_logreg"]["output_label"][i]]), "{}", r.text);
        assert_eq!((r.body["index"].as_u64(), r.body["term"].as_u64()), (Some(0), Some(0)), "not in the log");
        // Over the Open Inference Protocol, with only the label asked for.
        let mut v2 = v2_request(&json!([row]));
        v2["outputs"] = json!([{"name": "output_label"}]);
        let r = c.send_json(Method::POST, &url, "/v2/models/iris/infer", Some(&v2), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["outputs"].as_array().map(Vec::len), Some(1), "{}", r.text);
        assert_eq!(r.body["outputs"][0]["data"], json!([exp["iris_logreg"]["output_label"][i]]), "{}", r.text);
    }
    // Bad input is refused as on the cluster; apps and async requests need the log.
    let r = c.predict(&url, &json!({"model": "iris", "input": [[1.0, 2.0]]}), None).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    let body = json!({"model": "iris", "input": [[1.0, 2.0, 3.0, 4.0]]});
    let r = c.send_json(Method::POST, &url, "/predict?async=true", Some(&body), None).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("need the log"), "{}", r.text);
    let app = json!({"name": "flowers", "members": [{"model": "iris"}]});
    let r = sb.api(0, Method::POST, "/api/apps", Some(app), &sb.token()).await;
    assert_eq!(r.status, 201, "apps are still created through the log: {}", r.text);
    let input = json!({"input": [[1.0, 2.0, 3.0, 4.0]]});
    let r = c.send_json(Method::POST, &url, "/apps/flowers/predict", Some(&input), None).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("apps are not served"), "{}", r.text);
    let after = sb.status(0).await.unwrap();
    assert_eq!(after.last_log_index - before.last_log_index, 1, "only the app entered the log");
    assert_eq!(after.predictions_run, before.predictions_run, "the replicated state ran none");
}
