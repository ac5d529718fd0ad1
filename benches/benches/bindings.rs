//! Binding overhead, the Rust side: 10,000 sequential "get service" calls on an embedded
//! platform, straight through `Platform::service` and through `Platform::execute_json` (the
//! JSON request path the Python and Node bindings call). `benches/bindings.sh` runs this next
//! to the same loop in Python and Node and prints the table.
//!
//! Run alone: `cargo bench -p clank-benches --bench bindings` (`CALLS`, `ROUNDS` override).
//! Prints one JSON line per side: `{"side", "calls", "rounds_us": [per-call µs of each round]}`.

use std::time::Instant;

use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::print_stdout)]
fn report(side: &str, calls: usize, rounds_us: &[f64]) {
    let rounds: Vec<String> = rounds_us.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "{{\"side\": \"{side}\", \"calls\": {calls}, \"rounds_us\": [{}]}}",
        rounds.join(", ")
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let calls = env("CALLS", 10_000);
    let rounds = env("ROUNDS", 5);
    let dir = tempfile::tempdir()?;
    let mut options = EmbeddedOptions::new(dir.path().join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await?;
    p.ensure_workspace("default").await?;
    p.create_project("default", "Bench", Some("bench")).await?;
    p.execute_json(
        r#"{"op": "create_service", "environment": "bench", "spec": {"slug": "api",
            "source": {"type": "docker_image", "image": "clank-testapp:latest"}}}"#,
    )
    .await?;
    let request = r#"{"op": "get_service", "service": "bench/api"}"#;

    let mut direct = Vec::new();
    let mut json = Vec::new();
    for round in 0..=rounds {
        let start = Instant::now();
        for _ in 0..calls {
            let addr = p.parse_service("bench/api")?;
            std::hint::black_box(p.service(&addr).await?);
        }
        let d = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
        let start = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(p.execute_json(request).await?);
        }
        let j = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
        // Round 0 warms caches up and is not reported.
        if round > 0 {
            direct.push(d);
            json.push(j);
        }
    }
    report("rust: Platform::service", calls, &direct);
    report("rust: Platform::execute_json", calls, &json);
    Ok(())
}
