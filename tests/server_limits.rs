//! PROTOCOL §6 and §8 against a real `rdv serve`: departures, timers, limits, shutdown.

mod common;

use std::time::Duration;

use common::{Client, Peer, Received, Server, TestKey, metric};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Asserts `observer` hears exactly one `peer-left` for `gone`, and nothing else.
async fn expect_single_departure(observer: &mut Peer, gone: &str) {
    let left = observer.client.expect("peer-left").await;
    assert_eq!(left, json!({"type": "peer-left", "peerId": gone}));
    assert!(
        observer.client.sync().await.is_empty(),
        "peer-left only once"
    );
}

async fn pair(server: &Server, room: &str) -> (Peer, Peer) {
    let observer = server.peer(room).await;
    let mut leaver = server.peer(room).await;
    leaver.client.sync().await;
    let mut observer = observer;
    observer.client.expect("peer-joined").await;
    (observer, leaver)
}

#[tokio::test]
async fn peer_left_once_on_close_frame() {
    let server = Server::start(&[]);
    let (mut observer, leaver) = pair(&server, "close").await;
    let id = leaver.id.clone();
    leaver.client.close().await;
    expect_single_departure(&mut observer, &id).await;
}

#[tokio::test]
async fn peer_left_once_on_abrupt_tcp_drop() {
    // Without a resume grace, as the original protocol has it (tests/resume.rs: with one).
    let server = Server::start(&["--resume-grace", "0"]);
    let (mut observer, leaver) = pair(&server, "drop").await;
    let id = leaver.id.clone();
    drop(leaver); // FIN without a close frame
    expect_single_departure(&mut observer, &id).await;

    let (mut observer, leaver) = pair(&server, "reset").await;
    let id = leaver.id.clone();
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = leaver.client.ws.get_ref() else {
        unreachable!("plain ws://")
    };
    // A zero linger makes close send RST; it cannot block, which is what the lint is about.
    #[allow(deprecated)]
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
    drop(leaver);
    expect_single_departure(&mut observer, &id).await;
}

#[tokio::test]
async fn peer_left_once_on_keepalive_timeout() {
    let server = Server::start(&["--ping-interval", "200ms", "--resume-grace", "0"]);
    let (mut observer, silent) = pair(&server, "silent").await;
    // `silent` is never polled again, so it never answers the server's pings.
    let left = observer.client.expect("peer-left").await;
    assert_eq!(left["peerId"], silent.id.as_str());
    assert!(observer.client.sync().await.is_empty());
    let mut silent = silent;
    assert_eq!(silent.client.expect_close().await, 1008);
}

#[tokio::test]
async fn answering_pings_keeps_a_quiet_peer_connected() {
    let server = Server::start(&["--ping-interval", "100ms"]);
    let (mut observer, mut quiet) = pair(&server, "quiet").await;
    // Well past two intervals, both polled (so pings are answered) but sending nothing.
    let quiet_period = Duration::from_millis(700);
    let (quiet_got, observer_got) = tokio::join!(
        quiet.client.recv_within(quiet_period),
        observer.client.recv_within(quiet_period)
    );
    assert!(quiet_got.is_none(), "{quiet_got:?}");
    assert!(observer_got.is_none(), "nobody left: {observer_got:?}");
    assert!(observer.client.sync().await.is_empty());
}

