//! Parsing an OIP inference request (see [`crate::oip`] for the form and conventions).

use serde_json::{Map, Value};

use crate::error::ServingError;
use crate::tensor::json::{flatten, nested_shape};
use crate::tensor::{element_count, DataType, Tensor, TensorData};

/// An output the client asked for by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
}

/// A parsed OIP inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// Request parameters, kept as sent and not interpreted.
    pub parameters: Option<Map<String, Value>>,
    /// Input tensors, in request order (valid tensors, not yet checked against a model).
    pub inputs: Vec<Tensor>,
    /// The outputs asked for; `None` means all of them.
    pub outputs: Option<Vec<RequestedOutput>>,
}

impl InferRequest {
    /// Parses a request body (JSON text).
    pub fn from_slice(body: &[u8]) -> Result<InferRequest, ServingError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ServingError::input(format!("the request is not valid JSON: {e}")))?;
        InferRequest::from_json(&v)
    }

    /// Parses a request already read as JSON.
    pub fn from_json(v: &Value) -> Result<InferRequest, ServingError> {
        let obj = v.as_object().ok_or_else(|| {
            ServingError::input(format!("an inference request must be a JSON object, got {}", kind(v)))
        })?;
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(ServingError::input(format!("'id' must be a string, got {}", kind(other)))),
        };
        let parameters = optional_object(obj.get("parameters"), "'parameters'")?;
        let inputs = match obj.get("inputs") {
            None | Some(Value::Null) => return Err(ServingError::input("the request has no 'inputs'")),
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, item)| parse_input(i, item)).collect::<Result<Vec<_>, _>>()?
            }
            Some(other) => return Err(ServingError::input(format!("'inputs' must be an array, got {}", kind(other)))),
        };
        let outputs = match obj.get("outputs") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items.iter().enumerate().map(|(i, item)| parse_requested(i, item)).collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(ServingError::input(format!("'outputs' must be an array, got {}", kind(other)))),
        };
        Ok(InferRequest { id, parameters, inputs, outputs })
    }

    /// The names of the requested outputs (`None`: all outputs), as
    /// [`crate::oip::check_requested_outputs`] and [`crate::oip::infer_response`] take them.
    pub fn requested_output_names(&self) -> Option<Vec<String>> {
        self.outputs.as_ref().map(|outs| outs.iter().map(|o| o.name.clone()).collect())
    }
}

fn parse_requested(i: usize, v: &Value) -> Result<RequestedOutput, ServingError> {
    let where_ = format!("outputs[{i}]");
    let obj =
        v.as_object().ok_or_else(|| ServingError::input(format!("{where_} must be an object, got {}", kind(v))))?;
    let name = string_field(obj, "name", &where_)?;
    optional_object(obj.get("parameters"), &format!("{where_}.parameters"))?;
    Ok(RequestedOutput { name })
}

/// Parses `inputs[i]`, checking the shape against the data before converting any element.
fn parse_input(i: usize, v: &Value) -> Result<Tensor, ServingError> {
    let obj =
        v.as_object().ok_or_else(|| ServingError::input(format!("inputs[{i}] must be an object, got {}", kind(v))))?;
    let name = string_field(obj, "name", &format!("inputs[{i}]"))?;
    let where_ = format!("input '{name}'");
    let datatype: DataType = string_field(obj, "datatype", &where_)?.parse().map_err(|_| {
        let known: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
        ServingError::input(format!(
            "{where_}: unknown datatype {}; expected one of {}",
            obj.get("datatype").unwrap_or(&Value::Null),
            known.join(", ")
        ))
    })?;
    let shape = parse_shape(obj.get("shape"), &where_)?;
    let expected = element_count(&shape).map_err(|m| ServingError::input(format!("{where_}: {m}")))?;
    if let Some(params) = optional_object(obj.get("parameters"), &format!("{where_}: 'parameters'"))? {
        if params.contains_key("binary_data_size") {
            return Err(ServingError::input(format!(
                "{where_}: binary tensor data (binary_data_size) is not supported; send 'data' as JSON"
            )));
        }
    }
    let data = obj.get("data").ok_or_else(|| ServingError::input(format!("{where_} has no 'data'")))?;
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    if flat.len() != expected {
        return Err(ServingError::input(format!(
            "{where_}: shape {shape:?} needs {expected} elements but data has {}",
            flat.len()
        )));
    }
    if let Value::Array(items) = data {
        if items.iter().any(Value::is_array) {
            match nested_shape(data) {
                Some(nested) if nested == shape => {}
                Some(nested) => {
                    return Err(ServingError::input(format!(
                        "{where_}: nested data has shape {nested:?} but shape is {shape:?}"
                    )))
                }
                None => {
                    return Err(ServingError::input(format!(
                        "{where_}: nested data is ragged (rows of different lengths)"
                    )))
                }
            }
        }
    }
    let data = TensorData::from_json_elements(datatype, &flat).map_err(|e| match e {
        ServingError::InvalidInput(m) => ServingError::input(format!("{where_}: {m}")),
        other => other,
    })?;
    Tensor::new(name, shape, data)
}

fn parse_shape(v: Option<&Value>, where_: &str) -> Result<Vec<i64>, ServingError> {
    let items = match v {
        None | Some(Value::Null) => return Err(ServingError::input(format!("{where_} has no 'shape'"))),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ServingError::input(format!(
                "{where_}: 'shape' must be an array of integers, got {}",
                kind(other)
            )))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(k, d)| {
            d.as_i64()
                .ok_or_else(|| ServingError::input(format!("{where_}: shape[{k}] = {d} is not an integer dimension")))
        })
        .collect()
}

