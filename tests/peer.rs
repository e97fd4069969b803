//! `rdv peer` driven as a subprocess against a real `rdv serve` (and, where a server must
//! misbehave, a tiny fake one), the way scripts and people use it.

mod common;

use std::path::Path;
use std::process::Child;

use common::{Server, WAIT, finish, key, run_peer, spawn_peer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

/// `rdv peer URL ROOM --key KEY --send-after-peers N -x MESSAGE --exit-on-eof EXTRA…`, which
/// must succeed: one message sent once N others are in the room.
fn send_once(
    dir: &Path,
    url: &str,
    room: &str,
    key: &str,
    peers: &str,
    message: &str,
    extra: &[&str],
) {
    let mut args = vec![
        url,
        room,
        "--key",
        key,
        "--send-after-peers",
        peers,
        "-x",
        message,
        "--exit-on-eof",
    ];
    args.extend_from_slice(extra);
    let sender = run_peer(dir, &args, "");
    assert_eq!(sender.code, 0, "{room}: {}", sender.stderr);
}

/// `rdv peer URL ROOM --key KEY --require-signed --until .sdp.type=offer --timeout LIMIT`: a
/// receiver that exits 0 only once a validly signed offer came.
fn strict_receiver(dir: &Path, url: &str, room: &str, key: &str, limit: &str) -> Child {
    spawn_peer(
        dir,
        &[
            url,
            room,
            "--key",
            key,
            "--require-signed",
            "--until",
            ".sdp.type=offer",
            "--timeout",
            limit,
        ],
    )
}

fn base(server: &Server) -> String {
    format!("ws://{}", server.addr)
}

#[test]
fn two_script_peers_exchange_offer_answer_and_ice() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (alice_id, bob_id) = (key(dir.path(), "alice.jwk"), key(dir.path(), "bob.jwk"));
    let url = base(&server);
    let bob = spawn_peer(
        dir.path(),
        &[
            &url,
            "call",
            "--key",
            "bob.jwk",
            "--answer-offers",
            "--expect",
            "offer",
            "--expect",
            "ice-candidate",
            "--timeout",
            "10s",
        ],
    );
    let offer = json!({"type": "offer", "to": bob_id, "sdp": {"type": "offer", "sdp": "v=0\r\ns=alice\r\n"}});
    let ice = json!({"type": "ice-candidate", "to": bob_id, "candidate": {"candidate": "candidate:1 1 udp 9 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}});
    let offer_text = offer.to_string();
    let alice = run_peer(
        dir.path(),
        &[
            &url,
            "call",
            "--key",
            "alice.jwk",
            "--send-after-peers",
            "1",
            "-x",
            &offer_text,
            "--until",
            ".sdp.type=answer",
            "--timeout",
            "10s",
        ],
        &format!("{ice}\n"),
    );
    let bob = finish(bob, "");
    assert_eq!(alice.code, 0, "{}", alice.stderr);
    assert_eq!(bob.code, 0, "{}", bob.stderr);

    // Bob's NDJSON is exactly what the server sent, one message per line.
    let bob_saw = bob.messages();
    assert_eq!(bob_saw[0]["type"], "welcome");
    let relayed: Vec<&Value> = bob_saw
        .iter()
        .filter(|m| m["from"] == alice_id.as_str())
        .collect();
    // Signed by Alice's key (PROTOCOL §12), checked by Bob's rdv peer, otherwise as sent.
    let mut received = relayed[0].clone();
    let check = received.as_object_mut().unwrap().remove("signatureCheck");
    assert_eq!(check, Some(json!({"result": "valid"})));
    let signature = received
        .as_object_mut()
        .unwrap()
        .remove("signature")
        .unwrap();
    assert_eq!(signature["alg"], "EdDSA");
    assert_eq!(
        received,
        json!({"type": "offer", "from": alice_id, "sdp": offer["sdp"]})
    );
    assert_eq!(
        *relayed[1],
        json!({"type": "ice-candidate", "from": alice_id, "candidate": ice["candidate"]})
    );
    assert!(
        bob.stdout
            .lines()
            .any(|l| l.starts_with(r#"{"type":"offer","from":""#)),
        "untouched text"
    );

    let answer = alice
        .messages()
        .into_iter()
        .find(|m| m["type"] == "answer")
        .expect("an answer");
    assert_eq!(answer["from"], bob_id.as_str());
    assert_eq!(answer["sdp"]["type"], "answer");
    assert!(
        alice.stderr.contains(&alice_id),
        "the peer ID is reported on stderr"
    );
}

#[test]
fn exit_conditions_and_their_codes() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);

    // --count: exactly N messages, then out.
    let one = run_peer(dir.path(), &[&url, "c", "--count", "1"], "");
    assert_eq!((one.code, one.messages().len()), (0, 1));
    assert_eq!(one.messages()[0]["type"], "welcome");

    // An unmet --expect within --timeout is a timeout; --timeout alone is a clean end.
    let unmet = run_peer(
        dir.path(),
        &[&url, "c", "--expect", "offer", "--timeout", "300ms"],
        "",
    );
    assert_eq!(unmet.code, 5, "{}", unmet.stderr);
    assert!(
        unmet
            .stderr
            .contains("timed out waiting for --expect offer"),
        "{}",
        unmet.stderr
    );
    assert_eq!(
        run_peer(dir.path(), &[&url, "c", "--timeout", "200ms"], "").code,
        0
    );

    // --wait-peers, with --until on the peer-joined that satisfies it.
    let waiter = spawn_peer(
        dir.path(),
        &[
            &url,
            "w",
            "--wait-peers",
            "1",
            "--expect",
            "peer-joined",
            "--timeout",
            "10s",
        ],
    );
    server.wait_for_peers_blocking(1);
    key(dir.path(), "late.jwk");
    let late = run_peer(
        dir.path(),
        &[
            &url,
            "w",
            "--key",
            "late.jwk",
            "--until",
            "type=welcome",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(late.code, 0, "{}", late.stderr);
    let waiter = finish(waiter, "");
    assert_eq!(waiter.code, 0, "{}", waiter.stderr);

    // stdin lines are sent after registration; --exit-on-eof leaves once they are out.
    let pinger = run_peer(
        dir.path(),
        &[&url, "c", "--exit-on-eof"],
        "{\"type\":\"ping\"}\n\n",
    );
    assert_eq!(pinger.code, 0, "{}", pinger.stderr);
    // … and with an unmet condition that is code 9.
    let unmet = run_peer(
        dir.path(),
        &[&url, "c", "--exit-on-eof", "--expect", "offer"],
        "",
    );
    assert_eq!(unmet.code, 9, "{}", unmet.stderr);
    // --linger waits for the replies.
    let lingerer = run_peer(
        dir.path(),
        &[&url, "c", "--linger", "2s", "--expect", "pong"],
        "{\"type\":\"ping\"}\n",
    );
    assert_eq!(lingerer.code, 0, "{}", lingerer.stderr);
    assert_eq!(lingerer.messages().last().unwrap()["type"], "pong");

    // -x, --send-file and --delay: all sent, in order.
    std::fs::write(
        dir.path().join("script.ndjson"),
        "{\"type\":\"ping\"}\n{\"type\":\"nope\"}\n",
    )
    .unwrap();
    let scripted = run_peer(
        dir.path(),
        &[
            &url,
            "c",
            "-x",
            r#"{"type":"ping"}"#,
            "--send-file",
            "script.ndjson",
            "--delay",
            "50ms",
            "--expect",
            "error",
            "--count",
            "4",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(scripted.code, 0, "{}", scripted.stderr);
    let kinds: Vec<Value> = scripted
        .messages()
        .iter()
        .map(|m| m["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![
            json!("welcome"),
            json!("pong"),
            json!("pong"),
            json!("error")
        ]
    );
}

#[test]
fn connection_problems_have_distinct_codes() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = run_peer(
        dir.path(),
        &[&format!("ws://{closed}"), "r", "--timeout", "5s"],
        "",
    );
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("cannot connect"));

    let server = Server::start(&["--max-peers-per-room", "1"]);
    // The server refuses the upgrade itself: a malformed room name is HTTP 400.
    let bad_room = run_peer(
        dir.path(),
        &[&format!("ws://{}/room/%FF/websocket", server.addr)],
        "",
    );
    assert_eq!(bad_room.code, 4, "{}", bad_room.stderr);
    assert!(bad_room.stderr.contains("HTTP 400"), "{}", bad_room.stderr);

    // The server refuses the registration: code 6.
    let first = spawn_peer(
        dir.path(),
        &[
            &base(&server),
            "full",
            "--timeout",
            "10s",
            "--expect",
            "never",
        ],
    );
    server.wait_for_peers_blocking(1);
    let second = run_peer(
        dir.path(),
        &[&base(&server), "full", "--timeout", "10s"],
        "",
    );
    assert_eq!(second.code, 6, "{}", second.stderr);
    assert!(second.stderr.contains("room-full"), "{}", second.stderr);
    assert_eq!(second.messages().last().unwrap()["code"], "room-full");
    drop(server); // SIGKILL: the connection drops without a close frame
    let first = finish(first, "");
    assert_eq!(first.code, 8, "{}", first.stderr);
    assert!(first.stderr.contains("1006"), "{}", first.stderr);

    let usage = run_peer(dir.path(), &["ftp://nowhere", "x"], "");
    assert_eq!(usage.code, 2);
}

#[test]
fn a_server_closing_is_reported_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&[]);
    let url = base(&server);
    let waiting = spawn_peer(
        dir.path(),
        &[&url, "bye", "--expect", "offer", "--timeout", "10s"],
    );
    let plain = spawn_peer(dir.path(), &[&url, "bye", "--timeout", "10s"]);
    server.wait_for_peers_blocking(2);
    server.terminate();
    let waiting = finish(waiting, "");
    assert_eq!(
        waiting.code, 9,
        "1001 before the condition: {}",
        waiting.stderr
    );
    assert!(
        waiting
            .stderr
            .contains("connection closed by the server: 1001"),
        "{}",
        waiting.stderr
    );
    let plain = finish(plain, "");
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    server.wait_exit(WAIT);
}

#[test]
fn reconnects_with_the_same_key_after_the_server_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let id = key(dir.path(), "me.jwk");
    let server = Server::start(&[]);
    let addr = server.addr.to_string();
    let peer = spawn_peer(
        dir.path(),
        &[
            &format!("ws://{addr}"),
            "again",
            "--key",
            "me.jwk",
            "--reconnect",
            "--count",
            "2",
            "--timeout",
            "20s",
        ],
    );
    server.wait_for_peers_blocking(1);
    drop(server);
    let _again = Server::start(&["--listen", &addr]);
    let peer = finish(peer, "");
    assert_eq!(peer.code, 0, "{}", peer.stderr);
    let welcomes = peer.messages();
    assert_eq!(welcomes.len(), 2);
    assert!(
        welcomes
            .iter()
            .all(|w| w["type"] == "welcome" && w["peerId"] == id.as_str())
    );
    assert!(peer.stderr.contains("reconnecting in"), "{}", peer.stderr);
}

#[test]
fn only_buddies_refuses_to_send_to_strangers() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let friend = key(dir.path(), "friend.jwk");
    let stranger = key(dir.path(), "stranger.jwk");
    key(dir.path(), "me.jwk");
    std::fs::write(dir.path().join("buddies.txt"), format!("{friend} friend\n")).unwrap();
    let url = base(&server);
    let friend_peer = spawn_peer(
        dir.path(),
        &[
            &url,
            "b",
            "--key",
            "friend.jwk",
            "--expect",
            "offer",
            "--timeout",
            "10s",
        ],
    );
    let stranger_peer = spawn_peer(
        dir.path(),
        &[
            &url,
            "b",
            "--key",
            "stranger.jwk",
            "--expect",
            "offer",
            "--timeout",
            "3s",
        ],
    );
    server.wait_for_peers_blocking(2);
    let to = |id: &str| json!({"type": "offer", "to": id, "sdp": {}}).to_string();
    let me = run_peer(
        dir.path(),
        &[
            &url,
            "b",
            "--key",
            "me.jwk",
            "--buddies",
            "buddies.txt",
            "--only-buddies",
            "--exit-on-eof",
        ],
        &format!("{}\n{}\n", to(&stranger), to(&friend)),
    );
    // The refusal is reported, and the run says a message of its own was refused.
    assert_eq!(me.code, 10, "{}", me.stderr);
    assert!(me.stderr.contains("not on the buddy list"), "{}", me.stderr);
    assert_eq!(finish(friend_peer, "").code, 0);
    assert_eq!(
        finish(stranger_peer, "").code,
        5,
        "the stranger never got an offer"
    );
}

/// A fake server that lies about a peer's ID (and checks the custom header arrived).
#[tokio::test]
async fn a_lying_server_is_caught() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut header = None;
        // tungstenite's callback type fixes the large error type.
        #[allow(clippy::result_large_err)]
        let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                        response| {
            header = request
                .headers()
                .get("x-test")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .unwrap();
        let register: Value = match ws.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                serde_json::from_str(&text).unwrap()
            }
            other => panic!("{other:?}"),
        };
        let key = register["publicKey"].clone();
        let honest_id =
            rdv::identity::PublicJwk::from_json(&key, rdv::identity::PrivateMembers::Refuse)
                .unwrap()
                .peer_id()
                .to_string();
        let welcome = json!({"type": "welcome", "peerId": honest_id, "peers": []});
        ws.send(welcome.to_string().into()).await.unwrap();
        // Someone else's ID with a key that does not hash to it.
        let lie = json!({"type": "peer-joined", "peerId": "f".repeat(64), "publicKey": key});
        ws.send(lie.to_string().into()).await.unwrap();
        let _ = tokio::time::timeout(WAIT, ws.next()).await;
        header
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}");
    let path = dir.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        run_peer(
            &path,
            &[
                &url,
                "lies",
                "-H",
                "X-Test: yes",
                "--timeout",
                "10s",
                "--expect",
                "offer",
            ],
            "",
        )
    })
    .await
    .unwrap();
    assert_eq!(result.code, 7, "{}", result.stderr);
    assert!(
        result.stderr.contains("VERIFICATION FAILED"),
        "{}",
        result.stderr
    );
    assert_eq!(
        fake.await.unwrap().as_deref(),
        Some("yes"),
        "the -H header reached the server"
    );
}

