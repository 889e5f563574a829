//! The Open Inference Protocol (KServe v2) JSON codec: inference requests in, inference
//! responses and model metadata out. Transport-free: callers bring the JSON body and send
//! back the values built here.
//!
//! - [`InferRequest::from_json`] / [`InferRequest::from_slice`] parse a request body
//!   `{"id": .., "parameters": {..}, "inputs": [{"name", "shape", "datatype", "data",
//!   "parameters"?}], "outputs": [{"name"}]}`. Only `inputs` is required. Errors are
//!   [`crate::ServingError::InvalidInput`] naming the offending field or element. The tensors are
//!   only checked to be valid tensors here; whether they fit the model is
//!   [`crate::ModelRegistry::check`]'s job, and whether the requested outputs exist is
//!   [`check_requested_outputs`]'s, both usable before a request is committed.
//! - [`infer_response`] renders a run's outputs as `{"model_name", "model_version", "id"?,
//!   "outputs": [{"name", "datatype", "shape", "data"}]}` with flat, row-major `data`.
//! - [`model_metadata`] renders `{"name", "versions", "platform": "onnxruntime_onnx",
//!   "inputs": [{"name", "datatype", "shape"}], "outputs": [..]}`, `-1` for dynamic dims.
//!
//! # Conventions
//!
//! **Data.** `data` may be flat (`[1, 2, 3, 4]`) or nested following the shape
//! (`[[1, 2], [3, 4]]`); nested data must be rectangular and match `shape` exactly. A rank-0
//! tensor takes `[x]` or a bare `x`. Responses always carry flat data. Element rules are
//! those of [`crate::tensor::json`]: integers must be integral and in range, floats finite and
//! in range, BOOL takes `true`/`false`.
//!
//! **BYTES** elements are JSON strings (UTF-8 text, as ONNX `STRING` tensors hold); the
//! binary tensor data extension (`binary_data_size`) is not supported and is refused.
//!
//! **FP16** values travel as JSON numbers. On the way in each is rounded to the nearest
//! `f16` (ties to even, as the `half` crate does); magnitudes above 65504 are refused rather
//! than turned into infinity. On the way out each `f16` is widened exactly to `f32` and
//! written in the shortest decimal that reads back as that `f32` (so `0.1` comes back as
//! `0.099975586`, which reads back as the same `f16`). FP32 values are written in their
//! shortest round-trip form too; non-finite floats become `null`, as JSON has no NaN.
//!
//! **JSON** is the datatype of non-tensor outputs (ONNX sequences and maps, e.g. the
//! `output_probability` of an sklearn classifier with ZipMap), in the form described in
//! [`crate::output`]: `shape` is `[n]` and `data` holds `n` JSON values, one object per map
//! (keys as strings) or one nested array per tensor of a sequence. Metadata lists such an
//! output with datatype `"JSON"` and shape `[-1]` for a sequence (one element per input row
//! for classifiers) or `[1]` for a single map. `"JSON"` is never accepted for inputs.
//!
//! **Requested outputs.** Without `outputs` every model output is returned. With it, only
//! the named ones, in the model's output order; [`check_requested_outputs`] refuses names
//! the model does not have, and [`infer_response`] skips them. Request and per-input
//! `parameters` are kept (request) or ignored (per input) and never interpreted.

mod request;
mod response;

pub use request::{InferRequest, RequestedOutput};
pub use response::{
    check_requested_outputs, infer_response, metadata_of, model_metadata, ModelMetadata, TensorMetadata, PLATFORM,
};
