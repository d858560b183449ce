//! The HTTP interface in process: the router `rtmp_server::http::router` builds, called with
//! `tower::ServiceExt::oneshot` (no socket, no server binary), over a registry whose streams'
//! windows the tests fill directly with segments and CMAF events. Routes, status codes,
//! headers, CORS, ETag revalidation, path validation, the stats API's JSON, `/metrics`,
//! health and readiness, Low-Latency Delivery Directives and blocking requests.
//!
//! What needs a real socket (request lines no client would send, header time-outs,
//! connection caps) or a real publisher stays in the end-to-end tests (`http.rs`,
//! `abuse_http.rs`, `abuse_paths.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use rtmp_server::hls::CompletedSegment;
use rtmp_server::hls::disk::DiskWriter;
use rtmp_server::hls::ll_stream::{CmafEvent, LlStream};
use rtmp_server::hls::served::Served;
use rtmp_server::hls::stream::{HlsSettings, HlsStream, StreamDir};
use rtmp_server::http::{HttpContext, router};
use rtmp_server::hub::key::StreamKey;
use rtmp_server::hub::registry::{Claim, Registry};
use rtmp_server::hub::stream::Stream;
use rtmp_server::media::codec::TrackSummary;
use rtmp_server::media::fanout::{FanOut, Limits};
use rtmp_server::media::{Duration90k, Timestamp90k};
use rtmp_server::metrics::Metrics;

/// The Part Target Duration of the Low-Latency windows here.
const PART: Duration90k = Duration90k(45_000);

/// Where requests come from, unless a test says otherwise.
const PEER: &str = "192.0.2.10:50000";

/// How a test's server is set up.
struct Options {
    /// `hls.keep`.
    keep: bool,
    /// `http.allow_origin`.
    allow_origin: &'static str,
    /// The media root; by default a folder `media` in the test's temporary folder.
    mediaroot: Option<PathBuf>,
    /// `http.api_token` (empty: none).
    api_token: &'static str,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            keep: false,
            allow_origin: "*",
            mediaroot: None,
            api_token: "",
        }
    }
}

/// The HTTP side of a server, with its registry and metrics, and a real disk writer.
struct Server {
    router: Router,
    ctx: Arc<HttpContext>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Holds the media root (unless the test chose another).
    dir: tempfile::TempDir,
}

impl Server {
    /// Must be called on a tokio runtime: the disk writer runs on its blocking pool.
    fn start(options: Options) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mediaroot = options
            .mediaroot
            .unwrap_or_else(|| dir.path().join("media"));
        let (disk, _writer) = DiskWriter::spawn(mediaroot.clone(), 1024);
        let metrics = Arc::new(Metrics::default());
        let prometheus = metrics.registry(disk.stats());
        let settings = HlsSettings {
            keep: options.keep,
            ..HlsSettings::default()
        };
        let windows = disk.clone();
        let registry = Arc::new(Registry::new(
            true,
            Box::new(move |app: &str, name: &StreamKey, key: &StreamKey| {
                let dir = StreamDir {
                    app: app.to_string(),
                    key: name.to_string(),
                };
                let wall = SystemTime::now();
                let ts = HlsStream::new(dir.clone(), settings.clone(), false, wall);
                let ll = LlStream::new(dir, settings.clone(), PART, wall);
                Arc::new(Stream::new(
                    app.to_string(),
                    name.clone(),
                    key.clone(),
                    FanOut::new(Limits::default()),
                    Some(Arc::new(Served::new(ts, windows.clone()))),
                    Some(Arc::new(Served::new(ll, windows.clone()))),
                ))
            }),
        ));
        let ctx = Arc::new(HttpContext {
            app: "live".to_string(),
            mediaroot,
            keep: options.keep,
            hls_time: 2,
            allow_origin: options.allow_origin.to_string(),
            max_connections: 100,
            api_token: rtmp_server::http::bearer::ApiToken::new(options.api_token),
            registry: registry.clone(),
            playback: rtmp_server::playback::Playback::new(
                rtmp_server::playback::PlaybackSettings {
                    app: "live".to_string(),
                    access: rtmp_server::config::PlayAccess::Open,
                    token: String::new(),
                    queue: Default::default(),
                },
                registry.clone(),
                rtmp_server::hooks::Hooks::start(
                    Default::default(),
                    rtmp_server::auth::http_client(Duration::from_secs(5)).expect("a client"),
                )
                .0,
                metrics.clone(),
            ),
            metrics: metrics.clone(),
            prometheus,
            disk_stats: disk.stats(),
            started: Instant::now()
                .checked_sub(Duration::from_secs(5))
                .expect("the machine has been up for 5 s"),
            started_wall: SystemTime::now(),
            disk_usage: Mutex::new(None),
            history: Mutex::new(Default::default()),
            recordings: None,
            shutdown: CancellationToken::new(),
            cluster: None,
            thumbnails: None,
        });
        Server {
            router: router(ctx.clone()),
            ctx,
            registry,
            metrics,
            dir,
        }
    }

    /// A stream published under `key` now.
    fn publish(&self, key: &str) -> Claim {
        let key = StreamKey::parse(key).expect("a valid key");
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        self.registry
            .claim("live", &key, &key, peer)
            .expect("claimed")
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, &[]).await
    }

    /// `METHOD uri` with these headers, from [`PEER`].
    async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
        self.call_from(PEER, method, uri, headers, Body::empty())
            .await
    }

    async fn call_from(
        &self,
        peer: &str,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        let peer: SocketAddr = peer.parse().expect("an address");
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .extension(ConnectInfo(peer))
            .body(body)
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// A response read in full.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON")
    }
}

