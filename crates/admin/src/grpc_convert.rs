//! Every conversion between the Open Inference Protocol's gRPC messages
//! ([`crate::grpc::pb`]) and Boat's domain types. The handlers in [`crate::grpc`] only
//! call into here, so the wire rules live in one place:
//!
//! **Inputs, typed.** Each input's elements sit in the `contents` field that
//! matches its datatype: `bool_contents` (BOOL), `int_contents` (INT8, INT16,
//! INT32; narrowed with a range check), `int64_contents` (INT64),
//! `uint_contents` (UINT8, UINT16, UINT32; range-checked), `uint64_contents`
//! (UINT64), `fp32_contents` (FP32), `fp64_contents` (FP64), `bytes_contents`
//! (BYTES). Data in any other field is refused rather than ignored. FP16 has
//! no typed field in the protocol, so typed FP16 is refused with a pointer
//! to the raw form.
//!
//! **Inputs, raw.** `raw_input_contents` holds one entry per input, in input
//! order, with flat row-major little-endian elements: 1 byte for BOOL (0 or
//! 1), INT8 and UINT8, 2 for INT16, UINT16 and FP16 (IEEE half), 4 and 8 for
//! the wider types. A BYTES element is a 4-byte little-endian length followed
//! by that many bytes. The spec lets a request use raw or typed contents,
//! never both, and so does Boat. Lengths are checked against the shape
//! before anything is allocated from it.
//!
//! **BYTES** are UTF-8 text (ONNX `STRING`, as in Boat's HTTP API); other
//! bytes are refused.
//!
//! **Outputs** use typed contents. FP16 outputs have no typed field, and the
//! spec forbids mixing raw and typed outputs, so a response with an FP16
//! output carries every output in `raw_output_contents` instead.
//!
//! **Non-tensor outputs** (ONNX sequences and maps, such as the
//! `output_probability` of an sklearn classifier with ZipMap) have datatype
//! `"JSON"` and shape `[n]`, as over HTTP, and element `i`'s JSON text (UTF-8)
//! in `bytes_contents[i]` (or length-prefixed in the raw form).
//!
//! **Errors** are [`ApiError`]s; their kind decides the gRPC code (see
//! `crate::error`), so gRPC and HTTP refuse the same requests for the same
//! reasons.

use std::collections::HashMap;

use boat_raft::PredictOutcome;
use boat_serving::oip::ModelMetadata;
use boat_serving::output::JSON_DATATYPE;
use boat_serving::tensor::element_count;
use boat_serving::{f16, DataType, Output, Tensor, TensorData};
use serde_json::Value;

use crate::error::ApiError;
use crate::grpc::pb::infer_parameter::ParameterChoice;
use crate::grpc::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use crate::grpc::pb::model_infer_response::InferOutputTensor;
use crate::grpc::pb::model_metadata_response::TensorMetadata;
use crate::grpc::pb::{InferParameter, InferTensorContents, ModelInferResponse, ModelMetadataResponse};

type Params = HashMap<String, InferParameter>;

fn invalid(message: String) -> ApiError {
    ApiError::unprocessable(message)
}

// ---- request fields -------------------------------------------------------

/// A requested version: absent or empty means the default, as over HTTP; a
/// non-number is a version that does not exist (404, as `v2` answers).
pub fn version(v: Option<&str>) -> Result<Option<u64>, ApiError> {
    match v {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ApiError::not_found(format!("version {v:?} is not a number"))),
    }
}

/// The `idempotency_key` request parameter, which must be a string.
pub fn idempotency_key(params: &Params) -> Result<Option<String>, ApiError> {
    match params.get("idempotency_key").and_then(|p| p.parameter_choice.as_ref()) {
        None => Ok(None),
        Some(ParameterChoice::StringParam(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!("parameters.idempotency_key must be a string_param, not {other:?}"))),
    }
}

/// Whether the request asks for asynchronous inference (`async: true`).
pub fn wants_async(params: &Params) -> Result<bool, ApiError> {
    match params.get("async").and_then(|p| p.parameter_choice.as_ref()) {
        None => Ok(false),
        Some(ParameterChoice::BoolParam(b)) => Ok(*b),
        Some(other) => Err(invalid(format!("parameters.async must be a bool_param, not {other:?}"))),
    }
}

/// Output names asked for; `None` (every output) when the list is empty,
/// since protobuf cannot tell an empty list from an absent one.
pub fn requested_outputs(outputs: &[InferRequestedOutputTensor]) -> Option<Vec<String>> {
    (!outputs.is_empty()).then(|| outputs.iter().map(|o| o.name.clone()).collect())
}

// ---- inputs ---------------------------------------------------------------

