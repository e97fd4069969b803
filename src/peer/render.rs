//! Showing messages to people: one line per event with a timestamp, the type in colour,
//! short peer IDs and buddy names; SDP pretty-printed on request. Everything a server sent
//! is stripped of control characters before it reaches the terminal.

use colored::Colorize as _;
use serde_json::Value;

/// Removes terminal control characters (C0 except tab, DEL, C1), so a hostile server
/// cannot move the cursor, retitle the window or hide text.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\t' || !(c.is_control()))
        .collect()
}

/// The local time of day, `HH:MM:SS.mmm` (UTC; a terminal tool has no business loading
/// time zone databases).
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

pub fn short_id(id: &str) -> &str {
    crate::protocol::truncate_chars(id, 8)
}

/// `stun:s:3478, turn:t:3478 (credentials until 14:05:00 UTC)`: the URLs of an `iceServers`
/// array and, for minted TURN credentials, when they expire.
pub fn ice_summary(servers: &Value) -> String {
    let mut parts = Vec::new();
    for server in servers.as_array().into_iter().flatten() {
        let urls: Vec<&str> = match &server["urls"] {
            Value::String(url) => vec![url.as_str()],
            Value::Array(urls) => urls.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut part = urls.join(", ");
        let expiry = server["username"]
            .as_str()
            .and_then(|u| u.split_once(':'))
            .and_then(|(expiry, _)| expiry.parse::<u64>().ok());
        if let Some(expiry) = expiry {
            let secs = expiry % 86_400;
            part.push_str(&format!(
                " (credentials until {:02}:{:02}:{:02} UTC)",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

/// How to name a peer: short ID, plus the buddy name when known.
pub type Namer<'a> = dyn Fn(&str) -> String + 'a;

/// One line (or, with SDP shown, several) describing a received message.
/// How a description's signature checked out (PROTOCOL §12), as the interactive view says it.
fn signature_mark(message: &Value) -> String {
    let check = message.get("signatureCheck");
    match check.and_then(|c| c.get("result")).and_then(Value::as_str) {
        Some("valid") => format!(", {}", "signed by its key".green()),
        Some("missing") => format!(", {}", "unsigned".yellow()),
        Some(_) => {
            let reason = check
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!(", {}", format!("SIGNATURE INVALID ({reason})").red().bold())
        }
        None => String::new(),
    }
}

pub fn describe(message: &Value, name: &Namer<'_>, show_sdp: bool) -> String {
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("?");
    let from = message.get("from").and_then(Value::as_str);
    let peer_id = message.get("peerId").and_then(Value::as_str);
    let label = match kind {
        "offer" | "answer" => kind.magenta().bold(),
        "ice-candidate" => kind.cyan(),
        "welcome" | "peer-joined" => kind.green().bold(),
        "peer-left" => kind.yellow().bold(),
        "error" => kind.red().bold(),
        _ => kind.normal(),
    };
    let detail = match kind {
        "welcome" => {
            let peers = message.get("peers").and_then(Value::as_array);
            let others: Vec<String> = peers
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("id").and_then(Value::as_str))
                .map(name)
                .collect();
            let you = peer_id.map(name).unwrap_or_default();
            let mut text = if others.is_empty() {
                format!("you are {you}; nobody else is here")
            } else {
                format!("you are {you}; here: {}", others.join(", "))
            };
            if let Some(servers) = message.get("iceServers") {
                text.push_str(&format!("; ICE servers: {}", ice_summary(servers)));
            }
            text
        }
        "ice-servers" => message
            .get("iceServers")
            .map(ice_summary)
            .unwrap_or_default(),
        "peer-joined" | "peer-left" => peer_id.map(name).unwrap_or_default(),
        "error" => format!(
            "{}: {}",
            message.get("code").and_then(Value::as_str).unwrap_or("?"),
            message.get("message").and_then(Value::as_str).unwrap_or("")
        ),
        "offer" | "answer" => {
            let sdp = sdp_text(message);
            let lines = sdp.map_or(0, |s| s.lines().count());
            format!(
                "from {} ({lines} SDP lines){}",
                from.map(name).unwrap_or_default(),
                signature_mark(message)
            )
        }
        "ice-candidate" => {
            let candidate = message
                .get("candidate")
                .and_then(|c| c.get("candidate").or(Some(c)))
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                .unwrap_or_default();
            format!("from {}: {candidate}", from.map(name).unwrap_or_default())
        }
        _ => message.to_string(),
    };
    let mut line = format!("{} {label} {}", timestamp().dimmed(), sanitize(&detail));
    if show_sdp && let Some(sdp) = sdp_text(message) {
        for sdp_line in sdp.lines() {
            line.push_str(&format!("\n    {}", sanitize(sdp_line).dimmed()));
        }
    }
    line
}

fn sdp_text(message: &Value) -> Option<&str> {
    let sdp = message.get("sdp")?;
    sdp.get("sdp").and_then(Value::as_str).or(sdp.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_are_summarised_with_their_expiry() {
        let servers = serde_json::json!([
            {"urls": ["stun:s.example:3478"]},
            {"urls": "turn:t.example:3478", "username": "1700003600:ab", "credential": "x"}
        ]);
        assert_eq!(
            ice_summary(&servers),
            "stun:s.example:3478; turn:t.example:3478 (credentials until 23:13:20 UTC)"
        );
        assert_eq!(ice_summary(&serde_json::json!([])), "none");
    }
    use serde_json::json;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(sanitize("a\x1b[2Jb\x07c\u{9b}d\te\r\n"), "a[2Jbcd\te");
    }

    #[test]
    fn descriptions_name_peers_and_count_sdp_lines() {
        colored::control::set_override(false);
        let name = |id: &str| format!("{}(alice)", short_id(id));
        let offer = json!({"type": "offer", "from": "0123456789abcdef", "sdp": {"type": "offer", "sdp": "v=0\r\ns=-\r\n"}});
        let line = describe(&offer, &name, false);
        assert!(
            line.ends_with("offer from 01234567(alice) (2 SDP lines)"),
            "{line}"
        );
        let shown = describe(&offer, &name, true);
        assert!(shown.contains("\n    v=0"), "{shown}");
    }
}
