//! The ingest layer in process: `Ingest::publish` and `Publish::media` driven with the tag
//! bodies of the `testdata/` FLV files, as the RTMP connection hands them over, on a
//! current-thread runtime, with a real registry, the real outputs (TS and CMAF) writing to a
//! temporary media root, and a real HTTP stub of the stream-service and webhook receivers.
//! No RTMP and no server binary: what is checked is the layer's own logic (segments in the
//! windows, takeover, refusals and their reasons, metrics, webhooks, key re-checks).

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmp_server::auth::{KeyChecker, http_client};
use rtmp_server::config::{AuthConfig, HlsConfig};
use rtmp_server::flv::demux::TagKind;
use rtmp_server::flv::file::FlvTag;
use rtmp_server::flv::tag::TagType;
use rtmp_server::hls::disk::DiskWriter;
use rtmp_server::hooks::Hooks;
use rtmp_server::hub::key::StreamKey;
use rtmp_server::hub::registry::Registry;
use rtmp_server::hub::stream::Stream;
use rtmp_server::ingest::failures::FailureLimit;
use rtmp_server::ingest::outputs::{OutputSettings, Outputs};
use rtmp_server::ingest::{Arrival, Ingest, IngestSettings, Publish, Refusal, StreamMetadata};
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::metrics::Metrics;
use rtmp_server::rtmp::amf0::{Decoder, Value};

use common::stub::{Answer, StubService};
use common::{flv_tags, testdata};

/// The publisher's address the layer is told.
const PEER: &str = "127.0.0.1:40000";

/// Generous: the machine is shared.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `f` on a current-thread runtime, as the ingest runs beside its connections.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// What the server's configuration would give the layer.
struct Setup {
    auth: AuthConfig,
    on_publish: String,
    on_unpublish: String,
    hls: HlsConfig,
    takeover: bool,
    recheck: Option<Duration>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            auth: AuthConfig::default(),
            on_publish: String::new(),
            on_unpublish: String::new(),
            // Both outputs; every segment stays listed.
            hls: HlsConfig {
                cmaf: true,
                list_size: 100,
                ..HlsConfig::default()
            },
            takeover: true,
            recheck: None,
        }
    }
}

/// The ingest layer with everything it is handed.
struct Harness {
    ingest: Ingest,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    media_root: tempfile::TempDir,
}

impl Harness {
    /// Must be called on the runtime: the disk writer, the webhook sender and the outputs
    /// run on it.
    fn start(setup: Setup) -> Harness {
        let media_root = tempfile::tempdir().expect("temp dir");
        let client = http_client(Duration::from_secs(setup.auth.timeout)).expect("a client");
        let checker = KeyChecker::new(&setup.auth, client.clone()).expect("a checker");
        let urls = rtmp_server::hooks::HookUrls {
            on_publish: setup.on_publish.clone(),
            on_unpublish: setup.on_unpublish.clone(),
            ..Default::default()
        };
        let (hooks, _sender) = Hooks::start(urls, client);
        let (disk, _writer) = DiskWriter::spawn(media_root.path().to_path_buf(), 1024);
        let metrics = Arc::new(Metrics::default());
        let outputs = Outputs::new(
            OutputSettings::from_config(&setup.hls),
            disk,
            None,
            metrics.clone(),
        );
        let registry = Arc::new(Registry::new(
            setup.takeover,
            Box::new(move |app, name, key| outputs.create(app, name, key)),
        ));
        let ingest = Ingest::new(
            IngestSettings {
                app: "live".to_string(),
                playback_id: setup.auth.playback_id,
                recheck: setup.recheck,
                track_limits: Default::default(),
                cmaf: true,
                failure_limit: FailureLimit::from_config(&setup.auth),
                relays: rtmp_server::relay::Relays::new(Vec::new(), metrics.clone()),
                record: false,
                takeover: setup.takeover,
                cluster: None,
                thumbnails: false,
            },
            checker,
            registry.clone(),
            hooks,
            metrics.clone(),
        );
        Harness {
            ingest,
            registry,
            metrics,
            media_root,
        }
    }

    async fn publish(&self, key: &str) -> Result<Publish, Refusal> {
        self.publish_from(key, PEER).await
    }

