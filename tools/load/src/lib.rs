//! `rtmp-load`: a load generator for rtmp-server that publishes N streams of one FLV file
//! at real time, optionally with M HLS viewers per stream (classic `index.m3u8` pollers,
//! Low-Latency `llhls.m3u8` viewers on blocking reloads, or both) and RTMP players (reading
//! ones, timed from `play` to the first video, and stalled ones that stop reading), and
//! prints what happened, with the Low-Latency viewers' part latencies measured from the
//! publishers' writes. It is a tool apart from the server: the server binary carries only
//! the server.
//!
//! It is built to cost far less per stream than N ffmpeg processes: the file is read and
//! parsed once and its tag bodies are shared by every stream; each stream is one task on
//! one connection, driven by the server library's sans-IO [`rtmp_server::rtmp::client`],
//! chunking into one reused buffer and writing whole batches. Stream starts are staggered
//! over a ramp so the server does not see a thundering herd of handshakes.
//!
//! Modules, one job each:
//!
//! - [`cli`]: the command line.
//! - [`target`]: the `rtmp://host:port/app` URL taken apart.
//! - [`media`]: the FLV file in memory.
//! - [`playout`]: the file looped with continuing timestamps.
//! - [`pacer`]: real-time deadlines and lag.
//! - [`publisher`]: one stream's connection.
//! - [`player`]: one RTMP player's connection, reading or stalled.
//! - [`player_report`]: what the RTMP players did.
//! - [`playlist`]: the parts of a live playlist a viewer reads.
//! - [`viewer`]: one HLS viewer.
//! - [`send_log`]: when each video frame left its publisher.
//! - [`http1`]: HTTP/1.1 responses on a keep-alive connection, sans-IO.
//! - [`http_conn`]: one keep-alive connection.
//! - [`ll_playlist`]: what a Low-Latency viewer reads in `llhls.m3u8`.
//! - [`fmp4`]: the framing checks of CMAF parts and initialization sections.
//! - [`latency`]: latency histograms many viewers fill.
//! - [`ll_viewer`]: one Low-Latency HLS viewer.
//! - [`ll_report`]: what the Low-Latency viewers did.
//! - [`report`]: per-stream and per-viewer results and the summary table.

pub mod cli;
pub mod fmp4;
pub mod http1;
pub mod http_conn;
pub mod latency;
pub mod ll_playlist;
pub mod ll_report;
pub mod ll_viewer;
pub mod media;
pub mod pacer;
pub mod player;
pub mod player_report;
pub mod playlist;
pub mod playout;
pub mod publisher;
pub mod report;
pub mod send_log;
pub mod target;
pub mod viewer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ll_report::{LlFigures, LlSummary, LlViewerReport};
use ll_viewer::LlTarget;
use media::MediaFile;
use player::Play;
use player_report::{PlayerKind, PlayerOutcome, PlayerReport};
use report::{Outcome, StreamReport, Summary, ViewerReport};
use rtmp_server::flv::FlvError;
use rtmp_server::hls::ll_stream::PLAYLIST_NAME as LL_PLAYLIST_NAME;
use rtmp_server::hls::stream::PLAYLIST_NAME;
use rtmp_server::hub::key::StreamKey;
use send_log::SendLog;
use target::{PlayTarget, RtmpTarget};

/// Most streams one run may publish: each is a task and a TCP connection (plus its viewers'
/// connections), and one host runs out of file descriptors and ephemeral ports beyond this.
pub const MAX_STREAMS: usize = 10_000;

/// Most viewers per stream, for the same reason.
pub const MAX_VIEWERS_PER_STREAM: usize = 100;

/// Streams started per second of ramp when no ramp is given: 50 handshakes and key checks
/// a second keeps the start from being a thundering herd.
pub const DEFAULT_STARTS_PER_SECOND: f64 = 50.0;

/// How long viewers keep polling after their stream's media time has been sent: the last
/// segment and EXT-X-ENDLIST appear when the publish ends.
const VIEWER_GRACE: Duration = Duration::from_secs(5);

/// How long after its stream starts an RTMP player plays when no delay is given: the
/// publish has started by then.
pub const DEFAULT_PLAY_DELAY: Duration = Duration::from_secs(1);

