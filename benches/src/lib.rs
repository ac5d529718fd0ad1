//! Benchmarks of Clank (see benches/README.md), and what several of them share.

use std::path::Path;

/// The error every bench's `main` returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Run `cmd args…` (in `dir`, if given) to completion: its trimmed stdout, or an error naming
/// the command with its stderr.
pub async fn run(cmd: &str, args: &[&str], dir: Option<&Path>) -> Result<String, BoxError> {
    let mut c = tokio::process::Command::new(cmd);
    c.args(args);
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    let out = c.output().await?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `docker` CLI, as a user runs it by hand: [`run`].
pub async fn docker_cli(args: &[&str]) -> Result<String, BoxError> {
    run("docker", args, None).await
}
