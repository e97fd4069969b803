//! `rdv bench` does what it says against a real server: every scenario completes, counts what
//! it should, and reports no loss. Speed itself is never asserted here (see the README's
//! performance section for measured numbers).

mod common;

use std::process::Command;

use common::Server;
use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(common::rdv_binary())
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run rdv bench");
    assert!(
        output.status.success(),
        "rdv bench {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

fn relay_server() -> Server {
    Server::start(&["--rate-limit", "1000000", "--rate-burst", "1000000"])
}

#[test]
fn relay_delivers_everything_in_order_over_both_wires() {
    let server = relay_server();
    let url = format!("ws://{}", server.addr);
    let shape = [
        "--pairs",
        "4",
        "--in-flight",
        "4",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ];
    let mut args = vec!["relay", url.as_str()];
    args.extend(shape);
    let report = bench(&args);
    assert_eq!(report["wire"], "rdv");
    assert!(report["delivered"].as_u64().unwrap() > 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["out_of_order"], 0);
    assert_eq!(report["errors"], 0);
    assert!(
        report["latency"]["p99_ms"].as_f64().unwrap()
            >= report["latency"]["p50_ms"].as_f64().unwrap()
    );

    let one_room = {
        let mut args = args.clone();
        args.push("--one-room");
        bench(&args)
    };
    assert_eq!(one_room["lost"], 0);
}

#[test]
fn relay_reports_a_rate_limited_server_as_errors() {
    let server = Server::start(&["--rate-limit", "5", "--rate-burst", "5"]);
    let output = Command::new(common::rdv_binary())
        .args([
            "bench",
            "relay",
            &format!("ws://{}", server.addr),
            "--pairs",
            "1",
        ])
        .args([
            "--in-flight",
            "50",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "loss or errors fail the run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("errors 0"), "{stdout}");
    // The errors are named, and the report says how to raise the server's limits.
    assert!(stdout.contains("(rate-limited "), "{stdout}");
    assert!(
        stdout.contains("rdv serve --rate-limit 1000000"),
        "{stdout}"
    );
}

#[test]
fn compare_runs_both_servers_and_reports_ratios() {
    let report = bench(&[
        "compare",
        "--runs",
        "1",
        "--pairs",
        "2",
        "--in-flight",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    assert_eq!(report["all_runs"].as_array().unwrap().len(), 2);
    assert_eq!(report["all_runs"][0]["wire"], "floor");
    assert_eq!(report["all_runs"][1]["wire"], "rdv");
    for ratio in ["throughput_ratio", "p50_ratio", "p99_ratio"] {
        assert!(report[ratio].as_f64().unwrap() > 0.0, "{ratio}");
    }
}

#[test]
fn compare_join_runs_the_three_servers_in_turn_and_reports_ratios() {
    let report = bench(&[
        "compare-join",
        "--runs",
        "2",
        "--peers",
        "30",
        "--rooms",
        "3",
    ]);
    let wires: Vec<&str> = report["all_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["wire"].as_str().unwrap())
        .collect();
    let turn = ["floor", "floor-presence", "rdv"];
    assert_eq!(wires, [turn, turn].concat());
    for run in report["all_runs"].as_array().unwrap() {
        assert_eq!(run["failures"], 0, "{run}");
        assert_eq!(run["register_to_welcome"]["samples"], 30, "{run}");
    }
    for median in ["floor", "floor_presence", "rdv"] {
        assert!(report[median].as_f64().unwrap() > 0.0, "{median}");
    }
    let ratio = report["floor_presence_ratio"].as_f64().unwrap();
    let rdv_over_presence =
        report["rdv"].as_f64().unwrap() / report["floor_presence"].as_f64().unwrap();
    assert!((ratio - rdv_over_presence).abs() < 1e-9, "{report}");
    let ceiling = report["presence_ceiling"].as_f64().unwrap();
    let presence_over_floor =
        report["floor_presence"].as_f64().unwrap() / report["floor"].as_f64().unwrap();
    assert!((ceiling - presence_over_floor).abs() < 1e-9, "{report}");
    if cfg!(target_os = "linux") {
        // Each run's server CPU is read from /proc; a run this small may take under a tick.
        let cpu = &report["server_cpu_us_per_join"];
        for wire in ["floor", "floor_presence", "rdv"] {
            assert!(cpu[wire].as_f64().unwrap() >= 0.0, "{wire}: {report}");
        }
        for run in report["all_runs"].as_array().unwrap() {
            assert!(run["server_cpu_s"].as_f64().unwrap() >= 0.0, "{run}");
        }
    }
}

#[test]
fn join_fanout_and_churn_count_what_happened() {
    let server = Server::start(&["--max-peers-per-room", "100"]);
    let url = format!("ws://{}", server.addr);
    let pid = server.pid().to_string();

    let join = bench(&[
        "join",
        &url,
        "--peers",
        "60",
        "--rooms",
        "6",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(join["failures"], 0);
    assert_eq!(join["first_failure"], Value::Null);
    assert_eq!(join["register_to_welcome"]["samples"], 60);
    assert!(
        join["memory"]["after_bytes"].as_u64().unwrap() > 0,
        "RSS is sampled"
    );
    if cfg!(target_os = "linux") {
        assert!(join["server_cpu_s"].as_f64().unwrap() >= 0.0, "{join}");
    }

    let fanout = bench(&["fanout", &url, "--peers", "30"]);
    assert_eq!(fanout["events_expected"], 30 * 29 / 2);
    assert_eq!(fanout["events_seen"], fanout["events_expected"]);

    let churn = bench(&[
        "churn",
        &url,
        "--warmup",
        "300ms",
        "--duration",
        "1s",
        "--rate",
        "50",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(churn["failures"], 0);
    assert_eq!(churn["first_failure"], Value::Null);
    assert!(churn["cycles"].as_u64().unwrap() > 10);
    assert!(churn["rss_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn failed_joins_are_counted_and_the_first_says_why() {
    let server = Server::start(&["--max-peers-per-room", "3"]);
    let url = format!("ws://{}", server.addr);
    let join = bench(&["join", &url, "--peers", "5", "--rooms", "1"]);
    assert_eq!(join["failures"], 2);
    assert_eq!(join["register_to_welcome"]["samples"], 3);
    assert_eq!(join["first_failure"], "server error: room-full");
    assert_eq!(
        join["server_cpu_s"],
        Value::Null,
        "no --server-pid, no server CPU"
    );
}

#[test]
fn source_addresses_spread_the_joins_over_loopback_addresses() {
    // Three connections per address: eight peers from one address are refused, from four
    // addresses (two each) they are not.
    let join = |extra: &[&str]| {
        // A server each, so no connection of one run still counts against the next.
        let server = Server::start(&["--max-connections-per-ip", "3"]);
        let url = format!("ws://{}", server.addr);
        let mut args = vec!["join", url.as_str(), "--peers", "8", "--rooms", "2"];
        args.extend(extra);
        bench(&args)
    };
    let spread = join(&["--source-ips", "4"]);
    assert_eq!(spread["failures"], 0, "{spread}");
    let one = join(&[]);
    assert_eq!(one["failures"], 5, "{one}");
}

/// `rdv bench floor` on an ephemeral port, killed on drop.
struct Floor {
    child: std::process::Child,
    url: String,
}

impl Floor {
    fn start() -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(common::rdv_binary())
            .args(["bench", "floor", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the floor");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = rdv::server::parse_listening_line(&line).expect(&line);
        Self {
            child,
            url: format!("ws://{addr}"),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_floor_relays_and_joins_like_rdv() {
    let floor = Floor::start();
    let relay = bench(&[
        "relay",
        &floor.url,
        "--floor",
        "--pairs",
        "3",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    assert_eq!(relay["wire"], "floor");
    assert!(relay["delivered"].as_u64().unwrap() > 0);
    assert_eq!(relay["lost"], 0);
    assert_eq!(relay["out_of_order"], 0);

    let join = bench(&["join", &floor.url, "--floor", "--peers", "40"]);
    assert_eq!(join["wire"], "floor");
    assert_eq!(join["failures"], 0);
    assert_eq!(join["register_to_welcome"]["samples"], 40);

    let presence = bench(&[
        "join",
        &floor.url,
        "--floor",
        "--floor-presence",
        "--peers",
        "40",
        "--rooms",
        "4",
    ]);
    assert_eq!(presence["wire"], "floor-presence");
    assert_eq!(presence["failures"], 0);
    assert_eq!(presence["register_to_welcome"]["samples"], 40);
}

/// The presence floor does the writes of rdv's presence: the members to a newcomer once it has
/// sent its first frame, each arrival and departure to the others, and nothing across rooms.
#[tokio::test]
async fn the_presence_floor_announces_arrivals_and_departures_within_a_room() {
    use common::{Client, Received};
    let floor = Floor::start();
    let text = |received: Received| match received {
        Received::Text(text) => text,
        other => panic!("expected text, got {other:?}"),
    };
    let mut a = Client::connect(&format!("{}/floor/one/a", floor.url)).await;
    a.send_text("hello from a").await;
    assert_eq!(text(a.recv().await), "ready");
    let mut elsewhere = Client::connect(&format!("{}/floor/two/c", floor.url)).await;
    elsewhere.send_text("hello from c").await;
    assert_eq!(text(elsewhere.recv().await), "ready");

    let mut b = Client::connect(&format!("{}/floor/one/b", floor.url)).await;
    b.send_text("hello from b").await;
    assert_eq!(text(b.recv().await), "ready\na|hello from a");
    assert_eq!(text(a.recv().await), "joined|b|hello from b");

    drop(b);
    assert_eq!(text(a.recv().await), "left|b");
    let quiet = elsewhere
        .recv_within(std::time::Duration::from_millis(300))
        .await;
    assert!(quiet.is_none(), "another room heard {quiet:?}");
}
