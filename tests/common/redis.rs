//! A throwaway Redis on free loopback ports, for the cluster tests: one `redis-server`, or
//! with `RDV_TEST_REDIS=cluster` (or [`RedisServer::start_cluster`]) a Redis Cluster of six
//! (three primaries, each with a replica) made with `redis-cli --cluster create`. The tests
//! see one thing either way: a URL for `--cluster`, raw commands routed to the key's node,
//! and kill/restart of the whole deployment.
//!
//! No automatic persistence: a restart loses everything (the harshest case for the
//! instances), unless a test asked for a snapshot with `SAVE`, which the next `restart`
//! reloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Nodes of a test Redis Cluster: three primaries and a replica each.
const CLUSTER_NODES: usize = 6;

struct Node {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub struct RedisServer {
    nodes: Vec<Node>,
    /// The first node's port (the only one, for a single Redis).
    pub port: u16,
    password: Option<String>,
    cluster: bool,
    /// Whether `redis-cli --cluster create` has made the nodes one cluster.
    created: bool,
}

impl RedisServer {
    /// A single Redis, or a Redis Cluster when `RDV_TEST_REDIS=cluster`: the same tests
    /// then run against both.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// A Redis Cluster whatever `RDV_TEST_REDIS` says (failover tests).
    pub fn start_cluster() -> Self {
        Self::launch(None, true)
    }

    /// With `requirepass`: clients must authenticate.
    pub fn start_with_password(password: Option<&str>) -> Self {
        Self::launch(password, cluster_requested())
    }

    fn launch(password: Option<&str>, cluster: bool) -> Self {
        if cluster {
            super::outside::require(super::outside::program(
                "redis-cli",
                "--version",
                "apt install redis-tools",
            ));
        }
        let count = if cluster { CLUSTER_NODES } else { 1 };
        let nodes: Vec<Node> = (0..count)
            .map(|_| Node {
                port: if cluster {
                    free_cluster_port()
                } else {
                    super::free_tcp_port()
                },
                dir: tempfile::tempdir().unwrap(),
                child: None,
            })
            .collect();
        let mut server = Self {
            port: nodes[0].port,
            nodes,
            password: password.map(str::to_owned),
            cluster,
            created: false,
        };
        server.restart();
        if cluster {
            server.create_cluster();
        }
        server
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// What `--cluster` takes: the URL, or three seed nodes of the cluster.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect();
        seeds.join(",")
    }

    /// Starts every node (again) on the same ports, and waits until each answers (and, for
    /// a cluster that exists, until every node says the cluster is up).
    pub fn restart(&mut self) {
        for index in 0..self.nodes.len() {
            self.start_node(index);
        }
        if self.created {
            self.wait_until_served();
        }
    }

