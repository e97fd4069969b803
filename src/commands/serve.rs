//! The process around `rdv serve`: logging, the runtime, the one `listening ADDR` line scripts
//! wait for, and the signals that start a graceful shutdown. The server itself is
//! [`crate::server`].

use std::io::Write as _;

use crate::color::ColorWhen;
use crate::exit::{CommandError, Exit};
use crate::server::{self, LogFormat};

/// `rdv serve --check-config`: the effective settings and where each came from, then every
/// problem that would stop the server from starting.
pub fn check(
    config: &server::Config,
    serve: &clap::Command,
    matches: &clap::ArgMatches,
    file: &super::config_file::FileSettings,
) -> Exit {
    let mut report = super::config_file::describe(serve, matches, file);
    let mut problems = config.problems();
    let mut warnings = config.warnings();
    if let Some(url) = &config.cluster {
        match probe_redis(url, config) {
            Ok(redis_warnings) => warnings.extend(redis_warnings),
            Err(problem) => problems.push(problem),
        }
    }
    for warning in warnings {
        report.push_str(&format!("warning: {warning}\n"));
    }
    if let Err(problem) = crate::files::write_stdout(report.as_bytes()) {
        return CommandError::failure(problem).report();
    }
    if problems.is_empty() {
        return Exit::Ok;
    }
    for problem in &problems {
        eprintln!("rdv: {problem}");
    }
    Exit::Failure
}

/// How long `--check-config` waits for Redis.
const REDIS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `--check-config --cluster URL`: Redis answers (with the password file's password), and
/// what in its configuration works against rdv.
fn probe_redis(url: &str, config: &server::Config) -> Result<Vec<String>, String> {
    let password = match config.cluster_password_file.as_deref() {
        // Without its password Redis cannot be tried; `problems` already names the file.
        Some(path) => match server::read_cluster_password(path) {
            Ok(password) => Some(password),
            Err(_) => return Ok(Vec::new()),
        },
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to reach Redis: {e}"))?;
    runtime.block_on(server::probe_cluster(
        url,
        password.as_deref(),
        REDIS_PROBE_TIMEOUT,
    ))
}

/// Reads the configuration again (the `--config` file and the environment), for SIGHUP.
pub type Reread = Box<dyn Fn() -> Result<server::Config, CommandError> + Send + Sync>;

pub fn run(config: server::Config, color: ColorWhen, reread: Reread) -> Exit {
    match serve(config, color, reread) {
        Ok(()) => Exit::Ok,
        Err(error) => error.report(),
    }
}

fn serve(config: server::Config, color: ColorWhen, reread: Reread) -> Result<(), CommandError> {
    init_logging(config.log_format, color);
    check_open_file_limit(config.max_connections, config.max_unregistered);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    server::start_background_purging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(server::on_worker_park)
        .build()
        .map_err(|e| CommandError::failure(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let failure = |e: &dyn std::fmt::Display| CommandError::failure(e.to_string());
        let server = server::Server::bind(config)
            .await
            .map_err(|e| failure(&e))?;
        let addr = server.local_addr().map_err(|e| failure(&e))?;
        reload_on_hangup(server.reloader(), reread);
        // The one machine-readable line scripts and tests wait for.
        println!("{}", server::listening_line(addr));
        let _ = std::io::stdout().flush();
        let scheme = if server.is_tls() { "wss" } else { "ws" };
        tracing::info!(%addr, "serving peers at {scheme}://{addr}/room/{{room}}/websocket");
        server.run(shutdown_signal()).await.map_err(|e| failure(&e))
    })
}

/// Descriptors the process needs besides one per connection: the listener, the runtime's
/// own, standard streams, files read on reload.
const DESCRIPTOR_HEADROOM: u64 = 64;

/// Raises the soft open-file limit to the hard one, and warns when even that cannot hold
/// `--max-connections` and `--max-unregistered`: past it, accept() fails and clients see
/// refused connections instead of the 1013 the caps promise.
fn check_open_file_limit(max_connections: u32, max_unregistered: u32) {
    let needed = u64::from(max_connections) + u64::from(max_unregistered) + DESCRIPTOR_HEADROOM;
    if let Some(limit) = crate::fd_limit::raise_open_file_limit()
        && limit < needed
    {
        tracing::warn!(
            limit,
            max_connections,
            max_unregistered,
            "the open-file limit ({limit}) is below --max-connections ({max_connections}) plus \
             --max-unregistered ({max_unregistered}) plus {DESCRIPTOR_HEADROOM} for the server \
             itself: connections past about {} will be refused by the kernel; raise it \
             (ulimit -n, or LimitNOFILE= in a systemd unit) or lower the caps",
            limit.saturating_sub(DESCRIPTOR_HEADROOM)
        );
    }
}

/// Libraries that log whole messages or headers at their debug and trace levels: SDP with
/// its ICE passwords, public keys, authorization headers. They never get past info, whatever
/// `RDV_LOG` asks for.
const PAYLOAD_LOGGERS: [&str; 4] = ["tungstenite", "tokio_tungstenite", "hyper", "hyper_util"];

fn init_logging(format: LogFormat, color: ColorWhen) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, filter};
    let from_env = EnvFilter::try_from_env("RDV_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let no_payloads = filter::filter_fn(|metadata| {
        let crate_name = metadata.target().split("::").next().unwrap_or("");
        !PAYLOAD_LOGGERS.contains(&crate_name) || *metadata.level() <= tracing::Level::INFO
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer
            .with_ansi(color.enabled_for(&std::io::stderr()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(no_payloads).with_filter(from_env))
        .init();
}

/// SIGHUP reloads the TLS certificate, the allow list, the TURN secret and — from the
/// configuration read again — the allowed origins and the access-token keys (files are read off the runtime's worker
/// threads).
fn reload_on_hangup(reloader: server::Reloader, reread: Reread) {
    let reread = std::sync::Arc::new(reread);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloading is off");
            return;
        };
        while hangups.recv().await.is_some() {
            let reloader = reloader.clone();
            let reread = reread.clone();
            let _ = tokio::task::spawn_blocking(move || {
                reloader.reload();
                let fresh = reread();
                match &fresh {
                    Ok(fresh) => reloader.reload_origins(fresh),
                    Err(error) => {
                        reloader.origins_not_reloaded();
                        tracing::error!(
                            error = %error.message,
                            "kept the allowed origins in force: the configuration does not read"
                        );
                    }
                }
                reloader.reload_tokens(fresh.as_ref().ok());
            })
            .await;
        }
    });
    #[cfg(not(unix))]
    let _ = (reloader, reread);
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
