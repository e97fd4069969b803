//! The interactive line editor: history, Tab completion of commands and peer IDs, and
//! events printed above the prompt without garbling what is being typed.

use std::sync::{Arc, Mutex};

use rustyline::Context;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use tokio::sync::mpsc;

use super::input::Input;

const COMMANDS: [&str; 9] = [
    "/peers", "/offer", "/answer", "/ice", "/send", "/sdp", "/help", "/quit", "/exit",
];
const TAKES_PEER: [&str; 3] = ["/offer", "/answer", "/ice"];

/// Peer IDs the completer offers, kept current by the event loop.
pub type PeerIds = Arc<Mutex<Vec<String>>>;

#[derive(rustyline::Helper, rustyline::Hinter, rustyline::Highlighter, rustyline::Validator)]
struct PeerHelper {
    peer_ids: PeerIds,
}

impl Completer for PeerHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(' ').map_or(0, |i| i + 1);
        let word = &before[start..];
        let words_before: Vec<&str> = before[..start].split_whitespace().collect();
        let candidates = match words_before.as_slice() {
            [] => COMMANDS
                .iter()
                .filter(|c| c.starts_with(word))
                .map(|c| format!("{c} "))
                .collect(),
            [command] if TAKES_PEER.contains(command) => self
                .peer_ids
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|id| id.starts_with(word))
                .map(|id| format!("{id} "))
                .collect(),
            _ => Vec::new(),
        };
        Ok((start, candidates))
    }
}

/// Prints above the prompt.
pub struct Printer(Box<dyn rustyline::ExternalPrinter + Send>);

impl Printer {
    pub fn print(&mut self, text: String) {
        // Failure means the terminal is gone; there is nowhere left to report it.
        let _ = self.0.print(text);
    }
}

/// Starts the editor on its own thread; lines arrive on the returned channel.
pub fn start(peer_ids: PeerIds) -> Result<(mpsc::Receiver<Input>, Printer), String> {
    let mut editor = rustyline::Editor::<PeerHelper, rustyline::history::DefaultHistory>::new()
        .map_err(|e| format!("cannot start the line editor: {e}"))?;
    editor.set_helper(Some(PeerHelper { peer_ids }));
    let printer = editor
        .create_external_printer()
        .map_err(|e| format!("cannot print above the prompt: {e}"))?;
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        loop {
            match editor.readline("rdv> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if tx.blocking_send(Input::Line(line)).is_err() {
                        return;
                    }
                }
                // Ctrl-C clears the line, as in a shell; twice in a row leaves (the driver
                // decides); Ctrl-D leaves.
                Err(ReadlineError::Interrupted) => {
                    if tx.blocking_send(Input::Interrupt).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = tx.blocking_send(Input::Eof);
                    return;
                }
            }
        }
    });
    Ok((rx, Printer(Box::new(printer))))
}

/// The terminal settings at start, put back on exit: the editor thread may still be inside
/// `readline` (raw mode) when the program decides to end.
pub struct TerminalGuard {
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
}

impl TerminalGuard {
    pub fn save() -> Self {
        #[cfg(unix)]
        {
            Self {
                saved: nix::sys::termios::tcgetattr(std::io::stdin()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}
