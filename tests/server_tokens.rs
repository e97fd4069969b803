//! PROTOCOL §13, access tokens, against a real `rdv serve --auth-key`: what each token is
//! refused with, that a refusal disturbs nobody, the upgrade's bearer header, the room size a
//! token sets, and key rotation on SIGHUP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, Server, TestKey, eventually, rdv_output, upgrade_from};
use futures_util::SinkExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rdv::identity::{EcCurve, KeySpec, PrivateKey, base64url};
use rdv::token::{MintRequest, SigningKey, mint, now_seconds, parse_signing_key};
use serde_json::{Value, json};

/// The app's backend: a signing key, its public half in a file the server reads.
struct Issuer {
    private: PrivateKey,
    key: SigningKey,
    public_file: PathBuf,
}

impl Issuer {
    fn new(dir: &Path, name: &str, spec: KeySpec) -> Self {
        let private = PrivateKey::generate(spec).unwrap();
        let key = parse_signing_key(&private.to_pkcs8_pem(), None).unwrap();
        let public_file = dir.join(format!("{name}.pub.jwk"));
        std::fs::write(&public_file, private.public().to_public_json().to_string()).unwrap();
        Self {
            private,
            key,
            public_file,
        }
    }

    fn path(&self) -> &str {
        self.public_file.to_str().unwrap()
    }

    /// A token for `room`, valid for ten minutes, for any peer.
    fn token(&self, room: &str) -> String {
        self.mint(MintRequest::new(
            vec![room.into()],
            Duration::from_secs(600),
        ))
    }

    fn mint(&self, request: MintRequest) -> String {
        mint(&self.key, &request, now_seconds()).unwrap()
    }

    /// A token with exactly these claims (for times and shapes `mint` never makes).
    fn claims(&self, claims: Value) -> String {
        let der = self.private.signing_der();
        jsonwebtoken::encode(
            &Header::new(self.key.algorithm),
            &claims,
            &EncodingKey::from_ed_der(&der),
        )
        .unwrap()
    }
}

fn register(key: &TestKey, token: Option<&str>) -> String {
    rdv::protocol::register(&key.public_jwk, None, token)
}

/// Registers `key` with `token` in `room`; returns the client and the first thing it got.
async fn attempt(
    server: &Server,
    room: &str,
    key: &TestKey,
    token: Option<&str>,
) -> (Client, Value) {
    let mut client = Client::connect(&server.url(room)).await;
    client.send_text(&register(key, token)).await;
    let first = client.recv_json().await;
    (client, first)
}

