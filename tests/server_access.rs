//! Who may connect: browser origins, room-name patterns, per-client-address limits (from the
//! socket, or from a trusted proxy's header), and the one log line per connection.

mod common;

use std::time::Duration;

use common::{Server, eventually, metric, upgrade_from};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;

/// The body of a refused (non-101) answer, as long as its head's Content-Length says.
async fn body(tcp: &mut tokio::net::TcpStream, head: &str) -> String {
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    tokio::time::timeout(common::WAIT, tcp.read_exact(&mut body))
        .await
        .expect("the body in time")
        .unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn browser_origins_are_checked() {
    let server = Server::start(&[
        "--allow-origin",
        "https://app.example.com",
        "--allow-origin",
        "https://*.example.org",
    ]);
    for (origin, expected) in [
        (Some("https://app.example.com"), 101),
        (Some("https://a.example.org"), 101),
        (Some("https://example.org"), 403),
        (Some("https://evil.example.com"), 403),
        (None, 101),
    ] {
        let header = origin.map(|o| format!("Origin: {o}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let (status, head, mut tcp) = upgrade_from(&server, "127.0.0.1", "o", &headers).await;
        assert_eq!(status, expected, "{origin:?}");
        if status == 403 {
            assert!(body(&mut tcp, &head).await.contains("is not allowed here"));
        }
    }
    let strict = Server::start(&[
        "--allow-origin",
        "https://app.example.com",
        "--require-origin",
    ]);
    let (status, head, mut tcp) = upgrade_from(&strict, "127.0.0.1", "o", &[]).await;
    assert_eq!(status, 403);
    assert!(
        body(&mut tcp, &head)
            .await
            .contains("Origin header is required")
    );
    let metrics = strict.metrics().await;
    assert_eq!(
        metric(&metrics, r#"rdv_upgrades_rejected_total{reason="origin"}"#),
        1.0
    );
}

#[tokio::test]
async fn room_names_must_match_the_pattern() {
    let server = Server::start(&["--room-pattern", "[a-z0-9-]{3,32}"]);
    let (status, _, _) = upgrade_from(&server, "127.0.0.1", "team-42", &[]).await;
    assert_eq!(status, 101);
    for bad in ["AB", "Team", "x"] {
        let (status, head, mut tcp) = upgrade_from(&server, "127.0.0.1", bad, &[]).await;
        assert_eq!(status, 400, "{bad}");
        let text = body(&mut tcp, &head).await;
        assert!(
            text.contains("does not match") && text.contains("[a-z0-9-]{3,32}"),
            "{text}"
        );
    }
    let bad_regex = std::process::Command::new(common::rdv_binary())
        .args(["serve", "--room-pattern", "(unclosed"])
        .output()
        .unwrap();
    assert_eq!(bad_regex.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_regex.stderr).contains("--room-pattern"));
}

#[tokio::test]
async fn open_connections_per_client_address_are_capped() {
    let server = Server::start(&["--max-connections-per-ip", "2"]);
    let (a, _, _keep_a) = upgrade_from(&server, "127.0.0.2", "ip", &[]).await;
    let (b, _, _keep_b) = upgrade_from(&server, "127.0.0.2", "ip", &[]).await;
    assert_eq!((a, b), (101, 101));
    let (status, head, mut tcp) = upgrade_from(&server, "127.0.0.2", "ip", &[]).await;
    assert_eq!(status, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert!(
        body(&mut tcp, &head)
            .await
            .contains("too many open connections from 127.0.0.2")
    );
    // Another address is counted on its own.
    let (other, _, _keep_c) = upgrade_from(&server, "127.0.0.3", "ip", &[]).await;
    assert_eq!(other, 101);
    // A connection that ends gives its place back.
    drop(_keep_a);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, _, _keep) = upgrade_from(&server, "127.0.0.2", "ip", &[]).await;
        if status == 101 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connection_attempts_per_client_address_are_rate_limited() {
    let server = Server::start(&["--connect-rate-per-ip", "2"]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, head, _) = upgrade_from(&server, "127.0.0.4", "rate", &[]).await;
        if status == 429 {
            assert!(
                head.to_ascii_lowercase().contains("retry-after: 1"),
                "{head}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [101, 101, 429, 429]);
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"rdv_upgrades_rejected_total{reason="rate"}"#),
        2.0
    );
}

/// Behind a proxy every connection comes from the proxy's address; only a trusted proxy's
/// header (the one `--client-address-header` names) says who the client is.
#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let trusting = Server::start(&[
        "--max-connections-per-ip",
        "1",
        "--trusted-proxy",
        "127.0.0.5/32",
    ]);
    let xff = |ip: &str| format!("X-Forwarded-For: 203.0.113.9, {ip}");
    let (a, _, _ka) = upgrade_from(&trusting, "127.0.0.5", "p", &[&xff("198.51.100.1")]).await;
    let (b, _, _kb) = upgrade_from(&trusting, "127.0.0.5", "p", &[&xff("198.51.100.2")]).await;
    // HAProxy appends its own line after the client's: every line is read.
    let (c, _, _kc) = upgrade_from(
        &trusting,
        "127.0.0.5",
        "p",
        &[
            "X-Forwarded-For: 203.0.113.77",
            "X-Forwarded-For: 198.51.100.1",
        ],
    )
    .await;
    assert_eq!(
        (a, b, c),
        (101, 101, 429),
        "two clients behind one proxy, one of them twice"
    );
    // From an untrusted address the header is ignored: the socket address counts.
    let (d, _, _kd) = upgrade_from(&trusting, "127.0.0.6", "p", &[&xff("198.51.100.3")]).await;
    let (e, _, _ke) = upgrade_from(&trusting, "127.0.0.6", "p", &[&xff("198.51.100.4")]).await;
    assert_eq!((d, e), (101, 429));

    // RFC 7239's header, when the operator chooses it.
    let forwarded = Server::start(&[
        "--max-connections-per-ip",
        "1",
        "--trusted-proxy",
        "127.0.0.5/32",
        "--client-address-header",
        "forwarded",
    ]);
    let header = |ip: &str| format!("Forwarded: for=203.0.113.9, for=\"{ip}:555\"");
    let (a, _, _ka) = upgrade_from(&forwarded, "127.0.0.5", "p", &[&header("198.51.100.1")]).await;
    let (b, _, _kb) = upgrade_from(&forwarded, "127.0.0.5", "p", &[&header("198.51.100.1")]).await;
    assert_eq!((a, b), (101, 429));
}

/// The confirmed bypass: behind a trusted proxy, a client that adds its own `Forwarded`
/// (or any header other than the one the operator chose) gets no more connections than the
/// limit, whatever address it writes there.
#[tokio::test]
async fn a_client_cannot_choose_its_address_with_a_header() {
    let server = Server::start(&[
        "--trusted-proxy",
        "127.0.0.1/32",
        "--max-connections-per-ip",
        "5",
    ]);
    let mut admitted = 0;
    let mut open = Vec::new();
    for n in 1..=12 {
        let forwarded = format!("Forwarded: for=203.0.113.{n}");
        let real_ip = format!("X-Real-IP: 203.0.113.{n}");
        let (status, _, tcp) =
            upgrade_from(&server, "127.0.0.1", "spoof", &[&forwarded, &real_ip]).await;
        assert!(matches!(status, 101 | 429), "{status}");
        admitted += usize::from(status == 101);
        open.push(tcp);
    }
    assert_eq!(admitted, 5, "the limit holds whatever the client writes");
    // Each refusal was the per-IP limit's.
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"rdv_upgrades_rejected_total{reason="per-ip"}"#),
        7.0
    );
}

/// One info line per connection, with the fields an operator needs and without the room's
/// name (unless asked) or anything a peer sent.
#[tokio::test]
async fn each_connection_is_logged_once_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging_to(
        &["--log-format", "json"],
        &[("RDV_LOG", "info")],
        log.into(),
    );
    let peer = server.peer("secret-room-name").await;
    let id = peer.id.clone();
    peer.client.close().await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = text.lines().find(|l| l.contains("connection closed")) {
            assert!(!text.contains("secret-room-name"), "{text}");
            break line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection line in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let entry: Value = serde_json::from_str(&line).unwrap();
    let fields = &entry["fields"];
    assert_eq!(fields["client"], "127.0.0.1");
    assert_eq!(fields["peer"], &id[..12]);
    assert_eq!(fields["close_reason"], "closed by the client");
    assert_eq!(fields["messages_in"], 1, "the register");
    assert_eq!(fields["messages_out"], 1, "the welcome");
    assert!(fields["duration_ms"].is_u64());
    let room = fields["room"].as_str().unwrap();
    assert_eq!(room.len(), 8, "a short hash: {room}");

    let log_path = dir.path().join("named.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let named = Server::start_logging_to(
        &["--log-format", "json", "--log-room-names"],
        &[("RDV_LOG", "info")],
        log.into(),
    );
    named.peer("visible-room").await.client.close().await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !std::fs::read_to_string(&log_path)
        .unwrap()
        .contains("visible-room")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room name was never logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGHUP reads the configuration again and applies a changed origin list to new upgrades.
#[tokio::test]
async fn sighup_reloads_the_allowed_origins_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rdv.toml");
    std::fs::write(&config, "allow-origin = [\"https://old.example\"]\n").unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let (status, _, _) =
        upgrade_from(&server, "127.0.0.1", "o", &["Origin: https://new.example"]).await;
    assert_eq!(status, 403);
    std::fs::write(&config, "allow-origin = [\"https://new.example\"]\n").unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    server
        .wait_for_metric(r#"rdv_reloads_total{what="origins",result="ok"}"#, |n| {
            n >= 1.0
        })
        .await;
    let (status, _, _) =
        upgrade_from(&server, "127.0.0.1", "o", &["Origin: https://new.example"]).await;
    assert_eq!(status, 101);
    let (status, _, _) =
        upgrade_from(&server, "127.0.0.1", "o", &["Origin: https://old.example"]).await;
    assert_eq!(status, 403);

    // A file that no longer reads keeps the origins in force, and the failure is counted.
    std::fs::write(&config, "allow-origin = [\"https://new.example\"\n").unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    eventually("the failed reload is counted", || async {
        let metrics = server.metrics().await;
        metrics
            .contains(r#"rdv_reloads_total{what="origins",result="failed"} 1"#)
            .then_some(())
    })
    .await;
    let (status, _, _) =
        upgrade_from(&server, "127.0.0.1", "o", &["Origin: https://new.example"]).await;
    assert_eq!(status, 101);
}
