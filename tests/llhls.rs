//! The CMAF output and its Low-Latency playlist (`llhls.m3u8`) end to end, with real peers:
//! ffmpeg and the project's client publish, ffprobe and ffmpeg read the fragmented MP4 back
//! (over HTTP and from the stream folder) frame for frame against the source, and raw HTTP
//! clients hold blocking playlist reloads and hinted parts.
//!
//! - every frame of the test files (B-frames, audio only, video only), across a clock restart
//!   and across two takeovers (discontinuities, a new EXT-X-MAP where the init changed, the
//!   media sequence never going back);
//! - Blocking Playlist Reload: a request for the next part is answered once that part is
//!   listed; one too far ahead is refused (400); one not satisfiable in three target
//!   durations gets 503; the stream's end answers a held request;
//! - the preload hint: a request for the hinted part is held and answered with that part,
//!   a moof+mdat fragment, also when the hint is given as a segment's last part is listed
//!   (the part that comes is the next segment's first);
//! - Playlist Delta Updates (`_HLS_skip=YES`) against the full playlist;
//! - malformed Delivery Directives (400 with the reason), unknown parameters ignored;
//! - thousands of held requests against the connection cap, and a client leaving while
//!   held;
//! - CORS and cache headers.
//!
//! Spec: RFC 8216bis §4.4.3.7, §4.4.3.8, §4.4.4.9, §4.4.5.2, §4.4.5.3, §6.2.5, §6.2.6.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::llhls::*;
use common::*;
use rtmp_server::flv::tag::TagType;

/// Part Target Duration of every server here (`hls.part`, the default).
const PART_TARGET: f64 = 0.2;

/// How long a blocked request is held at most, in target durations (RFC 8216bis §6.2.5.2).
const HOLD_TARGET_DURATIONS: u64 = 3;

fn hold_limit(target_duration: u64) -> Duration {
    Duration::from_secs(target_duration * HOLD_TARGET_DURATIONS)
}

/// Segment names listed, in order.
fn uris(playlist: &LlPlaylist) -> Vec<&str> {
    playlist.segments.iter().map(|s| s.uri.as_str()).collect()
}

/// Asserts what every Low-Latency playlist here must hold: the server-control and part-info
/// tags, parts no longer than the Part Target Duration adding up to their segment, numbered
/// one by one across segments with the hint naming the number after the last, segments with
/// consecutive numbers and the first part of each independent (with video).
fn assert_well_formed(p: &LlPlaylist, video: bool) {
    let control = p.server_control.as_deref().unwrap_or_else(|| {
        panic!("no EXT-X-SERVER-CONTROL:\n{}", p.text);
    });
    assert!(control.contains("CAN-BLOCK-RELOAD=YES"), "{control}");
    assert_eq!(p.part_target, Some(PART_TARGET), "{}", p.text);
    let hold_back: f64 = control
        .split(',')
        .find_map(|a| a.strip_prefix("PART-HOLD-BACK="))
        .and_then(|v| v.parse().ok())
        .expect("PART-HOLD-BACK");
    assert!(hold_back >= 2.0 * PART_TARGET, "{control}");
    let skip_until: f64 = control
        .split(',')
        .find_map(|a| a.strip_prefix("CAN-SKIP-UNTIL="))
        .and_then(|v| v.parse().ok())
        .expect("CAN-SKIP-UNTIL");
    assert!(skip_until >= 6.0 * p.target_duration as f64, "{control}");
    for part in p.parts() {
        assert!(
            part.duration <= PART_TARGET + 1e-9,
            "{}: DURATION above PART-TARGET",
            part.uri
        );
    }
    for (before, part) in p.parts().zip(p.parts().skip(1)) {
        assert_eq!(
            part.number,
            before.number + 1,
            "{} listed after {}:\n{}",
            part.uri,
            before.uri,
            p.text
        );
    }
    for (i, s) in p.segments.iter().enumerate() {
        assert_eq!(s.msn, p.segments[0].msn + i as u64);
        assert!(
            s.duration.round() as u64 <= p.target_duration,
            "{}: EXTINF {} above the target duration",
            s.uri,
            s.duration
        );
        if s.parts.is_empty() {
            continue;
        }
        // Parts add up to their segment (each DURATION rounded to the millisecond). The last
        // segment of a timeline (before a discontinuity or the end) is the exception: its
        // EXTINF runs from its first presented frame to the end of its media, its parts from
        // its first decoded frame, the last of them holding the audio after the last video
        // frame; they differ by the video's composition delay (at most 0.1 s).
        let listed: f64 = s.parts.iter().map(|part| part.duration).sum();
        let timeline_ends = match p.segments.get(i + 1) {
            Some(next) => next.discontinuity,
            None => p.ended || p.open_discontinuity,
        };
        let slack = if timeline_ends {
            0.1
        } else {
            0.001 * s.parts.len() as f64 + 0.001
        };
        assert!(
            (listed - s.duration).abs() <= slack,
            "{}: parts add up to {listed}, EXTINF {}",
            s.uri,
            s.duration
        );
        if video {
            assert!(
                s.parts[0].independent,
                "{}: first part not INDEPENDENT",
                s.uri
            );
        }
    }
    if let (Some(hint), false) = (&p.preload_hint, p.ended) {
        let number = part_number(hint).expect("hint names a part");
        if let Some(last) = p.last_part() {
            assert_eq!(number, last.number + 1, "{hint}: not the next part");
        }
    }
}

/// The checks both copies of a finished stream get: ffprobe reads every segment (with its
/// init section) and finds the source's frames; ffmpeg decodes the playlist without a
/// complaint.
fn assert_reads_back(
    source: &std::path::Path,
    playlist: &LlPlaylist,
    origin: &Origin<'_>,
    out: PathBuf,
) {
    let files = readable_segments(playlist, origin, &out);
    assert_same_frames(source, &files);
    let errors = decode_errors(&out.join(LL_PLAYLIST));
    assert!(errors.is_empty(), "{}: {errors}", out.display());
}