    /// A publish from the client at `peer`.
    async fn publish_from(&self, key: &str, peer: &str) -> Result<Publish, Refusal> {
        let peer: SocketAddr = peer.parse().unwrap();
        self.ingest.publish(key, "live", peer).await
    }

    fn stream(&self, name: &str) -> Arc<Stream> {
        self.registry.get("live", name).expect("the stream exists")
    }
}

/// What the RTMP layer makes of an onMetaData script tag.
fn metadata(body: &[u8]) -> Option<StreamMetadata> {
    let values = Decoder::decode_all(body).ok()?;
    let properties = match values.get(1)? {
        Value::EcmaArray(p) | Value::Object(p) => p,
        _ => return None,
    };
    let get = |name: &str| properties.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    Some(StreamMetadata {
        video: get("videocodecid").is_some(),
        audio: get("audiocodecid").is_some(),
        encoder: get("encoder").and_then(|v| v.as_str()).map(str::to_string),
        frame_rate: match get("framerate") {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        },
        audio_labels: Vec::new(),
    })
}

/// Hands `tags` to the publish as the RTMP layer does, their timestamps moved by
/// `offset_ms`, letting the outputs run after each. Returns the bytes handed over.
async fn feed(publish: &mut Publish, tags: &[FlvTag], offset_ms: u32) -> Result<u64, Refusal> {
    let mut bytes = 0;
    for tag in tags {
        let at = RtmpTimestamp(tag.timestamp.0 + offset_ms);
        match tag.tag_type {
            TagType::ScriptData => {
                if let Some(m) = metadata(&tag.body) {
                    publish.metadata(m);
                }
            }
            TagType::Audio | TagType::Video => {
                let kind = TagKind::of(tag.tag_type).expect("a media tag");
                bytes += tag.body.len() as u64;
                publish.media(kind, at, tag.body.clone(), Arrival::now())?;
            }
        }
        tokio::task::yield_now().await;
    }
    Ok(bytes)
}

/// Polls `cond` every 10 ms until it holds or [`TIMEOUT`] passes.
async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Waits until both of the stream's windows have ended (EXT-X-ENDLIST).
async fn wait_ended(stream: &Stream) {
    let ended = wait_until(|| {
        stream.ts.as_ref().unwrap().read(|w| w.is_ended())
            && stream.cmaf.as_ref().unwrap().read(|w| w.is_ended())
    })
    .await;
    assert!(ended, "the windows of {} did not end", stream.name);
}

/// The classic playlist's text.
fn playlist(stream: &Stream) -> String {
    let snapshot = stream.playlist().expect("a playlist");
    String::from_utf8(snapshot.text.to_vec()).unwrap()
}

/// The segment URIs of a playlist, each with whether a discontinuity precedes it.
fn entries(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut discontinuity = false;
    for line in text.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), std::mem::take(&mut discontinuity)));
        }
    }
    out
}

