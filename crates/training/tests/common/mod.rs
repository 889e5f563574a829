//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use boat_training::knobs::{KnobValue, Knobs};
use boat_training::templates::{Task, TrialSpec};

/// A shipped dataset, by file stem (`iris`, `digits`, ...).
pub fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets").join(format!("{name}.csv"))
}

/// Splits a shipped CSV into `train.csv` and `val.csv` in `dir`: every fifth
/// data row (the 5th, 10th, ...) goes to validation, the rest to training.
/// The shipped files list classes in blocks, so this keeps their shares.
/// Returns the paths and the number of validation rows.
pub fn split(name: &str, dir: &Path) -> (PathBuf, PathBuf, usize) {
    let text = std::fs::read_to_string(dataset(name)).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut train, mut val) = (vec![header], vec![header]);
    for (i, line) in lines.filter(|l| !l.is_empty()).enumerate() {
        if i % 5 == 4 {
            val.push(line);
        } else {
            train.push(line);
        }
    }
    let (t, v) = (dir.join("train.csv"), dir.join("val.csv"));
    std::fs::write(&t, train.join("\n") + "\n").unwrap();
    std::fs::write(&v, val.join("\n") + "\n").unwrap();
    (t, v, val.len() - 1)
}

pub fn knobs(pairs: &[(&str, KnobValue)]) -> Knobs {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

pub fn int(v: i64) -> KnobValue {
    KnobValue::Int(v)
}

pub fn float(v: f64) -> KnobValue {
    KnobValue::Float(v)
}

pub fn text(v: &str) -> KnobValue {
    KnobValue::Str(v.to_string())
}

/// Default MLP knobs.
pub fn mlp_knobs() -> Knobs {
    knobs(&[
        ("hidden_layers", int(1)),
        ("hidden_units", int(32)),
        ("learning_rate", float(0.01)),
        ("epochs", int(60)),
        ("batch_size", int(32)),
        ("activation", text("relu")),
        ("weight_decay", float(1e-4)),
    ])
}

pub fn logistic_knobs() -> Knobs {
    knobs(&[("learning_rate", float(0.05)), ("l2", float(1e-4)), ("epochs", int(100)), ("batch_size", int(32))])
}

pub fn spec(template: &str, task: Task, knobs: Knobs, train: &Path, val: &Path) -> TrialSpec {
    TrialSpec {
        template: template.to_string(),
        task,
        knobs,
        train_csv: train.to_path_buf(),
        val_csv: val.to_path_buf(),
        target_column: "target".to_string(),
        seed: 7,
    }
}
