//! The server's configuration: one struct, loaded from defaults, then a TOML file, then
//! `RTMP_SERVER_...` environment variables, then command-line flags (each layer overrides the
//! one before).
//!
//! Option names follow the node-media-server configuration this server replaces
//! (`rtmp.port`, `rtmp.chunk_size`, `http.mediaroot`, `hls.time`, ...), with its defaults.
//! Every option `section.name` has the environment variable `RTMP_SERVER_SECTION_NAME` and
//! the flag `--section-name`; both are derived from the struct itself, so a new option gets
//! them without further code.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The prefix of every environment variable the server reads its options from.
pub const ENV_PREFIX: &str = "RTMP_SERVER_";

/// The whole configuration. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address both listeners bind to.
    pub bind: IpAddr,
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub auth: AuthConfig,
    pub hooks: HooksConfig,
    pub relay: RelayConfig,
    pub record: RecordConfig,
    pub s3: S3Config,
    pub thumbnail: ThumbnailConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub cluster: ClusterConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// RTMP listen port; 0 picks a free port (logged at start-up).
    pub port: u16,
    /// Listen for plain RTMP on `rtmp.port`. Off where stream keys must never travel in the
    /// clear: then only `rtmp.tls_port` takes publishers.
    pub plain: bool,
    /// RTMPS (RTMP over TLS) listen port, with the certificate `tls.cert`; off unless set
    /// (443 and 1936 are usual; 0 picks a free port).
    pub tls_port: ListenPort,
    /// The application name encoders publish to: `rtmp://host/{app}/{key}`.
    pub app: String,
    /// The server's outgoing chunk size, announced with Set Chunk Size (RTMP 1.0 §5.4.1).
    pub chunk_size: u32,
    /// Keep each stream's frames since its last keyframe, so a new player (RTMP, HTTP-FLV,
    /// WebSocket-FLV) gets a picture at once; off, it waits for the next keyframe.
    pub gop_cache: bool,
    /// Playback over RTMP, HTTP-FLV and WebSocket-FLV: `open`, `off`, or `token` (players
    /// add `?token={rtmp.play_token}` to the stream name or URL).
    pub play: PlayAccess,
    /// The token players carry when `rtmp.play` is `token`.
    pub play_token: String,
    /// Seconds between User Control Ping Requests to each client.
    pub ping: u64,
    /// Seconds of silence from a client after which it is dropped.
    pub ping_timeout: u64,
    /// Seconds a client has to complete the handshake, `connect` and start publishing or
    /// playing (and, after it stops, to publish again): a client that does neither only
    /// holds a connection slot.
    pub handshake_timeout: u64,
    /// Most RTMP connections open at once; more are refused at accept.
    pub max_connections: usize,
    /// Most video tracks one Enhanced RTMP multitrack publish may carry (renditions); a
    /// track id at or above it ends the publish.
    pub max_video_tracks: u8,
    /// Most audio tracks one publish may carry (languages, commentary).
    pub max_audio_tracks: u8,
    /// A new, validated publish on a key that is live takes the stream over (the old
    /// connection is closed). Off: the new publish is refused.
    pub takeover: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP listen port; 0 picks a free port (logged at start-up).
    pub port: u16,
    /// Listen for plain HTTP on `http.port`. Off: only `http.tls_port` serves.
    pub plain: bool,
    /// HTTPS listen port (HTTP/2 and HTTP/1.1, by ALPN), serving what `http.port` serves,
    /// with the certificate `tls.cert`; off unless set (0 picks a free port).
    pub tls_port: ListenPort,
    /// CORS allowed origins: `*`, or a comma-separated list of origins.
    pub allow_origin: String,
    /// Folder HLS files are written under, as `{mediaroot}/{app}/{key}/`.
    pub mediaroot: PathBuf,
    /// Most HTTP connections open at once; more are refused at accept.
    pub max_connections: usize,
    /// Bearer token `/api/*` and `/metrics` require (`Authorization: Bearer TOKEN`); empty
    /// leaves them open. Playback and `/healthz`, `/readyz` are always open.
    pub api_token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Target segment length in seconds: a segment is cut on the first keyframe at or after it.
    pub time: u32,
    /// Segments listed in the live playlist (more when needed to hold three target
    /// durations of media, RFC 8216 §6.2.2).
    pub list_size: usize,
    /// Delete segments from disk once they left the playlist and their grace period is over.
    pub delete_segments: bool,
    /// Keep a stream's files on disk after it ends.
    pub keep: bool,
    /// Longest segment in seconds when the encoder sends no keyframe; 0 picks it from the
    /// first segment (the target duration plus half a second).
    pub max_segment: u32,
    /// The classic output: MPEG-TS segments listed in `index.m3u8`.
    pub ts: bool,
    /// The CMAF output: fragmented-MP4 segments and Low-Latency HLS parts, listed in
    /// `llhls.m3u8`.
    pub cmaf: bool,
    /// Length in seconds of the CMAF output's parts (EXT-X-PART-INF PART-TARGET).
    pub part: f64,
    /// Seconds of past media the live playlists list besides the live window, so players can
    /// seek back (a DVR window); the older segments are served from disk, not memory. 0: off.
    pub dvr_window: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Base URL of the stream-service; empty accepts every key (development only).
    pub stream_service: String,
    /// Bearer token sent to the stream-service; empty sends none.
    pub token: String,
    /// Seconds for the whole stream-service request, connection included.
    pub timeout: u64,
    /// Seconds between re-checks of a live stream's key; 0 checks only at publish.
    pub recheck: u64,
    /// Seconds a positive answer is reused for the same key; 0 asks every time.
    pub cache: u64,
    /// Seconds a refusal (403, 404, inactive, expired) is reused for the same key; 0 asks
    /// every time. Key re-checks always ask.
    pub negative_cache: u64,
    /// Serve HLS under the `playbackId` the stream-service returns instead of the key.
    pub playback_id: bool,
    /// Failed publishes (malformed, unknown, inactive or expired keys) from one client
    /// address (IPv6: one /64) within `auth.failure_window` that put it in cool-down; 0 never
    /// does.
    pub max_failures: u32,
    /// Seconds over which `auth.max_failures` failures are counted, from the first.
    pub failure_window: u64,
    /// Seconds an address that reached `auth.max_failures` is refused for, before its key
    /// is looked at.
    pub failure_cooldown: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// URL that receives a JSON POST when a stream starts; empty sends nothing.
    pub on_publish: String,
    /// URL that receives a JSON POST when a stream stops; empty sends nothing.
    pub on_unpublish: String,
    /// URL that receives a JSON POST when a player (RTMP, HTTP-FLV, WebSocket-FLV) starts
    /// reading a stream; empty sends nothing.
    pub on_play: String,
    /// URL that receives a JSON POST when a player stops; empty sends nothing.
    pub on_stop: String,
    /// URL that receives a JSON POST when a recording is closed (its entry as
    /// `/api/recordings` lists it); empty sends nothing.
    pub on_record_done: String,
}

