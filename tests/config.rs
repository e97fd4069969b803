//! `rdv serve --config FILE` and `--check-config`: every setting in TOML under its flag's
//! name; flag > RDV_* variable > file > default; errors that name the file, the line and the
//! key.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Server;

fn rdv(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(common::rdv_binary());
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// The `--check-config` line of one setting: (value, source).
fn setting(listing: &str, name: &str) -> (String, String) {
    let line = listing
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{listing}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1..words.len() - 1].join(" "),
        words[words.len() - 1].to_owned(),
    )
}

#[test]
fn flags_beat_variables_beat_the_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rdv.toml"),
        "# rdv serve settings\nlisten = \"127.0.0.1:0\"\nrate-limit = 7\nmax-connections = 500\n\
         allow-origin = [\"https://a.example.com\", \"https://*.b.example\"]\n\
         require-origin = true\n",
    )
    .unwrap();
    let output = rdv(
        dir.path(),
        &[
            "serve",
            "--config",
            "rdv.toml",
            "--check-config",
            "--rate-limit",
            "9",
        ],
        &[("RDV_MAX_CONNECTIONS", "600")],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8(output.stdout).unwrap();
    assert_eq!(setting(&listing, "rate-limit"), ("9".into(), "flag".into()));
    assert_eq!(
        setting(&listing, "max-connections"),
        ("600".into(), "env".into())
    );
    assert_eq!(
        setting(&listing, "listen"),
        ("127.0.0.1:0".into(), "file".into())
    );
    assert_eq!(
        setting(&listing, "require-origin"),
        ("true".into(), "file".into())
    );
    assert_eq!(
        setting(&listing, "allow-origin"),
        (
            "[https://a.example.com, https://*.b.example]".into(),
            "file".into()
        )
    );
    assert_eq!(
        setting(&listing, "read-buffer"),
        ("512B".into(), "default".into())
    );
    // The first line is the first flag, as declared.
    assert!(listing.starts_with("listen "), "{listing}");
}

#[tokio::test]
async fn the_files_settings_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rdv.toml");
    std::fs::write(&path, "room-pattern = \"[a-z]+\"\n").unwrap();
    let server = Server::start(&["--config", path.to_str().unwrap()]);
    let (status, body) = server.get("/room/ABC/websocket").await;
    assert_eq!(status, 400);
    assert!(body.contains("[a-z]+"), "{body}");
    // RDV_CONFIG names the file too.
    let server = Server::start_with_env(&[], &[("RDV_CONFIG", path.to_str().unwrap())]);
    assert_eq!(server.get("/room/ABC/websocket").await.0, 400);
}

#[test]
fn every_mistake_in_the_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "max-conections = 5\nmax-connections = \"lots\"\nrequire-origin = \"yes\"\n\
         proof = true\nallow-origin = \"ftp://x\"\n",
    )
    .unwrap();
    let output = rdv(dir.path(), &["serve", "--config", "bad.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "bad.toml:1: unknown setting \"max-conections\"",
        "bad.toml:2: max-connections: invalid value 'lots'",
        "bad.toml:3: require-origin: expected true or false",
        "bad.toml:4: proof: expected a value",
        "bad.toml:5: allow-origin: invalid value 'ftp://x'",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    std::fs::write(dir.path().join("syntax.toml"), "listen = \n").unwrap();
    let output = rdv(dir.path(), &["serve", "--config", "syntax.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("syntax.toml: not TOML"));
    let output = rdv(dir.path(), &["serve", "--config", "missing.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml: no such file"));
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), first.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("other.key"),
        second.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rdv.toml"),
        "tls-cert = \"cert.pem\"\ntls-key = \"other.key\"\nallow-list = \"nowhere.txt\"\n",
    )
    .unwrap();
    // Run from elsewhere: names in the file are relative to the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = dir.path().join("rdv.toml");
    let output = rdv(
        elsewhere.path(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--check-config",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("do not belong together"), "{stderr}");
    assert!(stderr.contains("nowhere.txt"), "{stderr}");
    // The listing is still printed, so the operator sees what was checked.
    let listing = String::from_utf8_lossy(&output.stdout);
    let cert = dir.path().join("cert.pem");
    assert_eq!(
        setting(&listing, "tls-cert"),
        (cert.display().to_string(), "file".into())
    );
}
