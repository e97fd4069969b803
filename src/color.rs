//! Whether output meant for people uses colour: decided once from `--color`, `NO_COLOR` and
//! whether the stream is a terminal, then passed down.

use std::io::IsTerminal;

use clap::ValueEnum;

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