#[test]
fn every_frame_of_the_test_files_reads_back_from_the_cmaf_output() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let sources = [
        ("flv/h264_aac.flv", "bframes", true, true),
        ("flv/audio_only.flv", "audio", false, true),
        ("flv/video_only.flv", "video", true, false),
    ];
    let pushes: Vec<FfmpegPush> = sources
        .iter()
        .map(|(file, key, ..)| FfmpegPush::start(&testdata(file), &server.rtmp_url(key)))
        .collect();
    for push in pushes {
        push.finish();
    }
    let scratch = tempfile::tempdir().unwrap();
    // Everything served from memory is fetched first, while the streams' last playlists
    // are held there (parts are served from memory only).
    let served: Vec<LlPlaylist> = sources
        .iter()
        .map(|(_, key, ..)| wait_ll(&server, key, "ended", |p| p.ended))
        .collect();
    let downloaded: Vec<Vec<PathBuf>> = sources
        .iter()
        .zip(&served)
        .map(|((_, key, ..), served)| {
            let http = scratch.path().join(key).join("http");
            let origin = Origin::Http(&server, key);
            // The parts still listed are their segment's bytes, in order, each a fragment.
            for s in served.segments.iter().filter(|s| !s.parts.is_empty()) {
                let parts: Vec<Vec<u8>> = s.parts.iter().map(|p| origin.read(&p.uri)).collect();
                for (part, data) in s.parts.iter().zip(&parts) {
                    assert_fragment(data, &part.uri);
                }
                let joined = parts.concat();
                assert!(
                    joined == origin.read(&s.uri),
                    "{key}: {}'s parts are not its bytes",
                    s.uri
                );
            }
            readable_segments(served, &origin, &http)
        })
        .collect();
    for (((file, key, video, audio), served), files) in sources.iter().zip(&served).zip(&downloaded)
    {
        let http = scratch.path().join(key).join("http");
        assert!(
            served.parts().next().is_some(),
            "{key}: no part listed:\n{}",
            served.text
        );
        assert_well_formed(served, *video);
        assert!(served.preload_hint.is_none(), "{key}: hint after the end");
        let total: f64 = served.segments.iter().map(|s| s.duration).sum();
        assert!(
            (total - 10.0).abs() < 0.15,
            "{key}: {total} s listed for 10 s of media"
        );
        let streams = probe_streams(&files[0]);
        assert_eq!(
            streams.contains("codec_type=video"),
            *video,
            "{key}: {streams}"
        );
        assert_eq!(
            streams.contains("codec_type=audio"),
            *audio,
            "{key}: {streams}"
        );
        if *video {
            assert!(streams.contains("codec_name=h264"), "{streams}");
        }
        // Each segment, with its init section, decodes on its own.
        for f in files {
            let errors = decode_errors(f);
            assert!(errors.is_empty(), "{}: {errors}", f.display());
        }
        assert_same_frames(&testdata(file), files);
        let errors = decode_errors(&http.join(LL_PLAYLIST));
        assert!(errors.is_empty(), "{key} over HTTP: {errors}");
    }
    for ((file, key, ..), served) in sources.iter().zip(&served) {
        // The folder: whole segments and init sections, the same bytes, and a playlist
        // without the Low-Latency tags that lists the same segments.
        let dir = server.stream_dir(key);
        let on_disk = ended_on_disk(&server, key);
        assert_eq!(uris(&on_disk), uris(served), "{key}");
        assert_eq!(on_disk.maps(), served.maps(), "{key}");
        for tag in [
            "#EXT-X-PART",
            "#EXT-X-PRELOAD-HINT",
            "#EXT-X-SERVER-CONTROL",
        ] {
            assert!(!on_disk.text.contains(tag), "{key}: {tag} on disk");
        }
        let http = scratch.path().join(key).join("http");
        let names = on_disk
            .maps()
            .into_iter()
            .chain(uris(&on_disk).into_iter().map(String::from));
        for name in names {
            let same =
                std::fs::read(dir.join(&name)).unwrap() == std::fs::read(http.join(&name)).unwrap();
            assert!(same, "{key}: {name} differs on disk and over HTTP");
        }
        assert_reads_back(
            &testdata(file),
            &on_disk,
            &Origin::Disk(dir),
            scratch.path().join(key).join("disk"),
        );
    }
}

#[test]
fn a_restarted_clock_continues_with_a_discontinuity() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let tags = flv_tags(&source);
    let mut publisher = ClientPublisher::start(&server, "restart");
    for pass in 0..2 {
        for tag in &tags {
            if pass == 1 && tag.tag_type == TagType::ScriptData {
                continue;
            }
            publisher.send_tag(tag, tag.timestamp);
        }
    }
    publisher.finish();
    let served = wait_ll(&server, "restart", "ended", |p| p.ended);
    let scratch = tempfile::tempdir().unwrap();
    let http = scratch.path().join("http");
    let files = readable_segments(&served, &Origin::Http(&server, "restart"), &http);
    assert_well_formed(&served, true);
    let jumps: Vec<usize> = served
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i)
        .collect();
    let [jump] = jumps[..] else {
        panic!("one EXT-X-DISCONTINUITY expected:\n{}", served.text);
    };
    assert!(jump > 0);
    assert_same_frames(&source, &files[..jump]);
    assert_same_frames(&source, &files[jump..]);
    for f in &files {
        let errors = decode_errors(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
    }
    let on_disk = ended_on_disk(&server, "restart");
    assert_eq!(uris(&on_disk), uris(&served));
    assert_eq!(
        on_disk.segments.iter().position(|s| s.discontinuity),
        Some(jump),
        "{}",
        on_disk.text
    );
    let disk_files = readable_segments(
        &on_disk,
        &Origin::Disk(server.stream_dir("restart")),
        &scratch.path().join("disk"),
    );
    assert_same_frames(&source, &disk_files[..jump]);
    assert_same_frames(&source, &disk_files[jump..]);
    for copy in [&http, &scratch.path().join("disk")] {
        let errors = decode_errors(&copy.join(LL_PLAYLIST));
        assert!(errors.is_empty(), "{}: {errors}", copy.display());
    }
}

/// What a test saw of a stream's segments over several playlists, by Media Sequence Number.
#[derive(Default)]
struct Seen {
    segments: BTreeMap<u64, Segment>,
    media_sequence: u64,
    discontinuity_sequence: u64,
}

