//! The operator's controls and the dashboard's figures over real HTTP, against the real
//! server with real ffmpeg publishers: a stop ends the encoder with the reason it prints,
//! recordings start and stop during a publish, keys are shown only to token holders, the
//! histories grow, and the keyframe advice the server logs is reported.

mod common;

use serde_json::Value;

use common::*;

const TOKEN: &str = "s3cret";
const BEARER: &str = "Bearer s3cret";

/// `METHOD path` on `server` with the API token.
fn with_token(server: &ServerProcess, method: &str, path: &str) -> Response {
    http(method, &server.http_url(path), &[("authorization", BEARER)])
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// The live stream `name` from `/api/streams` (read with the token), if listed.
fn listed(server: &ServerProcess, name: &str) -> Option<Value> {
    let r = with_token(server, "GET", "/api/streams");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// The recordings of `stream` in `/api/recordings`.
fn recordings_of(server: &ServerProcess, stream: &str) -> Vec<Value> {
    let r = with_token(server, "GET", "/api/recordings");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .filter(|r| r["stream"] == stream)
        .cloned()
        .collect()
}

#[test]
fn controls_need_the_token_stop_the_encoder_and_record_during_a_publish() {
    let server = ServerProcess::start(&["--http-api-token", TOKEN, "--record-gap", "30"]);
    let mut cam = live_publisher(&server, "cam");
    let _rec = live_publisher(&server, "rec");
    for name in ["cam", "rec"] {
        assert!(
            wait_for(STREAM_TIMEOUT, || listed(&server, name).is_some()),
            "{name} is not live:\n{}",
            server.logs()
        );
    }

    // Without the token: refused, and the stream goes on.
    for control in ["stop", "record/start", "record/stop"] {
        let url = server.http_url(&format!("/api/streams/cam/{control}"));
        assert_eq!(http("POST", &url, &[]).status, 401, "{control}");
    }
    let r = http("GET", &server.http_url("/api/streams/cam"), &[]);
    assert_eq!(r.status, 401, "reads need the token too");
    // With it, the key is shown in full.
    let entry = json(&with_token(&server, "GET", "/api/streams/cam"));
    assert_eq!(entry["key"], "cam");
    assert_eq!(
        entry["recording"],
        serde_json::json!({"active": false, "id": null})
    );

    // A recording started during the publish: it begins at the next segment.
    let r = with_token(&server, "POST", "/api/streams/rec/record/start");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["active"], true);
    let mut recording = Vec::new();
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            recording = recordings_of(&server, "rec");
            recording.len() == 1 && recording[0]["duration_s"].as_f64() > Some(3.0)
        }),
        "no recording of rec grows: {recording:?}\n{}",
        server.logs()
    );
    let id = recording[0]["id"].as_str().expect("an id").to_string();
    assert_eq!(recording[0]["state"], "recording");
    let stats = listed(&server, "rec").expect("rec is live");
    assert_eq!(
        stats["recording"],
        serde_json::json!({"active": true, "id": id})
    );
    // Stopped: closed at once (not parked for a reconnection, within its 30 s gap).
    let r = with_token(&server, "POST", "/api/streams/rec/record/stop");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r), serde_json::json!({"active": false, "id": null}));
    let mut closed = Vec::new();
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            closed = recordings_of(&server, "rec");
            closed.len() == 1 && closed[0]["state"] == "complete"
        }),
        "the recording is not closed: {closed:?}\n{}",
        server.logs()
    );
    let duration = closed[0]["duration_s"].as_f64().expect("a duration");
    let playlist = get(&server.http_url(&format!("/recordings/{id}/index.m3u8")));
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let playlist = parse_playlist(&playlist.text());
    assert!(playlist.ended, "{}", playlist.text);
    let listed_duration: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    assert!(
        (listed_duration - duration).abs() < 0.1 && duration > 3.0,
        "the playlist lists {listed_duration} s of a {duration} s recording"
    );
    let download = get(&server.http_url(&format!("/recordings/{id}.mp4")));
    assert_eq!(download.status, 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rec.mp4");
    std::fs::write(&file, &download.body).expect("write the download");
    assert!(
        probe_packets(&file).iter().any(|p| p.video),
        "the recording plays"
    );
    assert_eq!(
        listed(&server, "rec").expect("live")["recording"]["active"],
        false
    );

    // The stop: the encoder is told why, and exits; the stream leaves the list.
    let r = with_token(&server, "POST", "/api/streams/cam/stop");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r), serde_json::json!({"stopped": "cam"}));
    let status = cam.wait(STREAM_TIMEOUT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "ffmpeg goes on after the stop ({status:?}):\n{}",
        cam.logs()
    );
    assert!(
        cam.logs()
            .contains("the stream was stopped by the server's operator"),
        "ffmpeg does not show the reason:\n{}",
        cam.logs()
    );
    assert!(wait_for(STREAM_TIMEOUT, || listed(&server, "cam").is_none()));
    server.assert_logged("stream stopped by the operator");
    let r = with_token(&server, "POST", "/api/streams/cam/stop");
    assert_eq!(r.status, 404, "not live any more");
    let metrics = with_token(&server, "GET", "/metrics").text();
    assert_eq!(
        metric_value(&metrics, "rtmp_server_operator_stops_total"),
        Some(1.0)
    );
}

