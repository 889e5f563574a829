//! Generates the Rust types of `proto/onnx.proto` (the subset of the ONNX
//! model format that the exporters write) with the pure-Rust protox compiler
//! and prost-build, so no protoc is needed on the build machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{proto_dir}/onnx.proto");
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file.as_str()], [proto_dir])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