impl Seen {
    /// Adds a playlist: what it lists again must be what was listed before, and neither
    /// the media sequence nor the discontinuity sequence may go back.
    fn add(&mut self, p: &LlPlaylist) {
        assert!(
            p.media_sequence >= self.media_sequence,
            "EXT-X-MEDIA-SEQUENCE went back from {} to {}:\n{}",
            self.media_sequence,
            p.media_sequence,
            p.text
        );
        assert!(
            p.discontinuity_sequence >= self.discontinuity_sequence,
            "EXT-X-DISCONTINUITY-SEQUENCE went back:\n{}",
            p.text
        );
        self.media_sequence = p.media_sequence;
        self.discontinuity_sequence = p.discontinuity_sequence;
        for s in &p.segments {
            let kept = self.segments.entry(s.msn).or_insert_with(|| s.clone());
            assert_eq!(
                (&kept.uri, kept.duration, kept.discontinuity, &kept.map),
                (&s.uri, s.duration, s.discontinuity, &s.map),
                "segment {} changed:\n{}",
                s.msn,
                p.text
            );
        }
    }
}

/// An AVC or AAC sequence header: a codec configuration, no frame (FLV §E.4.2.1, §E.4.3.1:
/// the packet type after the first byte is 0).
fn is_sequence_header(tag: &rtmp_server::flv::file::FlvTag) -> bool {
    matches!(tag.tag_type, TagType::Video | TagType::Audio) && tag.body.get(1) == Some(&0)
}

#[test]
fn takeovers_continue_with_discontinuities_and_a_new_map_where_the_init_changed() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-delete-segments", "false"]);
    let key = "takeover";
    let both = testdata("flv/h264_aac.flv");
    let video = testdata("flv/video_only.flv");
    let mut seen = Seen::default();
    // The first publisher sends the whole file and stays: its last segment is open, its
    // parts listed up to the last one, which is never finished.
    let first = publish_and_pause(&server, key, &both);
    let open_listed = |p: &LlPlaylist| p.open_parts.iter().map(|part| part.duration).sum::<f64>();
    wait_ll(&server, key, "listed the first publisher's media", |p| {
        p.last_msn() == Some(3) && open_listed(p) >= 1.6
    });
    let p1 = settled(&server, key);
    assert_well_formed(&p1, true);
    seen.add(&p1);
    // The second one, with the same file (the same codec parameters), takes over. Its
    // codec configurations close the first one's open segment: a request blocked on that
    // segment is answered then, before any of the new media.
    let waiting = format!("/live/{key}/{LL_PLAYLIST}?_HLS_msn={}", p1.open_msn());
    let mut blocked = HeldRequest::send(server.http_port, &waiting).expect("connect");
    let mut second = ClientPublisher::start(&server, key);
    drop(first);
    for tag in flv_tags(&both)
        .iter()
        .take_while(|t| t.tag_type == TagType::ScriptData || is_sequence_header(t))
    {
        second.send_tag(tag, tag.timestamp);
    }
    let hold = hold_limit(p1.target_duration);
    assert!(wait_answers(std::slice::from_mut(&mut blocked), hold * 2));
    assert_eq!(
        blocked.status(),
        Some(200),
        "{waiting} while the takeover closed that segment: {}",
        blocked.received()
    );
    send_file(&mut second, &both);
    wait_ll(&server, key, "listed the second publisher's media", |p| {
        p.last_msn() == Some(8) && open_listed(p) >= 1.6
    });
    let p2 = settled(&server, key);
    assert_well_formed(&p2, true);
    seen.add(&p2);
    // The third one sends video only: a new init section.
    let third = publish_and_pause(&server, key, &video);
    drop(second);
    third.finish();
    let p3 = wait_ll(&server, key, "ended", |p| p.ended);
    assert_well_formed(&p3, true);
    seen.add(&p3);
    assert!(
        p3.media_sequence > 0,
        "the window never moved:\n{}",
        p3.text
    );

    let all: Vec<Segment> = seen.segments.values().cloned().collect();
    let msns: Vec<u64> = all.iter().map(|s| s.msn).collect();
    assert_eq!(
        msns,
        (0..all.len() as u64).collect::<Vec<_>>(),
        "segments seen"
    );
    let starts: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i)
        .collect();
    let [second_start, third_start] = starts[..] else {
        panic!("two discontinuities expected: {starts:?}\n{}", p3.text);
    };
    // Each publisher taken over had its open segment closed short with the parts it had
    // listed (4 + 1 segments each), lasting as long as they do.
    assert_eq!((second_start, third_start), (5, 10), "{}", p3.text);
    for (closed, before) in [(&all[4], &p1), (&all[9], &p2)] {
        assert!(
            (closed.duration - open_listed(before)).abs() <= 0.001 * before.open_parts.len() as f64,
            "{} lasts {}, its parts {}:\n{}",
            closed.uri,
            closed.duration,
            open_listed(before),
            before.text
        );
    }
    let first_map = all[0].map.clone();
    assert!(first_map.is_some());
    assert!(
        all[..third_start].iter().all(|s| s.map == first_map),
        "the same init section, the same EXT-X-MAP:\n{}",
        p2.text
    );
    let third_map = all[third_start].map.clone();
    assert_ne!(
        third_map, first_map,
        "video only needs another init section"
    );
    assert!(all[third_start..].iter().all(|s| s.map == third_map));
    // Where the init section changes, the playlist says so with EXT-X-MAP at that segment.
    let at_change = p3
        .segments
        .iter()
        .find(|s| s.msn == third_start as u64)
        .expect("the third publisher's first segment is listed");
    assert!(at_change.map_tag && at_change.discontinuity, "{}", p3.text);

    let scratch = tempfile::tempdir().unwrap();
    let whole = LlPlaylist {
        segments: all.clone(),
        ..p3.clone()
    };
    for (name, origin) in [
        ("http", Origin::Http(&server, key)),
        ("disk", Origin::Disk(server.stream_dir(key))),
    ] {
        let files = readable_segments(&whole, &origin, &scratch.path().join(name));
        // A publisher taken over loses the part it had not finished: at most a part's
        // worth of frames, a few more on the audio track, which runs a little ahead.
        let unfinished = Duration::from_millis(400);
        assert_frames_prefix(&both, &files[..second_start], unfinished);
        assert_frames_prefix(&both, &files[second_start..third_start], unfinished);
        assert_same_frames(&video, &files[third_start..]);
        if name == "http" {
            for f in &files {
                let errors = decode_errors(f);
                assert!(errors.is_empty(), "{}: {errors}", f.display());
            }
        }
    }
    // The last playlist, as served and as on disk, decodes as a whole.
    let last = readable_segments(
        &p3,
        &Origin::Http(&server, key),
        &scratch.path().join("last"),
    );
    assert!(!last.is_empty());
    let errors = decode_errors(&scratch.path().join("last").join(LL_PLAYLIST));
    assert!(errors.is_empty(), "the last playlist: {errors}");
    let errors = decode_errors(&server.stream_dir(key).join(LL_PLAYLIST));
    assert!(errors.is_empty(), "the playlist on disk: {errors}");
}

