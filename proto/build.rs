//! Compiles proto/intentgate/v1/*.proto with protox (pure Rust, no protoc needed). The tonic service
//! modules are compiled only with the `grpc` feature, so the wasm filter links messages alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["intentgate/v1/filter_sync.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        .server_mod_attribute("intentgate.v1", "#[cfg(feature = \"grpc\")]")
        .client_mod_attribute("intentgate.v1", "#[cfg(feature = \"grpc\")]")
        .compile_fds(descriptors)?;
    Ok(())
}
