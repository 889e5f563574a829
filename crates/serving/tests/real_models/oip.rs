//! The Open Inference Protocol codec end to end: v2 JSON request → check → infer → v2 response.

use boat_serving::oip::{check_requested_outputs, infer_response, model_metadata, InferRequest};
use boat_serving::ServingError;
use serde_json::{json, Value};

use crate::common::*;

/// A v2 request body for mlp with every iris row of expected.json (nested data).
fn mlp_request(outputs: Option<Value>) -> Value {
    let mut body = json!({
        "id": "iris-6",
        "parameters": {"note": "kept, not interpreted"},
        "inputs": [{
            "name": "input",
            "shape": [iris_rows().len(), 4],
            "datatype": "FP32",
            "data": expected()["inputs"].clone(),
        }],
    });
    if let Some(o) = outputs {
        body["outputs"] = o;
    }
    body
}

#[test]
fn v2_request_for_mlp_matches_expected_probabilities() {
    let reg = registry();
    let text = serde_json::to_vec(&mlp_request(Some(json!([{"name": "probabilities"}])))).unwrap();
    let req = InferRequest::from_slice(&text).unwrap();
    let requested = req.requested_output_names().unwrap();
    let meta = reg.meta("mlp", 1).unwrap();
    check_requested_outputs(&meta, &requested).unwrap();
    let checked = reg.check("mlp", 1, req.inputs.clone()).unwrap();
    let outputs = reg.infer("mlp", 1, checked).unwrap();
    let resp = infer_response("mlp", "1", req.id.as_deref(), &outputs, Some(&requested));

    assert_eq!(resp["model_name"], json!("mlp"));
    assert_eq!(resp["model_version"], json!("1"));
    assert_eq!(resp["id"], json!("iris-6"));
    let outs = resp["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 1, "only the requested output: {resp}");
    let probs = &outs[0];
    assert_eq!(probs["name"], json!("probabilities"));
    assert_eq!(probs["datatype"], json!("FP32"));
    let n = iris_rows().len();
    assert_eq!(probs["shape"], json!([n, 3]));
    let flat = probs["data"].as_array().unwrap();
    assert_eq!(flat.len(), n * 3, "flat row-major data");
    let exp = expected();
    for r in 0..n {
        for c in 0..3 {
            assert_close(
                flat[r * 3 + c].as_f64().unwrap(),
                exp["mlp"]["probabilities"][r][c].as_f64().unwrap(),
                &format!("row {r} class {c}"),
            );
        }
    }
    // the response carries exactly the f32 values the model produced
    let got: Vec<f32> = flat.iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let boat_serving::TensorData::Fp32(want) = tensor(&outputs, "probabilities").data() else {
        panic!("FP32 expected")
    };
    assert_eq!(&got, want);

    // without `outputs`, everything in model order, labels as in expected.json
    let req = InferRequest::from_json(&mlp_request(None)).unwrap();
    let outputs = reg.infer("mlp", 1, req.inputs).unwrap();
    let resp = infer_response("mlp", "1", None, &outputs, None);
    assert!(resp.get("id").is_none());
    assert_eq!(resp["outputs"][0]["name"], json!("label"));
    assert_eq!(resp["outputs"][0]["datatype"], json!("INT64"));
    assert_eq!(resp["outputs"][0]["data"], exp["mlp"]["label"]);
    assert_eq!(resp["outputs"][1]["name"], json!("probabilities"));
}

#[test]
fn v2_request_for_zipmap_model_gives_json_outputs() {
    let reg = registry();
    let flat = [iris_rows()[2].clone(), iris_rows()[5].clone()].concat();
    let req = InferRequest::from_json(&json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": flat}]
    }))
    .unwrap();
    let outputs = reg.infer("iris_logreg", 1, req.inputs).unwrap();
    let resp = infer_response("iris_logreg", "1", None, &outputs, None);
    let prob = &resp["outputs"][1];
    assert_eq!(prob["name"], json!("output_probability"));
    assert_eq!(prob["datatype"], json!("JSON"));
    assert_eq!(prob["shape"], json!([2]));
    let exp = expected();
    for (i, r) in [2usize, 5].into_iter().enumerate() {
        for (k, v) in exp["iris_logreg"]["output_probability"][r].as_object().unwrap() {
            assert_close(prob["data"][i][k].as_f64().unwrap(), v.as_f64().unwrap(), &format!("row {r} class {k}"));
        }
    }
    assert_eq!(
        resp["outputs"][0]["data"],
        json!([exp["iris_logreg"]["output_label"][2], exp["iris_logreg"]["output_label"][5]])
    );
}

#[test]
fn v2_bytes_request_for_echo() {
    let reg = registry();
    let req = InferRequest::from_slice(
        r#"{"id": "e", "inputs": [{"name": "input", "shape": [2], "datatype": "BYTES", "data": ["Hello", "wörld 🚤"]}]}"#
            .as_bytes(),
    )
    .unwrap();
    let outputs = reg.infer("echo", 1, req.inputs).unwrap();
    let resp = infer_response("echo", "1", req.id.as_deref(), &outputs, None);
    assert_eq!(
        resp,
        json!({"model_name": "echo", "model_version": "1", "id": "e", "outputs": [
            {"name": "output", "datatype": "BYTES", "shape": [2], "data": ["Hello", "wörld 🚤"]}
        ]})
    );
}

#[test]
fn v2_errors_before_commit() {
    let reg = registry();
    let meta = reg.meta("mlp", 1).unwrap();
    let req = InferRequest::from_json(&mlp_request(Some(json!([{"name": "logits"}])))).unwrap();
    let err = check_requested_outputs(&meta, &req.requested_output_names().unwrap()).unwrap_err();
    assert!(
        matches!(err, ServingError::InvalidInput(ref m)
            if m.contains("no output 'logits'") && m.contains("'probabilities'")),
        "{err}"
    );
    // a well-formed request that does not fit the model is refused by `check`
    let req = InferRequest::from_json(&json!({
        "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }))
    .unwrap();
    assert!(matches!(
        reg.check("mlp", 1, req.inputs),
        Err(ServingError::InvalidInput(ref m)) if m.contains("expects [-1, 4]")
    ));
    // a malformed one never becomes tensors
    let err = InferRequest::from_json(&json!({
        "inputs": [{"name": "input", "shape": [1099511627776i64, 4], "datatype": "FP32", "data": []}]
    }))
    .unwrap_err();
    assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("data has 0")), "{err}");
    assert_eq!(reg.run_count("mlp", 1), Some(0));
}

#[test]
fn v2_metadata_of_real_models() {
    let reg = registry();
    let v = model_metadata(&reg.meta("mlp", 1).unwrap(), &[1]);
    assert_eq!(
        v,
        json!({
            "name": "mlp",
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
            ]
        })
    );
    let v = model_metadata(&reg.meta("iris_logreg", 1).unwrap(), &[2, 1]);
    assert_eq!(v["versions"], json!(["1", "2"]));
    assert_eq!(v["outputs"][1], json!({"name": "output_probability", "datatype": "JSON", "shape": [-1]}));
    let v = model_metadata(&reg.meta("fixed_batch", 1).unwrap(), &[1]);
    assert_eq!(v["inputs"][0]["shape"], json!([1, 4]));
    let v = model_metadata(&reg.meta("echo", 1).unwrap(), &[1]);
    assert_eq!(v["inputs"][0], json!({"name": "input", "datatype": "BYTES", "shape": [-1]}));
}
