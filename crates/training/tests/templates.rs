//! The built-in templates trained on the shipped datasets, with their exports
//! run in ONNX Runtime (needs `ORT_DYLIB_PATH`, see `scripts/fetch-ort.sh`).

mod common;

use std::time::Instant;

use boat_serving::{DataType, IoKind, ModelRegistry, RegistryConfig};
use boat_training::data::DataError;
use boat_training::knobs::KnobError;
use boat_training::templates::{train, Task, TrainError, TrainEvent, TrialOutput, TrialSpec};
use common::*;
use serde_json::json;

fn run(spec: &TrialSpec) -> (TrialOutput, Vec<TrainEvent>) {
    let mut events = Vec::new();
    let start = Instant::now();
    let out = train(spec, &mut |e| events.push(e)).unwrap_or_else(|e| panic!("{}: {e}", spec.template));
    println!(
        "{} on {}: {} {:.4} after {} epochs in {:.2?}",
        spec.template,
        spec.train_csv.display(),
        out.metric,
        out.score,
        out.epochs_run,
        start.elapsed()
    );
    (out, events)
}

/// Loads an export the way a node does and returns the registry holding it.
fn serve(onnx: &[u8]) -> ModelRegistry {
    let registry = ModelRegistry::new(RegistryConfig::default());
    registry.load("m", 1, onnx).unwrap();
    registry
}

#[test]
fn iris_mlp_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, val_rows) = split("iris", dir.path());
    let (out, events) = run(&spec("mlp_classifier", Task::Classification, mlp_knobs(), &t, &v));
    assert!(out.score >= 0.9, "accuracy {}", out.score);
    assert_eq!(out.metric, "accuracy");
    assert_eq!(out.classes, ["0", "1", "2"]);
    assert_eq!(out.checked_rows, val_rows);
    let epochs: Vec<u32> = events
        .iter()
        .filter_map(|e| if let TrainEvent::Epoch { epoch, .. } = e { Some(*epoch) } else { None })
        .collect();
    assert_eq!(epochs, (1..=out.epochs_run).collect::<Vec<_>>());

    // The contract of a classifier export.
    let registry = serve(&out.onnx);
    let meta = registry.meta("m", 1).unwrap();
    assert_eq!(meta.inputs.len(), 1);
    assert_eq!(
        (meta.inputs[0].name.as_str(), meta.inputs[0].datatype, &meta.inputs[0].shape[..]),
        ("input", Some(DataType::Fp32), &[-1, 4][..])
    );
    let outputs: Vec<_> = meta.outputs.iter().map(|o| (o.name.as_str(), o.datatype, o.shape.clone(), o.kind)).collect();
    assert_eq!(
        outputs,
        [
            ("label", Some(DataType::Int64), vec![-1], IoKind::Tensor),
            ("probabilities", Some(DataType::Fp32), vec![-1, 3], IoKind::Tensor)
        ]
    );
    // Raw features in, the class label out: a typical setosa and virginica.
    let reply = registry.predict_json("m", 1, &json!([[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]])).unwrap();
    assert_eq!(reply["label"], json!([0, 2]), "{reply}");
    let probs = reply["probabilities"][0].as_array().unwrap();
    let sum: f64 = probs.iter().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5, "{reply}");
}

#[test]
fn iris_logistic_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, val_rows) = split("iris", dir.path());
    let (out, _) = run(&spec("logistic_regression", Task::Classification, logistic_knobs(), &t, &v));
    assert!(out.score >= 0.9, "accuracy {}", out.score);
    assert_eq!(out.checked_rows, val_rows);
    let registry = serve(&out.onnx);
    let reply = registry.predict_json("m", 1, &json!([5.1, 3.5, 1.4, 0.2])).unwrap();
    assert_eq!(reply["label"], json!([0]), "{reply}");
}

