//! The `rdv` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            if let Some(note) = rdv::cli::environment_note(&error) {
                eprintln!("\n{note}");
            }
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let exit = match cli.command {
        Command::Serve(config) => commands::serve::run(config, cli.color),
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
