//! Generates the agent protocol's Rust code. `protoc` comes from the `protoc-bin-vendored`
//! crate unless `PROTOC` names one, so a fresh machine builds without installing anything.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/clank/agent/v1/agent.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    // Its `Debug` (in lib.rs) shows the user name only: a password never reaches a log.
    config.skip_debug(["clank.agent.v1.RegistryCredentials"]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &[proto], &["proto"])?;
    Ok(())
}