/// A refused register: its code, then the connection closed with 1008.
async fn refused(server: &Server, room: &str, key: &TestKey, token: Option<&str>, code: &str) {
    let (mut client, first) = attempt(server, room, key, token).await;
    assert_eq!(first["type"], "error", "{first}");
    assert_eq!(first["code"], code, "{first}");
    assert!(first["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        client.expect_close().await,
        1008,
        "{code} closes the connection"
    );
}

fn ed25519_server(dir: &Path) -> (Issuer, Server) {
    let issuer = Issuer::new(dir, "app", KeySpec::Ed25519);
    let server = Server::start(&["--auth-key", issuer.path()]);
    (issuer, server)
}

#[tokio::test]
async fn a_valid_token_admits_and_each_bad_one_gets_its_code_disturbing_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, server) = ed25519_server(dir.path());
    let key = TestKey::new();
    let (mut member, welcome) = attempt(&server, "lobby", &key, Some(&issuer.token("lobby"))).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    let now = now_seconds();
    let stranger = TestKey::new();
    let other_issuer = Issuer::new(dir.path(), "other", KeySpec::Ed25519);
    let ec_issuer = Issuer::new(dir.path(), "ec", KeySpec::Ec(EcCurve::P256));
    let good = issuer.token("lobby");
    let hs256_with_public_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"room": "lobby", "exp": now + 600}),
        &EncodingKey::from_secret(&std::fs::read(&issuer.public_file).unwrap()).unwrap(),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(
            json!({"room": "lobby", "exp": now + 600})
                .to_string()
                .as_bytes()
        )
    );
    let bound_to_member = issuer.mint(MintRequest {
        peer: Some(key.peer_id()),
        ..MintRequest::new(vec!["lobby".into()], Duration::from_secs(600))
    });
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "token-required"),
        (
            "expired two minutes ago",
            Some(issuer.claims(json!({"room": "lobby", "exp": now - 120}))),
            "token-expired",
        ),
        (
            "not valid for two more minutes",
            Some(issuer.claims(json!({"room": "lobby", "exp": now + 600, "nbf": now + 120}))),
            "token-invalid",
        ),
        (
            "no exp",
            Some(issuer.claims(json!({"room": "lobby"}))),
            "token-invalid",
        ),
        (
            "another room",
            Some(issuer.token("lobby2")),
            "room-forbidden",
        ),
        (
            "a prefix of the room",
            Some(issuer.token("lob")),
            "room-forbidden",
        ),
        (
            "a pattern that does not cover it",
            Some(issuer.token("lobby-*")),
            "room-forbidden",
        ),
        (
            "issued to another peer",
            Some(bound_to_member),
            "token-peer-mismatch",
        ),
        (
            "signed by another key",
            Some(other_issuer.token("lobby")),
            "token-invalid",
        ),
        ("alg none", Some(alg_none), "token-invalid"),
        (
            "HS256 with the public key as secret",
            Some(hs256_with_public_key),
            "token-invalid",
        ),
        (
            "another key type (ES256)",
            Some(ec_issuer.token("lobby")),
            "token-invalid",
        ),
        (
            "truncated",
            Some(good[..good.len() - 10].to_owned()),
            "token-invalid",
        ),
        (
            "past 8 KiB",
            Some(format!("{good}{}", "A".repeat(9000))),
            "token-invalid",
        ),
    ];
    for (what, token, code) in &cases {
        println!("{what}");
        refused(&server, "lobby", &stranger, token.as_deref(), code).await;
    }
    // The member heard none of it, and the refusals are counted by code.
    assert_eq!(member.sync().await, Vec::<Value>::new());
    let metrics = server.metrics().await;
    for (code, count) in [
        ("accepted", 1.0),
        ("token-required", 1.0),
        ("token-expired", 1.0),
        ("token-invalid", 8.0),
        ("room-forbidden", 3.0),
        ("token-peer-mismatch", 1.0),
    ] {
        let series = format!(r#"rdv_token_checks_total{{via="register",result="{code}"}}"#);
        assert_eq!(common::metric(&metrics, &series), count, "{series}");
    }

    // A 1 MiB token is over the message limit: the frame is refused before it is read.
    let mut huge = Client::connect(&server.url("lobby")).await;
    let _ = huge
        .ws
        .send(tokio_tungstenite::tungstenite::Message::text(register(
            &stranger,
            Some(&"A".repeat(1 << 20)),
        )))
        .await;
    assert_eq!(huge.expect_close().await, 1009);
    assert_eq!(member.sync().await, Vec::<Value>::new());
    // The stranger can still come in with a good token.
    let (_client, welcome) = attempt(&server, "lobby", &stranger, Some(&good)).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    member.expect("peer-joined").await;
}

