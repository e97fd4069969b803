//! `rdv token`: mints the access tokens a server started with `--auth-key` asks for
//! (PROTOCOL §13), and checks one — for CI scripts, and for trying a server by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use colored::Colorize as _;
use serde_json::{Value, json};

use crate::color::ColorWhen;
use crate::exit::{CommandError, Exit};
use crate::files;
use crate::identity::{PeerId, keyfile};
use crate::token::{self, MintRequest, TokenError, Verifier, VerifierOptions};
use crate::units::parse_duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rdv token --key signing.jwk --room lobby                  # any peer, one hour
  rdv token --key signing.jwk --room 'game-*' --for alice.jwk --ttl 10m
  rdv token --verify --key public.jwk \"$TOKEN\"

--key takes a private JWK, a JWK Set holding one key, a private PEM key, or a secret file
(its first line, at least 32 bytes: HS256). With --verify it takes what `rdv serve --auth-key`
takes: public keys too. The token is printed alone on stdout.

--verify prints the token's claims and whether it is valid now; --json prints
{\"valid\", \"code\", \"message\", \"header\", \"claims\"} (code and message are null when valid;
the claims are shown as written even when the token is not valid).

Exit status: 0 a token was made, or is valid; 1 a bad key file, or an invalid token; 2 usage
error.")]
pub struct TokenArgs {
    /// The signing key (or, with --verify, the key or keys to check with).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// A room the token grants (repeatable): an exact name, or a prefix ending in `*`
    /// (`game-*`; `*` alone grants every room). With --verify: check the token for it.
    #[arg(long = "room", value_name = "NAME")]
    pub rooms: Vec<String>,

    /// Bind the token to this peer ID (`sub`): only that key may use it.
    #[arg(long, value_name = "ID", conflicts_with = "for_key")]
    pub peer: Option<PeerId>,

    /// Bind the token to the peer ID of the key in this file (public or private).
    #[arg(long = "for", value_name = "KEYFILE")]
    pub for_key: Option<PathBuf>,

    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Duration,

    /// The audience (`aud`); with --verify, the one required.
    #[arg(long, value_name = "AUD")]
    pub aud: Option<String>,

    /// The issuer (`iss`); with --verify, the one required.
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,

    /// The room's size when the token's holder is the first to join it (`max_peers`).
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_peers: Option<u32>,

    /// The signing algorithm, when the key allows several (RSA: RS256 by default, or
    /// PS256…; a secret: HS256, HS384 or HS512).
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,

    /// Check TOKEN instead of making one.
    #[arg(long, requires = "token")]
    pub verify: bool,

    /// With --verify: print JSON instead of lines.
    #[arg(long, requires = "verify")]
    pub json: bool,

    /// The token to check (`-` reads it from stdin).
    #[arg(value_name = "TOKEN", requires = "verify")]
    pub token: Option<String>,
}

pub fn run(args: &TokenArgs, color: ColorWhen) -> Exit {
    let outcome = if args.verify {
        verify(args, color)
    } else {
        mint(args).map(|()| Exit::Ok)
    };
    outcome.unwrap_or_else(|error| error.report())
}

fn mint(args: &TokenArgs) -> Result<(), CommandError> {
    if args.rooms.is_empty() {
        return Err(CommandError::usage(
            "a token needs --room NAME (a room, or a prefix ending in *)",
        ));
    }
    let text = read(&args.key)?;
    let key = token::parse_signing_key(&text, args.alg.as_deref())
        .map_err(|e| CommandError::failure(format!("{}: {e}", files::display_name(&args.key))))?;
    let request = MintRequest {
        rooms: args.rooms.clone(),
        peer: bound_peer(args)?.map(|id| id.to_string()),
        ttl: args.ttl,
        audience: args.aud.clone(),
        issuer: args.iss.clone(),
        max_peers: args.max_peers,
    };
    let minted =
        token::mint(&key, &request, token::now_seconds()).map_err(CommandError::failure)?;
    files::write_stdout(format!("{minted}\n").as_bytes()).map_err(CommandError::failure)
}

