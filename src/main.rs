//! The `rdv` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::FromArgMatches as _;
use rdv::cli::{Cli, Command};
use rdv::commands;

/// jemalloc by default (the `jemalloc` feature), measured against glibc's malloc side by side:
/// less memory per idle peer (no per-allocation header), fewer instructions per join and per
/// relayed message, and its thread caches and dirty pages can be handed back after a burst
/// (see `server::memory`). `--no-default-features` builds with the system allocator.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The command line as parsed: the clap matches (for `--check-config`'s sources), the
/// settings a `--config` file supplied, and the typed result.
struct Parsed {
    matches: clap::ArgMatches,
    file: commands::config_file::FileSettings,
    cli: Cli,
}

/// Why the command line could not be parsed.
enum ParseError {
    /// The `--config` file: named file, line and key.
    File(rdv::exit::CommandError),
    /// clap's own error, printed in its format.
    Clap(clap::Error),
}

/// Parses `args`, with the `--config` file's values as defaults (see `config_file`). Used at
/// start and again on SIGHUP.
fn parse(args: &[std::ffi::OsString]) -> Result<Parsed, ParseError> {
    let mut command = rdv::cli::command();
    let mut file = commands::config_file::FileSettings::default();
    if let Some(path) = commands::config_file::config_path(args) {
        let (with_file, settings) =
            commands::config_file::apply(command, &path).map_err(ParseError::File)?;
        command = with_file;
        file = settings;
    }
    let matches = command
        .try_get_matches_from(args)
        .map_err(ParseError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ParseError::Clap)?;
    Ok(Parsed { matches, file, cli })
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Parsed { matches, file, cli } = match parse(&args) {
        Ok(parsed) => parsed,
        Err(ParseError::File(error)) => return error.report().into(),
        Err(ParseError::Clap(error)) => {
            let _ = error.print();
            if let Some(note) = rdv::cli::environment_note(&error) {
                eprintln!("\n{note}");
            }
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let exit = match cli.command {
        Command::Serve(config) if config.check_config => {
            // Listed in the order the flags are declared (the file's changes reorder them).
            let declared = rdv::cli::command();
            let serve = declared.find_subcommand("serve").expect("a serve command");
            let serve_matches = matches.subcommand_matches("serve").expect("serve ran");
            commands::serve::check(&config, serve, serve_matches, &file)
        }
        Command::Serve(config) => commands::serve::run(*config, cli.color, Box::new(reread(args))),
        Command::Keygen(args) => commands::keygen::run(&args),
        Command::Fingerprint(args) => commands::fingerprint::run(&args),
        Command::Token(args) => commands::token::run(&args, cli.color),
        Command::Peer(args) => rdv::peer::run(&args, cli.color),
        Command::Bench(args) => rdv::bench::run(&args),
        Command::Completions(args) => {
            commands::completions::print(args.shell, &mut rdv::cli::command())
        }
    };
    exit.into()
}

/// Parses the command line again, with the `--config` file and the environment as they are
/// now: what SIGHUP applies.
fn reread(
    args: Vec<std::ffi::OsString>,
) -> impl Fn() -> Result<rdv::server::Config, rdv::exit::CommandError> + Send + Sync {
    move || match parse(&args) {
        Ok(Parsed {
            cli:
                Cli {
                    command: Command::Serve(config),
                    ..
                },
            ..
        }) => Ok(*config),
        Ok(_) => Err(rdv::exit::CommandError::usage("not rdv serve")),
        Err(ParseError::File(error)) => Err(error),
        Err(ParseError::Clap(error)) => Err(rdv::exit::CommandError::usage(error.to_string())),
    }
}
