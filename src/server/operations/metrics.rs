//! Prometheus counters and gauges for `/metrics` (PROTOCOL §7).
//!
//! Counts only: no label ever carries a room name or a peer ID, so the series stay few and
//! nothing identifying leaks to whoever can scrape. Per-label counters are created up front
//! and kept as handles, so the relay path bumps an atomic without a map lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::protocol::{CloseCode, ErrorCode, RelayKind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabel {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabel {
    what: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    via: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// What a cluster instance reports about its link to Redis (registered only with
/// `--cluster`).
#[derive(Debug)]
pub struct ClusterMetrics {
    /// 1 while the instance is connected to Redis and in sync.
    pub connected: Gauge,
    /// Round trips of cluster commands (join, leave, lease, re-announce).
    pub round_trip_seconds: Histogram,
    /// Relays published for peers on other instances.
    pub published: Counter,
    /// Presence events and relays received from Redis.
    pub received: Counter,
    /// Times the instance (re)connected to Redis and re-announced its members.
    pub resyncs: Counter,
    /// Rooms resynced on their own after their Redis Cluster shard failed over (or lost a
    /// connection), while the rest of the instance's rooms went on untouched.
    pub room_resyncs: Counter,
    /// Members Redis listed for this instance that it did not hold, removed by the
    /// periodic reconciliation.
    pub repairs: Counter,
    /// Relays published for an instance that was not listening; their senders were told
    /// `unavailable`.
    pub unheard: Counter,
    /// Relays from another instance this one could not deliver, by reason.
    relays_dropped: Family<ReasonLabel, Counter>,
    lease_renewals: Family<ResultLabel, Counter>,
}

impl ClusterMetrics {
    fn new() -> Self {
        Self {
            connected: Gauge::default(),
            round_trip_seconds: Histogram::new([
                0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0,
            ]),
            published: Counter::default(),
            received: Counter::default(),
            resyncs: Counter::default(),
            room_resyncs: Counter::default(),
            repairs: Counter::default(),
            unheard: Counter::default(),
            relays_dropped: Family::default(),
            lease_renewals: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_connected",
            "1 while this instance is connected to Redis and in sync",
            self.connected.clone(),
        );
        registry.register_with_unit(
            "cluster_round_trip",
            "Round trips of cluster commands to Redis",
            prometheus_client::registry::Unit::Seconds,
            self.round_trip_seconds.clone(),
        );
        registry.register(
            "cluster_messages_published",
            "Relays published for peers on other instances",
            self.published.clone(),
        );
        registry.register(
            "cluster_messages_received",
            "Presence events and relays received from Redis",
            self.received.clone(),
        );
        registry.register(
            "cluster_resyncs",
            "Connections to Redis after which this instance re-announced its members",
            self.resyncs.clone(),
        );
        registry.register(
            "cluster_room_resyncs",
            "Rooms resynced on their own after their Redis Cluster shard failed over",
            self.room_resyncs.clone(),
        );
        registry.register(
            "cluster_repairs",
            "Members Redis listed for this instance that it did not hold, removed by reconciliation",
            self.repairs.clone(),
        );
        registry.register(
            "cluster_relays_unheard",
            "Relays published for an instance that was not listening; each sender was told unavailable",
            self.unheard.clone(),
        );
        registry.register(
            "cluster_relays_dropped",
            "Relays from another instance that could not be delivered here, by reason",
            self.relays_dropped.clone(),
        );
        for reason in ["receiver-gone", "sender-never-seen", "overflow", "late"] {
            drop(self.relays_dropped.get_or_create(&ReasonLabel { reason }));
        }
        registry.register(
            "cluster_lease_renewals",
            "Lease renewals, by result",
            self.lease_renewals.clone(),
        );
        for result in ["ok", "acquired", "lost", "failed"] {
            drop(self.lease_renewals.get_or_create(&ResultLabel { result }));
        }
    }

