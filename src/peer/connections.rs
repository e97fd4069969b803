//! What the peer does with `--webrtc`: offers, answers and candidates in and out over the
//! room, what the peer connections report (`webrtc` lines), lines over the data channel,
//! and which stage a connection that never opened got stuck at.

use serde_json::{Value, json};

use super::connect::Socket;
use super::driver::{Driver, Ended};
use super::webrtc::{Happening, Wake, WebRtc};
use crate::exit::Exit;

impl Driver<'_> {
    /// Starts the peer connections' sockets (before connecting to the server) and says
    /// which candidates they offer.
    pub(super) async fn start_webrtc(&mut self) -> Result<(), Exit> {
        match WebRtc::bind().await {
            Ok(mut webrtc) => {
                webrtc.set_relay_only(self.args.relay_only);
                if !self.args.relay_only {
                    self.output.note(&format!(
                        "WebRTC: local candidates {}",
                        webrtc.local_candidates().join(", ")
                    ));
                }
                self.webrtc = Some(webrtc);
                Ok(())
            }
            Err(error) => {
                self.output
                    .note(&format!("cannot open UDP sockets for WebRTC: {error}"));
                Err(Exit::Failure)
            }
        }
    }

    /// The first welcome: relayed candidates from the TURN servers it lists.
    pub(super) async fn on_welcome_webrtc(&mut self, welcome: &Value) {
        let Some(webrtc) = self.webrtc.as_mut() else {
            return;
        };
        let notes = webrtc.allocate_relays(&welcome["iceServers"]).await;
        for note in notes {
            self.output.note(&format!("WebRTC: {note}"));
        }
        let webrtc = self.webrtc.as_ref().expect("checked above");
        if self.args.relay_only && webrtc.local_candidates().is_empty() {
            self.output.note(
                "WebRTC: --relay-only, but no TURN server gave us a relay: no connection can \
                 succeed (the server needs --ice-server turn:… with --turn-secret-file)",
            );
        }
    }

    /// An offer from `from`: answered by a new peer connection.
    pub(super) async fn on_remote_offer(
        &mut self,
        socket: &mut Socket,
        from: &str,
        message: &Value,
    ) -> Option<Ended> {
        let sdp = description(message)?;
        let me = self.room.me().to_string();
        let webrtc = self.webrtc.as_mut()?;
        match webrtc.answer(&me, from, sdp) {
            Ok(Some(answer)) => {
                self.poll_webrtc_now();
                let message = json!({"type": "answer", "to": from,
                    "sdp": {"type": "answer", "sdp": answer}});
                self.send_text(socket, message.to_string()).await
            }
            Ok(None) => {
                let name = self.room.name(from);
                self.output.note(&format!(
                    "{name} offered while our offer was out; we keep ours (the peer with the \
                     smaller ID does, as rdv.js)"
                ));
                None
            }
            Err(error) => {
                let name = self.room.name(from);
                self.output
                    .note(&format!("cannot answer {name}'s offer: {error}"));
                None
            }
        }
    }

    pub(super) fn on_remote_answer(&mut self, from: &str, message: &Value) {
        let Some(sdp) = description(message) else {
            return;
        };
        let Some(webrtc) = self.webrtc.as_mut() else {
            return;
        };
        if let Err(error) = webrtc.take_answer(from, sdp) {
            let name = self.room.name(from);
            self.output
                .note(&format!("ignored {name}'s answer: {error}"));
        }
        self.poll_webrtc_now();
    }

    pub(super) fn on_remote_candidate(&mut self, from: &str, message: &Value) {
        let candidate = message.get("candidate");
        let line = candidate
            .and_then(|c| c.get("candidate").and_then(Value::as_str).or(c.as_str()))
            .unwrap_or("");
        let Some(webrtc) = self.webrtc.as_mut() else {
            return;
        };
        if let Err(error) = webrtc.add_candidate(from, line) {
            let name = self.room.name(from);
            self.output
                .note(&format!("ignored a candidate from {name}: {error}"));
        }
        self.poll_webrtc_now();
    }

    /// `--connect PEER` (or `/connect`): offers a connection once the peer is in the room;
    /// `--connect '*'` to every peer there and every newcomer.
    pub(super) async fn connect_if_due(&mut self, socket: &mut Socket) -> Option<Ended> {
        let prefix = self.args.connect.as_deref()?;
        if !self.registered {
            return None;
        }
        let targets = if prefix == "*" {
            self.room.ids()
        } else {
            vec![self.room.resolve(prefix).ok()?]
        };
        for peer in targets {
            if self.webrtc.as_ref()?.has_link(&peer) {
                continue;
            }
            if let Some(ended) = self.offer_to(socket, &peer).await {
                return Some(ended);
            }
        }
        None
    }

    pub(super) async fn offer_to(&mut self, socket: &mut Socket, peer: &str) -> Option<Ended> {
        let webrtc = self.webrtc.as_mut()?;
        match webrtc.offer(peer) {
            Ok(offer) => {
                self.poll_webrtc_now();
                let name = self.room.name(peer);
                self.output
                    .note(&format!("offering a connection to {name}"));
                let message = json!({"type": "offer", "to": peer,
                    "sdp": {"type": "offer", "sdp": offer}});
                self.send_text(socket, message.to_string()).await
            }
            Err(error) => {
                self.output.note(&format!("cannot make an offer: {error}"));
                None
            }
        }
    }

    /// A line for the data channel(s): sent now, or once one opens.
    pub(super) fn send_on_channel(&mut self, line: String) {
        if let Some(webrtc) = self.webrtc.as_mut()
            && !webrtc.send(line)
            && self.output.is_interactive()
        {
            self.output
                .note("no data channel is open yet; the line goes once one is");
        }
        self.poll_webrtc_now();
    }

    /// Runs the peer connections after `wake`: reports what happened, and ends the run when
    /// that meets its conditions.
    pub(super) async fn on_webrtc(&mut self, socket: &mut Socket, wake: Wake) -> Option<Ended> {
        let webrtc = self.webrtc.as_mut()?;
        let (happened, next) = webrtc.handle(wake);
        self.webrtc_wake = next.into();
        for happening in happened {
            let value = happening.to_json();
            self.report(&happening, &value);
            self.conditions.on_message(&value);
        }
        if self.registered && self.conditions.met() {
            if let Some(ended) = self.flush_outgoing(socket).await {
                return Some(ended);
            }
            if let Some(webrtc) = self.webrtc.as_mut() {
                webrtc.flush().await;
            }
            return Some(self.finish(socket, Exit::Ok).await);
        }
        None
    }

    fn report(&mut self, happening: &Happening, value: &Value) {
        if self.output.is_interactive() {
            let name = self.room.name(&happening.peer);
            self.output.note(&happening.describe(&name));
        } else {
            let line = format!("{value}\n");
            let _ = crate::files::write_stdout(line.as_bytes());
        }
    }

    /// After the peer connections were given something: run them at once.
    fn poll_webrtc_now(&mut self) {
        self.webrtc_wake = tokio::time::Instant::now();
    }

    /// On a timeout: each connection that did not open, and the stage it got stuck at.
    pub(super) fn report_unfinished(&mut self) {
        let Some(webrtc) = self.webrtc.as_ref() else {
            return;
        };
        let unfinished = webrtc.unfinished();
        if unfinished.is_empty() && !webrtc.any_link() {
            let why = match &self.args.connect {
                Some(peer) => format!("{peer} never came to the room"),
                None => "nobody offered a connection (and no --connect)".to_owned(),
            };
            self.output
                .note(&format!("no peer connection was started: {why}"));
        }
        for (peer, stage) in unfinished {
            let name = self.room.name(&peer);
            self.output
                .note(&format!("peer connection to {name}: {}", stage.describe()));
        }
    }
}

/// The SDP text of an offer or answer (`sdp.sdp`).
fn description(message: &Value) -> Option<&str> {
    message.get("sdp")?.get("sdp")?.as_str()
}
