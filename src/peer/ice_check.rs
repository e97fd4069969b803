//! `rdv peer --ice-check`: take the ICE servers a real `welcome` handed out and try each one —
//! a STUN Binding request, or a TURN Allocate with the minted credential (the `turn` crate of
//! webrtc-rs does the protocol and the message integrity) — reporting reachability, the
//! allocation, the relayed or reflexive address and the round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

/// How long one server may take to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome for one URL.
#[derive(Debug, Clone, Serialize)]
pub struct IceCheck {
    #[serde(rename = "type")]
    kind: &'static str,
    pub url: String,
    pub ok: bool,
    /// Not tried: only plain UDP is checked (`turns:`, `?transport=tcp` are listed as skipped).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// What was learned: the relayed address (TURN) or the reflexive one (STUN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(rename = "rttMs", skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl IceCheck {
    fn new(url: &str) -> Self {
        Self {
            kind: "ice-check",
            url: url.to_owned(),
            ok: false,
            skipped: false,
            address: None,
            rtt_ms: None,
            problem: None,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        if self.skipped {
            return format!(
                "{}: skipped ({})",
                self.url,
                self.problem.as_deref().unwrap_or("")
            );
        }
        match (&self.problem, &self.address) {
            (Some(problem), _) => format!("{}: FAILED: {problem}", self.url),
            (None, Some(address)) => {
                let what = if self.url.starts_with("turn") {
                    "allocation granted, relayed address"
                } else {
                    "reachable, reflexive address"
                };
                format!(
                    "{}: {what} {address}, round trip {:.1} ms",
                    self.url,
                    self.rtt_ms.unwrap_or_default()
                )
            }
            (None, None) => format!("{}: ok", self.url),
        }
    }
}

/// Checks every URL of an `iceServers` array (the shape `welcome` carries).
pub async fn check_all(ice_servers: &Value) -> Vec<IceCheck> {
    let mut checks = Vec::new();
    for server in ice_servers.as_array().into_iter().flatten() {
        let urls: Vec<&str> = match &server["urls"] {
            Value::String(url) => vec![url.as_str()],
            Value::Array(urls) => urls.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let username = server["username"].as_str().unwrap_or("");
        let credential = server["credential"].as_str().unwrap_or("");
        for url in urls {
            checks.push(check(url, username, credential).await);
        }
    }
    checks
}

async fn check(url: &str, username: &str, credential: &str) -> IceCheck {
    let mut result = IceCheck::new(url);
    if let Ok((scheme, _, transport)) = parse(url)
        && (scheme.ends_with('s') || transport != "udp")
    {
        result.skipped = true;
        result.problem = Some(format!(
            "only plain UDP is checked; this is {scheme}: over {transport}"
        ));
        return result;
    }
    match probe(url, username, credential).await {
        Ok((address, rtt)) => {
            result.ok = true;
            result.address = Some(address);
            result.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
        }
        Err(problem) => result.problem = Some(problem),
    }
    result
}

/// `(scheme, host:port, transport)` of a STUN or TURN URL.
fn parse(url: &str) -> Result<(&str, String, &str), String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| "not a STUN or TURN URL".to_owned())?;
    let (host, transport) = match rest.split_once("?transport=") {
        Some((host, transport)) => (host, transport),
        None => (rest, "udp"),
    };
    let default_port = if scheme.ends_with('s') { 5349 } else { 3478 };
    // host, host:port, [v6] or [v6]:port
    let with_port = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_owned()
        } else {
            format!("{host}:{default_port}")
        }
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    Ok((scheme, with_port, transport))
}

async fn probe(url: &str, username: &str, credential: &str) -> Result<(String, Duration), String> {
    let (scheme, server, _) = parse(url)?;
    let turn = scheme == "turn";
    let client = client(&server, turn, username, credential).await?;
    let started = Instant::now();
    let outcome = if turn {
        if username.is_empty() {
            Err("no credential for this TURN server in the welcome".to_owned())
        } else {
            match tokio::time::timeout(CHECK_TIMEOUT, client.allocate()).await {
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                Ok(Err(e)) => Err(format!("allocation refused: {e}")),
                Ok(Ok(relay)) => {
                    use webrtc_util::Conn as _;
                    let relayed = relay.local_addr().map_err(|e| e.to_string())?;
                    let _ = relay.close().await;
                    Ok((relayed.to_string(), started.elapsed()))
                }
            }
        }
    } else {
        match tokio::time::timeout(CHECK_TIMEOUT, client.send_binding_request()).await {
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("binding refused: {e}")),
            Ok(Ok(reflexive)) => Ok((reflexive.to_string(), started.elapsed())),
        }
    };
    let _ = client.close().await;
    outcome
}

/// A STUN (or, with `turn`, TURN) client for `server` (`host:port`) on a UDP socket of its
/// own, listening.
async fn client(
    server: &str,
    turn: bool,
    username: &str,
    credential: &str,
) -> Result<turn::client::Client, String> {
    let target = tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} has no address"))?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let (stun_serv_addr, turn_serv_addr) = if turn {
        (String::new(), target.to_string())
    } else {
        (target.to_string(), String::new())
    };
    let config = turn::client::ClientConfig {
        stun_serv_addr,
        turn_serv_addr,
        username: username.to_owned(),
        password: credential.to_owned(),
        realm: String::new(),
        software: "rdv".to_owned(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    };
    let client = turn::client::Client::new(config)
        .await
        .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    Ok(client)
}

/// Takes an allocation on the TURN server at `url` (plain UDP): the client (keep it while the
/// allocation is used) and the relayed connection.
#[cfg(feature = "webrtc")]
pub async fn allocate(
    url: &str,
    username: &str,
    credential: &str,
) -> Result<
    (
        turn::client::Client,
        Arc<dyn webrtc_util::Conn + Send + Sync>,
    ),
    String,
> {
    let (scheme, server, transport) = parse(url)?;
    if scheme != "turn" || transport != "udp" {
        return Err(format!(
            "only turn: over UDP is used; this is {scheme}: over {transport}"
        ));
    }
    if username.is_empty() {
        return Err("no credential for this TURN server in the welcome".to_owned());
    }
    let client = client(&server, true, username, credential).await?;
    match tokio::time::timeout(CHECK_TIMEOUT, client.allocate()).await {
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("allocation refused: {e}")),
        Ok(Ok(relay)) => Ok((client, Arc::new(relay))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_default_ports() {
        assert_eq!(
            parse("turn:example.com").unwrap(),
            ("turn", "example.com:3478".into(), "udp")
        );
        assert_eq!(
            parse("turns:example.com?transport=tcp").unwrap(),
            ("turns", "example.com:5349".into(), "tcp")
        );
        assert_eq!(
            parse("stun:[2001:db8::1]").unwrap(),
            ("stun", "[2001:db8::1]:3478".into(), "udp")
        );
        assert_eq!(
            parse("turn:127.0.0.1:4000?transport=udp").unwrap(),
            ("turn", "127.0.0.1:4000".into(), "udp")
        );
    }
}