/// The request's input tensors, from typed contents or from `raw` (one entry
/// per input), never a mix of both.
pub fn infer_inputs(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> Result<Vec<Tensor>, ApiError> {
    if raw.is_empty() {
        return inputs.into_iter().map(|i| input(i, None)).collect();
    }
    if raw.len() != inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries but there are {} inputs; send one per input, in input order",
            raw.len(),
            inputs.len()
        )));
    }
    inputs.into_iter().zip(raw).map(|(i, r)| input(i, Some(r))).collect()
}

fn input(t: InferInputTensor, raw: Option<Vec<u8>>) -> Result<Tensor, ApiError> {
    let name = t.name;
    let fail = |m: String| invalid(format!("input '{name}': {m}"));
    if t.datatype == JSON_DATATYPE {
        return Err(fail("JSON is an output-only datatype".into()));
    }
    let dt: DataType = t.datatype.parse().map_err(|_| fail(format!("unknown datatype {:?}", t.datatype)))?;
    let count = element_count(&t.shape).map_err(&fail)?;
    let contents = t.contents.unwrap_or_default();
    let data = match raw {
        Some(bytes) => {
            if let Some(field) = filled_fields(&contents).first() {
                return Err(fail(format!(
                    "{field} is set although the request uses raw_input_contents; use one or the other"
                )));
            }
            decode_raw(dt, count, bytes)
        }
        None => decode_typed(dt, contents),
    }
    .map_err(&fail)?;
    Tensor::new(name.clone(), t.shape, data).map_err(|e| invalid(e.to_string()))
}

/// The typed fields that hold data.
fn filled_fields(c: &InferTensorContents) -> Vec<&'static str> {
    [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(f, _)| f)
    .collect()
}

/// The typed field a datatype travels in; `None` for FP16, which has none.
fn typed_field(dt: DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp16 => return None,
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
    })
}

fn decode_typed(dt: DataType, c: InferTensorContents) -> Result<TensorData, String> {
    let Some(field) = typed_field(dt) else {
        return Err("FP16 has no typed contents field in the protocol; send FP16 inputs in \
                    raw_input_contents (2-byte little-endian IEEE half floats)"
            .into());
    };
    if let Some(other) = filled_fields(&c).into_iter().find(|f| *f != field) {
        return Err(format!("datatype {dt} travels in {field}, but {other} holds data"));
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::Int8 => TensorData::Int8(narrow(c.int_contents, dt)?),
        DataType::Int16 => TensorData::Int16(narrow(c.int_contents, dt)?),
        DataType::Int32 => TensorData::Int32(c.int_contents),
        DataType::Int64 => TensorData::Int64(c.int64_contents),
        DataType::Uint8 => TensorData::Uint8(narrow(c.uint_contents, dt)?),
        DataType::Uint16 => TensorData::Uint16(narrow(c.uint_contents, dt)?),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(
            c.bytes_contents.into_iter().enumerate().map(|(i, b)| utf8(i, b)).collect::<Result<_, _>>()?,
        ),
        // Refused above: FP16 has no typed field.
        DataType::Fp16 => return Err("FP16 must travel raw".into()),
    })
}

/// Narrows 32-bit protobuf integers to a smaller element type, refusing
/// values that do not fit instead of wrapping them.
fn narrow<W: Copy + std::fmt::Display, T: TryFrom<W>>(v: Vec<W>, dt: DataType) -> Result<Vec<T>, String> {
    v.into_iter()
        .enumerate()
        .map(|(i, x)| T::try_from(x).map_err(|_| format!("element {i} ({x}) is out of range for {dt}")))
        .collect()
}

fn utf8(i: usize, b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|_| format!("element {i} is not UTF-8; Boat's BYTES tensors hold text (ONNX STRING)"))
}

/// Bytes per element of the fixed-width datatypes; `None` for BYTES.
fn width(dt: DataType) -> Option<usize> {
    match dt {
        DataType::Bool | DataType::Int8 | DataType::Uint8 => Some(1),
        DataType::Int16 | DataType::Uint16 | DataType::Fp16 => Some(2),
        DataType::Int32 | DataType::Uint32 | DataType::Fp32 => Some(4),
        DataType::Int64 | DataType::Uint64 | DataType::Fp64 => Some(8),
        DataType::Bytes => None,
    }
}

/// Little-endian elements of `N` bytes.
fn le<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    // `chunks_exact` yields only N-byte chunks, so the conversion cannot fail;
    // the fallback only keeps this free of a panic path.
    b.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
}

