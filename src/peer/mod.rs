//! `rdv peer`: join a room from the terminal to see and send every signaling message.
//!
//! Works against any server speaking PROTOCOL.md. Interactive on a terminal (a line editor
//! with commands); otherwise script mode: every received message is one NDJSON line on
//! stdout, stdin lines are sent, and exit conditions end the run with documented codes.
//!
//! `args` is the command line, `setup` reads and checks everything before connecting,
//! `driver` runs the connection (reconnects, event loop, deadlines), `messages` decides what
//! each message and input line means; `connect`, `room`, `conditions`, `io`, `render`,
//! `repl` and `commands` are their helpers. With `--webrtc`, `webrtc` runs real peer
//! connections (str0m, on UDP sockets of its own) and `connections` ties them to the room.

mod args;
mod commands;
mod conditions;
mod connect;
mod connections;
mod driver;
mod ice_check;
mod input;
mod io;
mod messages;
mod render;
mod repl;
mod room;
mod setup;
mod signatures;
mod webrtc;

use std::io::IsTerminal as _;

pub use self::args::PeerArgs;
use crate::color::ColorWhen;
use crate::exit::{CommandError, Exit};

/// The check every outgoing line gets, for the fuzz targets only.
#[doc(hidden)]
pub fn check_json_for_fuzzing(line: &str) -> Result<(), String> {
    setup::check_json(line)
}

/// Runs the terminal peer; returns the exit code.
pub fn run(args: &PeerArgs, color: ColorWhen) -> Exit {
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
            return CommandError::failure(format!("cannot start the runtime: {e}")).report();
        }
    };
    let _terminal = interactive.then(repl::TerminalGuard::save);
    let code = runtime.block_on(async {
        match setup::Setup::new(args) {
            Ok(setup) => driver::run(&setup, args, interactive).await,
            Err(error) => error.report(),
        }
    });
    // The editor thread may still be reading; do not wait for it.
    runtime.shutdown_background();
    code
}
