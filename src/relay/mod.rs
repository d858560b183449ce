//! Restreaming ("relay push"): every live publish sent on, as it comes, to other RTMP and
//! RTMPS servers (YouTube, Twitch, another instance of this server, nginx-rtmp).
//!
//! A stream's targets are the URL templates of `relay.push` and those the stream-service's
//! answer for the key names (`push`), expanded with the publisher's key and the stream's
//! name ([`target`]). Each target is a task of its own on the ingest runtime ([`task`]),
//! started when the publish goes live and ended, with a clean unpublish, when it stops.
//! The task subscribes to the stream's fan-out, connects ([`connect`]: TCP, TLS for
//! `rtmps://`), publishes with the project's RTMP client and sends the stream through the
//! FLV muxer and a bounded queue ([`session`]); when the target refuses or the connection
//! drops it waits ([`backoff`]) and starts again at the stream's last keyframe. Where each
//! target stands ([`status`]) is in the stats API, `/metrics` and the log.
//!
//! Like every output, a relay never holds up the ingest, the HLS outputs or another
//! target: it takes what the fan-out holds at once, a target that reads too slowly skips
//! to the next keyframe and then is reconnected, and a dead one only costs its own retries.

pub mod backoff;
pub mod connect;
pub mod error;
pub mod session;
pub mod status;
pub mod target;
mod task;

use std::sync::{Arc, OnceLock};

use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::hub::stream::{Publisher, Stream};
use crate::metrics::Metrics;
use crate::playback::queue::QueueLimits;
use status::RelayStatus;
use target::{Target, Template};

/// Relay's handle, for the ingest layer. Cheap to clone.
#[derive(Clone)]
pub struct Relays {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// `relay.push`: every stream's targets.
    templates: Vec<Template>,
    queue: QueueLimits,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    /// The TLS client configuration for `rtmps://` targets, made on first use.
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Shared {
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| crate::auth::tls_config().map(Arc::new))
            .clone()
    }
}

impl Relays {
    /// Relays to `templates` (`relay.push`) and to the targets stream-service answers name.
    pub fn new(templates: Vec<Template>, metrics: Arc<Metrics>) -> Relays {
        Relays {
            shared: Arc::new(Shared {
                templates,
                queue: QueueLimits::default(),
                metrics,
                tasks: TaskTracker::new(),
                tls: OnceLock::new(),
            }),
        }
    }

    /// The relay tasks, to wait for at a stop (each ends, unpublishing, once its publish
    /// has ended).
    pub fn tasks(&self) -> TaskTracker {
        self.shared.tasks.clone()
    }