/// How many parts in a row the blocking-reload check asks for, each the part after the last
/// one the previous answer listed: about two seconds of a live stream.
const PARTS_IN_A_ROW: u32 = 10;

/// The least the server may have held those requests in all: a quarter of the time their
/// parts take to come (0.2 s each), so that a busy machine that delivers some parts in a
/// burst still passes, while a server answering at once does not.
const LEAST_HELD_IN_ALL: Duration = Duration::from_millis(500);

/// Whether `p` lists the part a request for `_HLS_msn=msn&_HLS_part=index` waits for:
/// that part, or, when segment `msn` ended with `index` parts, part 0 of the next one (RFC
/// 8216bis §6.2.5.2).
fn lists_asked_part(p: &LlPlaylist, msn: u64, index: u64) -> bool {
    let ended_there = p
        .segments
        .iter()
        .any(|s| s.msn == msn && s.parts.len() as u64 == index);
    p.lists_part(msn, index) || (ended_there && p.lists_part(msn + 1, 0))
}

/// Asks `PARTS_IN_A_ROW` times for the part after the last one listed: each answer must
/// list it, and the requests together must have been held.
fn blocking_reloads_wait_for_the_next_part(server: &ServerProcess, key: &str) {
    let (_, playlist) = get_ll(server, key, "");
    let mut playlist = playlist.expect("a playlist");
    let mut held = Duration::ZERO;
    for _ in 0..PARTS_IN_A_ROW {
        let last = playlist.last_part().expect("a part listed").clone();
        let (msn, index) = (last.msn, last.index + 1);
        let query = format!("_HLS_msn={msn}&_HLS_part={index}");
        let asked = Instant::now();
        let (r, answer) = get_ll(server, key, &query);
        held += asked.elapsed();
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let answer = answer.unwrap();
        assert!(
            lists_asked_part(&answer, msn, index),
            "{query} answered without that part:\n{}",
            answer.text
        );
        assert_well_formed(&answer, true);
        playlist = answer;
    }
    assert!(
        held >= LEAST_HELD_IN_ALL,
        "{PARTS_IN_A_ROW} requests for the next part were held {held:?} in all"
    );
}

/// How many segment ends the hint check tries at most to catch with a playlist whose open
/// segment has all its parts: it asks for that playlist with a blocking reload, which a busy
/// machine may answer only after the next keyframe closed the segment.
const SEGMENT_ENDS_TO_TRY: usize = 5;

/// Requests the part `playlist`'s preload hint names, asserts that it is held until the part
/// exists and answered with it (one moof+mdat fragment that ffprobe reads with the init
/// section, listed under that name from then on), and returns that part as listed.
fn fetch_hinted(
    server: &ServerProcess,
    key: &str,
    playlist: &LlPlaylist,
    scratch: &std::path::Path,
) -> Part {
    let hint = playlist.preload_hint.clone().expect("a preload hint");
    assert!(part_number(&hint).is_some(), "{hint}: not a part");
    assert!(
        playlist.part_named(&hint).is_none(),
        "{hint} hinted and listed"
    );
    let r = get(&media_url(server, key, &hint));
    assert_eq!(r.status, 200, "{hint}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let samples = assert_fragment(&r.body, &hint);
    let listed = wait_ll(server, key, "listed the hinted part", |p| {
        p.part_named(&hint).is_some()
    });
    assert_eq!(
        get(&media_url(server, key, &hint)).body,
        r.body,
        "{hint} changed"
    );
    let part = listed.part_named(&hint).unwrap().clone();
    let map = listed
        .segments
        .iter()
        .find(|s| s.msn == part.msn)
        .or(listed.segments.last())
        .and_then(|s| s.map.clone())
        .expect("an EXT-X-MAP");
    let mut readable = get(&media_url(server, key, &map)).body;
    readable.extend_from_slice(&r.body);
    let path = scratch.join("hinted-part.mp4");
    std::fs::write(&path, readable).unwrap();
    assert_eq!(
        probe_packets(&path).len(),
        samples.iter().sum::<usize>(),
        "ffprobe reads every sample of {hint}"
    );
    part
}

/// A request for the part the preload hint names is held until the part exists and
/// answered with it (RFC 8216bis §6.2.6): in the middle of a segment, and at a segment's
/// end, where the hint in the playlist listing the segment's last part names the part that
/// comes next, the first of the next segment (the server numbers parts over the stream's
/// life, so that hint is never withdrawn).
fn the_hinted_part_is_held_and_sent(server: &ServerProcess, key: &str, scratch: &std::path::Path) {
    let (_, playlist) = get_ll(server, key, "");
    let playlist = playlist.expect("a playlist");
    fetch_hinted(server, key, &playlist, scratch);

    // Every segment of the stream has as many parts (a keyframe every second exactly).
    let parts = playlist
        .segments
        .iter()
        .rev()
        .find(|s| !s.parts.is_empty())
        .map(|s| s.parts.len() as u64)
        .expect("a complete segment with its parts listed");
    let mut tried = Vec::new();
    for _ in 0..SEGMENT_ENDS_TO_TRY {
        let (_, now) = get_ll(server, key, "");
        let open = now.expect("a playlist").open_msn();
        // The playlist as the open segment's last part is listed, before the keyframe that
        // ends the segment.
        let query = format!("_HLS_msn={open}&_HLS_part={}", parts - 1);
        let (r, at_end) = get_ll(server, key, &query);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let at_end = at_end.unwrap();
        assert_well_formed(&at_end, true);
        let full = at_end.open_msn() == open && at_end.open_parts.len() as u64 == parts;
        let part = fetch_hinted(server, key, &at_end, scratch);
        if full {
            assert_eq!(
                (part.msn, part.index),
                (open + 1, 0),
                "{}: hinted after segment {open}'s last part:\n{}",
                part.uri,
                at_end.text
            );
            assert!(part.independent, "{}: a segment's first part", part.uri);
            return;
        }
        tried.push(at_end.text);
    }
    panic!(
        "no playlist with segment's parts all listed and still open in {SEGMENT_ENDS_TO_TRY} tries:\n{}",
        tried.join("\n")
    );
}

/// The `max-age` of a Cache-Control value.
fn max_age(cache: &str) -> u64 {
    cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cache:?}"))
}

