//! Open Inference Protocol (KServe v2) tensors.
//!
//! A [`Tensor`] is a name, a shape and typed, row-major, flat data ([`TensorData`]). Its
//! [`DataType`] follows from the data. Every `Tensor` that exists is valid: the data length
//! equals the product of the shape and every dimension is non-negative. Construct one with
//! [`Tensor::new`] or by deserialising.
//!
//! JSON form (the OIP one), see [`json`]:
//! `{"name": "input", "datatype": "FP32", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}`.
//! Nested `data` arrays (`[[1.0, 2.0], [3.0, 4.0]]`) are accepted and flattened. FP16 values
//! travel as JSON numbers and are rounded to `f16` with the `half` crate.

pub mod json;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::error::ServingError;

/// OIP tensor element types, serialised with the protocol's names (`"BOOL"`, `"UINT8"`, ...,
/// `"FP16"`, `"FP32"`, `"FP64"`, `"BYTES"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    /// UTF-8 strings (ONNX `STRING`).
    Bytes,
}

impl DataType {
    /// Every data type, in declaration order.
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol name, e.g. `"FP32"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ServingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|dt| dt.as_str() == s)
            .ok_or_else(|| ServingError::input(format!("unknown datatype '{s}'")))
    }
}

/// Flat, row-major tensor data; the variant fixes the [`DataType`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

/// Applies `$body` to the vector inside any variant, binding it as `$v`.
macro_rules! with_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Like [`with_vec`], but `$body` yields a new vector wrapped back into the same variant.
macro_rules! map_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Fp16($v) => TensorData::Fp16($body),
            TensorData::Fp32($v) => TensorData::Fp32($body),
            TensorData::Fp64($v) => TensorData::Fp64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}
pub(crate) use with_vec;

impl TensorData {
    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a JSON value (FP16 as its `f32` value, floats in shortest form).
    /// `None` when out of range.
    pub fn json_element(&self, i: usize) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self {
            TensorData::Bool(v) => Value::Bool(*v.get(i)?),
            TensorData::Uint8(v) => Value::from(*v.get(i)?),
            TensorData::Uint16(v) => Value::from(*v.get(i)?),
            TensorData::Uint32(v) => Value::from(*v.get(i)?),
            TensorData::Uint64(v) => Value::from(*v.get(i)?),
            TensorData::Int8(v) => Value::from(*v.get(i)?),
            TensorData::Int16(v) => Value::from(*v.get(i)?),
            TensorData::Int32(v) => Value::from(*v.get(i)?),
            TensorData::Int64(v) => Value::from(*v.get(i)?),
            TensorData::Fp16(v) => json::f32_to_json(v.get(i)?.to_f32()),
            TensorData::Fp32(v) => json::f32_to_json(*v.get(i)?),
            TensorData::Fp64(v) => Value::from(*v.get(i)?),
            TensorData::Bytes(v) => Value::String(v.get(i)?.clone()),
        })
    }

    /// A copy of elements `range` (which the caller keeps in bounds).
    pub(crate) fn slice(&self, range: Range<usize>) -> TensorData {
        map_vec!(self, v => v.get(range).map(<[_]>::to_vec).unwrap_or_default())
    }

    /// Concatenates same-typed data; `None` if `parts` is empty or the types differ.
    pub(crate) fn concat(parts: &[&TensorData]) -> Option<TensorData> {
        let first = parts.first()?;
        let total = parts.iter().map(|p| p.len()).sum();
        macro_rules! cat {
            ($($variant:ident),*) => {
                match first {
                    $(TensorData::$variant(_) => {
                        let mut out = Vec::with_capacity(total);
                        for part in parts {
                            match part {
                                TensorData::$variant(v) => out.extend_from_slice(v),
                                _ => return None,
                            }
                        }
                        TensorData::$variant(out)
                    })*
                }
            };
        }
        Some(cat!(Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes))
    }
}

macro_rules! impl_from_vec {
    ($($t:ty => $variant:ident),*) => {
        $(impl From<Vec<$t>> for TensorData {
            fn from(v: Vec<$t>) -> Self {
                TensorData::$variant(v)
            }
        })*
    };
}
impl_from_vec!(bool => Bool, u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, f16 => Fp16, f32 => Fp32,
    f64 => Fp64, String => Bytes);

/// A named, shaped, typed tensor. Always valid (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<i64>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that every dimension is non-negative and that the data
    /// holds exactly the product of the shape elements.
    pub fn new(name: impl Into<String>, shape: Vec<i64>, data: TensorData) -> Result<Tensor, ServingError> {
        let name = name.into();
        let expected = element_count(&shape).map_err(|m| ServingError::input(format!("tensor '{name}': {m}")))?;
        if expected != data.len() {
            return Err(ServingError::input(format!(
                "tensor '{name}': shape {shape:?} needs {expected} elements but data has {}",
                data.len()
            )));
        }
        Ok(Tensor { name, shape, data })
    }

    /// The tensor's name (the model input or output it belongs to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// The shape; every dimension is `>= 0`.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// The flat, row-major data.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Splits into name, shape and data.
    pub fn into_parts(self) -> (String, Vec<i64>, TensorData) {
        (self.name, self.shape, self.data)
    }

    /// Renames the tensor (shape and data are untouched, so it stays valid).
    pub fn with_name(mut self, name: impl Into<String>) -> Tensor {
        self.name = name.into();
        self
    }

    /// The data as nested JSON arrays following the shape (a bare scalar for rank 0).
    pub fn to_nested_json(&self) -> serde_json::Value {
        let mut next = 0usize;
        nest(&self.data, &self.shape, &mut next)
    }

    /// Rows along dimension 0 (`None` for a scalar).
    pub(crate) fn rows(&self) -> Option<usize> {
        self.shape.first().map(|&d| d as usize)
    }

    /// Rows `range` of dimension 0 as a new tensor. The caller keeps `range` within
    /// [`Tensor::rows`]; the result is then valid by construction.
    pub(crate) fn slice_rows(&self, range: Range<usize>) -> Tensor {
        // A valid tensor's trailing product fits (see `element_count`); 0 if not.
        let row_len = element_count(self.shape.get(1..).unwrap_or_default()).unwrap_or(0);
        let mut shape = self.shape.clone();
        if let Some(d0) = shape.first_mut() {
            *d0 = range.len() as i64;
        }
        Tensor { name: self.name.clone(), shape, data: self.data.slice(range.start * row_len..range.end * row_len) }
    }

    /// Internal constructor for data whose length already matches `shape` (e.g. read back
    /// from ONNX Runtime or concatenated from valid tensors).
    pub(crate) fn from_checked(name: String, shape: Vec<i64>, data: TensorData) -> Tensor {
        debug_assert_eq!(element_count(&shape).ok(), Some(data.len()));
        Tensor { name, shape, data }
    }
}

/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 64;

/// Product of `shape`, rejecting more than [`MAX_RANK`] dimensions, negative dimensions and
/// absurd ones: the product with zero dimensions counted as 1 must fit in an `i64`, so
/// that `[0, i64::MAX]` (no elements, but an impossible row length) is refused as well.
/// Nothing is allocated from the shape.
pub fn element_count(shape: &[i64]) -> Result<usize, String> {
    if shape.len() > MAX_RANK {
        return Err(format!("shape has {} dimensions; at most {MAX_RANK} are supported", shape.len()));
    }
    let mut count: usize = 1;
    let mut nominal: i64 = 1;
    for &d in shape {
        if d < 0 {
            return Err(format!("shape {shape:?} has a negative dimension"));
        }
        nominal =
            nominal.checked_mul(d.max(1)).ok_or_else(|| format!("shape {shape:?} has absurdly large dimensions"))?;
        // `d <= nominal <= i64::MAX`, and `count <= nominal`, so neither step can overflow
        // a 64-bit `usize`; checked anyway for 32-bit targets.
        count = usize::try_from(d)
            .ok()
            .and_then(|d| count.checked_mul(d))
            .ok_or_else(|| format!("shape {shape:?} has too many elements"))?;
    }
    Ok(count)
}

/// Product of `shape` with zero dimensions counted as 1: how large the tensor would be if
/// its empty dimensions were not empty. `None` if it overflows. Bounds what anything indexing
/// by dimension (a row length, nested JSON) may touch.
pub(crate) fn nominal_count(shape: &[i64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?.max(1)))
}

fn nest(data: &TensorData, shape: &[i64], next: &mut usize) -> serde_json::Value {
    match shape.split_first() {
        None => {
            let v = data.json_element(*next).unwrap_or(serde_json::Value::Null);
            *next += 1;
            v
        }
        Some((&d, rest)) => serde_json::Value::Array((0..d.max(0)).map(|_| nest(data, rest, next)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_checks_length_and_shape() {
        assert!(Tensor::new("x", vec![2, 2], vec![1.0f32; 4].into()).is_ok());
        let err = Tensor::new("x", vec![2, 2], vec![1.0f32; 3].into()).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("needs 4")));
        let err = Tensor::new("x", vec![-1, 2], vec![1.0f32; 2].into()).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("negative")));
        let err = Tensor::new("x", vec![i64::MAX, i64::MAX], vec![0u8].into()).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(_)));
        // no elements, but an absurd row length: refused, never allocated or iterated
        let err = Tensor::new("x", vec![0, i64::MAX, 4], TensorData::Fp32(vec![])).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("absurd")));
        let err = Tensor::new("x", vec![1; MAX_RANK + 1], vec![0u8].into()).unwrap_err();
        assert!(matches!(err, ServingError::InvalidInput(ref m) if m.contains("at most")));
        assert!(Tensor::new("x", vec![1; MAX_RANK], vec![0u8].into()).is_ok());
        assert!(Tensor::new("x", vec![0, 1 << 40], TensorData::Fp32(vec![])).is_ok());
        assert_eq!(nominal_count(&[0, 3, 0, 5]), Some(15));
        assert_eq!(nominal_count(&[-1]), None);
        // rank 0 holds one element
        assert!(Tensor::new("s", vec![], vec![7i64].into()).is_ok());
    }

    #[test]
    fn nested_json_follows_shape() {
        let t = Tensor::new("x", vec![2, 3], vec![1i32, 2, 3, 4, 5, 6].into()).unwrap();
        assert_eq!(t.to_nested_json(), json!([[1, 2, 3], [4, 5, 6]]));
        let s = Tensor::new("s", vec![], vec!["hi".to_string()].into()).unwrap();
        assert_eq!(s.to_nested_json(), json!("hi"));
        let e = Tensor::new("e", vec![0, 3], TensorData::Fp32(vec![])).unwrap();
        assert_eq!(e.to_nested_json(), json!([]));
    }

    #[test]
    fn slice_and_concat_rows() {
        let t = Tensor::new("x", vec![3, 2], vec![1u16, 2, 3, 4, 5, 6].into()).unwrap();
        let mid = t.slice_rows(1..3);
        assert_eq!(mid.shape(), &[2, 2]);
        assert_eq!(mid.data(), &TensorData::Uint16(vec![3, 4, 5, 6]));
        let a = TensorData::Fp32(vec![1.0]);
        let b = TensorData::Fp32(vec![2.0, 3.0]);
        assert_eq!(TensorData::concat(&[&a, &b]), Some(TensorData::Fp32(vec![1.0, 2.0, 3.0])));
        assert_eq!(TensorData::concat(&[&a, &TensorData::Fp64(vec![1.0])]), None);
    }

    #[test]
    fn datatype_names() {
        for dt in DataType::ALL {
            assert_eq!(dt.as_str().parse::<DataType>().unwrap(), dt);
            assert_eq!(serde_json::to_value(dt).unwrap(), json!(dt.as_str()));
        }
        assert!("FLOAT".parse::<DataType>().is_err());
    }
}
