//! `rdv serve --cluster`: one room across many instances, through Redis.
//!
//! What is remote and what is local are kept apart. Who is in which room, on which instance,
//! lives in Redis and changes only through atomic scripts (`scripts`): joining and leaving
//! are async and can fail. Each instance keeps a view of the rooms it has members in
//! (`view`), kept current from the rooms' presence channels: relays look up their receiver
//! there, synchronously; a receiver on this instance is reached in-process, one elsewhere
//! through its instance's channel. docs/cluster-design.md has the design and the failure cases.

mod backend;
mod held;
mod link;
mod scripts;
mod view;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use self::backend::Seeds;
use self::link::{Link, Outgoing};
use self::scripts::Scripts;
use self::view::Views;
use crate::identity::PeerId;
use crate::protocol::RoomName;
use crate::server::operations::metrics::Metrics;
use crate::server::rooms::outbox::{Outbox, OutboxReceiver};
use crate::server::rooms::{
    ConnectionId, DeliverError, Health, JoinError, Member, Parking, RoomRegistry,
};

/// How to reach Redis and how long a silent instance keeps its members.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// One Redis URL, or a comma-separated list of seed nodes of a Redis Cluster
    /// (`redis://h1:p1,h2:p2`; later ones may leave out the scheme).
    pub url: String,
    pub password: Option<String>,
    pub lease: Duration,
    pub max_peers_per_room: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("--cluster {url}: {source}")]
pub struct ClusterError {
    url: String,
    source: redis::RedisError,
}

/// A [`RoomRegistry`] shared by every instance connected to the same Redis.
pub struct ClusterRegistry {
    link: Arc<Link>,
    views: Arc<Views>,
    max_peers_per_room: u32,
}

