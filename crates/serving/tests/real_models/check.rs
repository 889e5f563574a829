//! Checking without running (`check`, `boat_inputs`) and the request size limit.

use boat_serving::{boat_output, ModelRegistry, RegistryConfig, ServingError, Tensor, TensorData};
use serde_json::{json, Value};

use crate::common::*;

fn invalid<T: std::fmt::Debug>(result: Result<T, ServingError>, needle: &str) {
    match result {
        Err(ServingError::InvalidInput(m)) => {
            assert!(m.contains(needle), "message '{m}' should mention '{needle}'")
        }
        other => panic!("expected InvalidInput mentioning '{needle}', got {other:?}"),
    }
}

/// A registry with only mlp and echo loaded, and a small request limit.
fn limited(max_elements: usize) -> ModelRegistry {
    init();
    let reg =
        ModelRegistry::new(RegistryConfig { max_elements_per_request: max_elements, ..RegistryConfig::default() });
    reg.load("mlp", 1, &model_bytes("mlp.onnx")).unwrap();
    reg.load("echo", 1, &model_bytes("echo.onnx")).unwrap();
    reg
}

#[test]
fn check_returns_what_infer_runs_without_running() {
    let reg = registry();
    let input = iris_batch(&[0, 2, 4]);
    let checked = reg.check("mlp", 1, vec![input.clone()]).unwrap();
    assert_eq!(checked, vec![input.clone()]);
    assert_eq!(reg.run_count("mlp", 1), Some(0), "check must not run the model");
    let from_checked = reg.infer("mlp", 1, checked).unwrap();
    let direct = reg.infer("mlp", 1, vec![input]).unwrap();
    assert_bit_identical(&from_checked, &direct);
    assert_eq!(reg.run_count("mlp", 1), Some(2));
}

#[test]
fn check_refuses_exactly_what_infer_refuses() {
    let reg = registry();
    let row = iris_rows()[0].clone();
    let bad: Vec<(&str, Vec<Tensor>)> = vec![
        ("mlp", vec![fp32("features", vec![1, 4], row.clone())]),
        ("mlp", vec![]),
        ("mlp", vec![iris_batch(&[0]), iris_batch(&[1])]),
        ("mlp", vec![Tensor::new("input", vec![1, 4], TensorData::Fp64(vec![1.0; 4])).unwrap()]),
        ("mlp", vec![fp32("input", vec![4], row.clone())]),
        ("mlp", vec![fp32("input", vec![1, 3], row[..3].to_vec())]),
        ("fixed_batch", vec![iris_batch(&[0, 1])]),
        ("echo", vec![fp32("input", vec![1], vec![1.0])]),
        ("nope", vec![iris_batch(&[0])]),
    ];
    for (model, inputs) in bad {
        let from_check = reg.check(model, 1, inputs.clone()).unwrap_err();
        let from_infer = reg.infer(model, 1, inputs.clone()).unwrap_err();
        assert_eq!(from_check, from_infer, "{model} {inputs:?}");
        let expected_kind = if model == "nope" {
            matches!(from_check, ServingError::UnknownModel { .. })
        } else {
            matches!(from_check, ServingError::InvalidInput(_))
        };
        assert!(expected_kind, "{model}: {from_check:?}");
    }
    assert_eq!(reg.run_count("mlp", 1), Some(0));
}

#[test]
fn boat_inputs_then_infer_is_predict_json() {
    let reg = registry();
    let row = Value::from(iris_rows()[3].iter().map(|&x| x as f64).collect::<Vec<_>>());
    let two = json!([iris_rows()[1].clone(), iris_rows()[4].clone()]);
    let cases = [
        ("mlp", row.clone()),
        ("mlp", two),
        ("iris_logreg", row),
        ("echo", json!("Hello")),
        ("echo", json!(["a", "b"])),
    ];
    for (model, input) in cases {
        let tensors = reg.boat_inputs(model, 1, &input).unwrap();
        assert_eq!(tensors.len(), 1);
        let rebuilt = boat_output(reg.infer(model, 1, tensors).unwrap());
        assert_eq!(rebuilt, reg.predict_json(model, 1, &input).unwrap(), "{model} {input}");
    }
    let t = reg.boat_inputs("mlp", 1, &json!([1, 2, 3, 4])).unwrap();
    assert_eq!(t[0].shape(), &[1, 4]);
    assert_eq!(t[0].data(), &TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0]));
    let t = reg.boat_inputs("echo", 1, &json!("Hello")).unwrap();
    assert_eq!(t[0].data(), &TensorData::Bytes(vec!["Hello".into()]));
    assert_eq!(reg.predict_json("echo", 1, &json!("Hello")).unwrap(), json!("Hello"));
}

