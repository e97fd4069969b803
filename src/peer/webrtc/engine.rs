//! The peer connections, with str0m: one per remote peer, each with the data channel rdv.js
//! opens (negotiated, id 0, label `rdv`).
//!
//! str0m does the WebRTC (ICE, DTLS, SCTP) without I/O; this module gives it UDP sockets on
//! this host's addresses and time, and turns what it reports into [`Happening`]s, which the
//! driver prints (NDJSON in script mode) and checks its conditions against. Our candidates
//! (host, and relayed through the TURN servers of `welcome`) are known before any
//! description is made, so they go in the SDP itself and nothing is trickled from this
//! side; candidates the other side trickles are taken.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::report::{Happening, Stage, What};

/// The data channel rdv.js creates on both sides (`negotiated: true, id: 0`).
const CHANNEL_LABEL: &str = "rdv";
const CHANNEL_ID: u16 = 0;
/// How often str0m reports the selected pair and its round-trip time: often enough that the
/// pair is shown right after the channel opens.
const STATS_EVERY: Duration = Duration::from_millis(200);
/// Most lines typed before any channel opened, kept to send once one does.
const MAX_WAITING_LINES: usize = 1024;

/// One peer connection.
struct Link {
    rtc: Rtc,
    stage: Stage,
    pending_offer: Option<SdpPendingOffer>,
    channel: Option<ChannelId>,
    /// Candidate types by address, from the remote descriptions and trickled candidates.
    remote_kinds: HashMap<SocketAddr, &'static str>,
    /// The pair last reported, so a change is reported once.
    pair: Option<(SocketAddr, SocketAddr)>,
}

/// A description or a candidate that could not be used, with why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WebRtcError(pub String);

/// Where datagrams of one local candidate go in and out.
enum Path {
    Socket(Arc<UdpSocket>),
    /// A TURN allocation: sends go through a task of its own, in order, since the relay
    /// may first have to ask the server for a permission.
    Relay {
        conn: Arc<dyn webrtc_util::Conn + Send + Sync>,
        sends: tokio::sync::mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    },
}

/// One local candidate: its path, its address, its type.
struct Endpoint {
    path: Path,
    addr: SocketAddr,
    kind: &'static str,
}

/// Every peer connection of this run, and the endpoints they share.
pub struct WebRtc {
    sockets: Vec<Endpoint>,
    links: HashMap<String, Link>,
    /// Lines typed before a channel opened.
    waiting: VecDeque<String>,
    /// `--relay-only`: only relayed candidates are offered.
    relay_only: bool,
    /// The TURN clients behind the relay endpoints, kept alive with them.
    turn_clients: Vec<turn::client::Client>,
    /// Relays were asked for (once per run: the first welcome's servers).
    relays_tried: bool,
}

/// What woke the event loop for WebRTC.
pub enum Wake {
    Datagram {
        socket: usize,
        source: SocketAddr,
        data: Vec<u8>,
    },
    Timer,
}

impl WebRtc {
    /// Binds one UDP socket per address this host is reached at: loopback, and the address
    /// of its default route if it has one.
    pub async fn bind() -> std::io::Result<Self> {
        let mut addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if let Some(routed) = default_route_address().await {
            addresses.push(routed);
        }
        let mut sockets = Vec::new();
        for address in addresses {
            let socket = UdpSocket::bind(SocketAddr::new(address, 0)).await?;
            let local = socket.local_addr()?;
            sockets.push(Endpoint {
                path: Path::Socket(Arc::new(socket)),
                addr: local,
                kind: "host",
            });
        }
        Ok(Self {
            sockets,
            links: HashMap::new(),
            waiting: VecDeque::new(),
            relay_only: false,
            turn_clients: Vec::new(),
            relays_tried: false,
        })
    }

    /// `--relay-only`: offer relayed candidates only (from the TURN servers of `welcome`).
    pub fn set_relay_only(&mut self, relay_only: bool) {
        self.relay_only = relay_only;
    }

