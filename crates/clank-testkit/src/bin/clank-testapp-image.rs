//! Build the test app's image (`clank-testapp:latest`) on the local Docker Engine, if it is
//! missing or stale: the setup step of the Python and Node binding tests, which cannot call
//! [`clank_testkit::testapp::docker::ensure_testapp_image`] themselves.
//!
//! Run: `cargo run -p clank-testkit --features docker --bin clank-testapp-image`. Prints the
//! content digest the image was built from; exits 2 when no engine answers (so callers can tell
//! "no Docker here" from a failed build).

use clank_testkit::testapp::docker::{connect, ensure_testapp_image};

#[allow(clippy::print_stdout, clippy::print_stderr)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let docker = match connect().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("clank-testapp-image: no Docker Engine: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match ensure_testapp_image(&docker).await {
        Ok(image) => {
            println!("{image}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clank-testapp-image: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
