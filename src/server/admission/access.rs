//! Who may open a WebSocket: browser origins, room names, and limits per client address.
//!
//! Pure decisions over what the request says; `http` turns a refusal into a 403, 400 or 429.
//! The client address is the socket's, or — only when the socket peer is a trusted proxy —
//! the one the proxies report in the one header the operator chose, walked from the right
//! past trusted proxies. IPv6 clients are counted per /64: one host usually holds a whole /64.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::rate::TokenBucket;
use ipnet::IpNet;

/// An origin a browser may connect from: exact (`https://app.example.com`), or with a
/// wildcard first label (`https://*.example.com`, which does not match `example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme_and_rest: String,
    wildcard: bool,
}

impl OriginPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, host) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an origin like https://app.example.com"))?;
        if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
            return Err(format!(
                "{text:?} is not an origin like https://app.example.com (scheme and host, no path)"
            ));
        }
        match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => Ok(Self {
                scheme_and_rest: format!("{scheme}://.{}", suffix.to_ascii_lowercase()),
                wildcard: true,
            }),
            _ if host.contains('*') => Err(format!(
                "{text:?}: a wildcard may only stand for the first label (https://*.example.com)"
            )),
            _ => Ok(Self {
                scheme_and_rest: format!("{scheme}://{}", host.to_ascii_lowercase()),
                wildcard: false,
            }),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        if !self.wildcard {
            return origin == self.scheme_and_rest;
        }
        // "https://.example.com" matches "https://a.example.com", not "https://example.com".
        let (scheme, suffix) = self
            .scheme_and_rest
            .split_once("://")
            .expect("built with a scheme");
        let Some(host) = origin.strip_prefix(&format!("{scheme}://")) else {
            return false;
        };
        host.len() > suffix.len()
            && host.ends_with(suffix)
            && !host[..host.len() - suffix.len()].contains('/')
    }
}

/// The Origin rule: which browser pages may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    pub allowed: Vec<OriginPattern>,
    /// Refuse clients that send no Origin (non-browser clients send none).
    pub require: bool,
}

impl OriginPolicy {
    /// `Err` with the one-line reason for a 403.
    pub fn check(&self, origin: Option<&str>) -> Result<(), String> {
        match origin {
            None if self.require => Err("an Origin header is required here".into()),
            None => Ok(()),
            Some(_) if self.allowed.is_empty() => Ok(()),
            Some(origin) if self.allowed.iter().any(|p| p.matches(origin)) => Ok(()),
            Some(origin) => Err(format!(
                "origin {:?} is not allowed here",
                crate::protocol::truncate_chars(origin, 100)
            )),
        }
    }
}

/// The address limits are counted against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let segments = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(
                        segments[0],
                        segments[1],
                        segments[2],
                        segments[3],
                        0,
                        0,
                        0,
                        0,
                    )))
                }
            },
            v4 => Self(v4),
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// The one header a trusted proxy names the client in (`--client-address-header`). Only
/// that header is read: a client could send any other one itself, and a proxy that sets one
/// header passes the others through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, Caddy and HAProxy's default).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1, …`.
    Forwarded,
    /// `X-Real-IP: client`, one address set by the proxy.
    XRealIp,
}

impl ClientAddressHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }

    /// The hops one header line lists, nearest the client first; `None` for an entry that
    /// names no address (garbage, `unknown`, an obfuscated `_node`).
    fn hops(self, line: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
        line.split(',').map(move |entry| match self {
            Self::XForwardedFor | Self::XRealIp => parse_node(entry.trim()),
            Self::Forwarded => entry
                .split(';')
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().trim_matches('"'))
                })
                .and_then(parse_node),
        })
    }
}