/// wss:// through a TLS-terminating proxy with a self-signed certificate.
#[tokio::test]
async fn tls_with_a_private_ca_or_insecure() {
    let server = Server::start(&[]);
    let backend = server.addr;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), certified.cert.pem()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    let url = format!("wss://localhost:{port}");
    let path = dir.path().to_owned();
    let results = tokio::task::spawn_blocking(move || {
        [
            run_peer(
                &path,
                &[&url, "tls", "--count", "1", "--timeout", "10s"],
                "",
            ),
            run_peer(
                &path,
                &[
                    &url,
                    "tls",
                    "--ca",
                    "ca.pem",
                    "--count",
                    "1",
                    "--timeout",
                    "10s",
                ],
                "",
            ),
            run_peer(
                &path,
                &[
                    &url,
                    "tls",
                    "--insecure",
                    "--count",
                    "1",
                    "--timeout",
                    "10s",
                ],
                "",
            ),
        ]
    })
    .await
    .unwrap();
    let [untrusted, with_ca, insecure] = results;
    assert_eq!(
        untrusted.code, 3,
        "the system roots do not trust it: {}",
        untrusted.stderr
    );
    assert_eq!(with_ca.code, 0, "{}", with_ca.stderr);
    assert_eq!(with_ca.messages()[0]["type"], "welcome");
    assert_eq!(insecure.code, 0, "{}", insecure.stderr);
}