impl HooksConfig {
    pub fn urls(&self) -> crate::hooks::HookUrls {
        crate::hooks::HookUrls {
            on_publish: self.on_publish.clone(),
            on_unpublish: self.on_unpublish.clone(),
            on_play: self.on_play.clone(),
            on_stop: self.on_stop.clone(),
            on_record_done: self.on_record_done.clone(),
        }
    }
}

/// Restreaming: where every live stream is pushed on to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// RTMP and RTMPS URLs every live stream is pushed to, as `rtmp[s]://host[:port]/app/name`;
    /// `{key}` stands for the publisher's stream key, `{name}` for the name the stream is
    /// served under. As a flag or environment variable: a comma-separated list.
    pub push: Vec<String>,
}

impl RelayConfig {
    /// The checked templates of `relay.push`.
    pub fn templates(&self) -> Result<Vec<crate::relay::target::Template>, ConfigError> {
        self.push
            .iter()
            .map(|url| {
                crate::relay::target::Template::parse(url).map_err(|e| ConfigError::Range {
                    option: "relay.push",
                    value: crate::relay::target::redact_text(url),
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

/// Recording: publishes kept as fragmented MP4 files with a VOD playlist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Record every publish of the application. Off: only the publishes the stream-service
    /// answers `"record": true` for are recorded.
    pub enabled: bool,
    /// Folder of the recordings; empty: `{http.mediaroot}/recordings`.
    pub path: PathBuf,
    /// Seconds within which a publish of the same stream (a reconnect, a takeover)
    /// continues the recording after a discontinuity; later ones start a new recording.
    pub gap: u64,
    /// Recordings older than this many seconds are deleted; 0 keeps them.
    pub max_age: u64,
    /// The oldest recordings are deleted while all of them take more bytes than this; 0: no
    /// limit.
    pub max_bytes: u64,
}

impl Default for RecordConfig {
    fn default() -> RecordConfig {
        RecordConfig {
            enabled: false,
            path: PathBuf::new(),
            gap: 30,
            max_age: 0,
            max_bytes: 0,
        }
    }
}

impl RecordConfig {
    /// The recording settings, with `record.path` defaulting under `mediaroot`.
    pub fn settings(&self, mediaroot: &std::path::Path) -> crate::record::RecordSettings {
        let path = if self.path.as_os_str().is_empty() {
            mediaroot.join("recordings")
        } else {
            self.path.clone()
        };
        crate::record::RecordSettings {
            enabled: self.enabled,
            path,
            gap: std::time::Duration::from_secs(self.gap),
            max_age: (self.max_age > 0).then(|| std::time::Duration::from_secs(self.max_age)),
            max_bytes: (self.max_bytes > 0).then_some(self.max_bytes),
        }
    }
}

/// Object storage (S3-compatible) as the HLS origin a CDN pulls from: segments, playlists,
/// init sections, multivariant playlists and finished recordings are uploaded to
/// `{prefix}{app}/{name}/{file}`. Empty `bucket`: off. Empty credentials, region and endpoint
/// are taken from the variables S3 tools read (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The service's URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`);
    /// empty: the environment's, else AWS S3 in `region`.
    pub endpoint: String,
    /// The bucket; empty turns object storage off.
    pub bucket: String,
    /// The signing region; empty: the environment's, else `us-east-1`.
    pub region: String,
    /// Prepended to every key (`live/` gives `live/{app}/{name}/...`); may be empty.
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// `path` (`{endpoint}/{bucket}/{key}`: MinIO, Garage, s3s, any IP endpoint) or
    /// `virtual` (`{bucket}.{endpoint host}/{key}`: AWS, R2).
    pub addressing: String,
    /// Most bytes of uploads queued; past this the oldest segment uploads are dropped.
    pub max_queue: u64,
    /// Seconds one request may take (connect to last byte); a request past it fails and is
    /// retried.
    pub timeout: u64,
    /// Requests in flight at once.
    pub concurrency: u64,
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            endpoint: String::new(),
            bucket: String::new(),
            region: String::new(),
            prefix: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            addressing: "path".into(),
            max_queue: 256 * 1024 * 1024,
            timeout: 10,
            concurrency: 8,
        }
    }
}

impl S3Config {
    /// Object storage is on.
    pub fn enabled(&self) -> bool {
        !self.bucket.is_empty()
    }

    /// The options with the environment's values filled in where these are empty
    /// (`env` reads a variable).
    pub fn with_env(&self, env: impl Fn(&str) -> Option<String>) -> S3Config {
        let mut c = self.clone();
        let first = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| env(n))
                .find(|v| !v.is_empty())
                .unwrap_or_default()
        };
        if c.access_key.is_empty() {
            c.access_key = first(&["AWS_ACCESS_KEY_ID"]);
        }
        if c.secret_key.is_empty() {
            c.secret_key = first(&["AWS_SECRET_ACCESS_KEY"]);
        }
        if c.region.is_empty() {
            c.region = first(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
        }
        if c.region.is_empty() {
            c.region = "us-east-1".into();
        }
        if c.endpoint.is_empty() {
            c.endpoint = first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
        }
        if c.endpoint.is_empty() {
            c.endpoint = format!("https://s3.{}.amazonaws.com", c.region);
        }
        c
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter (`info`, `debug`, `rtmp_server=debug,info`, ...); `RUST_LOG` wins when set.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

/// The certificate both TLS listeners (`rtmp.tls_port`, `http.tls_port`) present. Both files
/// are read again on SIGHUP and when they change; a new pair that does not load keeps the
/// one in use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, RSA or EC).
    pub key: PathBuf,
}

/// A listener's port when the listener is optional: off unless set, and then any port, 0
/// picking a free one as for the other listeners. Written as a number, `"off"` when off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenPort(pub Option<u16>);

impl ListenPort {
    const OFF: &str = "off";
}

impl Serialize for ListenPort {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(port) => s.serialize_u16(port),
            None => s.serialize_str(Self::OFF),
        }
    }
}