#[tokio::test]
async fn patterns_bindings_audience_and_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), "app", KeySpec::Ed25519);
    let server = Server::start(&[
        "--auth-key",
        issuer.path(),
        "--auth-audience",
        "rdv",
        "--auth-issuer",
        "https://app.example",
    ]);
    let key = TestKey::new();
    let request = |rooms: &[&str], aud: Option<&str>, iss: Option<&str>| MintRequest {
        peer: Some(key.peer_id()),
        audience: aud.map(str::to_owned),
        issuer: iss.map(str::to_owned),
        ..MintRequest::new(
            rooms.iter().map(|r| r.to_string()).collect(),
            Duration::from_secs(600),
        )
    };
    let full =
        |rooms: &[&str]| issuer.mint(request(rooms, Some("rdv"), Some("https://app.example")));
    for (room, rooms, accepted) in [
        ("game-1", &["game-*"][..], true),
        ("game-", &["game-*"][..], true),
        ("game", &["game-*"][..], false),
        ("anything", &["*"][..], true),
        ("a*b", &["a*b"][..], true),
        ("axb", &["a*b"][..], false),
        ("team", &["lobby", "team"][..], true),
    ] {
        let token = full(rooms);
        if accepted {
            let (client, welcome) = attempt(&server, room, &key, Some(&token)).await;
            assert_eq!(
                welcome["type"], "welcome",
                "{room} with {rooms:?}: {welcome}"
            );
            client.close().await;
        } else {
            refused(&server, room, &key, Some(&token), "room-forbidden").await;
        }
    }
    let no_aud = issuer.mint(request(&["r"], None, Some("https://app.example")));
    refused(&server, "r", &key, Some(&no_aud), "token-invalid").await;
    let wrong_aud = issuer.mint(request(&["r"], Some("other"), Some("https://app.example")));
    refused(&server, "r", &key, Some(&wrong_aud), "token-invalid").await;
    let wrong_iss = issuer.mint(request(&["r"], Some("rdv"), Some("https://evil.example")));
    refused(&server, "r", &key, Some(&wrong_iss), "token-invalid").await;
    // Bound to `key`: useless to anyone else.
    refused(
        &server,
        "r",
        &TestKey::new(),
        Some(&full(&["r"])),
        "token-peer-mismatch",
    )
    .await;
}

#[tokio::test]
async fn native_clients_send_the_token_as_a_bearer_header() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, server) = ed25519_server(dir.path());
    let key = TestKey::new();

    // Valid: upgraded, and a register without a token of its own is admitted.
    let request = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = server.url("lobby").into_client_request().unwrap();
        let value = format!("Bearer {}", issuer.token("lobby"));
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
        request
    };
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut client = Client { ws };
    client.send_text(&register(&key, None)).await;
    client.expect("welcome").await;

    // Refused before the upgrade, with the code in the challenge and the body.
    for (token, code) in [
        (issuer.token("elsewhere"), "room-forbidden"),
        (
            issuer.claims(json!({"room": "lobby", "exp": now_seconds() - 300})),
            "token-expired",
        ),
        ("not.a.token".to_owned(), "token-invalid"),
    ] {
        let (status, head, _) = upgrade_from(
            &server,
            "127.0.0.1",
            "lobby",
            &[&format!("Authorization: Bearer {token}")],
        )
        .await;
        assert_eq!(status, 401, "{head}");
        let challenge = format!(
            r#"www-authenticate: Bearer error="invalid_token", error_description="{code}""#
        );
        assert!(
            head.to_ascii_lowercase()
                .contains(&challenge.to_ascii_lowercase()),
            "{head}"
        );
    }
    // Another scheme is not a token: the upgrade goes on and register must carry one.
    let (status, head, _) = upgrade_from(
        &server,
        "127.0.0.1",
        "lobby",
        &["Authorization: Basic dTpw"],
    )
    .await;
    assert_eq!(status, 101, "{head}");
    // A 1 MiB header never reaches the token check: past 8 KiB a request head gets 431.
    let (status, head, _) = upgrade_from(
        &server,
        "127.0.0.1",
        "lobby",
        &[&format!("Authorization: Bearer {}", "A".repeat(1 << 20))],
    )
    .await;
    assert_eq!(status, 431, "{head}");
    let metrics = server.metrics().await;
    assert_eq!(
        common::metric(&metrics, r#"rdv_upgrades_rejected_total{reason="token"}"#),
        3.0
    );
    assert_eq!(
        common::metric(
            &metrics,
            r#"rdv_token_checks_total{via="header",result="accepted"}"#
        ),
        1.0
    );
    assert_eq!(client.sync().await, Vec::<Value>::new());

    // A header token bound to one peer serves only that peer's register.
    let bound = issuer.mint(MintRequest {
        peer: Some(key.peer_id()),
        ..MintRequest::new(vec!["lobby".into()], Duration::from_secs(60))
    });
    let (status, _, tcp) = upgrade_from(
        &server,
        "127.0.0.1",
        "lobby",
        &[&format!("Authorization: Bearer {bound}")],
    )
    .await;
    assert_eq!(status, 101);
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let mut impostor = Client { ws };
    impostor.send_text(&register(&TestKey::new(), None)).await;
    impostor.expect_error("token-peer-mismatch").await;
    assert_eq!(impostor.expect_close().await, 1008);
}

