//! Who may open a WebSocket: browser origins, room names, and limits per client address.
//!
//! Pure decisions over what the request says; `http` turns a refusal into a 403, 400 or 429.
//! The client address is the socket's, or — only when the socket peer is a trusted proxy —
//! the one the proxy reports (`Forwarded: for=`, RFC 7239, else the last `X-Forwarded-For`
//! entry). IPv6 clients are counted per /64: one host usually holds a whole /64.

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

/// The client's address: the socket peer's, unless that is a trusted proxy, whose report
/// (`Forwarded`, else `X-Forwarded-For`) is then believed.
pub fn client_address(
    socket_peer: IpAddr,
    trusted_proxies: &[IpNet],
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
) -> IpAddr {
    if !trusted_proxies.iter().any(|net| net.contains(&socket_peer)) {
        return socket_peer;
    }
    forwarded
        .and_then(forwarded_for)
        .or_else(|| x_forwarded_for.and_then(last_forwarded_for))
        .unwrap_or(socket_peer)
}

/// The last `for=` of an RFC 7239 `Forwarded` header (the one the nearest proxy added).
fn forwarded_for(header: &str) -> Option<IpAddr> {
    header
        .split(',')
        .rev()
        .find_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            })
        })
        .and_then(parse_node)
}

/// The last entry of `X-Forwarded-For` (the address the nearest proxy saw).
fn last_forwarded_for(header: &str) -> Option<IpAddr> {
    header
        .split(',')
        .next_back()
        .and_then(|a| parse_node(a.trim()))
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
        let client = |forwarded, xff| client_address(proxy, &trusted, forwarded, xff);
        assert_eq!(
            client(None, Some("198.51.100.7")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client(None, Some("1.1.1.1, 198.51.100.7")),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "the last entry is the one the proxy added"
        );
        assert_eq!(
            client(
                Some(r#"for=192.0.2.60;proto=http, for="[2001:db8::1]:4711""#),
                None
            ),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client(None, Some("garbage")), proxy);
        // An untrusted peer's headers are ignored.
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_address(stranger, &trusted, None, Some("1.2.3.4")),
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