/// The peer the token is bound to: `--peer`, or the key in `--for`'s file.
fn bound_peer(args: &TokenArgs) -> Result<Option<PeerId>, CommandError> {
    if let Some(peer) = &args.peer {
        return Ok(Some(peer.clone()));
    }
    let Some(path) = &args.for_key else {
        return Ok(None);
    };
    let name = files::display_name(path);
    let found = keyfile::find_keys(&read(path)?)
        .map_err(|e| CommandError::failure(format!("{name}: {e}")))?;
    match found.as_slice() {
        [one] => one
            .key
            .as_ref()
            .map(|key| Some(key.peer_id()))
            .map_err(|e| CommandError::failure(format!("{name}: {e}"))),
        keys => Err(CommandError::failure(format!(
            "{name}: --for needs one key; the file has {}",
            keys.len()
        ))),
    }
}

fn verify(args: &TokenArgs, color: ColorWhen) -> Result<Exit, CommandError> {
    let text = read(&args.key)?;
    let keys = token::parse_verifying_keys(&text)
        .map_err(|e| CommandError::failure(format!("{}: {e}", files::display_name(&args.key))))?;
    let options = VerifierOptions {
        audience: args.aud.iter().cloned().collect(),
        issuer: args.iss.iter().cloned().collect(),
    };
    let verifier = Verifier::new(keys, options);
    let given = args
        .token
        .as_deref()
        .expect("clap requires TOKEN with --verify");
    let token = if given == "-" {
        read(Path::new("-"))?.trim().to_owned()
    } else {
        given.trim().to_owned()
    };
    if args.rooms.len() > 1 {
        return Err(CommandError::usage("--verify checks one --room at a time"));
    }
    let bound = bound_peer(args)?;
    let verdict = verifier
        .verify(&token, args.rooms.first().map(String::as_str))
        .and_then(|grant| match &bound {
            Some(id) => grant.check_peer(id).map(|()| grant),
            None => Ok(grant),
        });
    let (header, claims) = token::unverified_parts(&token).unwrap_or((Value::Null, Value::Null));
    let report = if args.json {
        let (code, message) = match &verdict {
            Ok(_) => (Value::Null, Value::Null),
            Err(e) => (json!(e.code().as_str()), json!(e.to_string())),
        };
        let document = json!({
            "valid": verdict.is_ok(),
            "code": code,
            "message": message,
            "header": header,
            "claims": claims,
        });
        format!("{document}\n")
    } else {
        describe(
            &verdict,
            &header,
            &claims,
            color.enabled_for(&std::io::stdout()),
        )
    };
    files::write_stdout(report.as_bytes()).map_err(CommandError::failure)?;
    Ok(if verdict.is_ok() {
        Exit::Ok
    } else {
        Exit::Failure
    })
}

/// The verdict, then what the token says, one `name  value` line each.
fn describe(
    verdict: &Result<token::Grant, TokenError>,
    header: &Value,
    claims: &Value,
    color: bool,
) -> String {
    let paint = |text: String, good: bool| match (color, good) {
        (false, _) => text,
        (true, true) => text.green().to_string(),
        (true, false) => text.red().to_string(),
    };
    let mut out = String::new();
    let now = token::now_seconds();
    match verdict {
        Ok(grant) => {
            let left = Duration::from_secs(grant.expires_at.saturating_sub(now));
            let _ = writeln!(
                out,
                "{}",
                paint(
                    format!("valid: expires in {}", humantime::format_duration(left)),
                    true
                )
            );
        }
        Err(error) => {
            let _ = writeln!(
                out,
                "{}",
                paint(format!("{}: {error}", error.code().as_str()), false)
            );
        }
    }
    if claims.is_null() {
        return out;
    }
    let _ = writeln!(
        out,
        "claims as written{}:",
        if verdict.is_ok() {
            ""
        } else {
            " (not trusted)"
        }
    );
    if let Some(alg) = header.get("alg") {
        let _ = writeln!(out, "  {:<10} {alg}", "alg");
    }
    if let Some(kid) = header.get("kid") {
        let _ = writeln!(out, "  {:<10} {kid}", "kid");
    }
    for (name, value) in claims.as_object().into_iter().flatten() {
        let shown = match (name.as_str(), value.as_u64()) {
            ("exp" | "iat" | "nbf", Some(seconds)) => {
                format!("{value} ({})", relative(seconds, now))
            }
            _ => value.to_string(),
        };
        let _ = writeln!(out, "  {name:<10} {shown}");
    }
    out
}

fn relative(at: u64, now: u64) -> String {
    if at == now {
        "now".into()
    } else if at > now {
        format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(at - now))
        )
    } else {
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(now - at))
        )
    }
}

fn read(path: &Path) -> Result<String, CommandError> {
    files::read_text(path)
        .map_err(|e| CommandError::failure(format!("{}: {e}", files::display_name(path))))
}
