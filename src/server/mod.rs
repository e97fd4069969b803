//! `rdv serve`: the signaling server (PROTOCOL §1–§8).
//!
//! [`Server::bind`] opens the listener (so callers learn the port before serving), and
//! [`Server::run`] serves until the shutdown future completes, then drains: new peers are
//! refused, `/healthz` says 503, every connection is closed with 1001, and `run` returns
//! once they are gone or the drain timeout passes.

mod accept;
mod admission;
mod config;
mod connection;
mod operations;
mod rooms;

use accept::{http, listen};
use admission::{access, allow, rate, tls, tokens};
use connection::{guard, open_sessions, pending, upgrade};
use operations::{ice, memory, metrics};
use rooms::{cluster, outbound_budget};

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use access::ClientAddressHeader;
pub use allow::AllowListError;
pub use cluster::{probe as probe_cluster, redact as redact_cluster_url};
pub use config::{Config, LogFormat, ProofMode, read_password as read_cluster_password};
pub use memory::{on_worker_park, start_background_purging};
pub use metrics::Metrics;
pub use rooms::{
    ConnectionId, DeliverError, Health, JoinError, LocalRegistry, Member, RoomRegistry,
};

/// The networking pieces `rdv bench`'s relay floor shares with the server, so the floor runs
/// on exactly the same accept loop, handshake and buffer sizes.
pub(crate) mod stack {
    pub(crate) use super::listen::{ListenOptions, serve};
    pub(crate) use super::upgrade::{Socket, Upgrade};
}

fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    u64::from_le_bytes(bytes)
}

/// Hands freed memory back to the system once many connections have come or gone (see
/// `memory`).
async fn trim_after_bursts(state: Arc<ServerState>) {
    let mut policy = memory::TrimPolicy::new(100);
    let mut every = tokio::time::interval(memory::CHECK_EVERY);
    let mut release_due = false;
    loop {
        every.tick().await;
        if std::mem::take(&mut release_due) {
            // A check after the request, so idle workers have flushed their caches into the
            // arenas first. Off the workers: it walks every arena under its lock.
            let _ = tokio::task::spawn_blocking(memory::release_free_memory).await;
        }
        let open = state.metrics.connections.get().max(0) as u64;
        if policy.should_trim(state.metrics.connections_opened.get(), open) {
            // Tables sized for the burst first, so the memory they free can be handed back too.
            state.registry.compact();
            state.open_sessions.compact();
            state.pending.compact();
            memory::request_thread_cache_flush();
            release_due = true;
        }
    }
}

/// The inbound guard, for the fuzz targets only.
#[doc(hidden)]
pub mod guard_for_fuzzing {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    pub use super::guard::{InboundGuard, UnfinishedBudget};

    pub fn budget(limit: usize) -> Arc<UnfinishedBudget> {
        UnfinishedBudget::new(limit)
    }

    pub fn guard(budget: Arc<UnfinishedBudget>) -> InboundGuard {
        let limits = super::guard::GuardLimits {
            rate_per_second: 100,
            rate_burst: 200,
            message_deadline: Duration::from_secs(10),
            unfinished: budget,
        };
        InboundGuard::new(limits, Instant::now())
    }
}

/// The one line `rdv serve` (and `rdv bench floor`) prints on stdout once it accepts
/// connections; scripts and tests wait for it.
pub fn listening_line(addr: SocketAddr) -> String {
    format!("listening {addr}")
}

/// The address in a [`listening_line`], if `line` is one.
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("listening ")?.parse().ok()
}

use crate::identity::PeerId;
use crate::protocol::RoomName;

/// What every session shares.
pub struct ServerState {
    pub config: Config,
    pub registry: Arc<dyn RoomRegistry>,
    pub metrics: Arc<Metrics>,
    /// Replaced as a whole on SIGHUP; a register reads whichever list is in force.
    allow_list: std::sync::RwLock<Option<Arc<HashSet<PeerId>>>>,
    /// Bytes of unfinished inbound messages across every connection.
    unfinished: Arc<guard::UnfinishedBudget>,
    /// ICE servers for `welcome` (PROTOCOL §10), if any were configured.
    ice: Option<ice::IceServers>,
    /// Proof checks left this second, across the server.
    proof_budget: rate::CostBudget,
    /// Bytes queued to every connection together, under `--max-outbound-bytes`.
    outbound: Arc<outbound_budget::OutboundBudget>,
    /// Connections not registered yet, from accept on.
    pending: Arc<pending::PendingConnections>,
    /// The access-token check (`--auth-key`); its keys are replaced on SIGHUP.
    tokens: Option<tokens::TokenGate>,
    /// Browser origins allowed to connect; replaced on SIGHUP when the configuration changed.
    origins: std::sync::RwLock<Arc<access::OriginPolicy>>,
    /// Open connections and connection attempts per client address.
    per_client: Arc<access::PerClientLimits>,
    /// The key of the room-name hash in the connection log.
    room_hash_seed: foldhash::fast::FixedState,
    connection_slots: Arc<Semaphore>,
    sessions: TaskTracker,
    /// Their outboxes, for the shutdown to close.
    open_sessions: Arc<open_sessions::OpenSessions>,
    draining: AtomicBool,
    /// Cancelled when shutdown begins: peers held for a resume leave at once.
    stopping: CancellationToken,
}

