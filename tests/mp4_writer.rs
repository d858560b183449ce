//! The fragmented-MP4 writer over real media: the test FLV files turned into an init segment
//! and fragments of about 0.2 s (one per LL-HLS part, every track in one moof), then read
//! back by ffprobe (streams, and every packet's timing, size and key flag against the
//! source's), decoded in full by ffmpeg, and the init segment read by mp4parse.

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use rtmp_server::flv::aac::AudioSpecificConfig;
use rtmp_server::flv::avc::AvcDecoderConfig;
use rtmp_server::flv::tag::{AudioBody, AudioMessage, FrameType, TagType, VideoBody, VideoMessage};
use rtmp_server::mp4::{
    SampleEntry, SampleInfo, TrackConfig, TrackId, TrackRun, write_fragment, write_init,
};

use common::{decode_errors, flv_tags, probe_streams, testdata};

/// The video track's timescale: the 90 kHz clock of MPEG systems, exact for FLV's ms.
const VIDEO_TIMESCALE: u32 = 90_000;

/// Samples an AAC frame decodes to (no 960-sample configs in the test media).
const AAC_FRAME_SAMPLES: u32 = 1024;

/// Fragments per second: one fragment per 0.2 s LL-HLS part.
const FRAGMENTS_PER_SECOND: u64 = 5;

/// One track read from the FLV file: its configuration and samples in decode order.
struct Track {
    config: TrackConfig,
    /// Decode time of each sample in the track's timescale.
    decode_times: Vec<u64>,
    samples: Vec<SampleInfo>,
    payloads: Vec<Bytes>,
}

/// The codec records and frames of an FLV file, as the writer takes them.
struct Source {
    video: Option<Track>,
    audio: Option<Track>,
    avc_record: Option<Bytes>,
    asc: Option<Bytes>,
}

fn read_source(path: &Path) -> Source {
    let mut avc_record = None;
    let mut asc: Option<Bytes> = None;
    // (dts ms, composition time ms, key, AVCC bytes)
    let mut video = Vec::new();
    // (timestamp ms, raw AAC frame)
    let mut audio = Vec::new();
    for tag in flv_tags(path) {
        match tag.tag_type {
            TagType::Video => {
                let mut message = VideoMessage::parse(&tag.body).expect("video tag");
                let frame_type = message.frame_type;
                let packet = message
                    .packets()
                    .next()
                    .expect("a packet")
                    .expect("video packet");
                match packet.body {
                    VideoBody::SequenceStart(record) => avc_record = Some(record),
                    VideoBody::CodedFrames {
                        composition_time,
                        data,
                    } => video.push((
                        tag.timestamp.0,
                        composition_time,
                        frame_type == FrameType::Keyframe,
                        data,
                    )),
                    VideoBody::SequenceEnd => {}
                    other => panic!("unexpected video packet {other:?}"),
                }
            }
            TagType::Audio => {
                let mut message = AudioMessage::parse(&tag.body).expect("audio tag");
                let packet = message
                    .packets()
                    .next()
                    .expect("a packet")
                    .expect("audio packet");
                match packet.body {
                    AudioBody::SequenceStart(config) => asc = Some(config),
                    AudioBody::CodedFrames(frame) => audio.push((tag.timestamp.0, frame)),
                    other => panic!("unexpected audio packet {other:?}"),
                }
            }
            _ => {}
        }
    }

    let mut next_id = 1;
    let mut take_id = || {
        let id = TrackId::new(next_id).unwrap();
        next_id += 1;
        id
    };
    let video = avc_record.clone().map(|record| {
        let config = AvcDecoderConfig::parse(&record).expect("AVC record");
        let info = config.video_info().expect("SPS");
        let decode_times: Vec<u64> = video
            .iter()
            .map(|&(ms, ..)| u64::from(ms) * u64::from(VIDEO_TIMESCALE / 1000))
            .collect();
        let durations: Vec<u32> = decode_times
            .windows(2)
            .map(|w| (w[1] - w[0]) as u32)
            .collect();
        // The last frame lasts as long as the one before it.
        let last = *durations.last().expect("two frames or more");
        let samples = video
            .iter()
            .zip(durations.iter().copied().chain([last]))
            .map(|(&(_, cts, key, ref data), duration)| SampleInfo {
                duration,
                size: data.len() as u32,
                sync: key,
                composition_offset: cts * (VIDEO_TIMESCALE / 1000) as i32,
            })
            .collect();
        Track {
            config: TrackConfig {
                id: take_id(),
                timescale: VIDEO_TIMESCALE,
                entry: SampleEntry::Avc {
                    width: info.width as u16,
                    height: info.height as u16,
                    record,
                },
            },
            decode_times,
            samples,
            payloads: video.into_iter().map(|(.., data)| data).collect(),
        }
    });
    let audio = asc.clone().map(|config| {
        let parsed = AudioSpecificConfig::parse(&config).expect("ASC");
        assert!(!parsed.frame_length_flag, "1024-sample frames");
        let rate = parsed.sampling_frequency;
        let first = u64::from(audio[0].0) * u64::from(rate) / 1000;
        Track {
            config: TrackConfig {
                id: take_id(),
                timescale: rate,
                entry: SampleEntry::Aac {
                    sample_rate: rate,
                    channels: u16::from(parsed.audio_info().channels),
                    config,
                },
            },
            decode_times: (0..audio.len() as u64)
                .map(|i| first + i * u64::from(AAC_FRAME_SAMPLES))
                .collect(),
            samples: audio
                .iter()
                .map(|(_, frame)| SampleInfo {
                    duration: AAC_FRAME_SAMPLES,
                    size: frame.len() as u32,
                    sync: true,
                    composition_offset: 0,
                })
                .collect(),
            payloads: audio.into_iter().map(|(_, frame)| frame).collect(),
        }
    });
    Source {
        video,
        audio,
        avc_record,
        asc,
    }
}

