//! Compiles `proto/grpc_predict_v2.proto` (the Open Inference Protocol's gRPC
//! service) with the pure-Rust protox compiler, so no protoc is needed on the
//! build machine, and generates the tonic server and client. The client is
//! generated too so that tests and tools can speak to a node without a
//! second copy of the protocol.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{proto_dir}/grpc_predict_v2.proto");
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file.as_str()], [proto_dir])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