#[test]
fn a_publish_fills_both_windows_and_its_end_closes_them() {
    block_on(async {
        let h = Harness::start(Setup::default());
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let mut publish = h.publish("frames").await.expect("accepted");
        assert_eq!(publish.name(), "frames");
        assert_eq!(h.metrics.publishes_total.get(), 1);
        assert_eq!(h.metrics.streams_live.get(), 1);
        let stream = h.stream("frames");
        assert!(stream.publisher().is_some());

        let bytes = feed(&mut publish, &tags, 0)
            .await
            .expect("the file is taken");
        let listed = wait_until(|| stream.segments_produced() >= 4).await;
        assert!(listed, "{} segments", stream.segments_produced());
        // What the stats API reports comes from the media itself and its metadata.
        let media = stream.media();
        let video = media.video.expect("video info");
        assert_eq!(video.codec, "avc1.64001E");
        assert_eq!((video.width, video.height), (Some(640), Some(360)));
        let audio = media.audio.expect("audio info");
        assert_eq!(
            (audio.codec.as_str(), audio.sample_rate, audio.channels),
            ("mp4a.40.2", Some(48_000), Some(2))
        );
        assert_eq!(media.frame_rate, Some(30.0));
        assert_eq!(media.encoder.as_deref(), Some("Lavf59.27.100"));
        assert_eq!(media.keyframe_interval.map(|d| d.as_secs_f64()), Some(2.0));
        assert_eq!(
            stream.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
            bytes
        );

        publish.stop();
        wait_ended(&stream).await;
        assert!(stream.publisher().is_none());
        assert_eq!(h.metrics.streams_live.get(), 0);
        assert!(h.registry.live_streams().is_empty());

        // 10 s of media in 2 s segments, every one listed with its bytes in memory.
        let text = playlist(&stream);
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
        let listed = entries(&text);
        assert_eq!(listed.len(), 5, "{text}");
        assert!(listed.iter().all(|(_, d)| !d), "{text}");
        for (name, _) in &listed {
            let segment = stream.segment(name).expect("served from memory");
            assert_eq!(segment.data.len() % 188, 0, "{name}");
            assert_eq!(segment.data[0], 0x47, "{name}");
        }
        assert_eq!(stream.target_duration(), Some(2));
        assert_eq!(h.metrics.segments_total.get(), 5);
        assert_eq!(h.metrics.media_events_lost_total.get(), 0);
        // The Low-Latency window has the same segments, with their parts.
        let ll = stream.cmaf.as_ref().unwrap();
        assert_eq!(ll.read(|w| w.segments_produced()), 5);
        let ll_text = ll
            .read(|w| w.playlist(false))
            .expect("a Low-Latency playlist");
        let ll_text = String::from_utf8(ll_text.text.to_vec()).unwrap();
        assert!(ll_text.contains("#EXT-X-ENDLIST"), "{ll_text}");
        assert!(ll_text.contains("#EXT-X-PART:"), "{ll_text}");

        // The disk writer follows: both playlists, ended, in the stream's folder.
        let dir = h.media_root.path().join("live").join("frames");
        let on_disk = wait_until(|| {
            ["index.m3u8", "llhls.m3u8"].iter().all(|name| {
                std::fs::read_to_string(dir.join(name)).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
            })
        })
        .await;
        assert!(on_disk, "no ended playlists in {}", dir.display());
    });
}

#[test]
fn a_second_publish_takes_the_stream_over_and_the_playlist_continues_after_a_discontinuity() {
    block_on(async {
        let h = Harness::start(Setup::default());
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let first_half: Vec<FlvTag> = tags
            .iter()
            .filter(|t| t.timestamp.0 < 5_000)
            .cloned()
            .collect();
        let mut first = h.publish("takeover").await.expect("accepted");
        feed(&mut first, &first_half, 0).await.expect("taken");
        let stream = h.stream("takeover");
        assert!(wait_until(|| stream.segments_produced() >= 2).await);

        // A new connection publishes the key while the first is still there (an encoder
        // that reconnected before its old connection was seen to close).
        let mut second = h.publish("takeover").await.expect("taken over");
        assert!(first.stop_token().is_cancelled(), "the first was not told");
        assert!(!second.stop_token().is_cancelled());
        // The first connection ends as it is told; its end no longer reaches the outputs.
        first.stop();
        assert_eq!(h.metrics.publishes_total.get(), 2);
        assert!(stream.publisher().is_some(), "the second still publishes");

        // The encoder starts again with its clock at 0.
        feed(&mut second, &tags, 0).await.expect("taken");
        second.stop();
        wait_ended(&stream).await;
        let text = playlist(&stream);
        let listed = entries(&text);
        let breaks: Vec<usize> = (0..listed.len()).filter(|&i| listed[i].1).collect();
        assert_eq!(breaks.len(), 1, "{text}");
        assert!(
            breaks[0] >= 2,
            "the first publisher's segments come first:\n{text}"
        );
        assert_eq!(
            listed.len() - breaks[0],
            5,
            "the second publish whole:\n{text}"
        );
        let ll = stream
            .cmaf
            .as_ref()
            .unwrap()
            .read(|w| w.playlist(false))
            .unwrap();
        let ll = String::from_utf8(ll.text.to_vec()).unwrap();
        assert!(ll.contains("#EXT-X-DISCONTINUITY"), "{ll}");
        assert_eq!(h.metrics.streams_live.get(), 0);
        assert_eq!(h.metrics.media_events_lost_total.get(), 0);
    });
}

