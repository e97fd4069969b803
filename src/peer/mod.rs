//! `rdv peer`: join a room from the terminal to see and send every signaling message.
//!
//! Works against any server speaking PROTOCOL.md. Interactive on a terminal (a line editor
//! with commands); otherwise script mode: every received message is one NDJSON line on
//! stdout, stdin lines are sent, and exit conditions end the run with documented codes.

mod commands;
mod conditions;
mod connect;
mod io;
mod render;
mod repl;
mod room;

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use self::conditions::{Conditions, FieldMatch};
use self::connect::{ConnectError, Socket, TlsOptions};
use self::io::{Input, Output};
use self::room::RoomView;
use crate::cli::{ColorWhen, exit};
use crate::files;
use crate::identity::{EcCurve, KeySpec, PrivateKey};
use crate::server::parse_duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Script mode (stdin or stdout not a terminal, or --json): every received message is printed
as one JSON line on stdout, untouched; diagnostics go to stderr; each stdin line is sent after
registration. Interactive mode: type /help.

Exit status: 0 conditions met (or a clean end), 1 failure, 2 usage error, 3 connection failed,
4 handshake refused (HTTP status), 5 timeout, 6 server error (register refused, or closed with
an error code), 7 verification failed (a peer ID that does not match its key), 8 connection
lost without a close frame (1006), 9 input or connection ended before the conditions were met.

Examples:
  rdv peer ws://localhost:8080 lobby
  rdv peer ws://localhost:8080 lobby --wait-peers 1 --timeout 10s
  rdv peer ws://localhost:8080 lobby --key alice.jwk -x '{\"type\":\"offer\",\"to\":\"…\",\"sdp\":{}}' --expect answer
  rdv peer wss://signal.example/room/lobby/websocket --answer-offers")]
pub struct PeerArgs {
    /// Server URL (ws://, wss://, http:// or https://), or a full ws://HOST/room/NAME/websocket URL.
    pub url: String,

    /// Room to join (leave out when URL is a full room URL).
    pub room: Option<String>,

    /// Private key to register with (JWK or PEM, e.g. from `rdv keygen`); without it an
    /// ephemeral P-256 key is made and its peer ID printed.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Buddy list (JSON or one ID per line): peers are shown as buddies or unknown.
    #[arg(long, value_name = "FILE")]
    pub buddies: Option<PathBuf>,

    /// Refuse to send to peers that are not on --buddies.
    #[arg(long, requires = "buddies")]
    pub only_buddies: bool,

    /// Trust this CA (PEM) for wss:// instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Accept any TLS certificate (for tests against self-signed servers).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,

    /// Extra HTTP header for the upgrade request, e.g. -H 'Authorization: Bearer x' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Script mode even on a terminal.
    #[arg(long)]
    pub json: bool,

    /// Give up after DURATION: exit 5 if conditions are unmet, 0 if none were given.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Condition: at least N other peers are in the room.
    #[arg(long, value_name = "N")]
    pub wait_peers: Option<usize>,

    /// Condition: a message of TYPE arrived (repeatable: each type must arrive).
    #[arg(long = "expect", value_name = "TYPE")]
    pub expect: Vec<String>,

    /// Condition: a message whose member at PATH equals VALUE arrived, e.g. .sdp.type=answer
    /// (repeatable: each must match some message).
    #[arg(long, value_name = "PATH=VALUE", value_parser = FieldMatch::parse)]
    pub until: Vec<FieldMatch>,

    /// Condition: N messages arrived (all types, welcome included).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Leave as soon as stdin ends and everything was sent.
    #[arg(long, conflicts_with = "linger")]
    pub exit_on_eof: bool,

    /// After stdin ends, stay DURATION for replies, then leave.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub linger: Option<Duration>,

    /// Message to send after registering (repeatable; before stdin lines).
    #[arg(short = 'x', long = "send", value_name = "JSON")]
    pub send: Vec<String>,

    /// Send each line of FILE after registering (after -x, before stdin lines).
    #[arg(long, value_name = "FILE")]
    pub send_file: Option<PathBuf>,