impl ClusterRegistry {
    /// Checks the URL and starts connecting in the background: the server starts even if
    /// Redis is down, and reports `degraded` until it is reached.
    pub async fn start(
        options: ClusterOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ClusterError> {
        let seeds = seeds(&options.url, options.password.as_deref())?;
        let instance: Arc<str> = new_instance_id().into();
        let (handoffs, handed) = tokio::sync::mpsc::unbounded_channel();
        let views = Arc::new(Views::new(instance.clone(), metrics.clone(), handoffs));
        let link = Arc::new(Link::new(
            seeds,
            instance.clone(),
            options.lease,
            views.clone(),
            handed,
            metrics,
        ));
        tokio::spawn(link.clone().run());
        link.first_attempt().await;
        tracing::info!(%instance, redis = %redact(&options.url), "cluster: instance started");
        Ok(Self {
            link,
            views,
            max_peers_per_room: options.max_peers_per_room,
        })
    }

    async fn join_now(&self, room: &RoomName, member: Member) -> Result<(), JoinError> {
        let connected = self.link.connected().ok_or(JoinError::Unavailable)?;
        // Its shard just failed over: the room is being resynced.
        if self.views.is_resyncing(room) {
            return Err(JoinError::Unavailable);
        }
        let tail: Arc<str> = wire::record_tail(
            &self.link.instance,
            member.connection.get(),
            member.verified,
            &member.public_key,
        )
        .into();
        let parked_here = self.views.parked_connection(room, &member.id);
        let needs_snapshot = self.views.begin_join(
            room,
            &member.id,
            member.connection,
            member.outbox,
            member.ice_servers,
            tail.clone(),
        );
        let reply = async {
            self.link.ensure_subscribed(&connected, room).await?;
            let verified = if member.verified == Some(true) {
                "1"
            } else {
                "0"
            };
            let mut commands = connected.commands();
            let mut invocation = Scripts::get(connected.layout).join.prepare_invoke();
            for key in wire::room_keys(room) {
                invocation.key(key);
            }
            let reply: (String, u64, Vec<String>) = self
                .link
                .call(
                    invocation
                        .arg(wire::room_channel(room))
                        .arg(member.id.as_str())
                        .arg(&*self.link.instance)
                        .arg(member.connection.get())
                        .arg(&*tail)
                        .arg(verified)
                        .arg(self.max_peers_per_room)
                        .arg(if needs_snapshot { "1" } else { "0" })
                        .arg(
                            member
                                .room_cap
                                .map(|cap| cap.to_string())
                                .unwrap_or_default(),
                        )
                        .arg(parked_here.map(|c| c.to_string()).unwrap_or_default())
                        .arg(self.link.incarnation())
                        .invoke_async(&mut commands),
                )
                .await?;
            Ok::<_, link::LinkError>(reply)
        };
        // Bounded as a whole, well within the register deadline: a join whose shard is
        // failing over is refused (`unavailable`) rather than left to time out.
        let reply = tokio::time::timeout(link::CALL_TIMEOUT, reply)
            .await
            .unwrap_or(Err(link::LinkError::Timeout));
        let (status, before, snapshot) = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(
                    %error,
                    peer = %member.id.short(8),
                    connection = member.connection.get(),
                    "cluster: join failed"
                );
                if connected.layout == wire::Layout::Sharded {
                    self.link.room_in_trouble(room);
                }
                self.views.end_join(room, member.connection, false);
                return Err(JoinError::Unavailable);
            }
        };
        tracing::debug!(
            peer = %member.id.short(8),
            connection = member.connection.get(),
            status,
            "cluster: joined"
        );
        if needs_snapshot {
            self.views.init(room, before, &snapshot);
        }
        let outcome = match status.as_str() {
            "ok" | "resumed" => Ok(()),
            "duplicate" => Err(JoinError::DuplicatePeer),
            "held" => Err(JoinError::HeldForResume),
            "full" => Err(JoinError::RoomFull),
            _ => Err(JoinError::Unavailable),
        };
        self.views
            .end_join(room, member.connection, outcome.is_ok());
        outcome
    }

    /// Holds the peer's place here, then marks it in Redis so that a register on any
    /// instance may resume it. Without the mark (Redis unreachable) only this instance can.
    async fn park_now(
        &self,
        room: &RoomName,
        peer: &PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &mut OutboxReceiver,
    ) -> bool {
        if !self.views.park(room, peer, connection, parking, dropped) {
            return false;
        }
        if let Some(connected) = self.link.connected() {
            // Its relays still queued for other instances go first: once marked, it may
            // resume elsewhere, and what it sends there must not overtake them.
            self.link.relays_published().await;
            let mut commands = connected.commands();
            let mut invocation = Scripts::get(connected.layout).park.prepare_invoke();
            for key in wire::room_keys(room) {
                invocation.key(key);
            }
            let marked: Result<u8, _> = self
                .link
                .call(
                    invocation
                        .arg(wire::room_channel(room))
                        .arg(peer.as_str())
                        .arg(&*self.link.instance)
                        .arg(connection.get())
                        .invoke_async(&mut commands),
                )
                .await;
            if let Err(error) = marked {
                tracing::debug!(%error, "cluster: could not mark a peer held for a resume");
            }
        }
        true
    }

    async fn leave_now(&self, room: &RoomName, peer: &PeerId, connection: ConnectionId) -> bool {
        self.views.detach(room, peer, connection);
        let Some(connected) =
            self.link
                .connected_or_defer((room.clone(), peer.clone(), connection.get()))
        else {
            // Run once the link is up again (a room re-announced before it would keep it).
            return false;
        };
        // Its relays still queued for other instances go first: no relay after `peer-left`.
        self.link.relays_published().await;
        let mut commands = connected.commands();
        match self
            .link
            .leave(
                &mut commands,
                connected.layout,
                room,
                peer,
                connection.get(),
            )
            .await
        {
            Ok(removed) => {
                tracing::debug!(
                    peer = %peer.short(8),
                    connection = connection.get(),
                    removed,
                    "cluster: left"
                );
                removed
            }
            Err(error) => {
                // Repaired by the reconciliation within a lease; on a Redis Cluster the
                // room's shard may be failing over, and the room is resynced.
                tracing::debug!(%error, "cluster: leave failed");
                if connected.layout == wire::Layout::Sharded {
                    self.link.room_in_trouble(room);
                }
                false
            }
        }
    }
}