    /// Takes an allocation on every plain-UDP TURN server `ice_servers` (a `welcome`'s
    /// `iceServers`) lists, with its credential; each relayed address becomes a candidate of
    /// every connection made from now on. Returns a line per server for the user.
    pub async fn allocate_relays(&mut self, ice_servers: &serde_json::Value) -> Vec<String> {
        let mut notes = Vec::new();
        if std::mem::replace(&mut self.relays_tried, true) {
            return notes;
        }
        for server in ice_servers.as_array().into_iter().flatten() {
            let urls: Vec<&str> = match &server["urls"] {
                serde_json::Value::String(url) => vec![url.as_str()],
                serde_json::Value::Array(urls) => urls.iter().filter_map(|u| u.as_str()).collect(),
                _ => Vec::new(),
            };
            let username = server["username"].as_str().unwrap_or("");
            let credential = server["credential"].as_str().unwrap_or("");
            for url in urls.into_iter().filter(|url| url.starts_with("turn:")) {
                match super::super::ice_check::allocate(url, username, credential).await {
                    Ok((client, conn)) => {
                        let addr = match conn.local_addr() {
                            Ok(addr) => addr,
                            Err(error) => {
                                notes.push(format!("{url}: {error}"));
                                continue;
                            }
                        };
                        notes.push(format!("{url}: relayed candidate {addr}"));
                        let (sends, mut queue) =
                            tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
                        let sender = conn.clone();
                        tokio::spawn(async move {
                            while let Some((data, to)) = queue.recv().await {
                                let _ = sender.send_to(&data, to).await;
                            }
                        });
                        self.sockets.push(Endpoint {
                            path: Path::Relay { conn, sends },
                            addr,
                            kind: "relay",
                        });
                        self.turn_clients.push(client);
                    }
                    Err(problem) => notes.push(format!("{url}: no relay: {problem}")),
                }
            }
        }
        notes
    }

