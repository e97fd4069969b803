//! What the peer connections report, in words and as NDJSON `webrtc` lines (docs/cli.md):
//! plain data, built with or without the `webrtc` feature.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// How far one peer connection got: what a timeout names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// We offered; no answer came.
    AwaitingAnswer,
    /// Descriptions exchanged; no candidate pair has worked yet.
    Ice,
    /// A pair works; the DTLS handshake has not finished.
    Dtls,
    /// Secure; the data channel has not opened.
    Channel,
    Open,
    Closed,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::AwaitingAnswer => "no answer to our offer",
            Stage::Ice => "ICE failed: no candidate pair worked",
            Stage::Dtls => "DTLS failed: a pair worked but the handshake did not finish",
            Stage::Channel => "the data channel never opened",
            Stage::Open => "open",
            Stage::Closed => "closed",
        }
    }
}

/// Something a peer connection did, for the user and the conditions. As JSON it is one
/// NDJSON line: `{"type":"webrtc","event":…,"peer":…}` (docs/cli.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Happening {
    pub peer: String,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// ICE's state changed (`checking`, `connected`, `disconnected`, …).
    Ice(&'static str),
    /// DTLS is up.
    Connected,
    /// The data channel is open.
    Open,
    /// The selected candidate pair, first seen or changed, and its round-trip time.
    Pair {
        local: (&'static str, SocketAddr),
        remote: (&'static str, SocketAddr),
        protocol: &'static str,
        rtt_ms: Option<f64>,
    },
    /// A text (or binary, shown as its length) message on the data channel.
    Message(String),
    Closed,
}

impl Happening {
    pub fn to_json(&self) -> Value {
        let mut value = json!({"type": "webrtc", "peer": self.peer});
        match &self.what {
            What::Ice(state) => {
                value["event"] = "ice".into();
                value["state"] = (*state).into();
            }
            What::Connected => value["event"] = "connected".into(),
            What::Open => value["event"] = "open".into(),
            What::Pair {
                local,
                remote,
                protocol,
                rtt_ms,
            } => {
                value["event"] = "pair".into();
                value["local"] = json!({"type": local.0, "address": local.1.to_string()});
                value["remote"] = json!({"type": remote.0, "address": remote.1.to_string()});
                value["protocol"] = (*protocol).into();
                value["rttMs"] = rtt_ms.map_or(Value::Null, Value::from);
            }
            What::Message(data) => {
                value["event"] = "message".into();
                value["data"] = data.as_str().into();
            }
            What::Closed => value["event"] = "closed".into(),
        }
        value
    }

    /// One line for people.
    pub fn describe(&self, name: &str) -> String {
        match &self.what {
            What::Ice(state) => format!("{name}: ICE {state}"),
            What::Connected => format!("{name}: connected (DTLS)"),
            What::Open => format!("{name}: data channel open; lines you type go to it"),
            What::Pair {
                local,
                remote,
                protocol,
                rtt_ms,
            } => {
                let rtt = rtt_ms.map_or(String::new(), |ms| format!(", RTT {ms:.1} ms"));
                format!(
                    "{name}: pair {} {} ↔ {} {} over {protocol}{rtt}",
                    local.0, local.1, remote.0, remote.1
                )
            }
            What::Message(data) => format!("{name} says: {data}"),
            What::Closed => format!("{name}: peer connection closed"),
        }
    }
}
