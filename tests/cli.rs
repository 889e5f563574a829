//! The `boat` client commands against a real cluster: status, predict,
//! models and control, as a user types them.

use std::process::Output;

use boat_tests::{boat_bin, model_path, others, Sandbox};
use serde_json::Value;

async fn boat(sb: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(boat_bin());
    cmd.args(args);
    for url in sb.urls() {
        cmd.arg("--node").arg(url);
    }
    cmd.output().await.unwrap()
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_find_the_leader_and_manage_models() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let token_file = sb.cluster.spec.admin_token_path();
    let token_file = token_file.to_str().unwrap();
    let mlp = model_path("mlp.onnx");

    let out = boat(&sb, &["predict", "Hello", "--key", "cli-1"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = stdout_json(&out);
    assert_eq!(reply["output"], "Hello");
    assert_eq!(reply["id"], "cli-1");

    // Without a token the upload is refused and the command fails.
    let out = boat(&sb, &["models", "--token-file", "/nonexistent", "upload", "mlp", mlp.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let out = boat(&sb, &["models", "--token", "wrong", "upload", "mlp", mlp.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(stdout_json(&out)["error"].as_str().unwrap().contains("token is invalid"));

    for _ in 0..2 {
        let out = boat(&sb, &["models", "--token-file", token_file, "upload", "mlp", mlp.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let out = boat(&sb, &["models", "--token-file", token_file, "default", "mlp", "1"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stdout_json(&out)["default_version"], 1);
    let out = boat(&sb, &["models", "--token-file", token_file, "delete", "mlp", "2"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = boat(&sb, &["models", "list"]).await;
    let listing = stdout_json(&out);
    let mlp_entry =
        listing["models"].as_array().unwrap().iter().find(|m| m["name"] == "mlp").expect("mlp listed").clone();
    assert_eq!(mlp_entry["default_version"], 1);
    assert_eq!(mlp_entry["versions"].as_array().unwrap().len(), 1);

    let out = boat(&sb, &["predict", "[5.1, 3.5, 1.4, 0.2]", "--model", "mlp"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["output"]["label"], serde_json::json!([0]));

    let out = boat(&sb, &["status"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(table.lines().filter(|l| l.contains("Leader")).count(), 1, "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("Follower")).count(), 2, "{table}");

    let target = sb.url(others(leader)[0]);
    let out = tokio::process::Command::new(boat_bin()).args(["control", &target, "delay", "5"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["faults"]["delay_ms"], 5);
    let out = tokio::process::Command::new(boat_bin()).args(["control", &target, "heal"]).output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(sb.status(others(leader)[0]).await.unwrap().faults.delay_ms, 0);
}
