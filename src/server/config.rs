//! Every tunable of `rdv serve`, with its default, its flag and its `RDV_…` variable.
//!
//! Defined once with clap attributes, so `--help`, the man page, the completions and the
//! README table all come from here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::units::{parse_duration, parse_duration_or_zero, parse_size, parse_total_size};

/// Limits and timings of the signaling server (PROTOCOL §6).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Read settings from this TOML file, each under its flag's name without the dashes
    /// (`max-connections = 20000`). Flags and RDV_* variables win over the file.
    #[arg(long, env = "RDV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (files readable, certificate matching its key, patterns),
    /// print every setting with where it came from, and exit: 0 if it is sound, else 1 with
    /// every problem.
    #[arg(long)]
    pub check_config: bool,

    /// Address to listen on; port 0 picks a free port. The bound address is printed on stdout
    /// as one line: `listening ADDR`.
    #[arg(
        long,
        env = "RDV_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR",
        value_parser = parse_listen
    )]
    pub listen: String,

    /// Serve TLS (wss:// and https://) with this PEM certificate chain; needs --tls-key.
    /// SIGHUP reloads the pair without dropping a connection.
    // The pair is checked as a pair in `tls_files`, not with clap's `requires`: clap does
    // not count a value from the config file, which would let a half pair serve plain text.
    #[arg(long, env = "RDV_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "RDV_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Largest message accepted; a bigger one closes its connection with 1009.
    #[arg(long, env = "RDV_MAX_MESSAGE_SIZE", default_value = "64KiB", value_name = "SIZE",
          value_parser = parse_size)]
    pub max_message_size: usize,

    /// WebSocket read buffer per connection, allocated up front: small saves memory per idle
    /// peer (it grows to fit a larger message). Busy connections read ahead up to 16 KiB per
    /// system call whatever its size.
    #[arg(long, env = "RDV_READ_BUFFER", default_value = "512B", value_name = "SIZE",
          value_parser = parse_size)]
    pub read_buffer: usize,

    /// Interval between the server's WebSocket pings; a connection silent for two intervals
    /// is closed and its peer reported as left.
    #[arg(long, env = "RDV_PING_INTERVAL", default_value = "30s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// How long a connection may stay unregistered before it is closed with 1008; also how
    /// long a client may take to send its whole HTTP request head.
    #[arg(long, env = "RDV_REGISTER_TIMEOUT", default_value = "5s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub register_timeout: Duration,

    /// Connections not registered yet (request head arriving, or upgraded and waiting for
    /// `register`), counted from accept. When full, the oldest of them is closed to make room
    /// (1013 if upgraded), so idle sockets never lock out new clients or registered peers.
    #[arg(long, env = "RDV_MAX_UNREGISTERED", default_value_t = 1000, value_name = "COUNT",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unregistered: u32,

    /// How long one message may take to arrive whole, from its first frame to its last
    /// (a fragmented message, or one large frame); a slower one closes its connection (1008).
    #[arg(long, env = "RDV_MESSAGE_TIMEOUT", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub message_timeout: Duration,

    /// Bytes of unfinished messages (fragments not yet complete) held across the whole
    /// server; a connection that would go past it is closed with 1013.
    #[arg(long, env = "RDV_MAX_UNFINISHED_BYTES", default_value = "64MiB", value_name = "SIZE",
          value_parser = parse_size)]
    pub max_unfinished_bytes: usize,

    /// Messages queued for one connection before it counts as too slow and is closed with 1013.
    #[arg(long, env = "RDV_OUTBOUND_QUEUE", default_value_t = 1024, value_name = "MESSAGES",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub outbound_queue: u32,

    /// Bytes queued for one connection before it counts as too slow and is closed with 1013;
    /// with --outbound-queue this bounds the memory a stalled receiver can hold.
    #[arg(long, env = "RDV_OUTBOUND_QUEUE_BYTES", default_value = "1MiB", value_name = "SIZE",
          value_parser = parse_size)]
    pub outbound_queue_bytes: usize,

    /// Bytes queued to all connections together, from queued until the socket takes them.
    /// At the ceiling the slowest receivers (largest backlogs) are closed first with 1013.
    #[arg(long, env = "RDV_MAX_OUTBOUND_BYTES", default_value = "256MiB", value_name = "SIZE",
          value_parser = parse_total_size)]
    pub max_outbound_bytes: usize,

    /// Open WebSocket connections allowed at once; more are closed with 1013.
    #[arg(long, env = "RDV_MAX_CONNECTIONS", default_value_t = 10_000, value_name = "COUNT",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Registered peers allowed in one room; more get `room-full`.
    #[arg(long, env = "RDV_MAX_PEERS_PER_ROOM", default_value_t = 500, value_name = "COUNT",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_peers_per_room: u32,

    /// Messages per second one connection may send on average.
    #[arg(long, env = "RDV_RATE_LIMIT", default_value_t = 100, value_name = "PER_SECOND",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Messages one connection may send in a burst above the rate; a connection that keeps
    /// sending after a whole burst has been dropped is closed with 1008.
    #[arg(long, env = "RDV_RATE_BURST", default_value_t = 200, value_name = "MESSAGES",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// How long a registered peer whose connection dropped without a close frame (a reset,
    /// a lost network, a keepalive timeout) keeps its place in the room: a `register` of the
    /// same peer ID within it resumes, unseen by the room, and gets the relays sent to it
    /// meanwhile (PROTOCOL §14). 0 turns it off: the room hears `peer-left` at once.
    #[arg(long, env = "RDV_RESUME_GRACE", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration_or_zero)]
    pub resume_grace: Duration,

    /// Longest wait for connections to close on SIGINT/SIGTERM before exiting anyway.
    #[arg(long, env = "RDV_DRAIN_TIMEOUT", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Only these peer IDs may register (a file of IDs, one per line, `#` comments; or a JSON
    /// buddy list `[{"id": …}]`). Others get `forbidden` and are closed with 1008.
    #[arg(long, env = "RDV_ALLOW_LIST", value_name = "FILE")]
    pub allow_list: Option<PathBuf>,

    /// Browser origins allowed to connect (repeatable): exact, like https://app.example.com,
    /// or https://*.example.com for its subdomains. A browser upgrade from another origin
    /// gets 403. Without any, every origin is allowed.
    #[arg(long = "allow-origin", env = "RDV_ALLOW_ORIGIN", value_name = "ORIGIN",
          value_delimiter = ',', value_parser = crate::server::admission::access::OriginPattern::parse)]
    pub allow_origin: Vec<crate::server::admission::access::OriginPattern>,

    /// Refuse upgrades that send no Origin header (non-browser clients send none).
    #[arg(long, env = "RDV_REQUIRE_ORIGIN")]
    pub require_origin: bool,

    /// Room names must match this regular expression (whole name); others get 400 naming it.
    #[arg(long, env = "RDV_ROOM_PATTERN", value_name = "REGEX", value_parser = parse_room_pattern)]
    pub room_pattern: Option<regex::Regex>,

    /// Open WebSocket connections allowed from one client address (an IPv6 /64 counts as
    /// one); more get 429 with Retry-After.
    #[arg(long, env = "RDV_MAX_CONNECTIONS_PER_IP", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: Option<u32>,

    /// Upgrades one client address may start per second (token bucket, a second's worth at
    /// once); more get 429 with Retry-After.
    #[arg(long, env = "RDV_CONNECT_RATE_PER_IP", value_name = "PER_SECOND",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate_per_ip: Option<u32>,

    /// Proxies (repeatable CIDR, e.g. 10.0.0.0/8 or 127.0.0.1/32) whose
    /// --client-address-header names the client; from anyone else it is ignored.
    #[arg(long = "trusted-proxy", env = "RDV_TRUSTED_PROXY", value_name = "CIDR",
          value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// The one header your trusted proxy names the client in. It is read across all its
    /// lines from the right, past trusted proxies, to the first address that is not one;
    /// every other forwarding header is ignored, so a client cannot choose its address.
    #[arg(long, env = "RDV_CLIENT_ADDRESS_HEADER", value_enum, value_name = "HEADER",
          default_value_t = crate::server::ClientAddressHeader::XForwardedFor)]
    pub client_address_header: crate::server::ClientAddressHeader,

    /// Write room names into the connection log; otherwise each room is logged as a short
    /// keyed hash (the same room gives the same hash while the server runs).
    #[arg(long, env = "RDV_LOG_ROOM_NAMES")]
    pub log_room_names: bool,

    /// Proof of possession (PROTOCOL §9): `off` keeps the original protocol byte for byte;
    /// `optional` and `required` send a challenge and mark peers verified or not.
    #[arg(long, env = "RDV_PROOF", value_enum, default_value_t = ProofMode::Off)]
    pub proof: ProofMode,

    /// Proof-of-possession checks the whole server does per second, in units of one P-256,
    /// Ed25519 or RSA-2048 check (RSA-4096 counts 4, RSA-8192 16, and up to 4 times that
    /// for an exponent above 65537). Only proofs that pass every free check are charged.
    /// Past it, a register with a proof is closed with 1013 to retry later, so a flood of
    /// proofs cannot take the CPU.
    #[arg(long, env = "RDV_MAX_PROOF_CHECKS", default_value_t = 2000, value_name = "PER_SECOND",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_proof_checks: u32,

    /// Require an access token (a JWT) with every register (PROTOCOL §13), signed by a key
    /// in this file (repeatable): a public JWK, a JWK Set, PEM public keys (ES256, ES384,
    /// EdDSA, RS256/PS256…), an `oct` JWK, or a secret on the first line (HS256). The
    /// algorithm comes from the key, never from the token. Reloaded on SIGHUP.
    #[arg(
        long = "auth-key",
        env = "RDV_AUTH_KEY",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub auth_key: Vec<PathBuf>,

    /// With --auth-key: tokens must name one of these audiences in `aud` (repeatable).
    #[arg(
        long = "auth-audience",
        env = "RDV_AUTH_AUDIENCE",
        value_name = "AUD",
        value_delimiter = ','
    )]
    pub auth_audience: Vec<String>,

    /// With --auth-key: tokens must come from one of these issuers (`iss`, repeatable).
    #[arg(
        long = "auth-issuer",
        env = "RDV_AUTH_ISSUER",
        value_name = "ISS",
        value_delimiter = ','
    )]
    pub auth_issuer: Vec<String>,

    /// STUN or TURN server to hand peers in `welcome` (repeatable): stun:HOST[:PORT],
    /// turn:HOST[:PORT][?transport=udp|tcp], turns:… (PROTOCOL §10). Without any, nothing
    /// changes on the wire.
    #[arg(long = "ice-server", env = "RDV_ICE_SERVER", value_name = "URL",
          value_delimiter = ',', value_parser = crate::server::operations::ice::IceUrl::parse)]
    pub ice_server: Vec<crate::server::operations::ice::IceUrl>,

    /// coturn's static-auth-secret (the file's first line): TURN URLs get time-limited
    /// credentials for each peer, EXPIRY:PEER_ID and base64(HMAC-SHA1(secret, username)).
    /// Read at start and on SIGHUP; never logged.
    #[arg(long, env = "RDV_TURN_SECRET_FILE", value_name = "FILE")]
    pub turn_secret_file: Option<PathBuf>,

    /// How long TURN credentials are valid; peers get fresh ones (an `ice-servers` message)
    /// at 80 % of it.
    #[arg(long, env = "RDV_TURN_TTL", default_value = "1h", value_name = "DURATION",
          value_parser = parse_duration)]
    pub turn_ttl: Duration,

    /// Run as one instance of a cluster: rooms span every instance connected to this Redis 7
    /// (or Valkey), redis://HOST:PORT[/DB] or rediss:// for TLS, or to a Redis Cluster given
    /// by seed nodes, redis://HOST1:PORT1,HOST2:PORT2,… (docs/cluster.md). Without it the
    /// server is a single process that needs nothing else.
    #[arg(long, env = "RDV_CLUSTER", value_name = "URL", value_parser = parse_cluster_url)]
    pub cluster: Option<String>,

    /// The Redis password (the file's first line), instead of putting it in --cluster's URL.
    #[arg(
        long,
        env = "RDV_CLUSTER_PASSWORD_FILE",
        value_name = "FILE",
        requires = "cluster"
    )]
    pub cluster_password_file: Option<PathBuf>,

    /// How long the members of an instance that stops without a goodbye (a crash, a lost
    /// host) stay in their rooms before the rest of the cluster announces them gone.
    #[arg(long, env = "RDV_CLUSTER_LEASE", default_value = "10s", value_name = "DURATION",
          value_parser = parse_lease)]
    pub cluster_lease: Duration,

    /// Log format on stderr; the level comes from `RDV_LOG` (e.g. `info`, `rdv=debug`).
    #[arg(long, env = "RDV_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProofMode {
    /// No challenge; `register` carries no proof.
    Off,
    /// A proof, when given, must be valid; peers without one are unverified.
    Optional,
    /// Every `register` must carry a valid proof.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Everything that would stop `rdv serve` from starting, short of binding the port: each
    /// a sentence naming the file or the setting.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.tls_files() {
            Ok(Some(files)) => {
                if let Err(error) = files.load() {
                    problems.push(error.to_string());
                }
            }
            Ok(None) => {}
            Err(half) => problems.push(half.to_string()),
        }
        if let Some(path) = &self.allow_list
            && let Err(error) = crate::server::admission::allow::load(path)
        {
            problems.push(error.to_string());
        }
        if let Some(path) = &self.turn_secret_file
            && let Err(error) = crate::server::operations::ice::read_secret(path)
        {
            problems.push(error.to_string());
        }
        if let Some(path) = &self.cluster_password_file
            && let Err(error) = read_password(path)
        {
            problems.push(error);
        }
        if let Err(error) = self.token_verifier() {
            problems.push(error);
        }
        problems
    }

    /// The access-token keys and checks, read from the `--auth-key` files; `None` when
    /// tokens are off.
    pub(crate) fn token_verifier(&self) -> Result<Option<crate::token::Verifier>, String> {
        if self.auth_key.is_empty() {
            return Ok(None);
        }
        let options = crate::token::VerifierOptions {
            audience: self.auth_audience.clone(),
            issuer: self.auth_issuer.clone(),
        };
        crate::server::admission::tokens::load(&self.auth_key, options).map(Some)
    }

    /// The TLS certificate and key, if TLS is on. One without the other, from any source
    /// (flag, variable, file), is an error: an operator must never believe TLS is on while
    /// the server speaks plain text.
    pub(crate) fn tls_files(
        &self,
    ) -> Result<
        Option<crate::server::admission::tls::TlsFiles>,
        crate::server::admission::tls::TlsError,
    > {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::server::admission::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(crate::server::admission::tls::TlsError::HalfPair {
                given: "--tls-cert",
                missing: "--tls-key",
            }),
            (None, Some(_)) => Err(crate::server::admission::tls::TlsError::HalfPair {
                given: "--tls-key",
                missing: "--tls-cert",
            }),
        }
    }

    /// Settings that work but will surprise: each a sentence for the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // A relayed message carries `from` (64 hex digits) besides what the sender wrote.
        let largest_relay = self.max_message_size + 128;
        if largest_relay > self.outbound_queue_bytes {
            warnings.push(format!(
                "--outbound-queue-bytes ({}) is smaller than a relayed message can be \
                 (--max-message-size {} plus the server's additions): a receiver sent one is \
                 closed with 1013",
                self.outbound_queue_bytes, self.max_message_size
            ));
        }
        // `{"id":"<64 hex>","publicKey":KEY,"verified":false}` and its comma.
        let entry = crate::identity::MAX_ANNOUNCED_KEY + 104;
        let largest_welcome = self.max_peers_per_room as usize * entry + 128;
        if largest_welcome > self.outbound_queue_bytes {
            warnings.push(format!(
                "a welcome to a full room (--max-peers-per-room {}) can reach {largest_welcome} \
                 bytes with the largest keys, more than --outbound-queue-bytes ({}): a peer \
                 joining a room that large gets room-full",
                self.max_peers_per_room, self.outbound_queue_bytes
            ));
        }
        if self.outbound_queue_bytes > self.max_outbound_bytes {
            warnings.push(format!(
                "--outbound-queue-bytes ({}) is above --max-outbound-bytes ({}): one slow \
                 receiver can fill the whole server's outbound memory",
                self.outbound_queue_bytes, self.max_outbound_bytes
            ));
        }
        if !self.auth_key.is_empty() && self.proof != ProofMode::Required {
            warnings.push(
                "--auth-key without --proof required: a token bound to a peer (sub) can be \
                 used by anyone who has that peer's public key, and keys are public"
                    .into(),
            );
        }
        if self.auth_key.is_empty()
            && !(self.auth_audience.is_empty() && self.auth_issuer.is_empty())
        {
            warnings.push("--auth-audience and --auth-issuer do nothing without --auth-key".into());
        }
        if self.max_unregistered >= self.max_connections {
            warnings.push(format!(
                "--max-unregistered ({}) is not below --max-connections ({}): connections that \
                 never register can take every place",
                self.max_unregistered, self.max_connections
            ));
        }
        warnings
    }
}

