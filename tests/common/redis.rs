//! A throwaway `redis-server` on a free loopback port, for the cluster tests. No automatic
//! persistence: a restart loses everything (the harshest case for the instances), unless a
//! test asked for a snapshot with `SAVE`, which the next `restart` reloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// With `requirepass`: clients must authenticate.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let port = super::free_tcp_port();
        let mut server = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            password: password.map(str::to_owned),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + super::WAIT;
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server never answered on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again with no data at all: a snapshot saved earlier (`SAVE`) is removed
    /// first, so the restart is data loss.
    pub fn restart_empty(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        self.restart();
    }

    /// SIGKILL: no goodbye, no data kept (but a snapshot saved earlier with `SAVE` is
    /// reloaded by the next `restart`).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A raw command, for tests that look at what Redis holds.
    pub fn command(&self, words: &[&str]) -> String {
        let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port))).unwrap();
        stream.set_read_timeout(Some(super::WAIT)).unwrap();
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0u8; 65_536];
        let read = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..read]).into_owned()
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port)))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        // Any reply means it is up (`-NOAUTH` too, with a password).
        let mut reply = [0u8; 1];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && (reply[0] == b'+' || reply[0] == b'-')
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