#[tokio::test]
async fn unregistered_connections_are_closed_after_the_register_timeout() {
    let server = Server::start(&["--register-timeout", "200ms"]);
    let mut idle = Client::connect(&server.url("timeout")).await;
    assert_eq!(idle.expect_close().await, 1008);
    // A peer that registered in time is not affected.
    let mut peer = server.peer("timeout").await;
    assert!(
        peer.client
            .recv_within(Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn connections_that_never_finish_their_request_are_dropped_after_the_register_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = Server::start(&["--register-timeout", "300ms"]);
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /room/slow/websocket HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for stream in [&mut silent, &mut partial] {
        let mut buf = [0u8; 256];
        // Closed by the server (EOF or reset), well before the test's own bound.
        let outcome = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server closed the connection in time");
        assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
    }
    // Whole requests are still served.
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn an_oversized_message_closes_only_its_sender_with_1009() {
    let server = Server::start(&["--max-message-size", "4KiB"]);
    let mut alice = server.peer("big").await;
    let mut bob = server.peer("big").await;
    let mut carol = server.peer("big").await;
    alice.client.sync().await;
    bob.client.sync().await;

    let huge = json!({"type": "offer", "to": alice.id, "sdp": "x".repeat(5000)});
    carol.client.send(huge).await;
    assert_eq!(carol.client.expect_close().await, 1009);

    // Just under the limit is fine, and the room carries on.
    let fits = json!({"type": "offer", "to": alice.id, "sdp": "y".repeat(3900)});
    bob.client.send(fits).await;
    loop {
        let message = alice.client.recv_json().await;
        if message["type"] == "offer" {
            assert_eq!(message["from"], bob.id.as_str());
            break;
        }
        assert_eq!(message["type"], "peer-left");
    }
}

#[tokio::test]
async fn a_slow_receiver_is_cut_off_while_the_room_keeps_relaying() {
    let server = Server::start(&[
        "--outbound-queue",
        "16",
        "--outbound-queue-bytes",
        "256KiB",
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
    ]);
    let mut alice = server.peer("slow").await;
    let mut bob = server.peer("slow").await;
    let mut sender = server.peer("slow").await;
    let mut stalled = server.peer("slow").await;
    for peer in [&mut alice, &mut bob, &mut sender] {
        peer.client.sync().await;
    }

    // The stalled peer stops reading. The sender sends it far more than socket buffers and
    // its queue can hold, until the server gives up on it. (The sender does not read its own
    // replies either, so it may be cut off too; Alice and Bob are the room that must go on.)
    let payload = "z".repeat(16 * 1024);
    let mut sent = 0;
    let mut departed = false;
    while sent < 4000 && !departed {
        let frame = json!({"type": "offer", "to": stalled.id, "sdp": payload}).to_string();
        if sender.client.ws.send(Message::text(frame)).await.is_err() {
            break;
        }
        sent += 1;
        if sent % 50 == 0 {
            for message in bob.client.sync().await {
                departed |=
                    message["type"] == "peer-left" && message["peerId"] == stalled.id.as_str();
            }
        }
    }
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !departed && tokio::time::Instant::now() < deadline {
        let message = bob.client.recv_json().await;
        departed |= message["type"] == "peer-left" && message["peerId"] == stalled.id.as_str();
    }
    assert!(
        departed,
        "the stalled receiver was disconnected after {sent} messages"
    );

    // Everyone else is unaffected: relays keep flowing both ways.
    for round in 0..20 {
        alice
            .client
            .send(json!({"type": "ice-candidate", "to": bob.id, "candidate": {"round": round}}))
            .await;
        loop {
            let message = bob.client.recv_json().await;
            if message["type"] == "ice-candidate" {
                assert_eq!(message["candidate"]["round"], round);
                break;
            }
        }
        bob.client
            .send(json!({"type": "ice-candidate", "to": alice.id, "candidate": {"round": round}}))
            .await;
        loop {
            let message = alice.client.recv_json().await;
            if message["type"] == "ice-candidate" {
                assert_eq!(message["from"], bob.id.as_str());
                break;
            }
        }
    }
    let metrics = server.metrics().await;
    assert!(metric(&metrics, r#"rdv_closes_total{code="1013"}"#) >= 1.0);
    // The stalled client, reading at last, finds its backlog and then the end.
    match stalled.client.expect_close().await {
        1013 | 1006 => {}
        other => panic!("unexpected close code {other}"),
    }
}

#[tokio::test]
async fn the_connection_cap_closes_extra_connections_with_1013() {
    let server = Server::start(&["--max-connections", "2"]);
    let _first = server.peer("cap").await;
    let _second = Client::connect(&server.url("cap")).await;
    let mut third = Client::connect(&server.url("cap")).await;
    assert_eq!(third.expect_close().await, 1013);
    drop(_second);
    // The slot comes back once a connection ends.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let mut retry = Client::connect(&server.url("cap")).await;
        retry.send(json!({"type": "ping"})).await;
        match retry.recv().await {
            Received::Text(_) => break,
            Received::Close(1013, _) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn shutdown_closes_everyone_with_1001_and_exits() {
    let mut server = Server::start(&["--drain-timeout", "5s"]);
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(server.peer("bye").await);
    }
    let mut unregistered = Client::connect(&server.url("bye")).await;
    unregistered.sync().await;
    server.terminate();
    for peer in &mut peers {
        assert_eq!(peer.client.expect_close().await, 1001);
    }
    assert_eq!(unregistered.expect_close().await, 1001);
    let status = server
        .wait_exit(common::WAIT)
        .expect("the server exited within the drain timeout");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn messages_are_never_misrouted_among_many_pairs() {
    let server = Server::start(&[]);
    let mut pairs = Vec::new();
    for n in 0..10 {
        let room = format!("pairs-{}", n % 3); // several pairs share each room
        let a = server.peer(&room).await;
        let b = server.peer(&room).await;
        pairs.push((a, b));
    }
    for (a, b) in &mut pairs {
        a.client
            .send(json!({"type": "offer", "to": b.id, "sdp": {"for": b.id}}))
            .await;
    }
    for (a, b) in &mut pairs {
        loop {
            let message = b.client.recv_json().await;
            if message["type"] == "offer" {
                assert_eq!(message["sdp"]["for"], b.id.as_str());
                assert_eq!(message["from"], a.id.as_str());
                break;
            }
        }
    }
    let _ = TestKey::new();
}

#[tokio::test]
async fn while_draining_healthz_is_503_and_new_peers_are_refused() {
    let mut server = Server::start(&["--drain-timeout", "5s"]);
    // A client that never reads holds the drain open for the close grace period.
    let stubborn = server.peer("drain").await;
    server.terminate();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, body) = server.get("/healthz").await;
        if status == 503 {
            assert!(body.contains("draining"), "{body}");
            break;
        }
        // 0: the connection was reset in the instant the drain began.
        assert!(status == 200 || status == 0, "{status}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz never said 503"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = tokio_tungstenite::connect_async(server.url("drain")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    drop(stubborn);
    assert!(server.wait_exit(common::WAIT).expect("exited").success());
}

/// `serve` raises its soft open-file limit to the hard one, and warns at start when even
/// that cannot hold --max-connections.
#[test]
fn a_low_open_file_limit_is_warned_about_at_start() {
    use std::io::{BufRead as _, BufReader};
    let start = |max_connections: &str| {
        let script = format!(
            "ulimit -n 256 && exec {} serve --listen 127.0.0.1:0 --max-connections {max_connections} \
             --max-unregistered 50",
            common::rdv_binary()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("RDV_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening "), "{line:?}");
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = start("10000");
    assert!(
        stderr.contains("open-file limit (256) is below --max-connections (10000)"),
        "{stderr}"
    );
    let stderr = start("100");
    assert!(!stderr.contains("open-file limit"), "{stderr}");
}

/// A connection being closed still holds its socket, so it still holds its place under
/// `--max-connections` until the socket is gone: the caps bound file descriptors.
#[tokio::test]
async fn a_connection_being_closed_holds_its_place_until_its_socket_is_gone() {
    let server = Server::start(&["--max-connections", "2", "--max-message-size", "1KiB"]);
    let _first = server.peer("closing").await;
    // Closed by the server (1009), then silent: it neither answers the close nor hangs up,
    // so the server keeps its socket for the goodbye's grace.
    let mut silent = common::raw::RawClient::connect(&server, "closing").await;
    silent.send_text(&"x".repeat(2048)).await;
    assert_eq!(silent.close_frame().await.0, 1009);
    let mut third = Client::connect(&server.url("closing")).await;
    assert_eq!(
        third.expect_close().await,
        1013,
        "the closing connection's place is still taken"
    );
    drop(silent);
    // Once its socket is gone, the place comes back.
    common::eventually("the place comes back", || async {
        let mut retry = Client::connect(&server.url("closing")).await;
        retry.send(json!({"type": "ping"})).await;
        match retry.recv().await {
            Received::Text(_) => Some(()),
            Received::Close(1013, _) => None,
            other => panic!("expected a pong, got {other:?}"),
        }
    })
    .await;
}
