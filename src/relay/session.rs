//! One connection's publish to a relay target, sans-IO: the RTMP publishing client
//! ([`PublishClient`]), the FLV muxer that turns the stream's media events into tags in the
//! form the target takes, and the bounded queue the tags wait in until the socket takes
//! them.
//!
//! `connect` announces Enhanced RTMP with the FourCCs of the stream's codecs (and multitrack
//! in `capsEx` for a multitrack publish). A target that answers with Enhanced RTMP
//! capabilities gets what it named in Enhanced form ([`Accepts::Announced`]); one that
//! answers without gets legacy FLV ([`Accepts::Legacy`]): H.264, AAC and MP3 on the default
//! tracks, and a stream whose default track needs more is refused here
//! ([`RelayError::Unplayable`]).
//!
//! Tags go out as RTMP messages: metadata as `@setDataFrame onMetaData`, audio and video as
//! their tag bodies (the muxer's header bytes, then the coded frame).

use std::time::Instant;

use bytes::BytesMut;

use super::error::RelayError;
use super::target::Target;
use crate::flv::mux::{Accepts, FlvMuxer, Tag, fourcc_of};
use crate::flv::tag::TagType;
use crate::media::frame::{MediaEvent, Tracks};
use crate::playback::queue::{PlayerQueue, Pushed, QueueLimits};
use crate::rtmp::enhanced::caps_ex;
use crate::rtmp::{ClientConfig, ClientEvent, MediaKind, PublishClient};

/// What [`RelaySession::feed`] brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing the relay acts on.
    Nothing,
    /// The target accepted the publish (NetStream.Publish.Start): media may go out.
    Published,
    /// The target confirmed the unpublish.
    Closed,
}

/// What [`RelaySession::take`] did with an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The queue overflowed: queued video was dropped and the target skips to the next
    /// keyframe.
    pub skipped: bool,
}

/// One publish to a target over one connection.
pub struct RelaySession {
    client: PublishClient,
    /// Made when the target accepts the publish: its connect answer says what it takes.
    muxer: Option<FlvMuxer>,
    queue: PlayerQueue,
    events: Vec<ClientEvent>,
    tags: Vec<Tag>,
    /// A tag body being put together (header bytes, then the frame).
    scratch: Vec<u8>,
}

