//! The `rdv` command line: usage errors, help, and the generated completions and man pages.

mod common;

use std::path::Path;
use std::process::Command;

fn rdv(args: &[&str]) -> std::process::Output {
    Command::new(common::rdv_binary())
        .args(args)
        .env_remove("RDV_LISTEN")
        .output()
        .expect("run rdv")
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let output = rdv(&["serve", "--ping-interval", "soon"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--ping-interval"), "{stderr}");
    assert!(stderr.contains("not a duration"), "{stderr}");

    assert_eq!(
        rdv(&["serve", "--max-message-size", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(rdv(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(rdv(&[]).status.code(), Some(2));
}

#[test]
fn runtime_failures_exit_1_with_a_sentence() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = rdv(&["serve", "--listen", &addr]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    let output = rdv(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-list",
        "/nonexistent/ids.txt",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/ids.txt"));
}

#[test]
fn help_shows_every_serve_flag_with_its_variable_and_default() {
    let output = rdv(&["serve", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, variable, default) in [
        ("--listen", "RDV_LISTEN", "127.0.0.1:8080"),
        ("--max-message-size", "RDV_MAX_MESSAGE_SIZE", "64KiB"),
        ("--ping-interval", "RDV_PING_INTERVAL", "30s"),
        ("--register-timeout", "RDV_REGISTER_TIMEOUT", "5s"),
        ("--outbound-queue", "RDV_OUTBOUND_QUEUE", "1024"),
        ("--outbound-queue-bytes", "RDV_OUTBOUND_QUEUE_BYTES", "1MiB"),
        ("--max-connections", "RDV_MAX_CONNECTIONS", "10000"),
        ("--max-peers-per-room", "RDV_MAX_PEERS_PER_ROOM", "500"),
        ("--rate-limit", "RDV_RATE_LIMIT", "100"),
        ("--rate-burst", "RDV_RATE_BURST", "200"),
        ("--drain-timeout", "RDV_DRAIN_TIMEOUT", "10s"),
    ] {
        assert!(help.contains(flag), "{flag} missing");
        assert!(
            help.contains(&format!("[env: {variable}=")),
            "{variable} missing"
        );
        assert!(
            help.contains(&format!("[default: {default}]")),
            "{flag} default {default}"
        );
    }
}

#[test]
fn completions_subcommand_prints_a_script() {
    let output = rdv(&["completions", "bash"]);
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("_rdv()"));
    assert!(script.contains("--max-peers-per-room"));
}

/// `completions/` and `man/` must be what the CLI definition generates today.
/// Regenerate with `RDV_BLESS=1 cargo test --test cli`.
#[test]
fn generated_completions_and_man_pages_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("RDV_BLESS").is_some_and(|v| v != "0");
    let mut stale = Vec::new();
    let expected = rdv::commands::completions::files(&rdv::cli::command());
    for (path, contents) in &expected {
        let full = root.join(path);
        if std::fs::read(&full).ok().as_deref() == Some(contents.as_slice()) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, contents).unwrap();
        } else {
            stale.push(path.clone());
        }
    }
    // Files that are no longer generated (a removed subcommand) are stale too.
    for dir in ["completions", "man"] {
        for entry in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if !expected.iter().any(|(p, _)| *p == path) {
                if bless {
                    std::fs::remove_file(entry.path()).unwrap();
                } else {
                    stale.push(path);
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}; run `RDV_BLESS=1 cargo test --test cli` and commit them"
    );
}

#[test]
fn the_production_guide_documents_every_serve_flag() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/production.md"))
            .unwrap();
    let command = rdv::cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | "color") {
            continue;
        }
        assert!(
            readme.contains(&format!("`--{long}")),
            "docs/production.md lacks --{long}"
        );
        if let Some(variable) = arg.get_env() {
            assert!(
                readme.contains(&*variable.to_string_lossy()),
                "docs/production.md lacks {variable:?}"
            );
        }
    }
}

#[test]
fn listen_addresses_without_a_host_get_a_suggestion() {
    for bare in [":8081", "8081"] {
        let output = rdv(&["serve", "--listen", bare]);
        assert_eq!(output.status.code(), Some(2), "{bare}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--listen"), "{stderr}");
        assert!(stderr.contains("127.0.0.1:8081"), "{stderr}");
        assert!(stderr.contains("0.0.0.0:8081"), "{stderr}");
    }
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let output = Command::new(common::rdv_binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RDV_RATE_LIMIT", "abc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RDV_RATE_LIMIT"), "{stderr}");
    assert!(stderr.contains("\"abc\""), "{stderr}");
    // Given on the command line, the flag is what is named, not the variable.
    let output = Command::new(common::rdv_binary())
        .args(["serve", "--rate-limit", "abc"])
        .env("RDV_RATE_LIMIT", "5")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("RDV_RATE_LIMIT"), "{stderr}");
}
