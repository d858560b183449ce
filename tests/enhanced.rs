//! Enhanced RTMP end to end: ffmpeg 9 publishing HEVC, AV1, VP9, Opus and multitrack H.264
//! live over RTMP to the real server binary, the CMAF (fragmented MP4) output fetched over
//! HTTP and decoded by ffmpeg 9; hand-made Enhanced tags that must end their connection
//! while another stream plays on.
//!
//! Each test runs its own server on ephemeral ports, and every process it starts ends with
//! it (by its own id). Waits are generous polls (a busy 2-core machine); nothing is timed.
//!
//! Spec: Enhanced RTMP v2 (veovera) "Enhanced Video", "Enhanced Audio", "Multitrack
//! Streaming via Enhanced RTMP"; RFC 8216bis §4.4.6 (multivariant playlists), §6.2.5.2
//! (blocking playlist reload); ISO/IEC 14496-12 §8.8.12 (`tfdt`), §8.4.2 (`mdhd`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::llhls::{LlPlaylist, parse_ll};
use common::*;
use rtmp_server::flv::tag::TagType;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::message::type_id;
use serde_json::Value;

/// Segments are cut every second (`--hls-time 1`) on the encoders' 1 s keyframe interval,
/// so a few seconds of publishing list several segments.
const SERVER_ARGS: &[&str] = &["--hls-time", "1"];
/// Frames a second of every encode here.
const FPS: f64 = 30.0;
/// How long the single-codec encoders publish.
const PUBLISH_SECONDS: u32 = 8;
/// How long the multitrack encoder publishes: long enough for its checks that need it live
/// (the multivariant playlist, the stats API, a blocking reload) after four segments.
const MULTITRACK_SECONDS: u32 = 14;
/// Complete segments a playlist lists before the test reads it.
const SEGMENTS: usize = 4;
/// The size every encode here has (the multitrack one's first rendition).
const SIZE: (u64, u64) = (320, 180);
/// How far the decoded frame count may be from the listed duration times the frame rate:
/// EXTINF values are rounded to the millisecond.
const FRAME_SLACK: f64 = 2.0;

/// A keyframe every second exactly (no scene-cut keyframes), as segments need.
const GOP_1S: &[&str] = &["-g", "30", "-keyint_min", "30"];

// ---------------------------------------------------------------------------------------
// Single-codec streams: HEVC + AAC, AV1 + Opus, VP9 + Opus.
// ---------------------------------------------------------------------------------------

/// What one single-codec stream must come out as.
struct Expect {
    key: &'static str,
    /// ffmpeg 9's encoder options after the inputs.
    codec_args: &'static [&'static str],
    /// ffprobe's codec_name of the video and audio stream.
    video_codec: &'static str,
    audio_codec: &'static str,
    /// How the stats API's codec strings (RFC 6381) start.
    api_video: &'static str,
    api_audio: &'static str,
}

#[test]
fn hevc_aac() {
    single_codec(Expect {
        key: "hevc",
        codec_args: &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-b:v",
            "300k",
            // No open GOPs: a segment starts with a picture that needs nothing before it.
            "-x265-params",
            "keyint=30:min-keyint=30:scenecut=0:open-gop=0:log-level=error",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ],
        video_codec: "hevc",
        audio_codec: "aac",
        api_video: "hvc1.",
        api_audio: "mp4a.40.2",
    });
}

#[test]
fn av1_opus() {
    single_codec(Expect {
        key: "av1",
        codec_args: &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-b:v",
            "300k",
            "-g",
            "30",
            "-svtav1-params",
            "scd=0",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
        ],
        video_codec: "av1",
        audio_codec: "opus",
        api_video: "av01.",
        api_audio: "opus",
    });
}

#[test]
fn vp9_opus() {
    single_codec(Expect {
        key: "vp9",
        codec_args: &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
        ],
        video_codec: "vp9",
        audio_codec: "opus",
        api_video: "vp09.",
        api_audio: "opus",
    });
}