#[test]
fn with_takeover_off_a_second_publish_is_refused_and_the_first_goes_on() {
    block_on(async {
        let h = Harness::start(Setup {
            takeover: false,
            ..Setup::default()
        });
        let first = h.publish("busy").await.expect("accepted");
        let refusal = h.publish("busy").await.err().expect("refused");
        assert_eq!(refusal.reason, "already_publishing");
        assert_eq!(refusal.code, "NetStream.Publish.BadName");
        assert!(
            refusal.description.contains("already being published"),
            "{refusal:?}"
        );
        assert!(!first.stop_token().is_cancelled());
        assert_eq!(h.metrics.rejected("already_publishing"), 1);
        assert_eq!(h.metrics.publishes_total.get(), 1);
        assert_eq!(h.metrics.streams_live.get(), 1);
        assert_eq!(h.registry.live_streams().len(), 1);
    });
}

#[test]
fn malformed_keys_and_unsupported_codecs_are_refused_by_name() {
    let stub = StubService::start();
    stub.set("old", Answer::json(200, "{}"));
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        let long = "k".repeat(200);
        for key in [".hidden", "a!b", &long, "../escape", "", "a/b", "k\u{e9}y"] {
            let refusal = h.publish(key).await.err().expect("refused");
            assert_eq!(refusal.reason, "malformed_key", "{key:?}");
            assert_eq!(refusal.code, "NetStream.Publish.BadName", "{key:?}");
            assert!(refusal.description.contains("stream key"), "{refusal:?}");
        }
        assert!(
            stub.seen().is_empty(),
            "a malformed key reached the stream-service"
        );
        assert_eq!(h.metrics.rejected("malformed_key"), 7);
        assert!(h.registry.streams().is_empty());

        // Sorenson H.263: accepted as a key, refused by its first video tag.
        let mut publish = h.publish("old").await.expect("the key is good");
        let tags = flv_tags(&testdata("flv/sorenson_h263.flv"));
        let refusal = feed(&mut publish, &tags, 0).await.expect_err("refused");
        assert_eq!(refusal.reason, "unsupported_codec");
        assert_eq!(refusal.code, "NetStream.Publish.Failed");
        assert!(refusal.description.contains("Sorenson"), "{refusal:?}");
        assert!(refusal.description.contains("H.264"), "{refusal:?}");
        assert_eq!(h.metrics.rejected("unsupported_codec"), 1);
        drop(publish);
        let stream = h.stream("old");
        assert!(wait_until(|| stream.publisher().is_none()).await);
        assert!(stream.playlist().is_none(), "a playlist appeared");
        assert_eq!(stream.segments_produced(), 0);
    });
}

