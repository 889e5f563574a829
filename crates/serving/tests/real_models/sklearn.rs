use boat_serving::{validate, DataType, IoKind, ModelRegistry, Output, RegistryConfig, ServingError, TensorData};
use serde_json::{json, Value};

use crate::common::*;

fn check_mlp(out: &[Output], rows: &[usize]) {
    let exp = expected();
    let label = tensor(out, "label");
    let probs = tensor(out, "probabilities");
    assert_eq!(label.shape(), &[rows.len() as i64]);
    assert_eq!(probs.shape(), &[rows.len() as i64, 3]);
    let (TensorData::Int64(labels), TensorData::Fp32(p)) = (label.data(), probs.data()) else {
        panic!("unexpected datatypes {:?} {:?}", label.datatype(), probs.datatype());
    };
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(labels[i], exp["mlp"]["label"][r].as_i64().unwrap(), "label of row {r}");
        for c in 0..3 {
            let want = exp["mlp"]["probabilities"][r][c].as_f64().unwrap();
            assert_close(p[i * 3 + c] as f64, want, &format!("mlp row {r} class {c}"));
        }
    }
}

#[test]
fn mlp_matches_expected_outputs() {
    let reg = registry();
    let rows: Vec<usize> = (0..iris_rows().len()).collect();
    let out = reg.infer("mlp", 1, vec![iris_batch(&rows)]).unwrap();
    check_mlp(&out, &rows);
    // and one row at a time
    for r in rows {
        let out = reg.infer("mlp", 1, vec![iris_batch(&[r])]).unwrap();
        check_mlp(&out, &[r]);
    }
}

fn check_logreg(out: &[Output], rows: &[usize]) {
    let exp = expected();
    let label = tensor(out, "output_label");
    assert_eq!(
        label.data(),
        &TensorData::Int64(rows.iter().map(|&r| exp["iris_logreg"]["output_label"][r].as_i64().unwrap()).collect())
    );
    let Output::Json { shape, data, .. } = output(out, "output_probability") else {
        panic!("output_probability should be in the JSON form");
    };
    assert_eq!(shape, &vec![rows.len() as i64]);
    for (i, &r) in rows.iter().enumerate() {
        let want = exp["iris_logreg"]["output_probability"][r].as_object().unwrap();
        let got = data[i].as_object().unwrap();
        assert_eq!(got.len(), 3);
        for (k, v) in want {
            assert_close(got[k].as_f64().unwrap(), v.as_f64().unwrap(), &format!("logreg row {r} class {k}"));
        }
    }
}

#[test]
fn iris_logreg_zipmap_matches_expected_outputs() {
    let reg = registry();
    let meta = reg.meta("iris_logreg", 1).unwrap();
    let prob = meta.outputs.iter().find(|o| o.name == "output_probability").unwrap();
    assert_eq!((prob.kind, prob.datatype), (IoKind::Sequence, None));
    let rows: Vec<usize> = (0..iris_rows().len()).collect();
    let out = reg.infer("iris_logreg", 1, vec![iris_batch(&rows)]).unwrap();
    check_logreg(&out, &rows);
    // the documented JSON form
    let v = serde_json::to_value(output(&out, "output_probability")).unwrap();
    assert_eq!(v["datatype"], json!("JSON"));
    assert_eq!(v["shape"], json!([rows.len()]));
    assert!(v["data"][0]["0"].is_number());
}

#[test]
fn predict_json_on_sklearn_models() {
    let reg = registry();
    let exp = expected();
    let row = Value::from(iris_rows()[2].iter().map(|&x| x as f64).collect::<Vec<_>>());
    let reply = reg.predict_json("iris_logreg", 1, &row).unwrap();
    assert_eq!(reply["output_label"], json!([exp["iris_logreg"]["output_label"][2]]));
    let probs = reply["output_probability"][0].as_object().unwrap();
    for (k, v) in exp["iris_logreg"]["output_probability"][2].as_object().unwrap() {
        assert_close(probs[k].as_f64().unwrap(), v.as_f64().unwrap(), k);
    }
    let reply = reg.predict_json("mlp", 1, &row).unwrap();
    assert_eq!(reply["label"], json!([1]));
    assert_eq!(reply["probabilities"].as_array().unwrap().len(), 1);
    assert_close(
        reply["probabilities"][0][1].as_f64().unwrap(),
        exp["mlp"]["probabilities"][2][1].as_f64().unwrap(),
        "mlp via predict_json",
    );
    // a nested array is a batch
    let two = json!([iris_rows()[0].clone(), iris_rows()[5].clone()]);
    let reply = reg.predict_json("mlp", 1, &two).unwrap();
    assert_eq!(reply["label"], json!([0, 2]));
}

