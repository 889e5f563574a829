//! Train jobs whose workers are Docker containers and Docker Swarm services
//! on this machine's engine, and a container template (an image built here
//! that brings its own trainer) whose model serves.
//!
//! Boat's worker image is built by `boat images build` from the binary
//! under test. The test initialises a Swarm if the engine has none and
//! leaves it again; it removes every image, container and service it made,
//! even when it fails, and touches nothing else. Without an engine it says
//! why and passes.

use std::process::Command;
use std::time::Duration;

use boat::client::Method;
use boat_tests::{boat_bin, ort_lib, Sandbox};
use serde_json::{json, Value};

fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn swarm_active() -> bool {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).1.trim() == "active"
}

/// Removes what the test made when it goes out of scope.
struct Cleanup {
    images: Vec<String>,
    label: String,
    left_swarm: bool,
    made_gwbridge: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label);
        let (_, services) = docker(&["service", "ls", "-q", "--filter", &filter]);
        for id in services.split_whitespace() {
            docker(&["service", "rm", id]);
        }
        let (_, containers) = docker(&["ps", "-aq", "--filter", &filter]);
        for id in containers.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        if self.left_swarm {
            docker(&["swarm", "leave", "--force"]);
            if self.made_gwbridge {
                docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
        for image in &self.images {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// Containers and services with the label still there after a while (the
/// Swarm removes a deleted service's containers shortly after the service).
async fn leftovers(label: &str) -> (String, String) {
    let filter = format!("label={label}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left =
            (docker(&["ps", "-aq", "--filter", &filter]).1, docker(&["service", "ls", "-q", "--filter", &filter]).1);
        if (left.0.trim().is_empty() && left.1.trim().is_empty()) || std::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn run_job(sb: &Sandbox, leader: usize, token: &str, job: Value) -> (Value, Vec<Value>) {
    let r = sb.api(leader, Method::POST, "/api/jobs", Some(job.clone()), token).await;
    assert_eq!(r.status, 201, "{job}: {}", r.text);
    let id = r.body["id"].as_u64().unwrap();
    let done = sb.wait_for_job(id, token, Duration::from_secs(300), |j| j["status"] != "running").await;
    let trials = sb.api(leader, Method::GET, &format!("/api/jobs/{id}/trials"), None, token).await;
    (done, trials.body["trials"].as_array().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_train_in_containers_and_swarm_services_and_a_container_template_serves() {
    if !docker(&["info"]).0 {
        eprintln!("skipped: no Docker engine answers here");
        return;
    }
    let tag = format!("boat-test-worker-{:08x}:1", rand_u32());
    let trainer = format!("boat-test-trainer-{:08x}:1", rand_u32());
    let had_swarm = swarm_active();
    let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"]).0;
    let mut cleanup = Cleanup {
        images: vec![trainer.clone(), tag.clone()],
        label: String::new(),
        left_swarm: false,
        made_gwbridge: false,
    };

    // Boat's worker image, built as a user would.
    let out =
        Command::new(boat_bin()).args(["images", "build", "--tag", &tag, "--ort-lib"]).arg(ort_lib()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A trainer of one's own: an image whose entrypoint trains by the worker
    // contract (here Boat's logistic regression, set in its environment).
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {tag}\nENV BOAT_TEMPLATE=logistic_regression\nLABEL boat.test=trainer\nENTRYPOINT [\"/boat\", \"worker\"]\n"
    );
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let (ok, text) = docker(&["build", "-q", "-t", &trainer, dir.path().to_str().unwrap()]);
    assert!(ok, "{text}");
    if !had_swarm {
        let (ok, text) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(ok, "{text}");
        cleanup.left_swarm = true;
        cleanup.made_gwbridge = !had_gwbridge;
    }

    let mut sb = Sandbox::start(3, &["--worker-image", &tag]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    // The nodes made the shared directory as they started.
    let shared = std::fs::canonicalize(sb.shared_dir()).unwrap();
    let cluster = boat_raft::sha256_hex(shared.to_string_lossy().as_bytes())[..12].to_string();
    cleanup.label = format!("boat.cluster={cluster}");
    let token = sb.token();
    sb.upload_dataset(leader, "iris", "iris.csv", &token).await;

    for runtime in ["docker", "swarm"] {
        let job = json!({
            "app": format!("iris-{runtime}"), "task": "classification", "train_dataset": "iris",
            "templates": ["mlp_classifier"], "runtime": runtime, "seed": 2,
            "budget": {"trials": 2, "workers": 2, "minutes": 10, "cpus": 1, "memory_mb": 512}
        });
        let (done, trials) = run_job(&sb, leader, &token, job).await;
        assert_eq!(done["status"], "completed", "{runtime}: {done}");
        assert_eq!(done["runtime"], runtime);
        assert!(done["best"]["score"].as_f64().unwrap() >= 0.8, "{runtime}: {done}");
        for t in &trials {
            assert_eq!(t["status"], "completed", "{runtime}: {t}");
            assert!(!t["worker"].as_str().unwrap().starts_with("local-"), "{runtime}: {t}");
        }
        let (containers, services) = leftovers(&cleanup.label).await;
        assert!(containers.trim().is_empty() && services.trim().is_empty(), "{runtime} left {containers} {services}");
    }

    // A container template: registered with its knob space, trained, deployed, served.
    let templates = sb.api(leader, Method::GET, "/api/templates", None, &token).await;
    let logistic = templates.body["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "logistic_regression")
        .unwrap()
        .clone();
    let register = json!({"name": "my-trainer", "task": "classification", "image": trainer,
                          "knob_config": logistic["knob_config"], "description": "brings its own trainer"});
    let r = sb.api(leader, Method::POST, "/api/templates", Some(register), &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["kind"], "container");
    let local = json!({"app": "byo", "task": "classification", "train_dataset": "iris", "templates": ["my-trainer"], "runtime": "local"});
    let r = sb.api(leader, Method::POST, "/api/jobs", Some(local), &token).await;
    assert_eq!(r.status, 422, "a container template needs a container runtime: {}", r.text);
    let job = json!({"app": "byo", "task": "classification", "train_dataset": "iris", "templates": ["my-trainer"],
                     "runtime": "docker", "budget": {"trials": 1}, "deploy_best": "byo", "seed": 4});
    let (done, trials) = run_job(&sb, leader, &token, job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(trials[0]["status"], "completed", "{trials:?}");
    let body = json!({"input": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]});
    let r = sb.client().send_json(Method::POST, &sb.url(leader), "/apps/byo/predict", Some(&body), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["output"]["label"], json!([0, 2]), "{}", r.text);

    // A trainer that fails: its trial errors with the container's reason.
    let broken = json!({"name": "broken-trainer", "task": "classification", "image": tag,
                        "knob_config": {"knobs": {}}, "description": "exits non-zero"});
    assert_eq!(sb.api(leader, Method::POST, "/api/templates", Some(broken), &token).await.status, 201);
    let job = json!({"app": "broken", "task": "classification", "train_dataset": "iris", "templates": ["broken-trainer"],
                     "runtime": "docker", "budget": {"trials": 1}});
    let (done, trials) = run_job(&sb, leader, &token, job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(trials[0]["status"], "errored", "{trials:?}");
    assert!(trials[0]["reason"].as_str().unwrap().contains("exited with code"), "{trials:?}");
    let (containers, services) = leftovers(&cleanup.label).await;
    assert!(containers.trim().is_empty() && services.trim().is_empty(), "left {containers} {services}");

    // The leader dies while a container trains: the new leader adopts the
    // running container (same worker, same attempt) instead of starting again.
    sb.upload_dataset(leader, "digits", "digits.csv", &token).await;
    let job = json!({"app": "digits", "task": "classification", "train_dataset": "digits", "templates": ["mlp_classifier"],
                     "runtime": "docker", "budget": {"trials": 2, "workers": 2}, "seed": 6,
                     "knobs": {"mlp_classifier": {"hidden_layers": 3, "hidden_units": 256, "batch_size": 16, "epochs": 200}}});
    let r = sb.api(leader, Method::POST, "/api/jobs", Some(job), &token).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let running = loop {
        assert!(std::time::Instant::now() < deadline, "no trial of job {id} ran within two minutes");
        let r = sb.api(leader, Method::GET, &format!("/api/jobs/{id}/trials"), None, &token).await;
        if let Some(t) =
            r.body["trials"].as_array().and_then(|ts| ts.iter().find(|t| t["status"] == "running").cloned())
        {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sb.cluster.kill_node(leader).await.unwrap();
    let new_leader = sb.wait_for_leader().await.unwrap();
    let done = sb.wait_for_job(id, &token, Duration::from_secs(300), |j| j["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");
    let after = sb.api(new_leader, Method::GET, &format!("/api/jobs/{id}/trials"), None, &token).await;
    let struck = after.body["trials"].as_array().unwrap().iter().find(|t| t["no"] == running["no"]).unwrap().clone();
    assert_eq!(struck["status"], "completed", "{struck}");
    assert_eq!(
        (struck["attempt"].clone(), struck["worker"].clone()),
        (json!(1), running["worker"].clone()),
        "adopted: {struck}"
    );
    let (containers, services) = leftovers(&cleanup.label).await;
    assert!(containers.trim().is_empty() && services.trim().is_empty(), "left {containers} {services}");
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}