fn parse_room_pattern(text: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{text})$"))
        .map_err(|e| format!("{text:?} is not a regular expression: {e}"))
}

fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a CIDR block like 10.0.0.0/8"))
}

/// `HOST:PORT` (an IP address or a name); a bare port or `:PORT` gets a suggestion of what to
/// type instead, since the resolver's own error ("invalid socket address") does not say.
fn parse_listen(text: &str) -> Result<String, String> {
    let suggest = |port: &str| {
        format!(
            "{text:?} has no host: use 127.0.0.1:{port} (this machine only) or \
             0.0.0.0:{port} (every interface; [::]:{port} for IPv6 too)"
        )
    };
    if let Some(port) = text.strip_prefix(':') {
        return Err(suggest(port));
    }
    if text.parse::<u16>().is_ok() {
        return Err(suggest(text));
    }
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "{text:?} is not HOST:PORT (e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080, \
             localhost:8080)"
        )),
    }
}

impl Default for Config {
    /// The documented defaults, exactly as `rdv serve` with no flags and no environment.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        let matches = <Defaults as clap::CommandFactory>::command()
            .mut_args(|arg| arg.env(None::<&str>)) // ignore the caller's RDV_* variables
            .get_matches_from(["rdv"]);
        <Defaults as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("defaults parse")
            .config
    }
}

