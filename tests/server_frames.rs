//! The WebSocket layer seen from raw TCP, where a client library would hide it: the
//! handshake's answers, and how large messages are framed.

mod common;

use common::raw::RawClient;
use common::{Server, TestKey};
use serde_json::json;

#[tokio::test]
async fn a_frame_sent_along_with_the_upgrade_request_is_not_lost() {
    let server = Server::start(&[]);
    let key = TestKey::new();
    let register = json!({"type": "register", "publicKey": key.public_jwk}).to_string();
    let mut client = RawClient::connect_sending_early(&server, "early", Some(&register)).await;
    let (welcome, _) = client.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["peerId"], key.peer_id().as_str());
}

#[tokio::test]
async fn a_large_relayed_message_arrives_as_one_exact_frame() {
    let server = Server::start(&[]);
    let sender = server.peer("frames").await;
    let mut receiver = RawClient::connect(&server, "frames").await;
    let key = TestKey::new();
    receiver
        .send_text(&json!({"type": "register", "publicKey": key.public_jwk}).to_string())
        .await;
    let (welcome, frames) = receiver.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(frames.len(), 1, "a small message is one frame");

    // Multi-byte characters all through: the frame carries the sender's bytes unchanged.
    let sdp: String = "v=0 é😀 ".repeat(3000);
    let mut sender = sender;
    sender
        .client
        .send(json!({"type": "offer", "to": key.peer_id(), "sdp": sdp}))
        .await;
    let (offer, frames) = receiver.message().await;
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["from"], sender.id.as_str());
    assert_eq!(offer["sdp"].as_str(), Some(sdp.as_str()));

    // The server holds no write buffer sized for it, so it has no reason to split it.
    assert_eq!(
        frames.len(),
        1,
        "{} bytes went as {} frames",
        sdp.len(),
        frames.len()
    );
    assert!(frames[0].fin);
    assert_eq!(frames[0].opcode, 0x1, "a text frame");
}

#[tokio::test]
async fn a_welcome_to_a_big_room_lists_everyone_in_one_frame() {
    let server = Server::start(&[]);
    let mut members = Vec::new();
    // About 150 bytes per entry: a welcome over 8 KiB, once sent as fragments of that size.
    for _ in 0..80 {
        members.push(server.peer("crowd").await);
    }
    let mut late = RawClient::connect(&server, "crowd").await;
    let key = TestKey::new();
    late.send_text(&json!({"type": "register", "publicKey": key.public_jwk}).to_string())
        .await;
    let (welcome, frames) = late.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["peerId"], key.peer_id().as_str());
    let listed: Vec<&str> = welcome["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = members.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(listed, expected, "everyone, oldest first");
    assert_eq!(frames.len(), 1);
    assert!(frames[0].payload.len() > 8 * 1024);
}

#[tokio::test]
async fn handshake_mistakes_get_a_400_with_the_reason() {
    let server = Server::start(&[]);
    let base = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let without = |skip: &str| -> Vec<&str> {
        base.iter()
            .copied()
            .filter(|h| !h.starts_with(skip))
            .collect()
    };
    for (skip, reason) in [
        (
            "Connection",
            "the Connection header does not include 'upgrade'\n",
        ),
        (
            "Sec-WebSocket-Version",
            "only WebSocket version 13 is supported\n",
        ),
        (
            "Sec-WebSocket-Key",
            "the Sec-WebSocket-Key header is missing\n",
        ),
    ] {
        let (status, body) =
            common::http_get(server.addr, "/room/r/websocket", &without(skip)).await;
        assert_eq!((status, body.as_str()), (400, reason), "without {skip}");
    }
}
