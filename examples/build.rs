//! Compiles the demo app (`demo-app/main.rs`, std only) into a self-contained executable that
//! `deploy.rs` embeds: statically linked on Linux (`+crt-static`), so the same bytes run in a
//! `FROM scratch` image and as a native process, with no package beyond the Rust toolchain
//! and the C linker it already needs.
//!
//! This calls the `rustc` cargo gives build scripts directly rather than building a second
//! package: cargo cannot make an example depend on another package's binary (artifact
//! dependencies are unstable), and one file of std code needs nothing cargo adds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "demo-app/main.rs";
    println!("cargo::rerun-if-changed={source}");
    println!("cargo::rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let binary = out.join("clank-demo-app");

    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2024",
        "--crate-type=bin",
        "--crate-name=clank_demo_app",
    ])
    .args([
        "-C",
        "opt-level=2",
        "-C",
        "strip=symbols",
        "--target",
        &target,
    ])
    .arg("-o")
    .arg(&binary)
    .arg(source);
    if target.contains("linux") {
        cmd.args(["-C", "target-feature=+crt-static"]);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run rustc to build the demo app: {e}"));
    if !output.status.success() {
        panic!(
            "building the demo app ({source}) for {target} failed; a static Linux build needs \
             the C library's static archives (Debian: libc6-dev):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
