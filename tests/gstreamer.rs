//! GStreamer as the publisher: `gst-launch-1.0` encodes a live test pattern and tone
//! (openh264enc, voaacenc), muxes them with flvmux and publishes with rtmp2sink, over plain
//! RTMP and over RTMPS; the HLS the server makes of it is read back with ffprobe.
//!
//! scripts/test.sh installs GStreamer (gstreamer1.0-tools, -plugins-good, -plugins-bad and
//! glib-networking, GIO's TLS backend that rtmps:// needs). Without it these tests fail and
//! say so: they do not skip.

mod common;

use std::path::Path;
use std::process::Command;

use common::hls_check::check_output;
use common::*;

/// The pipeline's elements, and the package that has each.
const ELEMENTS: &[(&str, &str)] = &[
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("audiotestsrc", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("openh264enc", "gstreamer1.0-plugins-bad"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("voaacenc", "gstreamer1.0-plugins-bad"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("flvmux", "gstreamer1.0-plugins-good"),
    ("rtmp2sink", "gstreamer1.0-plugins-bad"),
];

/// 7 s of video at 30 fps, a keyframe every 60 frames (the default 2 s `hls.time`).
const VIDEO_FRAMES: usize = 210;
const GOP: usize = 60;
/// Audio in buffers of 1600 samples at 48 kHz, 30 a second: as many as the video frames.
const AUDIO_SAMPLES_PER_BUFFER: usize = 1600;

/// Panics, naming what is missing and how to install it, unless `gst-launch-1.0` and every
/// element of the pipeline are there.
fn require_gstreamer() {
    let hint = "run scripts/test.sh, which installs GStreamer (gstreamer1.0-tools, \
                gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, glib-networking)";
    for tool in ["gst-launch-1.0", "gst-inspect-1.0"] {
        if let Err(e) = Command::new(tool).arg("--version").output() {
            panic!("{tool} not found ({e}): {hint}");
        }
    }
    let missing: Vec<String> = ELEMENTS
        .iter()
        .filter(|(element, _)| {
            !Command::new("gst-inspect-1.0")
                .args(["--exists", element])
                .status()
                .expect("gst-inspect-1.0 runs")
                .success()
        })
        .map(|(element, package)| format!("{element} ({package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "GStreamer elements missing: {}: {hint}",
        missing.join(", ")
    );
}

/// `gst-launch-1.0 -e`: 640x360 30 fps test pattern through openh264enc and a 48 kHz stereo
/// tone through voaacenc, both live and [`VIDEO_FRAMES`] buffers long, into
/// `flvmux streamable=true latency=1s` and `rtmp2sink location=LOCATION SINK_PROPERTIES`.
/// The pipeline ends by itself: EOS once both sources ran out, after which rtmp2sink
/// unpublishes.
///
/// flvmux's latency: a live flvmux waits for its other input only as long as the pipeline's
/// latency (tens of milliseconds here). While rtmp2sink blocks on a busy machine that time runs
/// out, flvmux writes whichever track has data first, and when the other's earlier frames
/// come it rewrites their timestamps to the last one written ("Got backwards dts!"): frames
/// moved by tens of milliseconds, some with the same DTS. One second of slack keeps the
/// encoder's timestamps, which the tests compare frame for frame.
fn gst_publish(location: &str, sink_properties: &[&str]) -> Publisher {
    let frames = VIDEO_FRAMES.to_string();
    let mut command = Command::new("gst-launch-1.0");
    command
        .arg("-e")
        .args([
            "videotestsrc",
            "is-live=true",
            &format!("num-buffers={frames}"),
        ])
        .args([
            "!",
            "video/x-raw,format=I420,width=640,height=360,framerate=30/1",
        ])
        .args(["!", "openh264enc", &format!("gop-size={GOP}")])
        .args(["rate-control=bitrate", "bitrate=1000000"])
        .args(["!", "h264parse"])
        .args(["!", "flvmux", "streamable=true", "name=mux"])
        .arg("latency=1000000000")
        .args(["!", "rtmp2sink", &format!("location={location}")])
        .args(sink_properties)
        .args([
            "audiotestsrc",
            "is-live=true",
            &format!("num-buffers={frames}"),
        ])
        .arg(format!("samplesperbuffer={AUDIO_SAMPLES_PER_BUFFER}"))
        .args(["!", "audio/x-raw,rate=48000,channels=2"])
        .args(["!", "audioconvert", "!", "voaacenc", "bitrate=128000"])
        .args(["!", "aacparse", "!", "mux."])
        // Warnings and errors on stderr, for the failure messages.
        .env("GST_DEBUG", "2")
        .env("GST_DEBUG_NO_COLOR", "1");
    Publisher::spawn(command)
}

/// Waits for `gst` to finish and asserts that it succeeded and that the server made
/// correct HLS of what it published to `key`: four segments cut at the 2 s keyframes, every
/// video frame there with the keyframes where the encoder put them, the audio with it.
fn assert_published(server: &ServerProcess, key: &str, gst: &mut Publisher) {
    let status = gst.wait(STREAM_TIMEOUT).expect("gst-launch-1.0 finishes");
    assert!(
        status.success(),
        "gst-launch-1.0 failed ({status}):\n{}\nserver:\n{}",
        gst.logs(),
        server.logs()
    );

    // rtmp2sink's FCUnpublish ends the publish and the playlist is closed. (Its deleteStream
    // names the stream where RTMP 1.0 §7.2.2.3 has the stream ID; the server takes the name
    // too, so either ends it.)
    let (playlist, segments) = finished_segments(server, key);
    let durations: Vec<f64> = playlist.entries.iter().map(|e| e.duration).collect();
    assert_eq!(
        segments.len(),
        VIDEO_FRAMES.div_ceil(GOP),
        "7 s cut at each 2 s keyframe: {durations:?}\n{}",
        playlist.text
    );
    let checked = check_output(&server.stream_dir(key), &playlist, true, true);

    let streams = probe_streams(&segments[0]);
    for expected in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "codec_name=aac",
        "sample_rate=48000",
        "channels=2",
    ] {
        assert!(streams.contains(expected), "{expected}: {streams}");
    }

    // Every frame the encoder made, at 30 fps, keyframes every GOP frames and nowhere else.
    let packets: Vec<Packet> = checked.packets.concat();
    let video = relative(&packets, true);
    assert_eq!(video.len(), VIDEO_FRAMES, "video frames");
    let keyframes: Vec<usize> = (0..video.len()).filter(|&i| video[i].2).collect();
    let expected_keys: Vec<usize> = (0..VIDEO_FRAMES).step_by(GOP).collect();
    assert_eq!(keyframes, expected_keys, "keyframe positions");
    for (i, frame) in video.iter().enumerate() {
        let at = (i as f64 * 1000.0 / 30.0).round() as i64;
        assert!(
            (frame.0 - at).abs() <= 2,
            "video frame {i} at {} ms, not {at} ms",
            frame.0
        );
    }
    // The tone as long as the video: its samples make 328 whole AAC frames of 1024, less
    // what the encoder holds back at the start.
    let audio = relative(&packets, false).len();
    let whole = VIDEO_FRAMES * AUDIO_SAMPLES_PER_BUFFER / 1024;
    assert!(
        (whole - 4..=whole + 1).contains(&audio),
        "{audio} AAC frames, {whole} expected"
    );

    let shown: String = key.chars().take(4).collect();
    server.assert_logged(&format!(
        "publish stopped key={shown}…({}) name={key} client=",
        key.len()
    ));
    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(1.0));
}

#[test]
fn gstreamer_rtmp2sink_publish_becomes_hls() {
    require_gstreamer();
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let mut gst = gst_publish(&server.rtmp_url("gst"), &[]);
    assert_published(&server, "gst", &mut gst);
    server.assert_logged("publish started key=gst…(3) name=gst app=\"live\"");
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files in `dir`.
fn write_test_certificate(dir: &Path) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a test certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let path = |p: &Path| p.to_str().expect("a UTF-8 temp path").to_string();
    (path(&cert), path(&key))
}

#[test]
fn gstreamer_rtmp2sink_publishes_over_rtmps() {
    require_gstreamer();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = write_test_certificate(certs.path());
    let server = ServerProcess::start(&[
        "--rtmp-tls-port",
        "0",
        "--rtmp-plain",
        "false",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--hls-keep",
        "--hls-list-size",
        "100",
    ]);
    assert_eq!(server.rtmp_port, 0, "plain RTMP is off");
    // rtmp2sink checks the certificate through GIO, whose CA list is the system's: every
    // check but the unknown CA stays on, so the certificate must still name 127.0.0.1 and
    // be within its dates.
    let mut gst = gst_publish(
        &server.rtmps_url("gsttls"),
        &["tls-validation-flags=bad-identity+not-activated+expired+revoked+insecure+generic-error"],
    );
    if gst.wait(STREAM_TIMEOUT).is_some_and(|s| !s.success())
        && gst.logs().contains("TLS support is not available")
    {
        panic!(
            "GIO has no TLS backend: run scripts/test.sh, which installs glib-networking:\n{}",
            gst.logs()
        );
    }
    assert_published(&server, "gsttls", &mut gst);
    // The publish came in on the RTMPS listener.
    server.assert_logged("rtmps{peer=");
    server.assert_logged("publish started key=gstt…(6) name=gsttls app=\"live\"");
}
