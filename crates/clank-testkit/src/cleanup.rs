//! Cleanup from `Drop`, which cannot await and may run while the test's runtime is shutting
//! down (or on its only thread, after a panic): the work runs on a runtime of its own, in a
//! thread of its own, and `drop` waits for it.

use std::future::Future;

/// Run `work` to completion on a fresh current-thread runtime in a new thread, and wait for
/// it. Connections made by the test's runtime may not work there: `work` opens its own.
/// Best effort: a runtime that cannot be built, or work that panics, is ignored.
pub fn block_on_aside<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(work);
    })
    .join();
}