/// Interactive mode in a pseudo-terminal: commands go out, events come in above the prompt.
#[test]
fn interactive_mode_in_a_terminal() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    key(dir.path(), "me.jwk");
    let bob_id = key(dir.path(), "bob.jwk");
    let command = format!(
        "{} peer ws://{} talk --key {}/me.jwk --color never",
        common::rdv_binary(),
        server.addr,
        dir.path().display()
    );
    let mut session =
        rexpect::spawn(&command, Some(WAIT.as_millis() as u64)).expect("spawn in a pty");
    session.exp_string("rdv> ").unwrap();
    session.exp_string("nobody else is here").unwrap();
    let bob = spawn_peer(
        dir.path(),
        &[
            &base(&server),
            "talk",
            "--key",
            "bob.jwk",
            "--answer-offers",
            "--expect",
            "offer",
            "--timeout",
            "10s",
        ],
    );
    session.exp_string("peer-joined").unwrap();
    session.exp_string(&bob_id[..8]).unwrap();
    session.send_line("/peers").unwrap();
    session.exp_string(&bob_id).unwrap();
    // A short unique prefix is enough.
    session
        .send_line(&format!("/offer {}", &bob_id[..6]))
        .unwrap();
    // What a command sent is confirmed.
    session
        .exp_string(&format!("sent offer to {}", &bob_id[..8]))
        .unwrap();
    // Bob's answer is signed by his key, and the view says so (PROTOCOL §12).
    session.exp_string("signed by its key").unwrap();
    let bob = finish(bob, "");
    assert_eq!(bob.code, 0, "{}", bob.stderr);
    session.exp_string("peer-left").unwrap();
    session.send_line("/nonsense").unwrap();
    session.exp_string("unknown command").unwrap();
    // /help keeps one command per line, so a narrow terminal does not cut them off.
    session.send_line("/help").unwrap();
    session
        .exp_regex(r"/offer PEER[^\n]*\n[ \t]*/answer PEER")
        .unwrap();
    session.exp_string("/quit").unwrap();
    session.send_line("/quit").unwrap();
    session.exp_eof().unwrap();
}

