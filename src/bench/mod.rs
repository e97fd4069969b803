//! `rdv bench`: a load generator for any server speaking PROTOCOL.md, and the side-by-side
//! comparison with a raw relay floor. Loopback by default, bounded in count and time.

mod client;
mod compare;
mod floor;
mod presence;
mod relay;
mod stats;

use std::io::IsTerminal as _;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::exit::{CommandError, Exit};
use crate::units::{parse_duration, parse_size};

#[derive(Debug, Args)]
#[command(after_help = "\
Point the scenarios at a server whose rate limit allows the load, e.g.
  rdv serve --rate-limit 1000000 --rate-burst 1000000 --max-peers-per-room 100000
`rdv bench compare` starts its own servers. Results go to stdout (--json: one JSON object);
progress is shown on a terminal only.")]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Server base URL.
    #[arg(default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Spread connections over 127.0.0.1..=127.0.0.N when ephemeral ports run short.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub source_ips: u8,
    /// Generator threads (1 leaves the other cores to the server).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Another instance of the same cluster (`rdv serve --cluster`): the second peer of every
    /// pair (relay) and every other joiner (join) connect there, so every relay and every
    /// presence event crosses instances.
    #[arg(long, value_name = "URL")]
    pub other_instance: Option<String>,
}

impl Common {
    /// The target, and the other instance's if there is one.
    async fn targets(&self) -> Result<(client::Target, Option<client::Target>), String> {
        let target = client::Target::parse(&self.url, self.source_ips).await?;
        let other = match &self.other_instance {
            Some(url) => Some(client::Target::parse(url, self.source_ips).await?),
            None => None,
        };
        Ok((target, other))
    }
}

#[derive(Debug, Args)]
pub struct RelayShape {
    /// Caller/callee pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// All pairs in one room instead of a room each.
    #[arg(long)]
    pub one_room: bool,
    /// Offers in flight per pair.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Size of each relayed message as sent, exactly (the same on both wires in `compare`).
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_size)]
    pub payload: usize,
    /// Measured time, after the warm-up.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before measuring.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Pairs relaying ~1 KiB offers and answers: messages/s, one-way latency, loss.
    Relay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        shape: RelayShape,
        /// Speak the raw floor's TARGET|payload instead of the protocol.
        #[arg(long)]
        floor: bool,
    },
    /// N peers register over R rooms: joins/s, register→welcome latency, server memory.
    Join {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: presence::JoinOptions,
    },
    /// K peers join one room in turn: peer-joined events/s and when the last join is seen.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 200)]
        peers: usize,
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
    },
    /// Connect/register/leave cycles at a bounded rate: cycles/s and whether memory returns.
    Churn {
        #[command(flatten)]
        common: Common,
        /// Cycles before the memory baseline is taken (one-time growth is not a leak).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        warmup: Duration,
        /// Measured cycling time, after the warm-up.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Cycles started per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
    },
    /// rdv serve against the raw relay floor, alternating runs; medians and ratios.
    Compare {
        #[command(flatten)]
        shape: RelayShape,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Read buffer of both servers (rdv serve's --read-buffer).
        #[arg(long, value_name = "SIZE", default_value = "512B", value_parser = parse_size)]
        read_buffer: usize,
    },
    /// rdv serve against the raw floor, bare and with presence, for joins; medians and ratios.
    CompareJoin {
        #[arg(long, default_value_t = 5000)]
        peers: usize,
        /// Rooms the peers are spread over (5000 peers in 500 rooms: rooms of 10).
        #[arg(long, default_value_t = 500)]
        rooms: usize,
        /// Registrations in progress at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        json: bool,
        /// Spread connections over 127.0.0.1..=127.0.0.N: every run's sockets linger in
        /// TIME_WAIT, and one address has ports for about 28,000 of them.
        #[arg(long, value_name = "N", default_value_t = 4)]
        source_ips: u8,
        /// Read buffer of both servers (rdv serve's --read-buffer).
        #[arg(long, value_name = "SIZE", default_value = "512B", value_parser = parse_size)]
        read_buffer: usize,
    },
    /// Run the raw relay floor server (what `compare` measures against).
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long, value_name = "SIZE", default_value = "512B", value_parser = parse_size)]
        read_buffer: usize,
    },
}

pub fn run(args: &BenchArgs) -> Exit {
    let threads = match &args.scenario {
        Scenario::Relay { common, .. }
        | Scenario::Join { common, .. }
        | Scenario::Fanout { common, .. }
        | Scenario::Churn { common, .. } => common.threads,
        Scenario::Compare { threads, .. } => *threads,
        Scenario::CompareJoin { .. } => 1,
        Scenario::Floor { .. } => 2,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return CommandError::failure(format!("cannot start the runtime: {e}")).report(),
    };
    crate::fd_limit::raise_open_file_limit();
    match runtime.block_on(scenario(&args.scenario)) {
        Ok(()) => Exit::Ok,
        Err(message) => CommandError::failure(message).report(),
    }
}

fn progress(json: bool, length: u64, unit: &str) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(length);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit}  {{elapsed}}"
        ))
        .expect("a valid template"),
    );
    bar
}