    /// Hold every outgoing message (-x, --send-file, stdin) until at least N other peers are
    /// in the room, so an offer is not sent before its callee has arrived.
    #[arg(long, value_name = "N")]
    pub send_after_peers: Option<usize>,

    /// Pause between the messages of -x and --send-file.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delay: Option<Duration>,

    /// Answer every offer, as a simulated callee (see --answer-template).
    #[arg(long)]
    pub answer_offers: bool,

    /// JSON (or @FILE) merged into each automatic answer; `to` and `type` are filled in
    /// [default: a placeholder SDP].
    #[arg(long, value_name = "JSON|@FILE", requires = "answer_offers")]
    pub answer_template: Option<String>,

    /// On a dropped connection, back off and reconnect with the same key.
    #[arg(long)]
    pub reconnect: bool,

    /// Never answer a proof-of-possession challenge (to test a server's `required` mode).
    #[arg(long)]
    pub no_proof: bool,

    /// How long to wait for a server's challenge before registering without one.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    pub challenge_wait: Duration,
}

/// Runs the terminal peer; returns the exit code.
pub fn run(args: &PeerArgs, color: ColorWhen) -> i32 {
    let interactive =
        !args.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let color_on = if interactive {
        color.enabled_for(&std::io::stdout())
    } else {
        color.enabled_for(&std::io::stderr())
    };
    colored::control::set_override(color_on);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rdv: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let _terminal = interactive.then(repl::TerminalGuard::save);
    let code = runtime.block_on(async {
        match Setup::new(args) {
            Ok(setup) => setup.run(args, interactive).await,
            Err((code, message)) => {
                eprintln!("rdv: {message}");
                code
            }
        }
    });
    // The editor thread may still be reading; do not wait for it.
    runtime.shutdown_background();
    code
}

/// Everything read and checked before connecting.
struct Setup {
    url: String,
    key: PrivateKey,
    buddies: Option<HashMap<String, Option<String>>>,
    headers: Vec<(String, String)>,
    outgoing: VecDeque<String>,
    answer_template: Value,
}

type SetupError = (i32, String);

impl Setup {
    fn new(args: &PeerArgs) -> Result<Self, SetupError> {
        let usage = |m: String| (exit::USAGE, m);
        let failure = |m: String| (exit::FAILURE, m);
        let url = connect::room_url(&args.url, args.room.as_deref()).map_err(usage)?;
        let headers = args
            .headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
                None => Err(usage(format!("header {h:?} is not NAME: VALUE"))),
            })
            .collect::<Result<_, _>>()?;
        let key = match &args.key {
            Some(path) => {
                let shown = files::display_name(path);
                let text = files::read_text(path).map_err(|e| failure(format!("{shown}: {e}")))?;
                crate::keyfile::parse_private_key(&text)
                    .map_err(|e| failure(format!("{shown}: {e}")))?
            }
            None => PrivateKey::generate(KeySpec::Ec(EcCurve::P256))
                .map_err(|e| failure(e.to_string()))?,
        };
        let buddies = match &args.buddies {
            Some(path) => {
                let shown = files::display_name(path);
                let text = files::read_text(path).map_err(|e| failure(format!("{shown}: {e}")))?;
                let list = crate::identity::parse_buddies(&text)
                    .map_err(|e| failure(format!("{shown}: {e}")))?;
                Some(
                    list.into_iter()
                        .map(|b| (b.id.to_string(), b.name))
                        .collect(),
                )
            }
            None => None,
        };
        let mut outgoing: VecDeque<String> = args.send.iter().cloned().collect();
        if let Some(path) = &args.send_file {
            let shown = files::display_name(path);
            let text = files::read_text(path).map_err(|e| failure(format!("{shown}: {e}")))?;
            outgoing.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        }
        let answer_template = match &args.answer_template {
            None => json!({"sdp": {"type": "answer", "sdp": commands::PLACEHOLDER_SDP}}),
            Some(text) => {
                let text = match text.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| failure(format!("{path}: {}", files::describe_io(&e))))?,
                    None => text.clone(),
                };
                let value: Value = serde_json::from_str(&text)
                    .map_err(|e| usage(format!("--answer-template is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(usage("--answer-template must be a JSON object".into()));
                }
                value
            }
        };
        Ok(Self {
            url,
            key,
            buddies,
            headers,
            outgoing,
            answer_template,
        })
    }

    async fn run(self, args: &PeerArgs, interactive: bool) -> i32 {
        let me = self.key.public().peer_id();
        let greeting = match &args.key {
            Some(path) => format!("peer ID {me} (key {})", files::display_name(path)),
            None => format!("peer ID {me} (ephemeral P-256 key)"),
        };
        let peer_list: repl::PeerList = Arc::new(Mutex::new(Vec::new()));
        let (input, output) = if interactive {
            // Printed before the editor starts: its printer only works while it reads.
            println!("{greeting}\ntype /help for commands");
            match repl::start(peer_list.clone()) {
                Ok((input, printer)) => (
                    input,
                    Output::Interactive {
                        printer,
                        show_sdp: false,
                    },
                ),
                Err(message) => {
                    eprintln!("rdv: {message}");
                    return exit::FAILURE;
                }
            }
        } else {
            eprintln!("rdv: {greeting}");
            let sanitize = std::io::stdout().is_terminal();
            (io::stdin_lines(), Output::Script { sanitize })
        };
        let mut driver = Driver {
            room: RoomView::new(me, self.buddies.clone()),
            conditions: Conditions::new(
                args.wait_peers,
                args.expect.clone(),
                args.until.clone(),
                args.count,
            ),
            output,
            input: Some(input),
            peer_list,
            deadline: args.timeout.map(|t| Instant::now() + t),
            linger_until: None,
            input_ended: false,
            registered: false,
            nonce: None,
            register_proved: false,
            pending: self.outgoing.clone(),
            next_send: Instant::now(),
            setup: &self,
            args,
        };
        driver.run().await
    }
}