fn string_field(obj: &Map<String, Value>, key: &str, where_: &str) -> Result<String, ServingError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ServingError::input(format!("{where_} has no '{key}'"))),
        Some(other) => Err(ServingError::input(format!("{where_}: '{key}' must be a string, got {}", kind(other)))),
    }
}

fn optional_object(v: Option<&Value>, what: &str) -> Result<Option<Map<String, Value>>, ServingError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(other) => Err(ServingError::input(format!("{what} must be an object, got {}", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use serde_json::json;

    fn err(v: Value) -> String {
        match InferRequest::from_json(&v) {
            Err(ServingError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput for {v}, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_request() {
        let req = InferRequest::from_json(&json!({
            "id": "req-1",
            "parameters": {"priority": 2},
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.5, -3.0, 4.0]},
                {"name": "n", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]],
                 "parameters": {"content_type": "np"}},
                {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]},
                {"name": "h", "shape": [3], "datatype": "FP16", "data": [0.1, 1, 65504]},
                {"name": "b", "shape": [], "datatype": "BOOL", "data": true}
            ],
            "outputs": [{"name": "y"}, {"name": "z", "parameters": {}}]
        }))
        .unwrap();
        assert_eq!(req.id.as_deref(), Some("req-1"));
        assert_eq!(req.parameters.as_ref().unwrap()["priority"], json!(2));
        assert_eq!(req.requested_output_names(), Some(vec!["y".into(), "z".into()]));
        let [x, n, s, h, b] = req.inputs.as_slice() else { panic!("five inputs expected") };
        assert_eq!((x.shape(), x.data()), (&[2, 2][..], &TensorData::Fp32(vec![1.0, 2.5, -3.0, 4.0])));
        assert_eq!(n.data(), &TensorData::Int64(vec![1, 2, 3, 4]));
        assert_eq!(s.data(), &TensorData::Bytes(vec!["héllo".into(), String::new()]));
        // FP16: rounded to the nearest f16
        assert_eq!(h.data(), &TensorData::Fp16(vec![f16::from_f32(0.1), f16::ONE, f16::MAX]));
        assert_eq!((b.shape(), b.data()), (&[][..], &TensorData::Bool(vec![true])));
    }

    #[test]
    fn minimal_request_and_text() {
        let req = InferRequest::from_slice(
            br#"{"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["Hello"]}]}"#,
        )
        .unwrap();
        assert_eq!((req.id, req.parameters, req.outputs), (None, None, None));
        assert_eq!(req.inputs[0].name(), "input");
        let e = InferRequest::from_slice(b"{not json").unwrap_err();
        assert!(matches!(e, ServingError::InvalidInput(ref m) if m.contains("not valid JSON")));
    }

    #[test]
    fn clear_errors() {
        let input = |extra: Value| {
            let mut base = json!({"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    base.as_object_mut().unwrap().remove(k);
                } else {
                    base[k] = v.clone();
                }
            }
            json!({"inputs": [base]})
        };
        let cases = [
            (json!([1]), "must be a JSON object, got an array"),
            (json!({}), "the request has no 'inputs'"),
            (json!({"inputs": {}}), "'inputs' must be an array"),
            (json!({"inputs": [], "id": 7}), "'id' must be a string"),
            (json!({"inputs": [], "parameters": [1]}), "'parameters' must be an object"),
            (json!({"inputs": [], "outputs": [{"nam": "y"}]}), "outputs[0] has no 'name'"),
            (json!({"inputs": [], "outputs": "y"}), "'outputs' must be an array"),
            (json!({"inputs": [5]}), "inputs[0] must be an object"),
            (input(json!({"name": null})), "inputs[0] has no 'name'"),
            (input(json!({"datatype": null})), "input 'x' has no 'datatype'"),
            (input(json!({"datatype": "FLOAT"})), "unknown datatype \"FLOAT\"; expected one of BOOL"),
            (input(json!({"datatype": "JSON"})), "unknown datatype \"JSON\""),
            (input(json!({"shape": null})), "input 'x' has no 'shape'"),
            (input(json!({"shape": [2.5]})), "shape[0] = 2.5 is not an integer"),
            (input(json!({"shape": [-1]})), "negative dimension"),
            (input(json!({"shape": [i64::MAX, i64::MAX]})), "absurdly large"),
            (input(json!({"shape": [1099511627776i64]})), "needs 1099511627776 elements but data has 2"),
            (input(json!({"shape": [3]})), "needs 3 elements but data has 2"),
            (input(json!({"data": null})), "input 'x' has no 'data'"),
            (input(json!({"shape": [1, 2], "data": [[1.0], [2.0]]})), "nested data has shape [2, 1]"),
            (input(json!({"shape": [3], "data": [[1.0, 2.0], [3.0]]})), "ragged"),
            (input(json!({"data": [1.0, "a"]})), "input 'x': data[1]: \"a\" is not a valid FP32"),
            (input(json!({"data": [1.0, 1e300]})), "is out of range for FP32"),
            (input(json!({"datatype": "UINT8", "data": [1, 256]})), "256 is out of range for UINT8"),
            (input(json!({"datatype": "FP16", "data": [1, 70000]})), "out of range for FP16"),
            (input(json!({"datatype": "BYTES", "data": ["a", 1]})), "not a valid BYTES"),
            (input(json!({"parameters": {"binary_data_size": 8}})), "binary tensor data"),
        ];
        for (case, want) in cases {
            let got = err(case.clone());
            assert!(got.contains(want), "{case}: got '{got}', want '{want}'");
        }
    }
}
