//! PROTOCOL §9, proof of possession, against a real `rdv serve`.

mod common;

use common::{Client, Received, Server};
use rdv::identity::{EcCurve, KeySpec, PrivateKey, ProofAlg, base64url};
use serde_json::{Value, json};

/// The challenge a proof-mode server sends first thing.
async fn challenge(client: &mut Client) -> String {
    let message = client.expect("challenge").await;
    let nonce = message["nonce"].as_str().unwrap().to_owned();
    assert_eq!(nonce.len(), 43, "32 random bytes in base64url: {nonce}");
    nonce
}

fn register(key: &PrivateKey, proof: Option<Value>) -> Value {
    let mut message = json!({"type": "register", "publicKey": key.public().to_public_json()});
    if let Some(proof) = proof {
        message["proof"] = proof;
    }
    message
}

fn proof(key: &PrivateKey, alg: ProofAlg, nonce: &str) -> Value {
    let signature = key.sign_proof(alg, nonce).unwrap();
    json!({"alg": alg.name(), "signature": base64url(&signature)})
}

/// Connects and registers with a valid proof; returns the client and its welcome.
async fn proven(server: &Server, room: &str, key: &PrivateKey) -> (Client, Value) {
    let mut client = Client::connect(&server.url(room)).await;
    let nonce = challenge(&mut client).await;
    client
        .send(register(key, Some(proof(key, key.proof_alg(), &nonce))))
        .await;
    let welcome = client.expect("welcome").await;
    (client, welcome)
}