impl<'de> Deserialize<'de> for ListenPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ListenPort, D::Error> {
        /// A number, or text (from a flag or an environment variable): a number, or "off".
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(i64),
            Text(String),
        }
        let port = |n: i64| {
            u16::try_from(n)
                .map(|p| ListenPort(Some(p)))
                .map_err(|_| serde::de::Error::custom(format!("port {n} is not 0 to 65535")))
        };
        match Written::deserialize(d)? {
            Written::Number(n) => port(n),
            Written::Text(t) if t.trim().is_empty() || t.trim() == Self::OFF => {
                Ok(ListenPort(None))
            }
            Written::Text(t) => match t.trim().parse::<i64>() {
                Ok(n) => port(n),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "expected a port number or \"off\", not {t:?}"
                ))),
            },
        }
    }
}

/// Who may play streams (`rtmp.play`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayAccess {
    /// Anyone who knows the stream's name.
    Open,
    /// Nobody: play requests are refused.
    Off,
    /// Players that carry `?token={rtmp.play_token}`.
    Token,
}

/// Stream thumbnails (`/{app}/{name}/thumbnail.jpg`): the latest keyframe decoded on demand,
/// on worker threads of their own, under a CPU budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailConfig {
    /// Worker threads that decode keyframes; 0 turns thumbnails off.
    pub workers: usize,
    /// Share of one core the workers may use together (0.25: a quarter of a core), measured
    /// from their threads' CPU time and checked as each job starts.
    pub cpu: f64,
    /// Seconds a stream's thumbnail is reused before a newer keyframe is decoded: at most
    /// one decode per stream per this long for each keyframe asked (the latest, and the
    /// publish's first when `keyframe=first` is asked), whatever the request rate.
    pub interval: u64,
}

impl Default for ThumbnailConfig {
    fn default() -> ThumbnailConfig {
        ThumbnailConfig {
            workers: 1,
            cpu: 0.25,
            interval: 10,
        }
    }
}