    /// `ok`, `acquired` (a new instance took its first lease), `lost` (Redis had no lease
    /// for an instance that held one) or `failed`.
    pub fn renewed(&self, result: &'static str) {
        self.lease_renewals
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A relay from another instance dropped here: `receiver-gone`, `sender-never-seen`
    /// (its sender's arrival never reached this view within a lease), `overflow`, or `late`
    /// (it reached a resumed member the long way after a later one of its sender).
    pub fn relay_dropped(&self, reason: &'static str) {
        tracing::debug!(reason, "cluster: dropped a relay");
        self.relays_dropped
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// Why an upgrade was refused before a session started.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    Capacity,
    Draining,
    Origin,
    PerIp,
    Rate,
    RoomPattern,
    /// An `Authorization: Bearer` token that did not pass (401).
    Token,
}

impl Rejection {
    const ALL: [Rejection; 7] = [
        Rejection::Capacity,
        Rejection::Draining,
        Rejection::Origin,
        Rejection::PerIp,
        Rejection::Rate,
        Rejection::RoomPattern,
        Rejection::Token,
    ];

    fn label(self) -> ReasonLabel {
        let reason = match self {
            Rejection::Capacity => "capacity",
            Rejection::Draining => "draining",
            Rejection::Origin => "origin",
            Rejection::PerIp => "per-ip",
            Rejection::Rate => "rate",
            Rejection::RoomPattern => "room-pattern",
            Rejection::Token => "token",
        };
        ReasonLabel { reason }
    }
}

/// The refusals `rdv_token_checks_total` counts besides `accepted`.
const TOKEN_REFUSALS: [ErrorCode; 5] = [
    ErrorCode::TokenRequired,
    ErrorCode::TokenInvalid,
    ErrorCode::TokenExpired,
    ErrorCode::RoomForbidden,
    ErrorCode::TokenPeerMismatch,
];

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_opened: Counter,
    pub peers: Gauge,
    pub rooms: Gauge,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    /// Bytes of inbound messages whose last frame has not arrived, across the server.
    pub unfinished_bytes: Gauge,
    /// Connections accepted and not registered yet.
    pub unregistered: Gauge,
    /// Bytes queued to all connections, not yet written (set when scraped).
    pub outbound_bytes: Gauge,
    /// Connections closed to keep the outbound bytes under `--max-outbound-bytes`.
    pub outbound_cuts: Counter,
    /// Unregistered connections closed to make room for newer ones.
    pub unregistered_evicted: Counter,
    /// How long connections lasted, in seconds.
    pub connection_seconds: Histogram,
    /// How long relayed messages spent inside the server, from a frame being read to its
    /// copy being written to the receiver's socket: one observation per written batch, its
    /// oldest relay (one per message when the server is not busy).
    pub relay_seconds: Histogram,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: Counter,
    /// TURN credentials minted for peers (in `welcome` and `ice-servers`).
    pub turn_credentials: Counter,
    /// Peers whose connection dropped, held in their room for a resume (`--resume-grace`).
    pub peers_in_grace: Gauge,
    /// Peers that came back within the grace and resumed their place.
    pub resumes: Counter,
    /// Peers whose grace ended without a resume: the room heard `peer-left`.
    pub grace_expiries: Counter,
    reloads: Family<ReloadLabel, Counter>,
    token_checks: Family<TokenLabel, Counter>,
    relayed: [Counter; RelayKind::ALL.len()],
    errors: Vec<Counter>,
    closes: Family<CloseLabel, Counter>,
    rejections: Family<ReasonLabel, Counter>,
    pub cluster: ClusterMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_cluster(false)
    }

