//! Tests that need a program from outside the Rust toolchain (openssl, Chromium, and the
//! servers the later suites start) are marked `#[ignore = "needs …"]`, so a plain `cargo test`
//! lists them as ignored in its summary instead of passing them silently.
//! `cargo test -- --ignored` (what `.ci/run` runs after `cargo test`) is the one switch that
//! says "outside programs are required": run that way, a missing program is a failure that
//! names what to install.

use std::process::{Command, Stdio};

/// Fails the test with `reason` (and how to get the program) when something is missing.
pub fn require(missing: Option<String>) {
    if let Some(reason) = missing {
        panic!(
            "this test needs a program from outside the Rust toolchain: {reason}. \
             `.ci/run` installs everything the ignored tests need"
        );
    }
}

/// `None` when `program` runs (`program ARG` exits at all), else why not and what to install.
pub fn program(program: &str, arg: &str, install: &str) -> Option<String> {
    let runs = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    (!runs).then(|| format!("{program} is not installed ({install})"))
}
