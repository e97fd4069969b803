//! Real browsers, real WebRTC: headless Chromium pages running the demo in examples/browser
//! (built on the client library, clients/js/rdv.js) connect to each other through a real
//! `rdv serve`, in `off` and `required` proof mode; and the library's own scenarios
//! (perfect negotiation under glare, a reload that keeps the peer ID, a server restart the
//! pages survive) in tests/browser/library.mjs.
//!
//! Needs Chromium, node and the npm package in tests/browser (`.ci/run` installs them), so it
//! is ignored by a plain `cargo test` and run by `cargo test -- --ignored`, where anything
//! missing fails it with what to install (see `common::outside`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use serde_json::Value;

fn chromium() -> Option<PathBuf> {
    match std::env::var_os("RDV_CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)),
        None => ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists()),
    }
    .filter(|path| path.exists())
}

/// What is missing to run the browser test, if anything.
fn missing(root: &Path) -> Option<String> {
    if chromium().is_none() {
        return Some(
            "Chromium is not installed (apt-get install chromium, or set RDV_CHROMIUM)".into(),
        );
    }
    if let Some(reason) = common::outside::program("node", "--version", "apt-get install nodejs") {
        return Some(reason);
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core is not installed (cd tests/browser && npm ci)".into());
    }
    None
}

/// Runs `pages` Chromium pages of examples/browser in `room` against `server`; the driver's
/// summary once every pair's data channel carried a message both ways (panics otherwise).
fn run_pages(root: &Path, server: &Server, room: &str, pages: usize, extra: &[&str]) -> Value {
    let screenshots = root.join("target/browser-screenshots").join(room);
    let (server_url, count) = (format!("ws://{}", server.addr), pages.to_string());
    let screenshot_dir = screenshots.display().to_string();
    let mut args = vec!["--server", &server_url, "--room", room, "--pages", &count];
    args.extend(["--timeout-ms", "45000", "--screenshots", &screenshot_dir]);
    args.extend(extra);
    let failed = format!(
        "{room}, {pages} pages failed (screenshots in {})",
        screenshots.display()
    );
    run_driver(root, "e2e.mjs", &args, &failed)
}

/// Runs the node driver `script` from tests/browser on this machine's Chromium; its summary
/// line, which must say `"ok": true` (panics with `failed`, the summary and the driver's log
/// otherwise).
fn run_driver(root: &Path, script: &str, args: &[&str], failed: &str) -> Value {
    let output = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(["--chromium", chromium().unwrap().to_str().unwrap()])
        .args(args)
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no summary from {script}; stderr:\n{stderr}"));
    assert!(
        output.status.success() && summary["ok"] == true,
        "{failed}:\n{summary:#}\n{stderr}"
    );
    summary
}

fn mesh(root: &Path, proof: &str, pages: usize) {
    let server = Server::start(&["--proof", proof]);
    let room = format!("mesh-{proof}-{pages}");
    let summary = run_pages(root, &server, &room, pages, &[]);
    let states = summary["pages"].as_array().unwrap();
    assert_eq!(states.len(), pages);
    for state in states {
        // The library refuses a welcome whose peer ID is not its own, and every peer whose
        // ID is not its key's: joined means both checks passed.
        assert_eq!(state["joined"], true);
        let peers = state["peers"].as_object().unwrap();
        assert_eq!(peers.len(), pages - 1, "a full mesh");
        for (id, peer) in peers {
            assert!(states.iter().any(|s| s["id"] == id.as_str()));
            assert_eq!(
                (peer["sent"].as_bool(), peer["received"].as_bool()),
                (Some(true), Some(true))
            );
            let expected_flag = if proof == "off" {
                Value::Null
            } else {
                Value::Bool(true)
            };
            assert_eq!(peer["verified"], expected_flag, "{proof}");
        }
    }
}

#[test]
#[ignore = "needs chromium, node and playwright-core; cargo test -- --ignored runs it"]
fn browsers_connect_over_webrtc_through_rdv() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::outside::require(missing(root));
    for proof in ["off", "required"] {
        for pages in [2, 3] {
            mesh(root, proof, pages);
        }
    }
}

#[cfg(feature = "webrtc")]
/// `rdv peer --webrtc` and a Chromium page of the demo (rdv.js) open a data channel and say
/// hello both ways: the page offering (proof off), then the terminal offering to whoever is
/// in the room (`--connect '*'`, proof required); `page_extra` and `terminal_extra` go to
/// the page's driver and to `rdv peer`. The terminal's selected pair comes back.
fn terminal_and_page(
    root: &Path,
    server: &Server,
    room: &str,
    terminal_offers: bool,
    page_extra: &[&str],
    terminal_extra: &[&str],
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let id = common::key(dir.path(), "terminal.jwk");
    let url = format!("ws://{}", server.addr);
    let mut args = vec![url.as_str(), room, "--key", "terminal.jwk", "--webrtc"];
    if terminal_offers {
        args.extend(["--connect", "*"]);
    }
    args.extend([
        "--until",
        ".event=message",
        "--until",
        ".event=pair",
        "--timeout",
        "60s",
    ]);
    args.extend(terminal_extra);
    let mut terminal = common::spawn_peer(dir.path(), &args);
    {
        use std::io::Write as _;
        // What the demo page waits for from each peer it reaches.
        let mut stdin = terminal.stdin.take().unwrap();
        writeln!(stdin, "hello from {id}").unwrap();
    }
    server.wait_for_peers_blocking(1);
    let mut page_args = vec!["--peers", "1"];
    page_args.extend(page_extra);
    let summary = run_pages(root, server, room, 1, &page_args);
    let terminal = common::finish(terminal, "");
    assert_eq!(terminal.code, 0, "{}", terminal.stderr);
    let page = &summary["pages"][0];
    let peer = &page["peers"][id.as_str()];
    assert_eq!(
        (peer["sent"].as_bool(), peer["received"].as_bool()),
        (Some(true), Some(true)),
        "{summary:#}"
    );
    let events: Vec<Value> = terminal
        .messages()
        .into_iter()
        .filter(|m| m["type"] == "webrtc")
        .collect();
    let heard = events.iter().find(|e| e["event"] == "message").unwrap();
    assert_eq!(
        heard["data"],
        format!("hello from {}", page["id"].as_str().unwrap())
    );
    assert_eq!(
        terminal.stderr.contains("offering a connection"),
        terminal_offers,
        "{}",
        terminal.stderr
    );
    events.into_iter().find(|e| e["event"] == "pair").unwrap()
}

