//! A live stream whose timestamps jump backwards: an encoder that restarts its clock sends
//! the file's tags, then the file's tags again from 0, on one connection. The playlist must
//! mark the jump with EXT-X-DISCONTINUITY, every segment must decode cleanly, timestamps must
//! not go backwards between two discontinuities, and EXTINF must match each segment's media.

mod common;

use std::path::PathBuf;

use common::*;
use rtmp_server::flv::tag::TagType;

/// What one segment holds, read back with ffprobe.
struct Segment {
    path: PathBuf,
    extinf: f64,
    discontinuity: bool,
    packets: Vec<Packet>,
}

impl Segment {
    fn track(&self, video: bool) -> impl Iterator<Item = &Packet> {
        self.packets.iter().filter(move |p| p.video == video)
    }

    /// Where the segment's presentation starts: its first video frame (a keyframe that no
    /// earlier-presented frame follows), or its first audio frame without video.
    fn start(&self) -> f64 {
        let video = self.track(true).filter_map(|p| p.pts).reduce(f64::min);
        video
            .or_else(|| self.track(false).filter_map(|p| p.pts).reduce(f64::min))
            .expect("a segment holds media")
    }

    /// Where its last frame of either track ends, given each track's frame interval.
    fn end(&self, frames: &[f64; 2]) -> f64 {
        [true, false]
            .into_iter()
            .zip(frames)
            .filter_map(|(video, frame)| {
                let last = self.track(video).filter_map(|p| p.pts).reduce(f64::max)?;
                Some(last + frame)
            })
            .reduce(f64::max)
            .expect("a segment holds media")
    }
}

/// The source's frame interval of one track in seconds: the median step between its DTS.
fn frame_interval(source: &[Packet], video: bool) -> f64 {
    let dts: Vec<f64> = source
        .iter()
        .filter(|p| p.video == video)
        .filter_map(|p| p.dts.or(p.pts))
        .collect();
    let mut steps: Vec<f64> = dts.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    steps[steps.len() / 2]
}

#[test]
fn a_restarted_clock_is_a_discontinuity_with_clean_segments() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let tags = flv_tags(&source);
    let mut publisher = ClientPublisher::start(&server, "restart");
    for pass in 0..2 {
        for tag in &tags {
            // Metadata once, as an encoder sends it at the start of a publish.
            if pass == 1 && tag.tag_type == TagType::ScriptData {
                continue;
            }
            publisher.send_tag(tag, tag.timestamp);
        }
    }
    publisher.finish();

    let (playlist, paths) = finished_segments(&server, "restart");
    let segments: Vec<Segment> = playlist
        .entries
        .iter()
        .zip(&paths)
        .map(|(entry, path)| Segment {
            path: path.clone(),
            extinf: entry.duration,
            discontinuity: entry.discontinuity,
            packets: probe_packets(path),
        })
        .collect();
    let source_packets = probe_packets(&source);
    // Indexed as tracks are below: video, then audio.
    let frames = [
        frame_interval(&source_packets, true),
        frame_interval(&source_packets, false),
    ];

    // One discontinuity, exactly where the second pass starts: each side holds one pass,
    // frame for frame.
    let jump = segments
        .iter()
        .position(|s| s.discontinuity)
        .unwrap_or_else(|| panic!("no EXT-X-DISCONTINUITY:\n{}", playlist.text));
    assert!(jump > 0, "{}", playlist.text);
    assert_eq!(
        segments.iter().filter(|s| s.discontinuity).count(),
        1,
        "{}",
        playlist.text
    );
    assert_same_frames(&source, &paths[..jump]);
    assert_same_frames(&source, &paths[jump..]);

    for segment in &segments {
        let errors = decode_errors(&segment.path);
        assert!(errors.is_empty(), "{}: {errors}", segment.path.display());
    }

    // Within each discontinuity range, per track: DTS always increase, and no segment
    // presents anything before what the segment before it presented last.
    for range in [&segments[..jump], &segments[jump..]] {
        for video in [true, false] {
            let mut last_dts: Option<f64> = None;
            let mut max_pts: Option<f64> = None;
            for segment in range {
                let min_pts = segment.track(video).filter_map(|p| p.pts).reduce(f64::min);
                if let (Some(min), Some(before)) = (min_pts, max_pts) {
                    assert!(
                        min > before,
                        "{}: PTS {min} is not after {before} of the segment before",
                        segment.path.display()
                    );
                }
                for p in segment.track(video) {
                    let dts = p.dts.or(p.pts).expect("timestamp");
                    if let Some(before) = last_dts {
                        assert!(
                            dts > before,
                            "{}: DTS {dts} after {before}",
                            segment.path.display()
                        );
                    }
                    last_dts = Some(dts);
                }
                max_pts = segment
                    .track(video)
                    .filter_map(|p| p.pts)
                    .chain(max_pts)
                    .reduce(f64::max);
            }
        }
    }

    // EXTINF against the media each segment holds, the one the jump closes included: from
    // its start to the end of its last frame, within one video frame.
    for segment in &segments {
        let media = segment.end(&frames) - segment.start();
        let excess = segment.extinf - media;
        assert!(
            excess.abs() <= frames[0] + 0.001,
            "{}: EXTINF {} for {media:.3} s of media",
            segment.path.display(),
            segment.extinf
        );
    }
}