#[test]
fn keys_are_redacted_without_a_token_and_histories_grow() {
    let server = ServerProcess::start(&[]);
    // A keyframe every 4 s, longer than hls.time (2 s): the server advises the encoder.
    let _publisher = Publisher::pattern(
        &server.rtmp_url("secretkey123"),
        "testsrc2=size=320x240:rate=30",
        "ultrafast",
        120,
        60,
    );
    let entry = |server: &ServerProcess| server.api_stream("secretkey123");
    assert!(wait_for(STREAM_TIMEOUT, || entry(&server).is_some()));
    let first = entry(&server).expect("live");
    assert_eq!(first["key"], Value::Null, "no token, no key");
    assert_eq!(first["name"], "secretkey123");
    assert_eq!(first["history_interval_s"], 2);
    let r = http(
        "POST",
        &server.http_url("/api/streams/secretkey123/record/start"),
        &[],
    );
    // Without http.api_token controls are refused, whatever they ask.
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap_or("")
            .contains("http.api_token")
    );

    let server_history = |server: &ServerProcess| server.api_server()["history"].clone();
    let before = server_history(&server);
    assert_eq!(before["interval_s"], 2);
    let samples = |h: &Value| h["samples"].as_array().map_or(0, Vec::len);
    let bitrates = |e: &Value| e["bitrate_history_kbps"].as_array().map_or(0, Vec::len);
    let (server_before, stream_before) = (samples(&before), bitrates(&first));
    let mut now = before.clone();
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            now = server_history(&server);
            samples(&now) > server_before
                && entry(&server).is_some_and(|e| bitrates(&e) > stream_before)
        }),
        "the histories do not grow: {now}"
    );
    // The publisher's bytes show in the samples once a whole interval of them is counted.
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            let h = server_history(&server);
            let last = &h["samples"][samples(&h) - 1];
            last["ingest_kbps"].as_u64() > Some(0)
                && last["streams"] == 1
                && last["rtmp_connections"].as_i64() >= Some(1)
                && entry(&server).is_some_and(|e| {
                    e["bitrate_history_kbps"]
                        .as_array()
                        .and_then(|a| a.last())
                        .and_then(Value::as_u64)
                        > Some(0)
                })
        }),
        "{}",
        server_history(&server)
    );
    let mut advice = Value::Null;
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            advice = entry(&server).map_or(Value::Null, |e| e["keyframe_advice"].clone());
            advice
                .as_str()
                .is_some_and(|a| a.contains("longer than hls.time"))
        }),
        "no keyframe advice: {advice}"
    );
}
