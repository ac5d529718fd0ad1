//! The daemon process's heap: glibc malloc set up for a long-running multi-threaded server.
//!
//! glibc gives each thread that allocates while another holds the main arena an arena of its
//! own, up to 8 per core, and an arena keeps what was freed in it: the blocking threads that
//! run the store (redb's page cache is allocated there) and the runtime's workers each held
//! a few MiB that nothing used any more (41.8 MiB in 27 anonymous mappings after paging
//! through 10,000 services, see `benches/README.md`, `scale`). Two arenas are enough for a
//! daemon whose work is I/O, and a periodic `malloc_trim` hands the free pages inside them
//! back to the kernel.
//!
//! Only on Linux with glibc; elsewhere these do nothing. `MALLOC_ARENA_MAX` in the
//! environment still wins over [`ARENA_MAX`].

use std::time::Duration;

/// The most malloc arenas the daemon's threads share.
pub const ARENA_MAX: i32 = 2;

/// How often [`trim_periodically`] gives free heap back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(15);

/// Limit glibc to [`ARENA_MAX`] arenas. Call first thing in `main`, before any thread starts
/// (arenas made before it are kept).
pub fn tune_allocator() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        glibc::set_arena_max(ARENA_MAX);
    }
}

/// Return the free pages of every arena to the kernel (`malloc_trim(0)`); `true` if any were.
/// Takes each arena's lock in turn, for a millisecond or so on a heap of tens of MiB.
pub fn trim() -> bool {
    glibc::trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub(super) fn set_arena_max(n: i32) {
        // SAFETY: mallopt only sets a malloc parameter; M_ARENA_MAX takes any positive count.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }

    pub(super) fn trim() -> bool {
        // SAFETY: malloc_trim only walks malloc's own free lists, under their locks.
        unsafe { libc::malloc_trim(0) != 0 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub(super) fn set_arena_max(_: i32) {}

    pub(super) fn trim() -> bool {
        false
    }
}

/// [`trim`] every `interval`, on the blocking pool, for ever: what a sweep or a burst of
/// requests freed goes back to the kernel instead of staying in the daemon's RSS.
pub async fn trim_periodically(interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; start trimming after the first interval.
    tick.tick().await;
    loop {
        tick.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}
