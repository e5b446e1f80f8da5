//! Generates the bosun.v1 (and navarch) code without `protoc`: protox (pure Rust) compiles the .proto
//! files into a descriptor set, which connectrpc-build turns into buffa messages, service
//! traits and clients.

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";
const FILES: &[&str] = &[
    "bosun/v1/types.proto",
    "bosun/v1/agent.proto",
    "bosun/v1/admin.proto",
    "bosun/v1/ops.proto",
    // Navarch's wire API, served beside bosun.v1 for agents and CLIs still on Navarch.
    "navarch/control_plane.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    // connectrpc-build needs imported types (google.protobuf.Timestamp) in the set.
    compiler.include_imports(true);
    // Proto comments become rustdoc.
    compiler.include_source_info(true);
    compiler.open_files(FILES.iter().map(|f| PathBuf::from(PROTO_ROOT).join(f)))?;
    let descriptor_set = out_dir.join("bosun.fds.bin");
    let bytes = compiler.encode_file_descriptor_set();
    if std::fs::read(&descriptor_set).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::write(&descriptor_set, &bytes)?;
    }
    connectrpc_build::Config::new()
        .descriptor_set(&descriptor_set)
        .files(FILES)
        .include_file("_connectrpc.rs")
        // The built-in directives would watch the descriptor set we just wrote.
        .emit_rerun_directives(false)
        .compile()?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
