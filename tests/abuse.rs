//! The standing attack suite (issue 12): each test reproduces one way a client on the open
//! internet could hold or burn the server's resources, against the real binary, in bounded
//! time, and checks the server cuts that client off while a bystander pair keeps relaying.

mod common;

use std::time::Duration;

use common::raw::{RawClient, masked_frame};
use common::{Server, metric};
use serde_json::json;

/// A registered pair in its own room relays an offer: the server is up and serving others.
async fn bystanders_still_relay(server: &Server) {
    let mut a = server.peer("bystanders").await;
    let mut b = server.peer("bystanders").await;
    a.client
        .send(json!({"type": "offer", "to": b.id, "sdp": {"n": 1}}))
        .await;
    let offer = b.client.expect("offer").await;
    assert_eq!(offer["from"], a.id.as_str());
    let _ = a.client.expect("peer-joined").await;
}

/// Sends `start` then 200 copies of `frame` to a server limited to 20 frames a second: the
/// attacker is closed with 1008 and the bystanders keep relaying.
async fn flood_is_cut_off(start: Vec<u8>, frame: Vec<u8>) {
    let server = Server::start(&["--rate-limit", "20", "--rate-burst", "20"]);
    let mut attacker = RawClient::connect(&server, "flood").await;
    let mut flood = start;
    for _ in 0..200 {
        flood.extend_from_slice(&frame);
    }
    // The server may close before the whole flood is written.
    let _ = attacker.send_raw(&flood).await;
    assert_eq!(
        attacker.close_frame().await,
        (1008, "rate limit exceeded".to_owned())
    );
    bystanders_still_relay(&server).await;
}

#[tokio::test]
async fn a_flood_of_empty_continuation_frames_is_cut_off() {
    flood_is_cut_off(
        masked_frame(false, 0x1, b"{"),
        masked_frame(false, 0x0, b""),
    )
    .await;
}

#[tokio::test]
async fn a_flood_of_pings_is_cut_off() {
    flood_is_cut_off(Vec::new(), masked_frame(true, 0x9, b"x")).await;
}

#[tokio::test]
async fn a_message_that_never_finishes_is_cut_off_at_its_deadline() {
    let server = Server::start(&["--message-timeout", "1s"]);
    let mut attacker = RawClient::connect(&server, "slow").await;
    attacker
        .send_raw(&masked_frame(false, 0x1, &[b' '; 4000]))
        .await
        .unwrap();
    // Kept alive with pings, well within the rate limit, for longer than the deadline.
    let pinger = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if attacker
                .send_raw(&masked_frame(true, 0x9, b""))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    pinger.await;
    assert_eq!(
        attacker.close_frame().await,
        (1008, "message took too long to arrive".to_owned())
    );
    bystanders_still_relay(&server).await;
}