#[test]
fn the_stream_service_decides_who_publishes_and_each_refusal_says_why() {
    let stub = StubService::start();
    stub.set("good", Answer::json(200, r#"{"key":"good","active":true}"#));
    stub.set(
        "inactive",
        Answer::json(200, r#"{"key":"inactive","isActive":false}"#),
    );
    stub.set(
        "expired",
        Answer::json(200, r#"{"expiresAt":"2020-01-01T00:00:00Z"}"#),
    );
    stub.set("forbidden", Answer::json(403, "{}"));
    stub.set("broken", Answer::json(500, r#"{"error":"db down"}"#));
    stub.set("notjson", Answer::json(200, "<html>maintenance</html>"));
    stub.set(
        "slow",
        Answer {
            delay: Duration::from_secs(5),
            ..Answer::json(200, "{}")
        },
    );
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                token: "s3cret".to_string(),
                timeout: 1,
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        let good = h.publish("good").await.expect("accepted");
        let asked = stub.seen();
        assert_eq!(asked[0].path, "/api/streams/good");
        assert_eq!(asked[0].authorization.as_deref(), Some("Bearer s3cret"));
        drop(good);

        let unauthorized = "NetStream.Publish.Unauthorized";
        for (key, reason, description) in [
            (
                "nosuchkey",
                "unknown_key",
                "stream key unknown to the stream-service (HTTP 404)",
            ),
            (
                "forbidden",
                "unknown_key",
                "stream key unknown to the stream-service (HTTP 403)",
            ),
            ("inactive", "inactive_key", "stream key is inactive"),
            ("expired", "expired_key", "stream key expired"),
            (
                "broken",
                "service_unavailable",
                "stream-service unavailable: HTTP 500",
            ),
            (
                "notjson",
                "service_unavailable",
                "stream-service unavailable: answer is not JSON",
            ),
        ] {
            let refusal = h.publish(key).await.err().expect("refused");
            assert_eq!(
                (refusal.reason, refusal.code),
                (reason, unauthorized),
                "{key}"
            );
            assert!(
                refusal.description.starts_with(description),
                "{key}: {refusal:?}"
            );
        }
        // The service answers "slow" yes after 5 s; the 1 s time-out refuses it first.
        let refusal = h.publish("slow").await.err().expect("refused");
        assert_eq!(refusal.reason, "service_unavailable");
        assert!(refusal.description.contains("timed out"), "{refusal:?}");
        assert_eq!(h.metrics.rejected("unknown_key"), 2);
        assert_eq!(h.metrics.rejected("inactive_key"), 1);
        assert_eq!(h.metrics.rejected("expired_key"), 1);
        assert_eq!(h.metrics.rejected("service_unavailable"), 3);
        assert_eq!(h.metrics.publishes_total.get(), 1);
        // Every check was timed.
        let text = {
            let mut text = String::new();
            let registry = h.metrics.registry(Default::default());
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            text
        };
        assert!(
            text.contains("rtmp_server_stream_service_seconds_count 8"),
            "{text}"
        );
        // Only accepted keys claimed a stream.
        assert_eq!(h.registry.streams().len(), 1);
    });
}

#[test]
fn an_unreachable_stream_service_refuses_every_key() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: url,
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        let refusal = h.publish("anykey").await.err().expect("refused");
        assert_eq!(refusal.reason, "service_unavailable");
        assert_eq!(refusal.code, "NetStream.Publish.Unauthorized");
        assert!(
            refusal
                .description
                .starts_with("stream-service unavailable: cannot connect"),
            "{refusal:?}"
        );
        assert_eq!(h.metrics.rejected("service_unavailable"), 1);
    });
}

#[test]
fn an_address_that_fails_too_often_is_refused_before_the_stream_service_is_asked() {
    let stub = StubService::start();
    stub.set("good", Answer::json(200, "{}"));
    stub.set("broken", Answer::json(500, "{}"));
    stub.set("badtoken", Answer::json(401, "{}"));
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                max_failures: 3,
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        let reason = |r: Result<Publish, Refusal>| r.err().expect("refused").reason;
        // What is not the client's doing is not counted: the service down, or refusing this
        // server's own token.
        for _ in 0..4 {
            assert_eq!(reason(h.publish("broken").await), "service_unavailable");
            assert_eq!(reason(h.publish("badtoken").await), "unknown_key");
        }
        // Below the limit, a good key publishes and clears the count.
        for _ in 0..2 {
            assert_eq!(reason(h.publish("nosuchkey").await), "unknown_key");
        }
        h.publish("good").await.expect("accepted").stop();
        for _ in 0..2 {
            assert_eq!(reason(h.publish("nosuchkey").await), "unknown_key");
        }
        assert_eq!(h.metrics.publish_cooldowns_total.get(), 0);
        // The third failure in the window, a malformed key, reaches the limit.
        assert_eq!(reason(h.publish(".hidden").await), "malformed_key");
        assert_eq!(h.metrics.publish_cooldowns_total.get(), 1);
        let asked = stub.seen().len();
        for key in ["nosuchkey", "good", ".hidden"] {
            let refusal = h.publish(key).await.err().expect("refused");
            assert_eq!(refusal.reason, "rate_limited", "{key}");
            assert_eq!(refusal.code, "NetStream.Publish.Unauthorized");
            assert!(
                refusal.description.contains("too many failed publishes"),
                "{refusal:?}"
            );
        }
        assert_eq!(
            stub.seen().len(),
            asked,
            "a refused address reached the service"
        );
        assert_eq!(h.metrics.rejected("rate_limited"), 3);
        assert_eq!(h.metrics.publish_cooldowns_total.get(), 1);
        // Another address is not affected; IPv6 clients count by /64.
        h.publish_from("good", "127.0.0.2:40000")
            .await
            .expect("another address publishes")
            .stop();
        for n in 1..=3 {
            let peer = format!("[2001:db8:1:2::{n}]:40000");
            assert_eq!(
                reason(h.publish_from("nosuchkey", &peer).await),
                "unknown_key"
            );
        }
        let refusal = h.publish_from("good", "[2001:db8:1:2::99]:1").await;
        assert_eq!(reason(refusal), "rate_limited");
        h.publish_from("good", "[2001:db8:1:3::1]:1")
            .await
            .expect("another /64 publishes")
            .stop();
        assert_eq!(h.metrics.publish_cooldowns_total.get(), 2);
    });
}

