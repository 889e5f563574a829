//! Compiles `proto/raft.proto` with the pure-Rust protox compiler (no protoc
//! is needed on the build machine) and generates the tonic service.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{proto_dir}/raft.proto");
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file.as_str()], [proto_dir])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