fn parse_cluster_url(text: &str) -> Result<String, String> {
    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
        return Err(format!(
            "{text:?} is not a Redis URL; use redis://HOST:PORT[/DB] or rediss://HOST:PORT for TLS"
        ));
    }
    crate::server::rooms::cluster::check_url(text).map(|()| text.to_owned())
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < Duration::from_millis(600) {
        return Err("the lease must be at least 600ms (it is renewed every quarter)".into());
    }
    Ok(lease)
}

/// The first line of a password file.
pub fn read_password(path: &std::path::Path) -> Result<String, String> {
    let problem = |problem: &str| format!("--cluster-password-file {}: {problem}", path.display());
    crate::files::read_first_line(path)
        .map_err(|error| problem(&error))?
        .ok_or_else(|| problem("the first line is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_checked_with_a_suggestion() {
        for good in [
            "127.0.0.1:0",
            "0.0.0.0:8080",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert_eq!(parse_listen(good).as_deref(), Ok(good));
        }
        for bare in [":8081", "8081"] {
            let error = parse_listen(bare).unwrap_err();
            assert!(error.contains("127.0.0.1:8081"), "{error}");
            assert!(error.contains("0.0.0.0:8081"), "{error}");
        }
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("h:99999").is_err());
    }

    #[test]
    fn the_defaults_warn_about_nothing_and_odd_settings_are_named() {
        assert_eq!(Config::default().warnings(), Vec::<String>::new());
        let config = Config {
            outbound_queue_bytes: 32 * 1024,
            max_unregistered: 20_000,
            ..Config::default()
        };
        let warnings = config.warnings().join("\n");
        assert!(warnings.contains("--max-message-size 65536"), "{warnings}");
        assert!(warnings.contains("--max-peers-per-room 500"), "{warnings}");
        assert!(
            warnings.contains("--max-unregistered (20000)"),
            "{warnings}"
        );
    }

    #[test]
    fn defaults_match_the_protocol() {
        let config = Config::default();
        assert_eq!(config.max_message_size, 64 * 1024);
        assert_eq!(config.ping_interval, Duration::from_secs(30));
        assert_eq!(config.register_timeout, Duration::from_secs(5));
        assert_eq!(config.listen, "127.0.0.1:8080");
    }
}
