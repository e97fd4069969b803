//! PROTOCOL §2–§5 against a real `rdv serve`: registration, presence, relay, every error code.

mod common;

use std::collections::HashSet;

use common::{Client, Received, Server, TestKey};
use futures_util::SinkExt;
use serde_json::{Value, json};

/// The key a room sees: the essential members in canonical order (PROTOCOL §3, §4),
/// computed here without rdv's code.
fn announced(key: &TestKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": key.public_jwk["x"]})
}

#[tokio::test]
async fn register_welcomes_with_the_peer_id_and_announces_the_canonical_key() {
    let server = Server::start(&[]);
    let alice = server.peer("lobby").await;
    assert_eq!(alice.welcome["peers"], json!([]));

    let mut bob = server.peer("lobby").await;
    assert_eq!(
        bob.welcome["peers"],
        json!([{"id": alice.id, "publicKey": announced(&alice.key)}]),
        "WebCrypto's ext and key_ops stay behind"
    );
    let mut alice = alice;
    let joined = alice.client.expect("peer-joined").await;
    assert_eq!(
        joined,
        json!({"type": "peer-joined", "peerId": bob.id, "publicKey": announced(&bob.key)})
    );
    assert!(bob.client.sync().await.is_empty());
}

#[tokio::test]
async fn the_public_key_is_announced_canonically_with_short_kid_alg_and_use() {
    let server = Server::start(&[]);
    let mut alice = server.peer("bytes").await;
    let key = TestKey::new();
    let x = key.public_jwk["x"].as_str().unwrap();
    // Odd spacing and member order, extras to keep and extras to drop.
    let raw_key = format!(
        r#"{{ "x" : "{x}", "crv":"Ed25519","use":"sig","kty" :"OKP","alg":"EdDSA",
            "kid":"alice","key_ops":["verify"],"x5c":["{}"]}}"#,
        "A".repeat(4000)
    );
    let mut bob = Client::connect(&server.url("bytes")).await;
    bob.send_text(&format!(r#"{{"type":"register","publicKey":{raw_key}}}"#))
        .await;
    bob.expect("welcome").await;
    let Received::Text(joined) = alice.client.recv().await else {
        panic!("expected peer-joined")
    };
    assert_eq!(
        joined,
        format!(
            r#"{{"type":"peer-joined","peerId":"{}","publicKey":{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"alice","alg":"EdDSA","use":"sig"}}}}"#,
            key.peer_id()
        )
    );
}

#[tokio::test]
async fn relay_rewrites_to_into_from_and_delivers_every_other_member_in_order() {
    let server = Server::start(&[]);
    let mut alice = server.peer("relay").await;
    let mut bob = server.peer("relay").await;
    alice.client.expect("peer-joined").await;

    for (kind, body) in [
        (
            "offer",
            r#""sdp":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}"#,
        ),
        ("answer", r#""sdp":{"type":"answer","sdp":"v=0\r\n"}"#),
        (
            "ice-candidate",
            r#""candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
        ),
    ] {
        alice
            .client
            .send_text(&format!(
                r#"{{"from":"forged","type":"{kind}",{body},"to":"{}","x-app":{{"n":[1,2.5,"é"]}}}}"#,
                bob.id
            ))
            .await;
        let Received::Text(text) = bob.client.recv().await else {
            panic!("expected a relayed {kind}")
        };
        assert_eq!(
            text,
            format!(
                r#"{{"type":"{kind}","from":"{}",{body},"x-app":{{"n":[1,2.5,"é"]}}}}"#,
                alice.id
            )
        );
    }
    // And back the other way.
    bob.client
        .send(json!({"type": "answer", "to": alice.id, "sdp": {"type": "answer"}}))
        .await;
    let answer = alice.client.expect("answer").await;
    assert_eq!(answer["from"], bob.id.as_str());
}

#[tokio::test]
async fn messages_from_one_sender_arrive_in_order() {
    // Limits out of the way: this is about order, not about slow receivers.
    let server = Server::start(&[
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
        "--outbound-queue",
        "100000",
        "--outbound-queue-bytes",
        "64MiB",
    ]);
    let mut alice = server.peer("order").await;
    let mut bob = server.peer("order").await;
    alice.client.expect("peer-joined").await;
    const COUNT: u64 = 2000;
    for seq in 0..COUNT {
        alice
            .client
            .send(json!({"type": "ice-candidate", "to": bob.id, "candidate": {"seq": seq}}))
            .await;
    }
    for seq in 0..COUNT {
        let message = bob.client.expect("ice-candidate").await;
        assert_eq!(message["candidate"]["seq"], seq);
    }
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = Server::start(&[]);
    let mut red = server.peer("red").await;
    let blue = server.peer("blue").await;
    // Relaying across rooms is refused, and presence does not leak.
    red.client
        .send(json!({"type": "offer", "to": blue.id, "sdp": {}}))
        .await;
    red.client.expect_error("unknown-peer").await;
    assert!(
        red.client.sync().await.is_empty(),
        "no peer-joined from another room"
    );
    // The same key may be in two rooms at once: duplicates are per room.
    let mut again = Client::connect(&server.url("red")).await;
    again.register(&blue.key).await;
    let joined = red.client.expect("peer-joined").await;
    assert_eq!(joined["peerId"], blue.id.as_str());
}

#[tokio::test]
async fn fifty_concurrent_joiners_each_learn_every_other_exactly_once() {
    const PEERS: usize = 50;
    let server = std::sync::Arc::new(Server::start(&[]));
    let joins = (0..PEERS).map(|_| {
        let server = server.clone();
        tokio::spawn(async move { server.peer("crowd").await })
    });
    let mut peers = Vec::new();
    for join in joins {
        peers.push(join.await.unwrap());
    }
    let all: HashSet<String> = peers.iter().map(|p| p.id.clone()).collect();
    assert_eq!(all.len(), PEERS);
    for peer in &mut peers {
        let mut seen: Vec<String> = peer.welcome["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        // Every join finished before this ping, so every peer-joined is already queued.
        for message in peer.client.sync().await {
            assert_eq!(message["type"], "peer-joined", "{message}");
            seen.push(message["peerId"].as_str().unwrap().to_owned());
        }
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), PEERS - 1, "each other peer exactly once");
        assert_eq!(unique.len(), PEERS - 1);
        assert!(!unique.contains(&peer.id), "a peer never hears of itself");
        assert!(unique.is_subset(&all));
    }
}

/// Sends `frame` on a fresh connection and expects error `code`, with the connection still
/// usable afterwards (every §5 row that does not close).
async fn expect_error_then_usable(client: &mut Client, frame: &str, code: &str) {
    client.send_text(frame).await;
    client.expect_error(code).await;
    assert!(
        client.sync().await.is_empty(),
        "connection still usable after {code}"
    );
}

#[tokio::test]
async fn malformed_frames_get_errors_and_leave_the_connection_open() {
    let server = Server::start(&[]);
    let mut client = Client::connect(&server.url("errors")).await;
    expect_error_then_usable(&mut client, "not json", "invalid-json").await;
    expect_error_then_usable(&mut client, "[1,2]", "invalid-json").await;
    expect_error_then_usable(&mut client, r#"{"no":"type"}"#, "invalid-message").await;
    expect_error_then_usable(&mut client, r#"{"type":42}"#, "invalid-message").await;
    expect_error_then_usable(&mut client, r#"{"type":"register"}"#, "invalid-message").await;
    expect_error_then_usable(
        &mut client,
        r#"{"type":"register","publicKey":"abc"}"#,
        "invalid-message",
    )
    .await;
    expect_error_then_usable(&mut client, r#"{"type":"offer","to":7}"#, "invalid-message").await;
    expect_error_then_usable(&mut client, r#"{"type":"subscribe"}"#, "unknown-type").await;
    expect_error_then_usable(
        &mut client,
        r#"{"type":"offer","to":"x","sdp":{}}"#,
        "not-registered",
    )
    .await;

    client.send_binary(vec![1, 2, 3]).await;
    client.expect_error("binary-unsupported").await;
    assert!(client.sync().await.is_empty());

    // After all that, registering still works.
    client.register(&TestKey::new()).await;
}

#[tokio::test]
async fn bad_keys_are_refused_and_the_peer_may_retry() {
    let server = Server::start(&[]);
    let mut observer = server.peer("keys").await;
    let mut client = Client::connect(&server.url("keys")).await;
    let good = TestKey::new();
    let mut wrong_length = good.public_jwk.clone();
    wrong_length["x"] = json!("AAAA");
    let mut private = good.public_jwk.clone();
    private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": good.public_jwk["x"]});
    for (key, code) in [
        (wrong_length, "invalid-key"),
        (json!({"kty": "EC", "crv": "P-256"}), "invalid-key"),
        (json!({"kty": "oct", "k": "c2VjcmV0"}), "private-key"),
        (json!({"kty": "foo"}), "invalid-key"),
        (x25519, "invalid-key"),
        (private, "private-key"),
    ] {
        let frame = json!({"type": "register", "publicKey": key}).to_string();
        expect_error_then_usable(&mut client, &frame, code).await;
    }
    // Nothing of the refused keys reached the room.
    assert!(observer.client.sync().await.is_empty());
    client.register(&good).await;
    observer.client.expect("peer-joined").await;
}

#[tokio::test]
async fn registration_conflicts() {
    let server = Server::start(&["--max-peers-per-room", "2"]);
    let mut alice = server.peer("small").await;
    expect_error_then_usable(
        &mut alice.client,
        &json!({"type": "register", "publicKey": TestKey::new().public_jwk}).to_string(),
        "already-registered",
    )
    .await;

    let mut twin = Client::connect(&server.url("small")).await;
    let frame = json!({"type": "register", "publicKey": alice.key.public_jwk}).to_string();
    expect_error_then_usable(&mut twin, &frame, "duplicate-peer").await;

    let _bob = server.peer("small").await;
    let mut third = Client::connect(&server.url("small")).await;
    let frame = json!({"type": "register", "publicKey": TestKey::new().public_jwk}).to_string();
    expect_error_then_usable(&mut third, &frame, "room-full").await;
    // A full room is per room.
    third.close().await;
    server.peer("other").await;
}

#[tokio::test]
async fn unknown_and_self_targets_are_refused() {
    let server = Server::start(&[]);
    let mut alice = server.peer("targets").await;
    let nobody = "0".repeat(64);
    for to in [nobody.as_str(), "not-a-peer-id", alice.id.as_str()] {
        let frame = json!({"type": "offer", "to": to, "sdp": {}}).to_string();
        expect_error_then_usable(&mut alice.client, &frame, "unknown-peer").await;
    }
}

#[tokio::test]
async fn a_flooding_sender_is_rate_limited_then_closed_and_others_are_unaffected() {
    let server = Server::start(&["--rate-limit", "20", "--rate-burst", "10"]);
    let mut flooder = server.peer("flood").await;
    let mut alice = server.peer("flood").await;
    let mut bob = server.peer("flood").await;
    flooder.client.sync().await;
    alice.client.sync().await;

    // The flood: far more than the burst, as fast as the socket takes it.
    for seq in 0..500 {
        let frame = json!({"type": "offer", "to": bob.id, "sdp": {"seq": seq}}).to_string();
        if flooder.client.ws.send(frame.into()).await.is_err() {
            break;
        }
    }
    let mut rate_limited = 0;
    let code = loop {
        match flooder.client.recv().await {
            Received::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["code"] == "rate-limited" {
                    rate_limited += 1;
                }
            }
            Received::Close(code, _) => break code,
            other => panic!("expected errors then a close, got {other:?}"),
        }
    };
    assert!(rate_limited > 0, "the flooder was told it was rate limited");
    assert_eq!(code, 1008, "a persistent flood is closed as abuse");

    // Bob got at most the burst plus what the rate refilled, then the departure; Alice's
    // messages to him still go through.
    alice
        .client
        .send(json!({"type": "offer", "to": bob.id, "sdp": {"from": "alice"}}))
        .await;
    let mut from_flooder = 0;
    loop {
        let message = bob.client.recv_json().await;
        match message["type"].as_str().unwrap() {
            "offer" if message["from"] == flooder.id.as_str() => from_flooder += 1,
            "offer" => {
                assert_eq!(message["sdp"]["from"], "alice");
                break;
            }
            "peer-left" => assert_eq!(message["peerId"], flooder.id.as_str()),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        from_flooder < 500,
        "dropped messages were not relayed ({from_flooder})"
    );
}

#[tokio::test]
async fn peers_outside_the_allow_list_are_forbidden_and_closed() {
    let allowed = TestKey::new();
    let dir = std::env::temp_dir().join(format!("rdv-allow-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("allow.txt");
    std::fs::write(&list, format!("# only one\n{}\n", allowed.peer_id())).unwrap();
    let server = Server::start(&["--allow-list", list.to_str().unwrap()]);

    let mut stranger = Client::connect(&server.url("vip")).await;
    stranger
        .send(json!({"type": "register", "publicKey": TestKey::new().public_jwk}))
        .await;
    stranger.expect_error("forbidden").await;
    assert_eq!(stranger.expect_close().await, 1008);

    let mut friend = Client::connect(&server.url("vip")).await;
    friend.register(&allowed).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// RFC 6455 §5.5.1: a close frame from the client is answered with one, before the server
/// hangs up; otherwise the client sees 1006 and `wasClean: false` for every ordinary leave.
#[tokio::test]
async fn a_clients_close_frame_is_answered_with_one_registered_or_not() {
    let server = Server::start(&[]);
    let mut observer = server.peer("closing").await;
    for register in [false, true] {
        let mut client = common::raw::RawClient::connect(&server, "closing").await;
        let key = TestKey::new();
        if register {
            client
                .send_text(&json!({"type": "register", "publicKey": key.public_jwk}).to_string())
                .await;
            let (welcome, _) = client.message().await;
            assert_eq!(welcome["type"], "welcome");
            observer.client.expect("peer-joined").await;
        }
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        client
            .send_raw(&common::raw::masked_frame(true, 0x8, &close))
            .await
            .unwrap();
        let (code, _) = client.close_frame().await;
        assert_eq!(code, 1000, "the reply echoes the client's code");
        // And then the server hangs up: nothing more follows the close frame.
        let mut rest = [0u8; 64];
        let n = tokio::time::timeout(
            common::WAIT,
            tokio::io::AsyncReadExt::read(&mut client.tcp, &mut rest),
        )
        .await
        .expect("the server hangs up in time")
        .unwrap_or(0);
        assert_eq!(n, 0, "nothing after the close frame");
        if register {
            let left = observer.client.expect("peer-left").await;
            assert_eq!(left["peerId"], key.peer_id());
        }
    }
}
