//! PROTOCOL §1 and §7 over plain HTTP: paths, status codes, /healthz and /metrics.

mod common;

use common::{Client, Server, http_get, metric};
use serde_json::json;

#[tokio::test]
async fn room_paths_and_other_paths_get_the_documented_statuses() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/").await.0, 404);
    assert_eq!(server.get("/room/abc").await.0, 404);
    assert_eq!(server.get("/room/abc/websocket/extra").await.0, 404);

    let (status, body) = server.get("/room//websocket").await;
    assert_eq!((status, body.as_str()), (400, "the room name is empty\n"));
    let long = "r".repeat(129);
    let (status, body) = server.get(&format!("/room/{long}/websocket")).await;
    assert_eq!(status, 400);
    assert!(body.contains("129 bytes"), "{body}");
    assert_eq!(server.get("/room/a/b/websocket").await.0, 400);
    assert_eq!(server.get("/room/%FF/websocket").await.0, 400);

    // A valid room without an upgrade is 426.
    assert_eq!(server.get("/room/lobby/websocket").await.0, 426);
    assert_eq!(server.get("/room/caf%C3%A9/websocket").await.0, 426);
    assert_eq!(
        server
            .get(&format!("/room/{}/websocket", "r".repeat(128)))
            .await
            .0,
        426
    );
}

#[tokio::test]
async fn percent_encoded_room_names_are_one_room() {
    let server = Server::start(&[]);
    let mut first = Client::connect(&server.url_with_segment("caf%C3%A9")).await;
    let first_key = common::TestKey::new();
    first.register(&first_key).await;
    let mut second = Client::connect(&server.url_with_segment("caf%c3%a9")).await;
    let welcome = second.register(&common::TestKey::new()).await;
    assert_eq!(welcome["peers"][0]["id"], first_key.peer_id());
    // And the name a client encodes itself is the same room.
    let third = server.peer("café").await;
    assert_eq!(third.welcome["peers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn healthz_reports_ok() {
    let server = Server::start(&[]);
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn metrics_count_what_happens_and_never_name_rooms_or_peers() {
    let server = Server::start(&[]);
    let before = server.metrics().await;
    assert_eq!(metric(&before, "rdv_peers"), 0.0);
    assert_eq!(
        metric(&before, r#"rdv_messages_relayed_total{type="offer"}"#),
        0.0
    );

    let mut alice = server.peer("secret-room-name").await;
    let mut bob = server.peer("secret-room-name").await;
    alice.client.expect("peer-joined").await;
    for _ in 0..3 {
        alice
            .client
            .send(json!({"type": "offer", "to": bob.id, "sdp": {}}))
            .await;
        bob.client.expect("offer").await;
    }
    bob.client
        .send(json!({"type": "ice-candidate", "to": alice.id, "candidate": {}}))
        .await;
    alice.client.expect("ice-candidate").await;
    bob.client.send_text(r#"{"type":"nope"}"#).await;
    bob.client.expect_error("unknown-type").await;

    let during = server.metrics().await;
    assert_eq!(metric(&during, "rdv_peers"), 2.0);
    assert_eq!(metric(&during, "rdv_rooms"), 1.0);
    assert_eq!(metric(&during, "rdv_connections"), 2.0);
    assert_eq!(
        metric(&during, r#"rdv_messages_relayed_total{type="offer"}"#),
        3.0
    );
    assert_eq!(
        metric(
            &during,
            r#"rdv_messages_relayed_total{type="ice-candidate"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&during, r#"rdv_messages_relayed_total{type="answer"}"#),
        0.0
    );
    assert_eq!(
        metric(&during, r#"rdv_errors_total{code="unknown-type"}"#),
        1.0
    );
    assert!(metric(&during, "rdv_received_bytes_total") > 0.0);
    assert!(metric(&during, "rdv_sent_bytes_total") > 0.0);
    assert!(!during.contains("secret-room-name"));
    assert!(!during.contains(&alice.id) && !during.contains(&bob.id));

    alice.client.close().await;
    bob.client.expect("peer-left").await;
    bob.client.close().await;
    // Departures are processed asynchronously; poll (bounded) until the gauges settle.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let after = server.metrics().await;
        if metric(&after, "rdv_connections") == 0.0 {
            assert_eq!(metric(&after, "rdv_peers"), 0.0);
            assert_eq!(metric(&after, "rdv_rooms"), 0.0);
            assert_eq!(metric(&after, "rdv_connections_opened_total"), 2.0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauges settle:\n{after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn settings_come_from_the_environment_too() {
    let server = Server::start_with_env(&[], &[("RDV_MAX_PEERS_PER_ROOM", "1")]);
    let _only = server.peer("env").await;
    let mut second = Client::connect(&server.url("env")).await;
    second
        .send(json!({"type": "register", "publicKey": common::TestKey::new().public_jwk}))
        .await;
    second.expect_error("room-full").await;
    // A raw upgrade request with the wrong version is refused by the WebSocket layer.
    let (status, _) = http_get(
        server.addr,
        "/room/env/websocket",
        &[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 8",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
    )
    .await;
    assert_eq!(status, 400);
}

/// Every counter is there from the start at zero, labelled series included, so rate() and
/// alerts work before the first event.
#[tokio::test]
async fn metrics_show_every_series_from_the_start() {
    let server = Server::start(&[]);
    let metrics = server.metrics().await;
    for code in [1000, 1001, 1008, 1009, 1011, 1013] {
        assert_eq!(
            metric(&metrics, &format!(r#"rdv_closes_total{{code="{code}"}}"#)),
            0.0
        );
    }
    for reason in ["capacity", "draining"] {
        assert_eq!(
            metric(
                &metrics,
                &format!(r#"rdv_upgrades_rejected_total{{reason="{reason}"}}"#)
            ),
            0.0
        );
    }
    for code in ["invalid-json", "unknown-peer", "rate-limited", "forbidden"] {
        assert_eq!(
            metric(&metrics, &format!(r#"rdv_errors_total{{code="{code}"}}"#)),
            0.0
        );
    }
    assert_eq!(
        metric(&metrics, r#"rdv_messages_relayed_total{type="offer"}"#),
        0.0
    );
}

/// Histograms: how long connections last, and how long a relay spends inside the server.
#[tokio::test]
async fn metrics_time_relays_and_connections() {
    let server = Server::start(&[]);
    let mut alice = server.peer("timed").await;
    let mut bob = server.peer("timed").await;
    alice.client.expect("peer-joined").await;
    for n in 0..3 {
        alice
            .client
            .send(json!({"type": "offer", "to": bob.id, "sdp": {"n": n}}))
            .await;
        bob.client.expect("offer").await;
    }
    bob.client.close().await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let metrics = server.metrics().await;
        let relays = metric(&metrics, "rdv_relay_time_seconds_count");
        let closed = metric(&metrics, "rdv_connection_duration_seconds_count");
        // One observation per written batch: each offer here was awaited, so each is a batch.
        if relays >= 3.0 && closed >= 1.0 {
            assert!(metric(&metrics, r#"rdv_relay_time_seconds_bucket{le="1.0"}"#) >= 3.0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relays {relays}, closed {closed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
