//! The simple "Boat form" of a prediction: one JSON value in, one JSON value out.
//!
//! Input, for a model with exactly one (tensor) input:
//! - a JSON string becomes a BYTES tensor of shape `[1]`;
//! - a number or boolean becomes a scalar, and a (nested, rectangular) array of numbers,
//!   booleans or strings a tensor of the array's shape, in the datatype the model declares
//!   for its input (values must fit it);
//! - if the model's input has one more dimension than that, a leading batch dimension of 1
//!   is added (so `[5.1, 3.5, 1.4, 0.2]` feeds an input of shape `[-1, 4]`).
//!
//! Output: when the model has a single tensor output holding one element, that element as
//! a JSON scalar (the echo model turns `"Hello"` into `"Hello"`). Otherwise an object
//! `{output_name: value}` where a tensor's value is its data as nested arrays following its
//! shape, and a sequence or map output's value is the `data` array of its JSON form
//! (see [`crate::output`]), e.g. `[{"0": 0.98, "1": 0.02, "2": 0.0}]`.

use serde_json::{Map, Value};

use crate::error::ServingError;
use crate::model::ModelMeta;
use crate::output::Output;
use crate::registry::ModelRegistry;
use crate::tensor::json::nested_shape;
use crate::tensor::{Tensor, TensorData};

impl ModelRegistry {
    /// Converts a Boat-form input (see [`crate::predict`]) into the model's input tensors and
    /// checks them as [`ModelRegistry::check`] does, without running anything. The result is
    /// what [`ModelRegistry::predict_json`] would run; feed it to [`ModelRegistry::infer`]
    /// and render with [`boat_output`] to get the same reply.
    pub fn boat_inputs(&self, name: &str, version: u64, input: &Value) -> Result<Vec<Tensor>, ServingError> {
        let model = self.get(name, version)?;
        self.check_for(&model, vec![boat_input(model.meta(), input)?])
    }

    /// Runs one prediction in the Boat form described in [`crate::predict`] (blocking):
    /// [`ModelRegistry::boat_inputs`], one run, then [`boat_output`].
    pub fn predict_json(&self, name: &str, version: u64, input: &Value) -> Result<Value, ServingError> {
        // One lookup, so the check and the run see the same model.
        let model = self.get(name, version)?;
        let checked = self.check_for(&model, vec![boat_input(model.meta(), input)?])?;
        Ok(boat_output(model.run(checked)?))
    }
}

/// Builds the model's single input tensor from a Boat-form JSON value.
pub(crate) fn boat_input(meta: &ModelMeta, input: &Value) -> Result<Tensor, ServingError> {
    let [only] = meta.inputs.as_slice() else {
        return Err(ServingError::input(format!(
            "model '{}' version {} has {} inputs; the simple JSON form needs exactly one, \
             use the tensor form instead",
            meta.name,
            meta.version,
            meta.inputs.len()
        )));
    };
    let datatype =
        only.datatype.ok_or_else(|| ServingError::input(format!("input '{}' is not a tensor", only.name)))?;
    let mut shape = match input {
        Value::String(_) => vec![1],
        Value::Number(_) | Value::Bool(_) => vec![],
        Value::Array(_) => nested_shape(input).ok_or_else(|| {
            ServingError::input(format!("input '{}': the array is ragged (rows of different lengths)", only.name))
        })?,
        Value::Null | Value::Object(_) => {
            return Err(ServingError::input(format!(
                "input '{}': expected a string, number, boolean or array, got {}",
                only.name,
                kind_of(input)
            )))
        }
    };
    if shape.len() + 1 == only.shape.len() {
        shape.insert(0, 1);
    }
    let data = TensorData::from_json(datatype, input)
        .map_err(|e| ServingError::input(format!("input '{}': {}", only.name, strip(e))))?;
    Tensor::new(only.name.clone(), shape, data)
}

/// Renders a run's outputs as the Boat-form JSON reply described in [`crate::predict`]:
/// a lone one-element tensor output as a JSON scalar, otherwise `{output_name: value}`.
pub fn boat_output(outputs: Vec<Output>) -> Value {
    if let [Output::Tensor(t)] = outputs.as_slice() {
        if t.data().len() == 1 {
            if let Some(v) = t.data().json_element(0) {
                return v;
            }
        }
    }
    let mut obj = Map::new();
    for o in &outputs {
        obj.insert(o.name().to_string(), o.to_nested_json());
    }
    Value::Object(obj)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Object(_) => "an object",
        _ => "a value",
    }
}

fn strip(e: ServingError) -> String {
    match e {
        ServingError::InvalidInput(m) => m,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IoKind, IoMeta};
    use crate::tensor::DataType;
    use serde_json::json;

    fn meta(dt: DataType, shape: Vec<i64>) -> ModelMeta {
        ModelMeta {
            name: "m".into(),
            version: 1,
            sha256: String::new(),
            size_bytes: 0,
            inputs: vec![IoMeta { name: "input".into(), datatype: Some(dt), shape, kind: IoKind::Tensor }],
            outputs: vec![],
            batch_invariant: false,
        }
    }

    #[test]
    fn builds_tensors_from_simple_json() {
        let t = boat_input(&meta(DataType::Bytes, vec![-1]), &json!("Hello")).unwrap();
        assert_eq!((t.shape(), t.data()), (&[1][..], &TensorData::Bytes(vec!["Hello".into()])));

        let t = boat_input(&meta(DataType::Fp32, vec![-1, 4]), &json!([5.1, 3.5, 1.4, 0.2])).unwrap();
        assert_eq!(t.shape(), &[1, 4]);
        assert_eq!(t.data(), &TensorData::Fp32(vec![5.1, 3.5, 1.4, 0.2]));

        let t = boat_input(&meta(DataType::Int64, vec![-1, 2]), &json!([[1, 2], [3, 4]])).unwrap();
        assert_eq!(t.shape(), &[2, 2]);

        let t = boat_input(&meta(DataType::Fp64, vec![-1]), &json!(2.5)).unwrap();
        assert_eq!(t.shape(), &[1]);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let m = meta(DataType::Uint8, vec![-1]);
        for (bad, want) in [
            (json!([300]), "out of range for UINT8"),
            (json!(["a"]), "not a valid UINT8"),
            (json!({"a": 1}), "an object"),
            (json!(null), "null"),
            (json!([[1, 2], [3]]), "ragged"),
        ] {
            let err = boat_input(&m, &bad).unwrap_err();
            assert!(matches!(err, ServingError::InvalidInput(ref msg) if msg.contains(want)), "{bad}: {err}");
        }
        let mut two = meta(DataType::Fp32, vec![-1]);
        two.inputs.push(two.inputs[0].clone());
        assert!(matches!(boat_input(&two, &json!(1.0)), Err(ServingError::InvalidInput(_))));
    }

    #[test]
    fn output_shapes() {
        let one = Tensor::new("y", vec![1], vec!["Hello".to_string()].into()).unwrap();
        assert_eq!(boat_output(vec![Output::Tensor(one)]), json!("Hello"));
        let many = Tensor::new("y", vec![1, 2], vec![1i64, 2].into()).unwrap();
        assert_eq!(boat_output(vec![Output::Tensor(many)]), json!({"y": [[1, 2]]}));
        let seq = Output::json("p", vec![json!({"0": 1.0})]);
        let lbl = Tensor::new("l", vec![1], vec![0i64].into()).unwrap();
        assert_eq!(boat_output(vec![Output::Tensor(lbl), seq]), json!({"l": [0], "p": [{"0": 1.0}]}));
    }
}