/// The fragments of the source: fragment k holds every sample whose decode time falls in
/// [k * 0.2 s, (k + 1) * 0.2 s), video run first. Returns each fragment's bytes and whether
/// its video run starts on a keyframe.
fn fragments(source: &Source) -> Vec<(Bytes, bool)> {
    let tracks: Vec<&Track> = [&source.video, &source.audio]
        .into_iter()
        .flatten()
        .collect();
    let part_of = |track: &Track, i: usize| {
        track.decode_times[i] * FRAGMENTS_PER_SECOND / u64::from(track.config.timescale)
    };
    let last_part = tracks
        .iter()
        .map(|t| part_of(t, t.samples.len() - 1))
        .max()
        .unwrap();
    let mut next = vec![0; tracks.len()];
    let mut out = Vec::new();
    for part in 0..=last_part {
        let mut runs = Vec::new();
        let mut payloads: Vec<&[u8]> = Vec::new();
        for (t, track) in tracks.iter().enumerate() {
            let start = next[t];
            while next[t] < track.samples.len() && part_of(track, next[t]) == part {
                next[t] += 1;
            }
            if next[t] > start {
                runs.push(TrackRun {
                    track: track.config.id,
                    base_decode_time: track.decode_times[start],
                    samples: &track.samples[start..next[t]],
                });
                payloads.extend(track.payloads[start..next[t]].iter().map(|p| &p[..]));
            }
        }
        if runs.is_empty() {
            continue;
        }
        let video_starts_on_key = source
            .video
            .as_ref()
            .is_some_and(|v| runs[0].track == v.config.id && runs[0].samples[0].sync);
        let mut buf = BytesMut::new();
        let sequence = out.len() as u32 + 1;
        write_fragment(sequence, &runs, &payloads, &mut buf).expect("fragment");
        out.push((buf.freeze(), video_starts_on_key));
    }
    assert!(next.iter().zip(&tracks).all(|(&n, t)| n == t.samples.len()));
    out
}