#[test]
fn boat_inputs_refuses_what_predict_json_refuses() {
    let reg = registry();
    for (model, input) in [
        ("mlp", json!("Hello")),
        ("mlp", json!([1.0, 2.0, 3.0])),
        ("mlp", json!([[1.0, 2.0, 3.0, 4.0], [1.0]])),
        ("mlp", json!({"input": [1.0, 2.0, 3.0, 4.0]})),
        ("echo", json!(5)),
        ("nope", json!(1)),
    ] {
        let a = reg.boat_inputs(model, 1, &input).unwrap_err();
        let b = reg.predict_json(model, 1, &input).unwrap_err();
        assert_eq!(a, b, "{model} {input}");
    }
    let before = reg.run_count("mlp", 1);
    invalid(reg.boat_inputs("mlp", 1, &json!([1.0, 2.0, 3.0])), "expects [-1, 4]");
    assert_eq!(reg.run_count("mlp", 1), before);
}

#[test]
fn requests_over_the_limit_are_refused_everywhere() {
    let reg = limited(8);
    // two iris rows are 8 elements: fine; three are 12
    assert!(reg.infer("mlp", 1, vec![iris_batch(&[0, 1])]).is_ok());
    let msg = "the request has 12 elements, the limit is 8";
    invalid(reg.check("mlp", 1, vec![iris_batch(&[0, 1, 2])]), msg);
    invalid(reg.infer("mlp", 1, vec![iris_batch(&[0, 1, 2])]), msg);
    let rows = json!([iris_rows()[0].clone(), iris_rows()[1].clone(), iris_rows()[2].clone()]);
    invalid(reg.boat_inputs("mlp", 1, &rows), msg);
    invalid(reg.predict_json("mlp", 1, &rows), msg);
    let nine: Vec<&str> = vec!["x"; 9];
    invalid(reg.infer("echo", 1, vec![strings("input", &nine)]), "the request has 9 elements, the limit is 8");
    // in a batch, the limit applies per request and the big one fails alone
    let before = reg.run_count("mlp", 1).unwrap();
    let results = reg.infer_batch(
        "mlp",
        1,
        vec![vec![iris_batch(&[0])], vec![iris_batch(&[0, 1, 2])], vec![iris_batch(&[1, 2])]],
    );
    invalid(results[1].clone(), msg);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(reg.run_count("mlp", 1).unwrap() - before, 1, "3 rows in one run is fine");
}

#[test]
fn default_limit_and_absurd_shapes() {
    let reg = registry();
    assert_eq!(reg.config().max_elements_per_request, 1_000_000);
    let rows = |n: usize| fp32("input", vec![n as i64, 4], vec![0.5; n * 4]);
    assert!(reg.check("mlp", 1, vec![rows(250_000)]).is_ok());
    invalid(reg.check("mlp", 1, vec![rows(250_001)]), "the request has 1000004 elements, the limit is 1000000");
    // no elements but an absurd dimension: refused before anything sees the shape
    let empty = Tensor::new("input", vec![1 << 40, 0], TensorData::Fp32(vec![])).unwrap();
    invalid(reg.infer("mlp", 1, vec![empty.clone()]), "multiply past the limit");
    invalid(reg.check("mlp", 1, vec![empty]), "multiply past the limit");
    // shapes no tensor can have never become tensors
    for shape in [vec![-1, 4], vec![i64::MAX, 2, 0], vec![0, i64::MAX, i64::MAX]] {
        let r = Tensor::new("input", shape.clone(), TensorData::Fp32(vec![]));
        assert!(matches!(r, Err(ServingError::InvalidInput(_))), "{shape:?}: {r:?}");
    }
    // an empty batch of the right shape passes the checks (the MLP's ArrayFeatureExtractor
    // then refuses zero rows at run time, which is ONNX Runtime's call)
    assert!(reg.check("mlp", 1, vec![rows(0)]).is_ok());
    assert!(matches!(reg.infer("mlp", 1, vec![rows(0)]), Err(ServingError::Inference(_))));
}

#[test]
fn limit_of_one_element() {
    let reg = limited(1);
    assert!(reg.predict_json("echo", 1, &json!("Hello")).is_ok());
    invalid(reg.predict_json("echo", 1, &json!(["a", "b"])), "the limit is 1");
}