fn decode_raw(dt: DataType, count: usize, b: Vec<u8>) -> Result<TensorData, String> {
    let Some(w) = width(dt) else {
        return decode_raw_bytes(count, &b).map(TensorData::Bytes);
    };
    // Compared before decoding, so a huge shape allocates nothing.
    let want = count.checked_mul(w).ok_or("the shape is too large")?;
    if b.len() != want {
        return Err(format!("{count} {dt} elements take {want} bytes of raw contents, but {} were given", b.len()));
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(
            b.iter()
                .enumerate()
                .map(|(i, &x)| match x {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(format!("BOOL element {i} is byte {x}; only 0 and 1 are booleans")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => TensorData::Uint8(b),
        DataType::Int8 => TensorData::Int8(le(&b, i8::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(le(&b, i16::from_le_bytes)),
        DataType::Uint16 => TensorData::Uint16(le(&b, u16::from_le_bytes)),
        DataType::Fp16 => TensorData::Fp16(le(&b, f16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(le(&b, i32::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(le(&b, u32::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(le(&b, f32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(le(&b, i64::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(le(&b, u64::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(le(&b, f64::from_le_bytes)),
        // Handled above (variable width).
        DataType::Bytes => return Err("BYTES raw contents are length-prefixed".into()),
    })
}

/// Length-prefixed BYTES elements; exactly `count` of them, filling `b`.
fn decode_raw_bytes(count: usize, mut b: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let i = out.len();
        if i == count {
            return Err(format!("raw contents hold more than the shape's {count} BYTES elements"));
        }
        let (len, rest) = b
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("BYTES element {i} is cut off inside its 4-byte length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let (elem, rest) = rest
            .split_at_checked(len)
            .ok_or_else(|| format!("BYTES element {i} claims {len} bytes but only {} remain", rest.len()))?;
        out.push(utf8(i, elem.to_vec())?);
        b = rest;
    }
    if out.len() != count {
        return Err(format!("raw contents hold {} BYTES elements but the shape needs {count}", out.len()));
    }
    Ok(out)
}

// ---- outputs --------------------------------------------------------------

/// The response for a run's outputs; `id` is the client's request id, or
/// Boat's when the client sent none (as over HTTP). The parameters mirror the
/// HTTP response's: request id, log position, whether it was a replay, and
/// the answering node.
pub fn infer_response(o: &PredictOutcome, outputs: &[Output], id: &str, node_id: u64) -> ModelInferResponse {
    let is_fp16 = |out: &Output| out.as_tensor().is_some_and(|t| t.datatype() == DataType::Fp16);
    let raw = outputs.iter().any(is_fp16);
    let mut resp = ModelInferResponse {
        model_name: o.model.clone(),
        model_version: o.version.to_string(),
        id: if id.is_empty() { o.id.clone() } else { id.to_string() },
        parameters: HashMap::from([
            ("request_id".into(), param(ParameterChoice::StringParam(o.id.clone()))),
            ("index".into(), param(ParameterChoice::Uint64Param(o.index))),
            ("term".into(), param(ParameterChoice::Uint64Param(o.term))),
            ("duplicate".into(), param(ParameterChoice::BoolParam(o.duplicate))),
            ("node_id".into(), param(ParameterChoice::Uint64Param(node_id))),
        ]),
        ..Default::default()
    };
    for out in outputs {
        let (name, datatype, shape) = match out {
            Output::Tensor(t) => (t.name(), t.datatype().as_str(), t.shape().to_vec()),
            Output::Json { name, shape, .. } => (name.as_str(), JSON_DATATYPE, shape.clone()),
        };
        let contents = if raw {
            resp.raw_output_contents.push(raw_contents(out));
            None
        } else {
            Some(typed_contents(out))
        };
        resp.outputs.push(InferOutputTensor {
            name: name.to_string(),
            datatype: datatype.to_string(),
            shape,
            parameters: HashMap::new(),
            contents,
        });
    }
    resp
}

fn param(p: ParameterChoice) -> InferParameter {
    InferParameter { parameter_choice: Some(p) }
}

/// Each element of a JSON output as its JSON text.
fn json_texts(data: &[Value]) -> Vec<Vec<u8>> {
    data.iter().map(|v| v.to_string().into_bytes()).collect()
}

fn typed_contents(out: &Output) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    let t = match out {
        Output::Tensor(t) => t,
        Output::Json { data, .. } => {
            c.bytes_contents = json_texts(data);
            return c;
        }
    };
    match t.data() {
        TensorData::Bool(v) => c.bool_contents = v.clone(),
        TensorData::Int8(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Int16(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Int32(v) => c.int_contents = v.clone(),
        TensorData::Int64(v) => c.int64_contents = v.clone(),
        TensorData::Uint8(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint32(v) => c.uint_contents = v.clone(),
        TensorData::Uint64(v) => c.uint64_contents = v.clone(),
        // Not reached: a response with an FP16 output goes raw. Widening
        // exactly to f32 is the closest typed form, should that ever change.
        TensorData::Fp16(v) => c.fp32_contents = v.iter().map(|x| x.to_f32()).collect(),
        TensorData::Fp32(v) => c.fp32_contents = v.clone(),
        TensorData::Fp64(v) => c.fp64_contents = v.clone(),
        TensorData::Bytes(v) => c.bytes_contents = v.iter().map(|s| s.clone().into_bytes()).collect(),
    }
    c
}

fn length_prefixed(elems: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elems {
        // An element over 4 GiB cannot occur: gRPC messages are far smaller.
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(&e);
    }
    out
}

fn raw_contents(out: &Output) -> Vec<u8> {
    let t = match out {
        Output::Tensor(t) => t,
        Output::Json { data, .. } => return length_prefixed(json_texts(data).into_iter()),
    };
    macro_rules! le_bytes {
        ($v:expr) => {
            $v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    match t.data() {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::Uint8(v) => v.clone(),
        TensorData::Int8(v) => le_bytes!(v),
        TensorData::Int16(v) => le_bytes!(v),
        TensorData::Uint16(v) => le_bytes!(v),
        TensorData::Fp16(v) => le_bytes!(v),
        TensorData::Int32(v) => le_bytes!(v),
        TensorData::Uint32(v) => le_bytes!(v),
        TensorData::Fp32(v) => le_bytes!(v),
        TensorData::Int64(v) => le_bytes!(v),
        TensorData::Uint64(v) => le_bytes!(v),
        TensorData::Fp64(v) => le_bytes!(v),
        TensorData::Bytes(v) => length_prefixed(v.iter().map(|s| s.clone().into_bytes())),
    }
}

// ---- metadata -------------------------------------------------------------

// The JSON that `v2` renders, read back. gRPC metadata is converted from
// it rather than rebuilt, so the two surfaces cannot drift apart.

/// The protocol's model metadata as its gRPC message.
pub fn model_metadata(m: ModelMetadata) -> ModelMetadataResponse {
    let tensor =
        |t: boat_serving::oip::TensorMetadata| TensorMetadata { name: t.name, datatype: t.datatype, shape: t.shape };
    ModelMetadataResponse {
        name: m.name,
        versions: m.versions,
        platform: m.platform,
        inputs: m.inputs.into_iter().map(tensor).collect(),
        outputs: m.outputs.into_iter().map(tensor).collect(),
        properties: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_input(dt: &str, shape: Vec<i64>, bytes: Vec<u8>) -> Result<Vec<Tensor>, ApiError> {
        let t = InferInputTensor { name: "x".into(), datatype: dt.into(), shape, ..Default::default() };
        infer_inputs(vec![t], vec![bytes])
    }

    #[test]
    fn raw_inputs_decode_and_check_lengths() {
        let fp32: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = raw_input("FP32", vec![1, 2], fp32.clone()).unwrap();
        assert_eq!(t[0].data(), &TensorData::Fp32(vec![1.5, -2.0]));
        let e = raw_input("FP32", vec![1, 3], fp32).unwrap_err();
        assert!(e.message.contains("12 bytes"), "{}", e.message);
        let h = f16::from_f32(0.5).to_le_bytes().to_vec();
        assert_eq!(raw_input("FP16", vec![1], h).unwrap()[0].data(), &TensorData::Fp16(vec![f16::from_f32(0.5)]));
        let mut b = length_prefixed(["hi", "ünï"].iter().map(|s| s.as_bytes().to_vec()));
        let t = raw_input("BYTES", vec![2], b.clone()).unwrap();
        assert_eq!(t[0].data(), &TensorData::Bytes(vec!["hi".into(), "ünï".into()]));
        b.push(9);
        assert!(raw_input("BYTES", vec![2], b).is_err());
        assert!(raw_input("BOOL", vec![1], vec![2]).is_err());
        assert!(raw_input("FP32", vec![i64::MAX, i64::MAX], vec![]).is_err());
    }

    #[test]
    fn typed_inputs_check_field_and_range() {
        let typed = |dt: &str, c: InferTensorContents| {
            let t = InferInputTensor {
                name: "x".into(),
                datatype: dt.into(),
                shape: vec![2],
                contents: Some(c),
                ..Default::default()
            };
            infer_inputs(vec![t], vec![])
        };
        let ints = InferTensorContents { int_contents: vec![1, -300], ..Default::default() };
        assert_eq!(typed("INT16", ints.clone()).unwrap()[0].data(), &TensorData::Int16(vec![1, -300]));
        assert!(typed("INT8", ints.clone()).unwrap_err().message.contains("out of range"));
        assert!(typed("FP32", ints).unwrap_err().message.contains("fp32_contents"));
        let fp = InferTensorContents { fp32_contents: vec![1.0, 2.0], ..Default::default() };
        assert!(typed("FP16", fp.clone()).unwrap_err().message.contains("raw_input_contents"));
        assert!(typed("JSON", fp).is_err());
    }
}