impl RoomRegistry for ClusterRegistry {
    fn join<'a>(
        &'a self,
        room: &'a RoomName,
        member: Member,
    ) -> BoxFuture<'a, Result<(), JoinError>> {
        Box::pin(self.join_now(room, member))
    }

    fn leave<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.leave_now(room, peer, connection))
    }

    fn park<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &'a mut OutboxReceiver,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.park_now(room, peer, connection, parking, dropped))
    }

    fn deliver(
        &self,
        room: &RoomName,
        to: &str,
        text: Utf8Bytes,
        read_at: std::time::Instant,
        sender: &Outbox,
    ) -> Result<(), DeliverError> {
        let publish = |channel: &Arc<str>, text: Utf8Bytes| {
            self.link.publish(Outgoing {
                channel: channel.clone(),
                payload: wire::relay(room, to, text.as_str()),
                sender: Some(sender.clone()),
            })
        };
        self.views.route(room, to, text, read_at, publish)
    }

    fn health(&self) -> Health {
        if self.link.connected().is_some() {
            Health::Ok
        } else {
            Health::Degraded
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.link.shutdown())
    }
}

/// 16 random hex digits: unique across instances, so `(instance, connection)` names one
/// connection anywhere in the cluster.
pub(crate) fn new_instance_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `--cluster`'s value names Redis nodes; the error names the URL without its
/// password.
pub fn check_url(url: &str) -> Result<(), String> {
    seeds(url, None)
        .map(|_| ())
        .map_err(|error| format!("{}: {}", redact(url), error.source))
}

/// The nodes `--cluster` names: one URL, or seed nodes separated by commas, where a seed
/// without a scheme takes the first one's (`redis://h1:6379,h2:6379`).
fn seeds(url: &str, password: Option<&str>) -> Result<Seeds, ClusterError> {
    let error = |source| ClusterError {
        url: redact(url),
        source,
    };
    let mut nodes = Vec::new();
    let mut scheme = "redis://";
    for (index, seed) in url.split(',').map(str::trim).enumerate() {
        let seed = if let Some(at) = seed.find("://") {
            if index == 0 {
                scheme = &seed[..at + 3];
            }
            seed.to_owned()
        } else {
            format!("{scheme}{seed}")
        };
        let info = redis::IntoConnectionInfo::into_connection_info(seed.as_str()).map_err(error)?;
        // Checked now, so a bad URL stops the server at start rather than in the background.
        backend::client(&info, password).map_err(error)?;
        nodes.push(info);
    }
    if scheme == "rediss://" {
        // rustls needs a process-wide provider; the server's own TLS uses ring too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(Seeds {
        nodes,
        password: password.map(str::to_owned),
    })
}

/// `--check-config`: reaches Redis at `url` within `timeout` and asks it for PING. Returns
/// the warnings about how it is configured (see [`redis_warnings`]), or why it cannot be
/// reached, naming the URL without its password.
pub async fn probe(
    url: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let seeds = seeds(url, password).map_err(|e| e.to_string())?;
    let unreachable = |problem: String| format!("--cluster {}: {problem}", redact(url));
    let exchange = async {
        let mut connection = backend::connect(&seeds, timeout).await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection.commands)
            .await?;
        Ok::<_, redis::RedisError>(redis_warnings(&mut connection.commands).await)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(warnings)) => Ok(warnings),
        Ok(Err(error)) => Err(unreachable(format!("cannot reach Redis: {error}"))),
        Err(_) => Err(unreachable(format!(
            "Redis did not answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// What in Redis's configuration works against rdv: an eviction policy other than
/// `noeviction` lets Redis drop members or leases under memory pressure. A server that
/// refuses `CONFIG` (managed Redis often does) gets no warning.
pub async fn redis_warnings(connection: &mut backend::Commands) -> Vec<String> {
    let mut warnings = Vec::new();
    let policy: Option<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(connection)
        .await
        .ok();
    if let Some((_, policy)) = policy
        && policy != "noeviction"
    {
        warnings.push(format!(
            "Redis's maxmemory-policy is {policy:?}: under memory pressure it may evict room \
             members and leases, and peers would vanish or be duplicated; set \
             maxmemory-policy noeviction (docs/cluster.md)"
        ));
    }
    warnings
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("rediss://user:secret@host"),
            "rediss://user:***@host"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact("redis://:a@h1:7000,redis://:b@h2:7001,h3:7002"),
            "redis://:***@h1:7000,redis://:***@h2:7001,h3:7002"
        );
    }
}