/// Ctrl-C clears the line; twice in a row leaves with 130, as the exit-code table says.
#[test]
fn ctrl_c_twice_leaves_with_130() {
    let server = Server::start(&[]);
    let command = format!(
        "{} peer ws://{} talk --color never",
        common::rdv_binary(),
        server.addr
    );
    let mut session =
        rexpect::spawn(&command, Some(WAIT.as_millis() as u64)).expect("spawn in a pty");
    session.exp_string("rdv> ").unwrap();
    session.send_control('c').unwrap();
    session.exp_string("Ctrl-C again").unwrap();
    session.send_control('c').unwrap();
    session.exp_eof().unwrap();
    match session.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 130),
        other => panic!("rdv peer ended with {other:?}"),
    }
}

/// A condition is only met once the server has welcomed us: against `--proof required` with
/// an allow list that does not hold our key, `--wait-peers 0` and `--count 1` must not end
/// the run on the challenge (exit 0) but report the refused registration (exit 6).
#[test]
fn conditions_wait_for_welcome_under_proof_and_an_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = key(dir.path(), "allowed.jwk");
    key(dir.path(), "stranger.jwk");
    std::fs::write(dir.path().join("allow.txt"), format!("{allowed}\n")).unwrap();
    let allow = dir.path().join("allow.txt");
    let server = Server::start(&[
        "--proof",
        "required",
        "--allow-list",
        allow.to_str().unwrap(),
    ]);
    let url = base(&server);
    for condition in [["--wait-peers", "0"], ["--count", "1"]] {
        let refused = run_peer(
            dir.path(),
            &[
                &url,
                "r",
                "--key",
                "stranger.jwk",
                condition[0],
                condition[1],
            ],
            "",
        );
        assert_eq!(refused.code, 6, "{condition:?}: {}", refused.stderr);
        assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
        // The allowed key meets the same condition once welcomed.
        let welcomed = run_peer(
            dir.path(),
            &[
                &url,
                "r",
                "--key",
                "allowed.jwk",
                condition[0],
                condition[1],
            ],
            "",
        );
        assert_eq!(welcomed.code, 0, "{condition:?}: {}", welcomed.stderr);
        assert!(
            welcomed.messages().iter().any(|m| m["type"] == "welcome"),
            "{}",
            welcomed.stdout
        );
    }
}

