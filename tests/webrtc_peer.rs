//! `rdv peer --webrtc`: real peer connections between terminal peers through a real
//! `rdv serve`, on loopback host candidates, and the stage a connection that cannot open is
//! reported stuck at.

#![cfg(feature = "webrtc")]

mod common;

use std::io::Write as _;
use std::process::Child;

use common::{Finished, Server, finish, key, spawn_peer};
use serde_json::{Value, json};

fn url(server: &Server) -> String {
    format!("ws://{}", server.addr)
}

/// Writes `line` to a running peer's stdin and closes it.
fn type_line(child: &mut Child, line: &str) {
    let mut stdin = child.stdin.take().expect("stdin piped");
    writeln!(stdin, "{line}").unwrap();
}

/// The `webrtc` lines a run printed, each with its event.
fn events(run: &Finished) -> Vec<Value> {
    run.messages()
        .into_iter()
        .filter(|m| m["type"] == "webrtc")
        .collect()
}

fn event<'a>(events: &'a [Value], name: &str) -> Option<&'a Value> {
    events.iter().find(|e| e["event"] == name)
}

#[test]
fn two_terminal_peers_open_a_data_channel_and_talk_both_ways() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = url(&server);
    let callee_id = key(dir.path(), "callee.jwk");
    let caller_id = key(dir.path(), "caller.jwk");
    let until = ["--until", ".event=message", "--timeout", "20s"];
    let mut callee = spawn_peer(
        dir.path(),
        &[&url, "talk", "--key", "callee.jwk", "--webrtc"]
            .into_iter()
            .chain(until)
            .collect::<Vec<_>>(),
    );
    let mut caller = spawn_peer(
        dir.path(),
        &[
            &url,
            "talk",
            "--key",
            "caller.jwk",
            "--webrtc",
            "--connect",
            &callee_id[..12],
            "--until",
            ".event=pair",
        ]
        .into_iter()
        .chain(until)
        .collect::<Vec<_>>(),
    );
    // Typed before any channel is open: each goes once it is.
    type_line(&mut callee, "from the callee");
    type_line(&mut caller, "from the caller");
    let caller = finish(caller, "");
    let callee = finish(callee, "");
    assert_eq!(caller.code, 0, "{}", caller.stderr);
    assert_eq!(callee.code, 0, "{}", callee.stderr);

    let heard = events(&callee);
    let message = event(&heard, "message").expect("a message");
    assert_eq!(message["peer"], caller_id.as_str());
    assert_eq!(message["data"], "from the caller");
    assert!(event(&heard, "open").is_some(), "{heard:?}");
    let said = events(&caller);
    assert_eq!(event(&said, "message").unwrap()["data"], "from the callee");
    // ICE, then DTLS, then the channel, in that order.
    let order: Vec<&str> = said
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| ["connected", "open"].contains(e))
        .collect();
    assert_eq!(order, ["connected", "open"]);
    let pair = event(&said, "pair").expect("the selected pair");
    assert_eq!(pair["peer"], callee_id.as_str());
    assert_eq!(pair["local"]["type"], "host");
    assert_eq!(pair["remote"]["type"], "host");
    assert_eq!(pair["protocol"], "udp");
    assert!(pair["rttMs"].as_f64().is_some_and(|ms| ms >= 0.0), "{pair}");
    // The descriptions went through the room, signed by their senders' keys.
    let offer = callee
        .messages()
        .into_iter()
        .find(|m| m["type"] == "offer")
        .expect("the offer came through the room");
    assert_eq!(offer["signatureCheck"]["result"], "valid");
    assert!(
        caller.stderr.contains("offering a connection to"),
        "{}",
        caller.stderr
    );
}

#[test]
fn an_offer_nobody_answers_ends_naming_the_stage() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = url(&server);
    let silent_id = key(dir.path(), "silent.jwk");
    // In the room, but no WebRTC: it never answers.
    let silent = spawn_peer(
        dir.path(),
        &[&url, "quiet", "--key", "silent.jwk", "--timeout", "15s"],
    );
    let caller = spawn_peer(
        dir.path(),
        &[
            &url,
            "quiet",
            "--webrtc",
            "--connect",
            &silent_id,
            "--until",
            ".event=open",
            "--timeout",
            "3s",
        ],
    );
    let caller = finish(caller, "");
    drop(silent);
    assert_eq!(caller.code, 5, "a timeout: {}", caller.stderr);
    assert!(
        caller.stderr.contains("no answer to our offer"),
        "{}",
        caller.stderr
    );
    assert!(event(&events(&caller), "open").is_none());
}

