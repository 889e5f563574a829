//! The `boat` client commands against a real cluster, as a user types them:
//! login, users, models, datasets, apps, predict, status and control.

use std::process::Output;

use boat_tests::{boat_bin, model_path, others, Sandbox};
use serde_json::Value;

/// Runs `boat ARGS --node ...` with HOME in `home` (where `boat login`
/// keeps its token) and the working directory there too, so that no token
/// of the machine's user is picked up.
async fn boat_in(sb: &Sandbox, home: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(boat_bin());
    cmd.args(args).env("HOME", home).env_remove("XDG_CONFIG_HOME").env_remove("BOAT_TOKEN").current_dir(home);
    for url in sb.urls() {
        cmd.arg("--node").arg(url);
    }
    cmd.output().await.unwrap()
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A failed command: exit code 1 and a one-line reason on stderr.
fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_find_the_leader_and_manage_the_platform() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let boat = |args: Vec<&str>| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let sb = &sb;
        async move { boat_in(sb, home, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let admin_token = sb.cluster.spec.admin_token_path();
    let admin = admin_token.to_str().unwrap();
    let mlp = model_path("mlp.onnx");
    let mlp = mlp.to_str().unwrap();
    let iris = boat_tests::workspace_root().join("datasets/iris.csv");

    // Predictions need no token.
    let reply = stdout_json(&boat(vec!["predict", "Hello", "--key", "cli-1", "--json"]).await);
    assert_eq!(reply["output"], "Hello");
    assert_eq!(reply["id"], "cli-1");

    // A wrong token is refused with a one-line reason.
    let out = boat(vec!["models", "--token", "wrong", "upload", "mlp", mlp, "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout_json(&out)["error"].as_str().unwrap().contains("token is invalid"));

    // The superadmin (the admin token) creates one user per role.
    for (email, role) in
        [("md@example.org", "MODEL_DEVELOPER"), ("dev@example.org", "APP_DEVELOPER"), ("user@example.org", "APP_USER")]
    {
        let out =
            boat(vec!["users", "--token-file", admin, "create", email, "--role", role, "--password", "pass-word-1"])
                .await;
        let table = ok(&out);
        assert!(table.contains(email) && table.contains(role), "{table}");
    }
    let listed = stdout_json(&boat(vec!["users", "--token-file", admin, "list", "--json"]).await);
    assert_eq!(listed["users"].as_array().unwrap().len(), 4, "three users and the superadmin: {listed}");

    // A model developer logs in; the token is saved for the user alone.
    ok(&boat(vec!["login", "--email", "md@example.org", "--password", "pass-word-1"]).await);
    let saved = home.join(".config/boat/token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    for _ in 0..2 {
        ok(&boat(vec!["models", "upload", "mlp", mlp]).await);
    }
    assert_eq!(stdout_json(&boat(vec!["models", "default", "mlp", "1", "--json"]).await)["default_version"], 1);
    ok(&boat(vec!["models", "delete", "mlp", "2"]).await);
    let listing = stdout_json(&boat(vec!["models", "list", "--json"]).await);
    let entry = listing["models"].as_array().unwrap().iter().find(|m| m["name"] == "mlp").expect("mlp listed").clone();
    assert_eq!(entry["default_version"], 1);
    assert_eq!(entry["versions"].as_array().unwrap().len(), 1);
    let err = failed(&boat(vec!["users", "list"]).await);
    assert!(err.contains("SUPERADMIN, ADMIN") && err.contains("MODEL_DEVELOPER"), "{err}");

    // An app developer uploads a dataset and builds an app.
    ok(&boat(vec!["login", "--email", "dev@example.org", "--password", "pass-word-1"]).await);
    let table = ok(&boat(vec!["datasets", "upload", "iris", iris.to_str().unwrap()]).await);
    assert!(table.contains("150") && table.contains("0: 50, 1: 50, 2: 50"), "{table}");
    let bad = home.join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3\n").unwrap();
    let err = failed(&boat(vec!["datasets", "upload", "bad", bad.to_str().unwrap()]).await);
    assert!(err.contains("line 3"), "{err}");
    let shown = stdout_json(&boat(vec!["datasets", "show", "iris", "--json"]).await);
    assert_eq!(shown["rows"], 150);
    ok(&boat(vec!["apps", "create", "solo", "--member", "mlp:1", "--rule", "first"]).await);
    let reply = stdout_json(&boat(vec!["predict", "[[5.1, 3.5, 1.4, 0.2]]", "--model", "solo", "--json"]).await);
    assert_eq!(reply["output"]["label"], serde_json::json!([0]));
    assert_eq!(reply["output"]["members"], serde_json::json!(["mlp:1"]));
    let apps = stdout_json(&boat(vec!["apps", "list", "--json"]).await);
    assert_eq!(apps["apps"][0]["name"], "solo");
    assert_eq!(apps["apps"][0]["stats"]["requests"], 1, "the leader's count of the prediction: {apps}");
    ok(&boat(vec!["apps", "stop", "solo"]).await);
    let err = failed(&boat(vec!["predict", "[[5.1, 3.5, 1.4, 0.2]]", "--model", "solo"]).await);
    assert!(err.contains("stopped"), "{err}");

    // The app developer trains on the dataset and follows the job.
    let templates = ok(&boat(vec!["templates", "list"]).await);
    assert!(templates.contains("mlp_classifier") && templates.contains("builtin"), "{templates}");
    let job = stdout_json(
        &boat(vec![
            "jobs",
            "create",
            "--app",
            "cli-flowers",
            "--train",
            "iris",
            "--template",
            "logistic_regression",
            "--trials",
            "2",
            "--seed",
            "3",
            "--json",
        ])
        .await,
    );
    let id = job["id"].as_u64().unwrap().to_string();
    let err =
        failed(&boat(vec!["jobs", "create", "--app", "x", "--train", "iris", "--template", "mlp_regressor"]).await);
    assert!(err.contains("is for regression"), "{err}");
    let watched = ok(&boat(vec!["jobs", "watch", &id]).await);
    assert!(watched.contains("completed") && watched.contains("all 2 trials are done"), "{watched}");
    let trials = stdout_json(&boat(vec!["jobs", "trials", &id, "--json"]).await);
    assert_eq!(trials["trials"].as_array().unwrap().len(), 2, "{trials}");
    let log = ok(&boat(vec!["logs", "trial", &format!("{id}-1")]).await);
    assert!(log.contains("epoch 1 "), "{log}");

    // Logging out revokes the token.
    let token = std::fs::read_to_string(&saved).unwrap();
    ok(&boat(vec!["logout"]).await);
    assert!(!saved.exists());
    let err = failed(&boat(vec!["users", "me", "--token", token.trim()]).await);
    assert!(err.contains("token is invalid"), "{err}");

    let table = ok(&boat(vec!["status"]).await);
    assert_eq!(table.lines().filter(|l| l.contains("Leader")).count(), 1, "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("Follower")).count(), 2, "{table}");
    assert_eq!(table.lines().last(), Some("healthy"), "{table}");

    let target = sb.url(others(leader)[0]);
    let out = tokio::process::Command::new(boat_bin()).args(["control", &target, "delay", "5"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["faults"]["delay_ms"], 5);
    let out = tokio::process::Command::new(boat_bin()).args(["control", &target, "heal"]).output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(sb.status(others(leader)[0]).await.unwrap().faults.delay_ms, 0);

    // Leadership moves to the voter named, and the table shows it leading.
    let next = others(leader)[1];
    let id = next.to_string();
    let moved = stdout_json(&boat(vec!["cluster", "--token-file", admin, "transfer-leader", &id, "--json"]).await);
    assert_eq!(moved["leader_id"], next as u64, "{moved}");
    assert_eq!(sb.wait_for_leader().await.unwrap(), next);
    let err = failed(&boat(vec!["cluster", "--token-file", admin, "transfer-leader", "9"]).await);
    assert!(err.contains("not a voter"), "{err}");
}
