//! Dating log output as it is written: one inotify instance per runtime watches the log files
//! of every supervised workload and stamps a stream the moment it grows, so stdout and stderr
//! lines interleave in the order they were written rather than "somewhere in the same poll".
//!
//! One instance per runtime, not per workload, because inotify instances are a scarce
//! per-user resource (`fs.inotify.max_user_instances`, often 128). Where inotify is not
//! available the supervisors' periodic check still dates output, only more coarsely.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use clank_core::runtime::LogStream;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::layout::Layout;
use crate::logs::STREAMS;
use crate::supervisor::Workload;

/// How often the watching thread checks whether it should stop.
const STOP_CHECK: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 250_000_000,
};

/// The runtime's inotify instance and what each watch descriptor stands for. Events are read
/// on a thread of its own (a blocking `poll`), so the watch needs no async I/O registration.
#[derive(Debug)]
pub(crate) struct LogWatch {
    fd: OwnedFd,
    targets: Mutex<HashMap<i32, (Weak<Workload>, LogStream)>>,
    stopped: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogWatch {
    /// Create the instance and the thread reading it.
    pub(crate) fn start() -> std::io::Result<Arc<LogWatch>> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let watch = Arc::new(LogWatch {
            fd,
            targets: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
        });
        let reader = Arc::clone(&watch);
        std::thread::Builder::new()
            .name("clank-log-watch".to_owned())
            .spawn(move || reader.run())?;
        Ok(watch)
    }

    /// Stop reading events (the runtime is going away); the thread ends within a quarter
    /// second.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Watch a workload's log files. Restarts write to the same files, so one call per
    /// `start` suffices; deleted files drop their watches by themselves.
    pub(crate) fn watch(&self, layout: &Layout, workload: &Arc<Workload>) {
        for stream in STREAMS {
            let path = layout.log_path(&workload.spec.name, stream);
            match inotify::add_watch(&self.fd, &path, WatchFlags::MODIFY) {
                Ok(wd) => {
                    lock(&self.targets).insert(wd, (Arc::downgrade(workload), stream));
                }
                Err(e) => tracing::debug!(
                    path = %path.display(),
                    error = %e,
                    "Cannot watch log; it is dated by polling."
                ),
            }
        }
    }

    fn run(&self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        while !self.stopped.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&STOP_CHECK)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Log watch failed; logs are dated by polling.");
                    return;
                }
            }
            // Drain every queued event, keeping their order (it is the order of the writes).
            let mut grown: Vec<i32> = Vec::new();
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            loop {
                match reader.next() {
                    Ok(event) => {
                        let wd = event.wd();
                        if event.events().contains(ReadFlags::IGNORED) {
                            lock(&self.targets).remove(&wd);
                        } else if grown.last() != Some(&wd) {
                            grown.push(wd);
                        }
                    }
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "Log watch failed; logs are dated by polling.");
                        return;
                    }
                }
            }
            for wd in grown {
                let target = lock(&self.targets).get(&wd).cloned();
                if let Some((workload, stream)) = target {
                    if let Some(workload) = workload.upgrade() {
                        workload.stamp_stream(stream);
                    }
                }
            }
        }
    }
}
