use boat_serving::{ServingError, Tensor, TensorData};
use serde_json::json;

use crate::common::*;

fn invalid(result: Result<impl std::fmt::Debug, ServingError>, needle: &str) {
    match result {
        Err(ServingError::InvalidInput(m)) => {
            assert!(m.contains(needle), "message '{m}' should mention '{needle}'")
        }
        other => panic!("expected InvalidInput mentioning '{needle}', got {other:?}"),
    }
}

#[test]
fn unknown_model_or_version() {
    let reg = registry();
    let err = reg.infer("nope", 1, vec![iris_batch(&[0])]).unwrap_err();
    assert_eq!(err, ServingError::UnknownModel { name: "nope".into(), version: 1 });
    let err = reg.infer("mlp", 99, vec![iris_batch(&[0])]).unwrap_err();
    assert_eq!(err, ServingError::UnknownModel { name: "mlp".into(), version: 99 });
    let err = reg.predict_json("mlp", 2, &json!([1.0, 2.0, 3.0, 4.0])).unwrap_err();
    assert!(matches!(err, ServingError::UnknownModel { .. }));
}

#[test]
fn bad_inputs_are_invalid_input() {
    let reg = registry();
    let row = iris_rows()[0].clone();
    // unknown input name
    invalid(reg.infer("mlp", 1, vec![fp32("features", vec![1, 4], row.clone())]), "no input 'features'");
    // missing input
    invalid(reg.infer("mlp", 1, vec![]), "missing input(s) 'input'");
    // given twice
    invalid(reg.infer("mlp", 1, vec![iris_batch(&[0]), iris_batch(&[1])]), "given twice");
    // wrong datatype
    let f64s = Tensor::new("input", vec![1, 4], TensorData::Fp64(row.iter().map(|&x| x as f64).collect())).unwrap();
    invalid(reg.infer("mlp", 1, vec![f64s]), "has datatype FP64 but the model expects FP32");
    // rank mismatch
    invalid(reg.infer("mlp", 1, vec![fp32("input", vec![4], row.clone())]), "expects [-1, 4]");
    // fixed dim differs
    invalid(reg.infer("mlp", 1, vec![fp32("input", vec![1, 3], row[..3].to_vec())]), "has shape [1, 3]");
    // fixed batch dim differs
    invalid(reg.infer("fixed_batch", 1, vec![iris_batch(&[0, 1])]), "expects [1, 4]");
    // strings into a numeric model
    invalid(reg.infer("mlp", 1, vec![strings("input", &["a", "b", "c", "d"])]), "BYTES");
    // numbers into the echo model
    invalid(reg.infer("echo", 1, vec![fp32("input", vec![1], vec![1.0])]), "expects BYTES");
}

#[test]
fn bad_simple_json_is_invalid_input() {
    let reg = registry();
    invalid(reg.predict_json("mlp", 1, &json!("Hello")), "\"Hello\" is not a valid FP32");
    invalid(reg.predict_json("mlp", 1, &json!([1.0, 2.0, 3.0])), "expects [-1, 4]");
    invalid(reg.predict_json("mlp", 1, &json!([1.0, "x", 3.0, 4.0])), "not a valid FP32");
    invalid(reg.predict_json("mlp", 1, &json!([[1.0, 2.0, 3.0, 4.0], [1.0]])), "ragged");
    invalid(reg.predict_json("mlp", 1, &json!({"input": [1.0, 2.0, 3.0, 4.0]})), "an object");
    invalid(reg.predict_json("echo", 1, &json!(5)), "not a valid BYTES");
}

#[test]
fn oip_json_request_end_to_end() {
    let reg = registry();
    let body = json!({"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]});
    let t: Tensor = serde_json::from_value(body).unwrap();
    let out = reg.infer("mlp", 1, vec![t]).unwrap();
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v[0]["name"], json!("label"));
    assert_eq!(v[0]["datatype"], json!("INT64"));
    assert_eq!(v[0]["data"], json!([0]));
    assert_eq!(v[1]["shape"], json!([1, 3]));
}