    /// Starts relaying the publish of `publisher` on `stream` to the configured targets and
    /// to `extra` (the stream-service's), each expanded for the stream's key and name. Must
    /// be called on the ingest runtime, before the publish's first media reaches the
    /// fan-out.
    pub fn start(&self, stream: &Arc<Stream>, publisher: &Publisher, extra: &[Template]) {
        let mut targets: Vec<Target> = Vec::new();
        for template in self.shared.templates.iter().chain(extra) {
            match template.expand(stream.key.as_str(), stream.name.as_str()) {
                Ok(target) if targets.contains(&target) => {}
                Ok(target) => targets.push(target),
                // Templates are checked when read; keys and names are URL-safe.
                Err(e) => {
                    warn!(stream = %stream.name, target = %template.redacted(), "relay target not usable: {e}")
                }
            }
        }
        for target in targets {
            let status = Arc::new(RelayStatus::new(
                target.redacted(),
                stream.name.as_str(),
                publisher.id,
                self.shared.metrics.clone(),
            ));
            stream.add_relay(status.clone());
            let task = task::TargetTask {
                target,
                stream: stream.clone(),
                publisher: publisher.id,
                stop: publisher.stop.token(),
                status,
                shared: self.shared.clone(),
                // Subscribed now, before the publish's media: nothing of its end is missed.
                subscription: stream.fanout.subscribe(),
                tracks: None,
                events: Vec::new(),
                ended: false,
            };
            self.shared.tasks.spawn(task.run());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant, SystemTime};

    use bytes::BytesMut;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::flv::demux::{FlvDemuxer, TagKind};
    use crate::hub::key::StreamKey;
    use crate::media::fanout::{FanOut, Limits};
    use crate::media::frame::{Ending, MediaEvent};
    use crate::rtmp::{Handshake, MediaKind, ServerSession, SessionConfig, SessionEvent};

    const PUBLISHER: u64 = 7;

    fn demux(name: &str) -> Vec<MediaEvent> {
        crate::flv::mux::testing::events_of(name, PUBLISHER)
    }

    /// Each frame's track, decode time (ms) and size.
    fn frames(events: &[MediaEvent]) -> Vec<(u8, u64, usize)> {
        events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Frame(f) => Some((f.track.0, f.dts.ticks() / 90, f.data.len())),
                _ => None,
            })
            .collect()
    }

    /// What a target received over one connection.
    #[derive(Debug, Default)]
    struct Received {
        events: Vec<MediaEvent>,
        metadata: usize,
        unpublished: bool,
    }

    /// A relay target: this server's own session behind a real socket (plain, or TLS with
    /// `tls`), taking one publish and demuxing what it is sent.
    async fn target(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Received {
        let (socket, _) = listener.accept().await.unwrap();
        match tls {
            None => session(socket).await,
            Some(acceptor) => session(acceptor.accept(socket).await.unwrap()).await,
        }
    }

    async fn session(mut io: impl AsyncRead + AsyncWrite + Unpin) -> Received {
        let mut handshake = Handshake::new();
        let mut shaken = false;
        let mut server = ServerSession::new(SessionConfig::default());
        let mut demux = FlvDemuxer::new();
        let mut received = Received::default();
        let mut input = BytesMut::new();
        let mut events = Vec::new();
        while io.read_buf(&mut input).await.unwrap() > 0 {
            let mut out = BytesMut::new();
            if !shaken {
                shaken = handshake.feed(&mut input, &mut out).unwrap();
            }
            if shaken {
                server
                    .handle_input(&mut input, &mut out, &mut events)
                    .unwrap();
            }
            for event in events.drain(..) {
                match event {
                    SessionEvent::PublishRequested { .. } => server.accept_publish(&mut out),
                    SessionEvent::Media {
                        kind,
                        timestamp,
                        payload,
                    } => {
                        let kind = match kind {
                            MediaKind::Audio => TagKind::Audio,
                            MediaKind::Video => TagKind::Video,
                        };
                        demux
                            .push(
                                kind,
                                timestamp,
                                payload,
                                Instant::now(),
                                &mut received.events,
                            )
                            .unwrap();
                    }
                    SessionEvent::Metadata { .. } => received.metadata += 1,
                    SessionEvent::Unpublished => received.unpublished = true,
                    _ => {}
                }
            }
            io.write_all(&out).await.unwrap();
        }
        received
    }

    /// Waits until every relay of `stream` is in `state`.
    async fn wait_until(stream: &Stream, state: &str, targets: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let relays = stream.relays();
            if relays.len() == targets && relays.iter().all(|r| r.state == state) {
                return;
            }
            assert!(Instant::now() < deadline, "{relays:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A stream with publisher [`PUBLISHER`], its fan-out keeping the last GOP.
    fn published_stream() -> (Arc<Stream>, Publisher) {
        let key = StreamKey::parse("k1").unwrap();
        let stream = Arc::new(Stream::new(
            "live".into(),
            key.clone(),
            key,
            FanOut::new(Limits {
                last_gop: true,
                ..Limits::default()
            }),
            None,
            None,
        ));
        let publisher = Publisher {
            id: PUBLISHER,
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            started: SystemTime::now(),
            started_at: Instant::now(),
            stop: crate::hub::stop::StopSignal::new(),
        };
        *stream.publisher_slot() = Some(publisher.clone());
        stream.begin_publisher(PUBLISHER);
        (stream, publisher)
    }

    #[tokio::test]
    async fn a_target_that_stops_reading_falls_behind_and_is_retried_without_holding_anything_up() {
        // The target takes the publish, then reads nothing more.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "rtmp://127.0.0.1:{}/live/{{key}}",
            listener.local_addr().unwrap().port()
        );
        let stuck = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut handshake = Handshake::new();
            let mut server = ServerSession::new(SessionConfig::default());
            let (mut input, mut events) = (BytesMut::new(), Vec::new());
            let mut shaken = false;
            loop {
                socket.read_buf(&mut input).await.unwrap();
                let mut out = BytesMut::new();
                if !shaken {
                    shaken = handshake.feed(&mut input, &mut out).unwrap();
                }
                if shaken {
                    server
                        .handle_input(&mut input, &mut out, &mut events)
                        .unwrap();
                }
                let asked = events
                    .drain(..)
                    .any(|e| matches!(e, SessionEvent::PublishRequested { .. }));
                if asked {
                    server.accept_publish(&mut out);
                }
                socket.write_all(&out).await.unwrap();
                if asked {
                    std::future::pending::<()>().await;
                }
            }
        });
        let metrics = Arc::new(Metrics::default());
        let relays = Relays {
            shared: Arc::new(Shared {
                templates: vec![Template::parse(&url).unwrap()],
                queue: QueueLimits {
                    bytes: 256 * 1024,
                    ..QueueLimits::default()
                },
                metrics: metrics.clone(),
                tasks: TaskTracker::new(),
                tls: OnceLock::new(),
            }),
        };
        let (stream, publisher) = published_stream();
        relays.start(&stream, &publisher, &[]);
        let source = demux("h264_aac.flv");
        let mut start = source[..1].to_vec();
        stream.fanout.push(PUBLISHER, &mut start);
        // The file's frames again and again (about 0.9 MB each time) while the target
        // reads nothing: every push is taken at once, and the target falls behind.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut again = source[1..].to_vec();
            assert!(stream.fanout.push(PUBLISHER, &mut again));
            tokio::time::sleep(Duration::from_millis(10)).await;
            let relays = stream.relays();
            let error = relays[0].last_error.clone().unwrap_or_default();
            if error.contains("fell behind") {
                break;
            }
            assert!(Instant::now() < deadline, "{relays:?}");
        }
        assert_eq!(metrics.relay_failures_total.get(), 1);
        // Nothing waits for the relay in the fan-out beyond what it has not taken yet.
        assert!(
            stream.fanout.held().1 < 2 * 1024 * 1024,
            "{:?}",
            stream.fanout.held()
        );
        stuck.abort();
        stream
            .fanout
            .push(PUBLISHER, &mut vec![MediaEvent::End(Ending::Stopped)]);
        let tasks = relays.tasks();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(20), tasks.wait())
            .await
            .expect("the relay ends with the publish");
    }

    #[tokio::test]
    async fn a_publish_taken_over_is_unpublished_from_its_targets() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "rtmp://127.0.0.1:{}/live/{{key}}",
            listener.local_addr().unwrap().port()
        );
        let target = tokio::spawn(target(listener, None));
        let relays = Relays::new(Vec::new(), Arc::new(Metrics::default()));
        let (stream, publisher) = published_stream();
        // The target comes from the stream-service's answer.
        relays.start(&stream, &publisher, &[Template::parse(&url).unwrap()]);
        let mut source = demux("h264_aac.flv");
        source.truncate(100);
        stream.fanout.push(PUBLISHER, &mut source);
        wait_until(&stream, "live", 1).await;
        publisher.stop.stop(crate::hub::stop::StopReason::Operator);
        let tasks = relays.tasks();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(20), tasks.wait())
            .await
            .expect("the relay ends with the publish");
        assert!(target.await.unwrap().unpublished);
    }

    #[tokio::test]
    async fn a_publish_goes_to_its_targets_over_tcp_and_tls_and_ends_with_an_unpublish() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = CertificateDer::from(made.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let templates = vec![
            Template::parse(&format!(
                "rtmp://127.0.0.1:{}/live/{{key}}",
                plain.local_addr().unwrap().port()
            ))
            .unwrap(),
            Template::parse(&format!(
                "rtmps://localhost:{}/live/{{name}}-tls",
                secure.local_addr().unwrap().port()
            ))
            .unwrap(),
        ];
        let plain = tokio::spawn(target(plain, None));
        let secure = tokio::spawn(target(
            secure,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_tls))),
        ));

        let metrics = Arc::new(Metrics::default());
        let relays = Relays::new(templates, metrics.clone());
        // Trusting the test certificate instead of the web PKI.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        assert!(relays.shared.tls.set(Ok(Arc::new(client_tls))).is_ok());

        let (stream, publisher) = published_stream();
        relays.start(&stream, &publisher, &[]);

        // The start and the first GOP, then the rest once the targets took the publish: the
        // relays begin at the last keyframe, which is the first here.
        let mut source = demux("h264_aac.flv");
        let end = MediaEvent::End(Ending::Stopped);
        let second_keyframe = source
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, MediaEvent::Frame(f) if f.keyframe && f.track.0 == 0))
            .nth(1)
            .unwrap()
            .0;
        let expected = frames(&source);
        let mut rest = source.split_off(second_keyframe);
        stream.fanout.push(PUBLISHER, &mut source);
        wait_until(&stream, "live", 2).await;
        stream.fanout.push(PUBLISHER, &mut rest);
        stream.fanout.push(PUBLISHER, &mut vec![end]);

        let tasks = relays.tasks();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(20), tasks.wait())
            .await
            .expect("the relays end with the publish");
        for received in [plain.await.unwrap(), secure.await.unwrap()] {
            assert!(received.unpublished, "unpublished at the end");
            assert_eq!(received.metadata, 1);
            assert_eq!(frames(&received.events), expected);
        }
        assert!(stream.relays().is_empty());
        assert_eq!(metrics.relay_connects_total.get(), 2);
        assert_eq!(metrics.relay_failures_total.get(), 0);
        assert!(metrics.relay_bytes_out_total.get() > 900_000);
    }
}
