//! Child process of the store crash test (`tests/crash.rs`): commits the transactions of
//! `clank_testkit::crash` to a `RedbStore` in a loop until it is killed, and prints each
//! sequence number to stdout, flushed, only after its commit has returned.
//!
//! Usage: `clank-store-crash-writer <db-path>`. It exits by itself after a few seconds, or
//! when stdout is closed, so a parent that died never leaves it running.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clank_core::store::Store;
use clank_store::RedbStore;
use clank_testkit::crash;

/// Far longer than any kill the crash test schedules, short enough to never linger.
const MAX_RUNTIME: Duration = Duration::from_secs(10);

async fn run(path: &str) -> clank_core::Result<()> {
    let store = RedbStore::open(path)?;
    let mut seq = crash::next_seq(&store).await?;
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    while started.elapsed() < MAX_RUNTIME {
        store.commit(crash::txn(seq)).await?;
        // Acknowledge only now that commit has returned. A closed stdout means the parent is
        // gone: stop.
        if writeln!(stdout, "{seq}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        seq += 1;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: clank-store-crash-writer <db-path>");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clank-store-crash-writer: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clank-store-crash-writer {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
