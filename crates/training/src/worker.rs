//! The trial worker: one process that trains one trial and leaves its model
//! and score in a directory. Built-in templates run in this worker;
//! containers with custom training code follow the same contract, so the node
//! drives both alike.
//!
//! # The contract
//!
//! Input, from the environment:
//!
//! | variable | meaning |
//! |----------|---------|
//! | `BOAT_TEMPLATE` | template name (for this worker, a built-in one) |
//! | `BOAT_TASK` | `classification` or `regression` |
//! | `BOAT_KNOBS` | the knob values, a JSON object such as `{"learning_rate": 0.01, "epochs": 50}` |
//! | `BOAT_TRAIN_PATH`, `BOAT_VAL_PATH` | training and validation CSV files |
//! | `BOAT_TARGET_COLUMN` | the target column's name |
//! | `BOAT_OUTPUT_DIR` | where the results go (created if missing) |
//! | `BOAT_SEED` | optional, default 0: seeds everything random in the trial |
//! | `BOAT_JOB_ID`, `BOAT_TRIAL_ID`, `BOAT_ATTEMPT` | optional, for log messages only |
//!
//! Output:
//!
//! - `$BOAT_OUTPUT_DIR/model.onnx`, the trained model;
//! - `$BOAT_OUTPUT_DIR/score.json`, `{"score": 0.96, "metric": "accuracy",
//!   "epochs": 31, "classes": ["0", "1", "2"]}` ([`ScoreFile`]; `classes` is
//!   empty for regression).
//!
//!   Both are written to a temporary file first and renamed into place, the
//!   model first: once `score.json` exists the trial is done and both files
//!   are whole.
//! - on stdout, one JSON object a line: `{"epoch": 3, "loss": 0.41,
//!   "val_score": 0.93, "val_loss": 0.2}` after every epoch and
//!   `{"message": "..."}` for anything else. [`parse_log_line`] reads any
//!   worker's stdout: a JSON object with a numeric `epoch` field is metrics,
//!   every other line a message.
//! - on failure, a non-zero exit status and the reason on stderr
//!   ([`run_from_env`] returns the error; the binary's `main` prints it and
//!   exits with 1).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::knobs::Knobs;
use crate::templates::{train, Task, TrainEvent, TrialOutput, TrialSpec};

pub const ENV_TEMPLATE: &str = "BOAT_TEMPLATE";
pub const ENV_TASK: &str = "BOAT_TASK";
pub const ENV_KNOBS: &str = "BOAT_KNOBS";
pub const ENV_TRAIN_PATH: &str = "BOAT_TRAIN_PATH";
pub const ENV_VAL_PATH: &str = "BOAT_VAL_PATH";
pub const ENV_TARGET_COLUMN: &str = "BOAT_TARGET_COLUMN";
pub const ENV_OUTPUT_DIR: &str = "BOAT_OUTPUT_DIR";
pub const ENV_SEED: &str = "BOAT_SEED";
pub const ENV_JOB_ID: &str = "BOAT_JOB_ID";
pub const ENV_TRIAL_ID: &str = "BOAT_TRIAL_ID";
pub const ENV_ATTEMPT: &str = "BOAT_ATTEMPT";

/// The model file's name in the output directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The score file's name in the output directory; its presence means done.
pub const SCORE_FILE: &str = "score.json";

/// A trial as the worker's environment describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerEnv {
    pub template: String,
    pub task: Task,
    pub knobs: Knobs,
    pub train_path: PathBuf,
    pub val_path: PathBuf,
    pub target_column: String,
    pub output_dir: PathBuf,
    pub seed: u64,
    pub job_id: Option<String>,
    pub trial_id: Option<String>,
}

impl WorkerEnv {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<WorkerEnv> {
        WorkerEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (a map in tests, the environment
    /// in [`WorkerEnv::from_env`]). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<WorkerEnv> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let need = |name: &str| get(name).ok_or_else(|| anyhow!("{name} is not set"));
        let task_name = need(ENV_TASK)?;
        let task = Task::parse(task_name.trim())
            .ok_or_else(|| anyhow!("{ENV_TASK}='{task_name}' is not 'classification' or 'regression'"))?;
        let knobs: Knobs = serde_json::from_str(&need(ENV_KNOBS)?)
            .with_context(|| format!("{ENV_KNOBS} must be a JSON object of knob values"))?;
        let seed = match get(ENV_SEED) {
            None => 0,
            Some(s) => s.trim().parse().map_err(|_| anyhow!("{ENV_SEED}='{s}' is not a non-negative integer"))?,
        };
        Ok(WorkerEnv {
            template: need(ENV_TEMPLATE)?.trim().to_string(),
            task,
            knobs,
            train_path: need(ENV_TRAIN_PATH)?.into(),
            val_path: need(ENV_VAL_PATH)?.into(),
            target_column: need(ENV_TARGET_COLUMN)?,
            output_dir: need(ENV_OUTPUT_DIR)?.into(),
            seed,
            job_id: get(ENV_JOB_ID),
            trial_id: get(ENV_TRIAL_ID),
        })
    }

