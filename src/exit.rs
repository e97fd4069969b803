//! Process exit codes shared by every subcommand, and the one error type a command reports.
//! The codes are documented in `--help`, the man pages and the README; scripts rely on them.

use std::fmt;

/// How a command ended. `rdv peer` uses the codes from 3 up; every command uses 0, 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The command ran and failed (a bad file, a refused connection…).
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// `rdv peer`: the connection could not be made (DNS, TCP, TLS).
    ConnectFailed = 3,
    /// `rdv peer`: the server answered the upgrade with an HTTP error.
    HandshakeRefused = 4,
    /// `rdv peer`: `--timeout` passed before the conditions were met.
    Timeout = 5,
    /// `rdv peer`: the server refused us (an error to `register`, or a close with an error code).
    ServerError = 6,
    /// `rdv peer`: the server announced a peer ID that does not match its key.
    VerificationFailed = 7,
    /// `rdv peer`: the connection dropped without a close frame (1006).
    AbnormalClose = 8,
    /// `rdv peer`: the connection or input ended before the conditions were met.
    ConditionUnmet = 9,
    /// `rdv peer` in script mode: a message it sent was refused (by the server with an
    /// `error`, or locally: not JSON, or `--only-buddies`), and the run otherwise succeeded.
    MessageRefused = 10,
    /// Interrupted by SIGINT (Ctrl-C), as shells report it (128 + 2).
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// A command's failure: the sentence for people (printed as `rdv: MESSAGE`) and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub exit: Exit,
    pub message: String,
}

impl CommandError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    /// The command line was wrong (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// The command ran and failed (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// Prints `rdv: MESSAGE` on stderr and returns the exit code.
    pub fn report(&self) -> Exit {
        eprintln!("rdv: {}", self.message);
        self.exit
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}