/// Publishes the encode live, and checks what a viewer gets: `index.m3u8` is the CMAF
/// playlist (no MPEG-TS for these codecs), `llhls.m3u8` the same window; the init section
/// and the listed segments decode without an error, with the right codecs and size and as
/// many frames as the segments last; the stats API names the codecs.
fn single_codec(expect: Expect) {
    let server = ServerProcess::start(SERVER_ARGS);
    let key = expect.key;
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let mut publisher = Publisher::ffmpeg9_live(
        &server.rtmp_url(key),
        &size,
        expect.codec_args,
        PUBLISH_SECONDS,
    );
    let context = |publisher: &Publisher| {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    };

    let index = wait_segments(&server, &format!("/live/{key}/index.m3u8"), SEGMENTS)
        .unwrap_or_else(|| {
            panic!(
                "no {SEGMENTS} segments in index.m3u8\n{}",
                context(&publisher)
            )
        });

    // The stats API while the stream is live (checked after the media).
    let stats = api_stream(&server, key);

    // index.m3u8 is the fragmented-MP4 playlist; llhls.m3u8 serves the same window.
    assert!(index.text.contains("#EXT-X-MAP:"), "{}", index.text);
    assert!(
        !index.text.contains(".ts"),
        "MPEG-TS listed:\n{}",
        index.text
    );
    assert!(
        index.segments.iter().all(|s| s.uri.ends_with(".m4s")),
        "{}",
        index.text
    );
    let ll = get(&server.http_url(&format!("/live/{key}/llhls.m3u8")));
    assert_eq!(ll.status, 200, "llhls.m3u8");
    let ll = parse_ll(&ll.text());
    assert_eq!(ll.maps(), index.maps(), "{}\n{}", ll.text, index.text);
    assert!(ll.part_target.is_some(), "no EXT-X-PART-INF:\n{}", ll.text);

    // The listed media, decoded.
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, init) = download(
        &server,
        &format!("/live/{key}"),
        &index,
        dir.path(),
        "out.mp4",
    );
    let decoded = decode(&file);
    assert_eq!(decoded.errors, "", "decoding {key}");
    let streams = probe_streams(&file);
    assert!(
        streams.contains(&format!("codec_name={}|", expect.video_codec)),
        "{streams}"
    );
    assert!(
        streams.contains(&format!("codec_name={}|", expect.audio_codec)),
        "{streams}"
    );
    check_video(&decoded, &index, SIZE);
    check_audio(&decoded, &index);
    assert_eq!(
        init_video_size(&init),
        Some(SIZE),
        "the init section's sample entry size"
    );

    // The stats API as it was while the stream was live.
    let video = &stats["video"];
    let audio = &stats["audio"];
    assert!(
        video["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with(expect.api_video)),
        "video codec in {stats}"
    );
    assert_eq!(video["width"], SIZE.0, "{stats}");
    assert_eq!(video["height"], SIZE.1, "{stats}");
    assert!(
        audio["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with(expect.api_audio)),
        "audio codec in {stats}"
    );
    assert_eq!(audio["sample_rate"], 48000, "{stats}");
    assert_eq!(audio["channels"], 2, "{stats}");
    let tracks = stats["tracks"].as_array().expect("tracks array");
    assert_eq!(tracks.len(), 2, "{stats}");
    assert!(
        tracks
            .iter()
            .any(|t| t["kind"] == "video" && t["track"] == 0 && t["width"] == SIZE.0),
        "{stats}"
    );
    assert!(
        tracks
            .iter()
            .any(|t| t["kind"] == "audio" && t["track"] == 0 && t["sample_rate"] == 48000),
        "{stats}"
    );
    check_stream_figures(&stats);

    let status = publisher.wait(STREAM_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "the publisher ended with {status:?}\n{}",
        context(&publisher)
    );
}

// ---------------------------------------------------------------------------------------
// Multitrack: three H.264 renditions and AAC from one ffmpeg 9.
// ---------------------------------------------------------------------------------------

/// The renditions' sizes, in track order.
const RENDITIONS: [(u64, u64); 3] = [(320, 180), (256, 144), (160, 90)];

#[test]
fn multitrack() {
    let server = ServerProcess::start(SERVER_ARGS);
    let key = "multi";
    // ffmpeg 9 writes every video stream after the first as Multitrack OneTrack packets
    // (track ids 1 and 2), as testdata/flv/make.sh makes h264_multitrack.flv.
    let mut args: Vec<&str> = vec![
        "-filter_complex",
        "[0:v]split=3[a][b][c];[b]scale=256:144[b2];[c]scale=160:90[c2]",
        "-map",
        "[a]",
        "-map",
        "[b2]",
        "-map",
        "[c2]",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-b:v:0",
        "300k",
        "-b:v:1",
        "200k",
        "-b:v:2",
        "100k",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    ];
    args.extend_from_slice(GOP_1S);
    let mut publisher =
        Publisher::ffmpeg9_live(&server.rtmp_url(key), "320x180", &args, MULTITRACK_SECONDS);
    let context = |publisher: &Publisher| {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    };
    let base = format!("/live/{key}");

    // Every rendition lists a few segments (the multivariant playlist waits for them all).
    let mut renditions = BTreeMap::new();
    for name in ["v0", "v1", "v2", "a0"] {
        let playlist = wait_segments(&server, &format!("{base}/{name}/llhls.m3u8"), SEGMENTS)
            .unwrap_or_else(|| {
                panic!(
                    "no {SEGMENTS} segments in {name}/llhls.m3u8\n{}",
                    context(&publisher)
                )
            });
        renditions.insert(name, playlist);
    }

    // index.m3u8 and llhls.m3u8: the multivariant playlist.
    let index = get(&server.http_url(&format!("{base}/index.m3u8")));
    assert_eq!(index.status, 200, "index.m3u8\n{}", context(&publisher));
    let text = index.text();
    let ll = get(&server.http_url(&format!("{base}/llhls.m3u8")));
    assert_eq!(ll.status, 200, "llhls.m3u8");
    let ll_variants = parse_multivariant(&ll.text());
    let variants = parse_multivariant(&text);
    assert_eq!(
        variants.iter().map(|v| &v.uri).collect::<Vec<_>>(),
        ll_variants.iter().map(|v| &v.uri).collect::<Vec<_>>(),
        "index.m3u8:\n{text}\nllhls.m3u8:\n{}",
        ll.text()
    );
    assert!(!text.contains("#EXTINF"), "a media playlist:\n{text}");
    assert_eq!(variants.len(), 3, "{text}");
    // Lowest bandwidth first: the variant players start with.
    let bandwidths: Vec<u64> = variants
        .iter()
        .map(|v| {
            attribute(&v.attributes, "BANDWIDTH")
                .and_then(|b| b.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(bandwidths.windows(2).all(|w| w[0] <= w[1]), "{text}");
    for (i, size) in RENDITIONS.iter().enumerate() {
        let uri = format!("v{i}/llhls.m3u8");
        let variant = variants
            .iter()
            .find(|v| v.uri == uri)
            .unwrap_or_else(|| panic!("no variant {uri}:\n{text}"));
        let attr = |name: &str| attribute(&variant.attributes, name);
        let resolution = format!("{}x{}", size.0, size.1);
        assert_eq!(
            attr("RESOLUTION").as_deref(),
            Some(&resolution[..]),
            "{text}"
        );
        let bandwidth: u64 = attr("BANDWIDTH").and_then(|b| b.parse().ok()).unwrap_or(0);
        assert!(bandwidth > 0, "BANDWIDTH in {text}");
        let average: u64 = attr("AVERAGE-BANDWIDTH")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        assert!(average > 0, "AVERAGE-BANDWIDTH in {text}");
        let codecs = attr("CODECS").unwrap_or_default();
        assert!(
            codecs.contains("avc1.") && codecs.contains("mp4a.40.2"),
            "CODECS in {text}"
        );
        let rate: f64 = attr("FRAME-RATE")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0);
        assert!((rate - FPS).abs() < 0.01, "FRAME-RATE in {text}");
        assert_eq!(attr("AUDIO").as_deref(), Some("audio"), "{text}");
    }
    let media: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
        .collect();
    assert_eq!(media.len(), 1, "{text}");
    assert_eq!(
        attribute(media[0], "TYPE").as_deref(),
        Some("AUDIO"),
        "{text}"
    );
    assert_eq!(
        attribute(media[0], "GROUP-ID").as_deref(),
        Some("audio"),
        "{text}"
    );
    assert_eq!(
        attribute(media[0], "URI").as_deref(),
        Some("a0/llhls.m3u8"),
        "{text}"
    );

    // The stats API while the stream is live (checked at the end).
    let stats = api_stream(&server, key);

    // A blocking reload for the first part of the segment after the open one is answered
    // once that part exists.
    let now = get(&server.http_url(&format!("{base}/v1/llhls.m3u8")));
    assert_eq!(now.status, 200, "v1/llhls.m3u8");
    let msn = parse_ll(&now.text()).open_msn() + 1;
    let blocked =
        get(&server.http_url(&format!("{base}/v1/llhls.m3u8?_HLS_msn={msn}&_HLS_part=0")));
    assert_eq!(
        blocked.status,
        200,
        "blocking reload for {msn}.0: {}\n{}",
        blocked.text(),
        context(&publisher)
    );
    let answered = parse_ll(&blocked.text());
    assert!(
        answered.lists_part(msn, 0),
        "part {msn}.0 not listed:\n{}",
        answered.text
    );

    // Every rendition's media decodes clean, at its size, with as many frames as listed.
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, size) in RENDITIONS.into_iter().enumerate() {
        let name = format!("v{i}");
        let playlist = &renditions[&name[..]];
        let (file, init) = download(
            &server,
            &format!("{base}/{name}"),
            playlist,
            dir.path(),
            &format!("{name}.mp4"),
        );
        assert_eq!(
            init_video_size(&init),
            Some(size),
            "{name}: the init section's size"
        );
        let decoded = decode(&file);
        assert_eq!(decoded.errors, "", "decoding {name}");
        assert!(
            probe_streams(&file).contains("codec_name=h264|"),
            "{name}: {}",
            probe_streams(&file)
        );
        check_video(&decoded, playlist, size);
    }
    let audio = &renditions["a0"];
    let (file, _) = download(&server, &format!("{base}/a0"), audio, dir.path(), "a0.mp4");
    let decoded = decode(&file);
    assert_eq!(decoded.errors, "", "decoding a0");
    assert!(
        probe_streams(&file).contains("codec_name=aac|"),
        "{}",
        probe_streams(&file)
    );
    check_audio(&decoded, audio);

    // The video renditions are cut at the same media times: each segment number they all
    // list starts at the same decode time (its first `tfdt`) and lasts as long.
    let starts: Vec<BTreeMap<u64, (f64, f64)>> = (0..RENDITIONS.len())
        .map(|i| {
            let name = format!("v{i}");
            segment_starts(&server, &format!("{base}/{name}"), &renditions[&name[..]])
        })
        .collect();
    let common: Vec<u64> = starts[0]
        .keys()
        .filter(|msn| starts.iter().all(|s| s.contains_key(msn)))
        .copied()
        .collect();
    assert!(
        !common.is_empty(),
        "no segment number listed by every rendition: {starts:?}"
    );
    for msn in common {
        let (start, duration) = starts[0][&msn];
        for (i, s) in starts.iter().enumerate().skip(1) {
            let (other_start, other_duration) = s[&msn];
            assert!(
                (start - other_start).abs() < 0.0015 && (duration - other_duration).abs() < 0.0015,
                "segment {msn}: v0 starts at {start} s for {duration} s, v{i} at {other_start} s \
                 for {other_duration} s"
            );
        }
    }

    // The stats API as it was while the stream was live: four tracks.
    let tracks = stats["tracks"].as_array().expect("tracks array");
    assert_eq!(tracks.len(), 4, "{stats}");
    for (i, size) in RENDITIONS.iter().enumerate() {
        assert!(
            tracks.iter().any(|t| t["kind"] == "video"
                && t["track"] == i
                && t["width"] == size.0
                && t["height"] == size.1
                && t["codec"].as_str().is_some_and(|c| c.starts_with("avc1."))),
            "video track {i} in {stats}"
        );
    }
    assert!(
        tracks.iter().any(|t| t["kind"] == "audio"
            && t["codec"] == "mp4a.40.2"
            && t["sample_rate"] == 48000
            && t["channels"] == 2),
        "audio track in {stats}"
    );
    assert_eq!(stats["video"]["width"], SIZE.0, "{stats}");
    check_stream_figures(&stats);

    let status = publisher.wait(STREAM_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "the publisher ended with {status:?}\n{}",
        context(&publisher)
    );
}

/// One `#EXT-X-STREAM-INF` and its URI.
#[derive(Debug)]
struct VariantLine {
    attributes: String,
    uri: String,
}

fn parse_multivariant(text: &str) -> Vec<VariantLine> {
    assert!(text.starts_with("#EXTM3U\n"), "not a playlist: {text}");
    let mut lines = text.lines();
    let mut variants = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let uri = lines.next().expect("a URI after EXT-X-STREAM-INF");
            variants.push(VariantLine {
                attributes: attributes.to_string(),
                uri: uri.to_string(),
            });
        }
    }
    variants
}

