//! The interactive commands (`/offer`, `/ice`, `/send`, …), parsed into messages to send.

use serde_json::{Value, json};

/// A minimal SDP for `/offer` and `/answer` without one: enough for a signaling test.
pub const PLACEHOLDER_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rdv\r\nt=0 0\r\n";

pub const HELP: &str = "\
/peers                     list the peers in the room
/offer PEER [SDP|@FILE]    send an offer (a placeholder SDP if none is given)
/answer PEER [SDP|@FILE]   send an answer
/ice PEER [CANDIDATE]      send an ICE candidate (a candidate line or a JSON object)
/send JSON                 send any message as it is (also: a line starting with '{')
/sdp on|off                show SDP bodies of offers and answers
/connect PEER              with --webrtc: open a peer connection (other lines then go
                           over its data channel)
/help                      this list
/quit                      leave the room (also Ctrl-D)
PEER is a peer ID or any unique prefix of one; Tab completes it.";

#[derive(Debug, PartialEq)]
pub enum Command {
    Peers,
    Send(Value),
    ShowSdp(bool),
    Help,
    Quit,
}

/// Parses one input line. `resolve` turns a peer ID prefix into the full ID.
pub fn parse(
    line: &str,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.starts_with('{') {
        return raw(line).map(Some);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let command = match word {
        "/peers" => Command::Peers,
        "/help" | "/?" => Command::Help,
        "/quit" | "/exit" => Command::Quit,
        "/send" => raw(rest)?,
        "/sdp" => match rest {
            "on" => Command::ShowSdp(true),
            "off" => Command::ShowSdp(false),
            _ => return Err("usage: /sdp on|off".into()),
        },
        "/offer" | "/answer" => {
            let kind = &word[1..];
            let (peer, body) = peer_and_body(rest, word, resolve)?;
            let sdp = match body {
                "" => PLACEHOLDER_SDP.to_owned(),
                text => read_argument(text)?,
            };
            Command::Send(json!({"type": kind, "to": peer, "sdp": {"type": kind, "sdp": sdp}}))
        }
        "/ice" => {
            let (peer, body) = peer_and_body(rest, word, resolve)?;
            let candidate = match body {
                "" => json!({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}),
                text if text.starts_with('{') => serde_json::from_str(text)
                    .map_err(|e| format!("the candidate is not JSON: {e}"))?,
                text => {
                    json!({"candidate": read_argument(text)?, "sdpMid": "0", "sdpMLineIndex": 0})
                }
            };
            Command::Send(json!({"type": "ice-candidate", "to": peer, "candidate": candidate}))
        }
        other => return Err(format!("unknown command {other}; /help lists them")),
    };
    Ok(Some(command))
}

fn raw(text: &str) -> Result<Command, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("that is not JSON: {e}"))?;
    Ok(Command::Send(value))
}

fn peer_and_body<'a>(
    rest: &'a str,
    word: &str,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<(String, &'a str), String> {
    let (prefix, body) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if prefix.is_empty() {
        return Err(format!("usage: {word} PEER …"));
    }
    Ok((resolve(prefix)?, body.trim()))
}

/// `@FILE` reads a file; anything else is taken as written, with `\r\n` and `\n` escapes
/// turned into line breaks so an SDP fits on one input line.
fn read_argument(text: &str) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {}", crate::files::describe_io(&e))),
        None => Ok(text.replace("\\r\\n", "\r\n").replace("\\n", "\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(prefix: &str) -> Result<String, String> {
        match prefix {
            "ab" | "abcd" => Ok("abcd".repeat(16)),
            _ => Err(format!("no peer matches {prefix}")),
        }
    }

    #[test]
    fn commands_build_messages() {
        let Some(Command::Send(offer)) = parse("/offer ab", &resolve).unwrap() else {
            panic!()
        };
        assert_eq!(offer["to"], "abcd".repeat(16));
        assert_eq!(offer["sdp"]["sdp"], PLACEHOLDER_SDP);
        let Some(Command::Send(ice)) =
            parse("/ice ab candidate:1 1 udp 1 1.2.3.4 9 typ host", &resolve).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            ice["candidate"]["candidate"],
            "candidate:1 1 udp 1 1.2.3.4 9 typ host"
        );
        let Some(Command::Send(answer)) = parse(r"/answer ab v=0\r\ns=x", &resolve).unwrap() else {
            panic!()
        };
        assert_eq!(answer["sdp"]["sdp"], "v=0\r\ns=x");
        assert_eq!(
            parse(r#"{"type":"ping"}"#, &resolve).unwrap(),
            Some(Command::Send(json!({"type":"ping"})))
        );
        assert_eq!(parse("  ", &resolve).unwrap(), None);
        assert!(
            parse("/offer zz", &resolve)
                .unwrap_err()
                .contains("no peer")
        );
        assert!(parse("/offer", &resolve).is_err());
        assert!(parse("/nope", &resolve).is_err());
        assert!(parse("/send {", &resolve).is_err());
        assert_eq!(
            parse("/sdp on", &resolve).unwrap(),
            Some(Command::ShowSdp(true))
        );
    }
}
