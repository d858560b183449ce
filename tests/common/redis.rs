//! Debian's `redis-server` as a real peer: started on a free port of 127.0.0.1 with nothing
//! saved to disk, asked in plain RESP, killed by its pid and started again on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{START_TIMEOUT, wait_for};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// A Sentinel's configuration: `sentinel monitor` lines (`--sentinel` mode).
    sentinel: Option<String>,
}

/// A port of 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let mut redis = RedisServer {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().expect("temp dir"),
                sentinel: None,
            };
            if redis.spawn() {
                return redis;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// A server that is not running yet, on a port that was free: [`RedisServer::restart`]
    /// starts it.
    pub fn stopped() -> RedisServer {
        RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            sentinel: None,
        }
    }

    /// A Sentinel (redis-server in `--sentinel` mode) that watches `master` as `name`.
    pub fn sentinel(name: &str, master: &RedisServer) -> RedisServer {
        let mut sentinel = RedisServer::stopped();
        sentinel.sentinel = Some(format!(
            "sentinel monitor {name} 127.0.0.1 {} 1\n",
            master.port
        ));
        assert!(sentinel.spawn(), "redis-server --sentinel did not start");
        sentinel
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some(monitor) = &self.sentinel {
            let conf = self.dir.path().join("sentinel.conf");
            std::fs::write(&conf, monitor).expect("write sentinel.conf");
            command.arg(&conf).arg("--sentinel");
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(match self.sentinel {
                None => &["--save", "", "--appendonly", "no", "--protected-mode", "no"][..],
                Some(_) => &["--protected-mode", "no"][..],
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server did not start ({e}): run scripts/test.sh, which installs it")
            });
        self.child = Some(child);
        let up = wait_for(START_TIMEOUT, || {
            self.command(&["PING"]).is_some_and(|r| r == "+PONG") || !self.is_running()
        });
        up && self.is_running()
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills redis-server (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not start again on {}",
            self.port
        );
    }

    /// One command in RESP; the first line of the answer, or the bulk string's text
    /// (`$-1` for nil). `None` when the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_string();
        match line.strip_prefix('$').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                reader.read_exact(&mut body).ok()?;
                body.truncate(n as usize);
                Some(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Some(line),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
