//! PROTOCOL §14, resume: a peer whose connection drops without a goodbye keeps its place for
//! `--resume-grace`, unseen by the room, and gets what was sent to it meanwhile, in order.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server, TestKey};
use rdv::identity::{KeySpec, PrivateKey, base64url};
use serde_json::{Value, json};

fn register(key: &TestKey) -> String {
    rdv::protocol::register(&key.public_jwk, None, None)
}

fn offer(to: &str, n: usize) -> Value {
    json!({"type": "offer", "to": to, "sdp": {"type": "offer", "sdp": format!("v=0 {n}")}})
}

fn candidate(to: &str, n: usize) -> Value {
    json!({"type": "ice-candidate", "to": to, "candidate": {"candidate": format!("c{n}")}})
}

/// Registers `key` again in `room`; returns the client and its welcome.
async fn come_back(server: &Server, room: &str, key: &TestKey) -> (Client, Value) {
    let mut client = Client::connect(&server.url(room)).await;
    client.send_text(&register(key)).await;
    let welcome = client.expect("welcome").await;
    (client, welcome)
}

#[tokio::test]
async fn a_dropped_peer_resumes_unseen_and_gets_what_was_sent_meanwhile() {
    let server = Server::start(&["--resume-grace", "10s"]);
    for reset in [true, false] {
        let room = if reset { "reset" } else { "fin" };
        let mut b = server.peer(room).await;
        let a_key = TestKey::new();
        let mut a = Client::connect(&server.url(room)).await;
        a.send_text(&register(&a_key)).await;
        a.expect("welcome").await;
        b.client.expect("peer-joined").await;
        a.drop_abruptly(reset);
        // Wait until the server has noticed (its metric), then signal into the gap.
        server
            .wait_for_metric("rdv_peers_in_grace", |n| n == 1.0)
            .await;
        let a_id = a_key.peer_id();
        b.client.send(offer(&a_id, 1)).await;
        b.client.send(candidate(&a_id, 2)).await;
        b.client.send(candidate(&a_id, 3)).await;
        assert_eq!(
            b.client.sync().await,
            Vec::<Value>::new(),
            "no error, no presence"
        );

        let (mut a, welcome) = come_back(&server, room, &a_key).await;
        assert_eq!(welcome["resumed"], true, "{welcome}");
        assert_eq!(welcome["peers"][0]["id"], b.id.as_str());
        let got: Vec<Value> = a.sync().await;
        let kinds: Vec<(&str, &str)> = got
            .iter()
            .map(|m| {
                (
                    m["type"].as_str().unwrap(),
                    m["from"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("offer", b.id.as_str()),
                ("ice-candidate", b.id.as_str()),
                ("ice-candidate", b.id.as_str())
            ]
        );
        assert_eq!(got[0]["sdp"]["sdp"], "v=0 1");
        assert_eq!(got[2]["candidate"]["candidate"], "c3");
        // The room never heard of it, and the resumed peer is reachable as before.
        b.client.send(offer(&a_id, 4)).await;
        assert_eq!(a.expect("offer").await["sdp"]["sdp"], "v=0 4");
        assert_eq!(b.client.sync().await, Vec::<Value>::new());
        server
            .wait_for_metric("rdv_peers_in_grace", |n| n == 0.0)
            .await;
        // Goodbyes: nobody is held after this round.
        a.close().await;
        b.client.close().await;
    }
    let metrics = server.metrics().await;
    assert_eq!(common::metric(&metrics, "rdv_resumes_total"), 2.0);
    assert_eq!(common::metric(&metrics, "rdv_grace_expiries_total"), 0.0);
}

#[tokio::test]
async fn without_a_resume_the_room_hears_peer_left_once_after_the_grace() {
    let server = Server::start(&["--resume-grace", "1s"]);
    let mut b = server.peer("r").await;
    let a_key = TestKey::new();
    let mut a = Client::connect(&server.url("r")).await;
    a.send_text(&register(&a_key)).await;
    a.expect("welcome").await;
    b.client.expect("peer-joined").await;
    let dropped = Instant::now();
    a.drop_abruptly(true);
    let left = b.client.expect("peer-left").await;
    assert_eq!(left["peerId"], a_key.peer_id().as_str());
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "peer-left came after {waited:?}"
    );
    assert_eq!(b.client.sync().await, Vec::<Value>::new(), "exactly once");
    // The ID is free again: a register is a fresh join, seen by the room.
    let (_a, welcome) = come_back(&server, "r", &a_key).await;
    assert!(welcome.get("resumed").is_none(), "{welcome}");
    b.client.expect("peer-joined").await;
    let metrics = server.metrics().await;
    assert_eq!(common::metric(&metrics, "rdv_grace_expiries_total"), 1.0);
    assert_eq!(common::metric(&metrics, "rdv_resumes_total"), 0.0);
}

#[tokio::test]
async fn a_goodbye_leaves_at_once_and_grace_zero_turns_resume_off() {
    for (args, clean) in [
        (&["--resume-grace", "30s"][..], true),
        (&["--resume-grace", "0s"][..], false),
    ] {
        let server = Server::start(args);
        let mut b = server.peer("r").await;
        let mut a = server.peer("r").await;
        b.client.expect("peer-joined").await;
        let started = Instant::now();
        if clean {
            a.client.close().await;
        } else {
            a.client.drop_abruptly(true);
        }
        let left = b.client.expect("peer-left").await;
        assert_eq!(left["peerId"], a.id.as_str());
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
        let _ = &mut a.welcome;
    }
}

#[tokio::test]
async fn a_dead_connection_found_by_the_keepalive_is_held_too() {
    // Pings every 200 ms: a client that reads nothing answers none and is given up after
    // two intervals, which is a lost network, not a goodbye.
    let server = Server::start(&["--resume-grace", "10s", "--ping-interval", "200ms"]);
    let a_key = TestKey::new();
    let mut a = Client::connect(&server.url("r")).await;
    a.send_text(&register(&a_key)).await;
    a.expect("welcome").await;
    server
        .wait_for_metric("rdv_peers_in_grace", |n| n == 1.0)
        .await;
    // A newcomer meanwhile finds A in the room and signals to it.
    let mut b = server.peer("r").await;
    assert_eq!(b.welcome["peers"][0]["id"], a_key.peer_id().as_str());
    b.client.send(offer(&a_key.peer_id(), 7)).await;
    let (mut back, welcome) = come_back(&server, "r", &a_key).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(back.expect("offer").await["sdp"]["sdp"], "v=0 7");
    assert_eq!(b.client.sync().await, Vec::<Value>::new());
    drop(a);
}

fn proof(key: &PrivateKey, nonce: &str) -> Value {
    let alg = key.proof_alg();
    let signature = key.sign_proof(alg, nonce).unwrap();
    json!({"alg": alg.name(), "signature": base64url(&signature)})
}

/// Connects and registers `key`, with a proof when `prove`; returns the client and the reply.
async fn register_with(server: &Server, key: &PrivateKey, prove: bool) -> (Client, Value) {
    let mut client = Client::connect(&server.url("v")).await;
    let challenge = client.expect("challenge").await;
    let mut message = json!({"type": "register", "publicKey": key.public().to_public_json()});
    if prove {
        message["proof"] = proof(key, challenge["nonce"].as_str().unwrap());
    }
    client.send(message).await;
    let reply = client.recv_json().await;
    (client, reply)
}

#[tokio::test]
async fn a_verified_peer_is_resumed_only_by_a_proof() {
    let server = Server::start(&["--resume-grace", "10s", "--proof", "optional"]);
    let (mut b, _) = register_with(
        &server,
        &PrivateKey::generate(KeySpec::Ed25519).unwrap(),
        true,
    )
    .await;
    let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
    let (a, welcome) = register_with(&server, &key, true).await;
    assert_eq!(welcome["type"], "welcome");
    b.expect("peer-joined").await;
    a.drop_abruptly(true);
    server
        .wait_for_metric("rdv_peers_in_grace", |n| n == 1.0)
        .await;
    // Someone who has only seen the public key cannot take the place.
    let (mut claimant, refusal) = register_with(&server, &key, false).await;
    assert_eq!(refusal["code"], "duplicate-peer", "{refusal}");
    assert!(
        refusal["message"].as_str().unwrap().contains("proof"),
        "{refusal}"
    );
    assert_eq!(claimant.sync().await, Vec::<Value>::new());
    let (_a, welcome) = register_with(&server, &key, true).await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(b.sync().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_queue_that_overflows_during_the_grace_ends_it() {
    let server = Server::start(&["--resume-grace", "30s", "--outbound-queue", "4"]);
    let mut b = server.peer("q").await;
    let a_key = TestKey::new();
    let mut a = Client::connect(&server.url("q")).await;
    a.send_text(&register(&a_key)).await;
    a.expect("welcome").await;
    b.client.expect("peer-joined").await;
    a.drop_abruptly(true);
    server
        .wait_for_metric("rdv_peers_in_grace", |n| n == 1.0)
        .await;
    let started = Instant::now();
    for n in 0..6 {
        b.client.send(candidate(&a_key.peer_id(), n)).await;
    }
    // Past the queue's bound the place is given up at once, as for a slow receiver.
    let mut seen = Vec::new();
    loop {
        let message = b.client.recv_json().await;
        let kind = message["type"].as_str().unwrap().to_owned();
        seen.push(message);
        if kind == "peer-left" {
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{seen:?}");
    b.client.send(candidate(&a_key.peer_id(), 9)).await;
    b.client.expect_error("unknown-peer").await;
    let metrics = server.metrics().await;
    assert_eq!(common::metric(&metrics, "rdv_peers_in_grace"), 0.0);
}

/// `rdv peer --reconnect` comes back through a cut connection in its old place, says so, and
/// gets the offer sent to it meanwhile.
#[tokio::test]
async fn rdv_peer_reconnects_and_resumes() {
    let server = Server::start(&["--resume-grace", "20s"]);
    let proxy = common::CutProxy::start(server.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ws://{}", proxy.addr);
    let mut b = server.peer("cut").await;
    let mut peer = tokio::process::Command::new(common::rdv_binary())
        .args([
            "peer",
            &url,
            "cut",
            "--reconnect",
            "--until",
            ".sdp.sdp=v=0 9",
        ])
        .args(["--timeout", "20s"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let joined = b.client.expect("peer-joined").await;
    let a_id = joined["peerId"].as_str().unwrap().to_owned();
    // Cut only once the peer has read its welcome: before that it has not joined yet.
    let mut lines = tokio::io::BufReader::new(peer.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    tokio::time::timeout(common::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains(r#""type":"welcome""#) {
                return;
            }
        }
    })
    .await
    .expect("the first welcome");
    proxy.cut();
    server
        .wait_for_metric("rdv_peers_in_grace", |n| n == 1.0)
        .await;
    b.client.send(offer(&a_id, 9)).await;
    let output = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        let status = peer.wait().await.unwrap();
        let mut stderr = String::new();
        peer.stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        (status, stdout, stderr)
    })
    .await
    .expect("rdv peer finished");
    let (status, stdout, stderr) = output;
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert!(stderr.contains("resumed our place"), "{stderr}\n{stdout}");
    assert!(stdout.contains(r#""resumed":true"#), "{stdout}");
    assert!(stdout.contains("v=0 9"), "{stdout}");
    // b saw it go once: when it left for good at the end, not at the cut.
    let seen: Vec<String> = b
        .client
        .sync()
        .await
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["peer-left"]);
}