impl ServerState {
    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// How the connection log names a room: a short keyed hash, or (with
    /// `--log-room-names`) the name itself, escaped.
    fn room_label(&self, room: &RoomName) -> String {
        use std::hash::BuildHasher as _;
        if self.config.log_room_names {
            format!("{:?}", room.as_str())
        } else {
            format!("{:08x}", self.room_hash_seed.hash_one(room.as_str()) as u32)
        }
    }

    /// Whether `id` may register (no allow list: everyone).
    fn is_allowed(&self, id: &PeerId) -> bool {
        match &*self.allow_list.read().expect("never poisoned") {
            Some(allowed) => allowed.contains(id),
            None => true,
        }
    }
}

/// Reloads what SIGHUP reloads — the TLS certificate and key, the allow list — from their
/// files. A file that fails to load leaves what was in force alone.
#[derive(Clone)]
pub struct Reloader {
    state: Arc<ServerState>,
    tls: Option<(tls::TlsFiles, Arc<tls::ReloadableCertificate>)>,
}

impl Reloader {
    /// Takes the origin rule of a freshly read configuration (the `--config` file and the
    /// environment, read again on SIGHUP); logs when it changed.
    pub fn reload_origins(&self, fresh: &Config) {
        let policy = access::OriginPolicy {
            allowed: fresh.allow_origin.clone(),
            require: fresh.require_origin,
        };
        let mut current = self.state.origins.write().expect("never poisoned");
        if **current != policy {
            tracing::info!(
                allowed = policy.allowed.len(),
                require = policy.require,
                "reloaded the allowed origins"
            );
            *current = Arc::new(policy);
        }
        self.state.metrics.reloaded("origins", true);
    }

    /// Reads the `--auth-key` files again — those `fresh` names, or the running ones when
    /// the configuration no longer reads — and puts their keys in force. Tokens are turned
    /// on or off only by a restart: a reload that would do either keeps what is in force.
    pub fn reload_tokens(&self, fresh: Option<&Config>) {
        let Some(gate) = &self.state.tokens else {
            if fresh.is_some_and(|fresh| !fresh.auth_key.is_empty()) {
                self.state.metrics.reloaded("auth-keys", false);
                tracing::error!(
                    "--auth-key was added: tokens are turned on by a restart, not a reload"
                );
            }
            return;
        };
        let source = fresh.unwrap_or(&self.state.config);
        match source.token_verifier() {
            Ok(Some(verifier)) => {
                let keys = gate.replace(verifier);
                self.state.metrics.reloaded("auth-keys", true);
                tracing::info!(keys, "reloaded the access-token keys");
            }
            Ok(None) => {
                self.state.metrics.reloaded("auth-keys", false);
                tracing::error!(
                    "kept the access-token keys in force: --auth-key was removed, and tokens \
                     are turned off by a restart, not a reload"
                );
            }
            Err(error) => {
                self.state.metrics.reloaded("auth-keys", false);
                tracing::error!(%error, "kept the access-token keys in force: a file does not load");
            }
        }
    }

    /// The configuration no longer reads: the origins in force stay, and the failure is
    /// counted like any other reload's.
    pub fn origins_not_reloaded(&self) {
        self.state.metrics.reloaded("origins", false);
    }