    /// The metrics of a server; `clustered` adds the cluster series.
    pub fn with_cluster(clustered: bool) -> Self {
        let mut registry = Registry::with_prefix("rdv");
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        let connections_opened = Counter::default();
        registry.register(
            "connections_opened",
            "WebSocket connections accepted since start",
            connections_opened.clone(),
        );
        let peers = Gauge::default();
        registry.register("peers", "Registered peers", peers.clone());
        let rooms = Gauge::default();
        registry.register("rooms", "Rooms with at least one peer", rooms.clone());
        let bytes_received = Counter::default();
        registry.register(
            "received_bytes",
            "Payload bytes of WebSocket messages received",
            bytes_received.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "sent_bytes",
            "Payload bytes of WebSocket messages sent",
            bytes_sent.clone(),
        );
        let unfinished_bytes = Gauge::default();
        registry.register(
            "unfinished_message_bytes",
            "Bytes of inbound messages still arriving (fragments not yet complete)",
            unfinished_bytes.clone(),
        );
        let unregistered = Gauge::default();
        registry.register(
            "unregistered_connections",
            "Connections accepted and not registered yet (HTTP or WebSocket)",
            unregistered.clone(),
        );
        let outbound_bytes = Gauge::default();
        registry.register(
            "outbound_queued_bytes",
            "Bytes queued to all connections and not yet written (under --max-outbound-bytes)",
            outbound_bytes.clone(),
        );
        let outbound_cuts = Counter::default();
        registry.register(
            "outbound_budget_cuts",
            "Connections closed (1013) to keep the queued bytes under --max-outbound-bytes",
            outbound_cuts.clone(),
        );
        let connection_seconds = Histogram::new([
            1.0,
            10.0,
            60.0,
            300.0,
            1800.0,
            3600.0,
            4.0 * 3600.0,
            24.0 * 3600.0,
        ]);
        registry.register_with_unit(
            "connection_duration",
            "How long WebSocket connections lasted",
            prometheus_client::registry::Unit::Seconds,
            connection_seconds.clone(),
        );
        let relay_seconds = Histogram::new([
            0.000_01, 0.000_03, 0.000_1, 0.000_3, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0,
        ]);
        registry.register_with_unit(
            "relay_time",
            "Time relayed messages spent in the server, read to written (per written batch, its oldest)",
            prometheus_client::registry::Unit::Seconds,
            relay_seconds.clone(),
        );
        let turn_credentials = Counter::default();
        registry.register(
            "turn_credentials_issued",
            "TURN credentials minted for peers (welcome and ice-servers)",
            turn_credentials.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let reloads = Family::<ReloadLabel, Counter>::default();
        registry.register(
            "reloads",
            "SIGHUP reloads, by what was reloaded and whether it worked",
            reloads.clone(),
        );
        for what in ["tls", "allow-list", "turn-secret", "origins", "auth-keys"] {
            for result in ["ok", "failed"] {
                drop(reloads.get_or_create(&ReloadLabel { what, result }));
            }
        }
        let token_checks = Family::<TokenLabel, Counter>::default();
        registry.register(
            "token_checks",
            "Access tokens checked (--auth-key), by where they came from (register or the \
             upgrade's Authorization header) and the result: accepted or the refusal's code",
            token_checks.clone(),
        );
        for via in ["register", "header"] {
            let results = TOKEN_REFUSALS.map(ErrorCode::as_str);
            for result in std::iter::once("accepted").chain(results) {
                drop(token_checks.get_or_create(&TokenLabel { via, result }));
            }
        }
        let peers_in_grace = Gauge::default();
        registry.register(
            "peers_in_grace",
            "Peers whose connection dropped, held in their room for a resume (--resume-grace)",
            peers_in_grace.clone(),
        );
        let resumes = Counter::default();
        registry.register(
            "resumes",
            "Peers that came back within the grace and resumed their place, unseen by the room",
            resumes.clone(),
        );
        let grace_expiries = Counter::default();
        registry.register(
            "grace_expiries",
            "Peers whose grace ended without a resume (the room then heard peer-left)",
            grace_expiries.clone(),
        );
        let unregistered_evicted = Counter::default();
        registry.register(
            "unregistered_evicted",
            "Unregistered connections closed to make room for newer ones (--max-unregistered)",
            unregistered_evicted.clone(),
        );

        let relayed_family = Family::<TypeLabel, Counter>::default();
        registry.register(
            "messages_relayed",
            "Messages relayed from one peer to another, by type",
            relayed_family.clone(),
        );
        let relayed = RelayKind::ALL.map(|kind| {
            relayed_family
                .get_or_create(&TypeLabel {
                    r#type: kind.as_str(),
                })
                .clone()
        });

        let error_family = Family::<CodeLabel, Counter>::default();
        registry.register(
            "errors",
            "Error messages sent to clients, by code",
            error_family.clone(),
        );
        let errors = ErrorCode::ALL
            .iter()
            .map(|code| {
                error_family
                    .get_or_create(&CodeLabel {
                        code: code.as_str(),
                    })
                    .clone()
            })
            .collect();

        let closes = Family::<CloseLabel, Counter>::default();
        registry.register(
            "closes",
            "Connections closed by the server, by close code",
            closes.clone(),
        );
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "upgrades_rejected",
            "WebSocket upgrades refused, by reason",
            rejections.clone(),
        );
        // Every series exists from the start at zero, so a dashboard's rate() and an alert
        // on "any 1013" work before the first event.
        for code in CloseCode::SENT_BY_SERVER {
            drop(closes.get_or_create(&CloseLabel { code: code.0 }));
        }
        for why in Rejection::ALL {
            drop(rejections.get_or_create(&why.label()));
        }
        let cluster = ClusterMetrics::new();
        if clustered {
            cluster.register(&mut registry);
        }

        Self {
            registry,
            connections,
            connections_opened,
            peers,
            rooms,
            bytes_received,
            bytes_sent,
            unfinished_bytes,
            unregistered,
            outbound_bytes,
            outbound_cuts,
            unregistered_evicted,
            connection_seconds,
            relay_seconds,
            tls_handshake_failures,
            turn_credentials,
            peers_in_grace,
            resumes,
            grace_expiries,
            reloads,
            token_checks,
            relayed,
            errors,
            closes,
            rejections,
            cluster,
        }
    }

    pub fn relayed(&self, kind: RelayKind) {
        let index = RelayKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.relayed[index].inc();
    }

    pub fn error(&self, code: ErrorCode) {
        if let Some(index) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[index].inc();
        }
    }

    pub fn closed(&self, code: CloseCode) {
        self.closes
            .get_or_create(&CloseLabel { code: code.0 })
            .inc();
    }

    pub fn reloaded(&self, what: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&ReloadLabel { what, result })
            .inc();
    }

    /// One access token checked: `via` is `register` or `header`; `refused` the refusal's
    /// error code, or `None` when it was accepted.
    pub fn token_checked(&self, via: &'static str, refused: Option<ErrorCode>) {
        let result = refused.map_or("accepted", ErrorCode::as_str);
        self.token_checks
            .get_or_create(&TokenLabel { via, result })
            .inc();
    }

    pub fn rejected(&self, why: Rejection) {
        self.rejections.get_or_create(&why.label()).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
