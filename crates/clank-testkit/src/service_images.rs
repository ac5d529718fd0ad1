//! Images of real services (PostgreSQL, MariaDB, Redis, WordPress) made from Debian's packages
//! by `scripts/images/<name>.sh`, since no public registry is reachable: what the template and
//! stack tests pass as image overrides.

use std::path::Path;
use std::process::{Command, Stdio};

/// Build (or reuse) the image `scripts/images/<name>.sh` makes; its tag. The script's progress
/// goes to this process's stderr; panics when it fails.
pub fn build(name: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/images")
        .join(format!("{name}.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(out.status.success(), "building the {name} image failed");
    String::from_utf8(out.stdout)
        .expect("the script prints the image's tag")
        .trim()
        .to_owned()
}
