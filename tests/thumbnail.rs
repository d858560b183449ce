//! Stream thumbnails with real peers: ffmpeg publishing, the real server decoding keyframes
//! with its own H.264 decoder, real HTTP, and ffmpeg's own decode as the reference.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::stub::StubService;
use common::*;
use rtmp_server::flv::file::FlvTag;
use rtmp_server::flv::tag::TagType;

const W: usize = 1280;
const H: usize = 720;

/// A thumbnail's width and height, from its JPEG frame header (SOF0, ITU-T T.81 §B.2.2).
fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG file");
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xff, 0xc0])
        .expect("a baseline frame header");
    let h = u16::from_be_bytes([jpeg[sof + 5], jpeg[sof + 6]]);
    let w = u16::from_be_bytes([jpeg[sof + 7], jpeg[sof + 8]]);
    (usize::from(w), usize::from(h))
}

/// ffmpeg's decode of `input` (with `input_args` before it) as packed RGB, every picture.
fn ffmpeg_rgb(input: &Path, input_args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(input_args)
        .arg("-i")
        .arg(input)
        .args(["-an", "-fps_mode", "passthrough", "-f", "rawvideo"])
        .args(["-pix_fmt", "rgb24", "-"])
        .stderr(Stdio::inherit())
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg decode of {}", input.display());
    out.stdout
}

/// Mean absolute difference of two RGB pictures of the same size, per sample.
fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// GETs `path` until it answers 200 (404 while the stream has no keyframe).
fn wait_thumbnail(server: &ServerProcess, path: &str) -> Response {
    let mut last = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        let r = get(&server.http_url(path));
        let done = r.status == 200;
        last = Some(r);
        done
    });
    let last = last.expect("a request was made");
    assert!(
        ok,
        "no thumbnail: {} {}\n{}",
        last.status,
        last.text(),
        server.logs()
    );
    last
}

#[test]
fn the_thumbnail_is_ffmpegs_own_decode_of_a_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("testsrc2.flv");
    // testsrc2 at 1280x720, a keyframe every second (25 frames), no B-frames, 8 s.
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25"])
        .args(["-t", "8", "-c:v", "libx264", "-preset", "veryfast"])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    let keyframes = ffmpeg_rgb(&file, &["-skip_frame", "nokey"]);
    let keyframes: Vec<&[u8]> = keyframes.chunks_exact(W * H * 3).collect();
    assert_eq!(keyframes.len(), 8, "one keyframe a second");

    let server = ServerProcess::start(&[]);
    // Looped, so the stream is still live for the last request however slow the machine;
    // a loop repeats the file's keyframes, so the comparison below still picks among them.
    let mut publisher =
        Publisher::start(&file, &server.rtmp_url("pattern"), &["-stream_loop", "-1"]);
    let thumb = wait_thumbnail(&server, "/live/pattern/thumbnail.jpg");
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    let cache = thumb.header("cache-control").unwrap_or_default();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    assert_eq!(jpeg_size(&thumb.body), (W, H));
    let jpeg = dir.path().join("thumb.jpg");
    std::fs::write(&jpeg, &thumb.body).unwrap();
    let ours = ffmpeg_rgb(&jpeg, &[]);
    assert_eq!(ours.len(), W * H * 3);

    let mut diffs: Vec<(f64, usize)> = keyframes
        .iter()
        .enumerate()
        .map(|(i, k)| (mean_abs_diff(&ours, k), i))
        .collect();
    diffs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (best, second) = (diffs[0].0, diffs[1].0);
    eprintln!("mean absolute difference per keyframe (best first): {diffs:?}");
    // Measured: about 1.0 against the keyframe it was made of (JPEG at quality 80 and the
    // two chroma upsamplings account for it), 5 and more against the other keyframes. The
    // bound leaves margin for another x264 or swscale build, and stays far below what a
    // wrong colour range (about 15), a wrong matrix or a shifted picture would give.
    assert!(
        best < 3.0,
        "the thumbnail is not ffmpeg's decode: {diffs:?}"
    );
    assert!(
        second > best * 2.0,
        "the best match is not clearly the keyframe it was made of: {diffs:?}"
    );

    // Another width: the same picture, scaled, keeping its shape.
    let small = get(&server.http_url("/live/pattern/thumbnail.jpg?width=320"));
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(jpeg_size(&small.body), (320, 180));
    // Widths outside 16..=1920 are refused; wider than the picture gives the picture.
    let bad = get(&server.http_url("/live/pattern/thumbnail.jpg?width=8"));
    assert_eq!(bad.status, 400);
    let wide = get(&server.http_url("/live/pattern/thumbnail.jpg?width=1920"));
    assert_eq!(wide.status, 200, "{}", wide.text());
    assert_eq!(jpeg_size(&wide.body), (W, H));

    // The stats API names it.
    let stats = server.api_stream("pattern").expect("the stream is listed");
    assert_eq!(stats["thumbnail"], "/live/pattern/thumbnail.jpg");
    publisher.kill();
}

