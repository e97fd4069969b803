//! Where the terminal peer's input comes from and where its output goes: stdin lines and
//! NDJSON for scripts, or the interactive line editor for people.

use std::io::Write as _;

use colored::Colorize as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::render;
use super::repl::Printer;
use super::room::RoomView;

/// A line typed or piped in, or the end of input.
#[derive(Debug)]
pub enum Input {
    Line(String),
    Eof,
}

/// Reads stdin line by line into a channel (script mode).
pub fn stdin_lines() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt as _;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(Input::Line(line)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Input::Eof).await;
    });
    rx
}

/// The stdout reader went away (`| head`): stop quietly.
#[derive(Debug)]
pub struct StdoutClosed;

pub enum Output {
    /// Every message as one JSON line on stdout; diagnostics on stderr.
    Script {
        /// stdout is a terminal: strip control characters a server may have sent.
        sanitize: bool,
    },
    /// One readable line per event, printed above the prompt.
    Interactive { printer: Printer, show_sdp: bool },
}

impl Output {
    pub fn message(
        &mut self,
        raw: &str,
        parsed: Option<&Value>,
        room: &RoomView,
    ) -> Result<(), StdoutClosed> {
        match self {
            Output::Script { sanitize } => {
                // NDJSON: one message per line, exactly as received unless it spans lines.
                let mut line = match parsed {
                    Some(value) if raw.contains('\n') => value.to_string(),
                    _ => raw.to_owned(),
                };
                if *sanitize {
                    line = render::sanitize(&line);
                }
                line.push('\n');
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(line.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|_| StdoutClosed)
            }
            Output::Interactive { printer, show_sdp } => {
                let text = match parsed {
                    Some(value) => render::describe(value, &|id| room.name(id), *show_sdp),
                    None => format!("{} {}", render::timestamp().dimmed(), render::sanitize(raw)),
                };
                printer.print(text);
                Ok(())
            }
        }
    }

    /// A diagnostic for people (stderr in script mode).
    pub fn note(&mut self, text: &str) {
        match self {
            Output::Script { .. } => eprintln!("rdv: {}", render::sanitize(text)),
            Output::Interactive { printer, .. } => printer.print(format!(
                "{} {}",
                render::timestamp().dimmed(),
                render::sanitize(text).dimmed()
            )),
        }
    }

    /// Something the user must not miss.
    pub fn alarm(&mut self, text: &str) {
        let text = render::sanitize(text);
        match self {
            Output::Script { .. } => eprintln!("rdv: {} {text}", "WARNING:".red().bold()),
            Output::Interactive { printer, .. } => {
                printer.print(format!("{} {}", "!!".red().bold(), text.red().bold()))
            }
        }
    }

    pub fn set_show_sdp(&mut self, on: bool) {
        if let Output::Interactive { show_sdp, .. } = self {
            *show_sdp = on;
        }
    }

    pub fn is_interactive(&self) -> bool {
        matches!(self, Output::Interactive { .. })
    }
}
