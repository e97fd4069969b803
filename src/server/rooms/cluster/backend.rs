//! The connections to Redis, whichever it is: one Redis (or Valkey) primary, or a Redis
//! Cluster, told apart by asking the first seed that answers. The rest of the link sends
//! commands and scripts through [`Commands`], subscribes through [`Subscriber`] and reads
//! what was published from [`Incoming`], the same way for both.
//!
//! For a Redis Cluster the `redis` crate's cluster connection routes each command to the
//! primary of its key's slot, follows `MOVED`/`ASK` and re-reads the topology after a
//! failover. Sharded subscriptions are rdv's own: one RESP3 connection per primary, one
//! channel per `SSUBSCRIBE`, moved by the link after a failover (the crate's automatic
//! resubscription sends many channels, of many slots, in one `SSUBSCRIBE` and takes its
//! extra confirmations for the replies of later commands on that node, so it is not used).

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSubSink, PubSubStream};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, Pipeline, PushKind, RedisError,
    RedisFuture, RedisResult, Value,
};
use tokio::sync::mpsc;

use super::wire::Layout;

/// Where to reach Redis: one URL, or the seed nodes of a Redis Cluster (any reachable one
/// tells the rest).
#[derive(Clone)]
pub struct Seeds {
    pub nodes: Vec<ConnectionInfo>,
    pub password: Option<String>,
}

/// The command connection: scripts, pipelines and single commands.
#[derive(Clone)]
pub enum Commands {
    Single(MultiplexedConnection),
    Sharded(ClusterConnection),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Single(connection) => connection.req_packed_command(cmd),
            Commands::Sharded(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Commands::Sharded(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(connection) => connection.get_db(),
            Commands::Sharded(connection) => connection.get_db(),
        }
    }
}

/// Subscribing and unsubscribing: a pub/sub connection of its own for one Redis; for a
/// cluster, sharded channels on their slot's primary (see [`ShardSubscriptions`]).
pub enum Subscriber {
    Single(PubSubSink),
    Sharded(ShardSubscriptions),
}

impl Subscriber {
    /// Subscribes to `channels`, which for a cluster must share one slot.
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.subscribe(channels).await,
            Subscriber::Sharded(shards) => shards.command("SSUBSCRIBE", channels).await,
        }
    }

    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.unsubscribe(channels).await,
            Subscriber::Sharded(shards) => shards.command("SUNSUBSCRIBE", channels).await,
        }
    }

    /// Where each slot is served now (after a failover), for the subscriptions that follow.
    pub fn set_owners(&mut self, owners: Vec<SlotOwner>) {
        if let Subscriber::Sharded(shards) = self {
            shards.owners = owners;
        }
    }
}

/// One slot range of a Redis Cluster and the primary serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotOwner {
    pub first: u16,
    pub last: u16,
    /// The primary's node ID: a replica promoted in its place shows as a change even if it
    /// reuses the address.
    pub id: String,
    pub address: String,
}

/// Sharded subscriptions: a RESP3 connection to each primary that serves a subscribed
/// slot, whose pushes (messages, and a disconnection when it breaks) go to [`Incoming`].
pub struct ShardSubscriptions {
    seeds: Seeds,
    owners: Vec<SlotOwner>,
    nodes: std::collections::HashMap<String, MultiplexedConnection>,
    /// Pushes, each with the address of the node it came from.
    pushes: mpsc::UnboundedSender<(String, redis::PushInfo)>,
    timeout: std::time::Duration,
}

impl ShardSubscriptions {
    /// Sends `command` for each of `channels` (one slot's) to the slot's primary, one
    /// channel per command: its one confirmation is its reply.
    async fn command(&mut self, command: &str, channels: &[String]) -> RedisResult<()> {
        let Some(first) = channels.first() else {
            return Ok(());
        };
        let (address, mut connection) = self.node_for(first).await?;
        for channel in channels {
            let reply: RedisResult<Value> = redis::cmd(command)
                .arg(channel)
                .query_async(&mut connection)
                .await;
            if let Err(error) = reply {
                // A broken or moved node: connected afresh next time.
                self.nodes.remove(&address);
                return Err(error);
            }
        }
        Ok(())
    }

    /// The connection to the primary serving `key`'s slot, and its address.
    async fn node_for(&mut self, key: &str) -> RedisResult<(String, MultiplexedConnection)> {
        let slot = slot(key);
        let address = self
            .owners
            .iter()
            .find(|owner| (owner.first..=owner.last).contains(&slot))
            .map(|owner| owner.address.clone())
            .ok_or_else(|| {
                RedisError::from((redis::ErrorKind::Client, "no primary serves the slot"))
            })?;
        if let Some(connection) = self.nodes.get(&address) {
            return Ok((address, connection.clone()));
        }
        let scheme = match self.seeds.nodes.first().map(|node| node.addr()) {
            Some(redis::ConnectionAddr::TcpTls { .. }) => "rediss",
            _ => "redis",
        };
        let mut info = redis::IntoConnectionInfo::into_connection_info(
            format!("{scheme}://{address}").as_str(),
        )?;
        // Pushes carry what is published, beside the replies.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        info = info.set_redis_settings(settings);
        let client = client(&info, self.seeds.password.as_deref())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender({
                let pushes = self.pushes.clone();
                let from = address.clone();
                move |push: redis::PushInfo| pushes.send((from.clone(), push)).map_err(drop)
            });
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.nodes.insert(address.clone(), connection.clone());
        Ok((address, connection))
    }
}