    fn start_node(&mut self, index: usize) {
        let node = &self.nodes[index];
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password, "--masterauth", password]);
        }
        if self.cluster {
            // A short node timeout: a dead primary's replica takes over within a few seconds.
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ]);
        }
        let child = command
            .args(["--port", &node.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(node.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let port = node.port;
        self.nodes[index].child = Some(child);
        let deadline = std::time::Instant::now() + super::WAIT;
        while !answers(port) {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server never answered on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn create_cluster(&mut self) {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port));
        }
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        if let Some(password) = &self.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        self.created = true;
        self.wait_until_served();
    }

    /// Starts it again with no data at all: snapshots saved earlier (`SAVE`) are removed
    /// first, so the restart is data loss.
    pub fn restart_empty(&mut self) {
        for node in &self.nodes {
            let _ = std::fs::remove_file(node.dir.path().join("dump.rdb"));
        }
        self.restart();
    }

    /// SIGKILL to every node: no goodbye, no data kept (but a snapshot saved earlier with
    /// `SAVE` is reloaded by the next `restart`).
    pub fn kill(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill_node(index);
        }
    }

    fn kill_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cluster only: SIGKILLs the primary serving `key`'s slot, and returns its index for
    /// [`RedisServer::restart_node`]. Its replica is promoted after the node timeout.
    pub fn kill_primary_of(&mut self, key: &str) -> usize {
        assert!(self.cluster, "only a Redis Cluster has a primary per slot");
        let port = self.port_for(key);
        let index = self
            .nodes
            .iter()
            .position(|node| node.port == port)
            .expect("the primary is one of the nodes");
        self.kill_node(index);
        index
    }

    /// Cluster only: starts a killed node again; it rejoins, as a replica if its replica
    /// took over meanwhile.
    pub fn restart_node(&mut self, index: usize) {
        self.start_node(index);
    }

    /// Cluster only: a manual failover (`CLUSTER FAILOVER`) to the replica at `index`, which
    /// becomes the primary of its shard while the old one, alive, becomes its replica.
    pub fn fail_over_to(&self, index: usize) {
        let port = self.nodes[index].port;
        let reply = self.command_on(port, &["CLUSTER", "FAILOVER"]);
        assert!(reply.starts_with("+OK"), "CLUSTER FAILOVER: {reply}");
        let deadline = std::time::Instant::now() + super::WAIT;
        while !self
            .command_on(port, &["INFO", "replication"])
            .contains("role:master")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica never took over"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_served();
    }

    /// Cluster only: waits until every slot is served again (after a kill, the replica has
    /// been promoted) and every live replica is in sync — at most twice the usual wait.
    pub fn wait_until_served(&self) {
        let deadline = std::time::Instant::now() + super::WAIT * 2;
        loop {
            let served = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .all(|node| {
                    let replication = self.command_on(node.port, &["INFO", "replication"]);
                    self.command_on(node.port, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
                        && (replication.contains("role:master")
                            || replication.contains("master_link_status:up"))
                });
            if served {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the Redis Cluster never served every slot again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A raw command, for tests that look at what Redis holds: on a cluster, sent to the
    /// node serving its key, and a command about the server rather than a key (`SAVE`,
    /// `FLUSHALL`, `CLIENT KILL`…) to every live node (the first one's reply).
    pub fn command(&self, words: &[&str]) -> String {
        if !self.cluster {
            return self.command_on(self.port, words);
        }
        let whole_server = ["SAVE", "FLUSHALL", "CLIENT", "CONFIG"];
        if words
            .first()
            .is_some_and(|w| whole_server.iter().any(|c| w.eq_ignore_ascii_case(c)))
        {
            let replies: Vec<String> = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .map(|node| self.command_on(node.port, words))
                .collect();
            return replies.into_iter().next().unwrap_or_default();
        }
        let key = words.get(1).copied().unwrap_or("");
        self.command_on(self.port_for(key), words)
    }

    /// The port of the live node serving `key`'s slot, asked of any live node.
    pub fn port_for(&self, key: &str) -> u16 {
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            let reply = self.command_on(node.port, &["EXISTS", key]);
            if let Some(moved) = reply.strip_prefix("-MOVED ") {
                let address = moved.split_whitespace().nth(1).unwrap_or("");
                if let Some(port) = address.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    return port;
                }
            } else if reply.starts_with(':') {
                return node.port;
            }
        }
        panic!("no live node serves {key}");
    }

    fn command_on(&self, port: u16, words: &[&str]) -> String {
        let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        stream.set_read_timeout(Some(super::WAIT)).unwrap();
        let mut request = String::new();
        if let Some(password) = &self.password {
            request.push_str(&resp(&["AUTH", password]));
        }
        request.push_str(&resp(words));
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0u8; 65_536];
        let mut read = stream.read(&mut reply).unwrap();
        let mut text = String::from_utf8_lossy(&reply[..read]).into_owned();
        if self.password.is_some() {
            // The AUTH's `+OK` first.
            while !text.contains("\r\n") || text.len() <= "+OK\r\n".len() {
                read = stream.read(&mut reply).unwrap();
                if read == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&reply[..read]));
            }
            text = text
                .split_once("\r\n")
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or_default();
        }
        text
    }
}

fn resp(words: &[&str]) -> String {
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    request
}

/// A free port whose cluster bus port (10000 above it) is free too, and exists.
fn free_cluster_port() -> u16 {
    loop {
        let port = super::free_tcp_port();
        if port <= u16::MAX - 10_000
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

/// Whether the tests were asked to run against a Redis Cluster (`RDV_TEST_REDIS=cluster`).
pub fn cluster_requested() -> bool {
    std::env::var("RDV_TEST_REDIS").is_ok_and(|mode| mode == "cluster")
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    // Any reply means it is up (`-NOAUTH` too, with a password).
    let mut reply = [0u8; 1];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && (reply[0] == b'+' || reply[0] == b'-')
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
