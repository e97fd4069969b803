//! `rdv keygen`: new key pairs as JWK or PEM, one at a time or in batches with a buddy list.
//!
//! Randomness comes from the operating system only. Private keys are written 0600, every
//! file atomically, and nothing existing is replaced without `--force`; all destinations are
//! checked before any key is made, so a refused run writes nothing.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::exit::{CommandError, Exit};
use crate::files::{self, Secrecy};
use crate::identity::{EcCurve, KeySpec, PrivateKey};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rdv keygen -o alice.jwk --public-out alice.pub.jwk     EC P-256, the type browsers make
  rdv keygen --type okp --json                           Ed25519, everything as one JSON object
  rdv keygen --type rsa --bits 4096 --format pem -o k.pem
  rdv keygen --count 50 --out-dir team/                  50 pairs plus team/buddies.json

The peer ID is printed on stderr (unless --quiet); with --json it is in the object too.")]
pub struct KeygenArgs {
    /// Key type.
    #[arg(short = 't', long = "type", value_enum, default_value_t = KeyType::Ec)]
    pub key_type: KeyType,

    /// Curve for --type ec [default: P-256].
    #[arg(long, value_enum)]
    pub curve: Option<CurveArg>,

    /// Modulus size for --type rsa [default: 3072].
    #[arg(long, value_parser = {
        use clap::builder::TypedValueParser as _;
        clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
            .map(|s| s.parse::<usize>().expect("listed values are numbers"))
    })]
    pub bits: Option<usize>,

    /// Output format: JWK (kid = --name, else the peer ID) or PEM (PKCS#8 private, SPKI public).
    #[arg(long, value_enum, default_value_t = Format::Jwk)]
    pub format: Format,

    /// Write the private key to FILE (mode 0600) instead of stdout.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        conflicts_with = "json"
    )]
    pub out: Option<PathBuf>,

    /// Also write the public key to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub public_out: Option<PathBuf>,

    /// A name for the key, written as its JWK `kid`: buddy lists made from the key
    /// (`rdv fingerprint --buddy-list`) and `rdv peer --buddies` show it [default: the peer ID].
    #[arg(long, value_name = "NAME", conflicts_with = "count")]
    pub name: Option<String>,

    /// Print {"privateKey", "publicKey", "peerId"} on stdout as one line of JSON.
    #[arg(long)]
    pub json: bool,

    /// Replace existing files.
    #[arg(long)]
    pub force: bool,

    /// Make N key pairs into --out-dir: PEERID.jwk, PEERID.pub.jwk (or .pem) and buddies.json.
    #[arg(long, value_name = "N", requires = "out_dir", conflicts_with_all = ["out", "public_out", "json"],
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: Option<u32>,

    /// Directory for --count (created if missing).
    #[arg(long, value_name = "DIR", requires = "count")]
    pub out_dir: Option<PathBuf>,

    /// Do not print the peer ID (or the batch summary) on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// Elliptic curve (ECDSA), as WebCrypto makes by default.
    Ec,
    /// Ed25519.
    Okp,
    Rsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    #[value(name = "P-256", alias = "p256", alias = "p-256")]
    P256,
    #[value(name = "P-384", alias = "p384", alias = "p-384")]
    P384,
    #[value(name = "P-521", alias = "p521", alias = "p-521")]
    P521,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jwk,
    Pem,
}

pub fn run(args: &KeygenArgs) -> Exit {
    let outcome = spec(args).and_then(|spec| match (args.count, &args.out_dir) {
        (Some(count), Some(dir)) => batch(args, spec, count as usize, dir),
        _ => single(args, spec),
    });
    match outcome {
        Ok(()) => Exit::Ok,
        Err(error) => error.report(),
    }
}

fn spec(args: &KeygenArgs) -> Result<KeySpec, CommandError> {
    let usage = |message: &str| Err(CommandError::usage(message));
    match args.key_type {
        KeyType::Ec => {
            if args.bits.is_some() {
                return usage("--bits applies to --type rsa");
            }
            Ok(KeySpec::Ec(match args.curve.unwrap_or(CurveArg::P256) {
                CurveArg::P256 => EcCurve::P256,
                CurveArg::P384 => EcCurve::P384,
                CurveArg::P521 => EcCurve::P521,
            }))
        }
        KeyType::Okp if args.curve.is_some() => usage("--curve applies to --type ec"),
        KeyType::Okp if args.bits.is_some() => usage("--bits applies to --type rsa"),
        KeyType::Okp => Ok(KeySpec::Ed25519),
        KeyType::Rsa if args.curve.is_some() => usage("--curve applies to --type ec"),
        KeyType::Rsa => Ok(KeySpec::Rsa {
            bits: args.bits.unwrap_or(3072),
        }),
    }
}

fn generate(spec: KeySpec) -> Result<PrivateKey, CommandError> {
    PrivateKey::generate(spec).map_err(|e| CommandError::failure(e.to_string()))
}

/// The private and public key texts in the chosen format, each ending in a newline.
fn render(key: &PrivateKey, format: Format, name: Option<&str>) -> (String, String) {
    match format {
        Format::Jwk => (
            pretty(&private_jwk(key, name)),
            pretty(&public_jwk(key, name)),
        ),
        Format::Pem => (key.to_pkcs8_pem(), key.public_pem()),
    }
}

