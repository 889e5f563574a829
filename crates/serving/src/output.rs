//! Model outputs: OIP tensors, or the JSON form for non-tensor values.
//!
//! Tensor outputs are plain [`Tensor`]s. Non-tensor outputs (ONNX sequences and maps, such as
//! the `output_probability` of an sklearn classifier converted with ZipMap) have no OIP
//! datatype, so Boat returns them in this documented JSON form:
//!
//! ```json
//! {"name": "output_probability", "datatype": "JSON", "shape": [2],
//!  "data": [{"0": 0.97, "1": 0.03, "2": 0.0}, {"0": 0.01, "1": 0.9, "2": 0.09}]}
//! ```
//!
//! - a sequence of maps gives one JSON object per map, `shape = [sequence length]`; map keys
//!   (int64 or string) become object keys (ints in decimal), values (float, double, int64)
//!   become numbers;
//! - a sequence of tensors gives one nested JSON array per tensor, `shape = [length]`;
//! - a single map gives `shape = [1]` and `data = [object]`.
//!
//! For a classifier, element `i` of the sequence belongs to input row `i`, which is how
//! batched requests are split back apart.

use std::ops::Range;

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::tensor::Tensor;

/// The datatype name used for non-tensor outputs.
pub const JSON_DATATYPE: &str = "JSON";

/// One output of a model run.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A tensor output.
    Tensor(Tensor),
    /// A non-tensor output in the JSON form described in the module doc.
    Json {
        /// Output name.
        name: String,
        /// `[data.len()]`.
        shape: Vec<i64>,
        /// One JSON value per sequence element.
        data: Vec<Value>,
    },
}

impl Output {
    /// The output's name.
    pub fn name(&self) -> &str {
        match self {
            Output::Tensor(t) => t.name(),
            Output::Json { name, .. } => name,
        }
    }

    /// The tensor, if this is a tensor output.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Output::Tensor(t) => Some(t),
            Output::Json { .. } => None,
        }
    }

    /// The value as plain JSON: nested arrays for a tensor, the `data` array for the JSON form.
    pub fn to_nested_json(&self) -> Value {
        match self {
            Output::Tensor(t) => t.to_nested_json(),
            Output::Json { data, .. } => Value::Array(data.clone()),
        }
    }

    pub(crate) fn json(name: impl Into<String>, data: Vec<Value>) -> Output {
        Output::Json { name: name.into(), shape: vec![data.len() as i64], data }
    }

    /// Rows along dimension 0 (sequence length for the JSON form).
    pub(crate) fn rows(&self) -> Option<usize> {
        match self {
            Output::Tensor(t) => t.rows(),
            Output::Json { data, .. } => Some(data.len()),
        }
    }

    /// Rows `range`; the caller keeps it within [`Output::rows`].
    pub(crate) fn slice_rows(&self, range: Range<usize>) -> Output {
        match self {
            Output::Tensor(t) => Output::Tensor(t.slice_rows(range)),
            Output::Json { name, data, .. } => {
                Output::json(name.clone(), data.get(range).map(<[_]>::to_vec).unwrap_or_default())
            }
        }
    }
}

#[derive(Serialize)]
enum CompactRef<'a> {
    Tensor(&'a Tensor),
    /// name, shape, data as a JSON string (compact formats cannot hold free-form JSON).
    Json(&'a str, &'a [i64], String),
}

#[derive(Deserialize)]
enum CompactOwned {
    Tensor(Tensor),
    Json(String, Vec<i64>, String),
}

impl Serialize for Output {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Output::Tensor(t) if s.is_human_readable() => t.serialize(s),
            Output::Tensor(t) => CompactRef::Tensor(t).serialize(s),
            Output::Json { name, shape, data } if s.is_human_readable() => {
                let mut st = s.serialize_struct("Output", 4)?;
                st.serialize_field("name", name)?;
                st.serialize_field("datatype", JSON_DATATYPE)?;
                st.serialize_field("shape", shape)?;
                st.serialize_field("data", data)?;
                st.end()
            }
            Output::Json { name, shape, data } => {
                let text = serde_json::to_string(data).map_err(serde::ser::Error::custom)?;
                CompactRef::Json(name, shape, text).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return match CompactOwned::deserialize(d)? {
                CompactOwned::Tensor(t) => Ok(Output::Tensor(t)),
                CompactOwned::Json(name, shape, text) => {
                    let data = serde_json::from_str(&text).map_err(D::Error::custom)?;
                    Ok(Output::Json { name, shape, data })
                }
            };
        }
        let v = Value::deserialize(d)?;
        if v.get("datatype").and_then(Value::as_str) == Some(JSON_DATATYPE) {
            #[derive(Deserialize)]
            struct Wire {
                name: String,
                shape: Vec<i64>,
                data: Vec<Value>,
            }
            let w = Wire::deserialize(&v).map_err(D::Error::custom)?;
            return Ok(Output::Json { name: w.name, shape: w.shape, data: w.data });
        }
        Tensor::from_json(&v).map(Output::Tensor).map_err(|e| D::Error::custom(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_form_round_trips() {
        let out = Output::json("probs", vec![json!({"0": 0.25, "1": 0.75})]);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v, json!({"name": "probs", "datatype": "JSON", "shape": [1], "data": [{"0": 0.25, "1": 0.75}]}));
        assert_eq!(serde_json::from_value::<Output>(v).unwrap(), out);
        let bytes = bincode::serialize(&out).unwrap();
        assert_eq!(bincode::deserialize::<Output>(&bytes).unwrap(), out);
    }

    #[test]
    fn tensor_output_round_trips() {
        let t = Tensor::new("y", vec![2], vec![1i64, 2].into()).unwrap();
        let out = Output::Tensor(t);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["datatype"], json!("INT64"));
        assert_eq!(serde_json::from_value::<Output>(v).unwrap(), out);
        let bytes = bincode::serialize(&out).unwrap();
        assert_eq!(bincode::deserialize::<Output>(&bytes).unwrap(), out);
    }

    #[test]
    fn slicing_json_rows() {
        let out = Output::json("p", vec![json!(1), json!(2), json!(3)]);
        assert_eq!(out.slice_rows(1..3), Output::json("p", vec![json!(2), json!(3)]));
        assert_eq!(out.rows(), Some(3));
    }
}