/// The value of attribute `name` in an attribute list, quotes removed (commas inside
/// quoted values, as in CODECS, are kept).
fn attribute(list: &str, name: &str) -> Option<String> {
    let mut rest =
        list.split_once(':').map_or(
            list,
            |(tag, rest)| {
                if tag.starts_with('#') { rest } else { list }
            },
        );
    while !rest.is_empty() {
        let (attr, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if attr == name {
            return Some(value.to_string());
        }
        rest = next;
    }
    None
}

/// For each segment the playlist lists: its Media Sequence Number, the decode time its
/// first fragment starts at (seconds: `tfdt` over the init section's `mdhd` timescale),
/// and its EXTINF.
fn segment_starts(
    server: &ServerProcess,
    base: &str,
    playlist: &LlPlaylist,
) -> BTreeMap<u64, (f64, f64)> {
    let maps = playlist.maps();
    assert_eq!(maps.len(), 1, "one init section:\n{}", playlist.text);
    let init = fetch(server, &format!("{base}/{}", maps[0]));
    let timescale = mdhd_timescale(&init).expect("mdhd timescale in the init section");
    playlist
        .segments
        .iter()
        .map(|s| {
            let data = fetch(server, &format!("{base}/{}", s.uri));
            let tfdt = first_tfdt(&data).unwrap_or_else(|| panic!("no tfdt in {}", s.uri));
            (s.msn, (tfdt as f64 / f64::from(timescale), s.duration))
        })
        .collect()
}

/// The boxes of an ISO BMFF byte range: (type, payload).
fn boxes(mut data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[4..8].try_into().unwrap();
        let (header, size) = match size {
            0 => (8, data.len()),
            1 if data.len() >= 16 => (
                16,
                u64::from_be_bytes(data[8..16].try_into().unwrap()) as usize,
            ),
            n => (8, n),
        };
        if size < header || size > data.len() {
            break;
        }
        out.push((kind, &data[header..size]));
        data = &data[size..];
    }
    out
}

