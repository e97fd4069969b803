//! Where the terminal peer's input comes from and where its output goes: stdin lines and
//! NDJSON for scripts, or the interactive line editor for people.

use std::io::Write as _;

use colored::Colorize as _;
use serde_json::Value;

use super::render;
use super::repl::Printer;
use super::room::RoomView;

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
        // Each line sanitized on its own, so a multi-line note (the /help list) keeps its
        // lines rather than running into one that the terminal cuts off.
        let lines: Vec<String> = text.lines().map(render::sanitize).collect();
        match self {
            Output::Script { .. } => eprintln!("rdv: {}", lines.join("\nrdv: ")),
            Output::Interactive { printer, .. } => {
                let indent = " ".repeat(render::timestamp().chars().count() + 1);
                printer.print(format!(
                    "{} {}",
                    render::timestamp().dimmed(),
                    lines.join(&format!("\n{indent}")).dimmed()
                ))
            }
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
