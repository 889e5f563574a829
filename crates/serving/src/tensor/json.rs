//! The tensor codecs: OIP JSON ⇄ [`Tensor`], and JSON values ⇄ typed elements.
//!
//! Human-readable serialisers (JSON) use the OIP form
//! `{"name": .., "datatype": "FP32", "shape": [..], "data": [..]}` with flat row-major `data`;
//! deserialising also accepts nested `data` arrays and an ignored `parameters` field.
//! Non-human-readable serialisers (bincode in the Raft log) use a compact typed form
//! `(name, shape, TensorData)`, since they cannot describe free-form JSON. Both forms are
//! validated on the way in.
//!
//! FP32/FP16 values are written in their shortest round-trip form when serialising to text
//! (`serde_json::to_string`/`to_writer`); `serde_json::to_value` widens them to `f64` digits
//! (`0.10000000149011612`), which parse back to the same `f32`.
//!
//! Element rules: BOOL takes `true`/`false`; integer types take integral numbers (`2` or
//! `2.0`) within the type's range; FP16/FP32 take numbers within the type's finite range;
//! FP64 takes any number; BYTES takes strings. Anything else is an `InvalidInput` naming the
//! offending element.

use half::f16;
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{with_vec, DataType, Tensor, TensorData};
use crate::error::ServingError;

/// An `f32` as a JSON number in its shortest round-trip decimal form (so `0.1f32` prints as
/// `0.1`, not `0.10000000149011612`). Non-finite values become `null`, as JSON has no NaN.
pub fn f32_to_json(v: f32) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    // `Display` for f32 is the shortest string that parses back to the same f32; the f64
    // nearest that decimal prints back identically and narrows back to `v`.
    let shortest: f64 = v.to_string().parse().unwrap_or(v as f64);
    Value::from(shortest)
}

impl TensorData {
    /// Converts JSON elements (flat or nested arrays, flattened row-major; a bare scalar is one
    /// element) to data of type `datatype`, checking every value fits.
    pub fn from_json(datatype: DataType, data: &Value) -> Result<TensorData, ServingError> {
        let mut flat = Vec::new();
        flatten(data, &mut flat);
        TensorData::from_json_elements(datatype, &flat)
    }

    /// Converts already-flat JSON scalars to data of type `datatype`.
    pub fn from_json_elements(datatype: DataType, elems: &[&Value]) -> Result<TensorData, ServingError> {
        fn all<T>(
            elems: &[&Value],
            dt: DataType,
            f: impl Fn(&Value) -> Result<T, String>,
        ) -> Result<Vec<T>, ServingError> {
            elems
                .iter()
                .enumerate()
                .map(|(i, v)| f(v).map_err(|m| ServingError::input(format!("data[{i}]: {v} {m} {dt}"))))
                .collect()
        }
        let dt = datatype;
        Ok(match datatype {
            DataType::Bool => {
                TensorData::Bool(all(elems, dt, |v| v.as_bool().ok_or_else(|| "is not a valid".to_string()))?)
            }
            DataType::Uint8 => TensorData::Uint8(all(elems, dt, int)?),
            DataType::Uint16 => TensorData::Uint16(all(elems, dt, int)?),
            DataType::Uint32 => TensorData::Uint32(all(elems, dt, int)?),
            DataType::Uint64 => TensorData::Uint64(all(elems, dt, int)?),
            DataType::Int8 => TensorData::Int8(all(elems, dt, int)?),
            DataType::Int16 => TensorData::Int16(all(elems, dt, int)?),
            DataType::Int32 => TensorData::Int32(all(elems, dt, int)?),
            DataType::Int64 => TensorData::Int64(all(elems, dt, int)?),
            DataType::Fp16 => TensorData::Fp16(all(elems, dt, |v| {
                let x = number(v)?;
                if x.abs() > f16::MAX.to_f64() {
                    return Err("is out of range for".into());
                }
                Ok(f16::from_f64(x))
            })?),
            DataType::Fp32 => TensorData::Fp32(all(elems, dt, |v| {
                let x = number(v)?;
                if x.abs() > f32::MAX as f64 {
                    return Err("is out of range for".into());
                }
                Ok(x as f32)
            })?),
            DataType::Fp64 => TensorData::Fp64(all(elems, dt, number)?),
            DataType::Bytes => TensorData::Bytes(all(elems, dt, |v| {
                v.as_str().map(str::to_owned).ok_or_else(|| "is not a valid".to_string())
            })?),
        })
    }
}

/// Appends the scalars of a (possibly nested) JSON array to `out`, row-major.
pub(crate) fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| "is not a valid".to_string())
}