/// Clock ticks per second of the CPU times in /proc/self/stat (USER_HZ, fixed at 100 by
/// the Linux user-space ABI).
const USER_HZ: u64 = 100;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// `rtmp://host:port/app`; each stream publishes `{key_prefix}{n}` there.
    pub url: String,
    /// The FLV file every stream publishes, looped.
    pub file: PathBuf,
    /// How many streams, 0 to [`MAX_STREAMS`] (0 only with `rtmp_play_url`: players of a
    /// stream published elsewhere).
    pub streams: usize,
    /// Media time each stream publishes.
    pub duration: Duration,
    pub key_prefix: String,
    /// HLS viewers per stream, 0 to [`MAX_VIEWERS_PER_STREAM`].
    pub viewers: usize,
    /// Low-Latency HLS viewers per stream, 0 to [`MAX_VIEWERS_PER_STREAM`].
    pub ll_viewers: usize,
    /// Base URL of the server's HLS, `http://host:port`.
    pub http: String,
    /// Time over which stream starts are spread; `None` for one second per
    /// [`DEFAULT_STARTS_PER_SECOND`] streams.
    pub ramp: Option<Duration>,
    /// RTMP players that read everything, per played stream (each published stream, or the
    /// one `rtmp_play_url` names), 0 to [`MAX_VIEWERS_PER_STREAM`].
    pub rtmp_players: usize,
    /// RTMP players that stop reading once `play` is out, per played stream, 0 to
    /// [`MAX_VIEWERS_PER_STREAM`].
    pub rtmp_stalled_players: usize,
    /// The stream RTMP players play, `rtmp://host:port/app/name`; `None` for each published
    /// stream. Its players start `rtmp_play_delay` after the run and play for `duration`.
    pub rtmp_play_url: Option<String>,
    /// How long after its stream starts an RTMP player plays.
    pub rtmp_play_delay: Duration,
}

impl BenchOptions {
    /// The ramp in effect.
    pub fn ramp(&self) -> Duration {
        self.ramp.unwrap_or_else(|| {
            Duration::from_secs_f64(self.streams as f64 / DEFAULT_STARTS_PER_SECOND)
        })
    }

