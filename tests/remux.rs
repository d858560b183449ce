//! The offline remux, `rtmp-server remux INPUT.flv OUT_DIR`: the live path's code over a
//! file, checked with ffprobe, a full decode, and the TS structure players rely on.

mod common;

use std::path::Path;
use std::process::Command;

use common::flv::{self, Tag};
use common::hls_check::check_output;
use common::*;

fn remux(input: &Path, out: &Path) -> Playlist {
    let result = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .arg("remux")
        .arg(input)
        .arg(out)
        .output()
        .expect("run rtmp-server remux");
    assert!(
        result.status.success(),
        "remux failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let text = std::fs::read_to_string(out.join("index.m3u8")).expect("playlist written");
    parse_playlist(&text)
}

#[test]
fn test_files_remux_to_hls_every_player_accepts() {
    for (file, video, audio) in [
        ("flv/h264_aac.flv", true, true),
        ("flv/audio_only.flv", false, true),
        ("flv/video_only.flv", true, false),
    ] {
        let out = tempfile::tempdir().unwrap();
        let source = testdata(file);
        let playlist = remux(&source, out.path());
        assert!(playlist.ended, "{file}: VOD playlist ends");
        assert!(playlist.text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{file}");
        assert_eq!(playlist.media_sequence, 0, "{file}");
        assert_eq!(
            playlist.target_duration, 2,
            "{file}: 2 s keyframe interval, hls.time 2"
        );
        assert!(playlist.entries.len() >= 5, "{file}: 10 s in 2 s segments");
        let checked = check_output(out.path(), &playlist, video, audio);
        assert_same_frames(&source, &checked.segments);
        let total: f64 = playlist.entries.iter().map(|e| e.duration).sum();
        assert!(
            (total - 10.0).abs() < 0.1,
            "{file}: {total} s listed for 10 s of media"
        );
    }
}

#[test]
fn offline_remux_honours_the_segment_length() {
    let out = tempfile::tempdir().unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .args(["remux", "--hls-time", "4"])
        .arg(testdata("flv/h264_aac.flv"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(result.status.success());
    let playlist = parse_playlist(&std::fs::read_to_string(out.path().join("index.m3u8")).unwrap());
    assert_eq!(playlist.target_duration, 4);
    assert_eq!(
        playlist
            .entries
            .iter()
            .map(|e| e.duration.round() as u64)
            .collect::<Vec<_>>(),
        [4, 4, 2],
        "{}",
        playlist.text
    );
    check_output(out.path(), &playlist, true, true);
}

/// The media tags of the test file, without script data.
fn media_tags() -> Vec<Tag> {
    flv::read_tags(&testdata("flv/h264_aac.flv"))
        .into_iter()
        .filter(|t| t.kind != 18)
        .collect()
}

#[test]
fn an_encoder_clock_restart_becomes_a_discontinuity() {
    // The file, then the file again with its clock back at zero: what an encoder that
    // restarts its clock sends on one connection.
    let mut tags = media_tags();
    tags.extend(media_tags());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("restart.flv");
    std::fs::write(&input, flv::write(&tags)).unwrap();
    let out = dir.path().join("out");
    let playlist = remux(&input, &out);
    let breaks: Vec<usize> = playlist
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.discontinuity)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(breaks.len(), 1, "one discontinuity:\n{}", playlist.text);
    let checked = check_output(&out, &playlist, true, true);
    // Presentation times never go backwards, across the restart included: the output
    // timeline stays monotonic and the discontinuity tag tells players about the break.
    let firsts: Vec<f64> = checked
        .packets
        .iter()
        .map(|p| p.iter().filter_map(|p| p.pts).fold(f64::INFINITY, f64::min))
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[1] > w[0]),
        "segment starts {firsts:?}"
    );
    let total: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    assert!(
        (total - 20.0).abs() < 0.2,
        "{total} s listed for 2 x 10 s of media"
    );
}

#[test]
fn the_32_bit_millisecond_clock_wraps_without_a_break() {
    // Start 4 s before the FLV clock wraps at 2^32 ms (49.7 days of streaming).
    let start = u32::MAX - 4000;
    let tags: Vec<Tag> = media_tags()
        .into_iter()
        .map(|t| Tag {
            timestamp: t.timestamp.wrapping_add(start),
            ..t
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wrap.flv");
    std::fs::write(&input, flv::write(&tags)).unwrap();
    let out = dir.path().join("out");
    let playlist = remux(&input, &out);
    assert!(
        playlist.entries.iter().all(|e| !e.discontinuity),
        "{}",
        playlist.text
    );
    let checked = check_output(&out, &playlist, true, true);
    assert_same_frames(&testdata("flv/h264_aac.flv"), &checked.segments);
}

#[test]
fn a_gstreamer_encode_with_scene_cuts_gives_whole_gop_segments() {
    // Keyframes at 0, 1.967, 3.933 (GOPs a frame short of 2 s) and a scene cut at 4.633 s;
    // the first frames share a DTS. Every segment must start with a keyframe, decode on its
    // own, and fit the target duration.
    let out = tempfile::tempdir().unwrap();
    let source = testdata("flv/gstreamer_x264_scenecut.flv");
    let playlist = remux(&source, out.path());
    assert_eq!(playlist.target_duration, 2, "{}", playlist.text);
    assert!(
        playlist.text.contains("#EXT-X-INDEPENDENT-SEGMENTS"),
        "{}",
        playlist.text
    );
    let lengths: Vec<f64> = playlist.entries.iter().map(|e| e.duration).collect();
    assert!(
        lengths[..2].iter().all(|d| (d - 1.967).abs() < 0.002),
        "{lengths:?}"
    );
    let checked = check_output(out.path(), &playlist, true, true);
    for packets in &checked.packets {
        let dts: Vec<f64> = packets
            .iter()
            .filter(|p| p.video)
            .filter_map(|p| p.dts)
            .collect();
        assert!(
            dts.windows(2).all(|w| w[1] > w[0]),
            "video DTS must increase: {dts:?}"
        );
    }
}

#[test]
fn cmaf_remux_plays_every_frame_of_the_source() {
    for (file, streams) in [
        ("flv/h264_aac.flv", ["h264", "aac"].as_slice()),
        ("flv/audio_only.flv", ["aac"].as_slice()),
        ("flv/video_only.flv", ["h264"].as_slice()),
    ] {
        let out = tempfile::tempdir().unwrap();
        let source = testdata(file);
        let result = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
            .args(["remux", "--format", "cmaf"])
            .arg(&source)
            .arg(out.path())
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let path = out.path().join("index.m3u8");
        let playlist = parse_playlist(&std::fs::read_to_string(&path).unwrap());
        assert!(playlist.ended, "{file}");
        assert!(playlist.text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{file}");
        assert!(playlist.text.contains("#EXT-X-MAP:URI="), "{file}");
        assert!(
            playlist.entries.iter().all(|e| e.uri.ends_with(".m4s")),
            "{file}"
        );
        let probed = probe_streams(&path);
        // ffprobe lists an HLS input's streams once per program and once more on their own.
        let mut codecs: Vec<_> = probed
            .lines()
            .filter_map(|l| l.split('|').find_map(|f| f.strip_prefix("codec_name=")))
            .collect();
        codecs.sort_unstable();
        codecs.dedup();
        let mut expected = streams.to_vec();
        expected.sort_unstable();
        assert_eq!(codecs, expected, "{file}: {probed}");
        assert_eq!(decode_errors(&path), "", "{file}: decodes without an error");
        // B-frames (h264_aac.flv has them) keep their order and timing: composition offsets.
        assert_same_frames(&source, &[path]);
    }
}
