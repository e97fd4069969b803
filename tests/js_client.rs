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

/// `rdv.d.ts` describes what `rdv.js` exports well enough for a strict TypeScript build of the
/// README's usage (tsc from tests/browser's lock file).
#[test]
#[ignore = "needs node and typescript (cd tests/browser && npm ci); cargo test -- --ignored runs it"]
fn the_type_declarations_check_under_strict_typescript() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tsc = root.join("tests/browser/node_modules/typescript/bin/tsc");
    common::outside::require(
        (!tsc.exists()).then(|| "typescript is not installed (cd tests/browser && npm ci)".into()),
    );
    let output = Command::new("node")
        .arg(&tsc)
        .args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--lib",
            "es2022,dom",
        ])
        .args(["--module", "nodenext", "--moduleResolution", "nodenext"])
        .arg(root.join("clients/js/test/usage.ts"))
        .output()
        .expect("run tsc");
    assert!(
        output.status.success(),
        "tsc:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `npm pack` makes an installable package of exactly the module, its types and its README.
#[test]
#[ignore = "needs npm (apt install npm); cargo test -- --ignored runs it"]
fn npm_pack_makes_the_package() {
    common::outside::require(common::outside::program(
        "npm",
        "--version",
        "apt install npm",
    ));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("npm")
        .args(["pack", "--dry-run", "--json"])
        .current_dir(root.join("clients/js"))
        .output()
        .expect("run npm");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let packs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut files: Vec<&str> = packs[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["README.md", "package.json", "rdv.d.ts", "rdv.js"]);
    assert_eq!(packs[0]["name"], "@rdv/client");
}