#[tokio::test]
async fn the_token_that_opens_a_room_sets_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, server) = ed25519_server(dir.path());
    let sized = |max_peers| {
        issuer.mint(MintRequest {
            max_peers: Some(max_peers),
            ..MintRequest::new(vec!["call-*".into()], Duration::from_secs(600))
        })
    };
    let (_host, welcome) = attempt(&server, "call-1", &TestKey::new(), Some(&sized(2))).await;
    assert_eq!(welcome["type"], "welcome");
    // A later joiner's own max_peers does not change the size the opener set.
    let (_guest, welcome) = attempt(&server, "call-1", &TestKey::new(), Some(&sized(10))).await;
    assert_eq!(welcome["type"], "welcome");
    let (mut third, refusal) = attempt(&server, "call-1", &TestKey::new(), Some(&sized(10))).await;
    assert_eq!(refusal["code"], "room-full", "{refusal}");
    // room-full leaves the connection open, as without tokens.
    assert_eq!(third.sync().await, Vec::<Value>::new());
}

#[tokio::test]
async fn sighup_rotates_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let old = Issuer::new(dir.path(), "old", KeySpec::Ed25519);
    let new = Issuer::new(dir.path(), "new", KeySpec::Ed25519);
    let in_force = dir.path().join("auth.jwks");
    std::fs::copy(&old.public_file, &in_force).unwrap();
    let server = Server::start(&["--auth-key", in_force.to_str().unwrap()]);
    let key = TestKey::new();
    let (client, welcome) = attempt(&server, "r", &key, Some(&old.token("r"))).await;
    assert_eq!(welcome["type"], "welcome");
    client.close().await;
    refused(&server, "r", &key, Some(&new.token("r")), "token-invalid").await;

    std::fs::copy(&new.public_file, &in_force).unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    server
        .wait_for_metric(r#"rdv_reloads_total{what="auth-keys",result="ok"}"#, |n| {
            n >= 1.0
        })
        .await;
    let (client, welcome) = attempt(&server, "r", &key, Some(&new.token("r"))).await;
    assert_eq!(welcome["type"], "welcome");
    client.close().await;
    refused(&server, "r", &key, Some(&old.token("r")), "token-invalid").await;

    // A broken file keeps the keys in force.
    std::fs::write(&in_force, "{\"keys\": [").unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    server
        .wait_for_metric(
            r#"rdv_reloads_total{what="auth-keys",result="failed"}"#,
            |n| n >= 1.0,
        )
        .await;
    let (_client, welcome) = attempt(&server, "r", &key, Some(&new.token("r"))).await;
    assert_eq!(welcome["type"], "welcome");
}

