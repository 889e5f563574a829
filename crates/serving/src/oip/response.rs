//! Rendering OIP inference responses and model metadata (see [`crate::oip`]).

use serde_json::{json, Map, Value};

use crate::error::ServingError;
use crate::model::{IoKind, IoMeta, ModelMeta};
use crate::output::{Output, JSON_DATATYPE};

/// The `platform` Boat reports in model metadata.
pub const PLATFORM: &str = "onnxruntime_onnx";

/// Checks that every requested output name is an output of the model, so a request asking
/// for one that does not exist can be refused before it is committed.
pub fn check_requested_outputs(meta: &ModelMeta, requested: &[String]) -> Result<(), ServingError> {
    for name in requested {
        if !meta.outputs.iter().any(|o| &o.name == name) {
            let known: Vec<String> = meta.outputs.iter().map(|o| format!("'{}'", o.name)).collect();
            return Err(ServingError::input(format!(
                "model '{}' version {} has no output '{name}'; its outputs are {}",
                meta.name,
                meta.version,
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Renders an inference response: `{"model_name", "model_version", "id"?, "outputs"}`,
/// each output as `{"name", "datatype", "shape", "data"}` with flat row-major data (the JSON
/// form for non-tensor outputs). With `requested`, only outputs named there are included,
/// in `outputs` order; names that match no output are skipped (refuse them beforehand with
/// [`check_requested_outputs`]).
pub fn infer_response(
    model_name: &str,
    model_version: &str,
    id: Option<&str>,
    outputs: &[Output],
    requested: Option<&[String]>,
) -> Value {
    let wanted = |o: &&Output| requested.is_none_or(|names| names.iter().any(|n| n == o.name()));
    let rendered: Vec<Value> = outputs.iter().filter(wanted).map(output_json).collect();
    let mut obj = Map::new();
    obj.insert("model_name".into(), Value::from(model_name));
    obj.insert("model_version".into(), Value::from(model_version));
    if let Some(id) = id {
        obj.insert("id".into(), Value::from(id));
    }
    obj.insert("outputs".into(), Value::Array(rendered));
    Value::Object(obj)
}

fn output_json(o: &Output) -> Value {
    match o {
        Output::Tensor(t) => {
            let data = t.data();
            let flat: Vec<Value> = (0..data.len()).map(|i| data.json_element(i).unwrap_or(Value::Null)).collect();
            json!({
                "name": t.name(),
                "datatype": t.datatype().as_str(),
                "shape": t.shape(),
                "data": flat,
            })
        }
        Output::Json { name, shape, data } => json!({
            "name": name,
            "datatype": JSON_DATATYPE,
            "shape": shape,
            "data": data,
        }),
    }
}

/// Renders model metadata: `{"name", "versions", "platform", "inputs", "outputs"}`.
/// `versions` are the loaded versions of the model, written as strings in ascending order
/// without duplicates. Dynamic dimensions are `-1`; sequence and map outputs have datatype
/// `"JSON"` and shape `[-1]` (sequence) or `[1]` (map), as their JSON form has.
/// A model's metadata as the protocol describes it, for both the HTTP
/// (JSON) and the gRPC rendering.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelMetadata {
    pub name: String,
    /// Every stored version, ascending, as strings.
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// One input or output: non-tensor values (ONNX maps and sequences) have
/// datatype `"JSON"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// The metadata of a loaded model with the stored `versions`.
pub fn metadata_of(meta: &ModelMeta, versions: &[u64]) -> ModelMetadata {
    let mut versions = versions.to_vec();
    versions.sort_unstable();
    versions.dedup();
    ModelMetadata {
        name: meta.name.clone(),
        versions: versions.iter().map(u64::to_string).collect(),
        platform: PLATFORM.to_string(),
        inputs: meta.inputs.iter().map(io_metadata).collect(),
        outputs: meta.outputs.iter().map(io_metadata).collect(),
    }
}

/// `{"name", "versions", "platform", "inputs", "outputs"}` as JSON.
pub fn model_metadata(meta: &ModelMeta, versions: &[u64]) -> Value {
    // Plain strings and numbers always serialise.
    serde_json::to_value(metadata_of(meta, versions)).unwrap_or(Value::Null)
}

fn io_metadata(io: &IoMeta) -> TensorMetadata {
    let (datatype, shape) = match (io.kind, io.datatype) {
        (IoKind::Tensor, Some(dt)) => (dt.as_str(), io.shape.clone()),
        (IoKind::Map, _) => (JSON_DATATYPE, vec![1]),
        (IoKind::Sequence, _) | (IoKind::Tensor, None) => (JSON_DATATYPE, vec![-1]),
    };
    TensorMetadata { name: io.name.clone(), datatype: datatype.to_string(), shape }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{DataType, Tensor, TensorData};
    use half::f16;

    fn io(name: &str, datatype: Option<DataType>, shape: Vec<i64>, kind: IoKind) -> IoMeta {
        IoMeta { name: name.into(), datatype, shape, kind }
    }

    fn logreg_meta() -> ModelMeta {
        ModelMeta {
            name: "iris".into(),
            version: 2,
            sha256: String::new(),
            size_bytes: 0,
            inputs: vec![io("input", Some(DataType::Fp32), vec![-1, 4], IoKind::Tensor)],
            outputs: vec![
                io("output_label", Some(DataType::Int64), vec![-1], IoKind::Tensor),
                io("output_probability", None, vec![-1], IoKind::Sequence),
                io("one_map", None, vec![], IoKind::Map),
            ],
            batch_invariant: false,
        }
    }

    #[test]
    fn metadata_form() {
        let v = model_metadata(&logreg_meta(), &[3, 1, 3]);
        assert_eq!(
            v,
            json!({
                "name": "iris",
                "versions": ["1", "3"],
                "platform": "onnxruntime_onnx",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [
                    {"name": "output_label", "datatype": "INT64", "shape": [-1]},
                    {"name": "output_probability", "datatype": "JSON", "shape": [-1]},
                    {"name": "one_map", "datatype": "JSON", "shape": [1]}
                ]
            })
        );
    }

    #[test]
    fn requested_outputs_are_checked() {
        let meta = logreg_meta();
        assert!(check_requested_outputs(&meta, &[]).is_ok());
        assert!(check_requested_outputs(&meta, &["output_label".into()]).is_ok());
        let err = check_requested_outputs(&meta, &["output_label".into(), "nope".into()]);
        assert!(
            matches!(err, Err(ServingError::InvalidInput(ref m))
                if m.contains("no output 'nope'") && m.contains("'output_probability'")),
            "{err:?}"
        );
    }

    #[test]
    fn response_form_and_filtering() {
        let label = Tensor::new("output_label", vec![2], vec![0i64, 2].into()).unwrap();
        let probs = Tensor::new("p", vec![2, 2], TensorData::Fp32(vec![0.1, 0.9, 0.25, 0.75])).unwrap();
        let half = Tensor::new("h", vec![1], TensorData::Fp16(vec![f16::from_f32(0.1)])).unwrap();
        let seq = Output::json("output_probability", vec![json!({"0": 0.5}), json!({"0": 1.0})]);
        let outputs = vec![Output::Tensor(label), Output::Tensor(probs), Output::Tensor(half), seq];
        let v = infer_response("iris", "2", Some("r1"), &outputs, None);
        assert_eq!(v["model_name"], json!("iris"));
        assert_eq!(v["model_version"], json!("2"));
        assert_eq!(v["id"], json!("r1"));
        assert_eq!(v["outputs"][0], json!({"name": "output_label", "datatype": "INT64", "shape": [2], "data": [0, 2]}));
        // flat data, FP32 in shortest form
        assert_eq!(v["outputs"][1]["shape"], json!([2, 2]));
        assert_eq!(serde_json::to_string(&v["outputs"][1]["data"]).unwrap(), "[0.1,0.9,0.25,0.75]");
        // FP16 as the shortest f32 decimal of its exact value
        assert_eq!(v["outputs"][2]["datatype"], json!("FP16"));
        assert_eq!(serde_json::to_string(&v["outputs"][2]["data"]).unwrap(), "[0.099975586]");
        assert_eq!(
            v["outputs"][3],
            json!({"name": "output_probability", "datatype": "JSON", "shape": [2],
                   "data": [{"0": 0.5}, {"0": 1.0}]})
        );

        // filtered, in output order whatever the request order; no id
        let want = ["output_probability".to_string(), "output_label".to_string(), "gone".to_string()];
        let v = infer_response("iris", "2", None, &outputs, Some(&want));
        assert!(v.get("id").is_none());
        let names: Vec<&str> = v["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["output_label", "output_probability"]);
        // an empty request list means no outputs
        let v = infer_response("iris", "2", None, &outputs, Some(&[]));
        assert_eq!(v["outputs"], json!([]));
    }
}
