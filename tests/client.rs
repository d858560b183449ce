//! The project's RTMP client (`rtmp::client`, which the load tool publishes with) as a
//! publisher whose output is checked frame by frame.

mod common;

use common::*;

#[test]
fn client_publish_is_remuxed_frame_for_frame() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let mut publisher = ClientPublisher::start(&server, "client");
    for tag in flv_tags(&source) {
        publisher.send_tag(&tag, tag.timestamp);
    }
    publisher.finish();

    let (playlist, segments) = finished_segments(&server, "client");
    assert!(segments.len() >= 4, "10 s in 2 s segments: {playlist:?}");
    assert_same_frames(&source, &segments);
    for seg in &segments {
        let errors = decode_errors(seg);
        assert!(errors.is_empty(), "{}: {errors}", seg.display());
    }
    server.assert_logged("flash_ver=\"FMLE/3.0\"");
}