/// The payload of the first box at `path` (each step a child of the one before).
fn find_box<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let payload = boxes(data).into_iter().find(|(k, _)| k == *first)?.1;
    if rest.is_empty() {
        Some(payload)
    } else {
        find_box(payload, rest)
    }
}

fn mdhd_timescale(init: &[u8]) -> Option<u32> {
    let mdhd = find_box(init, &[b"moov", b"trak", b"mdia", b"mdhd"])?;
    // version 1: 8-byte creation and modification times; version 0: 4-byte.
    let at = if mdhd.first()? == &1 { 20 } else { 12 };
    Some(u32::from_be_bytes(mdhd.get(at..at + 4)?.try_into().ok()?))
}

/// The width and height of the first sample entry of the init section's first track (a
/// VisualSampleEntry: ISO/IEC 14496-12 §12.1.3).
fn init_video_size(init: &[u8]) -> Option<(u64, u64)> {
    let stsd = find_box(
        init,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )?;
    // version and flags, entry_count, then the entries as boxes.
    let (_, entry) = boxes(stsd.get(8..)?).into_iter().next()?;
    // 6 reserved, data_reference_index, pre_defined, reserved, 3 x pre_defined: 24 bytes.
    let width = u16::from_be_bytes(entry.get(24..26)?.try_into().ok()?);
    let height = u16::from_be_bytes(entry.get(26..28)?.try_into().ok()?);
    Some((u64::from(width), u64::from(height)))
}

