//! The command line, defined once: `--help`, the man pages in `man/` and the completions in
//! `completions/` are all generated from [`Cli`].

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::bench::BenchArgs;
use crate::fingerprint_cmd::FingerprintArgs;
use crate::keygen::KeygenArgs;
use crate::peer::PeerArgs;
use crate::server;

/// Process exit codes shared by every subcommand.
pub mod exit {
    pub const OK: i32 = 0;
    /// The command ran and failed (a bad file, a refused connection…).
    pub const FAILURE: i32 = 1;
    /// The command line itself was wrong.
    pub const USAGE: i32 = 2;
    /// `rdv peer`: the connection could not be made (DNS, TCP, TLS).
    pub const CONNECT_FAILED: i32 = 3;
    /// `rdv peer`: the server answered the upgrade with an HTTP error.
    pub const HANDSHAKE_REFUSED: i32 = 4;
    /// `rdv peer`: `--timeout` passed before the conditions were met.
    pub const TIMEOUT: i32 = 5;
    /// `rdv peer`: the server refused us (an error to `register`, or a close with an error code).
    pub const SERVER_ERROR: i32 = 6;
    /// `rdv peer`: the server announced a peer ID that does not match its key.
    pub const VERIFICATION_FAILED: i32 = 7;
    /// `rdv peer`: the connection dropped without a close frame (1006).
    pub const ABNORMAL_CLOSE: i32 = 8;
    /// `rdv peer`: the connection or input ended before the conditions were met.
    pub const CONDITION_UNMET: i32 = 9;
}

#[derive(Debug, Parser)]
#[command(
    name = "rdv",
    version,
    about = "Rendezvous: a WebRTC signaling server and the terminal toolkit around it",
    long_about = "Rendezvous: a WebRTC signaling server and the terminal toolkit around it.\n\n\
        Peers connect to /room/{room}/websocket, register a JWK public key, get a peer ID \
        (the SHA-256 fingerprint of the key), learn who else is in the room, and relay WebRTC \
        offers, answers and ICE candidates to each other by peer ID.",
    after_help = "Exit status: 0 success, 1 failure, 2 usage error.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// When to use colour in output meant for people.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, env = "RDV_COLOR")]
    pub color: ColorWhen,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the signaling server.
    #[command(
        long_about = "Run the signaling server.\n\n\
            Serves WebSocket peers at /room/{room}/websocket, /healthz and /metrics on one port. \
            Every flag can also be set through the RDV_* variable shown with it. On SIGINT or \
            SIGTERM the server stops accepting peers, closes every connection with 1001 and \
            exits within the drain timeout.",
        after_help = "Logs go to stderr; set their level with RDV_LOG (e.g. RDV_LOG=debug)."
    )]
    Serve(server::Config),

    /// Make key pairs (EC, Ed25519 or RSA) as JWK or PEM.
    Keygen(KeygenArgs),

    /// Print the peer IDs of keys, check them against a buddy list, or build one.
    Fingerprint(FingerprintArgs),

    /// Join a room from the terminal: see and send every signaling message.
    Peer(Box<PeerArgs>),

    /// Load-test a signaling server, or compare rdv with a raw relay floor.
    Bench(BenchArgs),

    /// Print a shell completion script to stdout.
    #[command(after_help = "Example: rdv completions bash > /etc/bash_completion.d/rdv")]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The `--color` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Colour on a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Decides once whether output to a stream uses colour: `--color` first, then NO_COLOR
    /// (any non-empty value, see no-color.org), then whether the stream is a terminal.
    pub fn enabled_for(self, stream: &impl IsTerminal) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
            }
        }
    }
}

/// The clap command, for generating completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