    /// The trial to train.
    pub fn trial_spec(&self) -> TrialSpec {
        TrialSpec {
            template: self.template.clone(),
            task: self.task,
            knobs: self.knobs.clone(),
            train_csv: self.train_path.clone(),
            val_csv: self.val_path.clone(),
            target_column: self.target_column.clone(),
            seed: self.seed,
        }
    }
}

/// `score.json`. Boat's worker writes every field; a container's trainer
/// may write only `score` (the metric then reads as `score`, the epochs as 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreFile {
    pub score: f64,
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(default)]
    pub epochs: u32,
    #[serde(default)]
    pub classes: Vec<String>,
}

fn default_metric() -> String {
    "score".to_string()
}

/// The stdout line of one event.
pub fn event_line(event: &TrainEvent) -> String {
    let mut obj = Map::new();
    match event {
        TrainEvent::Epoch { epoch, train_loss, val_score, val_loss } => {
            obj.insert("epoch".into(), Value::from(*epoch));
            for (name, v) in [("loss", Some(*train_loss)), ("val_score", Some(*val_score)), ("val_loss", *val_loss)] {
                // JSON has no NaN or infinity; a value that is not finite
                // is left out.
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    obj.insert(name.into(), Value::from(v));
                }
            }
        }
        TrainEvent::Message(m) => {
            obj.insert("message".into(), Value::from(m.as_str()));
        }
    }
    Value::Object(obj).to_string()
}

/// Runs the trial `env` describes, writing the event lines to `out` and the
/// results into the output directory.
pub fn run(env: &WorkerEnv, out: &mut dyn Write) -> anyhow::Result<TrialOutput> {
    std::fs::create_dir_all(&env.output_dir)
        .with_context(|| format!("creating the output directory {}", env.output_dir.display()))?;
    let mut print = |event: TrainEvent| {
        // A reader that went away must not fail the trial: the files are
        // what counts.
        let _ = writeln!(out, "{}", event_line(&event));
        let _ = out.flush();
    };
    let who = match (&env.job_id, &env.trial_id) {
        (Some(j), Some(t)) => format!("job {j} trial {t}"),
        (Some(j), None) => format!("job {j}"),
        (None, Some(t)) => format!("trial {t}"),
        (None, None) => "trial".to_string(),
    };
    print(TrainEvent::Message(format!("{who}: template {} ({}), seed {}", env.template, env.task, env.seed)));
    let output = train(&env.trial_spec(), &mut print)?;
    // Checked before anything is written: a failed trial leaves no model.
    if !output.score.is_finite() {
        bail!("the trial's score is not finite");
    }
    write_atomic(&env.output_dir, MODEL_FILE, &output.onnx)?;
    let score = ScoreFile {
        score: output.score,
        metric: output.metric.clone(),
        epochs: output.epochs_run,
        classes: output.classes.clone(),
    };
    write_atomic(&env.output_dir, SCORE_FILE, &serde_json::to_vec(&score)?)?;
    print(TrainEvent::Message(format!("{who}: done, {} {:.4}", output.metric, output.score)));
    Ok(output)
}

/// Reads the trial from the environment, trains it and writes the results
/// (see the module docs). Sets `RAYON_NUM_THREADS=1` for the trial unless the
/// environment sets it, so a trial takes one core; call this before the
/// process starts other threads.
pub fn run_from_env() -> anyhow::Result<()> {
    let env = WorkerEnv::from_env()?;
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    run(&env, &mut lock)?;
    Ok(())
}

/// Writes `dir/name` through a temporary file in the same directory and a
/// rename, so readers see either no file or the whole file.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, &target).with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    // Make the rename itself durable; not every file system allows syncing a
    // directory, and the file is complete either way.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// One line of a worker's stdout.
#[derive(Clone, Debug, PartialEq)]
pub enum LogLine {
    /// Metrics of one epoch: every numeric field but `epoch`.
    Metrics { epoch: u32, values: BTreeMap<String, f64> },
    /// Anything else: the `message` of a `{"message": ...}` line, or the
    /// line itself.
    Message(String),
}

