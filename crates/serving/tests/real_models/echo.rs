use boat_serving::{DataType, IoKind, IoMeta, ModelRegistry, RegistryConfig, ServingError, TensorData, ECHO_ONNX};
use serde_json::json;

use crate::common::*;

#[test]
fn echo_returns_its_input() {
    let reg = registry();
    let out = reg.infer("echo", 1, vec![strings("input", &["Hello"])]).unwrap();
    assert_eq!(out.len(), 1);
    let t = tensor(&out, "output");
    assert_eq!(t.datatype(), DataType::Bytes);
    assert_eq!(t.shape(), &[1]);
    assert_eq!(t.data(), &TensorData::Bytes(vec!["Hello".into()]));
}

#[test]
fn echo_keeps_unicode_and_batches_of_strings() {
    let reg = registry();
    let words = ["héllo wörld", "日本語のテキスト", "emoji 😀🚤", "", "tab\tand\nnewline", "plain"];
    let out = reg.infer("echo", 1, vec![strings("input", &words)]).unwrap();
    let t = tensor(&out, "output");
    assert_eq!(t.shape(), &[words.len() as i64]);
    let want: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    assert_eq!(t.data(), &TensorData::Bytes(want));
}

#[test]
fn echo_predict_json() {
    let reg = registry();
    assert_eq!(reg.predict_json("echo", 1, &json!("Hello")).unwrap(), json!("Hello"));
    assert_eq!(reg.predict_json("echo", 1, &json!("Ünïcødé 🚤")).unwrap(), json!("Ünïcødé 🚤"));
    assert_eq!(reg.predict_json("echo", 1, &json!(["a", "b", "c"])).unwrap(), json!({"output": ["a", "b", "c"]}));
}

#[test]
fn echo_metadata_and_embedded_bytes() {
    init();
    let reg = ModelRegistry::new(RegistryConfig { sessions_per_model: 1, ..RegistryConfig::default() });
    let meta = reg.load("echo", 7, ECHO_ONNX).unwrap();
    assert_eq!(ECHO_ONNX, model_bytes("echo.onnx").as_slice());
    assert_eq!((meta.name.as_str(), meta.version), ("echo", 7));
    assert_eq!(meta.size_bytes, ECHO_ONNX.len() as u64);
    assert_eq!(meta.sha256.len(), 64);
    let io = |name: &str| IoMeta {
        name: name.into(),
        datatype: Some(DataType::Bytes),
        shape: vec![-1],
        kind: IoKind::Tensor,
    };
    assert_eq!(meta.inputs, vec![io("input")]);
    assert_eq!(meta.outputs, vec![io("output")]);
    let as_json = serde_json::to_value(&meta).unwrap();
    assert_eq!(as_json["inputs"][0], json!({"name": "input", "datatype": "BYTES", "shape": [-1], "kind": "tensor"}));
}

#[test]
fn strings_with_nul_are_rejected_clearly() {
    let reg = registry();
    let err = reg.infer("echo", 1, vec![strings("input", &["a\0b"])]).unwrap_err();
    assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("NUL")), "{err}");
}