#[test]
fn refusals_are_reused_for_a_while_and_fresh_checks_still_ask() {
    let stub = StubService::start();
    stub.set("inactive", Answer::json(200, r#"{"active":false}"#));
    stub.set("broken", Answer::json(500, "{}"));
    stub.set("badtoken", Answer::json(401, "{}"));
    let asked = |path: &str| {
        stub.seen()
            .iter()
            .filter(|s| s.path == format!("/api/streams/{path}"))
            .count()
    };
    block_on(async {
        let auth = AuthConfig {
            stream_service: stub.url.clone(),
            negative_cache: 60,
            ..AuthConfig::default()
        };
        let client = http_client(Duration::from_secs(auth.timeout)).expect("a client");
        let checker = KeyChecker::new(&auth, client).expect("a checker");
        let key = |k: &str| StreamKey::parse(k).expect("a valid key");
        // A definite no is asked for once, and every later check gets the same answer.
        for k in ["nosuchkey", "inactive"] {
            let first = checker.check(&key(k), false).await.expect_err("refused");
            for _ in 0..20 {
                let again = checker.check(&key(k), false).await.expect_err("refused");
                assert_eq!(again, first);
            }
            assert_eq!(asked(k), 1, "{k}");
        }
        // What says nothing about the key is never reused.
        for k in ["broken", "badtoken"] {
            for _ in 0..3 {
                checker.check(&key(k), false).await.expect_err("refused");
            }
            assert_eq!(asked(k), 3, "{k}");
        }
        // A fresh check (the re-check of a live stream) asks; an acceptance replaces the
        // refusal.
        stub.set("inactive", Answer::json(200, "{}"));
        checker
            .check(&key("inactive"), false)
            .await
            .expect_err("still the cached refusal");
        checker
            .check(&key("inactive"), true)
            .await
            .expect("the service was asked");
        checker
            .check(&key("inactive"), false)
            .await
            .expect("the refusal is forgotten");
        assert_eq!(asked("inactive"), 3);

        // auth.negative_cache = 0 asks every time.
        let auth = AuthConfig {
            negative_cache: 0,
            ..auth
        };
        let client = http_client(Duration::from_secs(auth.timeout)).expect("a client");
        let checker = KeyChecker::new(&auth, client).expect("a checker");
        for _ in 0..3 {
            checker
                .check(&key("other"), false)
                .await
                .expect_err("refused");
        }
        assert_eq!(asked("other"), 3);
    });
}

#[test]
fn positive_answers_are_cached_when_asked() {
    let stub = StubService::start();
    stub.set("cached", Answer::json(200, "{}"));
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                cache: 60,
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        for _ in 0..2 {
            let publish = h.publish("cached").await.expect("accepted");
            publish.stop();
        }
        assert_eq!(stub.seen().len(), 1, "the second publish asked again");
        assert_eq!(h.metrics.publishes_total.get(), 2);
    });
}

