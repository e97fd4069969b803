//! One run of `rdv peer`: connect (and reconnect with back-off), register, then one event
//! loop per connection over the socket, the input lines, the send pacing and the deadlines.
//! What each message and line means is in `messages.rs`.

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use super::PeerArgs;
use super::conditions::Conditions;
use super::connect::{self, ConnectError, Socket, TlsOptions};
use super::input::{self, Input};
use super::io::Output;
use super::repl;
use super::room::RoomView;
use super::setup::Setup;
use crate::exit::Exit;
use crate::files;
use crate::protocol::CloseCode;

/// How long `--exit-on-eof` waits for the pong that says every verdict is in.
const VERDICT_WAIT: Duration = Duration::from_secs(10);

/// Runs the peer until its conditions are met, its input ends or the server ends it.
pub async fn run(setup: &Setup, args: &PeerArgs, interactive: bool) -> Exit {
    let me = setup.key.public().peer_id();
    let greeting = match &args.key {
        Some(path) => format!("peer ID {me} (key {})", files::display_name(path)),
        None => format!("peer ID {me} (ephemeral P-256 key)"),
    };
    let peer_ids: repl::PeerIds = Arc::new(Mutex::new(Vec::new()));
    let (input, output) = if interactive {
        // Printed before the editor starts: its printer only works while it reads.
        println!("{greeting}\ntype /help for commands");
        match repl::start(peer_ids.clone()) {
            Ok((input, printer)) => (
                input,
                Output::Interactive {
                    printer,
                    show_sdp: false,
                },
            ),
            Err(message) => {
                eprintln!("rdv: {message}");
                return Exit::Failure;
            }
        }
    } else {
        eprintln!("rdv: {greeting}");
        let sanitize = std::io::stdout().is_terminal();
        (input::stdin_lines(), Output::Script { sanitize })
    };
    let mut driver = Driver {
        room: RoomView::new(me, setup.buddies.clone()),
        conditions: Conditions::new(
            args.wait_peers,
            args.expect.clone(),
            args.until.clone(),
            args.count,
        ),
        output,
        input: Some(input),
        peer_ids,
        deadline: args.timeout.map(|t| Instant::now() + t),
        linger_until: None,
        input_ended: false,
        registered: false,
        ever_registered: false,
        nonce: None,
        register_proved: false,
        refused: 0,
        pings_sent: 0,
        pongs_seen: 0,
        verdict_pong: None,
        interrupted: false,
        seen_signatures: Default::default(),
        stdin_lines: 0,
        pending: setup.outgoing.clone(),
        next_send: Instant::now(),
        webrtc: None,
        webrtc_wake: Instant::now(),
        setup,
        args,
    };
    if args.webrtc
        && let Err(exit) = driver.start_webrtc().await
    {
        return exit;
    }
    let exit = driver.run().await;
    // In script mode a refused message is a failure the caller must see, unless the run
    // already failed for a more specific reason.
    if exit == Exit::Ok && driver.refused > 0 && !driver.output.is_interactive() {
        driver.output.note(&format!(
            "{} message(s) sent by this run were refused",
            driver.refused
        ));
        return Exit::MessageRefused;
    }
    exit
}

/// How one connection ended.
pub(super) enum Ended {
    /// The run is over with this exit code.
    Exit(Exit),
    /// The connection dropped; the close code if a close frame came (None: 1006).
    Dropped(Option<CloseCode>),
}

