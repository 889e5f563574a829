//! The trial worker contract: environment in, `model.onnx` and `score.json`
//! out, JSON lines on stdout, a non-zero exit on failure. Runs the worker in
//! this process (`run`) and as a child process (`run_from_env`, by starting
//! this test binary again with the contract's variables set).

mod common;

use std::path::Path;
use std::process::Command;

use boat_training::templates::Task;
use boat_training::worker::{self, parse_log_line, LogLine, ScoreFile, WorkerEnv};
use common::*;

/// Set in the child's environment: the child runs the worker, nothing else.
const CHILD: &str = "BOAT_TRAINING_TEST_WORKER_CHILD";

/// The child's entry point; a no-op in an ordinary test run.
#[test]
fn worker_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    match worker::run_from_env() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("trial failed: {e:#}");
            std::process::exit(1);
        }
    }
}

fn check_outputs(out_dir: &Path, epochs_logged: usize) -> ScoreFile {
    let model = std::fs::read(out_dir.join("model.onnx")).unwrap();
    assert!(!model.is_empty());
    boat_serving::validate(&model).unwrap();
    let score: ScoreFile = serde_json::from_slice(&std::fs::read(out_dir.join("score.json")).unwrap()).unwrap();
    assert_eq!(score.epochs as usize, epochs_logged);
    // Only the two results are left: no temporary files.
    let mut names: Vec<String> =
        std::fs::read_dir(out_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["model.onnx", "score.json"]);
    score
}

fn metrics(lines: &[LogLine]) -> usize {
    lines.iter().filter(|l| matches!(l, LogLine::Metrics { values, .. } if values.contains_key("loss") && values.contains_key("val_score"))).count()
}

#[test]
fn run_writes_the_results_and_logs_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, _) = split("iris", dir.path());
    let out_dir = dir.path().join("out/trial-1");
    let env = WorkerEnv {
        template: "logistic_regression".into(),
        task: Task::Classification,
        knobs: logistic_knobs(),
        train_path: t,
        val_path: v,
        target_column: "target".into(),
        output_dir: out_dir.clone(),
        seed: 3,
        job_id: Some("job-1".into()),
        trial_id: Some("1".into()),
    };
    let mut stdout = Vec::new();
    let output = worker::run(&env, &mut stdout).unwrap();
    let text = String::from_utf8(stdout).unwrap();
    let lines: Vec<LogLine> = text
        .lines()
        .map(|l| {
            // Every line is one JSON object.
            assert!(serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).is_ok(), "{l}");
            parse_log_line(l)
        })
        .collect();
    let score = check_outputs(&out_dir, metrics(&lines));
    // serde_json reads floats back to within an ulp, not always exactly.
    assert!((score.score - output.score).abs() < 1e-12, "{} vs {}", score.score, output.score);
    assert_eq!(score.metric, "accuracy");
    assert_eq!(score.classes, ["0", "1", "2"]);
    assert!(lines.iter().any(|l| matches!(l, LogLine::Message(m) if m.contains("job job-1 trial 1"))), "{text}");
}

fn child(envs: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["worker_child", "--exact", "--nocapture", "--test-threads=1"]).env(CHILD, "1");
    for var in [
        "BOAT_TEMPLATE",
        "BOAT_TASK",
        "BOAT_KNOBS",
        "BOAT_TRAIN_PATH",
        "BOAT_VAL_PATH",
        "BOAT_TARGET_COLUMN",
        "BOAT_OUTPUT_DIR",
        "BOAT_SEED",
        "BOAT_JOB_ID",
        "BOAT_TRIAL_ID",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn worker_process_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, _) = split("diabetes", dir.path());
    let out_dir = dir.path().join("out");
    let knobs = serde_json::to_string(&mlp_knobs()).unwrap();
    let mut envs = vec![
        ("BOAT_TEMPLATE", "mlp_regressor".to_string()),
        ("BOAT_TASK", "regression".to_string()),
        ("BOAT_KNOBS", knobs),
        ("BOAT_TRAIN_PATH", t.display().to_string()),
        ("BOAT_VAL_PATH", v.display().to_string()),
        ("BOAT_TARGET_COLUMN", "target".to_string()),
        ("BOAT_OUTPUT_DIR", out_dir.display().to_string()),
        ("BOAT_SEED", "11".to_string()),
        ("BOAT_JOB_ID", "j".to_string()),
    ];
    let out = child(&envs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The test harness prints its own lines too; the worker's are the JSON
    // objects.
    let lines: Vec<LogLine> = stdout.lines().filter(|l| l.starts_with('{')).map(parse_log_line).collect();
    let epochs = metrics(&lines);
    assert!(epochs > 0, "{stdout}");
    let score = check_outputs(&out_dir, epochs);
    assert_eq!(score.metric, "r2");
    assert!(score.classes.is_empty());
    assert!(score.score > 0.3, "{score:?}");

    // A bad knob: non-zero exit, the reason on stderr, no score file.
    let failed_dir = dir.path().join("failed");
    envs[2].1 = r#"{"colour": "red"}"#.to_string();
    envs[6].1 = failed_dir.display().to_string();
    let out = child(&envs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown knob 'colour'"), "{stderr}");
    assert!(!failed_dir.join("score.json").exists());

    // A missing variable.
    envs.retain(|(k, _)| *k != "BOAT_TRAIN_PATH");
    let out = child(&envs);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BOAT_TRAIN_PATH is not set"));
}