    /// Reloads everything; one line per item says what happened. Returns whether all of it
    /// reloaded.
    pub fn reload(&self) -> bool {
        let mut ok = true;
        if let Some((files, certificate)) = &self.tls {
            match files.load() {
                Ok(pair) => {
                    certificate.replace(pair);
                    self.state.metrics.reloaded("tls", true);
                    tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate and key");
                }
                Err(error) => {
                    ok = false;
                    self.state.metrics.reloaded("tls", false);
                    tracing::error!(%error, "kept the TLS certificate in force: the new one does not load");
                }
            }
        }
        if let Some(reloaded) = self
            .state
            .ice
            .as_ref()
            .and_then(ice::IceServers::reload_secret)
        {
            match reloaded {
                Ok(()) => {
                    self.state.metrics.reloaded("turn-secret", true);
                    tracing::info!("reloaded the TURN secret");
                }
                Err(error) => {
                    ok = false;
                    self.state.metrics.reloaded("turn-secret", false);
                    tracing::error!(%error, "kept the TURN secret in force: the file does not load");
                }
            }
        }
        if let Some(path) = &self.state.config.allow_list {
            match allow::load(path) {
                Ok(list) => {
                    let count = list.len();
                    *self.state.allow_list.write().expect("never poisoned") = Some(Arc::new(list));
                    self.state.metrics.reloaded("allow-list", true);
                    tracing::info!(path = %path.display(), peers = count, "reloaded the allow list");
                }
                Err(error) => {
                    ok = false;
                    self.state.metrics.reloaded("allow-list", false);
                    tracing::error!(%error, "kept the allow list in force: the file does not load");
                }
            }
        }
        ok
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    TurnSecret(#[from] ice::SecretError),
    #[error("{0}")]
    Tokens(String),
    #[error("{0}")]
    Cluster(String),
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    state: Arc<ServerState>,
    tls: Option<(tls::TlsFiles, Arc<tls::ReloadableCertificate>)>,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let allow_list = config
            .allow_list
            .as_deref()
            .map(allow::load)
            .transpose()?
            .map(Arc::new);
        let tls = match config.tls_files()? {
            Some(files) => {
                let pair = files.load()?;
                Some((files, tls::ReloadableCertificate::new(pair)))
            }
            None => None,
        };
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let ice = ice::IceServers::new(
            &config.ice_server,
            config.turn_secret_file.as_deref(),
            config.turn_ttl,
        )?;
        let tokens = config
            .token_verifier()
            .map_err(ServeError::Tokens)?
            .map(tokens::TokenGate::new);
        let metrics = Arc::new(Metrics::with_cluster(config.cluster.is_some()));
        let registry: Arc<dyn RoomRegistry> = match &config.cluster {
            None => Arc::new(LocalRegistry::new(
                config.max_peers_per_room as usize,
                metrics.clone(),
            )),
            Some(url) => {
                let password = config
                    .cluster_password_file
                    .as_deref()
                    .map(config::read_password)
                    .transpose()
                    .map_err(ServeError::Cluster)?;
                let options = cluster::ClusterOptions {
                    url: url.clone(),
                    password,
                    lease: config.cluster_lease,
                    max_peers_per_room: config.max_peers_per_room,
                };
                Arc::new(
                    cluster::ClusterRegistry::start(options, metrics.clone())
                        .await
                        .map_err(|e| ServeError::Cluster(e.to_string()))?,
                )
            }
        };
        let state = Arc::new(ServerState {
            ice,
            tokens,
            unfinished: guard::UnfinishedBudget::new(config.max_unfinished_bytes),
            proof_budget: rate::CostBudget::new(config.max_proof_checks, std::time::Instant::now()),
            outbound: Arc::new(outbound_budget::OutboundBudget::new(
                config.max_outbound_bytes,
                metrics.outbound_cuts.clone(),
            )),
            origins: std::sync::RwLock::new(Arc::new(access::OriginPolicy {
                allowed: config.allow_origin.clone(),
                require: config.require_origin,
            })),
            per_client: Arc::new(access::PerClientLimits::new(
                config.max_connections_per_ip,
                config.connect_rate_per_ip,
            )),
            room_hash_seed: foldhash::fast::FixedState::with_seed(random_seed()),
            pending: pending::PendingConnections::new(
                config.max_unregistered as usize,
                metrics.unregistered_evicted.clone(),
            ),
            connection_slots: Arc::new(Semaphore::new(config.max_connections as usize)),
            config,
            registry,
            metrics,
            allow_list: std::sync::RwLock::new(allow_list),
            sessions: TaskTracker::new(),
            open_sessions: Arc::default(),
            draining: AtomicBool::new(false),
            stopping: CancellationToken::new(),
        });
        Ok(Self {
            listener,
            state,
            tls,
        })
    }

    /// What reloads the server's files on SIGHUP.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            state: self.state.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Whether the server terminates TLS itself.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state;
        let stop_http = CancellationToken::new();
        let app = http::router(state.clone());
        let options = listen::ListenOptions {
            header_timeout: state.config.register_timeout,
            pending: Some(state.pending.clone()),
            tls: self.tls.map(|(_, certificate)| {
                (
                    tls::acceptor(certificate),
                    state.metrics.tls_handshake_failures.clone(),
                )
            }),
        };
        let http = tokio::spawn(listen::serve(
            self.listener,
            app,
            options,
            stop_http.clone(),
        ));

        let trimmer = tokio::spawn(trim_after_bursts(state.clone()));
        shutdown.await;
        trimmer.abort();
        let drain_timeout = state.config.drain_timeout;
        tracing::info!(
            connections = state.metrics.connections.get(),
            "shutting down: closing connections with 1001"
        );
        state.draining.store(true, Ordering::Relaxed);
        state.stopping.cancel();
        // A cluster instance takes its members out of every room at once, before their
        // connections close, rather than leaving the rest of the cluster to wait a lease.
        state.registry.shutdown().await;
        state.open_sessions.close_all();
        state.sessions.close();
        if tokio::time::timeout(drain_timeout, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?drain_timeout,
                "drain timeout passed with connections still open"
            );
        }
        stop_http.cancel();
        let _ = http.await;
        Ok(())
    }
}