fn int<T: TryFrom<i128>>(v: &Value) -> Result<T, String> {
    let wide: i128 = if let Some(i) = v.as_i64() {
        i.into()
    } else if let Some(u) = v.as_u64() {
        u.into()
    } else if let Some(f) = v.as_f64() {
        // Integral floats (`2.0`) are accepted; 2^100 and friends fail the range check below.
        if f.fract() != 0.0 || f.abs() > 1e30 {
            return Err("is not a valid".into());
        }
        f as i128
    } else {
        return Err("is not a valid".into());
    };
    T::try_from(wide).map_err(|_| "is out of range for".to_string())
}

/// The OIP JSON form as read off the wire, before validation.
#[derive(Deserialize)]
struct WireTensor {
    name: String,
    datatype: DataType,
    shape: Vec<i64>,
    data: Value,
    #[serde(default, rename = "parameters")]
    _parameters: Option<Value>,
}

/// Flat data serialised as a JSON-friendly sequence (FP16 as f32).
struct FlatData<'a>(&'a TensorData);

impl Serialize for FlatData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Fp16(v) => s.collect_seq(v.iter().map(|x| x.to_f32())),
            other => with_vec!(other, v => s.collect_seq(v.iter())),
        }
    }
}

#[derive(Serialize)]
struct CompactRef<'a>(&'a str, &'a [i64], &'a TensorData);

#[derive(Deserialize)]
struct CompactOwned(String, Vec<i64>, TensorData);

impl Serialize for Tensor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return CompactRef(&self.name, &self.shape, &self.data).serialize(s);
        }
        let mut st = s.serialize_struct("Tensor", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("datatype", &self.datatype())?;
        st.serialize_field("shape", &self.shape)?;
        st.serialize_field("data", &FlatData(&self.data))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let CompactOwned(name, shape, data) = CompactOwned::deserialize(d)?;
            return Tensor::new(name, shape, data).map_err(|e| D::Error::custom(message(e)));
        }
        let wire = WireTensor::deserialize(d)?;
        Tensor::from_wire(wire).map_err(|e| D::Error::custom(message(e)))
    }
}

impl Tensor {
    /// Parses the OIP JSON form from a [`serde_json::Value`], with the same checks as
    /// deserialising but returning a [`ServingError::InvalidInput`].
    pub fn from_json(v: &Value) -> Result<Tensor, ServingError> {
        let wire = WireTensor::deserialize(v).map_err(|e| ServingError::input(format!("not an OIP tensor: {e}")))?;
        Tensor::from_wire(wire)
    }

    fn from_wire(w: WireTensor) -> Result<Tensor, ServingError> {
        let name = w.name;
        let data = TensorData::from_json(w.datatype, &w.data)
            .map_err(|e| ServingError::input(format!("tensor '{name}': {}", message(e))))?;
        // Nested data must be rectangular and agree with the declared shape.
        if let Value::Array(items) = &w.data {
            if items.iter().any(Value::is_array) {
                match nested_shape(&w.data) {
                    Some(nested) if nested == w.shape => {}
                    Some(nested) => {
                        return Err(ServingError::input(format!(
                            "tensor '{name}': nested data has shape {nested:?} but shape is {:?}",
                            w.shape
                        )))
                    }
                    None => {
                        return Err(ServingError::input(format!(
                            "tensor '{name}': nested data is ragged (rows of different lengths)"
                        )))
                    }
                }
            }
        }
        Tensor::new(name, w.shape, data)
    }
}

/// The rectangular shape of a nested JSON array, or `None` if it is ragged.
pub(crate) fn nested_shape(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Array(items) => {
            let mut inner: Option<Vec<i64>> = None;
            for item in items {
                let s = nested_shape(item)?;
                match &inner {
                    None => inner = Some(s),
                    Some(prev) if *prev == s => {}
                    Some(_) => return None,
                }
            }
            let mut shape = vec![items.len() as i64];
            // An empty array has unknown inner dims; treat it as rank 1.
            shape.extend(inner.unwrap_or_default());
            Some(shape)
        }
        _ => Some(Vec::new()),
    }
}