impl ThumbnailConfig {
    /// The service's settings; `None` when thumbnails are off.
    pub fn settings(&self) -> Option<crate::thumbnail::service::ThumbnailSettings> {
        (self.workers > 0).then(|| crate::thumbnail::service::ThumbnailSettings {
            workers: self.workers,
            cpu: self.cpu,
            interval: std::time::Duration::from_secs(self.interval),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            hls: HlsConfig::default(),
            auth: AuthConfig::default(),
            hooks: HooksConfig::default(),
            relay: RelayConfig::default(),
            record: RecordConfig::default(),
            s3: S3Config::default(),
            thumbnail: ThumbnailConfig::default(),
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> RtmpConfig {
        RtmpConfig {
            port: 1935,
            plain: true,
            tls_port: ListenPort::default(),
            app: "live".into(),
            chunk_size: 60000,
            gop_cache: true,
            play: PlayAccess::Open,
            play_token: String::new(),
            ping: 10,
            ping_timeout: 60,
            handshake_timeout: 10,
            max_connections: 1000,
            max_video_tracks: 8,
            max_audio_tracks: 8,
            takeover: true,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            port: 8000,
            plain: true,
            tls_port: ListenPort::default(),
            allow_origin: "*".into(),
            mediaroot: PathBuf::from("./media"),
            max_connections: 10_000,
            api_token: String::new(),
        }
    }
}

impl Default for HlsConfig {
    fn default() -> HlsConfig {
        HlsConfig {
            time: 2,
            list_size: 3,
            delete_segments: true,
            keep: false,
            max_segment: 0,
            ts: true,
            cmaf: true,
            part: 0.2,
            dvr_window: 0,
        }
    }
}

impl HlsConfig {
    /// The remuxer's settings: `target_duration` carries a stream's EXT-X-TARGETDURATION
    /// over to a new publisher of the same stream.
    pub fn remux(&self, target_duration: Option<u32>) -> crate::remux::RemuxConfig {
        let secs = |s: u32| crate::media::Duration90k::from_millis(u64::from(s) * 1000);
        crate::remux::RemuxConfig {
            segment_target: secs(self.time),
            max_segment: (self.max_segment > 0).then(|| secs(self.max_segment)),
            target_duration,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            stream_service: String::new(),
            token: String::new(),
            timeout: 2,
            recheck: 0,
            cache: 0,
            negative_cache: 5,
            playback_id: false,
            max_failures: 10,
            failure_window: 60,
            failure_cooldown: 60,
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Several nodes behind one Redis (or Valkey): each live stream key is held by one node at a
/// time, and any node answers for any stream. Off unless `cluster.redis` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's Redis: `redis://[[user]:password@]host[:port][/db]`, or behind Sentinel
    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]` (the
    /// credentials and database are the master's). Empty: no cluster.
    pub redis: String,
    /// This node's id in the cluster; empty: the host name and a random suffix.
    pub node_id: String,
    /// The HTTP base URL other nodes reach this node at (`http://10.0.0.5:8000`); empty:
    /// `http://{bind or host name}:{http port}`.
    pub advertise: String,
    /// Seconds a stream key's lease lasts unless renewed (every third of it): a node that
    /// dies loses its keys this long after its last renewal.
    pub lease: u64,
    /// Requests for a stream held by another node: `proxy` (fetched from it and passed on)
    /// or `redirect` (307 to it). WebSocket-FLV is always redirected.
    pub forward: ForwardMode,
    /// Prefix of every Redis key and channel the cluster uses, so clusters can share a Redis.
    pub namespace: String,
}

/// `cluster.forward`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    Proxy,
    Redirect,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            redis: String::new(),
            node_id: String::new(),
            advertise: String::new(),
            lease: 5,
            forward: ForwardMode::Proxy,
            namespace: "rtmp-server".into(),
        }
    }
}

impl ClusterConfig {
    /// The parsed `cluster.redis`, when set.
    pub fn redis_url(&self) -> Result<Option<crate::cluster::RedisUrl>, ConfigError> {
        if self.redis.trim().is_empty() {
            return Ok(None);
        }
        crate::cluster::RedisUrl::parse(&self.redis)
            .map(Some)
            .map_err(|message| ConfigError::Range {
                option: "cluster.redis",
                value: redact_url(&self.redis),
                message,
            })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.redis_url()?;
        if self.lease < 1 || self.lease > 600 {
            return Err(ConfigError::Range {
                option: "cluster.lease",
                value: self.lease.to_string(),
                message: "allowed range is 1 to 600".into(),
            });
        }
        for (option, value) in [
            ("cluster.node_id", &self.node_id),
            ("cluster.namespace", &self.namespace),
        ] {
            if value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(ConfigError::Range {
                    option,
                    value: value.clone(),
                    message: "at most 128 printable characters, no spaces or colons".into(),
                });
            }
        }
        if self.namespace.is_empty() {
            return Err(ConfigError::Range {
                option: "cluster.namespace",
                value: String::new(),
                message: "must not be empty".into(),
            });
        }
        if !self.advertise.is_empty()
            && reqwest::Url::parse(&self.advertise)
                .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some())
                != Ok(true)
        {
            return Err(ConfigError::Range {
                option: "cluster.advertise",
                value: self.advertise.clone(),
                message: "must be an http:// or https:// base URL".into(),
            });
        }
        Ok(())
    }
}

/// A URL with its password shown as `***`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Why a configuration was refused; the message names the option.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{source_name} sets {option} = {value:?}: {message}")]
    Value {
        source_name: String,
        option: String,
        value: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("option {option} = {value}: {message}")]
    Range {
        option: &'static str,
        value: String,
        message: String,
    },
}

/// One option's dotted name (`rtmp.port`) and its default value, as the config file spells it.
#[derive(Clone, Debug)]
pub struct OptionSpec {
    pub section: Option<String>,
    pub name: String,
    pub default: toml::Value,
}

impl OptionSpec {
    /// `rtmp.port`, or `bind` for a top-level option.
    pub fn dotted(&self) -> String {
        match &self.section {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// `RTMP_SERVER_RTMP_PORT`.
    pub fn env_var(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.dotted().replace('.', "_").to_uppercase()
        )
    }

    /// `rtmp-port` (the flag without its dashes).
    pub fn flag(&self) -> String {
        self.dotted().replace(['.', '_'], "-")
    }
}

/// Every option with its default, in the order the config file lists them.
pub fn options() -> Vec<OptionSpec> {
    let defaults = toml::Value::try_from(Config::default()).expect("the default config serializes");
    let mut out = Vec::new();
    if let toml::Value::Table(top) = defaults {
        for (key, value) in top {
            match value {
                toml::Value::Table(section) => {
                    for (name, default) in section {
                        out.push(OptionSpec {
                            section: Some(key.clone()),
                            name,
                            default,
                        });
                    }
                }
                default => out.push(OptionSpec {
                    section: None,
                    name: key,
                    default,
                }),
            }
        }
    }
    out
}

/// Turns text from an environment variable or a flag into the TOML value an option takes,
/// guided by the type of its default.
fn parse_override(
    spec: &OptionSpec,
    text: &str,
    source_name: &str,
) -> Result<toml::Value, ConfigError> {
    let bad = |message: &str| ConfigError::Value {
        source_name: source_name.to_string(),
        option: spec.dotted(),
        value: text.to_string(),
        message: message.to_string(),
    };
    Ok(match &spec.default {
        toml::Value::Integer(_) => toml::Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| bad("expected a whole number"))?,
        ),
        toml::Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(bad("expected true or false")),
        },
        toml::Value::Float(_) => {
            toml::Value::Float(text.trim().parse().map_err(|_| bad("expected a number"))?)
        }
        // A list: comma-separated items (URLs and names carry no commas).
        toml::Value::Array(_) => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(text.to_string()),
    })
}