impl RelaySession {
    /// Starts the session with the target: appends C0 and C1 to `out`. `tracks` are the
    /// stream's, for the codecs `connect` announces.
    pub fn new(
        target: &Target,
        tracks: &Tracks,
        queue: QueueLimits,
        out: &mut BytesMut,
    ) -> Result<RelaySession, RelayError> {
        let mut fourccs: Vec<String> = Vec::new();
        for track in &tracks.tracks {
            if let Some(config) = &track.config {
                let (fourcc, _) = fourcc_of(config);
                let fourcc = String::from_utf8_lossy(&fourcc).into_owned();
                if !fourccs.contains(&fourcc) {
                    fourccs.push(fourcc);
                }
            }
        }
        let multitrack = tracks.is_multitrack() || tracks.tracks.iter().any(|t| t.source != 0);
        let list: Vec<&str> = fourccs.iter().map(String::as_str).collect();
        let config = ClientConfig::new(&target.app, &target.tc_url(), &target.name)
            .with_enhanced(&list, if multitrack { caps_ex::MULTITRACK } else { 0 });
        Ok(RelaySession {
            client: PublishClient::new(config, out)?,
            muxer: None,
            queue: PlayerQueue::new(queue),
            events: Vec::new(),
            tags: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The target accepted the publish and has not ended it.
    pub fn is_published(&self) -> bool {
        self.client.is_publishing()
    }

    /// Consumes what the target sent from `input`, appends answers to `out`. A refusal
    /// (an `_error`, an error status, before or during the publish) is an error.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Progress, RelayError> {
        self.client.feed(input, out, &mut self.events)?;
        let mut progress = Progress::Nothing;
        for event in self.events.drain(..) {
            match event {
                ClientEvent::Connected => {}
                ClientEvent::Published => {
                    let accepts = match self.client.server_enhanced() {
                        Some(caps) => Accepts::Announced(caps.clone()),
                        None => Accepts::Legacy,
                    };
                    self.muxer = Some(FlvMuxer::new(accepts));
                    progress = Progress::Published;
                }
                ClientEvent::Rejected { code, description } => {
                    return Err(RelayError::Refused { code, description });
                }
                ClientEvent::Closed => progress = Progress::Closed,
            }
        }
        Ok(progress)
    }

    /// Queues the tags `event` makes. Before the target accepted the publish there is
    /// nothing to make them for, and the event is left out.
    pub fn take(&mut self, event: &MediaEvent, now: Instant) -> Result<Taken, RelayError> {
        let Some(muxer) = &mut self.muxer else {
            return Ok(Taken::default());
        };
        muxer.push(event, &mut self.tags)?;
        let mut taken = Taken::default();
        for tag in self.tags.drain(..) {
            if let Pushed::FellBehind { .. } = self.queue.push(tag, now)? {
                taken.skipped = true;
            }
        }
        Ok(taken)
    }

    /// Encodes queued tags as RTMP messages into `out` until it holds at least `up_to`
    /// bytes or the queue is empty.
    pub fn fill(&mut self, out: &mut BytesMut, up_to: usize) -> Result<(), RelayError> {
        while out.len() < up_to {
            let Some(tag) = self.queue.pop() else {
                return Ok(());
            };
            self.scratch.clear();
            self.scratch.extend_from_slice(tag.header());
            self.scratch.extend_from_slice(&tag.data);
            match tag.kind {
                TagType::ScriptData => {
                    self.client
                        .send_metadata(tag.timestamp, &self.scratch, out)?
                }
                TagType::Audio => {
                    self.client
                        .send_media(MediaKind::Audio, tag.timestamp, &self.scratch, out)?
                }
                TagType::Video => {
                    self.client
                        .send_media(MediaKind::Video, tag.timestamp, &self.scratch, out)?
                }
            }
        }
        Ok(())
    }

    /// Tags wait to be encoded.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Forgets the queued tags (the relay stops without sending them).
    pub fn drop_queued(&mut self) {
        while self.queue.pop().is_some() {}
    }

    /// Ends the publish: FCUnpublish and deleteStream into `out` (nothing if the target
    /// never accepted it).
    pub fn unpublish(&mut self, out: &mut BytesMut) -> Result<(), RelayError> {
        self.client.unpublish(out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flv::demux::{FlvDemuxer, TagKind};
    use crate::rtmp::{Handshake, ServerSession, SessionConfig, SessionEvent};

    fn demux(name: &str) -> Vec<MediaEvent> {
        crate::flv::mux::testing::events_of(name, 0)
    }

    /// A relay session and this server's own session in memory, as a target.
    struct Wire {
        relay: RelaySession,
        handshake: Handshake,
        shaken: bool,
        server: ServerSession,
        events: Vec<SessionEvent>,
        to_server: BytesMut,
        to_relay: BytesMut,
        progress: Vec<Progress>,
    }

    impl Wire {
        fn new(url: &str, tracks: &Tracks) -> Wire {
            let mut out = BytesMut::new();
            let target = Target::parse(url).unwrap();
            let relay =
                RelaySession::new(&target, tracks, QueueLimits::default(), &mut out).unwrap();
            let mut wire = Wire {
                relay,
                handshake: Handshake::new(),
                shaken: false,
                server: ServerSession::new(SessionConfig::default()),
                events: Vec::new(),
                to_server: out,
                to_relay: BytesMut::new(),
                progress: Vec::new(),
            };
            wire.pump();
            wire
        }

        fn pump(&mut self) {
            loop {
                let mut out = BytesMut::new();
                if !self.shaken {
                    self.shaken = self.handshake.feed(&mut self.to_server, &mut out).unwrap();
                }
                if self.shaken {
                    let mut events = Vec::new();
                    self.server
                        .handle_input(&mut self.to_server, &mut out, &mut events)
                        .unwrap();
                    for e in &events {
                        if matches!(e, SessionEvent::PublishRequested { .. }) {
                            self.server.accept_publish(&mut out);
                        }
                    }
                    self.events.extend(events);
                }
                let quiet = out.is_empty();
                self.to_relay.extend_from_slice(&out);
                let mut out = BytesMut::new();
                let progress = self.relay.feed(&mut self.to_relay, &mut out).unwrap();
                if progress != Progress::Nothing {
                    self.progress.push(progress);
                }
                if quiet && out.is_empty() {
                    return;
                }
                self.to_server.extend_from_slice(&out);
            }
        }
    }

    fn tracks_of(events: &[MediaEvent]) -> Arc<Tracks> {
        events
            .iter()
            .find_map(|e| match e {
                MediaEvent::Start(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_stream_goes_out_as_the_publisher_sent_it() {
        let source = demux("h264_aac.flv");
        let mut wire = Wire::new("rtmp://127.0.0.1/live/target-key?t=1", &tracks_of(&source));
        assert_eq!(wire.progress, [Progress::Published]);
        let SessionEvent::Connected {
            app,
            tc_url,
            enhanced,
            ..
        } = &wire.events[0]
        else {
            panic!("{:?}", wire.events)
        };
        assert_eq!(app, "live");
        assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
        let announced: Vec<String> = enhanced
            .as_ref()
            .unwrap()
            .fourccs
            .iter()
            .map(|c| c.fourcc.to_string())
            .collect();
        assert_eq!(announced, ["avc1", "mp4a"]);
        assert!(wire.events.iter().any(|e| matches!(
            e,
            SessionEvent::PublishRequested { stream_key, query, .. }
                if stream_key == "target-key" && query.as_deref() == Some("t=1")
        )));

        let now = Instant::now();
        for event in &source {
            wire.relay.take(event, now).unwrap();
        }
        let mut out = BytesMut::new();
        while wire.relay.has_queued() {
            wire.relay.fill(&mut out, 64 * 1024).unwrap();
            wire.to_server.extend_from_slice(&out);
            out.clear();
            wire.pump();
        }
        // The server demuxes what it received back into the source's frames.
        let mut demux = FlvDemuxer::new();
        let mut again = Vec::new();
        let mut metadata = 0;
        for event in wire.events.drain(..) {
            match event {
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
                        .push(kind, timestamp, payload, now, &mut again)
                        .unwrap();
                }
                SessionEvent::Metadata { properties, .. } => {
                    metadata += 1;
                    assert!(
                        properties.iter().any(|(k, _)| k == "width"),
                        "{properties:?}"
                    );
                }
                _ => {}
            }
        }
        demux.finish(&mut again);
        assert_eq!(metadata, 1);
        let frames = |events: &[MediaEvent]| -> Vec<(u8, u64, u64, bool, usize)> {
            events
                .iter()
                .filter_map(|e| match e {
                    MediaEvent::Frame(f) => Some((
                        f.track.0,
                        f.dts.ticks() / 90,
                        f.pts.ticks() / 90,
                        f.keyframe,
                        f.data.len(),
                    )),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(frames(&again), frames(&source));

        // Unpublished, the target confirms.
        wire.relay.unpublish(&mut out).unwrap();
        wire.to_server.extend_from_slice(&out);
        wire.pump();
        assert!(wire.events.contains(&SessionEvent::Unpublished));
        assert_eq!(wire.progress.last(), Some(&Progress::Closed));
    }

    #[test]
    fn what_the_target_did_not_announce_is_not_sent() {
        // This server answers with Enhanced RTMP capabilities: HEVC goes out.
        let hevc = demux("hevc_aac.flv");
        let mut wire = Wire::new("rtmp://h/live/k", &tracks_of(&hevc));
        assert_eq!(wire.progress, [Progress::Published]);
        wire.relay.take(&hevc[0], Instant::now()).unwrap();

        // A legacy session (no Enhanced answer) cannot take it.
        let mut out = BytesMut::new();
        let target = Target::parse("rtmp://h/live/k").unwrap();
        let mut legacy =
            RelaySession::new(&target, &tracks_of(&hevc), QueueLimits::default(), &mut out)
                .unwrap();
        legacy.muxer = Some(FlvMuxer::new(Accepts::Legacy));
        let err = legacy.take(&hevc[0], Instant::now()).unwrap_err();
        assert!(err.to_string().contains("cannot take HEVC"), "{err}");
    }
}