    /// The stream keys, in start order.
    pub fn keys(&self) -> Vec<String> {
        (1..=self.streams)
            .map(|n| format!("{}{n}", self.key_prefix))
            .collect()
    }
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("--url {url}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("--rtmp-play-url {url}: {reason}")]
    PlayUrl { url: String, reason: &'static str },
    #[error("--http {url}: {reason}")]
    HttpUrl { url: String, reason: String },
    #[error("{option}: {problem}")]
    Option {
        option: &'static str,
        problem: String,
    },
    #[error("stream key {key:?}: {reason}")]
    Key { key: String, reason: String },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("FLV: {0}")]
    Flv(#[from] FlvError),
    #[error("the file has no audio or video frames")]
    NoMedia,
    #[error(
        "the file's media lasts {duration_ms} ms; replaying it at real time needs at least {} ms",
        media::MIN_DURATION_MS
    )]
    TooShort { duration_ms: u64 },
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

/// Runs the streams and viewers to their end (or until `stop`) and sums them up.
pub async fn run(options: &BenchOptions, stop: CancellationToken) -> Result<Summary, LoadgenError> {
    if options.streams > MAX_STREAMS {
        return Err(LoadgenError::Option {
            option: "--streams",
            problem: format!("{} is more than {MAX_STREAMS}", options.streams),
        });
    }
    if options.streams == 0 && options.rtmp_play_url.is_none() {
        return Err(LoadgenError::Option {
            option: "--streams",
            problem: "0 streams needs --rtmp-play-url (players of a stream published elsewhere)"
                .to_owned(),
        });
    }
    for (option, players) in [
        ("--rtmp-players", options.rtmp_players),
        ("--rtmp-stalled-players", options.rtmp_stalled_players),
    ] {
        if players > MAX_VIEWERS_PER_STREAM {
            return Err(LoadgenError::Option {
                option,
                problem: format!("{players} is more than {MAX_VIEWERS_PER_STREAM}"),
            });
        }
    }
    if options.viewers > MAX_VIEWERS_PER_STREAM {
        return Err(LoadgenError::Option {
            option: "--viewers",
            problem: format!("{} is more than {MAX_VIEWERS_PER_STREAM}", options.viewers),
        });
    }
    if options.ll_viewers > MAX_VIEWERS_PER_STREAM {
        return Err(LoadgenError::Option {
            option: "--ll-viewers",
            problem: format!(
                "{} is more than {MAX_VIEWERS_PER_STREAM}",
                options.ll_viewers
            ),
        });
    }
    if options.duration.is_zero() {
        return Err(LoadgenError::Option {
            option: "--duration",
            problem: "must be more than 0".to_owned(),
        });
    }
    let target = Arc::new(RtmpTarget::parse(&options.url)?);
    let play_target = match &options.rtmp_play_url {
        Some(url) => Some(PlayTarget::parse(url).map_err(|e| match e {
            LoadgenError::Url { url, reason } => LoadgenError::PlayUrl { url, reason },
            other => other,
        })?),
        None => None,
    };
    let keys = options.keys();
    for key in &keys {
        StreamKey::parse(key).map_err(|e| LoadgenError::Key {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    }
    let hls = if options.viewers > 0 || options.ll_viewers > 0 {
        Some(hls_base(&options.http)?)
    } else {
        None
    };
    let ll = match (&hls, options.ll_viewers) {
        (Some(base), 1..) => Some(ll_base(base, &options.http)?),
        _ => None,
    };
    let tls = rtmp_server::auth::tls_config().map_err(LoadgenError::HttpClient)?;
    let data = tokio::fs::read(&options.file)
        .await
        .map_err(|source| LoadgenError::File {
            path: options.file.display().to_string(),
            source,
        })?;
    let media = Arc::new(MediaFile::parse(Bytes::from(data))?);
    let ramp = options.ramp();
    tracing::info!(
        streams = options.streams,
        viewers_per_stream = options.viewers,
        ll_viewers_per_stream = options.ll_viewers,
        rtmp_players = options.rtmp_players,
        rtmp_stalled_players = options.rtmp_stalled_players,
        rtmp_play_url = options.rtmp_play_url.as_deref(),
        url = options.url,
        file = %options.file.display(),
        file_bytes = media.size(),
        ramp_s = ramp.as_secs_f64(),
        "load run starting"
    );

    let started = Instant::now();
    let mut publishers = Vec::with_capacity(keys.len());
    let mut viewers = Vec::with_capacity(keys.len() * options.viewers);
    let mut ll_viewers = Vec::with_capacity(keys.len() * options.ll_viewers);
    let figures = Arc::new(LlFigures::default());
    let mut players = Vec::new();
    let mut spawn_players = |play: Play| {
        for (n, kind) in (1..=options.rtmp_players)
            .map(|n| (n, PlayerKind::Reading))
            .chain((1..=options.rtmp_stalled_players).map(|n| (n, PlayerKind::Stalled)))
        {
            let label = match kind {
                PlayerKind::Reading => format!("{} player {n}", play.name),
                PlayerKind::Stalled => format!("{} stalled player {n}", play.name),
            };
            let name = play.name.clone();
            let play = Play {
                label: label.clone(),
                ..play.clone()
            };
            let task = match kind {
                PlayerKind::Reading => tokio::spawn(player::play(play, stop.clone())),
                PlayerKind::Stalled => tokio::spawn(player::stall(play, stop.clone())),
            };
            players.push((task, label, name, kind));
        }
    };
    if let Some(played) = &play_target {
        let start = started + options.rtmp_play_delay;
        spawn_players(Play {
            target: Arc::new(played.server.clone()),
            name: played.name.clone(),
            label: String::new(),
            start,
            until: start + options.duration,
            published: None,
        });
    }
    for (n, key) in keys.iter().enumerate() {
        let at = started + ramp.mul_f64(n as f64 / keys.len() as f64);
        let log = ll
            .is_some()
            .then(|| Arc::new(SendLog::new(media.first_frame_ms())));
        let task = publisher::publish(
            target.clone(),
            media.clone(),
            key.clone(),
            options.duration,
            log.clone(),
            stop.clone(),
        );
        // Cancelled when the publisher is done, however it ends: its players then take
        // the stream's end, or the server closing their connections, as the end of the play.
        let published = CancellationToken::new();
        let done = published.clone().drop_guard();
        publishers.push(tokio::spawn(async move {
            let _done = done;
            tokio::time::sleep_until(at).await;
            task.await
        }));
        if play_target.is_none() {
            spawn_players(Play {
                target: target.clone(),
                name: key.clone(),
                label: String::new(),
                start: at + options.rtmp_play_delay,
                until: at + options.duration + VIEWER_GRACE,
                published: Some(published),
            });
        }
        if let Some(base) = &hls {
            let url = base
                .join(&format!("{}/{key}/{PLAYLIST_NAME}", target.app))
                .map_err(|e| LoadgenError::HttpUrl {
                    url: options.http.clone(),
                    reason: e.to_string(),
                })?;
            for _ in 0..options.viewers {
                // A client per viewer, so each keeps its own connections as a player does.
                let client = rtmp_server::auth::http_client_with(tls.clone(), viewer::HTTP_TIMEOUT)
                    .map_err(LoadgenError::HttpClient)?;
                let until = at + options.duration + VIEWER_GRACE;
                viewers.push(tokio::spawn(viewer::watch(
                    client,
                    url.clone(),
                    key.clone(),
                    at,
                    until,
                    stop.clone(),
                )));
            }
        }
        if let (Some((authority, prefix)), Some(log)) = (&ll, &log) {
            let folder = format!("{prefix}{}/{key}/", target.app);
            let stream = LlTarget {
                authority: authority.clone(),
                playlist: format!("{folder}{LL_PLAYLIST_NAME}"),
                folder,
            };
            for _ in 0..options.ll_viewers {
                ll_viewers.push(tokio::spawn(ll_viewer::watch(
                    stream.clone(),
                    key.clone(),
                    log.clone(),
                    figures.clone(),
                    at,
                    at + options.duration + VIEWER_GRACE,
                    stop.clone(),
                )));
            }
        }
    }

    let mut streams = Vec::with_capacity(publishers.len());
    for (task, key) in publishers.into_iter().zip(&keys) {
        streams.push(task.await.unwrap_or_else(|e| {
            let mut report = StreamReport::new(key.clone());
            report.outcome = Outcome::Failed(format!("task ended abnormally: {e}"));
            report
        }));
    }
    let mut viewer_reports = Vec::with_capacity(viewers.len());
    for task in viewers {
        match task.await {
            Ok(report) => viewer_reports.push(report),
            Err(e) => {
                let mut report = ViewerReport::default();
                report.error(format!("task ended abnormally: {e}"));
                viewer_reports.push(report);
            }
        }
    }
    let mut player_reports = Vec::with_capacity(players.len());
    for (task, label, name, kind) in players {
        player_reports.push(task.await.unwrap_or_else(|e| {
            let mut report = PlayerReport::new(label, name, kind);
            report.outcome = PlayerOutcome::Failed(format!("task ended abnormally: {e}"));
            report
        }));
    }
    let ll_summary = if ll.is_some() {
        let mut reports = Vec::with_capacity(ll_viewers.len());
        for task in ll_viewers {
            reports.push(task.await.unwrap_or_else(|e| {
                let mut report = LlViewerReport::default();
                report.error(
                    |e| &mut e.transport,
                    || format!("task ended abnormally: {e}"),
                );
                report
            }));
        }
        Some(LlSummary::new(reports, &figures))
    } else {
        None
    };
    Ok(Summary {
        url: options.url.clone(),
        file: options.file.display().to_string(),
        file_duration: Duration::from_millis(media.duration_ms()),
        duration: options.duration,
        ramp,
        streams,
        viewers: viewer_reports,
        ll: ll_summary,
        players: player_reports,
        wall: started.elapsed(),
        cpu: process_cpu_time(),
    })
}

/// `http://host:port[/prefix]` as a base that stream paths join onto.
fn hls_base(http: &str) -> Result<Url, LoadgenError> {
    let invalid = |reason: String| LoadgenError::HttpUrl {
        url: http.to_owned(),
        reason,
    };
    let mut url = Url::parse(http).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(
            "only http:// and https:// are supported".to_owned(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Where Low-Latency viewers connect (`host:port`) and the path prefix stream folders go
/// under (ending with a slash). They speak plain HTTP/1.1 on their own connections.
fn ll_base(base: &Url, http: &str) -> Result<(String, String), LoadgenError> {
    let invalid = |reason: &str| LoadgenError::HttpUrl {
        url: http.to_owned(),
        reason: reason.to_owned(),
    };
    if base.scheme() != "http" {
        return Err(invalid("Low-Latency viewers speak plain http:// only"));
    }
    // An IPv6 host comes in brackets, as a Host header and a socket address want it.
    let host = base.host_str().ok_or_else(|| invalid("no host"))?;
    let port = base.port_or_known_default().unwrap_or(80);
    Ok((format!("{host}:{port}"), base.path().to_owned()))
}

/// User plus system CPU time of this process so far, from /proc/self/stat (Linux).
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_time_from_stat(&stat)
}

/// utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_time_from_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BenchOptions {
        BenchOptions {
            url: "rtmp://127.0.0.1:1935/live".to_owned(),
            file: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/flv/h264_aac.flv"
            )),
            streams: 120,
            duration: Duration::from_secs(20),
            key_prefix: "bench-".to_owned(),
            viewers: 0,
            ll_viewers: 0,
            http: "http://127.0.0.1:8000".to_owned(),
            ramp: None,
            rtmp_players: 0,
            rtmp_stalled_players: 0,
            rtmp_play_url: None,
            rtmp_play_delay: DEFAULT_PLAY_DELAY,
        }
    }

    #[test]
    fn ramp_and_keys() {
        let o = options();
        assert_eq!(o.ramp(), Duration::from_millis(2400));
        let keys = o.keys();
        assert_eq!(
            (keys[0].as_str(), keys[119].as_str()),
            ("bench-1", "bench-120")
        );
        let given = BenchOptions {
            ramp: Some(Duration::ZERO),
            ..o
        };
        assert_eq!(given.ramp(), Duration::ZERO);
    }

    #[test]
    fn hls_base_ends_with_a_slash() {
        let join = |base: &str| {
            hls_base(base)
                .expect("valid")
                .join("live/k/index.m3u8")
                .expect("joins")
                .to_string()
        };
        assert_eq!(
            join("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000/live/k/index.m3u8"
        );
        assert_eq!(
            join("http://cdn.example/hls"),
            "http://cdn.example/hls/live/k/index.m3u8"
        );
        assert!(matches!(
            hls_base("rtmp://x/"),
            Err(LoadgenError::HttpUrl { .. })
        ));
    }

    #[test]
    fn cpu_time_from_a_stat_line() {
        let stat = "4242 (rtmp (bench) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 37 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_time_from_stat(stat), Some(Duration::from_millis(2870)));
        assert_eq!(cpu_time_from_stat("garbage"), None);
        assert!(
            process_cpu_time().is_some(),
            "Linux reports /proc/self/stat"
        );
    }

    #[tokio::test]
    async fn players_alone_play_the_named_stream() {
        // Nobody listens on a port just released: the players fail, and say so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let o = BenchOptions {
            streams: 0,
            duration: Duration::from_secs(1),
            rtmp_players: 2,
            rtmp_stalled_players: 1,
            rtmp_play_url: Some(format!("rtmp://127.0.0.1:{port}/live/cam")),
            rtmp_play_delay: Duration::ZERO,
            ..options()
        };
        let summary = run(&o, CancellationToken::new()).await.expect("runs");
        assert!(summary.streams.is_empty());
        let labels: Vec<(&str, &str, PlayerKind)> = summary
            .players
            .iter()
            .map(|p| (p.label.as_str(), p.name.as_str(), p.kind))
            .collect();
        assert_eq!(
            labels,
            [
                ("cam player 1", "cam", PlayerKind::Reading),
                ("cam player 2", "cam", PlayerKind::Reading),
                ("cam stalled player 1", "cam", PlayerKind::Stalled),
            ]
        );
        assert!(
            summary.players.iter().all(
                |p| matches!(&p.outcome, PlayerOutcome::Failed(r) if r.starts_with("connect:"))
            ),
            "{summary}"
        );
        assert!(!summary.all_completed());
    }

    #[tokio::test]
    async fn bad_options_are_refused_before_anything_runs() {
        let stop = CancellationToken::new();
        let cases: [(BenchOptions, &str); 11] = [
            (
                BenchOptions {
                    streams: 0,
                    ..options()
                },
                "--streams",
            ),
            (
                BenchOptions {
                    viewers: 101,
                    ..options()
                },
                "--viewers",
            ),
            (
                BenchOptions {
                    ll_viewers: 101,
                    ..options()
                },
                "--ll-viewers",
            ),
            (
                BenchOptions {
                    ll_viewers: 1,
                    http: "https://127.0.0.1:8443".to_owned(),
                    ..options()
                },
                "plain http:// only",
            ),
            (
                BenchOptions {
                    duration: Duration::ZERO,
                    ..options()
                },
                "--duration",
            ),
            (
                BenchOptions {
                    key_prefix: "a/".to_owned(),
                    ..options()
                },
                "stream key",
            ),
            (
                BenchOptions {
                    file: PathBuf::from("/nonexistent.flv"),
                    ..options()
                },
                "/nonexistent.flv",
            ),
            (
                BenchOptions {
                    streams: 0,
                    rtmp_players: 1,
                    ..options()
                },
                "needs --rtmp-play-url",
            ),
            (
                BenchOptions {
                    rtmp_players: 101,
                    ..options()
                },
                "--rtmp-players",
            ),
            (
                BenchOptions {
                    rtmp_stalled_players: 101,
                    ..options()
                },
                "--rtmp-stalled-players",
            ),
            (
                BenchOptions {
                    rtmp_play_url: Some("rtmp://127.0.0.1/live".to_owned()),
                    ..options()
                },
                "--rtmp-play-url rtmp://127.0.0.1/live: no stream name",
            ),
        ];
        for (o, expected) in cases {
            let err = run(&o, stop.clone()).await.expect_err("refused");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