/// Cross-origin players may read everything; media files never change under their names;
/// playlists are cached briefly.
fn cors_and_cache_headers(server: &ServerProcess, key: &str) {
    let origin = [("Origin", "https://player.example")];
    let (_, playlist) = get_ll(server, key, "");
    let p = playlist.expect("a playlist");
    let part = p.last_part().expect("a part").uri.clone();
    let segment = p.segments.last().expect("a segment");
    let map = segment.map.clone().expect("an EXT-X-MAP");
    let blocking = format!("_HLS_msn={}", segment.msn);
    for (what, url, immutable) in [
        ("playlist", ll_url(server, key, ""), false),
        ("delta update", ll_url(server, key, "_HLS_skip=YES"), false),
        ("blocking reload", ll_url(server, key, &blocking), false),
        ("part", media_url(server, key, &part), true),
        ("segment", media_url(server, key, &segment.uri), true),
        ("init section", media_url(server, key, &map), true),
    ] {
        let r = http("GET", &url, &origin);
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}");
        let cache = r
            .header("cache-control")
            .unwrap_or_else(|| panic!("{what}: no Cache-Control"));
        if immutable {
            assert!(cache.contains("immutable"), "{what}: {cache}");
            assert!(max_age(cache) >= 86_400, "{what}: {cache}");
            assert_eq!(r.header("content-type"), Some("video/mp4"), "{what}");
        } else {
            assert!(!cache.contains("immutable"), "{what}: {cache}");
            assert_eq!(
                r.header("content-type"),
                Some("application/vnd.apple.mpegurl"),
                "{what}"
            );
            // A plain reload changes with every part: a second at most. An answer to a
            // blocking request holds what its URL asked for whenever it is served, and may
            // be kept while its segments stay available: no longer than a full window
            // spans (the Skip Boundary, six target durations), after which they have left
            // the playlist and only their grace period (RFC 8216 §6.2.2) remains.
            let longest = if what == "blocking reload" {
                6 * p.target_duration
            } else {
                1
            };
            assert!(max_age(cache) <= longest, "{what}: {cache}");
        }
    }
    // A preflight for the headers players send.
    let r = http(
        "OPTIONS",
        &ll_url(server, key, ""),
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "if-none-match"),
        ],
    );
    assert!(r.status < 300, "preflight: {}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

/// Malformed Delivery Directives are refused with the reason; unknown parameters are
/// ignored.
fn bad_directives_are_refused(server: &ServerProcess, key: &str) {
    for (query, named) in [
        ("_HLS_msn=-1", "_HLS_msn"),
        ("_HLS_msn=99999999999999999999", "_HLS_msn"),
        ("_HLS_msn=9007199254740992", "_HLS_msn"),
        ("_HLS_msn=abc", "_HLS_msn"),
        ("_HLS_msn=", "_HLS_msn"),
        ("_HLS_msn=1.5", "_HLS_msn"),
        ("_HLS_msn=0x10", "_HLS_msn"),
        ("_HLS_part=1", "_HLS_part"),
        ("_HLS_msn=1&_HLS_part=-2", "_HLS_part"),
        ("_HLS_msn=1&_HLS_part=1024", "_HLS_part"),
        ("_HLS_msn=1&_HLS_msn=1", "_HLS_msn"),
        ("_HLS_msn=1&_HLS_part=0&_HLS_part=0", "_HLS_part"),
        ("_HLS_skip=YES&_HLS_skip=YES", "_HLS_skip"),
        ("_HLS_skip=NO", "_HLS_skip"),
        ("_HLS_skip=yes", "_HLS_skip"),
        ("_HLS_msn=%ZZ", "percent-encoding"),
    ] {
        let r = http(
            "GET",
            &ll_url(server, key, query),
            &[("Origin", "https://player.example")],
        );
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(named), "{query}: {:?}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{query}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{query}"
        );
    }
    for query in ["cb=17&_hls_msn=abc&token", "_HLS_msn_=x&x=%ZZ", "&&=&"] {
        let (r, p) = get_ll(server, key, query);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=1"),
            "{query}"
        );
        assert!(p.is_some_and(|p| p.skipped == 0), "{query}");
    }
}

/// The playlist tags of a playlist's text (before its first segment's tags), and the rest.
fn split_header(text: &str) -> (Vec<&str>, Vec<&str>) {
    const HEADER: [&str; 9] = [
        "#EXTM3U",
        "#EXT-X-VERSION:",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-SERVER-CONTROL:",
        "#EXT-X-PART-INF:",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-DISCONTINUITY-SEQUENCE:",
        "#EXT-X-PLAYLIST-TYPE:",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ];
    let lines: Vec<&str> = text.lines().collect();
    let n = lines
        .iter()
        .take_while(|l| HEADER.iter().any(|h| l.starts_with(h)))
        .count();
    (lines[..n].to_vec(), lines[n..].to_vec())
}

