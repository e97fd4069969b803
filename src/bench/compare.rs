//! `rdv bench compare`: rdv serve and the raw relay floor on this machine, in one go,
//! alternating runs so both see the same noise; medians and ratios, never absolutes.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde::Serialize;

use super::client::Target;
use super::relay::{self, RelayOptions, RelayReport, Wire};
use super::stats::median;

/// A server started for the comparison, killed on drop.
struct Spawned {
    child: Child,
    addr: String,
}

impl Spawned {
    fn start(args: &[&str]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args)
            .env("RDV_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {args:?}: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = crate::server::parse_listening_line(&line)
            .ok_or_else(|| format!("{args:?} did not say where it listens: {line:?}"))?
            .to_string();
        Ok(Self { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Medians {
    pub msgs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub runs: usize,
    pub floor: Medians,
    pub rdv: Medians,
    /// rdv's median throughput over the floor's (higher is better; 1.0 = as fast).
    pub throughput_ratio: f64,
    /// rdv's median p99 latency over the floor's (lower is better).
    pub p99_ratio: f64,
    pub p50_ratio: f64,
    pub all_runs: Vec<RelayReport>,
    pub rdv_server_pid: u32,
}

fn medians(reports: &[&RelayReport]) -> Medians {
    let pick =
        |f: fn(&RelayReport) -> f64| median(&mut reports.iter().map(|r| f(r)).collect::<Vec<_>>());
    Medians {
        msgs_per_sec: pick(|r| r.msgs_per_sec),
        p50_ms: pick(|r| r.latency.p50_ms),
        p99_ms: pick(|r| r.latency.p99_ms),
    }
}

pub async fn run(
    runs: usize,
    read_buffer: usize,
    options: &RelayOptions,
    progress: &indicatif::ProgressBar,
) -> Result<CompareReport, String> {
    let read_buffer = read_buffer.to_string();
    let rdv = Spawned::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-limit",
        "10000000",
        "--rate-burst",
        "10000000",
        "--max-peers-per-room",
        "100000",
        "--max-connections",
        "100000",
        "--read-buffer",
        &read_buffer,
    ])?;
    let floor = Spawned::start(&[
        "bench",
        "floor",
        "--listen",
        "127.0.0.1:0",
        "--read-buffer",
        &read_buffer,
    ])?;
    let rdv_target = Target::parse(&format!("ws://{}", rdv.addr), 1).await?;
    let floor_target = Target::parse(&format!("ws://{}", floor.addr), 1).await?;
    let mut all_runs = Vec::new();
    for _ in 0..runs {
        for (wire, target) in [(Wire::Floor, &floor_target), (Wire::Rdv, &rdv_target)] {
            let options = RelayOptions {
                wire,
                ..options.clone()
            };
            let report = relay::run(target, None, &options).await?;
            if report.lost > 0 || report.errors > 0 || report.out_of_order > 0 {
                return Err(format!(
                    "{wire:?} run lost {} messages, {} out of order, {} errors",
                    report.lost, report.out_of_order, report.errors
                ));
            }
            all_runs.push(report);
            progress.inc(1);
        }
    }
    let of = |wire| {
        all_runs
            .iter()
            .filter(|r| r.wire == wire)
            .collect::<Vec<_>>()
    };
    let (floor_medians, rdv_medians) = (medians(&of(Wire::Floor)), medians(&of(Wire::Rdv)));
    Ok(CompareReport {
        runs,
        throughput_ratio: rdv_medians.msgs_per_sec / floor_medians.msgs_per_sec,
        p99_ratio: rdv_medians.p99_ms / floor_medians.p99_ms,
        p50_ratio: rdv_medians.p50_ms / floor_medians.p50_ms,
        floor: floor_medians,
        rdv: rdv_medians,
        all_runs,
        rdv_server_pid: rdv.pid(),
    })
}