    /// The candidates we offer.
    fn candidates(&self) -> impl Iterator<Item = Candidate> + '_ {
        self.sockets
            .iter()
            .filter(|endpoint| !self.relay_only || endpoint.kind == "relay")
            .filter_map(|endpoint| match endpoint.kind {
                "relay" => Candidate::relayed(endpoint.addr, endpoint.addr, "udp").ok(),
                _ => Candidate::host(endpoint.addr, "udp").ok(),
            })
    }

    /// Our candidates, as SDP candidate lines.
    pub fn local_candidates(&self) -> Vec<String> {
        self.candidates()
            .map(|candidate| candidate.to_sdp_string())
            .collect()
    }

    fn new_link(&self) -> Link {
        let mut rtc = Rtc::builder()
            .set_stats_interval(Some(STATS_EVERY))
            .build(Instant::now());
        for candidate in self.candidates() {
            rtc.add_local_candidate(candidate);
        }
        Link {
            rtc,
            stage: Stage::Ice,
            pending_offer: None,
            channel: None,
            remote_kinds: HashMap::new(),
            pair: None,
        }
    }

    pub fn has_link(&self, peer: &str) -> bool {
        self.links.contains_key(peer)
    }

    pub fn any_link(&self) -> bool {
        !self.links.is_empty()
    }

    /// A new peer connection to `peer`; the offer's SDP to send.
    pub fn offer(&mut self, peer: &str) -> Result<String, WebRtcError> {
        let mut link = self.new_link();
        let mut api = link.rtc.sdp_api();
        let channel = api.add_channel_with_config(channel_config());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebRtcError("nothing to offer".into()))?;
        link.channel = Some(channel);
        link.pending_offer = Some(pending);
        link.stage = Stage::AwaitingAnswer;
        self.links.insert(peer.to_owned(), link);
        Ok(offer.to_sdp_string())
    }

    /// Takes `peer`'s offer; the answer's SDP to send. Glare (both offered) follows the
    /// perfect-negotiation rule rdv.js uses: the peer with the larger ID is polite and takes
    /// the other's offer; the impolite one ignores it (`Ok(None)`).
    pub fn answer(
        &mut self,
        me: &str,
        peer: &str,
        sdp: &str,
    ) -> Result<Option<String>, WebRtcError> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| WebRtcError(format!("the offer's SDP does not parse: {e}")))?;
        if let Some(link) = self.links.get(peer)
            && link.pending_offer.is_some()
            && me < peer
        {
            return Ok(None);
        }
        // A new offer from a known peer (a renegotiation, or glare we yield in) starts over.
        let mut link = self.new_link();
        learn_kinds(&mut link.remote_kinds, sdp);
        let answer = link
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError(format!("cannot accept the offer: {e}")))?;
        link.channel = Some(link.rtc.direct_api().create_data_channel(channel_config()));
        self.links.insert(peer.to_owned(), link);
        Ok(Some(answer.to_sdp_string()))
    }

    /// Takes `peer`'s answer to our offer.
    pub fn take_answer(&mut self, peer: &str, sdp: &str) -> Result<(), WebRtcError> {
        let link = self
            .links
            .get_mut(peer)
            .ok_or_else(|| WebRtcError("an answer from a peer we made no offer to".into()))?;
        let pending = link
            .pending_offer
            .take()
            .ok_or_else(|| WebRtcError("an answer, but our offer was already answered".into()))?;
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| WebRtcError(format!("the answer's SDP does not parse: {e}")))?;
        learn_kinds(&mut link.remote_kinds, sdp);
        link.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| WebRtcError(format!("cannot accept the answer: {e}")))?;
        link.stage = Stage::Ice;
        Ok(())
    }

    /// A candidate `peer` trickled (`candidate:…`; an empty one ends its gathering).
    pub fn add_candidate(&mut self, peer: &str, line: &str) -> Result<(), WebRtcError> {
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(());
        }
        let link = self
            .links
            .get_mut(peer)
            .ok_or_else(|| WebRtcError("a candidate from a peer with no connection".into()))?;
        let candidate = Candidate::from_sdp_string(line)
            .map_err(|e| WebRtcError(format!("the candidate does not parse: {e}")))?;
        link.remote_kinds
            .insert(candidate.addr(), kind_name(&candidate));
        // The pair was reported before this candidate said what its remote end is (its
        // checks came first: prflx): report it again, now with its type.
        if link
            .pair
            .is_some_and(|(_, remote)| remote == candidate.addr())
        {
            link.pair = None;
        }
        link.rtc.add_remote_candidate(candidate);
        Ok(())
    }

    /// Sends `text` on every open data channel, or keeps it until one opens. Whether it went.
    pub fn send(&mut self, text: String) -> bool {
        let mut sent = false;
        for link in self.links.values_mut() {
            if let Some(id) = link.channel.filter(|_| link.stage == Stage::Open)
                && let Some(mut channel) = link.rtc.channel(id)
            {
                sent |= channel.write(false, text.as_bytes()).unwrap_or(false);
            }
        }
        if !sent && self.waiting.len() < MAX_WAITING_LINES {
            self.waiting.push_back(text);
        }
        sent
    }

    /// Peers whose connection has not opened, with how far each got.
    pub fn unfinished(&self) -> Vec<(String, Stage)> {
        self.links
            .iter()
            .filter(|(_, link)| link.stage != Stage::Open)
            .map(|(peer, link)| (peer.clone(), link.stage))
            .collect()
    }

    /// Gives every connection a few rounds to send what it still holds (the last lines
    /// written) before the run ends.
    pub async fn flush(&mut self) {
        for _ in 0..5 {
            let (_, next) = self.handle(Wake::Timer);
            let pause = next.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(Duration::from_millis(20))).await;
        }
    }

    /// Waits for a datagram on any socket, or for `until`.
    pub async fn wait(&self, until: Instant) -> Wake {
        let reads = self.sockets.iter().enumerate().map(|(index, endpoint)| {
            Box::pin(async move {
                let mut buf = vec![0u8; 2048];
                let read = match &endpoint.path {
                    Path::Socket(socket) => socket.recv_from(&mut buf).await,
                    Path::Relay { conn, .. } => conn
                        .recv_from(&mut buf)
                        .await
                        .map_err(std::io::Error::other),
                };
                match read {
                    Ok((n, source)) => {
                        buf.truncate(n);
                        Some((index, source, buf))
                    }
                    Err(_) => None,
                }
            })
        });
        tokio::select! {
            (read, _, _) = futures_util::future::select_all(reads) => match read {
                Some((socket, source, data)) => Wake::Datagram { socket, source, data },
                None => Wake::Timer,
            },
            () = tokio::time::sleep_until(until.into()) => Wake::Timer,
        }
    }

    /// Feeds what woke us to the connection it belongs to, then runs every connection until
    /// it wants time again: transmits what it has to, and returns what happened and when to
    /// wake next.
    pub fn handle(&mut self, wake: Wake) -> (Vec<Happening>, Instant) {
        let now = Instant::now();
        if let Wake::Datagram {
            socket,
            source,
            data,
        } = wake
        {
            let destination = self.sockets[socket].addr;
            if let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &data) {
                let input = Input::Receive(now, receive);
                if let Some(link) = self.links.values_mut().find(|l| l.rtc.accepts(&input)) {
                    let _ = link.rtc.handle_input(input);
                }
            }
        }
        let mut happened = Vec::new();
        let mut next = now + Duration::from_secs(1);
        let sockets = &self.sockets;
        for (peer, link) in &mut self.links {
            let _ = link.rtc.handle_input(Input::Timeout(now));
            loop {
                match link.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => {
                        next = next.min(at);
                        break;
                    }
                    Ok(Output::Transmit(transmit)) => {
                        match sockets
                            .iter()
                            .find(|e| e.addr == transmit.source)
                            .map(|e| &e.path)
                        {
                            Some(Path::Socket(socket)) => {
                                let _ =
                                    socket.try_send_to(&transmit.contents, transmit.destination);
                            }
                            Some(Path::Relay { sends, .. }) => {
                                let _ =
                                    sends.send((transmit.contents.to_vec(), transmit.destination));
                            }
                            None => {}
                        }
                    }
                    Ok(Output::Event(event)) => {
                        if let Some(what) = link.on_event(event, sockets) {
                            happened.push(Happening {
                                peer: peer.clone(),
                                what,
                            });
                        }
                    }
                    Err(_) => {
                        link.stage = Stage::Closed;
                        break;
                    }
                }
            }
        }
        // A channel that just opened takes what was typed before; it goes out on the next
        // round, at once.
        if happened.iter().any(|h| h.what == What::Open) && !self.waiting.is_empty() {
            for text in std::mem::take(&mut self.waiting) {
                self.send(text);
            }
            next = now;
        }
        (happened, next.max(now + Duration::from_millis(1)))
    }
}