/// The private JWK, its `kid` the given name (else the peer ID, as `to_jwk` sets it).
fn private_jwk(key: &PrivateKey, name: Option<&str>) -> Value {
    let mut jwk = key.to_jwk();
    if let Some(name) = name {
        jwk["kid"] = name.into();
    }
    jwk
}

fn public_jwk(key: &PrivateKey, name: Option<&str>) -> Value {
    let public = key.public();
    let mut jwk = public.to_public_json();
    jwk["kid"] = match name {
        Some(name) => name.into(),
        None => public.peer_id().to_string().into(),
    };
    jwk
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serializes");
    text.push('\n');
    text
}

fn fail(message: String) -> CommandError {
    CommandError::failure(message)
}

fn single(args: &KeygenArgs, spec: KeySpec) -> Result<(), CommandError> {
    if let (Some(out), Some(public_out)) = (&args.out, &args.public_out)
        && out == public_out
    {
        return Err(CommandError::usage(
            "--out and --public-out name the same file",
        ));
    }
    if args.name.is_some() && args.format == Format::Pem {
        return Err(CommandError::usage(
            "--name is written as the JWK kid, and PEM has no place for it; use --format jwk",
        ));
    }
    for path in [&args.out, &args.public_out].into_iter().flatten() {
        files::ensure_directory(path).map_err(fail)?;
        files::ensure_writable(path, args.force).map_err(fail)?;
    }
    let key = generate(spec)?;
    let peer_id = key.public().peer_id();

    if args.json {
        let (private, public) = match args.format {
            Format::Jwk => (
                private_jwk(&key, args.name.as_deref()),
                public_jwk(&key, args.name.as_deref()),
            ),
            Format::Pem => (key.to_pkcs8_pem().into(), key.public_pem().into()),
        };
        let line = json!({"privateKey": private, "publicKey": public, "peerId": peer_id.as_str()});
        files::write_stdout(format!("{line}\n").as_bytes()).map_err(fail)?;
    } else {
        let (private_text, public_text) = render(&key, args.format, args.name.as_deref());
        if let Some(path) = &args.public_out {
            files::write_atomically(path, public_text.as_bytes(), Secrecy::Public, args.force)
                .map_err(fail)?;
        }
        match &args.out {
            Some(path) => {
                files::write_atomically(path, private_text.as_bytes(), Secrecy::Private, args.force)
                    .map_err(fail)?
            }
            None => files::write_stdout(private_text.as_bytes()).map_err(fail)?,
        }
    }
    if !args.quiet {
        eprintln!("peer ID {peer_id}");
    }
    Ok(())
}

fn batch(args: &KeygenArgs, spec: KeySpec, count: usize, dir: &Path) -> Result<(), CommandError> {
    let buddies_path = dir.join("buddies.json");
    files::ensure_writable(&buddies_path, args.force).map_err(fail)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("{}: {}", dir.display(), files::describe_io(&e))))?;
    let extension = match args.format {
        Format::Jwk => "jwk",
        Format::Pem => "pem",
    };

    let progress = if std::io::stderr().is_terminal() && !args.quiet {
        indicatif::ProgressBar::new(count as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} keys  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );

    // Every core makes keys (RSA prime search dominates); results keep their order.
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let made: Mutex<Vec<Option<Value>>> = Mutex::new(vec![None; count]);
    let first_error: Mutex<Option<CommandError>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    match make_one(spec, args.format, dir, extension, index) {
                        Ok(entry) => {
                            made.lock().expect("not poisoned")[index] = Some(entry);
                            progress.inc(1);
                        }
                        Err(failure) => {
                            stop.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .expect("not poisoned")
                                .get_or_insert(failure);
                        }
                    }
                }
            });
        }
    });
    progress.finish_and_clear();
    if let Some(failure) = first_error.into_inner().expect("not poisoned") {
        return Err(failure);
    }
    let buddies: Vec<Value> = made
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|entry| entry.expect("every index was made"))
        .collect();
    files::write_atomically(
        &buddies_path,
        pretty(&Value::Array(buddies)).as_bytes(),
        Secrecy::Public,
        args.force,
    )
    .map_err(fail)?;
    if !args.quiet {
        eprintln!(
            "wrote {count} {spec} key pairs to {} (buddy list: {})",
            dir.display(),
            buddies_path.display()
        );
    }
    Ok(())
}

/// Makes and writes one pair of a batch; returns its buddy list entry.
fn make_one(
    spec: KeySpec,
    format: Format,
    dir: &Path,
    extension: &str,
    index: usize,
) -> Result<Value, CommandError> {
    let key = generate(spec)?;
    let peer_id = key.public().peer_id();
    let (private_text, public_text) = render(&key, format, None);
    let private_path = dir.join(format!("{peer_id}.{extension}"));
    let public_path = dir.join(format!("{peer_id}.pub.{extension}"));
    files::write_atomically(
        &private_path,
        private_text.as_bytes(),
        Secrecy::Private,
        false,
    )
    .map_err(fail)?;
    files::write_atomically(&public_path, public_text.as_bytes(), Secrecy::Public, false)
        .map_err(fail)?;
    Ok(json!({
        "id": peer_id.as_str(),
        "name": format!("key-{}", index + 1),
        "publicKey": key.public().to_public_json(),
    }))
}