/// `tag` with every IDR slice's bytes after its NAL header overwritten with ones: a valid
/// AVC NALU packet the decoder cannot read.
fn corrupt_idr(tag: &FlvTag) -> FlvTag {
    let mut body = tag.body.to_vec();
    if tag.tag_type == TagType::Video && body.len() > 5 && body[0] == 0x17 && body[1] == 1 {
        let mut i = 5;
        while i + 4 <= body.len() {
            let len = u32::from_be_bytes(body[i..i + 4].try_into().unwrap()) as usize;
            let nal = i + 4..(i + 4 + len).min(body.len());
            if body.get(nal.start).is_some_and(|b| b & 0x1f == 5) {
                body[nal.start + 1..nal.end].fill(0xff);
            }
            i = nal.end;
        }
    }
    FlvTag {
        body: Bytes::from(body),
        ..tag.clone()
    }
}

#[test]
fn a_keyframe_that_does_not_decode_is_a_500_and_the_stream_goes_on() {
    // An interval longer than the test, so that the failure is certainly still kept.
    let server = ServerProcess::start(&["--thumbnail-interval", "600"]);
    let tags: Vec<FlvTag> = flv_tags(&testdata("flv/h264_aac.flv"))
        .iter()
        .map(corrupt_idr)
        .collect();
    let (first, rest) = tags.split_at(tags.len() / 2);
    let mut publisher = ClientPublisher::start(&server, "broken");
    for tag in first {
        publisher.send_tag(tag, tag.timestamp);
    }
    let url = server.http_url("/live/broken/thumbnail.jpg");
    let mut answer = None;
    let answered = wait_for(STREAM_TIMEOUT, || {
        let r = get(&url);
        let done = r.status != 404;
        answer = Some(r);
        done
    });
    let answer = answer.unwrap();
    assert!(answered, "{} {}", answer.status, answer.text());
    assert_eq!(answer.status, 500, "{}", answer.text());
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("did not decode") && reason.contains("decoder"),
        "{reason}"
    );
    assert!(server.wait_log("keyframe did not decode", STREAM_TIMEOUT));
    assert_eq!(
        server.metric("rtmp_server_thumbnail_decode_failures_total"),
        Some(1.0)
    );

    // The publish goes on: the rest of the media is taken and cut into segments.
    let before = wait_playlist(&server, "broken").entries.len();
    for tag in rest {
        publisher.send_tag(tag, tag.timestamp);
    }
    let more = wait_for(STREAM_TIMEOUT, || {
        http_playlist(&server, "broken").is_some_and(|p| p.entries.len() > before)
    });
    assert!(
        more,
        "no segment after the failed thumbnail\n{}",
        server.logs()
    );
    assert!(server.api_stream("broken").is_some(), "still live");
    // The failure is kept for the interval, not decoded again per request.
    assert_eq!(get(&url).status, 500);
    assert_eq!(
        server.metric("rtmp_server_thumbnail_decodes_total"),
        Some(1.0)
    );
    publisher.finish();
}

