//! `rdv fingerprint`: peer IDs (or RFC 7638 thumbprints) of keys in files, for buddy lists
//! and CI scripts. Output conventions follow sha256sum: one input prints the bare ID, several
//! print `ID  SOURCE` lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::exit::Exit;
use crate::files;
use crate::identity::keyfile;
use crate::identity::{self, PublicJwk, Scheme};

#[derive(Debug, Args)]
#[command(after_help = "\
Inputs may hold a public or private JWK (private members are ignored), a JWK Set, NDJSON of JWKs,
a JSON array of JWKs or buddy entries, or PEM (SPKI, PKCS#8, PKCS#1, SEC1). A member of a JWK
Set, array, NDJSON or multi-block PEM is named FILE#INDEX, counting from 0.

--json prints an array of {\"peerId\", \"kty\", \"crv\", \"source\"} (\"thumbprint\" instead of \"peerId\"
with --scheme rfc7638; \"canonical\" added by --explain). With --json, stdout stays empty unless
every input succeeds.

Exit status: 0 success, 1 a bad input or a failed --check/--expect, 2 usage error.")]
pub struct FingerprintArgs {
    /// Key files; `-` reads stdin (the default when no file is given).
    #[arg(value_name = "FILE", default_value = "-")]
    pub inputs: Vec<PathBuf>,

    /// Print a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,

    /// How to print the digest: hex (default for peer-id) or base64url (default for rfc7638).
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,

    /// What to hash: the peer ID text of PROTOCOL §4, or the standard RFC 7638 JWK thumbprint
    /// (same members, sorted by name; never equal to the peer ID).
    #[arg(long, value_enum, default_value_t = SchemeArg::PeerId)]
    pub scheme: SchemeArg,

    /// Print the exact text that is hashed instead of the digest, to compare with a browser's
    /// JSON.stringify output.
    #[arg(long, conflicts_with_all = ["buddy_list", "check", "expect"])]
    pub explain: bool,

    /// Print a JSON buddy list [{"id", "name", "publicKey"}]; the name is the key's kid (unless
    /// the kid is just the peer ID, as `rdv keygen` sets it without --name), else the file stem.
    #[arg(long, conflicts_with_all = ["json", "check", "expect"])]
    pub buddy_list: bool,

    /// Exit 0 only if every key's peer ID is on this buddy list (JSON, or one ID per line);
    /// prints `SOURCE: OK` or `SOURCE: NOT ON LIST` for each key.
    #[arg(long, value_name = "BUDDYLIST", conflicts_with = "expect")]
    pub check: Option<PathBuf>,

    /// Exit 0 only if the single key's digest (as printed) equals ID.
    #[arg(long, value_name = "ID")]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Hex,
    Base64url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// PROTOCOL §4 peer ID.
    PeerId,
    /// RFC 7638 JWK thumbprint.
    Rfc7638,
}

/// One successfully read key and where it came from.
struct Fingerprinted {
    source: String,
    stem: String,
    kid: Option<String>,
    key: PublicJwk,
    digest: String,
}

/// Runs the command; returns the exit code. Problems with inputs are reported on stderr as
/// `rdv: SOURCE: problem`.
pub fn run(args: &FingerprintArgs) -> Exit {
    let scheme = match args.scheme {
        SchemeArg::PeerId => Scheme::PeerId,
        SchemeArg::Rfc7638 => Scheme::Rfc7638,
    };
    let encoding = args.encoding.unwrap_or(match scheme {
        Scheme::PeerId => Encoding::Hex,
        Scheme::Rfc7638 => Encoding::Base64url,
    });
    let compares_peer_ids = args.check.is_some() || args.buddy_list;
    if compares_peer_ids && (scheme != Scheme::PeerId || encoding != Encoding::Hex) {
        eprintln!("rdv: --check and --buddy-list work on peer IDs; drop --scheme and --encoding");
        return Exit::Usage;
    }
    if args.inputs.iter().filter(|p| files::is_stdin(p)).count() > 1 {
        eprintln!("rdv: `-` (stdin) can be given only once");
        return Exit::Usage;
    }

    let mut keys = Vec::new();
    let mut failed = false;
    for input in &args.inputs {
        let source = files::display_name(input);
        let found = files::read_text(input).and_then(|text| keyfile::find_keys(&text));
        let found = match found {
            Ok(found) => found,
            Err(problem) => {
                eprintln!("rdv: {source}: {problem}");
                failed = true;
                continue;
            }
        };
        for entry in found {
            let source = match entry.index {
                Some(index) => format!("{source}#{index}"),
                None => source.clone(),
            };
            match entry.key {
                Ok(key) => {
                    let digest = encode(&key.digest(scheme), encoding);
                    keys.push(Fingerprinted {
                        stem: stem(input),
                        source,
                        kid: entry.kid,
                        key,
                        digest,
                    });
                }
                Err(problem) => {
                    eprintln!("rdv: {source}: {problem}");
                    failed = true;
                }
            }
        }
    }

    if let Some(expected) = &args.expect {
        return expect(&keys, expected, failed);
    }
    let single = args.inputs.len() == 1 && keys.len() == 1 && !failed;
    let outcome = if let Some(list) = &args.check {
        check(&keys, list)
    } else if args.buddy_list {
        Ok((buddy_list(&keys), true))
    } else if args.json {
        Ok((json_report(&keys, scheme, args.explain), true))
    } else {
        Ok((lines(&keys, scheme, args.explain, single), true))
    };
    let (output, all_ok) = match outcome {
        Ok(outcome) => outcome,
        Err(problem) => {
            eprintln!("rdv: {problem}");
            return Exit::Failure;
        }
    };
    // Structured output is all or nothing, so a script never parses half an answer.
    let structured = args.json || args.buddy_list;
    if !(failed && structured)
        && let Err(problem) = files::write_stdout(output.as_bytes())
    {
        eprintln!("rdv: {problem}");
        return Exit::Failure;
    }
    if failed || !all_ok {
        Exit::Failure
    } else {
        Exit::Ok
    }
}

fn encode(digest: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Hex => identity::PeerId::from_digest(digest).to_string(),
        Encoding::Base64url => identity::base64url(digest),
    }
}

fn stem(path: &Path) -> String {
    if files::is_stdin(path) {
        return "stdin".into();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `alice.pub.jwk` is alice, not alice.pub.
    name.split('.').next().unwrap_or(&name).to_owned()
}

fn lines(keys: &[Fingerprinted], scheme: Scheme, explain: bool, single: bool) -> String {
    let mut out = String::new();
    for key in keys {
        let shown = if explain {
            key.key.hashed_text(scheme)
        } else {
            key.digest.clone()
        };
        if single {
            let _ = writeln!(out, "{shown}");
        } else {
            let _ = writeln!(out, "{shown}  {}", key.source);
        }
    }
    out
}

fn json_report(keys: &[Fingerprinted], scheme: Scheme, explain: bool) -> String {
    let digest_name = match scheme {
        Scheme::PeerId => "peerId",
        Scheme::Rfc7638 => "thumbprint",
    };
    let report: Vec<Value> = keys
        .iter()
        .map(|key| {
            let kind = key.key.kind();
            let mut entry = serde_json::Map::new();
            entry.insert(digest_name.into(), key.digest.clone().into());
            entry.insert("kty".into(), kind.kty().into());
            if let Some(crv) = kind.crv() {
                entry.insert("crv".into(), crv.into());
            }
            entry.insert("source".into(), key.source.clone().into());
            if explain {
                entry.insert("canonical".into(), key.key.hashed_text(scheme).into());
            }
            Value::Object(entry)
        })
        .collect();
    format!("{}\n", Value::Array(report))
}

fn buddy_list(keys: &[Fingerprinted]) -> String {
    let buddies: Vec<Value> = keys
        .iter()
        .map(|key| {
            // A kid that only repeats the ID names nobody.
            let name = key
                .kid
                .clone()
                .filter(|kid| kid.as_str() != key.digest.as_str())
                .unwrap_or_else(|| key.stem.clone());
            json!({"id": key.digest, "name": name, "publicKey": key.key.to_public_json()})
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&buddies).expect("JSON serializes");
    text.push('\n');
    text
}

/// `--check`: every key must be on the list. Returns the report and whether all were.
fn check(keys: &[Fingerprinted], list: &Path) -> Result<(String, bool), String> {
    let shown = files::display_name(list);
    let text = files::read_text(list).map_err(|e| format!("{shown}: {e}"))?;
    let buddies = identity::parse_buddies(&text).map_err(|e| format!("{shown}: {e}"))?;
    let names: HashMap<String, Option<String>> = buddies
        .into_iter()
        .map(|buddy| (buddy.id.to_string(), buddy.name))
        .collect();
    let mut out = String::new();
    let mut all_on_list = true;
    for key in keys {
        match names.get(&key.digest) {
            Some(Some(name)) => {
                let _ = writeln!(out, "{}: OK ({name})", key.source);
            }
            Some(None) => {
                let _ = writeln!(out, "{}: OK", key.source);
            }
            None => {
                all_on_list = false;
                let _ = writeln!(out, "{}: NOT ON LIST", key.source);
                eprintln!(
                    "rdv: {}: peer ID {} is not on {shown}",
                    key.source, key.digest
                );
            }
        }
    }
    Ok((out, all_on_list))
}

/// `--expect`: exactly one key, and its digest must be `expected`.
fn expect(keys: &[Fingerprinted], expected: &str, failed: bool) -> Exit {
    if failed {
        return Exit::Failure;
    }
    let [key] = keys else {
        eprintln!(
            "rdv: --expect needs exactly one key, but the input holds {}",
            keys.len()
        );
        return Exit::Failure;
    };
    if key.digest == expected {
        Exit::Ok
    } else {
        eprintln!(
            "rdv: {}: {} does not match the expected {expected}",
            key.source, key.digest
        );
        Exit::Failure
    }
}