fn message(e: ServingError) -> String {
    match e {
        ServingError::InvalidInput(m) => m,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Tensor, String> {
        serde_json::from_value::<Tensor>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn every_datatype_round_trips_through_json() {
        let cases = [
            json!({"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, false]}),
            json!({"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]}),
            json!({"name": "u16", "datatype": "UINT16", "shape": [1], "data": [65535]}),
            json!({"name": "u32", "datatype": "UINT32", "shape": [1], "data": [4294967295u64]}),
            json!({"name": "u64", "datatype": "UINT64", "shape": [1], "data": [u64::MAX]}),
            json!({"name": "i8", "datatype": "INT8", "shape": [2], "data": [-128, 127]}),
            json!({"name": "i16", "datatype": "INT16", "shape": [1], "data": [-32768]}),
            json!({"name": "i32", "datatype": "INT32", "shape": [1], "data": [-2147483648i64]}),
            json!({"name": "i64", "datatype": "INT64", "shape": [2], "data": [i64::MIN, i64::MAX]}),
            json!({"name": "h", "datatype": "FP16", "shape": [2], "data": [0.5, -65504.0]}),
            json!({"name": "f", "datatype": "FP32", "shape": [3], "data": [0.1, -2.5, 1e-7]}),
            json!({"name": "d", "datatype": "FP64", "shape": [1], "data": [0.1]}),
            json!({"name": "s", "datatype": "BYTES", "shape": [2], "data": ["héllo", "😀"]}),
        ];
        for case in cases {
            let t = parse(case.clone()).unwrap_or_else(|e| panic!("{case}: {e}"));
            // via text: `to_value` would widen f32 to f64 digits (same f32 value, longer text)
            let text = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), case);
            assert_eq!(serde_json::from_str::<Tensor>(&text).unwrap(), t);
            // and the compact form (bincode) round trips too
            let bytes = bincode::serialize(&t).unwrap();
            assert_eq!(bincode::deserialize::<Tensor>(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn nested_data_is_flattened() {
        let t = parse(json!({"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]})).unwrap();
        assert_eq!(t.data(), &TensorData::Int32(vec![1, 2, 3, 4]));
        assert_eq!(serde_json::to_value(&t).unwrap()["data"], json!([1, 2, 3, 4]));
        // nesting that contradicts the shape is rejected
        let err =
            parse(json!({"name": "x", "datatype": "INT32", "shape": [1, 4], "data": [[1, 2], [3, 4]]})).unwrap_err();
        assert!(err.contains("nested data has shape"), "{err}");
    }

    #[test]
    fn values_must_fit_the_datatype() {
        let bad = [
            (json!({"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}), "out of range for UINT8"),
            (json!({"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]}), "out of range for UINT8"),
            (json!({"name": "x", "datatype": "INT8", "shape": [1], "data": [1.5]}), "not a valid INT8"),
            (json!({"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}), "not a valid FP32"),
            (json!({"name": "x", "datatype": "FP32", "shape": [1], "data": [1e300]}), "out of range for FP32"),
            (json!({"name": "x", "datatype": "FP16", "shape": [1], "data": [70000.0]}), "out of range for FP16"),
            (json!({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}), "not a valid BOOL"),
            (json!({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}), "not a valid BYTES"),
            (json!({"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0]}), "needs 2 elements"),
            (json!({"name": "x", "datatype": "FP32", "shape": [-1], "data": []}), "negative"),
            (json!({"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1.0]}), "unknown variant"),
        ];
        for (case, want) in bad {
            let err = parse(case.clone()).expect_err(&case.to_string());
            assert!(err.contains(want), "{case}: got '{err}', want '{want}'");
        }
        // integral floats are fine for integer types
        let t = parse(json!({"name": "x", "datatype": "INT64", "shape": [1], "data": [2.0]})).unwrap();
        assert_eq!(t.data(), &TensorData::Int64(vec![2]));
    }

    #[test]
    fn from_json_reports_invalid_input() {
        let err = Tensor::from_json(&json!({"name": "x"})).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(_)));
        let err =
            Tensor::from_json(&json!({"name": "x", "datatype": "UINT8", "shape": [1], "data": [256]})).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("data[0]")), "{err}");
    }

    #[test]
    fn f32_json_is_shortest() {
        assert_eq!(f32_to_json(0.1).to_string(), "0.1");
        assert_eq!(f32_to_json(f32::NAN), Value::Null);
        let v = 0.987_654_3_f32;
        assert_eq!(f32_to_json(v).as_f64().unwrap() as f32, v);
    }

    #[test]
    fn nested_shape_detects_ragged() {
        assert_eq!(nested_shape(&json!([[1, 2], [3, 4], [5, 6]])), Some(vec![3, 2]));
        assert_eq!(nested_shape(&json!([[1, 2], [3]])), None);
        assert_eq!(nested_shape(&json!(5)), Some(vec![]));
        assert_eq!(nested_shape(&json!([])), Some(vec![0]));
    }
}
