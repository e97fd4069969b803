//! What the terminal peer reads: lines typed at the prompt or piped to stdin.

use tokio::sync::mpsc;

/// A line typed or piped in, or the end of input.
#[derive(Debug)]
pub enum Input {
    Line(String),
    /// Ctrl-C at the interactive prompt.
    Interrupt,
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
