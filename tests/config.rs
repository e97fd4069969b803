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
    // `NAME SOURCE VALUE`: the source before the value, so long paths keep the columns.
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2..].join(" "), words[1].to_owned())
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
            "--max-message-size",
            "64kb",
            "--ping-interval",
            "90s",
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
    // Sizes and durations as the server reads them: `kb` is 1000 bytes, not 1024.
    assert_eq!(
        setting(&listing, "max-message-size"),
        ("64kb (64000 bytes)".into(), "flag".into())
    );
    assert_eq!(
        setting(&listing, "ping-interval"),
        ("90s (1m 30s)".into(), "flag".into())
    );
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

/// Half a TLS pair is an error from every source, at `--check-config` and at start: the
/// server must never come up on plain ws:// while its operator believes TLS is on. A pair
/// split between the file and a flag is a whole pair.
#[test]
fn half_a_tls_pair_is_an_error_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), pair.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), pair.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        dir.path().join("cert-only.toml"),
        "tls-cert = \"cert.pem\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("key-only.toml"), "tls-key = \"key.pem\"\n").unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    /// Arguments, environment, and the half the error names as missing.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--config", "cert-only.toml"], &[], "--tls-key"),
        (&["--config", "key-only.toml"], &[], "--tls-cert"),
        (&[], &[("RDV_TLS_CERT", "cert.pem")], "--tls-key"),
        (&["--tls-key", "key.pem"], &[], "--tls-cert"),
    ];
    for (args, env, missing) in cases {
        for check in [true, false] {
            let mut all = vec!["serve"];
            all.extend_from_slice(&listen);
            all.extend_from_slice(args);
            if check {
                all.push("--check-config");
            }
            // Bounded: a server that started anyway would never exit by itself.
            let mut child = Command::new(common::rdv_binary())
                .args(&all)
                .current_dir(dir.path())
                .envs(env.iter().copied())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + common::WAIT;
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if child.try_wait().unwrap().is_none() {
                let _ = child.kill();
                panic!("{all:?} {env:?} started a server");
            }
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{all:?} {env:?}: {stderr}");
            assert!(
                stderr.contains(&format!("but {missing} is not")),
                "{all:?} {env:?}: {stderr}"
            );
        }
    }
    // The certificate from the file and the key from a flag: one pair, and TLS is on.
    let output = rdv(
        dir.path(),
        &[
            "serve",
            "--config",
            "cert-only.toml",
            "--tls-key",
            "key.pem",
            "--check-config",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        setting(&listing, "tls-key"),
        ("key.pem".into(), "flag".into())
    );
    assert_eq!(setting(&listing, "tls-cert").1, "file");
    let log = dir.path().join("serve.log");
    let server = Server::start_logging_to(
        &[
            "--config",
            dir.path().join("cert-only.toml").to_str().unwrap(),
            "--tls-key",
            dir.path().join("key.pem").to_str().unwrap(),
        ],
        &[("RDV_LOG", "info")],
        std::fs::File::create(&log).unwrap().into(),
    );
    let logged = common::eventually_blocking("the serving line is logged", || {
        let text = std::fs::read_to_string(&log).unwrap();
        text.contains("serving peers at").then_some(text)
    });
    assert!(
        logged.contains(&format!("wss://{}", server.addr)),
        "{logged}"
    );
}

/// A value's whole error reaches the operator, even one that spans lines (a regex shows
/// where it broke), and `--check-config --cluster` tries Redis itself.
#[test]
fn check_config_shows_whole_errors_and_tries_redis() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("regex.toml"), "room-pattern = \"a(b\"\n").unwrap();
    let output = rdv(
        dir.path(),
        &["serve", "--config", "regex.toml", "--check-config"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("regex.toml:1: room-pattern"), "{stderr}");
    assert!(stderr.contains("unclosed group"), "{stderr}");

    // Nothing listens on this port: the check says so, naming the URL without its password.
    let port = common::free_tcp_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let output = rdv(
        dir.path(),
        &["serve", "--cluster", &url, "--check-config"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