#[test]
fn playback_ids_hide_the_publishing_key() {
    let stub = StubService::start();
    stub.set(
        "secretkey",
        Answer::json(200, r#"{"playbackId":"public-1"}"#),
    );
    stub.set("noid", Answer::json(200, "{}"));
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                playback_id: true,
                ..AuthConfig::default()
            },
            ..Setup::default()
        });
        let mut publish = h.publish("secretkey").await.expect("accepted");
        assert_eq!(publish.name(), "public-1");
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let first_segment: Vec<FlvTag> = tags
            .iter()
            .filter(|t| t.timestamp.0 < 2_500)
            .cloned()
            .collect();
        feed(&mut publish, &first_segment, 0).await.expect("taken");
        let stream = h.stream("public-1");
        assert!(wait_until(|| stream.playlist().is_some()).await);
        assert_eq!(stream.key.as_str(), "secretkey");
        assert!(h.registry.get("live", "secretkey").is_none());
        // Files go under the public name only.
        let live = h.media_root.path().join("live");
        assert!(wait_until(|| live.join("public-1").join("index.m3u8").is_file()).await);
        assert!(!live.join("secretkey").exists());

        // Serving under the key when the service gives no id would hand the secret out.
        let refusal = h.publish("noid").await.err().expect("refused");
        assert_eq!(refusal.reason, "no_playback_id");
        assert_eq!(refusal.code, "NetStream.Publish.Unauthorized");
        assert_eq!(h.metrics.rejected("no_playback_id"), 1);
        assert!(h.registry.get("live", "noid").is_none());
    });
}

#[test]
fn webhooks_announce_a_publish_once_playable_then_its_end_in_order() {
    let stub = StubService::start();
    block_on(async {
        let h = Harness::start(Setup {
            on_publish: format!("{}/hooks/publish", stub.url),
            on_unpublish: format!("{}/hooks/unpublish", stub.url),
            ..Setup::default()
        });
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let mut publish = h.publish("hooked").await.expect("accepted");
        // Nothing is announced before the stream is playable: the codecs are not known.
        let metadata_only: Vec<FlvTag> = tags
            .iter()
            .take_while(|t| t.tag_type == TagType::ScriptData)
            .cloned()
            .collect();
        feed(&mut publish, &metadata_only, 0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(stub.hooks().is_empty(), "{:?}", stub.hooks());
        let bytes = feed(&mut publish, &tags, 0).await.expect("taken");
        assert!(
            wait_until(|| !stub.hooks().is_empty()).await,
            "no publish hook"
        );
        publish.stop();
        assert!(
            wait_until(|| stub.hooks().len() >= 2).await,
            "hooks: {:?}",
            stub.hooks()
        );
        let hooks = stub.hooks();
        assert_eq!(hooks.len(), 2, "{hooks:?}");
        let (name, start) = &hooks[0];
        assert_eq!(name, "publish");
        assert_eq!(start["event"], "publish");
        assert_eq!(start["key"], "hooked");
        assert_eq!(start["name"], "hooked");
        assert_eq!(start["app"], "live");
        assert_eq!(start["client"], PEER);
        assert_eq!(start["video"]["codec"], "avc1.64001E");
        assert_eq!(start["video"]["width"], 640);
        assert_eq!(start["video"]["height"], 360);
        assert_eq!(start["audio"]["codec"], "mp4a.40.2");
        assert!(start["started_at"].as_str().unwrap().ends_with('Z'));
        assert!(start.get("stopped_at").is_none(), "{start}");
        let (name, stop) = &hooks[1];
        assert_eq!(name, "unpublish");
        assert_eq!(stop["event"], "unpublish");
        assert_eq!(stop["started_at"], start["started_at"]);
        assert!(stop["stopped_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(stop["bytes"].as_u64(), Some(bytes), "{stop}");
        assert!(stop["duration_s"].as_f64().unwrap() >= 0.0, "{stop}");
    });
}

#[test]
fn a_publish_that_ends_before_its_first_segment_is_announced_with_its_end() {
    let stub = StubService::start();
    block_on(async {
        let h = Harness::start(Setup {
            on_publish: format!("{}/hooks/publish", stub.url),
            on_unpublish: format!("{}/hooks/unpublish", stub.url),
            ..Setup::default()
        });
        // One second of media: shorter than a segment, which only its end closes.
        let tags: Vec<FlvTag> = flv_tags(&testdata("flv/h264_aac.flv"))
            .into_iter()
            .filter(|t| t.timestamp.0 < 1_000)
            .collect();
        let mut publish = h.publish("short").await.expect("accepted");
        feed(&mut publish, &tags, 0).await.expect("taken");
        publish.stop();
        assert!(
            wait_until(|| stub.hooks().len() >= 2).await,
            "hooks: {:?}",
            stub.hooks()
        );
        let names: Vec<String> = stub.hooks().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["publish", "unpublish"]);
        assert_eq!(h.stream("short").segments_produced(), 1);

        // A publish refused by its media was never playable: never announced.
        let mut refused = h.publish("refused").await.expect("accepted");
        let sorenson = flv_tags(&testdata("flv/sorenson_h263.flv"));
        assert!(feed(&mut refused, &sorenson, 0).await.is_err());
        drop(refused);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(stub.hooks().len(), 2, "{:?}", stub.hooks());
    });
}

#[test]
fn a_publish_handed_over_before_its_outputs_run_is_still_announced() {
    let stub = StubService::start();
    block_on(async {
        let h = Harness::start(Setup {
            on_publish: format!("{}/hooks/publish", stub.url),
            on_unpublish: format!("{}/hooks/unpublish", stub.url),
            ..Setup::default()
        });
        // The whole file and the end before the outputs get a turn (a fast sender): they
        // take the publisher's start after it has gone, and still know whose it was.
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let mut publish = h.publish("burst").await.expect("accepted");
        for tag in tags.iter().filter(|t| t.tag_type != TagType::ScriptData) {
            let kind = TagKind::of(tag.tag_type).expect("a media tag");
            publish
                .media(kind, tag.timestamp, tag.body.clone(), Arrival::now())
                .expect("taken");
        }
        publish.stop();
        assert!(
            wait_until(|| stub.hooks().len() >= 2).await,
            "hooks: {:?}",
            stub.hooks()
        );
        let names: Vec<String> = stub.hooks().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["publish", "unpublish"]);
        assert!(h.stream("burst").segments_produced() >= 5);
    });
}

#[test]
fn a_dead_webhook_target_does_not_disturb_the_stream() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    block_on(async {
        let h = Harness::start(Setup {
            on_publish: dead.clone(),
            on_unpublish: dead,
            ..Setup::default()
        });
        let tags = flv_tags(&testdata("flv/h264_aac.flv"));
        let mut publish = h.publish("deadhook").await.expect("accepted");
        feed(&mut publish, &tags, 0).await.expect("taken");
        publish.stop();
        let stream = h.stream("deadhook");
        wait_ended(&stream).await;
        assert_eq!(entries(&playlist(&stream)).len(), 5);
        assert_eq!(h.metrics.media_events_lost_total.get(), 0);
    });
}