fn first_tfdt(segment: &[u8]) -> Option<u64> {
    let tfdt = find_box(segment, &[b"moof", b"traf", b"tfdt"])?;
    if tfdt.first()? == &1 {
        Some(u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?))
    } else {
        Some(u64::from(u32::from_be_bytes(
            tfdt.get(4..8)?.try_into().ok()?,
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Bad Enhanced tags.
// ---------------------------------------------------------------------------------------

/// Hand-made Enhanced video tags the server must refuse: each ends its connection with a
/// logged reason, while a good H.264 stream on another key keeps producing segments.
#[test]
fn bad_enhanced_tags_end_their_connection() {
    let bystander = Bystander::start(SERVER_ARGS);
    let tags = flv_tags(&testdata("flv/h264_multitrack.flv"));
    let hevc = flv_tags(&testdata("flv/hevc_aac.flv"));

    // A multitrack OneTrack SequenceStart of track 1 as ffmpeg 9 writes it:
    // 0x96 (ex header, keyframe, Multitrack), 0x00 (OneTrack, SequenceStart), 'avc1',
    // track id, AVCDecoderConfigurationRecord.
    let one_track_start = tags
        .iter()
        .find(|t| t.tag_type == TagType::Video && t.body.starts_with(&[0x96, 0x00]))
        .expect("a OneTrack SequenceStart in h264_multitrack.flv")
        .body
        .to_vec();
    assert_eq!(&one_track_start[2..6], b"avc1");
    let avc_record = one_track_start[7..].to_vec();

    // (a) ManyTracks (0x10: ManyTracks, SequenceStart) whose one track announces 1024
    // bytes where 16 follow.
    let mut many_tracks = vec![0x96, 0x10];
    many_tracks.extend_from_slice(b"avc1");
    many_tracks.push(0); // track id
    many_tracks.extend_from_slice(&[0x00, 0x04, 0x00]); // sizeOfVideoTrack = 1024
    many_tracks.extend_from_slice(&avc_record[..16]);

    // (b) An HEVC SequenceStart (0x90, 'hvc1') with the first 12 bytes of the 23-byte
    // fixed part of its HEVCDecoderConfigurationRecord.
    let hevc_start = hevc
        .iter()
        .find(|t| t.tag_type == TagType::Video && t.body.starts_with(&[0x90]))
        .expect("an HEVC SequenceStart in hevc_aac.flv");
    assert_eq!(&hevc_start.body[1..5], b"hvc1");
    let truncated_hevc = hevc_start.body[..5 + 12].to_vec();

    // (c) The OneTrack SequenceStart as track 200 (the default limit is 8 video tracks).
    let mut track_200 = one_track_start.clone();
    track_200[6] = 200;

    // (d) A SequenceStart of an unknown FourCC, 'vvc1'.
    let mut vvc = vec![0x90];
    vvc.extend_from_slice(b"vvc1");
    vvc.extend_from_slice(&avc_record);

    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "ManyTracks track size past the message end",
            many_tracks,
            &["sizeOfTrack", "runs past the end of the message"],
        ),
        (
            "truncated HEVCDecoderConfigurationRecord",
            truncated_hevc,
            &["HEVC track 0", "HEVCDecoderConfigurationRecord"],
        ),
        (
            "track id 200",
            track_200,
            &["track id 200 is over the limit of 8"],
        ),
        (
            "unknown FourCC vvc1",
            vvc,
            &["unsupported video codec", "vvc1"],
        ),
    ];
    for (i, (case, body, reasons)) in cases.into_iter().enumerate() {
        let key = format!("bad{i}");
        let mut c = bystander.raw();
        let stream = c.start_publish(&key);
        // Sent once; a server that ignores it sees the same bytes again a second later.
        c.media(type_id::VIDEO, stream, RtmpTimestamp(0), &body)
            .expect("send the tag");
        let _ = c.media(type_id::VIDEO, stream, RtmpTimestamp(33), &body);
        bystander.assert_closed(&mut c, case, reasons[0]);
        let log = bystander.server.logs();
        let line = log
            .lines()
            .find(|l| l.contains(reasons[0]))
            .expect("the line assert_closed found");
        for reason in reasons {
            assert!(line.contains(reason), "{case}: {reason:?} not in {line:?}");
        }
        assert!(
            line.contains(&key),
            "{case}: the line does not name the stream: {line:?}"
        );
        assert!(
            c.status_codes()
                .iter()
                .any(|s| s == "NetStream.Publish.Failed"),
            "{case}: the publisher was not told: {:?}",
            c.status_codes()
        );
        assert_eq!(
            get(&bystander
                .server
                .http_url(&format!("/live/{key}/index.m3u8")))
            .status,
            404,
            "{case}: a playlist for the refused stream"
        );
    }
    bystander.assert_unharmed();
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// Polls `path` until it is a Low-Latency media playlist listing at least `segments`
/// complete segments.
fn wait_segments(server: &ServerProcess, path: &str, segments: usize) -> Option<LlPlaylist> {
    let url = server.http_url(path);
    let mut playlist = None;
    wait_for(STREAM_TIMEOUT, || {
        let r = get(&url);
        playlist = (r.status == 200 && r.text().contains("#EXTINF"))
            .then(|| parse_ll(&r.text()))
            .filter(|p| p.segments.len() >= segments);
        playlist.is_some()
    })
    .then_some(())?;
    playlist
}

/// The figures `/api/streams` gives of any stream, read once the stream listed [`SEGMENTS`]
/// segments of 1 s: its segment count, target duration and keyframe interval.
fn check_stream_figures(stats: &Value) {
    assert!(
        stats["segments"].as_u64() >= Some(SEGMENTS as u64),
        "segments in {stats}"
    );
    assert_eq!(stats["target_duration"], 1, "target_duration in {stats}");
    assert!(
        stats["keyframe_interval_s"]
            .as_f64()
            .is_some_and(|k| (k - 1.0).abs() < 0.05),
        "keyframe_interval_s in {stats}"
    );
}

/// `GET /api/streams/{key}`, parsed.
fn api_stream(server: &ServerProcess, key: &str) -> Value {
    let r = get(&server.http_url(&format!("/api/streams/{key}")));
    assert_eq!(r.status, 200, "/api/streams/{key}: {}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    // The one stream, or a list holding it.
    match v.get("streams") {
        Some(list) => list
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == key))
            .cloned()
            .unwrap_or(Value::Null),
        None => v,
    }
}

fn fetch(server: &ServerProcess, path: &str) -> Vec<u8> {
    let r = get(&server.http_url(path));
    assert_eq!(r.status, 200, "GET {path}");
    r.body
}

/// The init section and every listed segment of `playlist` (under `base`), concatenated
/// into `dir/name`: one fragmented MP4 file. Returns its path and the init section.
fn download(
    server: &ServerProcess,
    base: &str,
    playlist: &LlPlaylist,
    dir: &Path,
    name: &str,
) -> (PathBuf, Vec<u8>) {
    let maps = playlist.maps();
    assert_eq!(maps.len(), 1, "one init section:\n{}", playlist.text);
    assert!(maps[0].ends_with(".mp4"), "{}", playlist.text);
    let init = fetch(server, &format!("{base}/{}", maps[0]));
    let mut data = init.clone();
    for segment in &playlist.segments {
        assert!(segment.uri.ends_with(".m4s"), "{}", playlist.text);
        data.extend(fetch(server, &format!("{base}/{}", segment.uri)));
    }
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write the downloaded media");
    (path, init)
}

/// One decoded stream, as ffmpeg 9's framecrc lists it.
#[derive(Debug, Default)]
struct DecodedStream {
    media_type: String,
    /// `WxH` of decoded pictures.
    dimensions: Option<String>,
    frames: usize,
    /// Sum of the frames' durations, seconds.
    seconds: f64,
}

#[derive(Debug)]
struct Decoded {
    /// ffmpeg's complaints (`-v error`); empty when clean.
    errors: String,
    streams: Vec<DecodedStream>,
}

impl Decoded {
    fn of_type(&self, media_type: &str) -> Vec<&DecodedStream> {
        self.streams
            .iter()
            .filter(|s| s.media_type == media_type)
            .collect()
    }
}

/// Decodes every stream of `path` with ffmpeg 9 (`-v error`, `-f framecrc`: a line per
/// decoded frame, every frame passed through).
fn decode(path: &Path) -> Decoded {
    let out = Command::new(ffmpeg9())
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framecrc",
            "-",
        ])
        .output()
        .expect("ffmpeg 9 runs");
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!("\nexit status {}", out.status));
    }
    let mut streams: BTreeMap<usize, DecodedStream> = BTreeMap::new();
    let mut time_bases: BTreeMap<usize, f64> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(header) = line.strip_prefix('#') {
            // "#tb 0: 1/30", "#media_type 0: video", "#dimensions 0: 320x180".
            let Some((left, value)) = header.split_once(": ") else {
                continue;
            };
            let Some((field, index)) = left.split_once(' ') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let stream = streams.entry(index).or_default();
            match field {
                "tb" => {
                    let (n, d) = value.split_once('/').expect("time base n/d");
                    let tb = n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap();
                    time_bases.insert(index, tb);
                }
                "media_type" => stream.media_type = value.to_string(),
                "dimensions" => stream.dimensions = Some(value.to_string()),
                _ => {}
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 5 {
            continue;
        }
        let index: usize = fields[0].parse().expect("stream index");
        let duration: f64 = fields[3].parse().unwrap_or(0.0);
        let stream = streams.entry(index).or_default();
        stream.frames += 1;
        stream.seconds += duration * time_bases.get(&index).copied().unwrap_or(0.0);
    }
    Decoded {
        errors,
        streams: streams.into_values().collect(),
    }
}