#[tokio::test]
async fn every_key_form_the_server_reads() {
    let dir = tempfile::tempdir().unwrap();
    let ec = PrivateKey::generate(KeySpec::Ec(EcCurve::P384)).unwrap();
    let rsa = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
    let secret = "correct horse battery staple, long enough";
    let oct = json!({"kty": "oct", "k": base64url(&[9u8; 48]), "alg": "HS512", "kid": "hs"});
    let files = [
        ("p384.pem", ec.public_pem()),
        (
            "rsa.jwks",
            json!({"keys": [rsa.public().to_public_json()]}).to_string(),
        ),
        ("secret.txt", format!("{secret}\n")),
        ("oct.jwk", oct.to_string()),
    ];
    let mut args = Vec::new();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
        args.push("--auth-key".to_owned());
        args.push(dir.path().join(name).to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let signers = [
        parse_signing_key(&ec.to_pkcs8_pem(), None).unwrap(),
        parse_signing_key(&rsa.to_pkcs8_pem(), None).unwrap(),
        parse_signing_key(&rsa.to_pkcs8_pem(), Some("PS256")).unwrap(),
        parse_signing_key(secret, None).unwrap(),
        parse_signing_key(&oct.to_string(), None).unwrap(),
    ];
    for signer in &signers {
        let token = mint(
            signer,
            &MintRequest::new(vec!["r".into()], Duration::from_secs(60)),
            now_seconds(),
        )
        .unwrap();
        let (client, welcome) = attempt(&server, "r", &TestKey::new(), Some(&token)).await;
        assert_eq!(
            welcome["type"], "welcome",
            "{:?}: {welcome}",
            signer.algorithm
        );
        client.close().await;
    }
}

#[test]
fn a_bad_key_file_stops_the_server_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "tooshort\n").unwrap();
    let p521 = dir.path().join("p521.pem");
    std::fs::write(
        &p521,
        PrivateKey::generate(KeySpec::Ec(EcCurve::P521))
            .unwrap()
            .public_pem(),
    )
    .unwrap();
    for (file, words) in [(&short, "at least 32 bytes"), (&p521, "P-521")] {
        let file_arg = file.to_str().unwrap();
        let (code, _, stderr) = rdv_output(
            dir.path(),
            &["serve", "--listen", "127.0.0.1:0", "--auth-key", file_arg],
        );
        assert_eq!(code, Some(1));
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(words),
            "{stderr}"
        );
    }
}

