//! The `rdv` binary: parse the command line, run the subcommand, map errors to exit codes.

use std::io::Write as _;

/// Opt-in (`--features mimalloc`), measured: about 25% more relay throughput than glibc's
/// malloc, for about 1.5 KiB more resident memory per idle peer (see the README's
/// performance section). Memory per peer decides how many peers a box holds, so glibc is
/// the default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

use clap::Parser as _;
use rdv::cli::{Cli, ColorWhen, Command, exit};
use rdv::server::{self, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(config) => serve(config, cli.color),
        Command::Keygen(args) => rdv::keygen::run(&args),
        Command::Fingerprint(args) => rdv::fingerprint_cmd::run(&args),
        Command::Peer(args) => rdv::peer::run(&args, cli.color),
        Command::Bench(args) => rdv::bench::run(&args),
        Command::Completions(args) => write_stdout(&rdv::generate::completion(args.shell)),
    };
    ExitCode::from(code as u8)
}

fn write_stdout(bytes: &[u8]) -> i32 {
    match rdv::files::write_stdout(bytes) {
        Ok(()) => exit::OK,
        Err(problem) => {
            eprintln!("rdv: {problem}");
            exit::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, color: ColorWhen) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RDV_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(color.enabled_for(&std::io::stderr()))
            .init(),
    }
}

fn serve(config: server::Config, color: ColorWhen) -> i32 {
    init_logging(config.log_format, color);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rdv: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match server::Server::bind(config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("rdv: {e}");
                return exit::FAILURE;
            }
        };
        let addr = match server.local_addr() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("rdv: {e}");
                return exit::FAILURE;
            }
        };
        // The one machine-readable line scripts and tests wait for.
        println!("listening {addr}");
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, "serving peers at ws://{addr}/room/{{room}}/websocket");
        match server.run(shutdown_signal()).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("rdv: {e}");
                exit::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
