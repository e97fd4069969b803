//! The command line of `rdv peer`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::conditions::FieldMatch;
use crate::units::parse_duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Script mode (stdin or stdout not a terminal, or --json): every received message is printed
as one JSON line on stdout, untouched; diagnostics go to stderr; each stdin line is sent after
registration. Interactive mode: type /help.

Exit status: 0 conditions met (or a clean end), 1 failure, 2 usage error, 3 connection failed,
4 handshake refused (HTTP status), 5 timeout, 6 server error (register refused, or closed with
an error code), 7 verification failed (a peer ID that does not match its key), 8 connection
lost without a close frame (1006), 9 input or connection ended before the conditions were met,
10 (script mode) the run ended well but a message it sent was refused: by the server (an
`error` after registering, unless --expect error or --until on the error waits for one) or
locally (a stdin line that is not JSON, --only-buddies),
130 interrupted (Ctrl-C; at the interactive prompt, twice in a row).

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

    /// Refuse to send to peers that are not on --buddies, and drop offers and answers from
    /// buddies that are not validly signed (PROTOCOL §12).
    #[arg(long, requires = "buddies")]
    pub only_buddies: bool,

    /// Drop offers and answers whose signature is missing or invalid (PROTOCOL §12): reported
    /// on stderr, never printed, answered or counted by --expect and --until.
    #[arg(long)]
    pub require_signed: bool,

    /// Do not sign the offers and answers this peer sends (they are signed with its key by
    /// default, PROTOCOL §12).
    #[arg(long)]
    pub no_sign: bool,

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

    /// Leave once stdin has ended, everything was sent and the server has answered it all (a
    /// ping after the last message, and its pong): a refusal still makes the exit code 10.
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

    /// On a dropped connection, back off and reconnect with the same key (within the
    /// server's --resume-grace the room does not see us go). On by default interactively;
    /// in script mode a drop exits 8 unless this is given.
    #[arg(long, conflicts_with = "no_reconnect")]
    pub reconnect: bool,

    /// Never reconnect: a dropped connection ends the run (exit 8), interactive or not.
    #[arg(long)]
    pub no_reconnect: bool,

    /// After the welcome, check every ICE server it lists — a STUN Binding request, a TURN
    /// Allocate with the minted credential (UDP) — report each (reachable, allocation,
    /// relayed or reflexive address, round trip; NDJSON `ice-check` lines in script mode) and
    /// leave: 0 if all answered, 1 if any failed or none could be tried (TLS and TCP URLs
    /// are listed as skipped).
    #[arg(long)]
    pub ice_check: bool,

    /// Open real WebRTC peer connections (a data channel, as rdv.js's): answer every offer,
    /// and offer to --connect's peer. Reports ICE, the selected candidate pair (type,
    /// addresses, round trip), the channel's state and what arrives on it (NDJSON `webrtc`
    /// lines in script mode); stdin lines (or lines typed) go over the channel.
    #[arg(long, conflicts_with_all = ["answer_offers", "ice_check"])]
    pub webrtc: bool,

    /// With --webrtc: offer a connection to PEER (a peer ID or a unique prefix of one) once
    /// it is in the room; `*` offers to every peer in the room and every newcomer.
    #[arg(long, value_name = "PEER", requires = "webrtc")]
    pub connect: Option<String>,

    /// With --webrtc: offer only candidates relayed through the TURN servers the welcome
    /// lists (with the credential the server minted), to test that a peer can be reached
    /// through TURN alone.
    #[arg(long, requires = "webrtc")]
    pub relay_only: bool,

    /// Access token to register with, for a server started with --auth-key (PROTOCOL §13;
    /// `rdv token` makes one). Prefer RDV_TOKEN: a flag's value shows in the process list.
    #[arg(long, env = "RDV_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Never answer a proof-of-possession challenge (to test a server's `required` mode).
    #[arg(long)]
    pub no_proof: bool,

    /// How long to wait for a server's challenge before registering without one.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    pub challenge_wait: Duration,
}
