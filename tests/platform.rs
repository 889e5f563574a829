//! The admin platform against real clusters, over REST and gRPC: roles on
//! every route group, logins, expiry, revocation and bans, dataset
//! validation and the shipped datasets, app ensembles checked against
//! values computed independently, a member switch at one index under load,
//! a linearizable read after failover, and no secret in any node log.

use std::time::{Duration, Instant};

use boat::client::{Method, Reply};
use boat_admin::admin_grpc::pb;
use boat_admin::admin_grpc::pb::admin_client::AdminClient;
use boat_tests::{model_path, others, workspace_root, Sandbox};
use serde_json::{json, Value};

const PASSWORD: &str = "correct-horse-battery";

async fn api(sb: &Sandbox, node: usize, method: Method, path: &str, body: Option<Value>, token: Option<&str>) -> Reply {
    sb.client().send_json(method, &sb.url(node), path, body.as_ref(), token).await.unwrap()
}

async fn csv(sb: &Sandbox, node: usize, path: &str, bytes: &[u8], token: Option<&str>) -> Reply {
    sb.client().send_raw(Method::POST, &sb.url(node), path, "text/csv", bytes.to_vec(), token).await.unwrap()
}

/// Creates a user (as the superadmin) and logs them in; returns the token.
async fn user_with_role(sb: &Sandbox, leader: usize, email: &str, role: &str) -> String {
    let admin = sb.token();
    let body = json!({"email": email, "password": PASSWORD, "role": role});
    let r = api(sb, leader, Method::POST, "/api/users", Some(body), Some(&admin)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    login(sb, leader, email, PASSWORD).await
}

async fn login(sb: &Sandbox, node: usize, email: &str, password: &str) -> String {
    let r = api(sb, node, Method::POST, "/api/tokens", Some(json!({"email": email, "password": password})), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["token"].as_str().unwrap().to_string()
}

/// No node's log holds any of `secrets`.
fn assert_logs_hold_no(sb: &Sandbox, secrets: &[&str]) {
    for i in 0..sb.cluster.len() {
        let log = sb.log(i);
        assert!(!log.is_empty(), "node {i} has a log");
        for s in secrets {
            assert!(!log.contains(s), "node {i}'s log contains a secret ({}...)", &s[..6.min(s.len())]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_group_allows_its_roles_and_refuses_the_rest() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let admin = sb.token();
    let roles = ["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER", "APP_DEVELOPER", "APP_USER"];
    let mut tokens = vec![admin.clone()];
    for role in &roles[1..] {
        tokens.push(user_with_role(&sb, leader, &format!("{}@example.org", role.to_lowercase()), role).await);
    }
    // (group, method, path, body, allowed roles)
    type Group<'a> = (&'a str, Method, String, Option<Value>, &'a [&'a str]);
    let groups: Vec<Group> = vec![
        ("whoami", Method::GET, "/api/users/me".into(), None, &roles),
        ("users read", Method::GET, "/api/users".into(), None, &["SUPERADMIN", "ADMIN"]),
        (
            "models write",
            Method::POST,
            "/api/models/echo/default".into(),
            Some(json!({"version": 1})),
            &["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"],
        ),
        ("datasets read", Method::GET, "/api/datasets".into(), None, &["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]),
        ("apps read", Method::GET, "/api/apps".into(), None, &["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]),
    ];
    for (group, method, path, body, allowed) in &groups {
        for bad in [None, Some("boat_not-a-token")] {
            let r = api(&sb, leader, method.clone(), path, body.clone(), bad).await;
            assert_eq!(r.status, 401, "{group} with {bad:?}: {}", r.text);
            assert!(r.body["error"].is_string());
        }
        for (role, token) in roles.iter().zip(&tokens) {
            let r = api(&sb, leader, method.clone(), path, body.clone(), Some(token)).await;
            let want_ok = allowed.contains(role);
            assert_eq!(r.status.is_success(), want_ok, "{group} as {role}: {} {}", r.status, r.text);
            if !want_ok {
                assert_eq!(r.status, 403, "{group} as {role}: {}", r.text);
            }
        }
    }
    // Writes of each group, one name per role so that the allowed ones succeed.
    for (role, token) in roles.iter().zip(&tokens) {
        let lower = role.to_lowercase().replace('_', "-");
        let app_writer = ["SUPERADMIN", "ADMIN", "APP_DEVELOPER"].contains(role);
        let r = csv(&sb, leader, &format!("/api/datasets/d-{lower}"), b"x,y\n1,0\n2,1\n", Some(token)).await;
        assert_eq!(r.status.as_u16(), if app_writer { 201 } else { 403 }, "dataset upload as {role}: {}", r.text);
        let app = json!({"name": format!("a-{lower}"), "members": [{"model": "echo"}]});
        let r = api(&sb, leader, Method::POST, "/api/apps", Some(app), Some(token)).await;
        assert_eq!(r.status.as_u16(), if app_writer { 201 } else { 403 }, "app create as {role}: {}", r.text);
        let user = json!({"email": format!("new-{lower}@example.org"), "password": PASSWORD, "role": "APP_USER"});
        let r = api(&sb, leader, Method::POST, "/api/users", Some(user), Some(token)).await;
        let user_admin = ["SUPERADMIN", "ADMIN"].contains(role);
        assert_eq!(r.status.as_u16(), if user_admin { 201 } else { 403 }, "user create as {role}: {}", r.text);
    }
    // Only the superadmin makes or bans admins; nobody bans themselves.
    let (sa, adm) = (&tokens[0], &tokens[1]);
    let new_admin = json!({"email": "admin2@example.org", "password": PASSWORD, "role": "ADMIN"});
    assert_eq!(api(&sb, leader, Method::POST, "/api/users", Some(new_admin.clone()), Some(adm)).await.status, 403);
    assert_eq!(api(&sb, leader, Method::POST, "/api/users", Some(new_admin), Some(sa)).await.status, 201);
    assert_eq!(api(&sb, leader, Method::POST, "/api/users/admin2@example.org/ban", None, Some(adm)).await.status, 403);
    assert_eq!(api(&sb, leader, Method::POST, "/api/users/admin@example.org/ban", None, Some(adm)).await.status, 409);
    assert_eq!(api(&sb, leader, Method::POST, "/api/users/admin2@example.org/ban", None, Some(sa)).await.status, 200);

    // Non-admins see only what they own; admins see everything.
    let dev = &tokens[3];
    let other_dev = user_with_role(&sb, leader, "dev2@example.org", "APP_DEVELOPER").await;
    let mine = api(&sb, leader, Method::GET, "/api/datasets", None, Some(dev)).await;
    let names: Vec<&str> =
        mine.body["datasets"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["d-app-developer"]);
    let theirs = api(&sb, leader, Method::GET, "/api/datasets", None, Some(&other_dev)).await;
    assert!(theirs.body["datasets"].as_array().unwrap().is_empty(), "{}", theirs.text);
    assert_eq!(
        api(&sb, leader, Method::GET, "/api/datasets/d-app-developer", None, Some(&other_dev)).await.status,
        404
    );
    assert_eq!(api(&sb, leader, Method::DELETE, "/api/apps/a-app-developer", None, Some(&other_dev)).await.status, 404);
    let all = api(&sb, leader, Method::GET, "/api/datasets", None, Some(adm)).await;
    assert_eq!(all.body["datasets"].as_array().unwrap().len(), 3, "{}", all.text);

    // The OpenAPI document lists every route group with its roles.
    let doc = api(&sb, others(leader)[0], Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    for path in [
        "/api/tokens",
        "/api/users",
        "/api/datasets/{name}",
        "/api/apps/{name}/members",
        "/apps/{app}/predict",
        "/api/models/{name}",
        "/predict",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(doc.body["paths"]["/api/users"]["get"]["x-required-roles"], json!(["SUPERADMIN", "ADMIN"]));
    // Every operation declares its roles (an empty list: open to anyone).
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["x-required-roles"].is_array(), "{method} {path} declares its roles");
        }
    }
    for path in
        ["/v2/models/{name}/infer", "/status", "/control", "/predictions/{id}", "/metrics", "/api/cluster/nodes"]
    {
        assert!(doc.body["paths"][path].is_object(), "{path} is documented");
    }

    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.push(PASSWORD);
    assert_logs_hold_no(&sb, &secrets);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_expire_are_revoked_and_die_with_a_ban() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let follower = others(leader)[0];
    let token = user_with_role(&sb, leader, "u@example.org", "APP_USER").await;
    // A token issued on the leader works on a follower at once (the read
    // barrier brings the follower up to date first).
    let me = api(&sb, follower, Method::GET, "/api/users/me", None, Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.body["email"].as_str(), me.body["role"].as_str()), (Some("u@example.org"), Some("APP_USER")));
    assert!(me.body.get("password_hash").is_none());

    // A login on a follower is redirected to the leader.
    let r = api(
        &sb,
        follower,
        Method::POST,
        "/api/tokens",
        Some(json!({"email": "u@example.org", "password": PASSWORD})),
        None,
    )
    .await;
    assert_eq!(r.status, 307, "{}", r.text);
    let wrong = api(
        &sb,
        leader,
        Method::POST,
        "/api/tokens",
        Some(json!({"email": "u@example.org", "password": "nope"})),
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let unknown = api(
        &sb,
        leader,
        Method::POST,
        "/api/tokens",
        Some(json!({"email": "x@example.org", "password": "nope"})),
        None,
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body["error"], unknown.body["error"], "the answer does not say which emails exist");

    // Expiry.
    let r = api(
        &sb,
        leader,
        Method::POST,
        "/api/tokens",
        Some(json!({"email": "u@example.org", "password": PASSWORD, "ttl_seconds": 1})),
        None,
    )
    .await;
    let short = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(api(&sb, leader, Method::GET, "/api/users/me", None, Some(&short)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(api(&sb, leader, Method::GET, "/api/users/me", None, Some(&short)).await.status, 401, "expired");

    // Revocation (logout), seen by every node.
    let other = login(&sb, leader, "u@example.org", PASSWORD).await;
    assert_eq!(api(&sb, leader, Method::DELETE, "/api/tokens/current", None, Some(&other)).await.status, 200);
    for i in 0..3 {
        assert_eq!(api(&sb, i, Method::GET, "/api/users/me", None, Some(&other)).await.status, 401, "node {i}");
    }

    // A ban kills live tokens and refuses logins; lifting it lets the user back.
    let admin = sb.token();
    assert_eq!(api(&sb, leader, Method::POST, "/api/users/u@example.org/ban", None, Some(&admin)).await.status, 200);
    assert_eq!(api(&sb, follower, Method::GET, "/api/users/me", None, Some(&token)).await.status, 401);
    let r = api(
        &sb,
        leader,
        Method::POST,
        "/api/tokens",
        Some(json!({"email": "u@example.org", "password": PASSWORD})),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(api(&sb, leader, Method::POST, "/api/users/u@example.org/unban", None, Some(&admin)).await.status, 200);
    let again = login(&sb, leader, "u@example.org", PASSWORD).await;
    assert_eq!(api(&sb, leader, Method::DELETE, "/api/users/u@example.org", None, Some(&admin)).await.status, 200);
    assert_eq!(api(&sb, leader, Method::GET, "/api/users/me", None, Some(&again)).await.status, 401, "deleted");

    // The bootstrap superadmin logs in with the admin token as its password.
    let sa = login(&sb, leader, "superadmin", &admin).await;
    assert_eq!(api(&sb, leader, Method::GET, "/api/users", None, Some(&sa)).await.status, 200);
    assert_logs_hold_no(&sb, &[&token, &short, &other, &again, &sa, &admin, PASSWORD]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_datasets_are_refused_and_the_shipped_ones_upload() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let dev = user_with_role(&sb, leader, "dev@example.org", "APP_DEVELOPER").await;
    let cases: [(&str, &[u8], &str); 6] = [
        ("", b"", "empty"),
        ("", b"a,b\n1,2\n3,4,5\n", "line 3"),
        ("", b"a,b\n1,2\nx,4\n", "line 3: feature \"a\""),
        ("?target=c", b"a,b\n1,2\n", "no target column \"c\""),
        ("?task=regression", b"a,b\n1,2\n3,yes\n", "line 3"),
        ("", b"a,b\n", "no rows"),
    ];
    for (query, bytes, want) in cases {
        let r = csv(&sb, leader, &format!("/api/datasets/bad{query}"), bytes, Some(&dev)).await;
        assert_eq!(r.status, 422, "{want}: {}", r.text);
        assert!(r.body["error"].as_str().unwrap().contains(want), "{want}: {}", r.text);
    }
    let r = csv(&sb, leader, "/api/datasets/bad?task=clustering", b"a,b\n1,2\n", Some(&dev)).await;
    assert_eq!(r.status, 422);
    let listed = api(&sb, leader, Method::GET, "/api/datasets", None, Some(&dev)).await;
    assert!(listed.body["datasets"].as_array().unwrap().is_empty(), "nothing committed: {}", listed.text);

    // (file, task, rows, features, classes)
    let shipped = [
        ("iris", "classification", 150, 4, 3),
        ("wine", "classification", 178, 13, 3),
        ("breast_cancer", "classification", 569, 30, 2),
        ("digits", "classification", 1797, 64, 10),
        ("diabetes", "regression", 442, 10, 0),
    ];
    for (name, task, rows, features, classes) in shipped {
        let bytes = std::fs::read(workspace_root().join(format!("datasets/{name}.csv"))).unwrap();
        let r = csv(&sb, leader, &format!("/api/datasets/{name}?task={task}"), &bytes, Some(&dev)).await;
        assert_eq!(r.status, 201, "{name}: {}", r.text);
        assert_eq!(r.body["rows"], rows, "{name}");
        assert_eq!(r.body["columns"].as_array().unwrap().len(), features + 1, "{name}");
        assert_eq!(r.body["target"], "target");
        assert_eq!(r.body["class_counts"].as_object().unwrap().len(), classes, "{name}");
        assert_eq!(r.body["size_bytes"], bytes.len());
    }
    let follower = others(leader)[1];
    let iris = api(&sb, follower, Method::GET, "/api/datasets/iris", None, Some(&dev)).await;
    assert_eq!(iris.body["class_counts"], json!({"0": 50, "1": 50, "2": 50}));
    let r = csv(&sb, leader, "/api/datasets/iris", b"a,b\n1,2\n", Some(&dev)).await;
    assert_eq!(r.status, 409, "a name is taken once: {}", r.text);

    // Over gRPC: a streamed upload, through a follower that names the leader.
    let mut c = AdminClient::connect(sb.url(follower)).await.unwrap();
    let upload = |name: &str| {
        let chunks = vec![
            pb::DatasetChunk {
                name: name.into(),
                task: "classification".into(),
                target: String::new(),
                data: b"f,label\n".to_vec(),
            },
            pb::DatasetChunk { data: b"1.5,cat\n2.5,dog\n3.5,cat\n".to_vec(), ..Default::default() },
        ];
        let mut req = tonic::Request::new(futures::stream::iter(chunks));
        req.metadata_mut().insert("authorization", format!("Bearer {dev}").parse().unwrap());
        req
    };
    let refused = c.upload_dataset(upload("pets")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    let leader_addr = refused.metadata().get("x-boat-leader").unwrap().to_str().unwrap().to_string();
    let mut c = AdminClient::connect(format!("http://{leader_addr}")).await.unwrap();
    let d = c.upload_dataset(upload("pets")).await.unwrap().into_inner();
    assert_eq!((d.rows, d.class_counts["cat"], d.columns[1].kind.as_str()), (3, 2, "categorical"));
    assert_eq!(api(&sb, leader, Method::DELETE, "/api/datasets/pets", None, Some(&dev)).await.status, 200);
    assert_eq!(api(&sb, follower, Method::GET, "/api/datasets/pets", None, Some(&dev)).await.status, 404);
    sb.wait_for_convergence().await.unwrap();
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(model_path("expected.json")).unwrap()).unwrap()
}

/// The mean of the two iris models' probabilities for row `row`, from the
/// outputs Python's onnxruntime gave (`models/expected.json`).
fn mean_probabilities(exp: &Value, row: usize) -> Vec<f64> {
    let mlp = exp["mlp"]["probabilities"][row].as_array().unwrap();
    let lr = &exp["iris_logreg"]["output_probability"][row];
    (0..3).map(|c| (mlp[c].as_f64().unwrap() + lr[c.to_string()].as_f64().unwrap()) / 2.0).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn app_ensembles_agree_with_values_computed_independently() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    assert_eq!(sb.upload(leader, "lr", "iris_logreg.onnx").await.unwrap().status, 201);
    let dev = user_with_role(&sb, leader, "dev@example.org", "APP_DEVELOPER").await;
    let create = |name: &str, rule: &str, members: Value| json!({"name": name, "rule": rule, "members": members});
    let both = json!([{"model": "mlp", "version": 1}, {"model": "lr"}]);
    for (name, rule) in [("mean", "mean_probabilities"), ("vote", "majority_vote")] {
        let r = api(&sb, leader, Method::POST, "/api/apps", Some(create(name, rule, both.clone())), Some(&dev)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["members"], json!([{"model": "mlp", "version": 1}, {"model": "lr", "version": 1}]));
    }
    let r = api(&sb, leader, Method::POST, "/api/apps", Some(create("mean", "first", both.clone())), Some(&dev)).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = api(&sb, leader, Method::POST, "/api/apps", Some(create("mlp", "first", both.clone())), Some(&dev)).await;
    assert_eq!(r.status, 409, "an app cannot take a model's name: {}", r.text);
    let r = api(&sb, leader, Method::POST, "/api/apps", Some(create("x", "median", both.clone())), Some(&dev)).await;
    assert_eq!(r.status, 422);
    let r =
        api(&sb, leader, Method::POST, "/api/apps", Some(create("x", "first", json!([{"model": "nope"}]))), Some(&dev))
            .await;
    assert_eq!(r.status, 404);

    let exp = expected();
    let rows: Vec<Value> = exp["inputs"].as_array().unwrap().clone();
    let r = api(&sb, leader, Method::POST, "/apps/mean/predict", Some(json!({"input": rows})), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["output"]["members"], json!(["mlp:1", "lr:1"]));
    for (row, got) in r.body["output"]["probabilities"].as_array().unwrap().iter().enumerate() {
        let want = mean_probabilities(&exp, row);
        for c in 0..3 {
            let g = got[c].as_f64().unwrap();
            assert!((g - want[c]).abs() < 1e-6, "row {row} class {c}: {g} vs {}", want[c]);
        }
        let best = (0..3).fold(0, |b, c| if want[c] > want[b] { c } else { b });
        assert_eq!(r.body["output"]["label"][row], best as u64, "row {row}");
    }
    // Majority vote: each row's most common label among the members' own
    // labels (ties go to the first member).
    let r = api(&sb, leader, Method::POST, "/apps/vote/predict", Some(json!({"input": rows})), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for row in 0..rows.len() {
        let (a, b) = (&exp["mlp"]["label"][row], &exp["iris_logreg"]["output_label"][row]);
        // Two members: agreement wins, and a tie goes to the first (mlp).
        let want = if a == b { b } else { a };
        assert_eq!(&r.body["output"]["label"][row], want, "row {row}");
    }

    // The same app through the Open Inference Protocol, HTTP and gRPC.
    let infer = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": rows[2]}]});
    let r = api(&sb, leader, Method::POST, "/v2/models/mean/infer", Some(infer), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let probs = r.body["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "probabilities").unwrap();
    let want = mean_probabilities(&exp, 2);
    assert!((probs["data"][1].as_f64().unwrap() - want[1]).abs() < 1e-6, "{}", r.text);
    let mut g =
        boat_admin::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient::connect(sb.url(leader))
            .await
            .unwrap();
    let input = boat_admin::grpc::pb::model_infer_request::InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![1, 4],
        contents: Some(boat_admin::grpc::pb::InferTensorContents {
            fp32_contents: rows[2].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let reply = g
        .model_infer(boat_admin::grpc::pb::ModelInferRequest {
            model_name: "vote".into(),
            inputs: vec![input],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let label = reply.outputs.iter().position(|o| o.name == "label").unwrap();
    let label = match (&reply.outputs[label].contents, reply.raw_output_contents.get(label)) {
        (Some(c), _) if !c.int64_contents.is_empty() => c.int64_contents[0],
        (_, Some(raw)) => i64::from_le_bytes(raw[..8].try_into().unwrap()),
        _ => panic!("no label in {reply:?}"),
    };
    assert_eq!(label, exp["mlp"]["label"][2].as_i64().unwrap());

    // Stopped, an app refuses; a member version in use cannot be deleted.
    let admin = sb.token();
    assert_eq!(api(&sb, leader, Method::POST, "/api/apps/vote/stop", None, Some(&dev)).await.status, 200);
    let r = api(&sb, leader, Method::POST, "/apps/vote/predict", Some(json!({"input": rows})), None).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = api(&sb, leader, Method::DELETE, "/api/models/lr/versions/1", None, Some(&admin)).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let shown = api(&sb, leader, Method::GET, "/api/apps/mean", None, Some(&dev)).await;
    assert_eq!(shown.body["stats"]["requests"], 2, "{}", shown.text);
    assert!(shown.body["stats"]["p50_ms"].as_f64().unwrap() > 0.0);
    // Replicas ran the ensembles themselves and agree.
    sb.wait_for_convergence().await.unwrap();

    // An app that requires a token.
    let app = json!({"name": "private", "members": [{"model": "mlp"}], "requires_token": true});
    assert_eq!(api(&sb, leader, Method::POST, "/api/apps", Some(app), Some(&dev)).await.status, 201);
    let body = json!({"input": [rows[0]]});
    assert_eq!(api(&sb, leader, Method::POST, "/apps/private/predict", Some(body.clone()), None).await.status, 401);
    let user = user_with_role(&sb, leader, "user@example.org", "APP_USER").await;
    assert_eq!(api(&sb, leader, Method::POST, "/apps/private/predict", Some(body), Some(&user)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_member_under_load_switches_at_one_index() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    assert_eq!(sb.upload(leader, "mlp", "mlp.onnx").await.unwrap().status, 201);
    assert_eq!(sb.upload(leader, "lr", "iris_logreg.onnx").await.unwrap().status, 201);
    let dev = user_with_role(&sb, leader, "dev@example.org", "APP_DEVELOPER").await;
    let app = json!({"name": "switch", "members": [{"model": "mlp"}]});
    assert_eq!(api(&sb, leader, Method::POST, "/api/apps", Some(app), Some(&dev)).await.status, 201);

    let url = sb.url(leader);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (client, url) = (sb.client().clone(), url.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let until = Instant::now() + Duration::from_millis(1500);
                let mut n = 0;
                while Instant::now() < until && n < 2000 {
                    n += 1;
                    let body = json!({"input": [[5.1, 3.5, 1.4, 0.2]], "id": format!("c{c}-{n}")});
                    let r =
                        client.send_json(Method::POST, &url, "/apps/switch/predict", Some(&body), None).await.unwrap();
                    assert_eq!(r.status, 200, "{}", r.text);
                    let old = r.body["output"].get("probabilities").is_some();
                    seen.push((r.body["index"].as_u64().unwrap(), old, r.body["version"].as_u64().unwrap()));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let members = json!({"members": [{"model": "lr"}]});
    let changed = api(&sb, leader, Method::PUT, "/api/apps/switch/members", Some(members), Some(&dev)).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let at = changed.body["index"].as_u64().unwrap();
    assert_eq!(changed.body["revision"], 2);
    let mut before = 0;
    let mut after = 0;
    for c in clients {
        for (index, old, revision) in c.await.unwrap() {
            assert_ne!(index, at, "the change has an entry of its own");
            if index < at {
                assert!(old && revision == 1, "index {index} before the change at {at} used the old member");
                before += 1;
            } else {
                assert!(!old && revision == 2, "index {index} after the change at {at} used the new member");
                after += 1;
            }
        }
    }
    assert!(before > 0 && after > 0, "requests on both sides of the change: {before} before, {after} after");
    sb.wait_for_convergence().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linearizable_read_after_failover_sees_every_acknowledged_write() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let admin = sb.token();
    let mut emails = Vec::new();
    for i in 0..5 {
        let email = format!("u{i}@example.org");
        let body = json!({"email": email, "password": PASSWORD, "role": "APP_USER"});
        assert_eq!(api(&sb, leader, Method::POST, "/api/users", Some(body), Some(&admin)).await.status, 201);
        emails.push(email);
    }
    let dev = user_with_role(&sb, leader, "dev@example.org", "APP_DEVELOPER").await;
    assert_eq!(csv(&sb, leader, "/api/datasets/last", b"a,b\n1,0\n", Some(&dev)).await.status, 201);
    // The leader dies right after the acknowledgements.
    sb.cluster.kill_node(leader).await.unwrap();
    for i in others(leader) {
        // The first read may land before the election; a 503 then is the
        // honest answer, and the read is retried.
        let deadline = Instant::now() + Duration::from_secs(10);
        let users = loop {
            let r = api(&sb, i, Method::GET, "/api/users", None, Some(&admin)).await;
            if r.status == 200 || Instant::now() > deadline {
                break r;
            }
            assert_eq!(r.status, 503, "{}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(users.status, 200, "{}", users.text);
        let listed: Vec<&str> =
            users.body["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        for e in &emails {
            assert!(listed.contains(&e.as_str()), "node {i} lists {e}: {listed:?}");
        }
        let d = api(&sb, i, Method::GET, "/api/datasets/last", None, Some(&dev)).await;
        assert_eq!(d.status, 200, "node {i}: {}", d.text);
    }
    sb.restart(leader).unwrap();
    sb.wait_for_convergence().await.unwrap();
}