#[cfg(feature = "webrtc")]
#[test]
#[ignore = "needs chromium, node and playwright-core; cargo test -- --ignored runs it"]
fn a_terminal_peer_and_a_browser_connect_whoever_offers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::outside::require(missing(root));
    for (proof, terminal_offers) in [("off", false), ("required", true)] {
        let server = Server::start(&["--proof", proof]);
        let room = format!("terminal-{proof}");
        let pair = terminal_and_page(root, &server, &room, terminal_offers, &[], &[]);
        assert_eq!(pair["local"]["type"], "host", "{pair}");
        // prflx: the page's checks came before its trickled candidate (as browsers report it).
        let remote = pair["remote"]["type"].as_str();
        assert!(matches!(remote, Some("host" | "prflx")), "{pair}");
    }
}

/// Two pages that may only use TURN (iceTransportPolicy "relay") connect through a real
/// coturn with nothing but what `welcome` gave them: the server's TURN URL and the credential
/// it minted. The selected candidate pair is relay on both ends.
#[test]
#[ignore = "needs chromium, node, playwright-core and coturn; cargo test -- --ignored runs it"]
fn browsers_connect_relay_only_through_coturn_with_minted_credentials() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::outside::require(missing(root));
    common::coturn::require();
    let coturn = common::coturn::Coturn::start();
    let (server, _turn_secret) = coturn.rdv_serving(&[]);
    let summary = run_pages(root, &server, "relay-only", 2, &["--relay", "1"]);
    for page in summary["pages"].as_array().unwrap() {
        for (id, peer) in page["peers"].as_object().unwrap() {
            assert_eq!(
                (peer["localType"].as_str(), peer["remoteType"].as_str()),
                (Some("relay"), Some("relay")),
                "the path to {id} is relayed on both ends: {peer}"
            );
        }
    }
}

/// The page and the terminal may only use TURN (`iceTransportPolicy: "relay"`,
/// `--relay-only`): they connect through a real coturn with the credentials `welcome` gave
/// each, and the terminal's selected pair is relay on both ends.
#[cfg(feature = "webrtc")]
#[test]
#[ignore = "needs chromium, node, playwright-core and coturn; cargo test -- --ignored runs it"]
fn a_relay_only_terminal_peer_and_browser_connect_through_coturn() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::outside::require(missing(root));
    common::coturn::require();
    let coturn = common::coturn::Coturn::start();
    let (server, _turn_secret) = coturn.rdv_serving(&[]);
    let pair = terminal_and_page(
        root,
        &server,
        "terminal-relay",
        false,
        &["--relay", "1"],
        &["--relay-only"],
    );
    assert_eq!(pair["local"]["type"], "relay", "{pair}");
    assert_eq!(pair["remote"]["type"], "relay", "{pair}");
}

/// The client library's own scenarios in Chromium (tests/browser/library.mjs, which starts
/// and restarts `rdv serve` itself): two pages calling `connect()` at the same instant get one
/// connection each through perfect negotiation, under `--proof required`; a reloaded page
/// keeps its peer ID and its channel comes back; a server restart is survived without any
/// page reloading; a page whose signaling is cut resumes with its data channel open.
#[test]
#[ignore = "needs chromium, node and playwright-core; cargo test -- --ignored runs it"]
fn the_client_library_survives_glare_reloads_restarts_and_tampering() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::outside::require(missing(root));
    let rdv = common::rdv_binary();
    let args = ["--rdv", &rdv, "--timeout-ms", "30000"];
    let summary = run_driver(root, "library.mjs", &args, "the library's scenarios failed");
    let scenarios = summary["scenarios"].as_object().unwrap();
    assert_eq!(scenarios.len(), 5, "{summary:#}");
    let glare = &summary["scenarios"]["glare"];
    assert_eq!(
        glare["offered"],
        serde_json::json!([true, true]),
        "both offered at once"
    );
    for result in glare["results"].as_array().unwrap() {
        assert_eq!(
            result["verified"], true,
            "proof required: each saw the other verified"
        );
    }
    // Resume (PROTOCOL §14): the cut page came back in its place, its channel open all along.
    let resume = &summary["scenarios"]["resume"];
    assert_eq!(resume["channelOpen"], "open", "{resume:#}");
    assert!(
        resume["a"]["events"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("resumed")),
        "{resume:#}"
    );
    let reload = &summary["scenarios"]["reload"];
    assert_eq!(
        reload["before"], reload["after"],
        "the reload kept the peer ID"
    );
    // Signed descriptions (PROTOCOL §12): verified end to end, and a changed fingerprint
    // refused before any channel opens.
    let signed = &summary["scenarios"]["signed"];
    assert_eq!(signed["opened"]["verified"], true, "{signed:#}");
    assert_eq!(signed["other"]["verified"], true, "{signed:#}");
    assert_eq!(signed["refused"]["reason"], "bad-signature", "{signed:#}");
    assert_eq!(signed["after"]["connections"], 0, "{signed:#}");
}
