//! The server's CPU, memory and disk usage for heartbeats, read from `/proc` and `statvfs`.

use std::path::Path;

/// CPU time counters from `/proc/stat`'s first line: (busy, total) jiffies.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// (used, total) bytes of memory: total minus available.
fn memory() -> Option<(u64, u64)> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        info.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some((total.saturating_sub(available), total))
}

/// (used, total) bytes of the filesystem holding `path`.
fn disk(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks * st.f_frsize;
    let free = st.f_bfree * st.f_frsize;
    Some((total.saturating_sub(free), total))
}

/// Samples usage; CPU is the busy share since the previous sample.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last_cpu: Option<(u64, u64)>,
}

impl Sampler {
    pub(crate) fn sample(&mut self, disk_path: &Path) -> clank_proto::v1::Heartbeat {
        let cpu = cpu_times();
        let cpu_percent = match (self.last_cpu, cpu) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                100.0 * (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64
            }
            _ => 0.0,
        };
        self.last_cpu = cpu;
        let (memory_used_bytes, memory_total_bytes) = memory().unwrap_or((0, 0));
        let (disk_used_bytes, disk_total_bytes) = disk(disk_path).unwrap_or((0, 0));
        clank_proto::v1::Heartbeat {
            cpu_percent,
            memory_used_bytes,
            memory_total_bytes,
            disk_used_bytes,
            disk_total_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_real_numbers_from_this_machine() {
        let mut s = Sampler::default();
        let first = s.sample(Path::new("/"));
        assert!(first.memory_total_bytes > 0);
        assert!(first.memory_used_bytes <= first.memory_total_bytes);
        assert!(first.disk_total_bytes > 0);
        let second = s.sample(Path::new("/"));
        assert!((0.0..=100.0).contains(&second.cpu_percent));
    }
}
