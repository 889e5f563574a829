//! Train jobs on real clusters with the local runtime: a job on the shipped
//! iris dataset trains, deploys its best trials to an app and the app
//! serves; bad requests are refused before anything commits; a killed
//! worker errors its trial and a killed leader loses none, and the trial
//! count stays exact.

use std::time::{Duration, Instant};

use boat::client::{Method, Reply};
use boat_tests::Sandbox;
use serde_json::{json, Value};

const PASSWORD: &str = "train-pass-1";

async fn api(sb: &Sandbox, node: usize, method: Method, path: &str, body: Option<Value>, token: &str) -> Reply {
    sb.api(node, method, path, body, token).await
}

/// Creates a user with `role` as the superadmin and logs them in.
async fn user(sb: &Sandbox, leader: usize, email: &str, role: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD, "role": role});
    let r = api(sb, leader, Method::POST, "/api/users", Some(body), &sb.token()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = json!({"email": email, "password": PASSWORD});
    let r = sb.client().send_json(Method::POST, &sb.url(leader), "/api/tokens", Some(&body), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["token"].as_str().unwrap().to_string()
}

async fn trials(sb: &Sandbox, node: usize, id: u64, token: &str) -> Vec<Value> {
    let r = api(sb, node, Method::GET, &format!("/api/jobs/{id}/trials"), None, token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["trials"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_on_iris_trains_deploys_its_best_trials_and_the_app_serves() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let dev = user(&sb, leader, "dev@example.org", "APP_DEVELOPER").await;
    let app_user = user(&sb, leader, "user@example.org", "APP_USER").await;
    sb.upload_dataset(leader, "iris", "iris.csv", &dev).await;

    let templates = api(&sb, leader, Method::GET, "/api/templates", None, &app_user).await;
    let names: Vec<&str> =
        templates.body["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"mlp_classifier") && names.contains(&"logistic_regression"), "{names:?}");

    // Bad requests: each a clear 4xx, and no job is created.
    let base =
        json!({"app": "flowers", "task": "classification", "train_dataset": "iris", "templates": ["mlp_classifier"]});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let refused = [
        (with(json!({"knobs": {"mlp_classifier": {"colour": 1}}})), 422, "unknown knob 'colour'"),
        (with(json!({"knobs": {"mlp_classifier": {"hidden_units": 100000}}})), 422, "out of its range"),
        (with(json!({"templates": ["mlp_regressor"]})), 422, "is for regression"),
        (with(json!({"templates": ["no_such_template"]})), 404, "no template"),
        (with(json!({"train_dataset": "nope"})), 404, "no dataset"),
        (with(json!({"budget": {"trials": 0}})), 422, "budget.trials"),
        (with(json!({"advisor": "oracle"})), 422, "unknown advisor"),
    ];
    for (body, status, needle) in refused {
        let r = api(&sb, leader, Method::POST, "/api/jobs", Some(body.clone()), &dev).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.body["error"].as_str().unwrap().contains(needle), "{body}: {}", r.text);
    }
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(base.clone()), &app_user).await;
    assert_eq!(r.status, 403, "an app user cannot train: {}", r.text);
    assert_eq!(api(&sb, leader, Method::GET, "/api/jobs", None, &dev).await.body["jobs"], json!([]));

    let job = with(json!({
        "templates": ["mlp_classifier", "logistic_regression"],
        "budget": {"trials": 6, "workers": 2, "minutes": 10},
        "deploy_best": "flowers", "deploy_members": 2, "seed": 11
    }));
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(job), &dev).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_u64().unwrap();

    // A running job holds its dataset.
    let r = api(&sb, leader, Method::DELETE, "/api/datasets/iris", None, &dev).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("uses dataset"), "{}", r.text);

    let done = sb.wait_for_job(id, &dev, Duration::from_secs(300), |j| j["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["trials_done"], 6, "{done}");
    assert_eq!(done["deployed_to"], "flowers", "{done}");
    let best = done["best"]["score"].as_f64().unwrap();
    assert!(best >= 0.9, "best validation accuracy {best}: {done}");

    // Every trial is recorded with its knobs, score, timings and model.
    let follower = (leader + 1) % 3;
    let all = trials(&sb, follower, id, &dev).await;
    assert_eq!(all.len(), 6);
    for (i, t) in all.iter().enumerate() {
        assert_eq!(t["no"], i as u64 + 1);
        assert_eq!(t["status"], "completed", "{t}");
        assert!(t["model"].as_str().unwrap().starts_with(&format!("flowers-job{id}:")), "{t}");
        assert!(t["duration_s"].as_f64().unwrap() > 0.0 && t["worker"].as_str().unwrap().starts_with("local-"), "{t}");
        assert_eq!(t["template"], if i % 2 == 0 { "mlp_classifier" } else { "logistic_regression" }, "{t}");
    }

    // The app serves the two best trials, as one ensemble.
    let r = api(&sb, follower, Method::GET, &format!("/api/jobs/{id}/best?n=2"), None, &dev).await;
    let best_two: Vec<String> =
        r.body["trials"].as_array().unwrap().iter().map(|t| t["model"].as_str().unwrap().to_string()).collect();
    let app = api(&sb, follower, Method::GET, "/api/apps/flowers", None, &dev).await;
    assert_eq!(app.status, 200, "{}", app.text);
    let members: Vec<String> = app.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}:{}", m["model"].as_str().unwrap(), m["version"]))
        .collect();
    assert_eq!(members, best_two);
    assert_eq!(app.body["rule"], "mean_probabilities");
    let body = json!({"input": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]});
    let r =
        sb.client().send_json(Method::POST, &sb.url(leader), "/apps/flowers/predict", Some(&body), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["output"]["label"], json!([0, 2, 1]), "{}", r.text);

    // The trial logged its epochs on the shared directory.
    let r = api(&sb, follower, Method::GET, &format!("/api/trials/{id}-1/logs"), None, &dev).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let metrics: Vec<&Value> =
        r.body["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "metrics").collect();
    assert!(!metrics.is_empty() && metrics[0]["epoch"].as_u64().is_some(), "{}", r.text);
    assert!(metrics.iter().all(|m| m["values"]["val_score"].is_number()), "{}", r.text);

    // No worker outlives its trial, and the dataset is free again.
    for t in &all {
        let pid: u32 = t["worker"].as_str().unwrap().trim_start_matches("local-").parse().unwrap();
        let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("worker"));
        assert!(!alive, "worker {pid} still runs");
    }
    let r = api(&sb, leader, Method::DELETE, "/api/datasets/iris", None, &dev).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Polls the job's trials until `pick` finds one.
async fn wait_for_trial(sb: &Sandbox, id: u64, token: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for i in (0..sb.cluster.len()).filter(|i| sb.cluster.is_running(*i)) {
            let r = sb
                .client()
                .send_json(Method::GET, &sb.url(i), &format!("/api/jobs/{id}/trials"), None, Some(token))
                .await;
            if let Ok(r) = r {
                if let Some(t) = r.body["trials"].as_array().and_then(|ts| ts.iter().find(|t| pick(t))) {
                    return t.clone();
                }
            }
        }
        assert!(Instant::now() < deadline, "no such trial of job {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_errors_its_trial_and_a_killed_leader_loses_none() {
    let mut sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let token = sb.token();
    sb.upload_dataset(leader, "digits", "digits.csv", &token).await;
    // Large, slow networks, so that trials are still running when struck.
    let job = json!({
        "app": "digits", "task": "classification", "train_dataset": "digits", "templates": ["mlp_classifier"],
        "budget": {"trials": 6, "workers": 2, "minutes": 20}, "seed": 5,
        "knobs": {"mlp_classifier": {"hidden_layers": 3, "hidden_units": 256, "batch_size": 16, "epochs": 200}}
    });
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(job), &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_u64().unwrap();

    // A worker killed: its trial errors, the budget carries on.
    let running = wait_for_trial(&sb, id, &token, |t| t["status"] == "running").await;
    let pid: i32 = running["worker"].as_str().unwrap().trim_start_matches("local-").parse().unwrap();
    // SAFETY: kill(2) on the worker process the test just read from the job.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let no = running["no"].clone();
    let errored = wait_for_trial(&sb, id, &token, |t| t["no"] == no && t["status"] != "running").await;
    assert_eq!(errored["status"], "errored", "{errored}");
    assert!(errored["reason"].as_str().unwrap().contains("signal"), "{errored}");

    // The leader killed while trials run: a new leader takes the job over.
    let before = wait_for_trial(&sb, id, &token, |t| t["status"] == "running").await;
    sb.cluster.kill_node(leader).await.unwrap();
    let new_leader = sb.wait_for_leader().await.unwrap();
    assert_ne!(new_leader, leader);
    let done = sb.wait_for_job(id, &token, Duration::from_secs(400), |j| j["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");

    let all = trials(&sb, new_leader, id, &token).await;
    assert_eq!(all.len(), 6, "exactly the budget: {all:?}");
    let numbers: Vec<u64> = all.iter().map(|t| t["no"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
    assert!(all.iter().all(|t| t["status"] == "completed" || t["status"] == "errored"), "{all:?}");
    assert_eq!(all.iter().filter(|t| t["status"] == "errored").count(), 1, "only the killed worker's: {all:?}");
    let struck = all.iter().find(|t| t["no"] == before["no"]).unwrap();
    assert!(struck["attempt"].as_u64().unwrap() >= 2, "run again after the leader died: {struck}");
    assert_eq!(struck["status"], "completed", "{struck}");

    // The old leader comes back and agrees.
    sb.restart(leader).unwrap();
    sb.wait_for_convergence().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_time_budget_stops_running_trials_and_a_stopped_job_starts_none() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let token = sb.token();
    sb.upload_dataset(leader, "digits", "digits.csv", &token).await;
    let slow = json!({"mlp_classifier": {"hidden_layers": 3, "hidden_units": 256, "batch_size": 16, "epochs": 200}});
    let job = |minutes: f64| {
        json!({"app": "digits", "task": "classification", "train_dataset": "digits", "templates": ["mlp_classifier"],
               "budget": {"trials": 50, "workers": 2, "minutes": minutes}, "knobs": slow, "seed": 9})
    };

    // Five seconds of budget: the trials running then are stopped, not left to finish.
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(job(5.0 / 60.0)), &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let timed = r.body["id"].as_u64().unwrap();
    let done = sb.wait_for_job(timed, &token, Duration::from_secs(60), |j| j["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("time budget"), "{done}");
    assert!(done["elapsed_s"].as_f64().unwrap() < 15.0, "ended on time: {done}");
    let settled = sb.wait_for_job(timed, &token, Duration::from_secs(30), |j| j["trials_running"] == 0).await;
    let all = trials(&sb, leader, timed, &token).await;
    assert!(all.len() < 50, "{settled}");
    assert!(all.iter().any(|t| t["status"] == "stopped"), "a running trial was stopped: {all:?}");
    assert!(all.iter().all(|t| t["status"] != "running" && t["status"] != "pending"), "{all:?}");

    // A job stopped by its owner: running trials stop, no new one starts.
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(job(30.0)), &token).await;
    let stopped = r.body["id"].as_u64().unwrap();
    wait_for_trial(&sb, stopped, &token, |t| t["status"] == "running").await;
    let r = api(&sb, leader, Method::POST, &format!("/api/jobs/{stopped}/stop"), None, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "stopped");
    let settled = sb.wait_for_job(stopped, &token, Duration::from_secs(30), |j| j["trials_running"] == 0).await;
    let count = settled["trials_proposed"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = api(&sb, leader, Method::GET, &format!("/api/jobs/{stopped}"), None, &token).await;
    assert_eq!(later.body["trials_proposed"].as_u64(), Some(count), "no trial after the stop: {}", later.text);
    let r = api(&sb, leader, Method::POST, &format!("/api/jobs/{stopped}/stop"), None, &token).await;
    assert_eq!(r.status, 409, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_errored_trials_in_a_row_stop_the_job_with_the_reason() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let token = sb.token();
    sb.upload_dataset(leader, "iris", "iris.csv", &token).await;
    let job = json!({
        "app": "iris", "task": "classification", "train_dataset": "iris", "templates": ["logistic_regression"],
        "budget": {"trials": 400, "workers": 4, "minutes": 20}, "seed": 3
    });
    let r = api(&sb, leader, Method::POST, "/api/jobs", Some(job), &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_u64().unwrap();

    // Once a trial has completed, the job's validation rows are spoilt on the
    // shared directory: from then on every worker fails reading them.
    wait_for_trial(&sb, id, &token, |t| t["status"] == "completed").await;
    let val = sb.shared_dir().join(format!("jobs/{id}/data/val.csv"));
    std::fs::write(&val, "not,the,columns\n1,2,3\n").unwrap();

    let done = sb.wait_for_job(id, &token, Duration::from_secs(240), |j| j["status"] != "running").await;
    assert_eq!(done["status"], "errored", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.contains("trials in a row errored") && reason.contains("val.csv"), "{reason}");
    let settled = sb.wait_for_job(id, &token, Duration::from_secs(30), |j| j["trials_running"] == 0).await;
    let all = trials(&sb, leader, id, &token).await;
    assert!(all.len() < 400, "the job stopped before its budget: {settled}");
    // The last hundred finished trials, in order, all errored.
    let mut finished: Vec<&Value> = all.iter().filter(|t| t["status"] != "stopped").collect();
    finished.sort_by_key(|t| t["ended_at_ms"].as_u64());
    let tail = &finished[finished.len() - 100..];
    assert!(tail.iter().all(|t| t["status"] == "errored"), "{tail:?}");
    assert!(all.iter().any(|t| t["status"] == "completed"), "the trials before the damage completed");
    assert!(all.iter().all(|t| t["status"] != "running" && t["status"] != "pending"), "nothing left running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = api(&sb, leader, Method::GET, &format!("/api/jobs/{id}"), None, &token).await;
    assert_eq!(later.body["trials_proposed"], settled["trials_proposed"], "no trial after the stop");
}