#[test]
fn diabetes_mlp_regressor() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, val_rows) = split("diabetes", dir.path());
    let (out, _) = run(&spec("mlp_regressor", Task::Regression, mlp_knobs(), &t, &v));
    assert!(out.score > 0.3, "R² {}", out.score);
    assert_eq!(out.metric, "r2");
    assert!(out.classes.is_empty());
    assert_eq!(out.checked_rows, val_rows);
    let registry = serve(&out.onnx);
    let meta = registry.meta("m", 1).unwrap();
    assert_eq!(meta.outputs.len(), 1);
    assert_eq!((meta.outputs[0].name.as_str(), &meta.outputs[0].shape[..]), ("prediction", &[-1, 1][..]));
    // The output is in the target's units (disease progression, 25..346),
    // not standardised.
    let first_row: Vec<f64> =
        std::fs::read_to_string(&v).unwrap().lines().nth(1).unwrap().split(',').map(|c| c.parse().unwrap()).collect();
    let reply = registry.predict_json("m", 1, &json!(first_row[..10])).unwrap();
    let p = reply.as_f64().unwrap_or_else(|| panic!("{reply}"));
    assert!((20.0..400.0).contains(&p), "{p}");
}

#[test]
fn digits_trial_is_quick() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, val_rows) = split("digits", dir.path());
    let mut knobs = mlp_knobs();
    knobs.insert("hidden_units".into(), int(64));
    let start = Instant::now();
    let (out, _) = run(&spec("mlp_classifier", Task::Classification, knobs, &t, &v));
    assert!(out.score >= 0.9, "accuracy {}", out.score);
    assert_eq!(out.classes.len(), 10);
    assert_eq!(out.checked_rows, val_rows);
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
}

#[test]
fn same_seed_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, _) = split("wine", dir.path());
    let mut s = spec("mlp_classifier", Task::Classification, mlp_knobs(), &t, &v);
    let (a, _) = run(&s);
    let (b, _) = run(&s);
    assert_eq!(a.onnx, b.onnx);
    assert_eq!(a.score, b.score);
    s.seed += 1;
    let (c, _) = run(&s);
    assert_ne!(a.onnx, c.onnx);
}

#[test]
fn faults_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v, _) = split("iris", dir.path());
    let fail = |s: TrialSpec| train(&s, &mut |_| {}).unwrap_err();

    let err = fail(spec("mlp_classifier", Task::Regression, mlp_knobs(), &t, &v));
    assert!(
        matches!(
            err,
            TrainError::TaskMismatch { template_task: Task::Classification, requested: Task::Regression, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does classification"), "{err}");

    let mut knobs = mlp_knobs();
    knobs.insert("dropout".into(), float(0.1));
    let err = fail(spec("mlp_classifier", Task::Classification, knobs, &t, &v));
    assert_eq!(err, TrainError::Knobs(KnobError::Unknown("dropout".into())));

    let mut knobs = mlp_knobs();
    knobs.insert("hidden_units".into(), int(4096));
    let err = fail(spec("mlp_classifier", Task::Classification, knobs, &t, &v));
    assert!(
        matches!(err, TrainError::Knobs(KnobError::OutOfRange { ref name, .. }) if name == "hidden_units"),
        "{err}"
    );

    let mut knobs = mlp_knobs();
    knobs.remove("epochs");
    let err = fail(spec("mlp_classifier", Task::Classification, knobs, &t, &v));
    assert_eq!(err, TrainError::Knobs(KnobError::Missing("epochs".into())));

    let err = fail(spec("random_forest", Task::Classification, mlp_knobs(), &t, &v));
    assert!(matches!(err, TrainError::UnknownTemplate { .. }), "{err}");
    assert!(err.to_string().contains("mlp_classifier"), "{err}");

    let mut s = spec("mlp_classifier", Task::Classification, mlp_knobs(), &t, &v);
    s.target_column = "species".into();
    assert!(matches!(fail(s), TrainError::Data(DataError::MissingTarget { .. })));

    // Text labels cannot become the int64 `label` output.
    let named = dir.path().join("named.csv");
    std::fs::write(&named, "a,b,target\n1,2,cat\n2,1,dog\n1,1,cat\n2,2,dog\n").unwrap();
    let err = fail(spec("logistic_regression", Task::Classification, logistic_knobs(), &named, &named));
    assert!(matches!(err, TrainError::Unsupported(ref m) if m.contains("'cat'")), "{err}");
}