/// A packet as ffprobe reports it, timestamps in the stream's time base.
#[derive(Debug, Clone, PartialEq)]
struct Packet {
    stream: usize,
    pts: i64,
    dts: i64,
    size: u64,
    key: bool,
}

fn probe(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("packet=stream_index,pts,dts,size,flags")
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                stream: f[0].parse().unwrap(),
                pts: f[1].parse().expect("pts"),
                dts: f[2].parse().expect("dts"),
                size: f[3].parse().unwrap(),
                key: f[4].starts_with('K'),
            }
        })
        .collect()
}

fn ffprobe_present() -> bool {
    Command::new("ffprobe").arg("-version").output().is_ok()
}

/// The source's packets of one kind (video or audio) and the output's, compared: the same
/// count, sizes and key flags; timestamps converted from the FLV's ms to the track's
/// timescale, exact for video and within FLV's 1 ms rounding for audio.
fn assert_same_packets(name: &str, kind: &str, src: &[Packet], out: &[Packet], timescale: i64) {
    assert_eq!(src.len(), out.len(), "{name} {kind}: packet count");
    assert!(!src.is_empty(), "{name} {kind}: packets");
    for (i, (s, o)) in src.iter().zip(out).enumerate() {
        assert_eq!(s.size, o.size, "{name} {kind} packet {i}: size");
        assert_eq!(s.key, o.key, "{name} {kind} packet {i}: key flag");
        if kind == "video" {
            let ticks_per_ms = timescale / 1000;
            assert_eq!(
                (o.pts, o.dts),
                (s.pts * ticks_per_ms, s.dts * ticks_per_ms),
                "{name} video packet {i}: pts/dts (source ms {}/{})",
                s.pts,
                s.dts
            );
        } else {
            let ms = |t: i64| t as f64 * 1000.0 / timescale as f64;
            assert!(
                (ms(o.pts) - s.pts as f64).abs() <= 1.0 && (ms(o.dts) - s.dts as f64).abs() <= 1.0,
                "{name} audio packet {i}: source pts/dts {}/{} ms, output {}/{} ms",
                s.pts,
                s.dts,
                ms(o.pts),
                ms(o.dts)
            );
        }
    }
}

fn write_file(path: &Path, parts: &[&[u8]]) {
    std::fs::write(path, parts.concat()).expect("write");
}