pub(super) struct Driver<'a> {
    pub(super) setup: &'a Setup,
    pub(super) args: &'a PeerArgs,
    pub(super) room: RoomView,
    pub(super) conditions: Conditions,
    pub(super) output: Output,
    pub(super) input: Option<tokio::sync::mpsc::Receiver<Input>>,
    pub(super) peer_ids: repl::PeerIds,
    pub(super) deadline: Option<Instant>,
    pub(super) linger_until: Option<Instant>,
    pub(super) input_ended: bool,
    pub(super) registered: bool,
    /// Registered on an earlier connection of this run: a welcome now is a rejoin.
    pub(super) ever_registered: bool,
    /// This connection's challenge, if the server sent one.
    pub(super) nonce: Option<String>,
    /// The last `register` carried a proof.
    pub(super) register_proved: bool,
    /// Messages of ours refused after registering (by the server or locally).
    pub(super) refused: u64,
    /// Pings sent and pongs seen, so that the pong answering `--exit-on-eof`'s own ping
    /// (which one it is: `verdict_pong`) is known among the user's.
    pub(super) pings_sent: u64,
    pub(super) pongs_seen: u64,
    pub(super) verdict_pong: Option<u64>,
    /// The last input was Ctrl-C at the prompt: one more leaves.
    pub(super) interrupted: bool,
    /// Signatures of descriptions accepted so far, so a replay is refused (PROTOCOL §12).
    pub(super) seen_signatures: crate::identity::SeenSignatures,
    /// Lines read from stdin so far, to name a bad one.
    pub(super) stdin_lines: u64,
    /// Messages waiting until sending is allowed: -x and --send-file (--delay apart), then
    /// stdin lines, in order.
    pub(super) pending: VecDeque<String>,
    pub(super) next_send: Instant,
    /// `--webrtc`: the peer connections, and when they next want time.
    pub(super) webrtc: Option<super::webrtc::WebRtc>,
    pub(super) webrtc_wake: Instant,
}