/// Where override values come from, besides the file: environment variables and flags.
#[derive(Default)]
pub struct Overrides {
    /// (option, text) pairs in the order they apply; later ones win.
    pub values: Vec<(OptionSpec, String, &'static str)>,
}

impl Overrides {
    /// Reads every `RTMP_SERVER_...` variable that names an option.
    pub fn from_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        for spec in options() {
            if let Some(v) = env(&spec.env_var()) {
                self.values.push((spec, v, "environment"));
            }
        }
    }

    pub fn push_flag(&mut self, spec: OptionSpec, value: String) {
        self.values.push((spec, value, "command line"));
    }
}

impl Config {
    /// Builds the effective configuration: defaults, then `file` (if any), then `overrides`.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (spec, text, source_name) in &overrides.values {
            let value = parse_override(spec, text, source_name)?;
            let target = match &spec.section {
                Some(section) => {
                    let entry = table
                        .entry(section.clone())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    match entry {
                        toml::Value::Table(t) => t,
                        _ => {
                            return Err(ConfigError::Invalid(format!(
                                "[{section}] must be a table"
                            )));
                        }
                    }
                }
                None => &mut table,
            };
            target.insert(spec.name.clone(), value);
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: file.map(|p| p.to_path_buf()).unwrap_or_default(),
                    message: e.message().to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses values outside the ranges the server can honour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn range<T: PartialOrd + std::fmt::Display + Copy>(
            option: &'static str,
            value: T,
            min: T,
            max: T,
        ) -> Result<(), ConfigError> {
            // Written so that a value unordered with the bounds (NaN) is refused too.
            if !(value >= min && value <= max) {
                return Err(ConfigError::Range {
                    option,
                    value: value.to_string(),
                    message: format!("allowed range is {min} to {max}"),
                });
            }
            Ok(())
        }
        let r = &self.rtmp;
        if r.app.is_empty() || !r.app.bytes().all(crate::hub::key::is_key_byte) {
            return Err(ConfigError::Range {
                option: "rtmp.app",
                value: r.app.clone(),
                message: "must be non-empty and use only A-Z a-z 0-9 - _ . ~".into(),
            });
        }
        // RTMP 1.0 §5.4.1: chunk sizes are 31-bit; below 128 (the protocol default) only
        // adds header overhead, and above 16 MiB no message can fill a chunk.
        range("rtmp.chunk_size", r.chunk_size, 128, 16 * 1024 * 1024)?;
        range("rtmp.ping", r.ping, 1, 3600)?;
        range("rtmp.ping_timeout", r.ping_timeout, 1, 3600)?;
        range("rtmp.handshake_timeout", r.handshake_timeout, 1, 300)?;
        range("rtmp.max_connections", r.max_connections, 1, 1_000_000)?;
        range("rtmp.max_video_tracks", r.max_video_tracks, 1, 32)?;
        range("rtmp.max_audio_tracks", r.max_audio_tracks, 1, 32)?;
        range(
            "http.max_connections",
            self.http.max_connections,
            1,
            1_000_000,
        )?;
        let h = &self.hls;
        range("hls.time", h.time, 1, 60)?;
        range("hls.list_size", h.list_size, 1, 1000)?;
        if h.max_segment != 0 {
            range("hls.max_segment", h.max_segment, h.time, 600)?;
        }
        // Parts shorter than a frame or two are all overhead; a part must be shorter than
        // the segments it divides.
        range("hls.part", h.part, 0.05, f64::from(h.time) / 2.0)?;
        // Six hours: the playlist grows by a line per segment, and the windows cap what they
        // list at six hours of one-second segments.
        range("hls.dvr_window", h.dvr_window, 0, 21_600)?;
        if self.http.mediaroot.as_os_str().is_empty() {
            return Err(ConfigError::Range {
                option: "http.mediaroot",
                value: String::new(),
                message: "must name a folder".into(),
            });
        }
        crate::http::cors::AllowedOrigins::parse(&self.http.allow_origin).map_err(|message| {
            ConfigError::Range {
                option: "http.allow_origin",
                value: self.http.allow_origin.clone(),
                message,
            }
        })?;
        let s3 = &self.s3;
        if s3.addressing != "path" && s3.addressing != "virtual" {
            return Err(ConfigError::Range {
                option: "s3.addressing",
                value: s3.addressing.clone(),
                message: "must be path or virtual".into(),
            });
        }
        range("s3.max_queue", s3.max_queue, 1024 * 1024, 1 << 40)?;
        range("s3.timeout", s3.timeout, 1, 300)?;
        range("s3.concurrency", s3.concurrency, 1, 256)?;
        // With a cluster, a playlist is written only while this node's lease outlasts the
        // request (one second at most, see storage::client): a lease of a second, renewed
        // every third of it, never does.
        if s3.enabled() && !self.cluster.redis.is_empty() && self.cluster.lease < 2 {
            return Err(ConfigError::Range {
                option: "cluster.lease",
                value: self.cluster.lease.to_string(),
                message: "must be at least 2 with object storage (s3.bucket)".into(),
            });
        }
        let a = &self.auth;
        range("auth.timeout", a.timeout, 1, 60)?;
        range("auth.recheck", a.recheck, 0, 86_400)?;
        range("auth.cache", a.cache, 0, 3600)?;
        range("auth.negative_cache", a.negative_cache, 0, 3600)?;
        range("auth.max_failures", a.max_failures, 0, 100_000)?;
        range("auth.failure_window", a.failure_window, 1, 86_400)?;
        range("auth.failure_cooldown", a.failure_cooldown, 1, 86_400)?;
        for (option, url) in [
            ("auth.stream_service", &a.stream_service),
            ("hooks.on_publish", &self.hooks.on_publish),
            ("hooks.on_unpublish", &self.hooks.on_unpublish),
            ("hooks.on_play", &self.hooks.on_play),
            ("hooks.on_stop", &self.hooks.on_stop),
            ("hooks.on_record_done", &self.hooks.on_record_done),
        ] {
            if !url.is_empty()
                && reqwest::Url::parse(url).map(|u| u.scheme() == "http" || u.scheme() == "https")
                    != Ok(true)
            {
                return Err(ConfigError::Range {
                    option,
                    value: url.clone(),
                    message: "must be an http:// or https:// URL".into(),
                });
            }
        }
        if self.rtmp.play == PlayAccess::Token && self.rtmp.play_token.is_empty() {
            return Err(ConfigError::Range {
                option: "rtmp.play_token",
                value: String::new(),
                message: "must be set when rtmp.play is \"token\"".into(),
            });
        }
        if a.playback_id && a.stream_service.is_empty() {
            return Err(ConfigError::Range {
                option: "auth.playback_id",
                value: "true".into(),
                message: "playback ids come from the stream-service: set auth.stream_service"
                    .into(),
            });
        }
        self.relay.templates()?;
        let t = &self.thumbnail;
        range("thumbnail.workers", t.workers, 0, 16)?;
        // As little as a hundred-thousandth of a core: a budget that one picture spends for
        // a long while (a 1080p thumbnail then takes hours to pay off).
        range("thumbnail.cpu", t.cpu, 0.00001, 16.0)?;
        range("thumbnail.interval", t.interval, 1, 3600)?;
        range("record.gap", self.record.gap, 0, 3600)?;
        if self.record.enabled && !self.hls.cmaf {
            return Err(ConfigError::Range {
                option: "record.enabled",
                value: "true".into(),
                message: "recordings are made of the CMAF output's fragments: set hls.cmaf".into(),
            });
        }
        if self.rtmp.app == "recordings" {
            return Err(ConfigError::Range {
                option: "rtmp.app",
                value: self.rtmp.app.clone(),
                message: "\"recordings\" is where recordings are served: choose another name"
                    .into(),
            });
        }
        self.validate_listeners()?;
        self.cluster.validate()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Range {
                option: "log.level",
                value: self.log.level.clone(),
                message: e.to_string(),
            });
        }
        Ok(())
    }

    /// Each side listens somewhere, and a TLS listener has a certificate to present.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        for (plain, tls_port, option) in [
            (self.rtmp.plain, self.rtmp.tls_port, "rtmp.plain"),
            (self.http.plain, self.http.tls_port, "http.plain"),
        ] {
            if !plain && tls_port.0.is_none() {
                let side = option.split('.').next().unwrap_or_default();
                return Err(ConfigError::Range {
                    option,
                    value: "false".into(),
                    message: format!("with {side}.tls_port off too, nothing would listen"),
                });
            }
        }
        let tls = self.rtmp.tls_port.0.is_some() || self.http.tls_port.0.is_some();
        for (option, path) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
            if tls && path.as_os_str().is_empty() {
                return Err(ConfigError::Range {
                    option,
                    value: String::new(),
                    message: "a TLS listener is on (rtmp.tls_port or http.tls_port): name the \
                              PEM file"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The configuration as a TOML document (`--print-config`, `check-config`), with the
    /// stream-service and API tokens shown as `***`, and relay targets without their stream
    /// names (`rtmp://host/app/***`).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for token in [
            &mut shown.auth.token,
            &mut shown.http.api_token,
            &mut shown.s3.secret_key,
        ] {
            if !token.is_empty() {
                *token = "***".into();
            }
        }
        for url in &mut shown.relay.push {
            *url = crate::relay::target::redact_text(url);
        }
        shown.cluster.redis = redact_url(&shown.cluster.redis);
        toml::to_string(&shown).expect("the config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dotted: &str) -> OptionSpec {
        options()
            .into_iter()
            .find(|s| s.dotted() == dotted)
            .expect("option exists")
    }

    #[test]
    fn defaults_match_the_original_service() {
        let c = Config::default();
        assert_eq!(c.rtmp.port, 1935);
        assert_eq!(c.rtmp.chunk_size, 60000);
        assert!(c.rtmp.gop_cache);
        assert_eq!((c.rtmp.ping, c.rtmp.ping_timeout), (10, 60));
        assert_eq!(c.http.port, 8000);
        assert_eq!(c.http.allow_origin, "*");
        assert_eq!(c.http.mediaroot, PathBuf::from("./media"));
        assert_eq!((c.hls.time, c.hls.list_size), (2, 3));
        assert!(c.hls.delete_segments && !c.hls.keep);
        c.validate().unwrap();
    }

    #[test]
    fn option_names_env_and_flags_derive_from_the_struct() {
        let s = spec("rtmp.chunk_size");
        assert_eq!(s.env_var(), "RTMP_SERVER_RTMP_CHUNK_SIZE");
        assert_eq!(s.flag(), "rtmp-chunk-size");
        assert_eq!(spec("bind").env_var(), "RTMP_SERVER_BIND");
        assert!(
            options()
                .iter()
                .any(|s| s.dotted() == "auth.stream_service")
        );
    }

    #[test]
    fn file_then_env_then_flag() {
        let dir = std::env::temp_dir().join(format!("rtmp-server-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[rtmp]\nport = 1000\nping = 5\n[hls]\ntime = 4\n").unwrap();
        let mut o = Overrides::default();
        o.from_env(|name| match name {
            "RTMP_SERVER_RTMP_PORT" => Some("2000".into()),
            "RTMP_SERVER_HLS_KEEP" => Some("true".into()),
            _ => None,
        });
        o.push_flag(spec("rtmp.port"), "3000".into());
        let c = Config::load(Some(&file), &o).unwrap();
        assert_eq!(c.rtmp.port, 3000, "flag beats env and file");
        assert_eq!(c.rtmp.ping, 5, "file beats default");
        assert_eq!(c.hls.time, 4);
        assert!(c.hls.keep, "env beats default");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dvr_window_is_read_and_bounded() {
        assert_eq!(Config::default().hls.dvr_window, 0, "off by default");
        assert_eq!(spec("hls.dvr_window").flag(), "hls-dvr-window");
        let mut o = Overrides::default();
        o.push_flag(spec("hls.dvr_window"), "120".into());
        assert_eq!(Config::load(None, &o).unwrap().hls.dvr_window, 120);
        let mut o = Overrides::default();
        o.push_flag(spec("hls.dvr_window"), "21601".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(
            e.contains("hls.dvr_window") && e.contains("0 to 21600"),
            "{e}"
        );
    }

    #[test]
    fn recording_options_are_read_and_checked() {
        let c = Config::default();
        assert!(!c.record.enabled, "off by default");
        let settings = c.record.settings(std::path::Path::new("/m"));
        assert_eq!(settings.path, std::path::Path::new("/m/recordings"));
        assert_eq!((settings.max_age, settings.max_bytes), (None, None));
        assert_eq!(spec("record.enabled").flag(), "record-enabled");
        let mut o = Overrides::default();
        o.push_flag(spec("record.enabled"), "true".into());
        o.push_flag(spec("record.max_bytes"), "1000000".into());
        let c = Config::load(None, &o).unwrap();
        assert!(c.record.enabled);
        assert_eq!(
            c.record.settings(std::path::Path::new("/m")).max_bytes,
            Some(1_000_000)
        );
        // Recordings are the CMAF output's fragments.
        o.push_flag(spec("hls.cmaf"), "false".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(
            e.contains("record.enabled") && e.contains("hls.cmaf"),
            "{e}"
        );
        let mut o = Overrides::default();
        o.push_flag(spec("rtmp.app"), "recordings".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(e.contains("rtmp.app"), "{e}");
    }

    #[test]
    fn bad_values_name_the_option() {
        let mut o = Overrides::default();
        o.push_flag(spec("hls.time"), "0".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(e.contains("hls.time") && e.contains("1 to 60"), "{e}");

        let mut o = Overrides::default();
        o.push_flag(spec("rtmp.port"), "http".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(e.contains("rtmp.port") && e.contains("whole number"), "{e}");

        let mut o = Overrides::default();
        o.push_flag(spec("auth.stream_service"), "ftp://x".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(e.contains("auth.stream_service"), "{e}");

        // Values that are not numbers on a line (NaN, infinities) are out of every range.
        for (option, value) in [
            ("thumbnail.cpu", "nan"),
            ("thumbnail.cpu", "inf"),
            ("hls.part", "nan"),
            ("hls.part", "-inf"),
        ] {
            let mut o = Overrides::default();
            o.push_flag(spec(option), value.into());
            let e = Config::load(None, &o).unwrap_err().to_string();
            assert!(
                e.contains(option) && e.contains("range"),
                "{option} {value}: {e}"
            );
        }
    }

    #[test]
    fn the_example_file_sets_every_option_to_its_default() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rtmp-server.toml"));
        let config = Config::load(Some(path), &Overrides::default()).unwrap();
        assert_eq!(config, Config::default());
        let table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        for spec in options() {
            let present = match &spec.section {
                Some(s) => table.get(s).and_then(|t| t.get(&spec.name)).is_some(),
                None => table.contains_key(&spec.name),
            };
            assert!(
                present,
                "rtmp-server.toml does not document {}",
                spec.dotted()
            );
        }
    }

    #[test]
    fn s3_options_come_from_the_aws_environment_when_unset() {
        let env = |name: &str| {
            Some(
                match name {
                    "AWS_ACCESS_KEY_ID" => "env-key",
                    "AWS_SECRET_ACCESS_KEY" => "env-secret",
                    "AWS_DEFAULT_REGION" => "eu-west-3",
                    "AWS_ENDPOINT_URL" => "http://generic:9000",
                    "AWS_ENDPOINT_URL_S3" => "http://s3-only:9000",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let mut c = S3Config {
            bucket: "b".into(),
            ..S3Config::default()
        };
        let filled = c.with_env(env);
        assert_eq!(filled.access_key, "env-key");
        assert_eq!(filled.secret_key, "env-secret");
        assert_eq!(filled.region, "eu-west-3");
        assert_eq!(
            filled.endpoint, "http://s3-only:9000",
            "the S3-specific one first"
        );
        // Options set win; without any, AWS S3 in us-east-1.
        c.access_key = "mine".into();
        c.region = "auto".into();
        assert_eq!(c.with_env(env).access_key, "mine");
        assert_eq!(c.with_env(env).region, "auto");
        let bare = S3Config::default().with_env(|_| None);
        assert_eq!(bare.region, "us-east-1");
        assert_eq!(bare.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert!(!S3Config::default().enabled() && c.enabled());
        let mut o = Overrides::default();
        o.push_flag(spec("s3.addressing"), "sideways".into());
        assert!(
            Config::load(None, &o)
                .unwrap_err()
                .to_string()
                .contains("s3.addressing")
        );
        // A cluster's lease must outlast a playlist request.
        let mut o = Overrides::default();
        o.push_flag(spec("s3.bucket"), "b".into());
        o.push_flag(spec("cluster.redis"), "redis://h".into());
        o.push_flag(spec("cluster.lease"), "1".into());
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(e.contains("cluster.lease"), "{e}");
        o.push_flag(spec("cluster.lease"), "2".into());
        assert!(Config::load(None, &o).is_ok());
    }

    #[test]
    fn printed_configurations_hide_the_tokens() {
        let mut c = Config::default();
        c.auth.token = "service-secret".into();
        c.http.api_token = "api-secret".into();
        c.s3.secret_key = "s3-secret".into();
        let text = c.to_toml();
        assert!(!text.contains("-secret"), "{text}");
        let shown: toml::Table = text.parse().unwrap();
        assert_eq!(shown["auth"]["token"].as_str(), Some("***"));
        assert_eq!(shown["http"]["api_token"].as_str(), Some("***"));
        assert_eq!(shown["s3"]["secret_key"].as_str(), Some("***"));
        assert_eq!(Config::default().to_toml().matches("***").count(), 0);
    }

    #[test]
    fn cluster_options_are_checked_and_the_password_never_shown() {
        let c = Config::default();
        assert!(c.cluster.redis.is_empty(), "no cluster unless asked");
        assert_eq!(c.cluster.redis_url().unwrap(), None);
        let load = |pairs: &[(&str, &str)]| {
            let mut o = Overrides::default();
            for (name, value) in pairs {
                o.push_flag(spec(name), (*value).into());
            }
            Config::load(None, &o)
        };
        let c = load(&[
            ("cluster.redis", "redis://:hunter2@10.0.0.9:6380/1"),
            ("cluster.forward", "redirect"),
            ("cluster.lease", "2"),
        ])
        .unwrap();
        assert_eq!(c.cluster.forward, ForwardMode::Redirect);
        assert_eq!(c.cluster.redis_url().unwrap().unwrap().db, 1);
        let text = c.to_toml();
        assert!(
            !text.contains("hunter2") && text.contains("redis://:***@10.0.0.9:6380/1"),
            "{text}"
        );
        for (pairs, option) in [
            (
                &[("cluster.redis", "rediss://:hunter2@h")][..],
                "cluster.redis",
            ),
            (
                &[("cluster.redis", "redis://h"), ("cluster.lease", "0")][..],
                "cluster.lease",
            ),
            (&[("cluster.node_id", "a b")][..], "cluster.node_id"),
            (&[("cluster.node_id", "a:b")][..], "cluster.node_id"),
            (&[("cluster.namespace", "")][..], "cluster.namespace"),
            (
                &[("cluster.advertise", "10.0.0.5:8000")][..],
                "cluster.advertise",
            ),
        ] {
            let e = load(pairs).unwrap_err().to_string();
            assert!(e.contains(option), "{pairs:?}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(load(&[("cluster.forward", "teleport")]).is_err());
    }

    #[test]
    fn relay_targets_are_a_list_checked_at_start() {
        let mut o = Overrides::default();
        o.push_flag(
            spec("relay.push"),
            "rtmp://a.example/live2/{key}, rtmps://b.example:443/app/fixed-key".into(),
        );
        let c = Config::load(None, &o).unwrap();
        assert_eq!(
            c.relay.push,
            [
                "rtmp://a.example/live2/{key}",
                "rtmps://b.example:443/app/fixed-key"
            ]
        );
        let text = c.to_toml();
        assert!(!text.contains("fixed-key") && text.contains("rtmps://b.example:443/app/***"));
        let mut env = Overrides::default();
        env.from_env(|name| (name == "RTMP_SERVER_RELAY_PUSH").then(|| "rtmp://h/a/k".into()));
        assert_eq!(
            Config::load(None, &env).unwrap().relay.push,
            ["rtmp://h/a/k"]
        );

        for (bad, why) in [
            ("http://h/app/secret", "rtmp:// or rtmps://"),
            ("rtmp://h/app", "no stream name"),
            ("rtmp:///app/k", "no host"),
            ("rtmp://h/live/{stream}", "placeholder"),
        ] {
            let mut o = Overrides::default();
            o.push_flag(spec("relay.push"), bad.into());
            let e = Config::load(None, &o).unwrap_err().to_string();
            assert!(e.contains("relay.push") && e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn unknown_file_options_are_refused() {
        let dir = std::env::temp_dir().join(format!("rtmp-server-config-u-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[rtmp]\nprot = 1000\n").unwrap();
        let e = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
