//! The `rdv` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::FromArgMatches as _;
use rdv::cli::{Cli, Command};
use rdv::commands;

/// Opt-in (`--features mimalloc`), measured: about 25% more relay throughput than glibc's
/// malloc, for about 1.5 KiB more resident memory per idle peer (see the README's
/// performance section). Memory per peer decides how many peers a box holds, so glibc is
/// the default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = rdv::cli::command();
    let mut file = commands::config_file::FileSettings::default();
    if let Some(path) = commands::config_file::config_path(&args) {
        match commands::config_file::apply(command, &path) {
            Ok((with_file, settings)) => {
                command = with_file;
                file = settings;
            }
            Err(error) => return error.report().into(),
        }
    }
    let matches = match command.clone().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            if let Some(note) = rdv::cli::environment_note(&error) {
                eprintln!("\n{note}");
            }
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
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
    move || {
        let mut command = rdv::cli::command();
        if let Some(path) = commands::config_file::config_path(&args) {
            command = commands::config_file::apply(command, &path)?.0;
        }
        let matches = command
            .try_get_matches_from(&args)
            .map_err(|e| rdv::exit::CommandError::usage(e.to_string()))?;
        match Cli::from_arg_matches(&matches) {
            Ok(Cli {
                command: Command::Serve(config),
                ..
            }) => Ok(*config),
            Ok(_) => Err(rdv::exit::CommandError::usage("not rdv serve")),
            Err(e) => Err(rdv::exit::CommandError::usage(e.to_string())),
        }
    }
}