impl Driver<'_> {
    async fn run(&mut self) -> Exit {
        let mut attempt: u32 = 0;
        loop {
            let connected = match self.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.connect()).await,
                None => Ok(self.connect().await),
            };
            let dropped = match connected {
                Err(_elapsed) => return self.timed_out(),
                Ok(Err(ConnectError::Refused {
                    status,
                    reason,
                    body,
                })) => {
                    let body = if body.is_empty() {
                        String::new()
                    } else {
                        format!(": {body}")
                    };
                    self.output
                        .note(&format!("handshake refused: HTTP {status} {reason}{body}"));
                    return Exit::HandshakeRefused;
                }
                Ok(Err(ConnectError::Failed(message))) => {
                    self.output.note(&format!("cannot connect: {message}"));
                    if !self.reconnects() {
                        return Exit::ConnectFailed;
                    }
                    None
                }
                Ok(Ok(mut socket)) => {
                    self.output
                        .note(&format!("connected to {}", self.setup.url));
                    match self.session(&mut socket).await {
                        Ended::Exit(code) => return code,
                        Ended::Dropped(code) => {
                            attempt = if self.registered { 0 } else { attempt };
                            Some(code)
                        }
                    }
                }
            };
            if let Some(code) = dropped {
                self.report_close(code);
                let retry = self.reconnects()
                    && matches!(
                        code,
                        None | Some(
                            CloseCode::GOING_AWAY
                                | CloseCode::INTERNAL
                                | CloseCode::SERVICE_RESTART
                                | CloseCode::OVERLOADED
                        )
                    );
                if !retry {
                    return self.exit_for_close(code);
                }
            }
            self.registered = false;
            self.room.reset();
            attempt += 1;
            let backoff =
                Duration::from_millis(250 * 2u64.pow(attempt.min(6))).min(Duration::from_secs(10));
            self.output
                .note(&format!("reconnecting in {backoff:?} (attempt {attempt})"));
            let wake = Instant::now() + backoff;
            if self.deadline.is_some_and(|d| d < wake) {
                tokio::time::sleep_until(self.deadline.expect("checked")).await;
                return self.timed_out();
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Whether a dropped connection is retried: `--reconnect`, or interactively unless
    /// `--no-reconnect` (a script's drop keeps its documented exit code).
    fn reconnects(&self) -> bool {
        self.args.reconnect || (self.output.is_interactive() && !self.args.no_reconnect)
    }

    async fn connect(&self) -> Result<Socket, ConnectError> {
        let tls = TlsOptions {
            ca: self.args.ca.as_deref(),
            insecure: self.args.insecure,
        };
        connect::connect(&self.setup.url, &self.setup.headers, &tls).await
    }

    fn timed_out(&mut self) -> Exit {
        self.report_unfinished();
        if self.conditions.any() {
            let missing = self.conditions.missing().join(", ");
            self.output
                .note(&format!("timed out waiting for {missing}"));
            Exit::Timeout
        } else {
            Exit::Ok
        }
    }

    fn report_close(&mut self, code: Option<CloseCode>) {
        match code {
            Some(code) => {
                let why = match code.0 {
                    1008 => {
                        " (policy: a limit, a timeout or a refusal; the reason above says which)"
                    }
                    1009 => {
                        " (a message was larger than the server accepts; rdv's limit is \
                         --max-message-size, 64 KiB by default)"
                    }
                    1013 => " (the server is over a capacity limit; try again later)",
                    _ => "",
                };
                self.output
                    .note(&format!("connection closed by the server: {}{why}", code.0))
            }
            None => self
                .output
                .note("connection lost without a close frame (1006)"),
        }
    }

    fn exit_for_close(&mut self, code: Option<CloseCode>) -> Exit {
        match code {
            None => Exit::AbnormalClose,
            // A normal close or the server going away ends the run: did it meet the conditions?
            Some(CloseCode::NORMAL | CloseCode::GOING_AWAY) => self.code_for_conditions(),
            Some(_) => Exit::ServerError,
        }
    }

    pub(super) fn note_unmet(&mut self) {
        let missing = self.conditions.missing().join(", ");
        self.output.note(&format!("ended before {missing}"));
    }

    /// Registers and serves one connection.
    async fn session(&mut self, socket: &mut Socket) -> Ended {
        self.nonce = None;
        // A server asking for proof sends its challenge first thing; give it a moment so the
        // registration can carry the proof.
        if !self.args.no_proof {
            match tokio::time::timeout(self.args.challenge_wait, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Some(ended) = self.on_text(socket, &text).await {
                        return ended;
                    }
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(Some(Err(_)) | None) => return Ended::Dropped(None),
            }
        }
        if let Some(ended) = self.send_register(socket).await {
            return ended;
        }
        loop {
            let send_ready = self.may_send() && !self.pending.is_empty();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                frame = socket.next() => {
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(ended) = self.on_text(socket, &text).await {
                                return ended;
                            }
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            self.output.note(&format!("the server sent a binary frame of {} bytes", bytes.len()));
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.as_ref().map_or(CloseCode::NO_STATUS, |f| CloseCode(u16::from(f.code)));
                            if let Some(reason) = frame.as_ref().map(|f| f.reason.to_string()).filter(|r| !r.is_empty()) {
                                self.output.note(&format!("close reason: {reason}"));
                            }
                            // Let tungstenite answer the close, then the stream ends.
                            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                            return Ended::Dropped(Some(code));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return Ended::Dropped(None),
                    }
                }
                line = recv_input(&mut self.input) => {
                    match line {
                        Input::Interrupt if self.interrupted => {
                            return self.finish(socket, Exit::Interrupted).await;
                        }
                        Input::Interrupt => {
                            self.interrupted = true;
                            self.output.note("Ctrl-C again (or /quit, Ctrl-D) leaves");
                        }
                        Input::Line(line) => {
                            self.interrupted = false;
                            if let Some(ended) = self.on_line(socket, line).await {
                                return ended;
                            }
                        }
                        Input::Eof => {
                            self.input = None;
                            self.input_ended = true;
                            if self.output.is_interactive() {
                                return self.finish(socket, Exit::Ok).await;
                            }
                            if let Some(ended) = self.after_input_ended(socket).await {
                                return ended;
                            }
                        }
                    }
                }
                wake = super::webrtc::wait_any(&self.webrtc, self.webrtc_wake) => {
                    if let Some(ended) = self.on_webrtc(socket, wake).await {
                        return ended;
                    }
                }
                () = tokio::time::sleep_until(self.next_send), if send_ready => {
                    let text = self.pending.pop_front().expect("send_ready");
                    if let Some(ended) = self.send_text(socket, text).await {
                        return ended;
                    }
                    self.next_send = Instant::now() + self.args.delay.unwrap_or_default();
                }
                () = tokio::time::sleep_until(self.deadline.unwrap_or(far)), if self.deadline.is_some() => {
                    let code = self.timed_out();
                    return self.finish(socket, code).await;
                }
                () = tokio::time::sleep_until(self.linger_until.unwrap_or(far)), if self.linger_until.is_some() => {
                    let code = self.code_for_conditions();
                    return self.finish(socket, code).await;
                }
                _ = tokio::signal::ctrl_c(), if !self.output.is_interactive() => {
                    return self.finish(socket, Exit::Interrupted).await;
                }
            }
        }
    }

    /// Registered, and as many peers present as --send-after-peers asks for.
    pub(super) fn may_send(&self) -> bool {
        self.registered
            && self
                .args
                .send_after_peers
                .is_none_or(|n| self.room.count() >= n)
    }

    /// Input has ended: once sending is allowed and everything queued is out, --exit-on-eof
    /// leaves and --linger starts counting.
    pub(super) async fn after_input_ended(&mut self, socket: &mut Socket) -> Option<Ended> {
        if !self.input_ended || !self.may_send() {
            return None;
        }
        if self.args.exit_on_eof {
            if self.verdict_pong.is_some() {
                return None;
            }
            if let Some(ended) = self.flush_outgoing(socket).await {
                return Some(ended);
            }
            // The server answers a connection's messages in order: once the pong to a ping
            // sent after the last message is in, every refusal of them is too.
            if let Some(ended) = self.send_text(socket, r#"{"type":"ping"}"#.into()).await {
                return Some(ended);
            }
            self.verdict_pong = Some(self.pings_sent);
            // A server that never answers pings: do not wait forever.
            self.linger_until = Some(Instant::now() + VERDICT_WAIT);
            return None;
        }
        if let Some(linger) = self.args.linger
            && self.linger_until.is_none()
        {
            self.linger_until = Some(Instant::now() + linger);
        }
        None
    }

    /// 0 if the conditions are met (or none were given), else 9 with what is missing.
    pub(super) fn code_for_conditions(&mut self) -> Exit {
        if self.conditions.any() && !self.conditions.met() {
            self.note_unmet();
            Exit::ConditionUnmet
        } else {
            Exit::Ok
        }
    }

    pub(super) async fn flush_outgoing(&mut self, socket: &mut Socket) -> Option<Ended> {
        if !self.may_send() {
            return None;
        }
        while let Some(text) = self.pending.pop_front() {
            tokio::time::sleep_until(self.next_send).await;
            if let Some(ended) = self.send_text(socket, text).await {
                return Some(ended);
            }
            self.next_send = Instant::now() + self.args.delay.unwrap_or_default();
        }
        None
    }

    /// Closes politely (1000) and ends the run with `code`.
    pub(super) async fn finish(&mut self, socket: &mut Socket, code: Exit) -> Ended {
        let frame = CloseFrame {
            code: WsCloseCode::Normal,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            socket.close(Some(frame)).await?;
            while socket.next().await.is_some() {}
            Ok::<(), tokio_tungstenite::tungstenite::Error>(())
        })
        .await;
        Ended::Exit(code)
    }
}

/// The next input line, or never once input has ended.
async fn recv_input(input: &mut Option<tokio::sync::mpsc::Receiver<Input>>) -> Input {
    match input {
        Some(receiver) => receiver.recv().await.unwrap_or(Input::Eof),
        None => std::future::pending().await,
    }
}