/// `rdv token` and `rdv peer --token` end to end, as a script would use them.
#[tokio::test]
async fn rdv_token_mints_what_rdv_peer_presents() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| rdv_output(dir.path(), args);
    assert_eq!(
        run(&[
            "keygen",
            "-t",
            "okp",
            "-o",
            "signer.jwk",
            "--public-out",
            "signer.pub.jwk",
            "-q"
        ])
        .0,
        Some(0)
    );
    assert_eq!(run(&["keygen", "-o", "alice.jwk", "-q"]).0, Some(0));
    let (code, token, stderr) = run(&[
        "token",
        "--key",
        "signer.jwk",
        "--room",
        "lobby",
        "--for",
        "alice.jwk",
        "--ttl",
        "5m",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    // `rdv token --verify --json` for one room: its exit code and its report.
    let verify_for = |room: &str| {
        let (code, out, _) = run(&[
            "token",
            "--verify",
            "--key",
            "signer.pub.jwk",
            "--room",
            room,
            "--json",
            &token,
        ]);
        (code, serde_json::from_str::<Value>(&out).unwrap())
    };
    let (code, report) = verify_for("lobby");
    assert_eq!(code, Some(0));
    assert_eq!(report["valid"], true);
    assert_eq!(report["header"]["alg"], "EdDSA");
    assert_eq!(report["claims"]["room"], "lobby");
    let exp = report["claims"]["exp"].as_u64().unwrap();
    assert!((295..=305).contains(&(exp - report["claims"]["iat"].as_u64().unwrap())));
    let (code, report) = verify_for("other");
    assert_eq!(code, Some(1));
    assert_eq!(
        (report["valid"].clone(), report["code"].clone()),
        (json!(false), json!("room-forbidden"))
    );
    let (code, out, _) = run(&["token", "--verify", "--key", "signer.pub.jwk", &token]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("valid: expires in"), "{out}");
    // Usage and file errors.
    let (code, _, stderr) = run(&["token", "--key", "signer.jwk"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = run(&["token", "--key", "signer.pub.jwk", "--room", "r"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("signer.pub.jwk") && stderr.contains("public key"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["token", "--key", "missing.jwk", "--room", "r"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing.jwk"), "{stderr}");

    let server = Server::start(&[
        "--auth-key",
        dir.path().join("signer.pub.jwk").to_str().unwrap(),
    ]);
    let url = server.url("lobby");
    let peer = |extra: &[&str], env: Option<&str>| {
        let mut command = std::process::Command::new(common::rdv_binary());
        command
            .args([
                "peer",
                &url,
                "--key",
                "alice.jwk",
                "--exit-on-eof",
                "--timeout",
                "5s",
            ])
            .args(extra)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RDV_TOKEN")
            .stdin(std::process::Stdio::null());
        if let Some(token) = env {
            command.env("RDV_TOKEN", token);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, stderr) = peer(&["--token", &token], None);
    assert_eq!(code, Some(0), "{out}{stderr}");
    assert!(out.contains(r#""type":"welcome""#), "{out}");
    let (code, out, stderr) = peer(&[], Some(&token));
    assert_eq!(code, Some(0), "RDV_TOKEN works too: {out}{stderr}");
    let (code, out, stderr) = peer(&[], None);
    assert_eq!(code, Some(6), "{out}{stderr}");
    assert!(
        stderr.contains("token-required") && stderr.contains("--token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refused_token_leaves_the_room_and_its_members_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, server) = ed25519_server(dir.path());
    let mut a = {
        let (client, welcome) =
            attempt(&server, "r", &TestKey::new(), Some(&issuer.token("r"))).await;
        assert_eq!(welcome["type"], "welcome");
        client
    };
    let metrics_before = server.metrics().await;
    for _ in 0..5 {
        refused(
            &server,
            "r",
            &TestKey::new(),
            Some("x.y.z"),
            "token-invalid",
        )
        .await;
    }
    eventually("the refused connections are gone", || async {
        let metrics = server.metrics().await;
        (common::metric(&metrics, "rdv_connections") == 1.0).then_some(())
    })
    .await;
    assert_eq!(common::metric(&metrics_before, "rdv_peers"), 1.0);
    assert_eq!(common::metric(&server.metrics().await, "rdv_peers"), 1.0);
    assert_eq!(a.sync().await, Vec::<Value>::new());
}

/// PyJWT's tokens (`tests/data/pyjwt-tokens.json`, made by `make/pyjwt-tokens.py`), one per
/// algorithm, admit their holders: the server reads what an independent implementation signs.
#[tokio::test]
async fn tokens_minted_by_pyjwt_are_accepted_for_every_algorithm() {
    let vectors: Value = serde_json::from_str(include_str!("data/pyjwt-tokens.json")).unwrap();
    let vectors = vectors["vectors"].as_array().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (index, vector) in vectors.iter().enumerate() {
        let file = dir.path().join(format!("key-{index}"));
        std::fs::write(&file, vector["key"].as_str().unwrap()).unwrap();
        args.push("--auth-key".to_owned());
        args.push(file.to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let algs: Vec<&str> = vectors.iter().map(|v| v["alg"].as_str().unwrap()).collect();
    assert_eq!(algs, ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"]);
    for (index, vector) in vectors.iter().enumerate() {
        let token = vector["token"].as_str().unwrap();
        let room = vector["claims"]["room"].as_str().unwrap().replace('*', "x");
        let (client, welcome) = attempt(&server, &room, &TestKey::new(), Some(token)).await;
        assert_eq!(welcome["type"], "welcome", "{}: {welcome}", vector["alg"]);
        client.close().await;
        // And `rdv token --verify` reads it the same way.
        let key = format!("key-{index}");
        let (_, stdout, _) = rdv_output(
            dir.path(),
            &[
                "token", "--verify", "--json", "--room", &room, "--key", &key, token,
            ],
        );
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["valid"], true, "{}: {report}", vector["alg"]);
        assert_eq!(report["claims"], vector["claims"]);
    }
}

/// The python3 that has PyJWT and `cryptography`, if any.
fn python_with_pyjwt() -> Option<String> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find_map(|python| {
            std::process::Command::new(python)
                .args(["-c", "import jwt, cryptography"])
                .stderr(std::process::Stdio::null())
                .status()
                .ok()
                .filter(|status| status.success())
                .map(|_| python.to_owned())
        })
}

/// Live, both ways: PyJWT signs with keys `rdv keygen` made and the server admits the tokens;
/// `rdv token` signs and PyJWT's `jwt.decode` verifies.
#[tokio::test]
#[ignore = "needs python3 with PyJWT (apt install python3-jwt python3-cryptography)"]
async fn pyjwt_and_rdv_token_verify_each_other() {
    let python = python_with_pyjwt();
    common::outside::require(python.is_none().then(|| {
        "python3 with PyJWT and cryptography is not installed (apt install python3-jwt \
         python3-cryptography)"
            .to_owned()
    }));
    let python = python.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rdv = |args: &[&str]| {
        let (code, stdout, stderr) = rdv_output(dir.path(), args);
        assert_eq!(code, Some(0), "rdv {args:?}: {stderr}");
        stdout
    };
    let keys = [
        ("ES256", vec!["-t", "ec", "--curve", "P-256"]),
        ("ES384", vec!["-t", "ec", "--curve", "P-384"]),
        ("EdDSA", vec!["-t", "okp"]),
        ("RS256", vec!["-t", "rsa", "--bits", "2048"]),
        ("PS256", vec!["-t", "rsa", "--bits", "2048"]),
    ];
    for (alg, spec) in &keys {
        let mut args = vec!["keygen", "--format", "pem", "-q"];
        args.extend(spec);
        let (private, public) = (format!("{alg}.pem"), format!("{alg}.pub.pem"));
        args.extend(["-o", &private, "--public-out", &public]);
        rdv(&args);
    }
    std::fs::write(
        dir.path().join("secret.txt"),
        "another shared secret, long enough for HS256\n",
    )
    .unwrap();
    let python_script = r#"
import json, sys, time, jwt
mode, room = sys.argv[1], sys.argv[2]
secret = open("secret.txt").read().splitlines()[0]
key = lambda alg, kind: secret if alg == "HS256" else open(f"{alg}{kind}.pem").read()
algs = ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"]
if mode == "mint":
    now = int(time.time())
    print(json.dumps({alg: jwt.encode({"room": room, "iat": now, "exp": now + 300}, key(alg, ""), algorithm=alg) for alg in algs}))
else:
    tokens = json.loads(sys.stdin.read())
    print(json.dumps({alg: jwt.decode(tokens[alg], key(alg, ".pub"), algorithms=[alg]) for alg in algs}))
"#;
    let run_python = |mode: &str, input: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(&python)
            .args(["-c", python_script, mode, "live"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "python {mode}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };

    // PyJWT → rdv serve.
    let minted = run_python("mint", "");
    let mut args = vec![
        "--auth-key".to_owned(),
        dir.path().join("secret.txt").to_str().unwrap().to_owned(),
    ];
    for (alg, _) in &keys {
        args.push("--auth-key".to_owned());
        args.push(
            dir.path()
                .join(format!("{alg}.pub.pem"))
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    for (alg, token) in minted.as_object().unwrap() {
        let (client, welcome) = attempt(&server, "live", &TestKey::new(), token.as_str()).await;
        assert_eq!(welcome["type"], "welcome", "PyJWT's {alg}: {welcome}");
        client.close().await;
    }

    // rdv token → PyJWT.
    let mut ours = serde_json::Map::new();
    for (alg, _) in &keys {
        let private = format!("{alg}.pem");
        let mut args = vec!["token", "--key", &private, "--room", "live"];
        if *alg == "PS256" {
            args.extend(["--alg", "PS256"]);
        }
        ours.insert(alg.to_string(), json!(rdv(&args).trim()));
    }
    ours.insert(
        "HS256".into(),
        json!(rdv(&["token", "--key", "secret.txt", "--room", "live"]).trim()),
    );
    let decoded = run_python("verify", &Value::Object(ours).to_string());
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"] {
        assert_eq!(decoded[alg]["room"], "live", "{alg}: {decoded}");
        assert!(decoded[alg]["exp"].as_u64().unwrap() > now_seconds());
    }
}