#[test]
fn messages_that_are_not_json_are_refused_before_sending() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);
    // -x: a usage error, before any connection.
    let bad_x = run_peer(dir.path(), &[&url, "r", "-x", "offer"], "");
    assert_eq!(bad_x.code, 2, "{}", bad_x.stderr);
    assert!(
        bad_x.stderr.contains("-x/--send #1 is not a JSON message"),
        "{}",
        bad_x.stderr
    );
    assert!(!bad_x.stderr.contains("connected"), "{}", bad_x.stderr);
    let array = run_peer(dir.path(), &[&url, "r", "-x", "[1]"], "");
    assert_eq!(array.code, 2, "{}", array.stderr);
    assert!(array.stderr.contains("not an object"), "{}", array.stderr);
    // --send-file: the file and the line are named.
    std::fs::write(dir.path().join("s.ndjson"), "{\"type\":\"ping\"}\n\nnope\n").unwrap();
    let bad_file = run_peer(dir.path(), &[&url, "r", "--send-file", "s.ndjson"], "");
    assert_eq!(bad_file.code, 1, "{}", bad_file.stderr);
    assert!(
        bad_file
            .stderr
            .contains("s.ndjson: line 3: not a JSON message"),
        "{}",
        bad_file.stderr
    );
    // A stdin line: reported, not sent, and the run exits 10; the good line still goes out.
    let piped = run_peer(
        dir.path(),
        &[&url, "r", "--expect", "pong", "--timeout", "10s"],
        "offer\n{\"type\":\"ping\"}\n",
    );
    assert_eq!(piped.code, 10, "{}", piped.stderr);
    assert!(
        piped
            .stderr
            .contains("not sent: stdin line 1 is not a JSON message"),
        "{}",
        piped.stderr
    );
    let kinds: Vec<Value> = piped.messages().iter().map(|m| m["type"].clone()).collect();
    assert!(kinds.contains(&json!("pong")), "{kinds:?}");
    assert!(
        !kinds.contains(&json!("error")),
        "nothing invalid reached the server: {kinds:?}"
    );
}

#[test]
fn a_message_the_server_refuses_makes_a_script_exit_10() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);
    let offer = json!({"type": "offer", "to": "0".repeat(64), "sdp": {}}).to_string();
    // --linger stays for the server's answer after stdin ends.
    let refused = run_peer(
        dir.path(),
        &[&url, "r", "--linger", "2s"],
        &format!("{offer}\n"),
    );
    assert_eq!(refused.code, 10, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the server refused a message: unknown-peer"),
        "{}",
        refused.stderr
    );
    // The error is still on stdout as received.
    assert!(
        refused
            .messages()
            .iter()
            .any(|m| m["code"] == "unknown-peer")
    );
    // Waiting for an error is not a refusal.
    let expected = run_peer(
        dir.path(),
        &[
            &url,
            "r",
            "--expect",
            "error",
            "--timeout",
            "10s",
            "-x",
            &offer,
        ],
        "",
    );
    assert_eq!(expected.code, 0, "{}", expected.stderr);
    let until = run_peer(
        dir.path(),
        &[
            &url,
            "r",
            "--until",
            "code=unknown-peer",
            "--timeout",
            "10s",
            "-x",
            &offer,
        ],
        "",
    );
    assert_eq!(until.code, 0, "{}", until.stderr);
}

