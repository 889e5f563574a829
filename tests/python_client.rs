//! The Python client (`clients/python`) against a real cluster: its own
//! test suite, run by the system's `python3` with the cluster's addresses.

use boat_tests::{workspace_root, Sandbox};

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_passes_its_tests_against_a_real_cluster() {
    let sb = Sandbox::start(3, &[]).unwrap();
    sb.wait_for_leader().await.unwrap();
    let root = workspace_root();
    let out = tokio::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "clients/python/tests", "-v"])
        .current_dir(&root)
        .env("BOAT_URLS", sb.urls().join(","))
        .env("BOAT_ADMIN_TOKEN", sb.token())
        .env("BOAT_MODELS_DIR", root.join("models"))
        .env("BOAT_DATASETS_DIR", root.join("datasets"))
        .env("PYTHONPATH", root.join("clients/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("skipped"), "no test may be skipped against a live cluster: {report}");
    let ran: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    assert!(ran >= 10, "the suite ran {ran} tests: {report}");
    // The client's tests used the admin token and their own passwords.
    for i in 0..3 {
        assert!(!sb.log(i).contains(&sb.token()), "node {i}'s log holds the admin token");
        assert!(!sb.log(i).contains("correct-horse-battery"), "node {i}'s log holds a password");
    }
}