/// `packets` TS packets: sync byte, then `fill`.
fn ts_bytes(packets: usize, fill: u8) -> Bytes {
    let mut data = vec![fill; 188 * packets];
    for packet in data.chunks_mut(188) {
        packet[0] = 0x47;
    }
    Bytes::from(data)
}

/// Lists a 2 s segment with these bytes in the stream's classic window; returns its name.
fn push_segment(stream: &Stream, data: Bytes) -> String {
    let window = stream.ts.as_ref().expect("a TS window");
    window.update(|w, actions| {
        let segment = CompletedSegment {
            start: Timestamp90k(0),
            duration: Duration90k::from_millis(2000),
            discontinuity: false,
            independent: true,
            target_duration: 2,
            data,
        };
        w.push(segment, Instant::now(), SystemTime::now(), actions)
            .name
            .clone()
    })
}

/// The URIs of the playlist's lines that are not tags.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The value of `URI="..."` in the last line starting with `tag`.
fn tag_uri(playlist: &str, tag: &str) -> Option<String> {
    let line = playlist.lines().rev().find(|l| l.starts_with(tag))?;
    let rest = &line[line.find("URI=\"")? + 5..];
    Some(rest[..rest.find('"')?].to_string())
}

#[tokio::test(flavor = "current_thread")]
async fn playlists_and_segments_carry_the_headers_players_and_cdns_need() {
    let server = Server::start(Options::default());
    let claim = server.publish("headers");
    let first = push_segment(&claim.stream, ts_bytes(40, 1));
    push_segment(&claim.stream, ts_bytes(30, 2));
    let url = "/live/headers/index.m3u8";

    let r = server
        .call("GET", url, &[("Origin", "https://player.example")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let exposed = r.header("access-control-expose-headers").unwrap_or("");
    assert!(
        exposed.contains("content-length") && exposed.contains("etag"),
        "{exposed}"
    );
    let etag = r.header("etag").expect("playlist ETag").to_string();
    assert_eq!(uris(&r.text()).len(), 2, "{}", r.text());

    // A conditional request for an unchanged playlist is answered 304 with no body (the
    // ETag alone, in a list, or `*`); once a segment is added the old ETag gets the new
    // playlist with a new ETag.
    for condition in [etag.clone(), format!("\"other\", {etag}"), "*".to_string()] {
        let again = server
            .call("GET", url, &[("If-None-Match", &condition)])
            .await;
        assert_eq!(again.status, 304, "If-None-Match: {condition}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("cache-control"), Some("public, max-age=1"));
    }
    push_segment(&claim.stream, ts_bytes(20, 3));
    let changed = server.call("GET", url, &[("If-None-Match", &etag)]).await;
    assert_eq!(changed.status, 200);
    let new_etag = changed.header("etag").expect("an ETag");
    assert_ne!(new_etag, etag);
    assert_eq!(uris(&changed.text()).len(), 3, "{}", changed.text());

    // HEAD: the same headers, no body.
    let head = server.call("HEAD", url, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        head.header("content-length"),
        Some(changed.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    let seg_url = format!("/live/headers/{first}");
    let seg = server.get(&seg_url).await;
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        seg.header("content-length"),
        Some(seg.body.len().to_string().as_str())
    );
    assert_eq!(seg.body, ts_bytes(40, 1), "the segment's bytes as listed");
    assert_eq!(seg.body.len() % 188, 0);
    assert_eq!(seg.body[0], 0x47);
    let seg_head = server.call("HEAD", &seg_url, &[]).await;
    assert_eq!(seg_head.status, 200);
    assert!(seg_head.body.is_empty());
    assert_eq!(
        seg_head.header("content-length"),
        seg.header("content-length")
    );

    // CORS preflight.
    let pre = server
        .call(
            "OPTIONS",
            url,
            &[
                ("Origin", "https://player.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
        )
        .await;
    assert!(
        pre.status == 200 || pre.status == 204,
        "preflight status {}",
        pre.status
    );
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap_or("")
            .contains("GET")
    );

    // Bytes served are counted for full GET answers only: two playlists and a segment.
    let served = r.body.len() + changed.body.len() + seg.body.len();
    assert_eq!(server.metrics.http_bytes_out_total.get(), served as u64);
}

#[tokio::test(flavor = "current_thread")]
async fn an_origin_list_allows_only_its_origins() {
    let server = Server::start(Options {
        allow_origin: "https://a.example, https://b.example",
        ..Options::default()
    });
    let claim = server.publish("origins");
    push_segment(&claim.stream, ts_bytes(10, 0));
    let url = "/live/origins/index.m3u8";
    let allowed = server
        .call("GET", url, &[("Origin", "https://b.example")])
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    let other = server
        .call("GET", url, &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // The operator's controls: a listed origin's page may POST with its bearer token.
    let preflight = |origin| {
        [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization"),
        ]
    };
    let controls = "/api/streams/origins/stop";
    let pre = server
        .call("OPTIONS", controls, &preflight("https://a.example"))
        .await;
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    let methods = pre.header("access-control-allow-methods").unwrap_or("");
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = pre.header("access-control-allow-headers").unwrap_or("");
    assert!(headers.contains("authorization"), "{headers}");
    let pre = server
        .call("OPTIONS", controls, &preflight("https://evil.example"))
        .await;
    assert_eq!(pre.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "current_thread")]
async fn controls_stop_a_publisher_and_refuse_recording_without_recordings() {
    // Without http.api_token, reads are open but controls are refused.
    let open = Server::start(Options::default());
    let claim = open.publish("ctl");
    for control in ["stop", "record/start", "record/stop"] {
        let r = open
            .call("POST", &format!("/api/streams/ctl/{control}"), &[])
            .await;
        assert_eq!(r.status, 403, "{control}: {}", r.text());
        assert!(r.text().contains("http.api_token"), "{}", r.text());
    }
    assert!(!claim.publisher.stop.is_stopped());
    assert_eq!(open.call("GET", "/api/streams/ctl", &[]).await.status, 200);

    let server = Server::start(Options {
        api_token: "t0ken",
        ..Options::default()
    });
    let auth = [("Authorization", "Bearer t0ken")];
    let claim = server.publish("ctl");
    let r = server
        .call("POST", "/api/streams/ctl/record/start", &auth)
        .await;
    assert_eq!(r.status, 409, "no record.path here: {}", r.text());
    assert!(r.text().contains("record.path"), "{}", r.text());
    let r = server
        .call("POST", "/api/streams/ctl/record/stop", &auth)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"active":false,"id":null}"#);
    let r = server.call("POST", "/api/streams/nobody/stop", &auth).await;
    assert_eq!(r.status, 404);
    assert!(!claim.publisher.stop.is_stopped());
    let r = server.call("POST", "/api/streams/ctl/stop", &[]).await;
    assert_eq!(r.status, 401, "the token is checked first");
    let r = server.call("POST", "/api/streams/ctl/stop", &auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"stopped":"ctl"}"#);
    assert_eq!(
        claim.publisher.stop.reason(),
        Some(rtmp_server::hub::stop::StopReason::Operator)
    );
    assert_eq!(server.metrics.operator_stops_total.get(), 1);
    let r = server.call("GET", "/api/streams/ctl/stop", &auth).await;
    assert_eq!(r.status, 405, "a control is a POST");
}

/// Request paths made to escape the media root or name what is not a stream's file. The
/// server keeps files (`hls.keep`), so a path that got past validation would be read from
/// disk.
const ESCAPING_PATHS: &[&str] = &[
    "/live/nosuchstream/index.m3u8",
    "/live/paths/nosuchsegment-1.ts",
    "/other/paths/index.m3u8",
    "/live/paths/../../secret.ts",
    "/live/paths/..%2f..%2fsecret.ts",
    "/live/%2e%2e/top.ts",
    "/live/..%2F..%2F/secret.ts",
    "/live/paths/%2e%2e%2fpaths%2findex.m3u8",
    "/live/paths/a%00.ts",
    "/live/pa%00ths/index.m3u8",
    "/live/paths/index.m3u8%00.ts",
    "/live/paths/.ts",
    "/live/.hidden/index.m3u8",
    "/live/%ff%fe/index.m3u8",
    // Request targets a client sends as they are (they were sent over a raw socket before).
    "/live/paths/../../../secret.ts",
    "/live/../../secret.ts",
    "/live/paths/../../live/index.m3u8",
    "/%2e%2e/%2e%2e/secret.ts",
    "/live/%2e%2e/%2e%2e/secret.ts",
    "/live/paths/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.ts",
    "/live/paths/..%5c..%5c..%5csecret.ts",
    "//secret.ts",
    "/live/%00/index.m3u8",
    "/live/paths%00/index.m3u8",
    "http://127.0.0.1/../secret.ts",
];

#[tokio::test(flavor = "current_thread")]
async fn unknown_streams_and_segments_and_paths_outside_the_media_root_are_not_found() {
    let server = Server::start(Options {
        keep: true,
        ..Options::default()
    });
    let claim = server.publish("paths");
    push_segment(&claim.stream, ts_bytes(10, 0));
    // Files next to the media root and at its top, which no request may reach.
    let media = server.ctx.mediaroot.clone();
    std::fs::create_dir_all(media.join("live")).unwrap();
    std::fs::write(server.dir.path().join("secret.ts"), b"secret").unwrap();
    std::fs::write(media.join("live").join("top.ts"), b"secret").unwrap();
    std::fs::write(media.join("live").join("index.m3u8"), b"secret").unwrap();

    let long_key = format!("/live/{}/index.m3u8", "k".repeat(5000));
    let long_segment = format!("/live/paths/{}.ts", "s".repeat(300));
    let paths = ESCAPING_PATHS
        .iter()
        .map(|p| p.to_string())
        .chain([long_key.clone()]);
    for path in paths {
        for method in ["GET", "HEAD"] {
            let r = server
                .call_from(
                    PEER,
                    method,
                    &path,
                    &[("content-length", "6")],
                    Body::from("secret"),
                )
                .await;
            assert!(
                r.status == 404 || r.status == 400,
                "{method} {path}: status {}",
                r.status
            );
            assert!(
                !r.text().contains("secret"),
                "{path} reached a file outside the stream"
            );
        }
    }
    assert_eq!(server.get(&long_segment).await.status, 404);
    // Methods other than GET, HEAD and OPTIONS are not allowed.
    for (method, path) in [
        ("DELETE", "/live/paths/index.m3u8"),
        ("PUT", "/live/paths/new-1.ts"),
        ("POST", "/live/escape/index.m3u8"),
    ] {
        let r = server.call(method, path, &[]).await;
        assert_eq!(r.status, 405, "{method} {path}");
    }
    // Validation happened before the file system: nothing was created.
    assert!(!media.join("live").join("escape").exists());
    assert!(!media.join("live").join("paths").join("new-1.ts").exists());
    // The real stream is served.
    assert_eq!(server.get("/live/paths/index.m3u8").await.status, 200);
}

/// Video and audio as the test file `flv/h264_aac.flv` has them.
fn test_file_media(stream: &Stream) {
    stream.update_media(|m| {
        let video = TrackSummary {
            kind: "video",
            track: 0,
            codec: "avc1.64001E".to_string(),
            name: "H.264",
            profile: Some("High".to_string()),
            level: Some("3.0".to_string()),
            width: Some(640),
            height: Some(360),
            bit_depth: Some(8),
            frame_rate: Some(30.0),
            sample_rate: None,
            channels: None,
            colour: None,
            bitrate_kbps: None,
        };
        let audio = TrackSummary {
            kind: "audio",
            track: 0,
            codec: "mp4a.40.2".to_string(),
            name: "AAC",
            profile: None,
            level: None,
            width: None,
            height: None,
            bit_depth: None,
            frame_rate: None,
            sample_rate: Some(48_000),
            channels: Some(2),
            colour: None,
            bitrate_kbps: None,
        };
        m.tracks = vec![video.clone(), audio.clone()];
        m.video = Some(video);
        m.audio = Some(audio);
        m.frame_rate = Some(30.0);
        m.keyframe_interval = Some(Duration90k::from_millis(2000));
        m.encoder = Some("Lavf59.27.100".to_string());
    });
}

#[tokio::test(flavor = "current_thread")]
async fn the_stats_api_describes_the_live_streams_and_the_server() {
    let server = Server::start(Options::default());
    let claim = server.publish("stats");
    test_file_media(&claim.stream);
    push_segment(&claim.stream, ts_bytes(10, 0));
    push_segment(&claim.stream, ts_bytes(10, 1));
    claim.stream.add_bytes_in(250_000);
    // Two players fetch the playlist, one of them twice and one through a proxy.
    server
        .call_from(
            "192.0.2.1:1000",
            "GET",
            "/live/stats/index.m3u8",
            &[("user-agent", "a")],
            Body::empty(),
        )
        .await;
    server
        .call_from(
            "192.0.2.1:1001",
            "GET",
            "/live/stats/index.m3u8",
            &[("user-agent", "a")],
            Body::empty(),
        )
        .await;
    server
        .call_from(
            "10.0.0.1:1000",
            "GET",
            "/live/stats/index.m3u8",
            &[
                ("user-agent", "a"),
                ("x-forwarded-for", "198.51.100.7, 10.0.0.1"),
            ],
            Body::empty(),
        )
        .await;
    // A stream without a publisher is not listed.
    let ended = server.publish("ended");
    server.registry.release(&ended.stream, ended.publisher.id);

    let list = server.get("/api/streams").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let list = list.json();
    let streams = list["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{list}");
    assert_eq!(streams[0]["name"], "stats");

    let one = server.get("/api/streams/stats").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.header("content-type"), Some("application/json"));
    let s = one.json();
    assert_eq!(s["name"], "stats");
    assert_eq!(s["app"], "live");
    assert_eq!(s["playlist"], "/live/stats/index.m3u8");
    assert_eq!(s["ll_playlist"], "/live/stats/llhls.m3u8");
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'), "{s}");
    assert!(s["uptime_s"].as_f64().unwrap() >= 0.0, "{s}");
    assert_eq!(s["client"], "127.0.0.1:40000");
    assert_eq!(s["video"]["codec"], "avc1.64001E");
    assert_eq!(s["video"]["profile"], "High");
    assert_eq!(s["video"]["level"], "3.0");
    assert_eq!(
        (s["video"]["width"].as_u64(), s["video"]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(s["video"]["frame_rate"].as_f64(), Some(30.0));
    assert_eq!(s["audio"]["codec"], "mp4a.40.2");
    assert_eq!(s["audio"]["sample_rate"], 48000);
    assert_eq!(s["audio"]["channels"], 2);
    assert_eq!(s["encoder"], "Lavf59.27.100");
    assert_eq!(s["bytes_in"], 250_000);
    // Not measured yet: the measuring window closes every 2 s (the sweep does it).
    assert_eq!(s["bitrate_kbps"], 0);
    assert_eq!(s["keyframe_interval_s"].as_f64(), Some(2.0));
    assert_eq!(s["target_duration"], 2);
    assert_eq!(s["segments"], 2);
    assert_eq!(s["viewers"], 2);

    // The bitrate over a measuring window: 250 kB in 4 s is 500 kb/s.
    let created = Instant::now();
    server.registry.sweep(created + Duration::from_secs(4));
    let kbps = server.get("/api/streams/stats").await.json()["bitrate_kbps"]
        .as_u64()
        .unwrap();
    assert!((490..=500).contains(&kbps), "bitrate {kbps} kb/s");

    let missing = server.get("/api/streams/nosuch").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    assert_eq!(server.get("/api/streams/ended").await.status, 404);
    assert_eq!(server.get("/api/streams/..").await.status, 404);

    // The server's own figures, as its metrics and disk writer count them.
    let m = &server.metrics;
    m.rtmp_connections.set(1);
    m.http_connections.set(3);
    m.rtmp_bytes_in_total.inc_by(123_456);
    m.publishes_total.inc();
    m.reject("unknown_key");
    m.segments_total.inc_by(2);
    m.segment_memory_bytes.set(4096);
    std::fs::create_dir_all(&server.ctx.mediaroot).unwrap();
    std::fs::write(server.ctx.mediaroot.join("some.ts"), vec![0u8; 1000]).unwrap();
    let r = server.get("/api/server").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let srv = r.json();
    assert_eq!(srv["version"], env!("CARGO_PKG_VERSION"));
    assert!(srv["uptime_s"].as_f64().unwrap() >= 5.0, "{srv}");
    assert!(srv["started_at"].as_str().unwrap().ends_with('Z'), "{srv}");
    assert_eq!(srv["streams"], 1);
    assert_eq!(srv["connections"]["rtmp"], 1);
    assert_eq!(srv["connections"]["http"], 3);
    assert_eq!(srv["bytes"]["in"], 123_456);
    assert_eq!(
        srv["bytes"]["out"].as_u64(),
        Some(m.http_bytes_out_total.get())
    );
    assert!(srv["bytes"]["out"].as_u64().unwrap() > 0);
    assert_eq!(srv["publishes"]["accepted"], 1);
    assert_eq!(srv["publishes"]["rejected"]["unknown_key"], 1);
    assert_eq!(srv["publishes"]["rejected"]["malformed_key"], 0);
    assert_eq!(srv["segments"], 2);
    assert_eq!(srv["segment_memory_bytes"], 4096);
    let disk = &srv["disk"];
    assert_eq!(
        disk["media_root"],
        server.ctx.mediaroot.display().to_string()
    );
    assert!(disk["bytes_used"].as_u64().unwrap() >= 1000, "{srv}");
    assert_eq!(disk["errors"], 0);
    assert!(disk["queue"].is_u64() && disk["dropped"].is_u64());
    // The disk writer wrote the two segments and their playlists.
    let written = wait_until(|| server.ctx.disk_stats.writes() >= 4).await;
    assert!(
        written,
        "the disk writer wrote {}",
        server.ctx.disk_stats.writes()
    );
    let srv = server.get("/api/server").await.json();
    assert!(srv["disk"]["writes"].as_u64().unwrap() >= 4, "{srv}");
    assert!(srv["disk"]["bytes_written"].as_u64().unwrap() > 0, "{srv}");
}

/// Moves the paused clock on by `by`, letting every task that is due run. (The disk
/// writer's thread keeps the runtime from advancing a paused clock by itself.)
async fn advance(by: Duration) {
    tokio::time::advance(by).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Sends `GET uri` on a task of its own, so that the test can watch it being held.
fn spawn_get(server: &Arc<Server>, uri: &str) -> tokio::task::JoinHandle<Reply> {
    let server = server.clone();
    let uri = uri.to_string();
    tokio::spawn(async move { server.get(&uri).await })
}

/// [`spawn_get`], run until it waits.
async fn held_get(server: &Arc<Server>, uri: &str) -> tokio::task::JoinHandle<Reply> {
    let held = spawn_get(server, uri);
    advance(Duration::ZERO).await;
    assert!(!held.is_finished(), "{uri}: answered at once");
    held
}

/// Asserts that a held request is answered 503 after three target durations (6 s), not
/// before.
async fn assert_given_up(server: &Arc<Server>, uri: &str) {
    let held = held_get(server, uri).await;
    advance(Duration::from_millis(5_900)).await;
    assert!(!held.is_finished(), "{uri}: given up before 6 s");
    advance(Duration::from_millis(200)).await;
    assert!(held.is_finished(), "{uri}: still held after 6 s");
    let r = held.await.unwrap();
    assert_eq!(r.status, 503, "{uri}");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}

/// Polls `cond` every 10 ms for up to 30 s.
async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..3000 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_are_prometheus_text_and_health_endpoints_answer() {
    let server = Server::start(Options::default());
    server.metrics.streams_live.set(1);
    server.metrics.reject("malformed_key");
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    let mut names = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        names.push(name.to_string());
    }
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for expected in [
        "rtmp_server_rtmp_connections",
        "rtmp_server_http_connections",
        "rtmp_server_rtmp_bytes_in_total",
        "rtmp_server_http_bytes_out_total",
        "rtmp_server_streams_live",
        "rtmp_server_segments_total",
        "rtmp_server_disk_errors_total",
        "rtmp_server_segment_publish_seconds_bucket",
        "rtmp_server_stream_service_seconds_count",
        "rtmp_server_publishes_rejected_total",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing:\n{text}"
        );
    }
    assert!(text.contains("rtmp_server_streams_live 1"), "{text}");
    assert!(
        text.contains("rtmp_server_publishes_rejected_total{reason=\"malformed_key\"} 1"),
        "{text}"
    );

    let health = server.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), "ok\n");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.text(), "ready\n");
    // The probe leaves nothing behind.
    let left: Vec<_> = std::fs::read_dir(&server.ctx.mediaroot)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A stopping server is not ready, and still alive.
    server.ctx.shutdown.cancel();
    let stopping = server.get("/readyz").await;
    assert_eq!(stopping.status, 503);
    assert_eq!(stopping.text(), "stopping\n");
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[tokio::test(flavor = "current_thread")]
async fn readiness_fails_when_the_media_root_is_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let server = Server::start(Options {
        mediaroot: Some(blocker.join("media")),
        ..Options::default()
    });
    assert_eq!(server.get("/healthz").await.status, 200);
    let r = server.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("media root"), "{}", r.text());
}

/// A stream whose Low-Latency window has one complete segment of four parts and one part
/// of the next (Media Sequence Number 1).
fn low_latency_stream(server: &Server, key: &str) -> Arc<Stream> {
    let claim = server.publish(key);
    let stream = claim.stream;
    let part = |n: u8| CmafEvent::Part {
        data: Bytes::from(vec![n; 100 + usize::from(n)]),
        duration: PART,
        independent: n == 0,
    };
    let mut events = vec![
        CmafEvent::Init(Bytes::from_static(b"ftyp moov")),
        CmafEvent::SegmentStart {
            discontinuity: false,
            independent: true,
        },
    ];
    events.extend((0..4).map(part));
    events.push(CmafEvent::SegmentEnd {
        duration: Duration90k::from_millis(2000),
        target_duration: 2,
    });
    events.push(CmafEvent::SegmentStart {
        discontinuity: false,
        independent: true,
    });
    events.push(part(10));
    push_cmaf(&stream, events);
    stream
}

/// Hands CMAF events to the stream's Low-Latency window, as the CMAF output does.
fn push_cmaf(stream: &Stream, events: Vec<CmafEvent>) {
    let window = stream.cmaf.as_ref().expect("a CMAF window");
    window.update(|w, actions| {
        w.push(events, Instant::now(), SystemTime::now(), actions);
        stream.set_position(w.position());
    });
}

#[tokio::test(flavor = "current_thread")]
async fn low_latency_requests_with_bad_directives_are_refused() {
    let server = Server::start(Options::default());
    low_latency_stream(&server, "ll");
    let ok = server.get("/live/ll/llhls.m3u8").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    for query in [
        "_HLS_part=1",
        "_HLS_msn=x",
        "_HLS_msn=-1",
        "_HLS_msn=1&_HLS_msn=2",
        "_HLS_msn=",
        "_HLS_skip=NO",
        "_HLS_msn=99999999999999999999",
        "_HLS_msn=%zz",
        // More than two segments past the last one.
        "_HLS_msn=3",
    ] {
        let r = server.get(&format!("/live/ll/llhls.m3u8?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{query}");
        assert!(r.text().ends_with('\n') && r.text().len() > 1, "{query}");
    }
    // The same directives on a stream without a Low-Latency window, or none, are refused
    // before anything is looked up.
    assert_eq!(
        server
            .get("/live/nosuch/llhls.m3u8?_HLS_part=1")
            .await
            .status,
        400
    );
    // Unknown parameters are ignored.
    assert_eq!(server.get("/live/ll/llhls.m3u8?foo=bar").await.status, 200);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_blocking_request_is_held_until_its_part_exists_and_given_up_after_three_target_durations()
 {
    let server = Arc::new(Server::start(Options::default()));
    let stream = low_latency_stream(&server, "block");

    // Part 0 of segment 1 exists: answered at once, cacheable for as long as segments stay.
    let now = server
        .get("/live/block/llhls.m3u8?_HLS_msn=1&_HLS_part=0")
        .await;
    assert_eq!(now.status, 200, "{}", now.text());
    assert_eq!(now.header("cache-control"), Some("public, max-age=6"));

    // Part 1 does not exist yet: held until it does.
    let waiting = held_get(&server, "/live/block/llhls.m3u8?_HLS_msn=1&_HLS_part=1").await;
    advance(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered before the part existed");
    push_cmaf(
        &stream,
        vec![CmafEvent::Part {
            data: Bytes::from_static(b"part 1 of segment 1"),
            duration: PART,
            independent: false,
        }],
    );
    advance(Duration::ZERO).await;
    assert!(waiting.is_finished(), "not answered once the part existed");
    let answered = waiting.await.unwrap();
    assert_eq!(answered.status, 200);
    assert_eq!(answered.header("cache-control"), Some("public, max-age=6"));
    let parts = answered
        .text()
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .count();
    assert_eq!(
        parts,
        6,
        "four parts of segment 0, two of 1:\n{}",
        answered.text()
    );

    // Part 2 never comes.
    assert_given_up(&server, "/live/block/llhls.m3u8?_HLS_msn=1&_HLS_part=2").await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cmaf_files_are_served_and_the_hinted_part_is_held_until_it_exists() {
    let server = Arc::new(Server::start(Options::default()));
    let stream = low_latency_stream(&server, "cmaf");
    let playlist = server.get("/live/cmaf/llhls.m3u8").await.text();

    let init = tag_uri(&playlist, "#EXT-X-MAP:").expect("EXT-X-MAP");
    let r = server.get(&format!("/live/cmaf/{init}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.body, Bytes::from_static(b"ftyp moov"));

    // The complete segment: its parts' bytes in order, with their total length.
    let segment = uris(&playlist).into_iter().next().expect("a segment");
    let r = server.get(&format!("/live/cmaf/{segment}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let expected: Vec<u8> = (0..4u8)
        .flat_map(|n| vec![n; 100 + usize::from(n)])
        .collect();
    assert_eq!(r.body, expected);
    assert_eq!(
        r.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    let head = server
        .call("HEAD", &format!("/live/cmaf/{segment}"), &[])
        .await;
    assert_eq!(head.header("content-length"), r.header("content-length"));
    assert!(head.body.is_empty());

    // A listed part.
    let part = tag_uri(&playlist, "#EXT-X-PART:").expect("EXT-X-PART");
    let r = server.get(&format!("/live/cmaf/{part}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, vec![10u8; 110]);

    // The hinted part: held until it exists, then its bytes.
    let hinted = tag_uri(&playlist, "#EXT-X-PRELOAD-HINT:").expect("a preload hint");
    let waiting = held_get(&server, &format!("/live/cmaf/{hinted}")).await;
    advance(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered before the part existed");
    push_cmaf(
        &stream,
        vec![CmafEvent::Part {
            data: Bytes::from_static(b"the hinted part"),
            duration: PART,
            independent: false,
        }],
    );
    advance(Duration::ZERO).await;
    assert!(waiting.is_finished(), "not answered once the part existed");
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.body, Bytes::from_static(b"the hinted part"));

    // The segment ends after that part: the request held for the next hint is answered
    // with the next segment's first part, not refused.
    let playlist = server.get("/live/cmaf/llhls.m3u8").await.text();
    let hinted = tag_uri(&playlist, "#EXT-X-PRELOAD-HINT:").expect("a preload hint");
    let waiting = held_get(&server, &format!("/live/cmaf/{hinted}")).await;
    push_cmaf(
        &stream,
        vec![
            CmafEvent::SegmentEnd {
                duration: Duration90k::from_millis(1000),
                target_duration: 2,
            },
            CmafEvent::SegmentStart {
                discontinuity: false,
                independent: true,
            },
        ],
    );
    advance(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered at the segment's end");
    let playlist = server.get("/live/cmaf/llhls.m3u8").await.text();
    assert_eq!(
        tag_uri(&playlist, "#EXT-X-PRELOAD-HINT:"),
        Some(hinted.clone()),
        "{playlist}"
    );
    push_cmaf(
        &stream,
        vec![CmafEvent::Part {
            data: Bytes::from_static(b"the next segment's first part"),
            duration: PART,
            independent: true,
        }],
    );
    advance(Duration::ZERO).await;
    assert!(waiting.is_finished(), "not answered once the part existed");
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, Bytes::from_static(b"the next segment's first part"));

    // A part that is neither listed nor hinted is not found at once; so is one the
    // stream will never have.
    let playlist = server.get("/live/cmaf/llhls.m3u8").await.text();
    let hinted = tag_uri(&playlist, "#EXT-X-PRELOAD-HINT:").expect("a preload hint");
    let (stem, number) = hinted
        .strip_suffix(".m4s")
        .and_then(|s| s.rsplit_once("-p"))
        .expect("a part name");
    let number: u64 = number.parse().expect("a part number");
    let beyond = format!("{stem}-p{}.m4s", number + 1);
    assert_eq!(
        server.get(&format!("/live/cmaf/{beyond}")).await.status,
        404
    );
    assert_eq!(server.get("/live/cmaf/nosuch-p9.m4s").await.status, 404);
    // The hinted part, when it does not come, is given up on after three target durations.
    assert_given_up(&server, &format!("/live/cmaf/{hinted}")).await;
}

/// The dashboard: the page at `/` and `/dashboard` (open, `no-cache`, a strict
/// Content-Security-Policy), every asset it names served by content hash as immutable with
/// its type, other asset names 404, and the stream routes beside it unchanged.
#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_page_and_its_content_named_assets_are_served() {
    let server = Server::start(Options::default());
    let claim = server.publish("assets");
    push_segment(&claim.stream, ts_bytes(40, 1));

    let page = server.get("/dashboard").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-"), "{csp}");
    let root = server.get("/").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.body, page.body);

    let html = page.text();
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/dashboard/assets/"))
        .collect();
    assert_eq!(assets.len(), 4, "{html}");
    for (path, wanted) in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("hls.light.min.js", "text/javascript; charset=utf-8"),
        ("hls-js-license.txt", "text/plain; charset=utf-8"),
    ] {
        let (stem, ext) = path.rsplit_once('.').expect("an extension");
        let url = rtmp_server::dashboard::asset_path(stem, ext).expect("an asset");
        assert!(assets.contains(&url.as_str()), "{url} not in the page");
        let name = url.rsplit('/').next().expect("a name");
        let hash = &name[stem.len() + 1..name.len() - ext.len() - 1];
        assert_eq!(hash.len(), 16, "{name}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        let r = server.get(&url).await;
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(r.header("content-type"), Some(wanted), "{url}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let digest = ring::digest::digest(&ring::digest::SHA256, &r.body);
        let full: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            full.starts_with(hash),
            "{url}: the name is not the content's hash"
        );
    }
    for unknown in [
        "/dashboard/assets/dashboard.0000000000000000.js",
        "/dashboard/assets/dashboard.js",
        "/dashboard/assets/..%2Fmod.rs",
    ] {
        assert_eq!(server.get(unknown).await.status, 404, "{unknown}");
    }
    // The stream routes around the dashboard's are as before.
    assert_eq!(server.get("/live/assets/index.m3u8").await.status, 200);
}
