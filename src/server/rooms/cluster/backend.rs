//! The connections to Redis, whichever it is: one Redis (or Valkey) primary, or a Redis
//! Cluster, told apart by asking the first seed that answers. The rest of the link sends
//! commands and scripts through [`Commands`], subscribes through [`Subscriber`] and reads
//! what was published from [`Incoming`], the same way for both.
//!
//! For a Redis Cluster the `redis` crate's cluster connection routes each command to the
//! primary of its key's slot, follows `MOVED`/`ASK`, re-reads the topology after a failover
//! and subscribes sharded channels again on their new primary; pushes (RESP3) carry what
//! was published.

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

/// Subscribing and unsubscribing: a pub/sub connection of its own for one Redis; the
/// cluster connection itself (sharded channels, each on its slot's primary) for a cluster.
pub enum Subscriber {
    Single(PubSubSink),
    Sharded(ClusterConnection),
}

impl Subscriber {
    /// Subscribes to `channels`, which for a cluster must share one slot.
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.subscribe(channels).await,
            Subscriber::Sharded(connection) => connection.ssubscribe(channels).await,
        }
    }

    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.unsubscribe(channels).await,
            Subscriber::Sharded(connection) => connection.sunsubscribe(channels).await,
        }
    }
}

/// What arrives on the subscriptions.
pub enum Delivery {
    /// A message published on `channel`.
    Message { channel: String, payload: Vec<u8> },
    /// A cluster node's connection closed: what it would have delivered meanwhile is lost
    /// (the connection subscribes again when it is back, or on the slot's new primary).
    NodeLost,
}

pub enum Incoming {
    Single(PubSubStream),
    Sharded(mpsc::UnboundedReceiver<redis::PushInfo>),
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
                let push = pushes.recv().await?;
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
                    PushKind::Disconnection => return Some(Delivery::NodeLost),
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
pub async fn is_cluster_node(connection: &mut MultiplexedConnection) -> RedisResult<bool> {
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
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        // A failover takes the cluster's node timeout and an election: the link retries a
        // room's call itself, after re-reading the topology, rather than inside one call.
        .retries(2);
    if let Some(password) = &seeds.password {
        builder = builder.password(password.clone());
    }
    let client = builder.build()?;
    let commands = client.get_async_connection().await?;
    Ok(Connection {
        layout: Layout::Sharded,
        subscriber: Subscriber::Sharded(commands.clone()),
        commands: Commands::Sharded(commands),
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

/// The primary serving each slot range: `(first slot, last slot, primary's node ID)`, from
/// `CLUSTER SHARDS`' older sibling `CLUSTER SLOTS` (Redis 3+, Valkey).
pub async fn slot_owners(commands: &mut Commands) -> RedisResult<Vec<(u16, u16, String)>> {
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
        // `host, port, node ID`: the ID names the process, so a replica promoted in place
        // of a primary shows as a change even if it reuses the address.
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
        owners.push((
            u16::try_from(*first).unwrap_or(0),
            u16::try_from(*last).unwrap_or(0),
            id.unwrap_or(address),
        ));
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
