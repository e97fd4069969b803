//! Everything `rdv peer` reads and checks before it connects: the room URL, headers, the key,
//! the buddy list, the messages to send and the answer template. A problem here is reported
//! before any connection is made, naming the flag or the file at fault.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::PeerArgs;
use super::commands;
use crate::exit::CommandError;
use crate::files;
use crate::identity::{EcCurve, KeySpec, PrivateKey, keyfile};
use crate::protocol;

/// A buddy list as the peer uses it: peer ID → name, if the list gave one.
pub type Buddies = HashMap<String, Option<String>>;

pub struct Setup {
    pub url: String,
    pub key: PrivateKey,
    pub buddies: Option<Buddies>,
    pub headers: Vec<(String, String)>,
    /// -x messages, then --send-file lines, each checked to be JSON.
    pub outgoing: VecDeque<String>,
    pub answer_template: Value,
}

impl Setup {
    pub fn new(args: &PeerArgs) -> Result<Self, CommandError> {
        let url =
            protocol::room_url(&args.url, args.room.as_deref()).map_err(CommandError::usage)?;
        let headers = args
            .headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
                None => Err(CommandError::usage(format!(
                    "header {h:?} is not NAME: VALUE"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let key = match &args.key {
            Some(path) => {
                let (shown, text) = read(path)?;
                keyfile::parse_private_key(&text)
                    .map_err(|e| CommandError::failure(format!("{shown}: {e}")))?
            }
            None => PrivateKey::generate(KeySpec::Ec(EcCurve::P256))
                .map_err(|e| CommandError::failure(e.to_string()))?,
        };
        let buddies = match &args.buddies {
            Some(path) => {
                let (shown, text) = read(path)?;
                let list = crate::identity::parse_buddies(&text)
                    .map_err(|e| CommandError::failure(format!("{shown}: {e}")))?;
                // A name that only repeats the ID (older lists made from keygen's kid) is
                // no name: the peer is shown as a buddy.
                Some(
                    list.into_iter()
                        .map(|b| {
                            let id = b.id.to_string();
                            let name = b.name.filter(|name| *name != id);
                            (id, name)
                        })
                        .collect(),
                )
            }
            None => None,
        };
        let mut outgoing = VecDeque::new();
        for (index, message) in args.send.iter().enumerate() {
            if let Err(problem) = check_json(message) {
                return Err(CommandError::usage(format!(
                    "-x/--send #{} is not a JSON message: {problem}",
                    index + 1
                )));
            }
            outgoing.push_back(message.clone());
        }
        if let Some(path) = &args.send_file {
            let (shown, text) = read(path)?;
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                if let Err(problem) = check_json(line) {
                    return Err(CommandError::failure(format!(
                        "{shown}: line {}: not a JSON message: {problem}",
                        number + 1
                    )));
                }
                outgoing.push_back(line.to_owned());
            }
        }
        let answer_template = match &args.answer_template {
            None => json!({"sdp": {"type": "answer", "sdp": commands::PLACEHOLDER_SDP}}),
            Some(text) => {
                let text = match text.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path).map_err(|e| {
                        CommandError::failure(format!("{path}: {}", files::describe_io(&e)))
                    })?,
                    None => text.clone(),
                };
                let value: Value = serde_json::from_str(&text).map_err(|e| {
                    CommandError::usage(format!("--answer-template is not JSON: {e}"))
                })?;
                if !value.is_object() {
                    return Err(CommandError::usage(
                        "--answer-template must be a JSON object",
                    ));
                }
                value
            }
        };
        Ok(Self {
            url,
            key,
            buddies,
            headers,
            outgoing,
            answer_template,
        })
    }
}

/// Reads a whole input named on the command line: (its name as shown, its text).
fn read(path: &std::path::Path) -> Result<(String, String), CommandError> {
    let shown = files::display_name(path);
    let text =
        files::read_text(path).map_err(|e| CommandError::failure(format!("{shown}: {e}")))?;
    Ok((shown, text))
}

/// A message to send must be a JSON object: the server would only answer `invalid-json`.
pub fn check_json(text: &str) -> Result<(), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(_) => Err("it is JSON but not an object ({…})".into()),
        Err(e) => Err(e.to_string()),
    }
}
