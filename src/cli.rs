//! The command line, defined once: `--help`, the man pages in `man/` and the completions in
//! `completions/` are all generated from [`Cli`]. This module sits on top: it imports every
//! command's arguments, and nothing imports it back.

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::bench::BenchArgs;
use crate::color::ColorWhen;
use crate::commands::fingerprint::FingerprintArgs;
use crate::commands::keygen::KeygenArgs;
use crate::commands::token::TokenArgs;
use crate::peer::PeerArgs;
use crate::server;

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
        after_help = "Where a setting comes from, first match wins: the flag, its RDV_* variable, the \
            --config file (TOML, each setting under its flag's name without the dashes), the \
            built-in default. `rdv serve --check-config` shows the result.\n\n\
            SIGHUP reloads the TLS certificate and key, the allow list, the TURN secret, the \
            access-token keys and the allowed origins (from the --config file and the \
            environment, read again) without dropping a connection.\n\n\
            Logs go to stderr; set their level with RDV_LOG (e.g. RDV_LOG=debug)."
    )]
    Serve(Box<server::Config>),

    /// Make key pairs (EC, Ed25519 or RSA) as JWK or PEM.
    Keygen(KeygenArgs),

    /// Print the peer IDs of keys, check them against a buddy list, or build one.
    Fingerprint(FingerprintArgs),

    /// Make an access token for a server started with --auth-key, or check one.
    Token(TokenArgs),

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

/// The clap command, for generating completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// When a bad value came from an `RDV_*` variable rather than the command line, clap's error
/// names only the flag; this says which variable to fix.
pub fn environment_note(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--rate-limit <PER_SECOND>" → "rate-limit"
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let given_on_command_line = std::env::args()
        .any(|word| word == format!("--{long}") || word.starts_with(&format!("--{long}=")));
    if given_on_command_line {
        return None;
    }
    let command = command();
    let variable = command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .chain(command.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_string_lossy()
        .into_owned();
    let value = std::env::var(&variable).ok()?;
    Some(format!(
        "note: --{long} was not given; the value {value:?} comes from the environment variable \
         {variable}"
    ))
}
