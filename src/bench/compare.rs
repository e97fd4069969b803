//! `rdv bench compare` and `compare-join`: rdv serve and the raw floor on this machine, in
//! one go, alternating runs so all see the same noise; medians and ratios, never absolutes.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde::Serialize;

use super::client::Target;
use super::presence::{self, JoinOptions, JoinReport, JoinWire};
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
            .env("RDV_LOG", "error")
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

/// `rdv serve` with limits that let the load through, and the floor, with the same read buffer.
fn start_servers(read_buffer: usize) -> Result<(Spawned, Spawned), String> {
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
        "--max-unregistered",
        "50000",
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
    Ok((rdv, floor))
}

pub async fn run(
    runs: usize,
    read_buffer: usize,
    options: &RelayOptions,
    progress: &indicatif::ProgressBar,
) -> Result<CompareReport, String> {
    let (rdv, floor) = start_servers(read_buffer)?;
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

#[derive(Debug, Clone, Serialize)]
pub struct JoinCompareReport {
    pub runs: usize,
    pub peers: usize,
    pub rooms: usize,
    /// Median joins/s of each: the bare floor, the presence floor, rdv.
    pub floor: f64,
    pub floor_presence: f64,
    pub rdv: f64,
    /// rdv's median over the bare floor's (which announces nobody).
    pub floor_ratio: f64,
    /// rdv's median over the presence floor's (the same presence writes, none of rdv's work).
    pub floor_presence_ratio: f64,
    /// The presence floor's median over the bare floor's: against the bare floor, the most a
    /// server that announces arrivals as the protocol requires can reach on this machine.
    pub presence_ceiling: f64,
    /// Median server CPU time per join, in microseconds, of each (where /proc tells it).
    pub server_cpu_us_per_join: Option<PerWire>,
    pub all_runs: Vec<JoinReport>,
}

/// One median for each server a join comparison runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerWire {
    pub floor: f64,
    pub floor_presence: f64,
    pub rdv: f64,
}

/// Joins `peers` over `rooms` into the bare floor, the presence floor and rdv, in turn, `runs`
/// times. Every run's joiners leave before the next starts.
pub async fn run_join(
    runs: usize,
    read_buffer: usize,
    options: &JoinOptions,
    source_ips: u8,
    progress: &indicatif::ProgressBar,
) -> Result<JoinCompareReport, String> {
    let (rdv, floor) = start_servers(read_buffer)?;
    let rdv_target = Target::parse(&format!("ws://{}", rdv.addr), source_ips).await?;
    let floor_target = Target::parse(&format!("ws://{}", floor.addr), source_ips).await?;
    let hidden = indicatif::ProgressBar::hidden();
    let mut all_runs = Vec::new();
    for _ in 0..runs {
        for (wire, target, server) in [
            (JoinWire::Floor, &floor_target, &floor),
            (JoinWire::FloorPresence, &floor_target, &floor),
            (JoinWire::Rdv, &rdv_target, &rdv),
        ] {
            let options = JoinOptions {
                floor: wire != JoinWire::Rdv,
                floor_presence: wire == JoinWire::FloorPresence,
                server_pid: Some(server.pid()),
                ..options.clone()
            };
            let report = presence::join(target, None, &options, &hidden).await?;
            if report.failures > 0 {
                return Err(format!(
                    "{} run: {} of {} joins failed{}",
                    wire.as_str(),
                    report.failures,
                    report.peers,
                    super::first_failure_text(&report.first_failure)
                ));
            }
            all_runs.push(report);
            progress.inc(1);
        }
    }
    let median_of = |wire, value: fn(&JoinReport) -> Option<f64>| {
        let mut values = Vec::new();
        for report in all_runs.iter().filter(|r| r.wire == wire) {
            values.push(value(report)?);
        }
        Some(median(&mut values))
    };
    let per_wire = |value: fn(&JoinReport) -> Option<f64>| {
        Some(PerWire {
            floor: median_of(JoinWire::Floor, value)?,
            floor_presence: median_of(JoinWire::FloorPresence, value)?,
            rdv: median_of(JoinWire::Rdv, value)?,
        })
    };
    let joins = per_wire(|r| Some(r.joins_per_sec)).expect("every run has a rate");
    let server_cpu_us_per_join = per_wire(JoinReport::server_cpu_us_per_join);
    Ok(JoinCompareReport {
        runs,
        peers: options.peers,
        rooms: options.rooms,
        floor: joins.floor,
        floor_presence: joins.floor_presence,
        rdv: joins.rdv,
        floor_ratio: joins.rdv / joins.floor,
        floor_presence_ratio: joins.rdv / joins.floor_presence,
        presence_ceiling: joins.floor_presence / joins.floor,
        server_cpu_us_per_join,
        all_runs,
    })
}