/// What arrives on the subscriptions.
pub enum Delivery {
    /// A message published on `channel`.
    Message { channel: String, payload: Vec<u8> },
    /// The subscription connection to the cluster node at `address` closed: what it would
    /// have delivered meanwhile is lost (the link subscribes again on the slot's primary).
    NodeLost { address: String },
    /// A sharded channel was unsubscribed: by rdv itself, or by the node when it stopped
    /// serving the slot (a manual failover made it a replica, or the slot moved).
    Unsubscribed { channel: String },
}

pub enum Incoming {
    Single(PubSubStream),
    Sharded(mpsc::UnboundedReceiver<(String, redis::PushInfo)>),
}

impl Incoming {
    /// The next delivery; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Incoming::Single(stream) => {
                let message = stream.next().await?;
                Some(Delivery::Message {
                    channel: message.get_channel_name().to_owned(),
                    payload: message.get_payload_bytes().to_vec(),
                })
            }
            Incoming::Sharded(pushes) => loop {
                let (from, push) = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                            (data.next(), data.next())
                        else {
                            continue;
                        };
                        let Ok(channel) = String::from_utf8(channel) else {
                            continue;
                        };
                        return Some(Delivery::Message { channel, payload });
                    }
                    PushKind::Disconnection => return Some(Delivery::NodeLost { address: from }),
                    PushKind::SUnsubscribe => {
                        if let Some(Value::BulkString(channel)) = push.data.into_iter().next()
                            && let Ok(channel) = String::from_utf8(channel)
                        {
                            return Some(Delivery::Unsubscribed { channel });
                        }
                    }
                    _ => {}
                }
            },
        }
    }
}

/// A connected session's three parts, and how keys and channels are laid out on it.
pub struct Connection {
    pub layout: Layout,
    pub commands: Commands,
    pub subscriber: Subscriber,
    pub incoming: Incoming,
}

/// Connects to the first seed that answers and asks it whether it is a Redis Cluster node.
pub async fn connect(
    seeds: &Seeds,
    timeout: std::time::Duration,
) -> Result<Connection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut last_error = None;
    for node in &seeds.nodes {
        let client = client(node, seeds.password.as_deref())?;
        let mut commands = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(commands) => commands,
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        if is_cluster_node(&mut commands).await? {
            return connect_cluster(seeds, timeout).await;
        }
        let (sink, stream) = client.get_async_pubsub().await?.split();
        return Ok(Connection {
            layout: Layout::Single,
            commands: Commands::Single(commands),
            subscriber: Subscriber::Single(sink),
            incoming: Incoming::Single(stream),
        });
    }
    Err(last_error.unwrap_or_else(|| {
        RedisError::from((redis::ErrorKind::Client, "no Redis node to connect to"))
    }))
}

/// Whether `INFO cluster` says `cluster_enabled:1`.
async fn is_cluster_node(connection: &mut MultiplexedConnection) -> RedisResult<bool> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(connection)
        .await?;
    Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
}

async fn connect_cluster(
    seeds: &Seeds,
    timeout: std::time::Duration,
) -> Result<Connection, RedisError> {
    let (pushes, incoming) = mpsc::unbounded_channel();
    let mut builder = ClusterClientBuilder::new(seeds.nodes.clone())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        // A failover takes the cluster's node timeout and an election: the link retries a
        // room's call itself, after re-reading the topology, rather than inside one call.
        .retries(2);
    if let Some(password) = &seeds.password {
        builder = builder.password(password.clone());
    }
    let client = builder.build()?;
    let mut commands = Commands::Sharded(client.get_async_connection().await?);
    let owners = slot_owners(&mut commands).await?;
    Ok(Connection {
        layout: Layout::Sharded,
        subscriber: Subscriber::Sharded(ShardSubscriptions {
            seeds: seeds.clone(),
            owners,
            nodes: std::collections::HashMap::new(),
            pushes,
            timeout,
        }),
        commands,
        incoming: Incoming::Sharded(incoming),
    })
}

/// A client for one node, with the password from `--cluster-password-file` if any.
pub fn client(node: &ConnectionInfo, password: Option<&str>) -> RedisResult<Client> {
    let mut info = node.clone();
    if let Some(password) = password {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    Client::open(info)
}

/// The primary serving each slot range, from `CLUSTER SLOTS` (Redis 3+, Valkey).
pub async fn slot_owners(commands: &mut Commands) -> RedisResult<Vec<SlotOwner>> {
    let ranges: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(commands)
        .await?;
    let mut owners = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        // `host, port, node ID`.
        let id = primary.iter().skip(2).find_map(|field| match field {
            Value::BulkString(id) => String::from_utf8(id.clone()).ok(),
            _ => None,
        });
        let address = match (primary.first(), primary.get(1)) {
            (Some(Value::BulkString(host)), Some(Value::Int(port))) => {
                format!("{}:{port}", String::from_utf8_lossy(host))
            }
            _ => String::new(),
        };
        owners.push(SlotOwner {
            first: u16::try_from(*first).unwrap_or(0),
            last: u16::try_from(*last).unwrap_or(0),
            id: id.unwrap_or_else(|| address.clone()),
            address,
        });
    }
    Ok(owners)
}

/// The hash slot Redis Cluster keeps `key` in (its hash tag's, if it has one).
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key.find('{').and_then(|open| {
        let close = key[open + 1..].find('}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_follow_the_hash_tag_as_redis_computes_them() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("rdv:{lobby}:m"), slot("lobby"));
        assert_eq!(slot("a{}b"), slot("a{}b"));
        assert_ne!(slot("{}a"), slot("{}b"));
    }
}