#[test]
fn fixed_batch_model_runs_one_row() {
    let reg = registry();
    let meta = reg.meta("fixed_batch", 1).unwrap();
    assert_eq!(meta.inputs[0].shape, vec![1, 4]);
    let exp = expected();
    for (r, row) in iris_rows().into_iter().enumerate() {
        let out = reg.infer("fixed_batch", 1, vec![fp32("input", vec![1, 4], row)]).unwrap();
        let TensorData::Fp32(got) = tensor(&out, "output").data() else { panic!("FP32 expected") };
        for (c, g) in got.iter().enumerate() {
            assert_close(*g as f64, exp["fixed_batch"]["output"][r][c].as_f64().unwrap(), "fixed_batch");
        }
    }
}

#[test]
fn validate_describes_without_registering() {
    init();
    let reg = ModelRegistry::new(RegistryConfig::default());
    let bytes = model_bytes("mlp.onnx");
    let sig = reg.validate(&bytes).unwrap();
    assert!(reg.list().is_empty());
    assert_eq!(sig.size_bytes, bytes.len() as u64);
    assert_eq!(sig.inputs.len(), 1);
    assert_eq!(sig.inputs[0].datatype, Some(DataType::Fp32));
    assert_eq!(sig.inputs[0].shape, vec![-1, 4]);
    let names: Vec<_> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["label", "probabilities"]);
    assert_eq!(sig.outputs[1].shape, vec![-1, 3]);
    let meta = reg.load("mlp", 3, &bytes).unwrap();
    // `into_meta` leaves the probe's flag unset; loading probes
    let mut want = sig.clone().into_meta("mlp", 3);
    assert!(!want.batch_invariant);
    want.batch_invariant = meta.batch_invariant;
    assert_eq!(meta, want);
    assert_eq!(validate(&bytes).unwrap(), sig);
}

#[test]
fn invalid_onnx_is_invalid_model() {
    init();
    let reg = ModelRegistry::new(RegistryConfig::default());
    let echo = model_bytes("echo.onnx");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not an onnx model".to_vec()),
        ("truncated", echo[..echo.len() / 2].to_vec()),
        ("random", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
    ];
    for (what, bytes) in cases {
        let err = reg.validate(&bytes).unwrap_err();
        assert!(matches!(err, ServingError::InvalidModel(_)), "{what}: {err:?}");
        let err = reg.load("bad", 1, &bytes).unwrap_err();
        assert!(matches!(err, ServingError::InvalidModel(_)), "{what}: {err:?}");
    }
    assert!(reg.list().is_empty());
}

#[test]
fn load_unload_list_lifecycle() {
    init();
    let reg = ModelRegistry::new(RegistryConfig::default());
    let echo = model_bytes("echo.onnx");
    let a = reg.load("echo", 1, &echo).unwrap();
    let again = reg.load("echo", 1, &echo).unwrap();
    assert_eq!(a, again);
    reg.load("echo", 2, &echo).unwrap();
    reg.load("mlp", 1, &model_bytes("mlp.onnx")).unwrap();
    let keys: Vec<_> = reg.list().into_iter().map(|m| (m.name, m.version)).collect();
    assert_eq!(keys, [("echo".into(), 1), ("echo".into(), 2), ("mlp".to_string(), 1)]);
    assert_eq!(reg.latest_version("echo"), Some(2));
    // a different model under an existing key replaces it
    let replaced = reg.load("echo", 2, &model_bytes("mlp.onnx")).unwrap();
    assert_eq!(replaced.inputs[0].datatype, Some(DataType::Fp32));
    assert_eq!(reg.unload("echo", 2).map(|m| m.version), Some(2));
    assert!(reg.meta("echo", 2).is_none());
    let err = reg.infer("echo", 2, vec![strings("input", &["x"])]).unwrap_err();
    assert!(matches!(err, ServingError::UnknownModel { .. }));
    // a clone shares the models
    let clone = reg.clone();
    clone.unload("mlp", 1);
    assert!(!reg.contains("mlp", 1));
}

#[test]
fn separately_loaded_registries_agree_bit_for_bit() {
    let a = registry();
    let b = registry();
    let rows: Vec<usize> = (0..iris_rows().len()).collect();
    for model in ["mlp", "iris_logreg"] {
        let x = a.infer(model, 1, vec![iris_batch(&rows)]).unwrap();
        let y = b.infer(model, 1, vec![iris_batch(&rows)]).unwrap();
        assert_bit_identical(&x, &y);
    }
    let x = a.infer("fixed_batch", 1, vec![iris_batch(&[3])]).unwrap();
    let y = b.infer("fixed_batch", 1, vec![iris_batch(&[3])]).unwrap();
    assert_bit_identical(&x, &y);
}

#[test]
fn concurrent_requests_share_the_session_pool() {
    let reg = registry();
    let want = reg.infer("mlp", 1, vec![iris_batch(&[0, 2, 4])]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let got = reg.infer("mlp", 1, vec![iris_batch(&[0, 2, 4])]).unwrap();
                    assert_bit_identical(&got, &want);
                }
            });
        }
    });
}