/// Asserts that `delta` is the Playlist Delta Update of `full` (both rendered from the same
/// state): the same media sequence, EXT-X-SKIP for the leading segments further than the
/// Skip Boundary from the end, version 9, and the rest of the text the tail of the full
/// playlist (with the EXT-X-MAP in force stated again before its first segment).
///
/// Spec: RFC 8216bis §6.2.5.1, §4.4.5.2, §8.
fn assert_delta_of(full: &LlPlaylist, delta: &LlPlaylist) {
    let n = delta.skipped as usize;
    assert!(n >= 1, "nothing skipped:\n{}", delta.text);
    assert_eq!(delta.version, 9, "{}", delta.text);
    assert_eq!(full.version, 6, "{}", full.text);
    assert_eq!(delta.media_sequence, full.media_sequence);
    assert_eq!(delta.discontinuity_sequence, full.discontinuity_sequence);
    // Exactly the segments further from the end than the Skip Boundary (within the
    // millisecond rounding of EXTINF).
    let boundary: f64 = full
        .server_control
        .as_deref()
        .and_then(|c| c.split(',').find_map(|a| a.strip_prefix("CAN-SKIP-UNTIL=")))
        .and_then(|v| v.parse().ok())
        .expect("CAN-SKIP-UNTIL");
    let remaining =
        |skipped: usize| -> f64 { full.segments[skipped..].iter().map(|s| s.duration).sum() };
    assert!(n < full.segments.len(), "the last segment is never skipped");
    assert!(
        remaining(n) >= boundary - 0.002,
        "skipped {n}: {}",
        delta.text
    );
    assert!(
        remaining(n + 1) < boundary + 0.002,
        "skipped only {n}: {}",
        delta.text
    );

    let (full_header, full_body) = split_header(&full.text);
    let (delta_header, delta_body) = split_header(&delta.text);
    let expected_header: Vec<String> = full_header
        .iter()
        .map(|l| {
            if l.starts_with("#EXT-X-VERSION:") {
                "#EXT-X-VERSION:9".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(delta_header, expected_header, "header:\n{}", delta.text);
    assert_eq!(
        delta_body.first().copied(),
        Some(format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={n}").as_str())
    );
    // The full playlist's lines after its n-th segment URI.
    let uri_lines: Vec<usize> = full_body
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .map(|(i, _)| i)
        .collect();
    let full_tail = &full_body[uri_lines[n - 1] + 1..];
    let mut delta_tail: Vec<&str> = delta_body[1..].to_vec();
    let restated = format!(
        "#EXT-X-MAP:URI=\"{}\"",
        full.segments[n].map.as_deref().expect("EXT-X-MAP")
    );
    if !full.segments[n].map_tag {
        let at = delta_tail
            .iter()
            .position(|l| *l == restated)
            .unwrap_or_else(|| panic!("{restated} not restated:\n{}", delta.text));
        assert!(
            delta_tail[..at]
                .iter()
                .all(|l| *l == "#EXT-X-DISCONTINUITY"),
            "{restated} after the first segment's tags:\n{}",
            delta.text
        );
        delta_tail.remove(at);
    }
    assert_eq!(
        delta_tail, full_tail,
        "delta:\n{}\nfull:\n{}",
        delta.text, full.text
    );
    // The same segments, parts and hint, but for where EXT-X-MAP is written.
    let essentials = |s: &Segment| {
        (
            s.msn,
            s.uri.clone(),
            s.duration,
            s.discontinuity,
            s.map.clone(),
            s.parts.clone(),
        )
    };
    let kept: Vec<_> = full.segments[n..].iter().map(essentials).collect();
    assert_eq!(
        delta.segments.iter().map(essentials).collect::<Vec<_>>(),
        kept
    );
    assert_eq!(delta.open_parts, full.open_parts);
    assert_eq!(delta.preload_hint, full.preload_hint);
}

/// The full playlist and its delta update as rendered from one state of the stream: a delta
/// fetched between two equal full playlists.
fn full_and_delta(server: &ServerProcess, key: &str) -> Option<(LlPlaylist, LlPlaylist)> {
    for _ in 0..20 {
        let before = get_ll(server, key, "").1?;
        let delta = get_ll(server, key, "_HLS_skip=YES").1?;
        let after = get_ll(server, key, "").1?;
        if before.text == after.text {
            return Some((before, delta));
        }
    }
    None
}

/// `_HLS_skip=YES` answers the full playlist until the window is long enough to skip, then
/// its delta update.
fn delta_updates_skip_the_oldest_segments(server: &ServerProcess, key: &str) {
    let mut pair = None;
    let skipping = wait_for(STREAM_TIMEOUT, || {
        let Some((full, delta)) = full_and_delta(server, key) else {
            return false;
        };
        if delta.skipped == 0 {
            // Nothing to skip yet: the answer is the full playlist.
            assert_eq!(delta.text, full.text);
            return false;
        }
        pair = Some((full, delta));
        true
    });
    assert!(
        skipping,
        "no delta update skipped anything:\n{}",
        server.logs()
    );
    let (full, delta) = pair.unwrap();
    assert!(
        full.segments.len() >= 7,
        "skipping with {} segments listed",
        full.segments.len()
    );
    assert_delta_of(&full, &delta);
}

#[test]
fn a_live_stream_answers_blocking_reloads_hints_and_delta_updates() {
    // One-second segments (a keyframe every second), so that the window is long enough for
    // delta updates after about eight seconds.
    let server = ServerProcess::start(&["--hls-time", "1"]);
    let key = "live";
    let mut publisher = Publisher::start(
        &one_second_gop_flv(),
        &server.rtmp_url(key),
        &["-stream_loop", "-1"],
    );
    let first = wait_ll(&server, key, "listed a segment", |p| {
        !p.segments.is_empty() && p.preload_hint.is_some()
    });
    assert_eq!(first.target_duration, 1, "{}", first.text);
    assert_well_formed(&first, true);
    let scratch = tempfile::tempdir().unwrap();

    blocking_reloads_wait_for_the_next_part(&server, key);
    the_hinted_part_is_held_and_sent(&server, key, scratch.path());
    cors_and_cache_headers(&server, key);
    bad_directives_are_refused(&server, key);
    delta_updates_skip_the_oldest_segments(&server, key);
    assert!(publisher.is_running(), "{}", publisher.logs());
}

/// The number of HTTP connections the server counts open.
fn http_connections(server: &ServerProcess) -> Option<f64> {
    let r = try_http("GET", &server.http_url("/metrics"), &[]).ok()?;
    (r.status == 200).then(|| metric_value(&r.text(), "rtmp_server_http_connections"))?
}

/// Waits until the server counts `n` HTTP connections open, the one asking included.
fn wait_http_connections(server: &ServerProcess, n: usize, timeout: Duration) -> bool {
    wait_for(timeout, || http_connections(server) == Some(n as f64))
}

/// Polls `requests` until each has its status line or was closed, or `timeout` passes.
fn wait_answers(requests: &mut [HeldRequest], timeout: Duration) -> bool {
    wait_for(timeout, || {
        requests.iter_mut().all(|r| {
            r.poll();
            r.closed || r.status().is_some()
        })
    })
}

/// Waits until `key`'s playlist stops changing (a publisher that sent everything and
/// paused), and returns it.
fn settled(server: &ServerProcess, key: &str) -> LlPlaylist {
    let mut before = String::new();
    let mut now = None;
    let still = wait_for(STREAM_TIMEOUT, || {
        std::thread::sleep(Duration::from_millis(300));
        now = get_ll(server, key, "").1;
        let text = now.as_ref().map(|p| p.text.clone()).unwrap_or_default();
        !text.is_empty() && std::mem::replace(&mut before, text.clone()) == text
    });
    assert!(still, "{key} never settled:\n{}", server.logs());
    now.unwrap()
}

#[test]
fn a_paused_stream_refuses_requests_too_far_ahead_and_times_out_the_rest() {
    let server = ServerProcess::start(&["--hls-time", "1"]);
    let key = "paused";
    let publisher = publish_and_pause(&server, key, &one_second_gop_flv());
    // Twelve keyframes a second apart close eleven segments; the last second stays open
    // with its parts listed.
    wait_ll(&server, key, "listed the file", |p| {
        p.last_msn() == Some(10)
    });
    let p = settled(&server, key);
    assert_well_formed(&p, true);
    let (last, open) = (p.last_msn().unwrap(), p.open_msn());
    let parts = p.open_parts.len() as u64;
    assert!(parts > 0, "{}", p.text);
    let hint = p.preload_hint.clone().expect("a hint");
    let hold = hold_limit(p.target_duration);
    // 3 s / 0.2 s: how many parts past the last one a request may ask (RFC 8216bis §6.2.5.2).
    let advance_part_limit = (3.0 / PART_TARGET).round() as u64;

    // What exists is answered at once.
    for query in [
        format!("_HLS_msn={last}"),
        "_HLS_msn=0&_HLS_part=0".to_string(),
        format!("_HLS_msn={last}&_HLS_part=0"),
        format!("_HLS_msn={open}&_HLS_part={}", parts - 1),
    ] {
        let (r, answer) = get_ll(&server, key, &query);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(answer.unwrap().text, p.text, "{query}");
    }
    // Further ahead than the stream can be soon: 400 at once, saying which directive.
    for (query, named) in [
        (format!("_HLS_msn={}", last + 3), "_HLS_msn"),
        (format!("_HLS_msn={}&_HLS_part=0", last + 3), "_HLS_msn"),
        (
            format!("_HLS_msn={open}&_HLS_part={}", parts + advance_part_limit),
            "_HLS_part",
        ),
        (
            format!("_HLS_msn={}&_HLS_part={advance_part_limit}", open + 1),
            "_HLS_part",
        ),
    ] {
        let r = get(&ll_url(&server, key, &query));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(named), "{query}: {:?}", r.text());
    }
    // What the paused stream never brings: held three target durations, then 503; all at
    // once, each on a connection of its own.
    let waits: Vec<String> = vec![
        ll_url(&server, key, &format!("_HLS_msn={open}")),
        ll_url(&server, key, &format!("_HLS_msn={}", last + 2)),
        ll_url(&server, key, &format!("_HLS_msn={open}&_HLS_part={parts}")),
        ll_url(
            &server,
            key,
            &format!(
                "_HLS_msn={open}&_HLS_part={}",
                parts - 1 + advance_part_limit
            ),
        ),
        ll_url(
            &server,
            key,
            &format!("_HLS_msn={}&_HLS_part={}", open + 1, advance_part_limit - 1),
        ),
        media_url(&server, key, &hint),
    ];
    let threads: Vec<_> = waits
        .into_iter()
        .map(|url| {
            std::thread::spawn(move || {
                let asked = Instant::now();
                let r = get(&url);
                (url, r, asked.elapsed())
            })
        })
        .collect();
    for t in threads {
        let (url, r, held) = t.join().unwrap();
        assert_eq!(r.status, 503, "{url}: {}", r.text());
        assert!(
            r.text().contains("three target durations"),
            "{url}: {:?}",
            r.text()
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{url}");
        // Held, not refused: at least half the hold limit, generously.
        assert!(held >= hold / 2, "{url}: answered after {held:?}");
    }

    // A request held when the publisher stops is answered with the ended playlist: with
    // EXT-X-ENDLIST the directives no longer apply (RFC 8216bis §6.2.5.2).
    assert!(
        wait_http_connections(&server, 1, STREAM_TIMEOUT),
        "earlier connections still open"
    );
    let path = format!("/live/{key}/{LL_PLAYLIST}?_HLS_msn={}", last + 2);
    let mut held = HeldRequest::send(server.http_port, &path).expect("connect");
    assert!(
        wait_http_connections(&server, 2, STREAM_TIMEOUT),
        "the held request is not counted"
    );
    held.poll();
    assert_eq!(
        held.status(),
        None,
        "answered before the end: {}",
        held.received()
    );
    publisher.finish();
    assert!(wait_answers(
        std::slice::from_mut(&mut held),
        STREAM_TIMEOUT
    ));
    assert_eq!(held.status(), Some(200), "{}", held.received());
    let ended = wait_for(STREAM_TIMEOUT, || {
        held.poll();
        held.received().contains("#EXT-X-ENDLIST\n")
    });
    assert!(ended, "{}", held.received());
    // And from now on every directive is answered at once.
    let (r, answer) = get_ll(&server, key, &format!("_HLS_msn={}&_HLS_part=3", last + 2));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(answer.unwrap().ended);
}

/// The connection cap of the server the held-request storm runs against.
const HELD_CAP: usize = 200;
/// Requests the storm opens, each on a connection of its own.
const HELD_STORM: usize = 2_000;
/// Descriptors the server may hold for a moment beyond its connections (see faults.rs).
const TRANSIENT_FDS: usize = 3;
/// How long a connection closed while its request is held may stay counted: generous, and
/// far shorter than the hold (three target durations of 4 s).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

fn server_fds(server: &ServerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("the server's fd folder")
        .count()
}

#[test]
fn thousands_of_held_requests_stay_within_the_cap_and_are_released() {
    let cap = HELD_CAP.to_string();
    // Segments of 4 s: blocked requests are held 12 s. The small test media keeps the
    // live stream's share of the server's memory small.
    let server = ServerProcess::start(&["--hls-time", "4", "--http-max-connections", &cap]);
    let source = one_second_gop_flv();
    let mut live = Publisher::start(&source, &server.rtmp_url("live"), &["-stream_loop", "-1"]);
    let _paused = publish_and_pause(&server, "paused", &source);
    // Keyframes at 4 s and 8 s close two segments; the last four seconds stay open.
    wait_ll(&server, "paused", "listed the file", |p| {
        p.last_msn() == Some(1)
    });
    let paused = settled(&server, "paused");
    let hold = hold_limit(paused.target_duration);
    assert_eq!(hold, Duration::from_secs(12), "{}", paused.text);
    let next = format!(
        "/live/paused/{LL_PLAYLIST}?_HLS_msn={}&_HLS_part={}",
        paused.open_msn(),
        paused.open_parts.len()
    );
    wait_ll(&server, "live", "listed a segment", |p| {
        !p.segments.is_empty()
    });

    // A client that goes away while its request is held frees its connection at once, not
    // when the hold ends.
    assert!(
        wait_http_connections(&server, 1, STREAM_TIMEOUT),
        "earlier connections still open"
    );
    let mut leaving = HeldRequest::send(server.http_port, &next).expect("connect");
    assert!(
        wait_http_connections(&server, 2, STREAM_TIMEOUT),
        "the held request is not counted"
    );
    leaving.poll();
    assert_eq!(leaving.status(), None, "{}", leaving.received());
    let sent = leaving.sent;
    drop(leaving);
    let released = wait_http_connections(&server, 1, RELEASE_TIMEOUT);
    assert!(
        released && sent.elapsed() < hold,
        "a connection closed while its request was held is still counted {:?} after the \
         request (held {hold:?} at most): the server did not notice the client leaving",
        sent.elapsed()
    );

    // The storm: every request held where there is a place, the rest refused at accept.
    rtmp_server::server::raise_open_file_limit().expect("the test may raise its own limit");
    let disk_playlist = server.stream_dir("live").join(LL_PLAYLIST);
    let on_disk = || {
        std::fs::read_to_string(&disk_playlist)
            .ok()
            .map(|t| parse_ll(&t))
    };
    let disk_before = on_disk().expect("the live playlist on disk");
    assert!(
        wait_http_connections(&server, 1, STREAM_TIMEOUT),
        "earlier connections still open"
    );
    let refused_before = server
        .metric("rtmp_server_http_connections_refused_total")
        .unwrap_or(0.0);
    let fds_before = server_fds(&server);
    let rss_before = server.rss_kib();
    let mut storm: Vec<HeldRequest> = (0..HELD_STORM)
        .map(|i| {
            HeldRequest::send(server.http_port, &next)
                .unwrap_or_else(|e| panic!("storm request {i}: {e}"))
        })
        .collect();
    let mut peak_fds = 0;
    let all_answered = wait_for(hold + STREAM_TIMEOUT, || {
        peak_fds = peak_fds.max(server_fds(&server));
        storm.iter_mut().all(|r| {
            r.poll();
            r.closed || r.status().is_some()
        })
    });
    assert!(all_answered, "storm requests neither answered nor refused");
    let answered: Vec<&HeldRequest> = storm.iter().filter(|r| r.status().is_some()).collect();
    let refused = storm
        .iter()
        .filter(|r| r.closed && r.status().is_none())
        .count();
    assert_eq!(answered.len() + refused, HELD_STORM);
    // All the places but those of the last requests for the metrics, if the server had
    // not seen them closed yet.
    assert!(
        answered.len() <= HELD_CAP && answered.len() + 3 >= HELD_CAP,
        "{} held, {refused} refused",
        answered.len()
    );
    for r in &answered {
        assert_eq!(r.status(), Some(503), "{}", r.received());
        let held = r.held().expect("answered");
        assert!(
            held >= hold / 2,
            "answered after {held:?}: {}",
            r.received()
        );
    }
    assert!(
        peak_fds <= fds_before + HELD_CAP + TRANSIENT_FDS,
        "the server held up to {peak_fds} descriptors, {fds_before} before the storm"
    );
    // Ingest went on meanwhile: the playlist on disk advanced.
    let advanced = wait_for(STREAM_TIMEOUT, || {
        on_disk().is_some_and(|p| p.last_msn() > disk_before.last_msn())
    });
    assert!(advanced, "ingest stalled during the storm");

    // Once the clients are gone, everything they held is given back.
    drop(answered);
    drop(storm);
    assert!(
        wait_http_connections(&server, 1, STREAM_TIMEOUT),
        "storm connections still counted: {:?}",
        http_connections(&server)
    );
    let refused_total = server
        .metric("rtmp_server_http_connections_refused_total")
        .unwrap_or(0.0);
    assert_eq!(
        refused_total - refused_before,
        refused as f64,
        "refused at accept"
    );
    let fds_after = wait_for(STREAM_TIMEOUT, || {
        server_fds(&server) <= fds_before + TRANSIENT_FDS
    });
    assert!(
        fds_after,
        "{} descriptors after the storm, {fds_before} before",
        server_fds(&server)
    );
    let rss = server.rss_kib();
    assert!(
        rss <= rss_before + RSS_GROWTH_KIB,
        "RSS {rss_before} KiB before the storm, {rss} KiB after"
    );

    // The live stream still plays: the next part is answered.
    let p = get_ll(&server, "live", "").1.expect("the live playlist");
    let last = p.last_part().expect("a part");
    let query = format!("_HLS_msn={}&_HLS_part={}", last.msn, last.index + 1);
    let (r, answer) = get_ll(&server, "live", &query);
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    assert!(
        lists_asked_part(&answer.unwrap(), last.msn, last.index + 1),
        "{query}"
    );
    assert!(live.is_running(), "{}", live.logs());
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}