/// `; the first: …` after a failure count, when anything failed.
fn first_failure_text(first: &Option<String>) -> String {
    first
        .as_deref()
        .map(|error| format!("; the first: {error}"))
        .unwrap_or_default()
}

fn print<T: Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    let output = if json {
        format!(
            "{}\n",
            serde_json::to_string(report).expect("reports serialize")
        )
    } else {
        text(report)
    };
    crate::files::write_stdout(output.as_bytes())
}

fn relay_options(shape: &RelayShape, wire: relay::Wire) -> relay::RelayOptions {
    relay::RelayOptions {
        pairs: shape.pairs,
        one_room: shape.one_room,
        in_flight: shape.in_flight,
        payload_bytes: shape.payload,
        warmup: shape.warmup,
        duration: shape.duration,
        wire,
    }
}

/// ` (rate-limited 80, unknown-peer 2)`, or nothing without errors.
fn error_breakdown(codes: &std::collections::BTreeMap<String, u64>) -> String {
    if codes.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = codes
        .iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect();
    format!(" ({})", parts.join(", "))
}

/// What to do when the server's own limits, not its speed, stopped the run.
fn rate_limit_hint(codes: &std::collections::BTreeMap<String, u64>) -> &'static str {
    if codes.contains_key("rate-limited") {
        "the server's per-connection rate limit dropped messages: start it with limits that allow \
         the load, e.g.\n  rdv serve --rate-limit 1000000 --rate-burst 1000000 \
         --max-peers-per-room 100000\n"
    } else {
        ""
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn memory_text(label: &str, sample: &Option<presence::MemorySample>) -> String {
    match sample {
        Some(m) => format!(
            "{label}: server RSS {:.1} MiB -> {:.1} MiB, {:.0} bytes per peer\n",
            mib(m.before_bytes),
            mib(m.after_bytes),
            m.per_peer_bytes
        ),
        None => String::new(),
    }
}

fn server_cpu_text(report: &presence::JoinReport) -> String {
    match (report.server_cpu_s, report.server_cpu_us_per_join()) {
        (Some(seconds), Some(per_join)) => {
            format!("server CPU {seconds:.2} s ({per_join:.0} µs per join), ")
        }
        _ => String::new(),
    }
}

async fn scenario(scenario: &Scenario) -> Result<(), String> {
    match scenario {
        Scenario::Floor {
            listen,
            read_buffer,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("{}", crate::server::listening_line(addr));
            floor::serve(listener, *read_buffer).await;
            Ok(())
        }
        Scenario::Relay {
            common,
            shape,
            floor,
        } => {
            let (target, other) = common.targets().await?;
            let wire = if *floor {
                relay::Wire::Floor
            } else {
                relay::Wire::Rdv
            };
            let spinner = progress(common.json, 1, "run");
            let report = relay::run(&target, other.as_ref(), &relay_options(shape, wire)).await?;
            spinner.finish_and_clear();
            print(common.json, &report, |r| {
                format!(
                    "relay ({:?}): {} pairs, {} in flight, {} B messages, {:.0} s measured\n\
                     delivered {} messages: {:.0} msgs/s\n\
                     latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
                     lost {}  out of order {}  errors {}{}  generator CPU {:.1} s\n{}",
                    r.wire,
                    r.pairs,
                    r.in_flight,
                    r.payload_bytes,
                    r.duration_s,
                    r.delivered,
                    r.msgs_per_sec,
                    r.latency.p50_ms,
                    r.latency.p90_ms,
                    r.latency.p99_ms,
                    r.latency.max_ms,
                    r.lost,
                    r.out_of_order,
                    r.errors,
                    error_breakdown(&r.error_codes),
                    r.generator_cpu_s,
                    rate_limit_hint(&r.error_codes)
                )
            })?;
            if report.lost > 0 || report.out_of_order > 0 || report.errors > 0 {
                return Err("messages were lost, reordered or refused (see the report)".into());
            }
            Ok(())
        }
        Scenario::Join { common, options } => {
            let (target, other) = common.targets().await?;
            let bar = progress(common.json, options.peers as u64, "peers");
            let report = presence::join(&target, other.as_ref(), options, &bar).await?;
            bar.finish_and_clear();
            print(common.json, &report, |r| {
                format!(
                    "join ({}): {} peers over {} rooms, {} at once: {:.0} joins/s ({} failed{})\n\
                     register->welcome p50 {:.2} ms  p99 {:.2} ms\n{}{}{}generator CPU {:.1} s\n",
                    r.wire.as_str(),
                    r.peers,
                    r.rooms,
                    r.concurrency,
                    r.joins_per_sec,
                    r.failures,
                    first_failure_text(&r.first_failure),
                    r.register_to_welcome.p50_ms,
                    r.register_to_welcome.p99_ms,
                    memory_text("joined", &r.memory),
                    memory_text("after hold", &r.memory_after_hold),
                    server_cpu_text(r),
                    r.generator_cpu_s
                )
            })
        }
        Scenario::Fanout {
            common,
            peers,
            server_pid,
        } => {
            let target = client::Target::parse(&common.url, common.source_ips).await?;
            let bar = progress(common.json, *peers as u64, "peers");
            let report = presence::fanout(&target, *peers, *server_pid, &bar).await?;
            bar.finish_and_clear();
            print(common.json, &report, |r| {
                format!(
                    "fanout: {} peers joined one room: {}/{} peer-joined events, {:.0} events/s\n\
                     last join seen by all after {:.1} ms\n{}generator CPU {:.1} s\n",
                    r.peers,
                    r.events_seen,
                    r.events_expected,
                    r.events_per_sec,
                    r.last_join_seen_by_all_ms,
                    memory_text("room", &r.memory),
                    r.generator_cpu_s
                )
            })
        }
        Scenario::Churn {
            common,
            warmup,
            duration,
            rate,
            concurrency,
            server_pid,
        } => {
            let target = client::Target::parse(&common.url, common.source_ips).await?;
            let bar = progress(common.json, (*warmup + *duration).as_secs(), "s");
            let report = presence::churn(
                &target,
                *warmup,
                *duration,
                *rate,
                *concurrency,
                *server_pid,
                &bar,
            )
            .await?;
            bar.finish_and_clear();
            print(common.json, &report, |r| {
                let memory = match (r.rss_cold_bytes, r.rss_start_bytes, r.rss_end_bytes) {
                    (Some(cold), Some(start), Some(end)) => format!(
                        "server RSS cold {:.1} MiB, after warm-up {:.1} MiB -> end {:.1} MiB ({:.2}x)\n",
                        mib(cold),
                        mib(start),
                        mib(end),
                        end as f64 / start as f64
                    ),
                    _ => String::new(),
                };
                format!(
                    "churn: {} cycles in {:.0} s: {:.0} cycles/s ({} failed{})\n{memory}generator CPU {:.1} s\n",
                    r.cycles,
                    r.seconds,
                    r.cycles_per_sec,
                    r.failures,
                    first_failure_text(&r.first_failure),
                    r.generator_cpu_s
                )
            })
        }
        Scenario::CompareJoin {
            peers,
            rooms,
            concurrency,
            runs,
            json,
            source_ips,
            read_buffer,
        } => {
            let runs = (*runs).max(1);
            let bar = progress(*json, (runs * 3) as u64, "runs");
            let options = presence::JoinOptions {
                peers: *peers,
                rooms: *rooms,
                concurrency: *concurrency,
                server_pid: None,
                hold: Duration::ZERO,
                floor: false,
                floor_presence: false,
            };
            let report = compare::run_join(runs, *read_buffer, &options, *source_ips, &bar).await?;
            bar.finish_and_clear();
            print(*json, &report, |r| {
                format!(
                    "join, {} peers over {} rooms, medians of {} runs each:\n\
                     {:<15} {:>9.0} joins/s\n\
                     {:<15} {:>9.0} joins/s\n\
                     {:<15} {:>9.0} joins/s\n\
                     rdv / floor {:.2}x, rdv / floor-presence {:.2}x\n\
                     floor-presence / floor {:.2}x: the most a server announcing presence reaches\n{}",
                    r.peers,
                    r.rooms,
                    r.runs,
                    "floor",
                    r.floor,
                    "floor-presence",
                    r.floor_presence,
                    "rdv",
                    r.rdv,
                    r.floor_ratio,
                    r.floor_presence_ratio,
                    r.presence_ceiling,
                    match r.server_cpu_us_per_join {
                        Some(cpu) => format!(
                            "server CPU per join: floor {:.0} µs, floor-presence {:.0} µs, rdv {:.0} µs\n",
                            cpu.floor, cpu.floor_presence, cpu.rdv
                        ),
                        None => String::new(),
                    }
                )
            })?;
            Ok(())
        }
        Scenario::Compare {
            shape,
            runs,
            json,
            read_buffer,
            ..
        } => {
            let bar = progress(*json, (*runs * 2) as u64, "runs");
            let options = relay_options(shape, relay::Wire::Rdv);
            let report = compare::run((*runs).max(1), *read_buffer, &options, &bar).await?;
            bar.finish_and_clear();
            print(*json, &report, |r| {
                format!(
                    "relay, {} pairs, {} in flight, medians of {} runs each:\n\
                     {:<8} {:>12} {:>10} {:>10}\n\
                     {:<8} {:>12.0} {:>10.2} {:>10.2}\n\
                     {:<8} {:>12.0} {:>10.2} {:>10.2}\n\
                     rdv / floor: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x\n",
                    shape.pairs,
                    shape.in_flight,
                    r.runs,
                    "",
                    "msgs/s",
                    "p50 ms",
                    "p99 ms",
                    "floor",
                    r.floor.msgs_per_sec,
                    r.floor.p50_ms,
                    r.floor.p99_ms,
                    "rdv",
                    r.rdv.msgs_per_sec,
                    r.rdv.p50_ms,
                    r.rdv.p99_ms,
                    r.throughput_ratio,
                    r.p50_ratio,
                    r.p99_ratio
                )
            })
        }
    }
}