/// The client's address: the socket peer's, unless that is a trusted proxy. Then the chosen
/// header, read across all its lines in order, is walked from the right (the entry the
/// nearest proxy added) past every trusted proxy, and the first hop that is not one is the
/// client (nginx's `real_ip_recursive`, RFC 7239 §7.4). What a client wrote itself stands
/// left of that hop and is never reached. An entry that names no address stops the walk at
/// the proxy that added it; a chain of trusted proxies only gives its leftmost entry.
pub fn client_address<'a>(
    socket_peer: IpAddr,
    trusted_proxies: &[IpNet],
    header: ClientAddressHeader,
    lines: impl DoubleEndedIterator<Item = &'a str>,
) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&socket_peer) {
        return socket_peer;
    }
    let mut client = socket_peer;
    for line in lines.rev() {
        let hops: Vec<Option<IpAddr>> = header.hops(line).collect();
        for hop in hops.into_iter().rev() {
            let Some(hop) = hop else {
                return client;
            };
            client = hop;
            if !trusted(&hop) {
                return client;
            }
        }
    }
    client
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// Why a client was refused by [`PerClientLimits`]: the 429's reason and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    pub reason: String,
    pub retry_after: Duration,
    pub rate: bool,
}

#[derive(Debug)]
struct ClientState {
    open: u32,
    /// Connection attempts, at `rate` per second with a second's worth at once.
    bucket: TokenBucket,
}

/// Open connections and connection attempts per client address.
#[derive(Debug)]
pub struct PerClientLimits {
    max_open: Option<u32>,
    rate: Option<u32>,
    clients: DashMap<ClientKey, ClientState>,
    pruned: Mutex<Instant>,
}

/// A place under the per-client cap, given back on drop.
pub struct ClientSlot {
    limits: std::sync::Arc<PerClientLimits>,
    key: ClientKey,
}

impl PerClientLimits {
    pub fn new(max_open: Option<u32>, rate: Option<u32>) -> Self {
        Self {
            max_open,
            rate,
            clients: DashMap::new(),
            pruned: Mutex::new(Instant::now()),
        }
    }

    pub fn is_active(&self) -> bool {
        self.max_open.is_some() || self.rate.is_some()
    }

    /// Admits one new connection from `key` at `now`, or says why not.
    pub fn admit(
        self: &std::sync::Arc<Self>,
        key: ClientKey,
        now: Instant,
    ) -> Result<ClientSlot, TooMany> {
        self.prune(now);
        let rate = self.rate.map(f64::from);
        let mut state = self.clients.entry(key).or_insert_with(|| ClientState {
            open: 0,
            bucket: TokenBucket::full(rate.unwrap_or(0.0), now),
        });
        if let Some(rate) = rate {
            let tokens = state.bucket.refill(now, rate, rate);
            if tokens < 1.0 {
                let wait = ((1.0 - tokens) / rate).ceil().max(1.0);
                return Err(TooMany {
                    reason: format!("too many connection attempts from {key}"),
                    retry_after: Duration::from_secs(wait as u64),
                    rate: true,
                });
            }
        }
        if let Some(max) = self.max_open
            && state.open >= max
        {
            return Err(TooMany {
                reason: format!("too many open connections from {key} (at most {max})"),
                retry_after: Duration::from_secs(5),
                rate: false,
            });
        }
        if let Some(rate) = rate {
            state.bucket.try_take(1.0, now, rate, rate);
        }
        state.open += 1;
        Ok(ClientSlot {
            limits: self.clone(),
            key,
        })
    }

