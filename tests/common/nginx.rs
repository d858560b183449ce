//! nginx-rtmp (Debian's nginx with libnginx-mod-rtmp) as a real RTMP peer: the target the
//! server relays to, whose HLS the tests read back. Each instance runs from a temporary
//! folder of its own (configuration, logs, pid file, nginx's temp folders, HLS), as a single
//! process (`master_process off`) in the foreground, so it runs as any user and one SIGKILL
//! ends it whole. scripts/test.sh installs nginx and the module.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{START_TIMEOUT, wait_for};

pub const NGINX: &str = "/usr/sbin/nginx";
/// Where Debian's libnginx-mod-rtmp puts the module.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// How many times [`NginxRtmp::start`] picks new ports when nginx cannot bind the ones it
/// found free (another process took one in between).
const PORT_TRIES: usize = 5;

/// A running nginx-rtmp on free ports of 127.0.0.1: application `live` (live, no recording,
/// HLS with 1 s fragments and a 10 s playlist, one folder per stream) on `rtmp_port`, and the
/// HLS files over HTTP on `http_port` under `/hls/`. Killed on drop.
pub struct NginxRtmp {
    child: Option<Child>,
    /// The RTMP listener's port.
    pub rtmp_port: u16,
    /// The HTTP listener's port (HLS under `/hls/KEY/index.m3u8`).
    pub http_port: u16,
    dir: tempfile::TempDir,
}

impl NginxRtmp {
    /// Starts nginx on free ports and waits until both ports accept connections.
    pub fn start() -> NginxRtmp {
        require_nginx_rtmp();
        let dir = tempfile::tempdir().expect("temp dir");
        for dir_name in ["hls", "temp"] {
            std::fs::create_dir_all(dir.path().join(dir_name)).expect("nginx folders");
        }
        let mut nginx = NginxRtmp {
            child: None,
            rtmp_port: 0,
            http_port: 0,
            dir,
        };
        for attempt in 1..=PORT_TRIES {
            (nginx.rtmp_port, nginx.http_port) = (free_port(), free_port());
            if nginx.rtmp_port == nginx.http_port {
                continue;
            }
            match nginx.spawn() {
                Ok(()) => return nginx,
                Err(log) if attempt < PORT_TRIES && log.contains("Address already in use") => {}
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found no free ports in {PORT_TRIES} tries")
    }

    /// `rtmp://127.0.0.1:PORT/APP/KEY`. Only the application `live` is configured.
    pub fn rtmp_url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.rtmp_port)
    }

    /// The folder of `key`'s HLS on disk: `index.m3u8` and its `.ts` fragments.
    pub fn hls_dir(&self, key: &str) -> PathBuf {
        self.dir.path().join("hls").join(key)
    }

    /// `key`'s HLS playlist over HTTP.
    pub fn hls_url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/hls/{key}/index.m3u8", self.http_port)
    }

    /// The nginx process (the only one: no master, no workers). Panics after
    /// [`NginxRtmp::kill`] until [`NginxRtmp::restart`].
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("nginx is running").id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    /// Kills nginx at once (SIGKILL), as a crash would: connections drop without a word.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts nginx again (killing it first if it still runs) on the same ports and folder,
    /// and waits until both ports accept connections. HLS files already written stay.
    pub fn restart(&mut self) {
        self.kill();
        // The ports were ours a moment ago; nginx binds with SO_REUSEADDR, so only another
        // process that took one meanwhile keeps it from starting.
        let deadline = Instant::now() + START_TIMEOUT;
        while let Err(log) = self.spawn() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start again:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The error log, then anything nginx wrote to stderr (both over every start).
    pub fn logs(&self) -> String {
        self.logs_since((0, 0))
    }

    /// The lengths of the error log and of the stderr log.
    fn log_lengths(&self) -> (usize, usize) {
        (self.log("error.log").len(), self.log("stderr.log").len())
    }

    /// What the error log and the stderr log gained past `lengths`.
    fn logs_since(&self, (error, stderr): (usize, usize)) -> String {
        let tail = |text: String, from: usize| text.get(from..).unwrap_or_default().to_string();
        tail(self.log("error.log"), error) + &tail(self.log("stderr.log"), stderr)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the configuration for the current ports, runs nginx and waits until both
    /// ports accept. On failure nginx is stopped and its log returned.
    fn spawn(&mut self) -> Result<(), String> {
        let conf = self.dir.path().join("nginx.conf");
        std::fs::write(&conf, self.config()).expect("write nginx.conf");
        // nginx writes its pid file once it has bound every listener: a port that accepts
        // before then may be another process's.
        let pid_file = self.dir.path().join("nginx.pid");
        let _ = std::fs::remove_file(&pid_file);
        let log_start = self.log_lengths();
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("nginx stderr log");
        let error_log = self.dir.path().join("error.log");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{NGINX} did not start ({e}): run scripts/test.sh, which installs it")
            });
        let pid = child.id().to_string();
        self.child = Some(child);
        let ports = [self.rtmp_port, self.http_port];
        let mut exited = false;
        let ready = wait_for(START_TIMEOUT, || {
            exited = !self.is_running();
            let bound = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid);
            exited || (bound && ports.iter().all(|&p| accepts(p)))
        });
        if ready && !exited {
            return Ok(());
        }
        self.kill();
        Err(self.logs_since(log_start))
    }

    /// Every path inside the temporary folder: the compiled-in ones (/var/log/nginx,
    /// /var/lib/nginx) are root's. The RTMP module has an access log of its own.
    fn config(&self) -> String {
        format!(
            "load_module {module};
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{rtmp};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {dir}/hls;
            hls_nested on;
            hls_fragment 1s;
            hls_playlist_length 10s;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/temp/client_body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{http};
        location /hls {{
            root {dir};
            add_header Cache-Control no-cache;
        }}
    }}
}}
",
            module = NGINX_RTMP_MODULE,
            dir = self.dir.path().display(),
            rtmp = self.rtmp_port,
            http = self.http_port,
        )
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Panics, saying how to install them, unless nginx and the RTMP module are there.
fn require_nginx_rtmp() {
    for path in [NGINX, NGINX_RTMP_MODULE] {
        assert!(
            Path::new(path).exists(),
            "{path} not found: run scripts/test.sh, which installs nginx and libnginx-mod-rtmp"
        );
    }
}

/// A port of 127.0.0.1 that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}