/// Reads one stdout line of any worker, built-in or container: a JSON object
/// with a non-negative integer `epoch` is [`LogLine::Metrics`] (its other
/// numeric fields the values; other fields are dropped), a JSON object with
/// a string `message` is that message, and every other line is a message as
/// it stands (trailing whitespace removed).
pub fn parse_log_line(line: &str) -> LogLine {
    let text = line.trim_end();
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) {
        let epoch = obj.get("epoch").and_then(|e| match e.as_u64() {
            Some(v) => u32::try_from(v).ok(),
            None => e.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64).map(|f| f as u32),
        });
        if let Some(epoch) = epoch {
            let values =
                obj.iter().filter(|(k, _)| *k != "epoch").filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect();
            return LogLine::Metrics { epoch, values };
        }
        if let Some(Value::String(m)) = obj.get("message") {
            return LogLine::Message(m.clone());
        }
    }
    LogLine::Message(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines() {
        let m = parse_log_line(r#"{"epoch":3,"loss":0.41,"val_score":0.93,"note":"x"}"#);
        let LogLine::Metrics { epoch, values } = m else { panic!("{m:?}") };
        assert_eq!(epoch, 3);
        assert_eq!(values.len(), 2);
        assert_eq!(values["val_score"], 0.93);
        assert_eq!(parse_log_line("{\"message\":\"hello\"}\n"), LogLine::Message("hello".into()));
        assert_eq!(parse_log_line("plain text  "), LogLine::Message("plain text".into()));
        assert_eq!(parse_log_line(r#"{"epoch":-1}"#), LogLine::Message(r#"{"epoch":-1}"#.into()));
        assert_eq!(parse_log_line(r#"{"epoch":"one"}"#), LogLine::Message(r#"{"epoch":"one"}"#.into()));
        assert!(matches!(parse_log_line(r#"{"epoch":2.0}"#), LogLine::Metrics { epoch: 2, .. }));
        assert_eq!(parse_log_line("[1,2]"), LogLine::Message("[1,2]".into()));
    }

    #[test]
    fn event_lines_parse_back() {
        let e = TrainEvent::Epoch { epoch: 7, train_loss: 0.5, val_score: 0.9, val_loss: Some(f64::NAN) };
        let line = event_line(&e);
        assert!(!line.contains("val_loss"), "{line}");
        let LogLine::Metrics { epoch, values } = parse_log_line(&line) else { panic!("{line}") };
        assert_eq!((epoch, values["loss"], values["val_score"]), (7, 0.5, 0.9));
        let line = event_line(&TrainEvent::Message("a \"quoted\" word".into()));
        assert_eq!(parse_log_line(&line), LogLine::Message("a \"quoted\" word".into()));
    }

    #[test]
    fn environment_is_checked() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            move |name: &str| map.get(name).cloned()
        };
        let full = [
            (ENV_TEMPLATE, "mlp_classifier"),
            (ENV_TASK, "classification"),
            (ENV_KNOBS, r#"{"epochs": 20}"#),
            (ENV_TRAIN_PATH, "/d/train.csv"),
            (ENV_VAL_PATH, "/d/val.csv"),
            (ENV_TARGET_COLUMN, "target"),
            (ENV_OUTPUT_DIR, "/out"),
        ];
        let env = WorkerEnv::from_lookup(vars(&full)).unwrap();
        assert_eq!(env.seed, 0);
        assert_eq!(env.task, Task::Classification);
        assert_eq!(env.trial_spec().train_csv, PathBuf::from("/d/train.csv"));
        let mut with_seed = full.to_vec();
        with_seed.push((ENV_SEED, "42"));
        assert_eq!(WorkerEnv::from_lookup(vars(&with_seed)).unwrap().seed, 42);
        for (drop, want) in [(ENV_TASK, "BOAT_TASK is not set"), (ENV_OUTPUT_DIR, "BOAT_OUTPUT_DIR is not set")] {
            let partial: Vec<_> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
            let err = WorkerEnv::from_lookup(vars(&partial)).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        let mut bad = full.to_vec();
        bad[2] = (ENV_KNOBS, "[1]");
        assert!(WorkerEnv::from_lookup(vars(&bad)).is_err());
        bad[2] = (ENV_KNOBS, "{}");
        bad[1] = (ENV_TASK, "ranking");
        assert!(format!("{:#}", WorkerEnv::from_lookup(vars(&bad)).unwrap_err()).contains("ranking"));
        bad[1] = (ENV_TASK, "regression");
        bad.push((ENV_SEED, "-3"));
        assert!(WorkerEnv::from_lookup(vars(&bad)).is_err());
    }
}
