//! The wall clock the engine stamps deadlines, transitions, log lines and events with.
//!
//! Production reads the system clock ([`Clock::system`]). Tests run the engine on tokio's
//! paused clock ([`Clock::tokio`]), so a deployment's deadline passes when the test advances
//! time, in milliseconds of real time, not after the seconds it names.

use std::fmt;
use std::sync::Arc;

use clank_core::Timestamp;

/// Where the engine reads "now". Cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system's wall clock (the default).
    pub fn system() -> Self {
        Clock(Arc::new(Timestamp::now))
    }

    /// The wall time when called, advanced by tokio's clock from then on: under a paused
    /// runtime (`#[tokio::test(start_paused = true)]`) the engine's deadlines follow
    /// `tokio::time::advance` and auto-advance. Call it inside the runtime it is for.
    pub fn tokio() -> Self {
        let wall = Timestamp::now();
        let base = tokio::time::Instant::now();
        Clock(Arc::new(move || wall.saturating_add(base.elapsed())))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}