/// `--exit-on-eof` knows every verdict is in without a guessed `--linger`: it pings after the
/// last message and leaves on the pong, which it keeps off stdout.
#[test]
fn exit_on_eof_waits_for_the_servers_verdict() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);
    let offer = json!({"type": "offer", "to": "0".repeat(64), "sdp": {}}).to_string();
    let refused = run_peer(
        dir.path(),
        &[&url, "r", "--exit-on-eof"],
        &format!("{offer}\n"),
    );
    assert_eq!(refused.code, 10, "{}", refused.stderr);
    assert!(
        refused
            .messages()
            .iter()
            .any(|m| m["code"] == "unknown-peer"),
        "{}",
        refused.stdout
    );
    assert!(
        !refused.messages().iter().any(|m| m["type"] == "pong"),
        "{}",
        refused.stdout
    );
    // Too large for the server: closed with 1009, which names the limit.
    let big = json!({"type": "ping", "pad": "x".repeat(70_000)}).to_string();
    let too_big = run_peer(
        dir.path(),
        &[&url, "r", "--exit-on-eof"],
        &format!("{big}\n"),
    );
    assert_eq!(too_big.code, 6, "{}", too_big.stderr);
    assert!(
        too_big.stderr.contains("1009") && too_big.stderr.contains("--max-message-size"),
        "{}",
        too_big.stderr
    );
    // The user's own pings are answered on stdout as usual; ours is not.
    let pinger = run_peer(
        dir.path(),
        &[&url, "r", "--exit-on-eof"],
        "{\"type\":\"ping\"}\n{\"type\":\"ping\"}\n",
    );
    assert_eq!(pinger.code, 0, "{}", pinger.stderr);
    let pongs = pinger
        .messages()
        .iter()
        .filter(|m| m["type"] == "pong")
        .count();
    assert_eq!(pongs, 2, "{}", pinger.stdout);
}

/// What the user typed wrong is named with what to type instead.
#[test]
fn url_mistakes_say_what_to_type() {
    let dir = tempfile::tempdir().unwrap();
    let spaced = run_peer(dir.path(), &["ws://127.0.0.1:9/room/my room/websocket"], "");
    assert_eq!(spaced.code, 2, "{}", spaced.stderr);
    assert!(spaced.stderr.contains("%20"), "{}", spaced.stderr);
    let scheme = run_peer(dir.path(), &["ftp://127.0.0.1:9", "r"], "");
    assert_eq!(scheme.code, 2, "{}", scheme.stderr);
    assert!(scheme.stderr.contains("http://"), "{}", scheme.stderr);
}

#[test]
fn wss_against_a_plain_server_says_it_does_not_speak_tls() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("wss://{}", server.addr);
    let run = run_peer(dir.path(), &[&url, "r", "--insecure"], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("does not speak TLS") && run.stderr.contains("try ws://"),
        "{}",
        run.stderr
    );
}

/// A WebSocket relay between one client and `rdv serve` that rewrites what the client sends,
/// as a dishonest signaling server could: each client text frame becomes what `tamper`
/// returns (none, one changed, or several).
type Tamper = std::sync::Arc<dyn Fn(String) -> Vec<String> + Send + Sync>;

struct TamperingRelay {
    addr: std::net::SocketAddr,
}

impl TamperingRelay {
    fn start(upstream: std::net::SocketAddr, tamper: Tamper) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    tokio::spawn(relay_one(tcp, upstream, tamper.clone()));
                }
            });
        });
        Self {
            addr: rx.recv_timeout(WAIT).unwrap(),
        }
    }
}

