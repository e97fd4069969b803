//! The browser client library's own tests (`clients/js/test/`, Node's test runner), run
//! against this build of `rdv`: peer IDs against the WebCrypto vectors, message building and
//! parsing, back-off, the room logic against a scripted socket, and proofs verified by a real
//! `rdv serve`. Needs node (20 or later), so it is ignored by a plain `cargo test` and run by
//! `cargo test -- --ignored`.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs node (apt install nodejs); cargo test -- --ignored runs it"]
fn the_js_client_passes_its_node_tests() {
    common::outside::require(common::outside::program(
        "node",
        "--version",
        "apt install nodejs",
    ));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("node")
        .args(["--experimental-websocket", "--test", "--test-reporter=tap"])
        .arg("test/")
        .current_dir(root.join("clients/js"))
        .env("RDV_BINARY", common::rdv_binary())
        .output()
        .expect("run node");
    let report = String::from_utf8_lossy(&output.stdout);
    let count = |key: &str| -> usize {
        report
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no '# {key}' in the report:\n{report}"))
    };
    assert!(
        output.status.success() && count("fail") == 0,
        "node tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A skipped test (no server binary) would hide the proof check: none may be skipped here.
    assert_eq!(count("skipped"), 0, "{report}");
    assert!(count("pass") >= 12, "{report}");
}
