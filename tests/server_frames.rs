//! The WebSocket layer seen from raw TCP, where a client library would hide it: the
//! handshake's answers, and how large messages are framed.

mod common;

use common::raw::RawClient;
use common::{Server, TestKey};
use serde_json::json;

/// The server's write buffer, and so its largest frame (`rdv::server::WRITE_BUFFER`).
const WRITE_BUFFER: usize = 8 * 1024;

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
async fn a_large_relayed_message_arrives_in_fragments_that_reassemble_exactly() {
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

    // Multi-byte characters all through, so fragment edges fall inside some of them.
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

    assert!(frames.len() > 1, "{} bytes went as one frame", sdp.len());
    assert_eq!(frames[0].opcode, 0x1, "the first fragment is a text frame");
    for (n, frame) in frames.iter().enumerate() {
        assert!(frame.payload.len() <= WRITE_BUFFER);
        assert_eq!(frame.fin, n == frames.len() - 1);
        if n > 0 {
            assert_eq!(frame.opcode, 0x0, "later fragments are continuations");
        }
        assert!(
            std::str::from_utf8(&frame.payload).is_ok(),
            "fragment {n} splits a character"
        );
    }
}

#[tokio::test]
async fn a_welcome_to_a_big_room_is_fragmented_and_lists_everyone() {
    let server = Server::start(&[]);
    let mut members = Vec::new();
    // About 150 bytes per entry: enough peers for a welcome over the write buffer.
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
    assert!(frames.len() > 1);
    assert!(frames.iter().all(|f| f.payload.len() <= WRITE_BUFFER));
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