/// One video stream of `size`, with as many frames as the listed segments last.
fn check_video(decoded: &Decoded, playlist: &LlPlaylist, size: (u64, u64)) {
    let video = decoded.of_type("video");
    assert_eq!(video.len(), 1, "{decoded:?}");
    let video = video[0];
    assert_eq!(
        video.dimensions.as_deref(),
        Some(&format!("{}x{}", size.0, size.1)[..]),
        "{decoded:?}"
    );
    let listed: f64 = playlist.segments.iter().map(|s| s.duration).sum();
    let expected = listed * FPS;
    assert!(
        (video.frames as f64 - expected).abs() <= FRAME_SLACK,
        "{} frames decoded from segments listed as {listed} s ({expected} frames):\n{}",
        video.frames,
        playlist.text
    );
}

/// One audio stream, decoded for about as long as the listed segments last (audio frames
/// do not end where video segments are cut: a frame's worth either side).
fn check_audio(decoded: &Decoded, playlist: &LlPlaylist) {
    let audio = decoded.of_type("audio");
    assert_eq!(audio.len(), 1, "{decoded:?}");
    let listed: f64 = playlist.segments.iter().map(|s| s.duration).sum();
    assert!(
        audio[0].frames > 0 && (audio[0].seconds - listed).abs() < 0.1,
        "{:.3} s of audio in segments listed as {listed} s: {decoded:?}",
        audio[0].seconds
    );
}