impl Link {
    fn on_event(&mut self, event: Event, sockets: &[Endpoint]) -> Option<What> {
        match event {
            Event::IceConnectionStateChange(state) => {
                let name = match state {
                    IceConnectionState::New => "new",
                    IceConnectionState::Checking => "checking",
                    IceConnectionState::Connected => {
                        if self.stage == Stage::Ice {
                            self.stage = Stage::Dtls;
                        }
                        "connected"
                    }
                    IceConnectionState::Completed => "completed",
                    IceConnectionState::Disconnected => "disconnected",
                };
                Some(What::Ice(name))
            }
            Event::Connected => {
                if matches!(self.stage, Stage::Ice | Stage::Dtls) {
                    self.stage = Stage::Channel;
                }
                Some(What::Connected)
            }
            Event::ChannelOpen(id, _) if Some(id) == self.channel => {
                self.stage = Stage::Open;
                Some(What::Open)
            }
            Event::ChannelData(data) if Some(data.id) == self.channel => {
                let text = if data.binary {
                    format!("({} bytes of binary)", data.data.len())
                } else {
                    String::from_utf8_lossy(&data.data).into_owned()
                };
                Some(What::Message(text))
            }
            Event::ChannelClose(id) if Some(id) == self.channel => {
                self.stage = Stage::Closed;
                Some(What::Closed)
            }
            Event::PeerStats(stats) => {
                let pair = stats.selected_candidate_pair?;
                if self.pair == Some((pair.local.addr, pair.remote.addr)) {
                    return None;
                }
                self.pair = Some((pair.local.addr, pair.remote.addr));
                let local = sockets
                    .iter()
                    .find(|endpoint| endpoint.addr == pair.local.addr)
                    .map_or("unknown", |endpoint| endpoint.kind);
                // An address the other side never announced was learned from its checks.
                let remote = self
                    .remote_kinds
                    .get(&pair.remote.addr)
                    .copied()
                    .unwrap_or("prflx");
                Some(What::Pair {
                    local: (local, pair.local.addr),
                    remote: (remote, pair.remote.addr),
                    protocol: match pair.protocol {
                        Protocol::Udp => "udp",
                        _ => "tcp",
                    },
                    rtt_ms: pair
                        .current_round_trip_time
                        .map(|rtt| rtt.as_secs_f64() * 1000.0),
                })
            }
            _ => None,
        }
    }
}

fn channel_config() -> ChannelConfig {
    ChannelConfig {
        label: CHANNEL_LABEL.to_owned(),
        negotiated: Some(CHANNEL_ID),
        ..Default::default()
    }
}

/// `host`, `srflx`, `prflx` or `relay`.
fn kind_name(candidate: &Candidate) -> &'static str {
    match candidate.kind() {
        str0m::CandidateKind::Host => "host",
        str0m::CandidateKind::ServerReflexive => "srflx",
        str0m::CandidateKind::PeerReflexive => "prflx",
        str0m::CandidateKind::Relayed => "relay",
    }
}

/// Learns the candidate types a description lists by address.
fn learn_kinds(kinds: &mut HashMap<SocketAddr, &'static str>, sdp: &str) {
    for line in sdp.lines() {
        if let Some(candidate) = line
            .strip_prefix("a=")
            .filter(|rest| rest.starts_with("candidate:"))
            .and_then(|rest| Candidate::from_sdp_string(rest.trim()).ok())
        {
            kinds.insert(candidate.addr(), kind_name(&candidate));
        }
    }
}

/// The address this host's default route leaves from, found without sending anything (a
/// UDP `connect` only picks the route).
async fn default_route_address() -> Option<IpAddr> {
    let probe = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    probe.connect("192.0.2.1:9").await.ok()?;
    let address = probe.local_addr().ok()?.ip();
    (!address.is_loopback() && !address.is_unspecified()).then_some(address)
}

/// Waits for the peer connections, or forever without `--webrtc`.
pub async fn wait_any(webrtc: &Option<WebRtc>, until: tokio::time::Instant) -> Wake {
    match webrtc {
        Some(webrtc) => webrtc.wait(until.into()).await,
        None => std::future::pending().await,
    }
}
