use std::path::{Path, PathBuf};

use boat_serving::{init_runtime, ModelRegistry, Output, RegistryConfig, Tensor, TensorData};
use serde_json::Value;

pub const ORT_FILE: &str = "libonnxruntime.so.1.31.1";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn init() {
    let fallback = workspace_root().join(".ort").join(ORT_FILE);
    let from_env = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty());
    let path = from_env.map(PathBuf::from).unwrap_or(fallback);
    init_runtime(Some(&path))
        .unwrap_or_else(|e| panic!("{e}\nrun scripts/fetch-ort.sh or set ORT_DYLIB_PATH to {ORT_FILE}"));
}

pub fn model_bytes(file: &str) -> Vec<u8> {
    let path = workspace_root().join("models").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh registry with the test models loaded as version 1 under their file stems.
pub fn registry() -> ModelRegistry {
    init();
    let reg = ModelRegistry::new(RegistryConfig::default());
    for name in ["echo", "mlp", "iris_logreg", "fixed_batch"] {
        reg.load(name, 1, &model_bytes(&format!("{name}.onnx"))).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    }
    reg
}

pub fn expected() -> Value {
    serde_json::from_slice(&model_bytes("expected.json")).expect("expected.json parses")
}

/// The iris rows in expected.json, as f32.
pub fn iris_rows() -> Vec<Vec<f32>> {
    expected()["inputs"]
        .as_array()
        .expect("inputs array")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|v| v.as_f64().expect("number") as f32).collect())
        .collect()
}

pub fn fp32(name: &str, shape: Vec<i64>, data: Vec<f32>) -> Tensor {
    Tensor::new(name, shape, TensorData::Fp32(data)).expect("valid tensor")
}

pub fn strings(name: &str, data: &[&str]) -> Tensor {
    let data: Vec<String> = data.iter().map(|s| s.to_string()).collect();
    Tensor::new(name, vec![data.len() as i64], data.into()).expect("valid tensor")
}

/// Rows `rows` of the iris inputs as one `[n, 4]` FP32 tensor named `input`.
pub fn iris_batch(rows: &[usize]) -> Tensor {
    let all = iris_rows();
    let data: Vec<f32> = rows.iter().flat_map(|&r| all[r].clone()).collect();
    fp32("input", vec![rows.len() as i64, 4], data)
}

pub fn output<'a>(outputs: &'a [Output], name: &str) -> &'a Output {
    outputs.iter().find(|o| o.name() == name).unwrap_or_else(|| panic!("no output {name} in {outputs:?}"))
}

pub fn tensor<'a>(outputs: &'a [Output], name: &str) -> &'a Tensor {
    output(outputs, name).as_tensor().unwrap_or_else(|| panic!("{name} is not a tensor"))
}

pub fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-5, "{what}: got {got}, want {want}");
}

/// Outputs compared bit for bit (floats by their bits, so NaNs compare too).
pub fn assert_bit_identical(a: &[Output], b: &[Output]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        match (x.as_tensor(), y.as_tensor()) {
            (Some(tx), Some(ty)) => {
                assert_eq!(tx.name(), ty.name());
                assert_eq!(tx.shape(), ty.shape());
                match (tx.data(), ty.data()) {
                    (TensorData::Fp32(p), TensorData::Fp32(q)) => {
                        let pb: Vec<u32> = p.iter().map(|f| f.to_bits()).collect();
                        let qb: Vec<u32> = q.iter().map(|f| f.to_bits()).collect();
                        assert_eq!(pb, qb, "output {}", tx.name());
                    }
                    (p, q) => assert_eq!(p, q, "output {}", tx.name()),
                }
            }
            _ => assert_eq!(x, y),
        }
    }
}

/// Outputs compared with floats (in tensors and in the JSON form) within 1e-6.
pub fn assert_close_outputs(a: &[Output], b: &[Output]) {
    fn close_json(x: &Value, y: &Value, what: &str) {
        match (x, y) {
            (Value::Number(p), Value::Number(q)) => {
                let (p, q) = (p.as_f64().unwrap_or(f64::NAN), q.as_f64().unwrap_or(f64::NAN));
                assert!((p - q).abs() <= 1e-6, "{what}: {p} vs {q}");
            }
            (Value::Array(p), Value::Array(q)) => {
                assert_eq!(p.len(), q.len(), "{what}");
                p.iter().zip(q).for_each(|(p, q)| close_json(p, q, what));
            }
            (Value::Object(p), Value::Object(q)) => {
                assert_eq!(p.len(), q.len(), "{what}");
                for (k, v) in p {
                    close_json(v, q.get(k).unwrap_or(&Value::Null), what);
                }
            }
            _ => assert_eq!(x, y, "{what}"),
        }
    }
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name(), y.name());
        if let (Some(tx), Some(ty)) = (x.as_tensor(), y.as_tensor()) {
            assert_eq!((tx.datatype(), tx.shape()), (ty.datatype(), ty.shape()), "{}", x.name());
        }
        close_json(&x.to_nested_json(), &y.to_nested_json(), x.name());
    }
}
