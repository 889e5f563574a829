//! Compiles the node's gRPC services with the pure-Rust protox compiler, so
//! no protoc is needed on the build machine, and generates the tonic
//! servers and clients (the clients serve the CLI, tests and tools):
//! - `proto/grpc_predict_v2.proto`, the Open Inference Protocol;
//! - `proto/admin.proto`, Boat's admin service.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    for name in ["grpc_predict_v2.proto", "admin.proto"] {
        let file = format!("{proto_dir}/{name}");
        println!("cargo:rerun-if-changed={file}");
        let fds = protox::compile([file.as_str()], [proto_dir])?;
        let mut build = tonic_prost_build::configure().build_client(true).build_server(true);
        if name == "admin.proto" {
            // The CLI prints admin replies as JSON with `--json`.
            build = build.type_attribute(".", "#[derive(serde::Serialize)]");
        }
        build.compile_fds(fds)?;
    }
    Ok(())
}