/// How one connection ended.
enum Ended {
    /// The run is over with this exit code.
    Exit(i32),
    /// The connection dropped; the close code if a close frame came (None: 1006).
    Dropped(Option<u16>),
}

struct Driver<'a> {
    setup: &'a Setup,
    args: &'a PeerArgs,
    room: RoomView,
    conditions: Conditions,
    output: Output,
    input: Option<tokio::sync::mpsc::Receiver<Input>>,
    peer_list: repl::PeerList,
    deadline: Option<Instant>,
    linger_until: Option<Instant>,
    input_ended: bool,
    registered: bool,
    /// This connection's challenge, if the server sent one.
    nonce: Option<String>,
    /// The last `register` carried a proof.
    register_proved: bool,
    /// Messages waiting until sending is allowed: -x and --send-file (--delay apart), then
    /// stdin lines, in order.
    pending: VecDeque<String>,
    next_send: Instant,
}

impl Driver<'_> {
    async fn run(&mut self) -> i32 {
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
                    return exit::HANDSHAKE_REFUSED;
                }
                Ok(Err(ConnectError::Failed(message))) => {
                    self.output.note(&format!("cannot connect: {message}"));
                    if !self.args.reconnect {
                        return exit::CONNECT_FAILED;
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
                let retry =
                    self.args.reconnect && matches!(code, None | Some(1001 | 1011 | 1012 | 1013));
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

    async fn connect(&self) -> Result<Socket, ConnectError> {
        let tls = TlsOptions {
            ca: self.args.ca.as_deref(),
            insecure: self.args.insecure,
        };
        connect::connect(&self.setup.url, &self.setup.headers, &tls).await
    }

    fn timed_out(&mut self) -> i32 {
        if self.conditions.any() {
            let missing = self.conditions.missing().join(", ");
            self.output
                .note(&format!("timed out waiting for {missing}"));
            exit::TIMEOUT
        } else {
            exit::OK
        }
    }

    fn report_close(&mut self, code: Option<u16>) {
        match code {
            Some(code) => self
                .output
                .note(&format!("connection closed by the server: {code}")),
            None => self
                .output
                .note("connection lost without a close frame (1006)"),
        }
    }

    fn exit_for_close(&mut self, code: Option<u16>) -> i32 {
        match code {
            None => exit::ABNORMAL_CLOSE,
            // A normal close or the server going away ends the run: did it meet the conditions?
            Some(1000 | 1001) => self.code_for_conditions(),
            Some(_) => exit::SERVER_ERROR,
        }
    }

    fn note_unmet(&mut self) {
        let missing = self.conditions.missing().join(", ");
        self.output.note(&format!("ended before {missing}"));
    }

    /// The `register` message, with a proof when a challenge came and proofs are allowed.
    fn register_message(&self) -> (String, bool) {
        let mut register =
            json!({"type": "register", "publicKey": self.setup.key.public().to_public_json()});
        let mut proved = false;
        if let Some(nonce) = self.nonce.as_deref().filter(|_| !self.args.no_proof) {
            let key = &self.setup.key;
            let alg = key.proof_alg();
            let signature = key.sign_proof(alg, nonce).expect("a key's own alg fits it");
            register["proof"] =
                json!({"alg": alg.name(), "signature": crate::identity::base64url(&signature)});
            proved = true;
        }
        (register.to_string(), proved)
    }

    async fn send_register(&mut self, socket: &mut Socket) -> Option<Ended> {
        let (text, proved) = self.register_message();
        self.register_proved = proved;
        match socket.send(Message::text(text)).await {
            Ok(()) => None,
            Err(_) => Some(Ended::Dropped(None)),
        }
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
                            let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
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
                        Input::Line(line) => {
                            if let Some(ended) = self.on_line(socket, line).await {
                                return ended;
                            }
                        }
                        Input::Eof => {
                            self.input = None;
                            self.input_ended = true;
                            if self.output.is_interactive() {
                                return self.finish(socket, exit::OK).await;
                            }
                            if let Some(ended) = self.after_input_ended(socket).await {
                                return ended;
                            }
                        }
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
                    return self.finish(socket, 130).await;
                }
            }
        }
    }

    /// Registered, and as many peers present as --send-after-peers asks for.
    fn may_send(&self) -> bool {
        self.registered
            && self
                .args
                .send_after_peers
                .is_none_or(|n| self.room.count() >= n)
    }

    /// Input has ended: once sending is allowed and everything queued is out, --exit-on-eof
    /// leaves and --linger starts counting.
    async fn after_input_ended(&mut self, socket: &mut Socket) -> Option<Ended> {
        if !self.input_ended || !self.may_send() {
            return None;
        }
        if self.args.exit_on_eof {
            if let Some(ended) = self.flush_outgoing(socket).await {
                return Some(ended);
            }
            let code = self.code_for_conditions();
            return Some(self.finish(socket, code).await);
        }
        if let Some(linger) = self.args.linger
            && self.linger_until.is_none()
        {
            self.linger_until = Some(Instant::now() + linger);
        }
        None
    }

    /// 0 if the conditions are met (or none were given), else 9 with what is missing.
    fn code_for_conditions(&mut self) -> i32 {
        if self.conditions.any() && !self.conditions.met() {
            self.note_unmet();
            exit::CONDITION_UNMET
        } else {
            exit::OK
        }
    }

    async fn on_text(&mut self, socket: &mut Socket, text: &str) -> Option<Ended> {
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        if let Some(value) = &parsed {
            for mismatch in self.room.observe(value) {
                self.output
                    .alarm(&format!("VERIFICATION FAILED: {}", mismatch.0));
                if !self.output.is_interactive() {
                    let _ = self.output.message(text, parsed.as_ref(), &self.room);
                    return Some(self.finish(socket, exit::VERIFICATION_FAILED).await);
                }
            }
            self.check_sender(value);
        } else {
            self.output.note("the server sent a frame that is not JSON");
        }
        if self
            .output
            .message(text, parsed.as_ref(), &self.room)
            .is_err()
        {
            // Nobody reads our stdout any more.
            return Some(self.finish(socket, exit::OK).await);
        }
        *self.peer_list.lock().expect("not poisoned") = self.room.ids();
        let value = parsed?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "welcome" => {
                self.registered = true;
                self.next_send = Instant::now();
            }
            "challenge" => {
                self.nonce = value
                    .get("nonce")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            "error" if !self.registered => {
                let code = value.get("code").and_then(Value::as_str).unwrap_or("?");
                // A challenge that came after an unproven register: try once more, with proof.
                let can_prove =
                    self.nonce.is_some() && !self.args.no_proof && !self.register_proved;
                if code == "proof-required" && can_prove {
                    self.output
                        .note("the server wants a proof of possession; registering again with one");
                    return self.send_register(socket).await;
                }
                self.output.note(&format!("registration refused ({code})"));
                return Some(self.finish(socket, exit::SERVER_ERROR).await);
            }
            "offer" if self.args.answer_offers => {
                if let Some(from) = value.get("from").and_then(Value::as_str) {
                    let mut answer = self.setup.answer_template.clone();
                    answer["type"] = "answer".into();
                    answer["to"] = from.into();
                    if let Some(ended) = self.send_text(socket, answer.to_string()).await {
                        return Some(ended);
                    }
                }
            }
            _ => {}
        }
        self.conditions.on_message(&value);
        self.conditions.set_peer_count(self.room.count());
        if self.conditions.met() && (self.pending.is_empty() || self.may_send()) {
            // Never leave with messages the user asked to send still queued.
            if let Some(ended) = self.flush_outgoing(socket).await {
                return Some(ended);
            }
            return Some(self.finish(socket, exit::OK).await);
        }
        if matches!(kind, "welcome" | "peer-joined") {
            return self.after_input_ended(socket).await;
        }
        None
    }

    /// A relayed message should come from a peer the server announced.
    fn check_sender(&mut self, value: &Value) {
        if let Some(from) = value.get("from").and_then(Value::as_str)
            && self.registered
            && self.room.get(from).is_none()
        {
            self.output.alarm(&format!(
                "message from {from}, which the server never announced"
            ));
        }
    }

    async fn on_line(&mut self, socket: &mut Socket, line: String) -> Option<Ended> {
        if !self.output.is_interactive() {
            if line.trim().is_empty() {
                return None;
            }
            if self.may_send() && self.pending.is_empty() {
                return self.send_text(socket, line).await;
            }
            self.pending.push_back(line);
            return None;
        }
        let room = &self.room;
        let parsed = commands::parse(&line, &|prefix| room.resolve(prefix));
        match parsed {
            Ok(None) => None,
            Ok(Some(commands::Command::Send(message))) => {
                self.send_text(socket, message.to_string()).await
            }
            Ok(Some(commands::Command::Peers)) => {
                let lines: Vec<String> = if self.room.count() == 0 {
                    vec!["nobody else is in the room".to_owned()]
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
                        .collect()
                };
                for line in lines {
                    self.output.note(&line);
                }
                None
            }
            Ok(Some(commands::Command::ShowSdp(on))) => {
                self.output.set_show_sdp(on);
                None
            }
            Ok(Some(commands::Command::Help)) => {
                for line in commands::HELP.lines() {
                    self.output.note(line);
                }
                None
            }
            Ok(Some(commands::Command::Quit)) => Some(self.finish(socket, exit::OK).await),
            Err(problem) => {
                self.output.note(&problem);
                None
            }
        }
    }

    /// Sends one message, unless --only-buddies forbids its target.
    async fn send_text(&mut self, socket: &mut Socket, text: String) -> Option<Ended> {
        if self.args.only_buddies {
            let to = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("to").and_then(Value::as_str).map(str::to_owned));
            if let Some(to) = to
                && !self.room.is_buddy(&to)
            {
                self.output.note(&format!(
                    "not sent: {} is not on the buddy list (--only-buddies)",
                    self.room.name(&to)
                ));
                return None;
            }
        }
        match socket.send(Message::text(text)).await {
            Ok(()) => None,
            Err(_) => Some(Ended::Dropped(None)),
        }
    }

    async fn flush_outgoing(&mut self, socket: &mut Socket) -> Option<Ended> {
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
    async fn finish(&mut self, socket: &mut Socket, code: i32) -> Ended {
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