// tungstenite's handshake callback returns its own (large) error response type.
#[allow(clippy::result_large_err)]
async fn relay_one(tcp: tokio::net::TcpStream, upstream: std::net::SocketAddr, tamper: Tamper) {
    use tokio_tungstenite::tungstenite::Message;
    let path = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = path.clone();
    let Ok(client) = tokio_tungstenite::accept_hdr_async(
        tcp,
        move |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
            *seen.lock().unwrap() = request.uri().path().to_owned();
            Ok(response)
        },
    )
    .await
    else {
        return;
    };
    let url = format!("ws://{upstream}{}", path.lock().unwrap());
    let Ok((server, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let (mut client_tx, mut client_rx) = client.split();
    let (mut server_tx, mut server_rx) = server.split();
    let up = async move {
        while let Some(Ok(message)) = client_rx.next().await {
            let out = match message {
                Message::Text(text) => tamper(text.to_string())
                    .into_iter()
                    .map(Message::text)
                    .collect(),
                other => vec![other],
            };
            for message in out {
                if server_tx.send(message).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        while let Some(Ok(message)) = server_rx.next().await {
            if client_tx.send(message).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Offers carry a signature by the sender's key (PROTOCOL §12): `rdv peer` signs what it
/// sends and reports what it checked on each offer and answer it prints.
#[test]
fn offers_are_signed_and_checked_end_to_end() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);
    key(dir.path(), "alice.jwk");
    let bob = key(dir.path(), "bob.jwk");
    let offer = json!({"type": "offer", "to": bob, "sdp": {"type": "offer", "sdp": "v=0\r\na=fingerprint:sha-256 AA:BB\r\n"}}).to_string();
    let receiver = strict_receiver(dir.path(), &url, "s", "bob.jwk", "10s");
    send_once(dir.path(), &url, "s", "alice.jwk", "1", &offer, &[]);
    let receiver = finish(receiver, "");
    assert_eq!(receiver.code, 0, "{}", receiver.stderr);
    let got = receiver.messages();
    let offer_line = got.iter().find(|m| m["type"] == "offer").unwrap();
    assert_eq!(
        offer_line["signatureCheck"]["result"], "valid",
        "{offer_line}"
    );
    assert_eq!(offer_line["signature"]["alg"], "EdDSA");

    // Unsigned: printed as missing, or dropped when signatures are required.
    let listener = spawn_peer(
        dir.path(),
        &[
            &url,
            "u",
            "--key",
            "bob.jwk",
            "--until",
            ".sdp.type=offer",
            "--timeout",
            "10s",
        ],
    );
    send_once(
        dir.path(),
        &url,
        "u",
        "alice.jwk",
        "1",
        &offer,
        &["--no-sign"],
    );
    let listener = finish(listener, "");
    assert_eq!(listener.code, 0, "{}", listener.stderr);
    let line = listener
        .messages()
        .into_iter()
        .find(|m| m["type"] == "offer")
        .unwrap();
    assert_eq!(line["signatureCheck"]["result"], "missing");
    assert!(line.get("signature").is_none());

    let strict = strict_receiver(dir.path(), &url, "v", "bob.jwk", "3s");
    send_once(
        dir.path(),
        &url,
        "v",
        "alice.jwk",
        "1",
        &offer,
        &["--no-sign"],
    );
    let strict = finish(strict, "");
    assert_eq!(
        strict.code, 5,
        "dropped, so the condition times out: {}",
        strict.stderr
    );
    assert!(strict.stderr.contains("not signed"), "{}", strict.stderr);
    assert!(!strict.messages().iter().any(|m| m["type"] == "offer"));
}

/// A signaling server that tampers with what it relays is caught: one byte of SDP, a
/// swapped DTLS fingerprint, an offer retargeted to another peer, or one replayed are each
/// refused by `rdv peer --require-signed`; an honest relay passes.
#[test]
fn a_tampering_relay_is_refused() {
    fn rewrite_sdp(text: String) -> Vec<String> {
        vec![text.replace("AA:BB", "AA:BC")]
    }
    fn swap_fingerprint(text: String) -> Vec<String> {
        vec![text.replace("sha-256 AA:BB", "sha-256 66:66")]
    }
    fn replay(text: String) -> Vec<String> {
        if text.contains("\"offer\"") {
            vec![text.clone(), text]
        } else {
            vec![text]
        }
    }
    fn honest(text: String) -> Vec<String> {
        vec![text]
    }
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    key(dir.path(), "alice.jwk");
    let bob = key(dir.path(), "bob.jwk");
    let offer = json!({"type": "offer", "to": bob, "sdp": {"type": "offer", "sdp": "v=0\r\na=fingerprint:sha-256 AA:BB\r\n"}}).to_string();
    type Rewrite = fn(String) -> Vec<String>;
    let cases: [(&str, Rewrite, i32, &str); 4] = [
        ("honest", honest, 0, ""),
        ("sdp", rewrite_sdp, 5, "bad-signature"),
        ("fingerprint", swap_fingerprint, 5, "bad-signature"),
        // The first copy is taken (and ends the run without --until); the second is refused.
        ("replay", replay, 0, "replayed"),
    ];
    for (room, tamper, expected, reason) in cases {
        let relay = TamperingRelay::start(server.addr, std::sync::Arc::new(tamper));
        let mut args = vec![
            base(&server),
            room.into(),
            "--key".into(),
            "bob.jwk".into(),
            "--require-signed".into(),
            "--timeout".into(),
            "3s".into(),
        ];
        if room != "replay" {
            args.extend(["--until".into(), ".sdp.type=offer".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let receiver = spawn_peer(dir.path(), &args);
        send_once(
            dir.path(),
            &format!("ws://{}", relay.addr),
            room,
            "alice.jwk",
            "1",
            &offer,
            &[],
        );
        let receiver = finish(receiver, "");
        assert_eq!(receiver.code, expected, "{room}: {}", receiver.stderr);
        assert!(
            receiver.stderr.contains(reason),
            "{room}: {}",
            receiver.stderr
        );
        let offers = receiver
            .messages()
            .into_iter()
            .filter(|m| m["type"] == "offer")
            .count();
        assert_eq!(offers, usize::from(expected == 0), "{room}");
    }

    // Stale: an offer Alice really signed, ten minutes ago (sent as is, not signed again).
    let alice_key: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("alice.jwk")).unwrap())
            .unwrap();
    let alice_key = rdv::identity::PrivateKey::from_jwk(&alice_key).unwrap();
    let alice = alice_key.public().peer_id().to_string();
    let mut old: Value = serde_json::from_str(&offer).unwrap();
    let ten_minutes_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 600_000;
    rdv::identity::sign_description(&mut old, &alice_key, &alice, ten_minutes_ago).unwrap();
    let receiver = strict_receiver(dir.path(), &base(&server), "stale", "bob.jwk", "3s");
    send_once(
        dir.path(),
        &base(&server),
        "stale",
        "alice.jwk",
        "1",
        &old.to_string(),
        &["--no-sign"],
    );
    let receiver = finish(receiver, "");
    assert_eq!(receiver.code, 5, "{}", receiver.stderr);
    assert!(receiver.stderr.contains("stale"), "{}", receiver.stderr);

    // Retargeted: the relay hands Alice's offer for Bob to Carol.
    let carol = key(dir.path(), "carol.jwk");
    let to_carol = move |text: String| match serde_json::from_str::<Value>(&text) {
        Ok(mut message) if message["type"] == "offer" => {
            message["to"] = carol.clone().into();
            vec![message.to_string()]
        }
        _ => vec![text],
    };
    let relay = TamperingRelay::start(server.addr, std::sync::Arc::new(to_carol));
    let receiver = strict_receiver(dir.path(), &base(&server), "retarget", "carol.jwk", "3s");
    let bystander = spawn_peer(
        dir.path(),
        &[
            &base(&server),
            "retarget",
            "--key",
            "bob.jwk",
            "--timeout",
            "4s",
        ],
    );
    send_once(
        dir.path(),
        &format!("ws://{}", relay.addr),
        "retarget",
        "alice.jwk",
        "2",
        &offer,
        &[],
    );
    let receiver = finish(receiver, "");
    let _ = finish(bystander, "");
    assert_eq!(receiver.code, 5, "{}", receiver.stderr);
    assert!(
        receiver.stderr.contains("bad-signature"),
        "{}",
        receiver.stderr
    );
}

/// With `--only-buddies`, a buddy's offers must be validly signed: an unsigned one is dropped,
/// a signed one is taken.
#[test]
fn only_buddies_requires_their_signatures() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = base(&server);
    let friend = key(dir.path(), "friend.jwk");
    let me = key(dir.path(), "me.jwk");
    std::fs::write(dir.path().join("buddies.txt"), format!("{friend} friend\n")).unwrap();
    let offer =
        json!({"type": "offer", "to": me, "sdp": {"type": "offer", "sdp": "v=0\r\n"}}).to_string();
    for (room, sign, expected) in [("unsigned", false, 5), ("signed", true, 0)] {
        let receiver = spawn_peer(
            dir.path(),
            &[
                &url,
                room,
                "--key",
                "me.jwk",
                "--buddies",
                "buddies.txt",
                "--only-buddies",
                "--until",
                ".sdp.type=offer",
                "--timeout",
                "3s",
            ],
        );
        let extra: &[&str] = if sign { &[] } else { &["--no-sign"] };
        send_once(dir.path(), &url, room, "friend.jwk", "1", &offer, extra);
        let receiver = finish(receiver, "");
        assert_eq!(receiver.code, expected, "{room}: {}", receiver.stderr);
    }
}
