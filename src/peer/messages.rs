//! What the peer does with each message the server sends and each line its user types or
//! pipes in: registration (with a proof when challenged), verification of announced peers,
//! automatic answers, the exit conditions, and refusing what should not be sent.

use futures_util::SinkExt as _;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::commands;
use super::connect::Socket;
use super::driver::{Driver, Ended};
use super::setup;
use super::signatures;
use crate::exit::Exit;
use crate::identity::SignatureVerdict;
use crate::protocol::{self, ErrorCode, Proof, ServerMessage};

impl Driver<'_> {
    /// The `register` message, with a proof when a challenge came and proofs are allowed;
    /// also whether it carries one.
    fn register_message(&self) -> (String, bool) {
        let public_key = self.setup.key.public().to_public_json();
        let token = self.args.token.as_deref();
        match self.nonce.as_deref().filter(|_| !self.args.no_proof) {
            Some(nonce) => {
                let key = &self.setup.key;
                let alg = key.proof_alg();
                let signature = key.sign_proof(alg, nonce).expect("a key's own alg fits it");
                let signature = crate::identity::base64url(&signature);
                let proof = Proof {
                    alg: alg.name(),
                    signature: &signature,
                };
                (protocol::register(&public_key, Some(proof), token), true)
            }
            None => (protocol::register(&public_key, None, token), false),
        }
    }

    pub(super) async fn send_register(&mut self, socket: &mut Socket) -> Option<Ended> {
        let (text, proved) = self.register_message();
        self.register_proved = proved;
        match socket.send(Message::text(text)).await {
            Ok(()) => None,
            Err(_) => Some(Ended::Dropped(None)),
        }
    }

    pub(super) async fn on_text(&mut self, socket: &mut Socket, text: &str) -> Option<Ended> {
        let mut parsed: Option<Value> = serde_json::from_str(text).ok();
        if parsed.as_ref().and_then(|v| v.get("type")) == Some(&Value::from("pong")) {
            self.pongs_seen += 1;
            if self.verdict_pong == Some(self.pongs_seen) {
                // Our own `--exit-on-eof` ping: not the user's to see.
                let code = self.code_for_conditions();
                return Some(self.finish(socket, code).await);
            }
        }
        // Offers and answers: their signature checked, the result added for the reader.
        let verdict = parsed.as_ref().and_then(|value| {
            signatures::check_incoming(value, &self.room, &mut self.seen_signatures)
        });
        if let (Some(verdict), Some(value)) = (verdict, parsed.as_ref())
            && verdict != SignatureVerdict::Valid
            && self.requires_signature_from(value)
        {
            let from = value.get("from").and_then(Value::as_str).unwrap_or("?");
            let kind = value.get("type").and_then(Value::as_str).unwrap_or("?");
            let why = match verdict {
                SignatureVerdict::Invalid(reason) => {
                    format!("signature invalid ({})", reason.as_str())
                }
                _ => "not signed".to_owned(),
            };
            self.output.alarm(&format!(
                "dropped an {kind} from {}: {why}",
                self.room.name(from)
            ));
            return None;
        }
        let annotated;
        let text = match verdict {
            Some(verdict) => {
                if let Some(value) = parsed.as_mut() {
                    value[signatures::MEMBER] = signatures::describe(verdict);
                }
                annotated = signatures::annotate(text, verdict);
                annotated.as_str()
            }
            None => text,
        };
        let message = parsed
            .as_ref()
            .map(|value| ServerMessage::parse(value).unwrap_or(ServerMessage::Other));
        match &message {
            Some(message) => {
                for mismatch in self.room.observe(message) {
                    self.output
                        .alarm(&format!("VERIFICATION FAILED: {}", mismatch.0));
                    if !self.output.is_interactive() {
                        let _ = self.output.message(text, parsed.as_ref(), &self.room);
                        return Some(self.finish(socket, Exit::VerificationFailed).await);
                    }
                }
                self.check_sender(message);
            }
            None => self.output.note("the server sent a frame that is not JSON"),
        }
        if self
            .output
            .message(text, parsed.as_ref(), &self.room)
            .is_err()
        {
            // Nobody reads our stdout any more.
            return Some(self.finish(socket, Exit::Ok).await);
        }
        *self.peer_ids.lock().expect("not poisoned") = self.room.ids();
        let (value, message) = (parsed?, message?);
        match &message {
            ServerMessage::Welcome { .. } => {
                if self.ever_registered
                    && value.get("resumed").and_then(Value::as_bool) == Some(true)
                {
                    self.output.note(
                        "resumed our place in the room: nobody saw us go, and what was sent \
                         to us meanwhile follows",
                    );
                }
                self.registered = true;
                self.ever_registered = true;
                self.next_send = Instant::now();
                if self.webrtc.is_some() {
                    self.on_welcome_webrtc(&value).await;
                }
                if self.args.ice_check {
                    let exit = self.check_ice_servers(&value).await;
                    return Some(self.finish(socket, exit).await);
                }
            }
            ServerMessage::Challenge { nonce } => self.nonce = Some(nonce.clone()),
            ServerMessage::Error { code, .. } if !self.registered => {
                // A challenge that came after an unproven register: try once more, with proof.
                let can_prove =
                    self.nonce.is_some() && !self.args.no_proof && !self.register_proved;
                if message.error_code() == Some(ErrorCode::ProofRequired) && can_prove {
                    self.output
                        .note("the server wants a proof of possession; registering again with one");
                    return self.send_register(socket).await;
                }
                self.output.note(&format!("registration refused ({code})"));
                if let Some(hint) = message.error_code().and_then(refusal_hint) {
                    self.output.note(hint);
                }
                return Some(self.finish(socket, Exit::ServerError).await);
            }
            ServerMessage::Error { code, message }
                if !self.output.is_interactive() && !self.expects_errors() =>
            {
                self.refused += 1;
                self.output
                    .note(&format!("the server refused a message: {code} ({message})"));
            }
            ServerMessage::Offer { from: Some(from) } if self.webrtc.is_some() => {
                if let Some(ended) = self.on_remote_offer(socket, from, &value).await {
                    return Some(ended);
                }
            }
            ServerMessage::Answer { from: Some(from) } if self.webrtc.is_some() => {
                self.on_remote_answer(from, &value);
            }
            ServerMessage::IceCandidate { from: Some(from) } if self.webrtc.is_some() => {
                self.on_remote_candidate(from, &value);
            }
            ServerMessage::Offer { from: Some(from) } if self.args.answer_offers => {
                let mut answer = self.setup.answer_template.clone();
                answer["type"] = "answer".into();
                answer["to"] = from.as_str().into();
                if let Some(ended) = self.send_text(socket, answer.to_string()).await {
                    return Some(ended);
                }
            }
            _ => {}
        }
        if matches!(
            message,
            ServerMessage::Welcome { .. } | ServerMessage::PeerJoined { .. }
        ) && let Some(ended) = self.connect_if_due(socket).await
        {
            return Some(ended);
        }
        self.conditions.on_message(&value);
        self.conditions.set_peer_count(self.room.count());
        // A condition is only met once registered: a challenge, or an error to an unproven
        // register, must not end the run before the server has accepted us.
        if self.registered && self.conditions.met() && (self.pending.is_empty() || self.may_send())
        {
            // Never leave with messages the user asked to send still queued.
            if let Some(ended) = self.flush_outgoing(socket).await {
                return Some(ended);
            }
            return Some(self.finish(socket, Exit::Ok).await);
        }
        if matches!(
            message,
            ServerMessage::Welcome { .. } | ServerMessage::PeerJoined { .. }
        ) {
            return self.after_input_ended(socket).await;
        }
        None
    }

    /// `--ice-check`: tries every ICE server the welcome lists and reports each.
    async fn check_ice_servers(&mut self, welcome: &Value) -> Exit {
        let Some(servers) = welcome.get("iceServers") else {
            self.output
                .note("the welcome lists no ICE servers (the server has no --ice-server)");
            return Exit::Failure;
        };
        let checks = super::ice_check::check_all(servers).await;
        if checks.is_empty() {
            self.output.note("the welcome's iceServers list is empty");
            return Exit::Failure;
        }
        for check in &checks {
            if self.output.is_interactive() {
                self.output.note(&check.describe());
            } else {
                let line = serde_json::to_string(check).expect("a check serializes");
                let _ = crate::files::write_stdout(format!("{line}\n").as_bytes());
                eprintln!("rdv: {}", check.describe());
            }
        }
        let tried = checks.iter().filter(|check| !check.skipped).count();
        if tried == 0 {
            self.output
                .note("none of the listed servers could be checked (only plain UDP is)");
            return Exit::Failure;
        }
        if checks.iter().all(|check| check.ok || check.skipped) {
            Exit::Ok
        } else {
            Exit::Failure
        }
    }

    /// `--expect error` or an `--until` on the error: server errors are what this run waits
    /// for, not a refusal to report.
    fn expects_errors(&self) -> bool {
        self.args.expect.iter().any(|kind| kind == "error")
            || self.args.until.iter().any(|m| m.is_about_errors())
    }

    /// A relayed message should come from a peer the server announced.
    fn check_sender(&mut self, message: &ServerMessage) {
        if let Some(from) = message.from()
            && self.registered
            && self.room.get(from).is_none()
        {
            self.output.alarm(&format!(
                "message from {from}, which the server never announced"
            ));
        }
    }

    pub(super) async fn on_line(&mut self, socket: &mut Socket, line: String) -> Option<Ended> {
        if !self.output.is_interactive() {
            self.stdin_lines += 1;
            if line.trim().is_empty() {
                return None;
            }
            if self.webrtc.is_some() {
                self.send_on_channel(line);
                return None;
            }
            if let Err(problem) = setup::check_json(&line) {
                self.refused += 1;
                self.output.note(&format!(
                    "not sent: stdin line {} is not a JSON message: {problem}",
                    self.stdin_lines
                ));
                return None;
            }
            if self.may_send() && self.pending.is_empty() {
                return self.send_text(socket, line).await;
            }
            self.pending.push_back(line);
            return None;
        }
        if self.webrtc.is_some() {
            let trimmed = line.trim();
            if let Some(prefix) = trimmed.strip_prefix("/connect ") {
                return match self.room.resolve(prefix.trim()) {
                    Ok(peer) => self.offer_to(socket, &peer).await,
                    Err(problem) => {
                        self.output.note(&problem);
                        None
                    }
                };
            }
            if !trimmed.is_empty() && !trimmed.starts_with(['/', '{']) {
                self.send_on_channel(line);
                return None;
            }
        }
        let room = &self.room;
        let parsed = commands::parse(&line, &|prefix| room.resolve(prefix));
        match parsed {
            Ok(None) => None,
            Ok(Some(commands::Command::Send(message))) => {
                let summary = self.describe_outgoing(&message);
                let ended = self.send_text(socket, message.to_string()).await;
                if ended.is_none()
                    && let Some(summary) = summary
                {
                    self.output.note(&summary);
                }
                ended
            }
            Ok(Some(commands::Command::Peers)) => {
                let text = if self.room.count() == 0 {
                    "nobody else is in the room".to_owned()
                } else {
                    self.room
                        .ids()
                        .iter()
                        .map(|id| {
                            let verified = self.room.get(id).is_some_and(|p| p.verified);
                            format!(
                                "{id}  {}{}",
                                self.room.name(id),
                                if verified { "" } else { "  UNVERIFIED" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                self.output.note(&text);
                None
            }
            Ok(Some(commands::Command::ShowSdp(on))) => {
                self.output.set_show_sdp(on);
                None
            }
            Ok(Some(commands::Command::Help)) => {
                self.output.note(commands::HELP);
                None
            }
            Ok(Some(commands::Command::Quit)) => Some(self.finish(socket, Exit::Ok).await),
            Err(problem) => {
                self.output.note(&problem);
                None
            }
        }
    }

    /// `sent offer to 7e27e9dc (alice)`: what an interactive command sent, unless
    /// --only-buddies will refuse it (which says so itself).
    fn describe_outgoing(&self, message: &Value) -> Option<String> {
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("?");
        match message.get("to").and_then(Value::as_str) {
            Some(to) if self.args.only_buddies && !self.room.is_buddy(to) => None,
            Some(to) => Some(format!("sent {kind} to {}", self.room.name(to))),
            None => Some(format!("sent {kind}")),
        }
    }

    /// Whether this message's description must be validly signed to be taken: always with
    /// `--require-signed`, and from buddies with `--only-buddies`.
    fn requires_signature_from(&self, message: &Value) -> bool {
        self.args.require_signed
            || (self.args.only_buddies
                && message
                    .get("from")
                    .and_then(Value::as_str)
                    .is_some_and(|from| self.room.is_buddy(from)))
    }

    /// Sends one message (its description signed unless --no-sign), unless --only-buddies
    /// forbids its target.
    pub(super) async fn send_text(&mut self, socket: &mut Socket, text: String) -> Option<Ended> {
        // Parsed once for everything below; text that is not JSON goes as is (the server
        // will say so).
        let mut message = serde_json::from_str::<Value>(&text).ok();
        if self.args.only_buddies {
            let to = message
                .as_ref()
                .and_then(|v| v.get("to").and_then(Value::as_str));
            if let Some(to) = to
                && !self.room.is_buddy(to)
            {
                self.refused += 1;
                self.output.note(&format!(
                    "not sent: {} is not on the buddy list (--only-buddies)",
                    self.room.name(to)
                ));
                return None;
            }
        }
        let ping = message
            .as_ref()
            .is_some_and(|v| v.get("type") == Some(&Value::from("ping")));
        let signed = !self.args.no_sign
            && message.as_mut().is_some_and(|message| {
                signatures::sign_outgoing(message, &self.setup.key, self.room.me().as_str())
            });
        let text = match message {
            Some(message) if signed => message.to_string(),
            _ => text,
        };
        match socket.send(Message::text(text)).await {
            Ok(()) => {
                self.pings_sent += u64::from(ping);
                None
            }
            Err(_) => Some(Ended::Dropped(None)),
        }
    }
}

/// What to do about a refused registration, when rdv can say.
fn refusal_hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::TokenRequired => {
            "this server wants an access token: pass one with --token (or RDV_TOKEN); \
             `rdv token --key FILE --room NAME` makes one"
        }
        ErrorCode::TokenPeerMismatch => {
            "the token names another peer (sub): register with that key (--key), or get a \
             token for this one (`rdv token --for KEYFILE`)"
        }
        ErrorCode::TokenExpired => "get a fresh token; `rdv token --verify` shows its times",
        ErrorCode::TokenInvalid | ErrorCode::RoomForbidden => {
            "`rdv token --verify --key KEYFILE --room NAME TOKEN` shows what the token says"
        }
        _ => return None,
    })
}