#[test]
fn a_key_revoked_while_live_is_stopped_at_a_recheck_and_an_unreachable_service_stops_nothing() {
    let stub = StubService::start();
    stub.set("revoked", Answer::json(200, r#"{"active":true}"#));
    block_on(async {
        let h = Harness::start(Setup {
            auth: AuthConfig {
                stream_service: stub.url.clone(),
                ..AuthConfig::default()
            },
            recheck: Some(Duration::from_millis(100)),
            ..Setup::default()
        });
        let publish = h.publish("revoked").await.expect("accepted");
        let stop = publish.stop_token();
        // Re-checks that still accept, then answers that say nothing about the key (the
        // service is down; 401 is about this server's own token): the stream is kept.
        assert!(wait_until(|| stub.seen().len() >= 3).await, "no re-checks");
        for answer in [
            Answer::json(500, "{}"),
            Answer::json(401, "{}"),
            Answer::json(200, "not json"),
        ] {
            stub.set("revoked", answer);
            let seen = stub.seen().len();
            assert!(wait_until(|| stub.seen().len() >= seen + 2).await);
            assert!(!stop.is_cancelled(), "stopped on {:?}", stub.seen().last());
        }
        assert_eq!(h.metrics.rejected("service_unavailable"), 0);

        stub.set("revoked", Answer::json(200, r#"{"active":false}"#));
        assert!(
            wait_until(|| stop.is_cancelled()).await,
            "the revoked stream kept publishing"
        );
        assert_eq!(h.metrics.rejected("inactive_key"), 1);
        // No more re-checks once stopped.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = stub.seen().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(stub.seen().len(), seen);
        drop(publish);
        assert!(h.registry.live_streams().is_empty());
    });
}