#[test]
fn test_files_become_fragmented_mp4_that_ffmpeg_reads_exactly() {
    if !ffprobe_present() {
        eprintln!(
            "SKIPPED: ffprobe is not installed (apt-get install ffmpeg); the real-media check did not run"
        );
        return;
    }
    for name in ["h264_aac.flv", "video_only.flv", "audio_only.flv"] {
        let path = testdata(&format!("flv/{name}"));
        let source = read_source(&path);
        let tracks: Vec<TrackConfig> = [&source.video, &source.audio]
            .into_iter()
            .flatten()
            .map(|t| t.config.clone())
            .collect();
        let mut init = BytesMut::new();
        write_init(&tracks, &mut init).expect("init");
        let fragments = fragments(&source);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stream.mp4");
        let mut parts: Vec<&[u8]> = vec![&init];
        parts.extend(fragments.iter().map(|(f, _)| &f[..]));
        write_file(&file, &parts);

        // About 0.2 s a fragment: 10 s of media in about 50 fragments.
        assert!(
            (48..=52).contains(&fragments.len()),
            "{name}: {} fragments",
            fragments.len()
        );

        // The streams ffprobe sees.
        let streams = probe_streams(&file);
        let lines: Vec<&str> = streams.lines().collect();
        assert_eq!(lines.len(), tracks.len(), "{name}: {streams}");
        if source.video.is_some() {
            assert!(
                lines[0].contains("codec_name=h264")
                    && lines[0].contains("profile=High")
                    && lines[0].contains("width=640")
                    && lines[0].contains("height=360"),
                "{name}: {streams}"
            );
        }
        if source.audio.is_some() {
            let audio = lines.last().unwrap();
            assert!(
                audio.contains("codec_name=aac")
                    && audio.contains("profile=LC")
                    && audio.contains("sample_rate=48000")
                    && audio.contains("channels=2"),
                "{name}: {streams}"
            );
        }

        // Every packet, against the source's.
        let src = probe(&path);
        let out = probe(&file);
        let src_streams = streams_of(&path);
        for (track, kind) in [(&source.video, "video"), (&source.audio, "audio")] {
            let Some(track) = track else { continue };
            let src_index = src_streams.iter().position(|k| k == kind).unwrap();
            let out_index = track.config.id.get() as usize - 1;
            let pick = |packets: &[Packet], index| -> Vec<Packet> {
                packets
                    .iter()
                    .filter(|p| p.stream == index)
                    .cloned()
                    .collect()
            };
            assert_same_packets(
                name,
                kind,
                &pick(&src, src_index),
                &pick(&out, out_index),
                i64::from(track.config.timescale),
            );
        }
        if name != "audio_only.flv" {
            // B-frames: presentation order differs from decode order.
            let video: Vec<&Packet> = out.iter().filter(|p| p.stream == 0).collect();
            assert!(
                video.windows(2).any(|w| w[1].pts < w[0].pts),
                "{name}: B-frames shown before the frame decoded ahead of them"
            );
        }

        // A full decode finds nothing to complain about.
        let errors = decode_errors(&file);
        assert!(errors.is_empty(), "{name}: ffmpeg decode: {errors}");

        // The init segment as Firefox's parser reads it: the codec records byte for byte.
        let context = mp4parse::read_mp4(&mut Cursor::new(&init[..])).expect("mp4parse");
        for track in context.tracks.iter() {
            match &track.stsd.as_ref().unwrap().descriptions[0] {
                mp4parse::SampleEntry::Video(v) => {
                    let mp4parse::VideoCodecSpecific::AVCConfig(record) = &v.codec_specific else {
                        panic!("{name}: avcC");
                    };
                    assert_eq!(
                        record[..],
                        source.avc_record.as_ref().unwrap()[..],
                        "{name}"
                    );
                }
                mp4parse::SampleEntry::Audio(a) => {
                    let mp4parse::AudioCodecSpecific::ES_Descriptor(es) = &a.codec_specific else {
                        panic!("{name}: esds");
                    };
                    assert_eq!(
                        es.decoder_specific_data[..],
                        source.asc.as_ref().unwrap()[..]
                    );
                }
                mp4parse::SampleEntry::Unknown => panic!("{name}: unknown sample entry"),
            }
        }

        // A segment is its parts' fragments concatenated: init plus the fragments from the
        // second keyframe on decode on their own, starting at that keyframe's time.
        if let Some(video) = &source.video {
            let (k, _) = fragments
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, (_, key))| *key)
                .expect("a second keyframe starts a fragment");
            let segment = dir.path().join("segment.mp4");
            let mut parts: Vec<&[u8]> = vec![&init];
            parts.extend(fragments[k..].iter().map(|(f, _)| &f[..]));
            write_file(&segment, &parts);
            let errors = decode_errors(&segment);
            assert!(errors.is_empty(), "{name}: segment decode: {errors}");
            let first = probe(&segment).into_iter().find(|p| p.stream == 0).unwrap();
            let key_index = video.samples.iter().skip(1).position(|s| s.sync).unwrap() + 1;
            assert!(first.key, "{name}: segment starts on a keyframe");
            assert_eq!(first.dts, video.decode_times[key_index] as i64, "{name}");
            assert_eq!(
                first.pts,
                first.dts + i64::from(video.samples[key_index].composition_offset),
                "{name}"
            );
        }
    }
}

/// The codec_type of each stream of `path`, in stream order.
fn streams_of(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