#[tokio::test]
async fn unfinished_messages_across_the_server_have_a_budget() {
    let server = Server::start(&["--max-unfinished-bytes", "10KiB"]);
    let mut first = RawClient::connect(&server, "budget").await;
    first
        .send_raw(&masked_frame(false, 0x1, &[b' '; 6000]))
        .await
        .unwrap();
    // Counted once the server has read it.
    server
        .wait_for_metric("rdv_unfinished_message_bytes", |held| held >= 6000.0)
        .await;
    let mut second = RawClient::connect(&server, "budget").await;
    second
        .send_raw(&masked_frame(false, 0x1, &[b' '; 6000]))
        .await
        .unwrap();
    assert_eq!(
        second.close_frame().await,
        (1013, "server holds too many unfinished messages".to_owned())
    );
    // The first one finishes its message: the budget is free again.
    first
        .send_raw(&masked_frame(true, 0x0, br#"{"type":"ping"}"#))
        .await
        .unwrap();
    bystanders_still_relay(&server).await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let held = metric(&server.metrics().await, "rdv_unfinished_message_bytes");
        if held == 0.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still held: {held}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// RFC 6455 §7.4.1: a protocol violation is answered with a close frame (1002; 1007 for text
/// that is not UTF-8), not a bare FIN.
#[tokio::test]
async fn protocol_violations_get_a_close_frame_with_the_right_code() {
    let server = Server::start(&[]);
    let unmasked = {
        let mut frame = vec![0x81, 2];
        frame.extend_from_slice(b"{}");
        frame
    };
    let rsv = {
        let mut frame = masked_frame(true, 0x1, b"{}");
        frame[0] |= 0x40;
        frame
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", unmasked, 1002),
        ("RSV bit", rsv, 1002),
        ("reserved opcode", masked_frame(true, 0x3, b"x"), 1002),
        (
            "oversized control frame",
            masked_frame(true, 0x9, &[0; 126]),
            1002,
        ),
        (
            "fragmented control frame",
            masked_frame(false, 0x9, b"x"),
            1002,
        ),
        (
            "continuation without a start",
            masked_frame(true, 0x0, b"x"),
            1002,
        ),
        (
            "invalid UTF-8",
            masked_frame(true, 0x1, &[0xff, 0xfe]),
            1007,
        ),
    ];
    for (name, bytes, code) in cases {
        let mut client = RawClient::connect(&server, "violations").await;
        client.send_raw(&bytes).await.unwrap();
        let (got, _) = client.close_frame().await;
        assert_eq!(got, code, "{name}");
    }
    bystanders_still_relay(&server).await;
}

/// A message over the limit gets 1009, and the client can read it even if it only reads
/// after it has written everything: the server reads what the client still sends instead of
/// closing with unread input, which would reset the connection and destroy the close frame.
#[tokio::test]
async fn a_message_too_big_is_answered_with_a_readable_1009() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = Server::start(&[]);
    let mut client = RawClient::connect(&server, "big").await;
    // 80 KB over the 64 KiB limit, in two frames that are each within it.
    let mut big = masked_frame(false, 0x1, &vec![b' '; 40_000]);
    big.extend(masked_frame(true, 0x0, &vec![b' '; 40_000]));
    big.extend(masked_frame(true, 0x1, &vec![b' '; 40_000]));
    // Written in two parts, the second after the server has answered: bytes that reach a
    // socket the server already closed make its kernel send a reset.
    let (first, second) = big.split_at(82_000);
    tokio::time::timeout(common::WAIT, client.tcp.write_all(first))
        .await
        .expect("written in time (loopback buffers hold it)")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.tcp.write_all(second).await;
    // A client that reads only once it is done writing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut head = [0u8; 4];
    let read = tokio::time::timeout(common::WAIT, client.tcp.read_exact(&mut head))
        .await
        .expect("the close in time");
    assert!(read.is_ok(), "the close frame was lost: {read:?}");
    assert_eq!(head[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([head[2], head[3]]), 1009);
    bystanders_still_relay(&server).await;
}

/// Writes `request` on a fresh connection and returns the status line's code and the body.
async fn http_exchange(server: &Server, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = tcp.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, async {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
            response.extend_from_slice(&chunk[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_request_head_over_8_kib_gets_431() {
    let server = Server::start(&[]);
    let padding = "x".repeat(9000);
    let request =
        format!("GET /room/a/websocket HTTP/1.1\r\nHost: x\r\nX-Padding: {padding}\r\n\r\n");
    let (status, _) = http_exchange(&server, request.as_bytes()).await;
    assert_eq!(status, 431);
    bystanders_still_relay(&server).await;
}

#[tokio::test]
async fn an_upgrade_with_a_body_is_refused() {
    let server = Server::start(&[]);
    let upgrade = "GET /room/a/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for body_headers in [
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let (status, text) =
            http_exchange(&server, format!("{upgrade}{body_headers}").as_bytes()).await;
        assert_eq!(status, 400, "{body_headers:?}: {text}");
    }
    bystanders_still_relay(&server).await;
}

/// Idle sockets that never send a request, and upgrades that never register, have their
/// own cap: past it the oldest are closed, so new clients and /healthz keep working and
/// registered peers keep their places.
#[tokio::test]
async fn idle_connections_cannot_lock_out_new_clients() {
    use tokio::io::AsyncReadExt as _;
    let server = Server::start(&["--max-unregistered", "20", "--max-connections", "40"]);
    // 60 sockets that send nothing.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // 60 upgrades that never register.
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(RawClient::connect(&server, "silent").await);
    }
    // New clients still get in and register; /healthz answers.
    assert_eq!(server.get("/healthz").await.0, 200);
    let mut peers = Vec::new();
    for _ in 0..10 {
        peers.push(server.peer("legit").await);
    }
    bystanders_still_relay(&server).await;
    // The oldest idle sockets were closed by the server.
    let mut closed = 0;
    for mut tcp in idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 40, "only {closed} idle sockets were closed");
    // Silent upgrades were told why.
    let (code, reason) = silent[0].close_frame().await;
    assert_eq!(
        (code, reason.as_str()),
        (1013, "too many unregistered connections")
    );
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "rdv_unregistered_connections") <= 20.0);
    assert!(metric(&metrics, "rdv_unregistered_evicted_total") >= 100.0);
    // The ten registered (the bystanders may still be leaving).
    assert!(metric(&metrics, "rdv_peers") >= peers.len() as f64);
}

/// Room names with control characters are refused before they can reach a log or a
/// terminal; at the most verbose log level no line carries an SDP, a candidate or a key.
#[tokio::test]
async fn logs_carry_no_payloads_and_no_forged_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging_to(&[], &[("RDV_LOG", "trace")], log.into());
    for segment in ["a%0Aforged%20line", "%1B%5B31mred", "nul%00", "del%7F"] {
        let (status, body) = server.get(&format!("/room/{segment}/websocket")).await;
        assert_eq!(status, 400, "{segment}");
        assert!(body.contains("control character"), "{segment}: {body}");
    }
    let mut a = server.peer("secrets").await;
    let mut b = server.peer("secrets").await;
    let sdp = "v=0\r\na=ice-pwd:SECRETPASSWORD1234567890\r\n";
    a.client
        .send(json!({"type": "offer", "to": b.id, "sdp": {"type": "offer", "sdp": sdp}}))
        .await;
    b.client.expect("offer").await;
    a.client
        .send(json!({"type": "ice-candidate", "to": b.id,
            "candidate": {"candidate": "candidate:UNIQUECANDIDATE 1 udp 1 10.9.8.7 9 typ host"}}))
        .await;
    b.client.expect("ice-candidate").await;
    let _ = a.client.sync().await;
    let _ = b.client.sync().await;
    let x = a.key.public_jwk["x"].as_str().unwrap().to_owned();
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.is_empty(), "trace logging wrote something");
    for secret in [
        "SECRETPASSWORD",
        "UNIQUECANDIDATE",
        "10.9.8.7",
        &x,
        "forged",
        "\u{1b}[31m",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

#[tokio::test]
async fn deeply_nested_relays_are_refused_not_passed_on() {
    let server = Server::start(&[]);
    let mut a = server.peer("deep").await;
    let mut b = server.peer("deep").await;
    let deep = format!(
        r#"{{"type":"offer","to":"{}","sdp":{}1{}}}"#,
        b.id,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let _ = a.client.expect("peer-joined").await;
    a.client.send_text(&deep).await;
    a.client.expect_error("invalid-message").await;
    // Nothing reached the receiver.
    assert!(b.client.sync().await.is_empty());
    bystanders_still_relay(&server).await;
}

/// The server's resident memory, from /proc (Linux).
fn rss_bytes(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Welcome amplification: peers register keys padded with tens of kilobytes of extra
/// members, and joiners that never read ask for a `welcome` listing them all. A room sees
/// only the canonical key (plus short kid/alg/use), so each joiner costs kilobytes, not
/// megabytes; and a joiner that stops reading is cut off (1013) at its byte budget.
#[tokio::test]
async fn joiners_that_stop_reading_cannot_pin_memory() {
    // Stalled joiners that vanish are held for a resume first (PROTOCOL §14): a short grace
    // keeps the wait for their departure well within the test's.
    let server = Server::start(&["--outbound-queue-bytes", "256KiB", "--resume-grace", "1s"]);
    let junk = "j".repeat(60_000);
    let mut members = Vec::new();
    for _ in 0..30 {
        let mut client = common::Client::connect(&server.url("amplify")).await;
        let key = common::TestKey::new();
        let mut padded = key.public_jwk.clone();
        padded["junk"] = json!(junk);
        padded["kid"] = json!("member");
        client
            .send(json!({"type": "register", "publicKey": padded}))
            .await;
        let welcome = client.expect("welcome").await;
        for peer in welcome["peers"].as_array().unwrap() {
            let key = &peer["publicKey"];
            let size = key.to_string().len();
            assert!(
                key.get("junk").is_none() && key.get("ext").is_none(),
                "{size} bytes"
            );
            assert_eq!(key["kid"], "member");
        }
        members.push(client);
    }
    let before = rss_bytes(&server);
    // 150 joiners that register and never read again.
    let mut stalled = Vec::new();
    for _ in 0..150 {
        let mut raw = RawClient::connect(&server, "amplify").await;
        let key = common::TestKey::new();
        raw.send_text(&rdv::protocol::register(&key.public_jwk, None, None))
            .await;
        stalled.push(raw);
    }
    bystanders_still_relay(&server).await;
    let during = rss_bytes(&server);
    // Each welcome is ~30 short entries; 150 of them are a few megabytes at most (they
    // would be 270 MB if the padding travelled).
    assert!(
        during < before + 40 * 1024 * 1024,
        "RSS grew from {before} to {during} bytes"
    );
    drop(stalled);
    // Every stalled joiner is gone (each left its room, and its connection closed once the
    // goodbye grace passed); the members stay.
    server.wait_for_metric("rdv_peers", |n| n <= 30.0).await;
    server
        .wait_for_metric("rdv_connections", |n| n <= 30.0)
        .await;
    // Memory is handed back once they have gone (the server trims after a burst of closes,
    // checking every 2 s): within 10 % of where it was before they came.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let mut after = rss_bytes(&server);
    while after > before + before / 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = rss_bytes(&server);
    }
    assert!(
        after <= before + before / 10,
        "RSS before {before}, during {during}, after {after} bytes"
    );
    drop(members);
    bystanders_still_relay(&server).await;
}

/// A room of receivers that never read: each may queue up to `--outbound-queue-bytes`, but
/// all of them together stay under `--max-outbound-bytes`. At the ceiling the slowest are cut
/// (1013) and the server's memory stays bounded, while bystanders keep relaying.
#[tokio::test]
async fn a_room_of_slow_readers_stays_under_the_outbound_ceiling() {
    const CEILING: f64 = 4.0 * 1024.0 * 1024.0;
    let server = Server::start(&[
        "--max-outbound-bytes",
        "4MiB",
        "--outbound-queue-bytes",
        "1MiB",
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
    ]);
    let mut sender = server.peer("slow-room").await;
    let mut readers = Vec::new();
    for _ in 0..24 {
        // A small receive buffer, so the backlog builds in the server, not in the kernel.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(server.addr).await.unwrap();
        let mut raw = RawClient::over(tcp, "slow-room").await;
        let key = common::TestKey::new();
        raw.send_text(&rdv::protocol::register(&key.public_jwk, None, None))
            .await;
        let (welcome, _) = raw.message().await;
        assert_eq!(welcome["type"], "welcome");
        readers.push((raw, key.peer_id()));
    }
    sender.client.sync().await;
    let before = rss_bytes(&server);
    let payload = "s".repeat(48 * 1024);
    let mut highest: f64 = 0.0;
    for round in 0..100 {
        for (_, id) in &readers {
            sender
                .client
                .send(json!({"type": "offer", "to": id, "sdp": payload}))
                .await;
        }
        // The sender reads its own replies (unknown-peer once a reader is cut).
        sender.client.sync().await;
        if round % 5 == 0 {
            let queued = metric(&server.metrics().await, "rdv_outbound_queued_bytes");
            highest = highest.max(queued);
        }
    }
    let during = rss_bytes(&server);
    let metrics = server.metrics().await;
    assert!(highest <= CEILING, "{highest} bytes queued");
    assert!(
        metric(&metrics, "rdv_outbound_budget_cuts_total") >= 1.0,
        "the ceiling was reached and the slowest cut"
    );
    // 24 readers × 1 MiB would be 24 MiB of queues without the ceiling.
    assert!(
        during < before + 16 * 1024 * 1024,
        "RSS grew from {before} to {during} bytes"
    );
    // A reader cut at the ceiling sits behind its full socket, so its close frame may never
    // reach it; the server counts the cuts as 1013 closes.
    assert!(metric(&metrics, r#"rdv_closes_total{code="1013"}"#) >= 1.0);
    bystanders_still_relay(&server).await;
    drop(readers);
}