#[test]
fn a_burst_of_a_thousand_requests_decodes_once() {
    // An interval longer than the test, so that exactly one decode is right.
    let server = ServerProcess::start(&["--thumbnail-interval", "600"]);
    let mut publisher = live_publisher(&server, "burst");
    // The stream's first keyframe is in (its first segment is listed) before the burst.
    wait_playlist(&server, "burst");
    let decodes = |s: &ServerProcess| s.metric("rtmp_server_thumbnail_decodes_total");
    assert_eq!(decodes(&server), Some(0.0));

    let url = Arc::new(server.http_url("/live/burst/thumbnail.jpg?width=320"));
    let ok = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    // 50 clients at once, each sending 20 requests over one kept-alive connection.
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let (url, ok, bodies) = (url.clone(), ok.clone(), bodies.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .max_idle_connections_per_host(1)
                    .build()
                    .into();
                for _ in 0..20 {
                    let mut r = agent.get(url.as_str()).call().expect("request");
                    let body = r.body_mut().read_to_vec().expect("body");
                    if r.status() == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                        bodies.lock().unwrap().insert(body);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    assert_eq!(ok.load(Ordering::Relaxed), 1000, "{}", server.logs());
    assert_eq!(bodies.lock().unwrap().len(), 1, "one thumbnail for all");
    assert_eq!(decodes(&server), Some(1.0));
    assert_eq!(
        server.metric("rtmp_server_thumbnail_budget_refusals_total"),
        Some(0.0)
    );
    publisher.kill();
}

#[test]
fn an_hevc_stream_has_no_thumbnail_and_says_why() {
    let server = ServerProcess::start(&[]);
    let args = [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "keyint=30:min-keyint=30:scenecut=0:log-level=error",
        "-an",
    ];
    let mut publisher = Publisher::ffmpeg9_live(&server.rtmp_url("hevc"), "320x180", &args, 30);
    let url = server.http_url("/live/hevc/thumbnail.jpg");
    let mut last = None;
    let named = wait_for(STREAM_TIMEOUT, || {
        let r = get(&url);
        let done = r.status == 404 && r.text().contains("HEVC");
        last = Some(r);
        done
    });
    let last = last.unwrap();
    assert!(
        named,
        "{} {}\n{}",
        last.status,
        last.text(),
        publisher.logs()
    );
    let body: serde_json::Value = serde_json::from_slice(&last.body).expect("JSON");
    assert!(body["error"].as_str().unwrap().contains("HEVC"));
    let stats = server.api_stream("hevc").expect("listed");
    assert!(stats["thumbnail"].is_null(), "{stats}");
    assert_eq!(
        server.metric("rtmp_server_thumbnail_decodes_total"),
        Some(0.0)
    );
    publisher.kill();
    // No stream: 404 too.
    assert_eq!(
        get(&server.http_url("/live/nobody/thumbnail.jpg")).status,
        404
    );
}

#[test]
fn the_on_publish_webhook_names_the_first_keyframes_thumbnail() {
    let stub = StubService::start();
    let server = ServerProcess::start(&["--on-publish", &format!("{}/hooks/publish", stub.url)]);
    let file = testdata("flv/h264_aac.flv");
    let mut publisher = live_publisher(&server, "hooked");
    assert!(
        wait_for(STREAM_TIMEOUT, || !stub.hooks().is_empty()),
        "no on_publish\n{}",
        server.logs()
    );
    let (_, publish) = &stub.hooks()[0];
    let path = publish["thumbnail"].as_str().expect("a thumbnail path");
    assert_eq!(path, "/live/hooked/thumbnail.jpg?keyframe=first");
    let thumb = get(&server.http_url(path));
    assert_eq!(thumb.status, 200, "{}", thumb.text());
    assert_eq!(jpeg_size(&thumb.body), (640, 360));

    // It is the publish's first keyframe (the file's first), however far the stream went.
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("first.jpg");
    std::fs::write(&jpeg, &thumb.body).unwrap();
    let ours = ffmpeg_rgb(&jpeg, &[]);
    let keyframes = ffmpeg_rgb(&file, &["-skip_frame", "nokey"]);
    let diffs: Vec<f64> = keyframes
        .chunks_exact(640 * 360 * 3)
        .map(|k| mean_abs_diff(&ours, k))
        .collect();
    let best = diffs
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    assert_eq!(best, Some(0), "{diffs:?}");
    assert!(diffs[0] < 3.0, "{diffs:?}");
    publisher.kill();
}

#[test]
fn a_spent_cpu_budget_is_a_503_with_retry_after_and_cached_thumbnails_still_serve() {
    // A budget of 80 microseconds of CPU: the first decode alone leaves it in debt for as
    // long as the test runs, however fast the machine.
    let server =
        ServerProcess::start(&["--thumbnail-cpu", "0.00001", "--thumbnail-interval", "600"]);
    let mut publisher = live_publisher(&server, "budget");
    // 16 is rounded up to 160.
    let first = wait_thumbnail(&server, "/live/budget/thumbnail.jpg?width=16");
    assert_eq!(jpeg_size(&first.body).0, 160);
    // A new width would be a scale and encode: refused while the budget is in debt.
    let refused = get(&server.http_url("/live/budget/thumbnail.jpg?width=320"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1, "{retry}");
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON");
    assert!(body["error"].as_str().unwrap().contains("thumbnail.cpu"));
    assert!(
        server
            .metric("rtmp_server_thumbnail_budget_refusals_total")
            .is_some_and(|n| n >= 1.0)
    );
    // What is cached is served all the same, for any width that rounds to it.
    for width in [16, 100, 160] {
        let cached = get(&server.http_url(&format!("/live/budget/thumbnail.jpg?width={width}")));
        assert_eq!(cached.status, 200, "{}", cached.text());
        assert_eq!(cached.body, first.body);
    }
    assert_eq!(
        server.metric("rtmp_server_thumbnail_decodes_total"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("rtmp_server_thumbnail_encodes_total"),
        Some(0.0)
    );
    publisher.kill();
}
