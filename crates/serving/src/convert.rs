//! Conversions between this crate's types and `ort` values and type descriptions.
//!
//! The only module (with `model`) that touches `ort` value types.

use std::hash::Hash;

use ort::value::{
    DynMapValueType, DynTensorValueType, DynValue, MapValueTypeMarker, PrimitiveTensorElementType, TensorElementType,
    TensorValueTypeMarker, Value, ValueType, ValueTypeMarker,
};
use serde_json::Value as Json;

use crate::error::ServingError;
use crate::model::{IoKind, IoMeta};
use crate::output::Output;
use crate::tensor::json::f32_to_json;
use crate::tensor::{DataType, Tensor, TensorData};

/// The OIP datatype for an ONNX element type, if Boat supports it.
pub(crate) fn datatype_of(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Describes a model input or output, or says why Boat cannot serve it.
pub(crate) fn io_meta(name: &str, ty: &ValueType, is_input: bool) -> Result<IoMeta, String> {
    let side = if is_input { "input" } else { "output" };
    let unsupported = || format!("{side} '{name}' has type {ty}, which Boat cannot serve");
    match ty {
        ValueType::Tensor { ty: elem, shape, .. } => Ok(IoMeta {
            name: name.to_string(),
            datatype: Some(datatype_of(*elem).ok_or_else(unsupported)?),
            shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
            kind: IoKind::Tensor,
        }),
        _ if is_input => Err(format!("{side} '{name}' has type {ty}; Boat can only feed tensor inputs")),
        ValueType::Sequence(inner) => {
            let ok = match inner.as_ref() {
                ValueType::Tensor { ty, .. } => datatype_of(*ty).is_some(),
                ValueType::Map { key, value } => map_supported(*key, *value),
                _ => false,
            };
            if !ok {
                return Err(unsupported());
            }
            Ok(IoMeta { name: name.to_string(), datatype: None, shape: vec![-1], kind: IoKind::Sequence })
        }
        ValueType::Map { key, value } if map_supported(*key, *value) => {
            Ok(IoMeta { name: name.to_string(), datatype: None, shape: vec![], kind: IoKind::Map })
        }
        _ => Err(unsupported()),
    }
}

fn map_supported(key: TensorElementType, value: TensorElementType) -> bool {
    use TensorElementType as T;
    matches!(key, T::Int64 | T::String) && matches!(value, T::Float32 | T::Float64 | T::Int64)
}

/// Moves a tensor into an ONNX Runtime value.
pub(crate) fn to_ort(t: Tensor) -> Result<(String, DynValue), ServingError> {
    use ort::value::Tensor as OrtTensor;
    let (name, shape, data) = t.into_parts();
    let fail = |e: ort::Error| ServingError::input(format!("input '{name}': {e}"));
    let value = match data {
        TensorData::Bool(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Uint8(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Uint16(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Uint32(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Uint64(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Int8(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Int16(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Int32(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Int64(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Fp16(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Fp32(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Fp64(v) => OrtTensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        TensorData::Bytes(v) => {
            // ort copies each string into a NUL-terminated C string, so an embedded NUL
            // would fail deep inside; say so plainly instead.
            if let Some(i) = v.iter().position(|s| s.contains('\0')) {
                return Err(ServingError::input(format!(
                    "input '{name}': BYTES element {i} contains a NUL character, which ONNX \
                     Runtime string tensors cannot hold"
                )));
            }
            OrtTensor::from_string_array((shape, v.as_slice())).map_err(fail)?.into_dyn()
        }
    };
    Ok((name, value))
}

/// Reads an ONNX Runtime output back as an [`Output`].
pub(crate) fn from_ort(name: &str, value: &DynValue) -> Result<Output, ServingError> {
    match value.dtype() {
        ValueType::Tensor { .. } => {
            let (shape, data) = tensor_parts(value)?;
            Ok(Output::Tensor(Tensor::from_checked(name.to_string(), shape, data)))
        }
        ValueType::Sequence(inner) => {
            let data = match inner.as_ref() {
                ValueType::Map { .. } => value
                    .try_extract_sequence::<DynMapValueType>()
                    .map_err(ServingError::inference)?
                    .iter()
                    .map(map_json)
                    .collect::<Result<Vec<_>, _>>()?,
                ValueType::Tensor { .. } => value
                    .try_extract_sequence::<DynTensorValueType>()
                    .map_err(ServingError::inference)?
                    .iter()
                    .map(|t| {
                        let (shape, data) = tensor_parts(t)?;
                        Ok(Tensor::from_checked(String::new(), shape, data).to_nested_json())
                    })
                    .collect::<Result<Vec<_>, ServingError>>()?,
                other => return Err(unsupported_output(name, other)),
            };
            Ok(Output::json(name, data))
        }
        ValueType::Map { .. } => Ok(Output::json(name, vec![map_json(value)?])),
        other => Err(unsupported_output(name, other)),
    }
}

fn unsupported_output(name: &str, ty: &ValueType) -> ServingError {
    ServingError::Inference(format!("output '{name}' has unsupported type {ty}"))
}

fn tensor_parts<T: TensorValueTypeMarker + ValueTypeMarker + ?Sized>(
    v: &Value<T>,
) -> Result<(Vec<i64>, TensorData), ServingError> {
    macro_rules! take {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(ServingError::inference)?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let elem = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(ServingError::Inference(format!("expected a tensor, got {other}"))),
    };
    Ok(match elem {
        TensorElementType::Bool => take!(bool, Bool),
        TensorElementType::Uint8 => take!(u8, Uint8),
        TensorElementType::Uint16 => take!(u16, Uint16),
        TensorElementType::Uint32 => take!(u32, Uint32),
        TensorElementType::Uint64 => take!(u64, Uint64),
        TensorElementType::Int8 => take!(i8, Int8),
        TensorElementType::Int16 => take!(i16, Int16),
        TensorElementType::Int32 => take!(i32, Int32),
        TensorElementType::Int64 => take!(i64, Int64),
        TensorElementType::Float16 => take!(half::f16, Fp16),
        TensorElementType::Float32 => take!(f32, Fp32),
        TensorElementType::Float64 => take!(f64, Fp64),
        TensorElementType::String => {
            let (shape, data) = v.try_extract_strings().map_err(ServingError::inference)?;
            (shape.to_vec(), TensorData::Bytes(data))
        }
        other => return Err(ServingError::Inference(format!("unsupported output element type {other}"))),
    })
}

/// A JSON number for a map value.
trait JsonNumber {
    fn to_json(&self) -> Json;
}
impl JsonNumber for f32 {
    fn to_json(&self) -> Json {
        f32_to_json(*self)
    }
}
impl JsonNumber for f64 {
    fn to_json(&self) -> Json {
        Json::from(*self)
    }
}
impl JsonNumber for i64 {
    fn to_json(&self) -> Json {
        Json::from(*self)
    }
}

fn map_json<T: MapValueTypeMarker + ValueTypeMarker + ?Sized>(m: &Value<T>) -> Result<Json, ServingError> {
    use TensorElementType as E;
    let (key, value) = match m.dtype() {
        ValueType::Map { key, value } => (*key, *value),
        other => return Err(ServingError::Inference(format!("expected a map, got {other}"))),
    };
    match (key, value) {
        (E::Int64, E::Float32) => kv::<i64, f32, T>(m),
        (E::Int64, E::Float64) => kv::<i64, f64, T>(m),
        (E::Int64, E::Int64) => kv::<i64, i64, T>(m),
        (E::String, E::Float32) => kv::<String, f32, T>(m),
        (E::String, E::Float64) => kv::<String, f64, T>(m),
        (E::String, E::Int64) => kv::<String, i64, T>(m),
        (k, v) => Err(ServingError::Inference(format!("unsupported map type Map<{k}, {v}>"))),
    }
}

fn kv<K, V, T>(m: &Value<T>) -> Result<Json, ServingError>
where
    K: ort::value::IntoTensorElementType + Clone + Hash + Eq + ToString,
    V: PrimitiveTensorElementType + Clone + JsonNumber,
    T: MapValueTypeMarker + ValueTypeMarker + ?Sized,
{
    let pairs = m.try_extract_key_values::<K, V>().map_err(ServingError::inference)?;
    Ok(Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()))
}
