//! Integration tests against the real ONNX Runtime and the real models in `models/`.
//!
//! ONNX Runtime comes from `$ORT_DYLIB_PATH`, or else `.ort/libonnxruntime.so.1.31.1` at the
//! workspace root (what `scripts/fetch-ort.sh` installs).

mod batching;
mod check;
mod common;
mod echo;
mod errors;
mod oip;
mod probe;
mod sklearn;
