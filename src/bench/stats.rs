//! Measuring for the benchmarks: latency histograms, the generator's own CPU time, and a
//! server process's resident memory.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Nanoseconds since the benchmark started: timestamps carried in payloads, comparable
/// because sender and receiver share this process's clock.
pub fn now_ns(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Latencies in microseconds, 1 µs to 60 s at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, nanos: u64) {
        let micros = (nanos / 1000).clamp(1, 60_000_000);
        self.0.record(micros).expect("clamped into bounds");
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("same bounds");
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            samples: self.0.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub samples: u64,
}

/// CPU time (user + system) this process has used.
pub fn own_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        if let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) {
            let to_duration = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            return to_duration(usage.user_time()) + to_duration(usage.system_time());
        }
    }
    Duration::ZERO
}

/// CPU time (user + system, all threads) process `pid` has used (Linux: /proc/PID/stat),
/// in clock ticks turned into time: 10 ms steps where the tick rate is 100.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks_per_second = clock_ticks_per_second()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_second as f64,
    ))
}

#[cfg(unix)]
fn clock_ticks_per_second() -> Option<u64> {
    use nix::unistd::{SysconfVar, sysconf};
    let ticks = sysconf(SysconfVar::CLK_TCK).ok()??;
    u64::try_from(ticks).ok().filter(|&ticks| ticks > 0)
}

#[cfg(not(unix))]
fn clock_ticks_per_second() -> Option<u64> {
    None
}

/// Resident memory of process `pid` in bytes (Linux: VmRSS of /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The median of a few runs' values (the middle one, or the mean of the two middles).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut latencies = Latencies::default();
        for ms in 1..=100u64 {
            latencies.record(ms * 1_000_000);
        }
        let summary = latencies.summary();
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert_eq!(summary.samples, 100);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_cpu_time_is_read_from_proc_and_grows_with_work() {
        let pid = std::process::id();
        let before = process_cpu_time(pid).expect("this process's /proc/PID/stat");
        // Spin until this process has used a few clock ticks more (bounded: 10 s of wall time).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spin = 0u64;
        let wanted = before + Duration::from_millis(50);
        while process_cpu_time(pid).is_some_and(|now| now < wanted) && Instant::now() < deadline {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_cpu_time(pid).expect("still readable");
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(process_cpu_time(u32::MAX), None, "no such process");
    }
}