#[tokio::test]
async fn off_keeps_the_original_protocol_byte_for_byte() {
    let server = Server::start(&[]);
    let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
    let mut observer = server.peer("plain").await;
    let mut client = Client::connect(&server.url("plain")).await;
    // No challenge comes, and a proof member is simply ignored.
    client
        .send(register(
            &key,
            Some(json!({"alg": "EdDSA", "signature": "AAAA"})),
        ))
        .await;
    let Received::Text(welcome) = client.recv().await else {
        panic!("expected welcome")
    };
    assert!(welcome.starts_with(r#"{"type":"welcome""#), "{welcome}");
    assert!(!welcome.contains("verified"));
    let joined = observer.client.expect("peer-joined").await;
    assert!(joined.get("verified").is_none());
}

#[tokio::test]
async fn required_mode_accepts_every_algorithm_and_marks_peers_verified() {
    let server = Server::start(&["--proof", "required"]);
    let (mut observer, _) = proven(
        &server,
        "algs",
        &PrivateKey::generate(KeySpec::Ed25519).unwrap(),
    )
    .await;
    let keys = [
        (
            PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap(),
            ProofAlg::Es256,
        ),
        (
            PrivateKey::generate(KeySpec::Ec(EcCurve::P384)).unwrap(),
            ProofAlg::Es384,
        ),
        (
            PrivateKey::generate(KeySpec::Ec(EcCurve::P521)).unwrap(),
            ProofAlg::Es512,
        ),
        (
            PrivateKey::generate(KeySpec::Ed25519).unwrap(),
            ProofAlg::EdDsa,
        ),
        (
            PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap(),
            ProofAlg::Rs256,
        ),
        (
            PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap(),
            ProofAlg::Ps256,
        ),
    ];
    let mut clients = Vec::new();
    for (key, alg) in &keys {
        let mut client = Client::connect(&server.url("algs")).await;
        let nonce = challenge(&mut client).await;
        client
            .send(register(key, Some(proof(key, *alg, &nonce))))
            .await;
        let welcome = client.expect("welcome").await;
        assert_eq!(
            welcome["peerId"],
            key.public().peer_id().as_str(),
            "{alg:?}"
        );
        assert!(
            welcome["peers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["verified"] == true)
        );
        let joined = observer.expect("peer-joined").await;
        assert_eq!(joined["verified"], true, "{alg:?}");
        clients.push(client);
    }
}

#[tokio::test]
async fn bad_proofs_are_refused_and_the_peer_may_retry() {
    let server = Server::start(&["--proof", "required"]);
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let mut other_connection = Client::connect(&server.url("bad")).await;
    let other_nonce = challenge(&mut other_connection).await;
    let mut client = Client::connect(&server.url("bad")).await;
    let nonce = challenge(&mut client).await;
    assert_ne!(nonce, other_nonce, "every connection gets its own nonce");

    // Malformed proofs cost the server nothing to refuse: the connection stays open.
    let mut wrong_alg = proof(&key, ProofAlg::Es256, &nonce);
    wrong_alg["alg"] = json!("ES384");
    for (bad, code) in [
        (None, "proof-required"),
        (Some(wrong_alg), "proof-invalid"),
        (
            Some(json!({"alg": "ES256", "signature": "not base64!"})),
            "proof-invalid",
        ),
        (Some(json!("just a string")), "proof-invalid"),
        (
            Some(json!({"alg": "HS256", "signature": "AAAA"})),
            "proof-invalid",
        ),
    ] {
        client.send(register(&key, bad)).await;
        client.expect_error(code).await;
        assert!(client.sync().await.is_empty(), "still open after {code}");
    }
    client
        .send(register(&key, Some(proof(&key, ProofAlg::Es256, &nonce))))
        .await;
    client.expect("welcome").await;
}

/// A well-formed proof that does not verify cost a signature check: the connection is
/// closed (1008), so every guess costs a new connection and a new challenge.
#[tokio::test]
async fn a_signature_that_does_not_verify_closes_the_connection() {
    let server = Server::start(&["--proof", "required"]);
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let mut other_connection = Client::connect(&server.url("bad")).await;
    let other_nonce = challenge(&mut other_connection).await;
    let mut tampered_client = Client::connect(&server.url("bad")).await;
    let nonce = challenge(&mut tampered_client).await;
    let mut tampered = proof(&key, ProofAlg::Es256, &nonce);
    tampered["signature"] = json!(base64url(&[7u8; 64]));
    let mut cases = vec![(tampered_client, tampered)];
    // A signature over another nonce, and one replayed from another connection.
    for signed_nonce in ["some-other-nonce", other_nonce.as_str()] {
        let mut client = Client::connect(&server.url("bad")).await;
        let _ = challenge(&mut client).await;
        cases.push((client, proof(&key, ProofAlg::Es256, signed_nonce)));
    }
    for (mut client, bad) in cases {
        client.send(register(&key, Some(bad))).await;
        client.expect_error("proof-invalid").await;
        assert_eq!(client.expect_close().await, 1008);
    }
    // A fresh connection with a good proof is welcome.
    let mut client = Client::connect(&server.url("bad")).await;
    let nonce = challenge(&mut client).await;
    client
        .send(register(&key, Some(proof(&key, ProofAlg::Es256, &nonce))))
        .await;
    client.expect("welcome").await;
}

/// Past --max-proof-checks per second, a register with a proof is told to come back later
/// (1013) instead of being checked.
#[tokio::test]
async fn proof_checks_have_a_server_wide_budget() {
    // Two units a second: one RSA-4096 proof (4 units) never fits; P-256 (1 unit) does.
    let server = Server::start(&["--proof", "required", "--max-proof-checks", "2"]);
    let rsa = PrivateKey::generate(KeySpec::Rsa { bits: 4096 }).unwrap();
    let mut client = Client::connect(&server.url("budget")).await;
    let nonce = challenge(&mut client).await;
    client
        .send(register(&rsa, Some(proof(&rsa, ProofAlg::Ps256, &nonce))))
        .await;
    assert_eq!(client.expect_close().await, 1013);
    let ec = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let mut client = Client::connect(&server.url("budget")).await;
    let nonce = challenge(&mut client).await;
    client
        .send(register(&ec, Some(proof(&ec, ProofAlg::Es256, &nonce))))
        .await;
    client.expect("welcome").await;
}

#[tokio::test]
async fn optional_mode_takes_unproven_peers_as_unverified() {
    let server = Server::start(&["--proof", "optional"]);
    let (mut verified, _) = proven(
        &server,
        "opt",
        &PrivateKey::generate(KeySpec::Ed25519).unwrap(),
    )
    .await;
    let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
    // A proof that does not verify is refused even in optional mode (and, having cost a
    // signature check, closes the connection) …
    let mut client = Client::connect(&server.url("opt")).await;
    challenge(&mut client).await;
    client
        .send(register(&key, Some(proof(&key, ProofAlg::EdDsa, "wrong"))))
        .await;
    client.expect_error("proof-invalid").await;
    assert_eq!(client.expect_close().await, 1008);
    // … while no proof at all is welcome, unverified.
    let mut client = Client::connect(&server.url("opt")).await;
    challenge(&mut client).await;
    client.send(register(&key, None)).await;
    let welcome = client.expect("welcome").await;
    assert_eq!(welcome["peers"][0]["verified"], true);
    let joined = verified.expect("peer-joined").await;
    assert_eq!(joined["verified"], false);
}

#[tokio::test]
async fn a_verified_reconnect_replaces_the_old_connection() {
    let server = Server::start(&["--proof", "optional"]);
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let id = key.public().peer_id().to_string();
    let (mut observer, _) = proven(
        &server,
        "move",
        &PrivateKey::generate(KeySpec::Ed25519).unwrap(),
    )
    .await;
    let (mut old, _) = proven(&server, "move", &key).await;
    observer.expect("peer-joined").await;

    // An unverified register of the same ID is still a duplicate, and changes nothing.
    let mut impostor = Client::connect(&server.url("move")).await;
    challenge(&mut impostor).await;
    impostor.send(register(&key, None)).await;
    impostor.expect_error("duplicate-peer").await;
    assert!(old.sync().await.is_empty());

    // The same key, proven, on a new connection (the network changed).
    let (_new, welcome) = proven(&server, "move", &key).await;
    assert_eq!(
        welcome["peers"].as_array().unwrap().len(),
        1,
        "only the observer"
    );
    old.expect_error("replaced").await;
    assert_eq!(old.expect_close().await, 1000);
    let left = observer.expect("peer-left").await;
    assert_eq!(left["peerId"], id.as_str());
    let joined = observer.expect("peer-joined").await;
    assert_eq!(
        (joined["peerId"].as_str(), joined["verified"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    // The old connection's departure does not announce the peer leaving a second time.
    assert!(observer.sync().await.is_empty());
}

#[test]
fn the_terminal_peer_signs_challenges_by_itself() {
    let server = Server::start(&["--proof", "required"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ws://{}", server.addr);
    for key_type in ["ec", "okp", "rsa"] {
        let name = format!("{key_type}.jwk");
        let made = std::process::Command::new(common::rdv_binary())
            .args(["keygen", "-t", key_type, "-o", &name, "-q"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(made.success());
        let output = std::process::Command::new(common::rdv_binary())
            .args([
                "peer",
                &url,
                "signed",
                "--key",
                &name,
                "--expect",
                "welcome",
                "--timeout",
                "10s",
            ])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{key_type}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.starts_with(r#"{"type":"challenge""#), "{stdout}");
    }
    let refused = std::process::Command::new(common::rdv_binary())
        .args(["peer", &url, "signed", "--no-proof", "--timeout", "10s"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("proof-required"));
}

/// A flood of proofs that cost nothing to refuse (an unknown alg, one that does not fit the
/// key, a signature of the wrong length, all for the costliest key there is) must not drain
/// the budget genuine proofs need: only a real signature check is charged. Each connection
/// gets a bounded number of tries.
#[tokio::test]
async fn free_bogus_proofs_do_not_drain_the_budget_genuine_ones_need() {
    // 40 units a second; each bogus proof below used to be charged 16 (RSA-8192) before it
    // was refused, so two or three of them emptied the budget.
    let server = Server::start(&["--proof", "required", "--max-proof-checks", "40"]);
    let modulus = base64url(&[0xc5u8; 1024]);
    let costly = json!({"kty": "RSA", "n": modulus, "e": base64url(&[0xff; 4])});
    let bogus = [
        json!({"alg": "HS256", "signature": "AAAA"}),
        json!({"alg": "ES256", "signature": base64url(&[1; 64])}),
        json!({"alg": "PS256", "signature": base64url(&[1; 1023])}),
    ];
    let flood_url = server.url("flood");
    let flood = tokio::spawn(async move {
        let mut refused = 0;
        for _ in 0..20 {
            let mut client = Client::connect(&flood_url).await;
            let _ = client.expect("challenge").await;
            // Until the connection is closed for trying too often.
            for attempt in 0.. {
                let proof = bogus[attempt % bogus.len()].clone();
                client
                    .send(json!({"type": "register", "publicKey": costly, "proof": proof}))
                    .await;
                match client.recv().await {
                    Received::Text(text) => {
                        let error: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(error["code"], "proof-invalid", "{error}");
                        refused += 1;
                    }
                    Received::Close(code, _) => {
                        // Not 1013: no bogus proof reached the budget.
                        assert_eq!(code, 1008, "closed for too many tries");
                        assert!(attempt > 0);
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        refused
    });
    // Meanwhile, genuine proofs (one unit each, a few a second) keep being welcomed.
    for n in 0..12 {
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let (_client, welcome) = proven(&server, &format!("genuine-{n}"), &key).await;
        assert_eq!(welcome["peerId"], key.public().peer_id().as_str());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = tokio::time::timeout(common::WAIT, flood)
        .await
        .expect("the flood ends")
        .unwrap();
    assert!(refused >= 20 * 8, "{refused} bogus proofs were refused");
}