#[tokio::test]
async fn ice_that_cannot_succeed_ends_naming_the_stage() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // A hand-made callee: it answers with the offer's own parameters but a candidate where
    // nothing listens, so no pair can work.
    let mut callee = server.peer("unreachable").await;
    let dir_path = dir.path().to_owned();
    let url = url(&server);
    let callee_id = callee.id.clone();
    let caller = std::thread::spawn(move || {
        let caller = spawn_peer(
            &dir_path,
            &[
                &url,
                "unreachable",
                "--webrtc",
                "--connect",
                &callee_id,
                "--until",
                ".event=open",
                "--timeout",
                "4s",
            ],
        );
        finish(caller, "")
    });
    callee.client.expect("peer-joined").await;
    let offer = callee.client.expect("offer").await;
    let sdp = offer["sdp"]["sdp"].as_str().unwrap();
    let answer: String = sdp
        .split("\r\n")
        .filter(|line| !line.starts_with("a=candidate:"))
        .map(|line| match line {
            "a=setup:actpass" => "a=setup:active".to_owned(),
            _ if line.starts_with("a=ice-ufrag:") => "a=ice-ufrag:unreachable1".to_owned(),
            _ if line.starts_with("a=ice-pwd:") => "a=ice-pwd:nobodylistensonportnine".to_owned(),
            _ if line.starts_with("c=IN") => {
                format!("{line}\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host")
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let from = offer["from"].as_str().unwrap();
    callee
        .client
        .send(json!({"type": "answer", "to": from, "sdp": {"type": "answer", "sdp": answer}}))
        .await;
    let caller = tokio::task::spawn_blocking(move || caller.join().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.code, 5, "a timeout: {}", caller.stderr);
    assert!(
        caller
            .stderr
            .contains("ICE failed: no candidate pair worked"),
        "{}",
        caller.stderr
    );
}

/// Two terminal peers that may only use TURN (`--relay-only`) connect through a real coturn
/// with the credentials `welcome` gave them: the selected pair is relay on both ends.
#[test]
#[ignore = "needs coturn (apt-get install coturn); cargo test -- --ignored runs it"]
fn two_relay_only_terminal_peers_connect_through_coturn() {
    common::coturn::require();
    let coturn = common::coturn::Coturn::start();
    let (server, _turn_secret) = coturn.rdv_serving(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = url(&server);
    let callee_id = key(dir.path(), "callee.jwk");
    let mut callee = spawn_peer(
        dir.path(),
        &[
            &url,
            "relayed",
            "--key",
            "callee.jwk",
            "--webrtc",
            "--relay-only",
            "--until",
            ".event=message",
            "--timeout",
            "30s",
        ],
    );
    let mut caller = spawn_peer(
        dir.path(),
        &[
            &url,
            "relayed",
            "--webrtc",
            "--relay-only",
            "--connect",
            &callee_id,
            "--until",
            ".event=pair",
            "--until",
            ".event=message",
            "--timeout",
            "30s",
        ],
    );
    type_line(&mut callee, "relayed hello");
    type_line(&mut caller, "relayed hello back");
    let caller = finish(caller, "");
    let callee = finish(callee, "");
    assert_eq!(caller.code, 0, "{}", caller.stderr);
    assert_eq!(callee.code, 0, "{}", callee.stderr);
    assert!(
        caller.stderr.contains("relayed candidate"),
        "{}",
        caller.stderr
    );
    let said = events(&caller);
    let pair = event(&said, "pair").expect("the selected pair");
    assert_eq!(pair["local"]["type"], "relay", "{pair}");
    assert_eq!(pair["remote"]["type"], "relay", "{pair}");
    assert_eq!(event(&said, "message").unwrap()["data"], "relayed hello");
}

/// Interactively: `/connect` a peer, see the channel open and the pair, type a line that
/// arrives over the channel, and see what the other side sends.
#[test]
fn interactively_connect_and_chat_over_the_channel() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    key(dir.path(), "me.jwk");
    let bob_id = key(dir.path(), "bob.jwk");
    let command = format!(
        "{} peer ws://{} chat --key {}/me.jwk --webrtc --color never",
        common::rdv_binary(),
        server.addr,
        dir.path().display()
    );
    let mut session =
        rexpect::spawn(&command, Some(common::WAIT.as_millis() as u64)).expect("spawn in a pty");
    session.exp_string("rdv> ").unwrap();
    let mut bob = spawn_peer(
        dir.path(),
        &[
            &url(&server),
            "chat",
            "--key",
            "bob.jwk",
            "--webrtc",
            "--until",
            ".data=hello bob",
            "--timeout",
            "20s",
        ],
    );
    type_line(&mut bob, "hi from bob");
    session.exp_string("peer-joined").unwrap();
    session
        .send_line(&format!("/connect {}", &bob_id[..6]))
        .unwrap();
    session.exp_string("offering a connection to").unwrap();
    session.exp_string("data channel open").unwrap();
    session.exp_string("says: hi from bob").unwrap();
    session.send_line("hello bob").unwrap();
    session.exp_string("pair host").unwrap();
    let bob = finish(bob, "");
    assert_eq!(bob.code, 0, "{}", bob.stderr);
    session.send_line("/quit").unwrap();
    session.exp_eof().unwrap();
}