    /// Forgets clients with nothing open and a full bucket, every few seconds, so the map
    /// holds only active clients however many addresses an attacker uses.
    fn prune(&self, now: Instant) {
        let Ok(mut last) = self.pruned.try_lock() else {
            return;
        };
        if now.saturating_duration_since(*last) < Duration::from_secs(5) {
            return;
        }
        *last = now;
        let full = self.rate.map_or(0.0, f64::from);
        self.clients.retain(|_, state| {
            // A copy: looking must not move the bucket's clock.
            state.open > 0 || state.bucket.clone().refill(now, full, full) < full
        });
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(mut state) = self.limits.clients.get_mut(&self.key) {
            state.open = state.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_exact_and_wildcard() {
        let policy = OriginPolicy {
            allowed: vec![
                OriginPattern::parse("https://app.example.com").unwrap(),
                OriginPattern::parse("https://*.example.org").unwrap(),
            ],
            require: false,
        };
        assert!(policy.check(Some("https://app.example.com")).is_ok());
        assert!(policy.check(Some("HTTPS://APP.EXAMPLE.COM")).is_ok());
        assert!(policy.check(Some("http://app.example.com")).is_err());
        assert!(policy.check(Some("https://a.b.example.org")).is_ok());
        assert!(policy.check(Some("https://example.org")).is_err());
        assert!(policy.check(Some("https://evilexample.org")).is_err());
        assert!(
            policy.check(None).is_ok(),
            "non-browser clients send no Origin"
        );
        let strict = OriginPolicy {
            require: true,
            ..policy
        };
        assert!(strict.check(None).is_err());
        assert!(OriginPattern::parse("app.example.com").is_err());
        assert!(OriginPattern::parse("https://a.*.com").is_err());
        assert!(OriginPattern::parse("https://x.com/path").is_err());
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let xff = |lines: &[&str]| {
            client_address(
                proxy,
                &trusted,
                ClientAddressHeader::XForwardedFor,
                lines.iter().copied(),
            )
        };
        assert_eq!(xff(&["198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(
            xff(&["1.1.1.1, 198.51.100.7"]),
            ip("198.51.100.7"),
            "the last entry is the one the proxy added; the client wrote the others"
        );
        assert_eq!(
            xff(&["203.0.113.1", "198.51.100.7"]),
            ip("198.51.100.7"),
            "every line is read, in order: HAProxy appends its own line after the client's"
        );
        assert_eq!(
            xff(&["203.0.113.1, 198.51.100.7, 10.1.1.1"]),
            ip("198.51.100.7"),
            "trusted proxies in the chain are walked past"
        );
        assert_eq!(
            xff(&["10.2.2.2, 10.1.1.1"]),
            ip("10.2.2.2"),
            "a chain of trusted proxies only gives its leftmost entry"
        );
        assert_eq!(xff(&["garbage"]), proxy);
        assert_eq!(
            xff(&["198.51.100.7, garbage, 10.1.1.1"]),
            ip("10.1.1.1"),
            "an entry that names no address stops the walk at the proxy that added it"
        );
        assert_eq!(xff(&[]), proxy);

        let forwarded = |lines: &[&str]| {
            client_address(
                proxy,
                &trusted,
                ClientAddressHeader::Forwarded,
                lines.iter().copied(),
            )
        };
        assert_eq!(
            forwarded(&[r#"for=192.0.2.60;proto=http, for="[2001:db8::1]:4711""#]),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded(&["for=203.0.113.9", "for=192.0.2.60;by=10.0.0.5"]),
            ip("192.0.2.60")
        );
        assert_eq!(forwarded(&["for=unknown"]), proxy);

        // Only the chosen header counts: with X-Forwarded-For chosen, a Forwarded line is
        // never looked at (the caller passes only the chosen header's lines).
        assert_eq!(
            client_address(
                proxy,
                &trusted,
                ClientAddressHeader::XRealIp,
                ["198.51.100.7"].into_iter()
            ),
            ip("198.51.100.7")
        );
        // An untrusted peer's headers are ignored.
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_address(
                stranger,
                &trusted,
                ClientAddressHeader::XForwardedFor,
                ["1.2.3.4"].into_iter()
            ),
            stranger
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientKey::of("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, ClientKey::of("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn per_client_caps_and_rates() {
        let now = Instant::now();
        let key = ClientKey::of("192.0.2.1".parse().unwrap());
        let limits = std::sync::Arc::new(PerClientLimits::new(Some(2), None));
        let first = limits.admit(key, now).unwrap();
        let _second = limits.admit(key, now).unwrap();
        let refused = limits.admit(key, now).err().unwrap();
        assert!(!refused.rate && refused.reason.contains("at most 2"));
        drop(first);
        assert!(
            limits.admit(key, now).is_ok(),
            "a closed connection gives its place back"
        );

        let limits = std::sync::Arc::new(PerClientLimits::new(None, Some(2)));
        let _a = limits.admit(key, now).unwrap();
        let _b = limits.admit(key, now).unwrap();
        let refused = limits.admit(key, now).err().unwrap();
        assert!(refused.rate);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(limits.admit(key, now + Duration::from_millis(600)).is_ok());
        let other = ClientKey::of("192.0.2.2".parse().unwrap());
        assert!(limits.admit(other, now).is_ok(), "limits are per client");
    }
}
