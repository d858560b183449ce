//! A cluster of two real server processes sharing one real redis-server, with real ffmpeg
//! publishers: streams are answered by either node, one publisher holds a key across the
//! cluster, a dead node's keys are freed when its lease runs out, and a node without its
//! Redis keeps its streams but refuses new publishes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::redis::RedisServer;
use common::*;

/// Short leases keep the tests short: a dead node's key is free 2 s after its last renewal.
const LEASE: &str = "2";

fn node(redis: &RedisServer, id: &str, extra: &[&str]) -> ServerProcess {
    let url = redis.url();
    let mut args = vec![
        "--cluster-redis",
        &url,
        "--cluster-node-id",
        id,
        "--cluster-lease",
        LEASE,
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn ready(server: &ServerProcess) -> bool {
    get(&server.http_url("/readyz")).status == 200
}

/// The streams of `/api/streams` (`scope=local`: this node's only), as `(name, node)`.
fn listed(server: &ServerProcess, query: &str) -> Vec<(String, String)> {
    let r = get(&server.http_url(&format!("/api/streams{query}")));
    assert_eq!(r.status, 200, "/api/streams{query}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn live_locally(server: &ServerProcess, key: &str) -> bool {
    listed(server, "?scope=local").iter().any(|(n, _)| n == key)
}

/// The first bytes of `/live/{key}.flv` from `server`: the FLV header, then tags.
fn flv_start(server: &ServerProcess, key: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", server.http_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /live/{key}.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 8192 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn two_nodes_answer_for_each_other_and_hold_a_key_once() {
    let redis = RedisServer::start();
    let a = node(&redis, "node-a", &[]);
    let b = node(&redis, "node-b", &[]);
    assert!(wait_for(STREAM_TIMEOUT, || ready(&a) && ready(&b)));

    let mut on_a = live_publisher(&a, "cam");
    wait_playlist(&a, "cam");
    // HLS through B, proxied from A.
    let playlist = wait_playlist(&b, "cam");
    let segment = get(&b.http_url(&format!("/live/cam/{}", playlist.entries[0].uri)));
    assert_eq!(segment.status, 200);
    assert!(
        !segment.body.is_empty() && segment.body[0] == 0x47,
        "a TS segment"
    );
    let ll = get(&b.http_url("/live/cam/llhls.m3u8"));
    assert_eq!(ll.status, 200);
    assert!(ll.text().contains("#EXT-X-PART"), "{}", ll.text());
    // HTTP-FLV through B.
    let flv = flv_start(&b, "cam");
    let body_at = flv
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer")
        + 4;
    assert!(
        flv.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&flv[..body_at])
    );
    assert!(
        flv[body_at..].windows(3).any(|w| w == b"FLV"),
        "an FLV stream"
    );
    // WebSocket-FLV through B: redirected to A.
    let mut s = TcpStream::connect(("127.0.0.1", b.http_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /live/cam.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 1024];
    let n = s.read(&mut head).expect("an answer");
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 307"), "{head}");
    let location = format!("location: http://127.0.0.1:{}/live/cam.flv", a.http_port);
    assert!(head.contains(&location), "{head}");
    // The stream API through B, and the whole cluster's list on B.
    assert_eq!(b.api_stream("cam").expect("forwarded")["name"], "cam");
    // A control through B is answered by A (B would answer 404: not live there; A, without
    // http.api_token, refuses the control itself).
    let r = http("POST", &b.http_url("/api/streams/cam/record/stop"), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("http.api_token"), "{}", r.text());
    assert!(listed(&b, "").contains(&("cam".into(), "node-a".into())));
    assert!(!live_locally(&b, "cam"));
    assert!(
        b.metric("rtmp_server_cluster_forwarded_requests_total{mode=\"proxy\"}")
            .unwrap_or(0.0)
            >= 1.0
    );

    // A holder that does not answer, or whose address is not a URL: a clear 502, and the
    // cluster list marks the node that did not answer.
    for (node, url) in [("node-x", "http://127.0.0.1:1"), ("node-y", "not a url")] {
        let key = format!("rtmp-server:lease:live/{node}");
        assert_eq!(
            redis
                .command(&["SET", &key, &format!("{node}:1"), "PX", "60000"])
                .as_deref(),
            Some("+OK")
        );
        let record = format!("rtmp-server:node:{node}");
        assert_eq!(
            redis
                .command(&["SET", &record, url, "PX", "60000"])
                .as_deref(),
            Some("+OK")
        );
        redis.command(&["SADD", "rtmp-server:nodes", node]);
        let r = get(&b.http_url(&format!("/live/{node}/index.m3u8")));
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(r.text().contains(node), "{}", r.text());
    }
    b.assert_logged("forwarding to the stream's holder failed");
    let all = get(&b.http_url("/api/streams"));
    let all: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    let nodes = all["nodes"].as_array().expect("nodes");
    let ok = |id: &str| {
        nodes
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["ok"] == true)
    };
    assert_eq!(
        (ok("node-a"), ok("node-b"), ok("node-x")),
        (Some(true), Some(true), Some(false)),
        "{all}"
    );
    assert!(listed(&b, "").contains(&("cam".into(), "node-a".into())));

    // A publish of the same key on B takes it over: A's publisher is stopped.
    let mut on_b = live_publisher(&b, "cam");
    assert!(
        on_a.wait(STREAM_TIMEOUT).is_some(),
        "A's publisher goes on:\n{}",
        a.logs()
    );
    a.assert_logged("another node took the key over");
    assert!(
        wait_for(STREAM_TIMEOUT, || live_locally(&b, "cam")),
        "{}",
        b.logs()
    );
    assert!(wait_for(STREAM_TIMEOUT, || !live_locally(&a, "cam")));
    assert!(
        redis
            .command(&["GET", "rtmp-server:lease:live/cam"])
            .is_some_and(|v| v.starts_with("node-b:")),
        "B holds the key"
    );
    assert!(on_b.is_running(), "{}", on_b.logs());
    // A now forwards to B.
    assert!(wait_for(STREAM_TIMEOUT, || listed(&a, "")
        .contains(&("cam".into(), "node-b".into()))));
}

#[test]
fn without_takeover_a_held_key_is_refused_until_its_dead_holders_lease_runs_out() {
    let redis = RedisServer::start();
    let mut a = node(&redis, "node-a", &["--rtmp-takeover", "false"]);
    let b = node(
        &redis,
        "node-b",
        &["--rtmp-takeover", "false", "--cluster-forward", "redirect"],
    );
    assert!(wait_for(STREAM_TIMEOUT, || ready(&a) && ready(&b)));
    let _on_a = live_publisher(&a, "cam");
    wait_playlist(&a, "cam");

    // B redirects players to A.
    let r = try_http("GET", &b.http_url("/live/cam/index.m3u8"), &[]).expect("answer");
    assert_eq!(r.status, 200, "followed to A");
    assert!(
        b.metric("rtmp_server_cluster_forwarded_requests_total{mode=\"redirect\"}")
            .unwrap_or(0.0)
            >= 1.0
    );

    // A second publish on B is refused while A holds the key.
    let mut refused = live_publisher(&b, "cam");
    assert!(
        refused.wait(STREAM_TIMEOUT).is_some(),
        "the publish on B goes on"
    );
    b.assert_logged("already being published on node node-a");
    assert!(!live_locally(&b, "cam"));

    // A publish that ends gives its key back: another node publishes it at once, takeover
    // off, while the ended stream's lease still covers its last writes.
    let mut ended = live_publisher(&a, "ended");
    wait_playlist(&a, "ended");
    ended.kill();
    assert!(
        wait_for(STREAM_TIMEOUT, || redis
            .command(&["GET", "rtmp-server:lease:live/ended"])
            .is_some_and(|v| v.starts_with("released:node-a:"))),
        "the ended publish did not give its key back"
    );
    let _ended_on_b = live_publisher(&b, "ended");
    assert!(
        wait_for(STREAM_TIMEOUT, || live_locally(&b, "ended")),
        "{}",
        b.logs()
    );
    assert!(
        redis
            .command(&["GET", "rtmp-server:lease:live/ended"])
            .is_some_and(|v| v.starts_with("node-b:")),
        "B holds the key"
    );

    // A dies: its key is free once its lease runs out, and B may publish it.
    a.kill();
    assert!(
        wait_for(STREAM_TIMEOUT, || redis
            .command(&["GET", "rtmp-server:lease:live/cam"])
            .is_some_and(|v| v == "$-1")),
        "the dead node's lease never ran out"
    );
    let mut on_b = live_publisher(&b, "cam");
    assert!(
        wait_for(STREAM_TIMEOUT, || live_locally(&b, "cam")),
        "{}",
        b.logs()
    );
    assert!(on_b.is_running(), "{}", on_b.logs());
}

#[test]
fn without_redis_a_node_keeps_its_streams_and_refuses_new_publishes() {
    let mut redis = RedisServer::stopped();
    let a = node(&redis, "node-a", &[]);
    // Unreachable at start: not ready, and a publish is refused with the reason logged.
    assert!(wait_for(STREAM_TIMEOUT, || {
        let r = get(&a.http_url("/readyz"));
        r.status == 503 && r.text().contains("cluster Redis unreachable")
    }));
    let mut refused = live_publisher(&a, "early");
    assert!(refused.wait(STREAM_TIMEOUT).is_some());
    a.assert_logged("publish refused: the cluster's Redis cannot be reached");

    // Redis comes: ready, and publishes are accepted.
    redis.restart();
    assert!(wait_for(STREAM_TIMEOUT, || ready(&a)), "{}", a.logs());
    let mut on_a = live_publisher(&a, "cam");
    let before = wait_playlist(&a, "cam");

    // Redis dies mid-stream: the stream goes on, the node says it is not ready.
    redis.kill();
    assert!(wait_for(STREAM_TIMEOUT, || get(&a.http_url("/readyz"))
        .status
        == 503));
    assert_advances(&a, "cam", &mut on_a, &before);

    // Redis is back (empty): ready again, the held key is taken again, new publishes go.
    redis.restart();
    assert!(wait_for(STREAM_TIMEOUT, || ready(&a)), "{}", a.logs());
    assert!(
        wait_for(STREAM_TIMEOUT, || redis
            .command(&["GET", "rtmp-server:lease:live/cam"])
            .is_some_and(|v| v.starts_with("node-a:"))),
        "the lease was not taken again:\n{}",
        a.logs()
    );
    let _second = live_publisher(&a, "cam2");
    assert!(
        wait_for(STREAM_TIMEOUT, || live_locally(&a, "cam2")),
        "{}",
        a.logs()
    );
    assert!(on_a.is_running());
}

#[test]
fn a_node_finds_its_redis_through_sentinel() {
    let master = RedisServer::start();
    let sentinel = RedisServer::sentinel("streams", &master);
    let url = format!("redis+sentinel://127.0.0.1:{}/streams", sentinel.port);
    let a = ServerProcess::start(&["--cluster-redis", &url, "--cluster-node-id", "node-a"]);
    assert!(wait_for(STREAM_TIMEOUT, || ready(&a)), "{}", a.logs());
    let _on_a = live_publisher(&a, "cam");
    assert!(
        wait_for(STREAM_TIMEOUT, || live_locally(&a, "cam")),
        "{}",
        a.logs()
    );
    assert!(
        master
            .command(&["GET", "rtmp-server:lease:live/cam"])
            .is_some_and(|v| v.starts_with("node-a:")),
        "the lease is in the master Sentinel names"
    );
    // A stop gives the key back and removes the node's record, without waiting out the
    // stop's deadline.
    let mut a = a;
    assert!(a.terminate().success(), "{}", a.logs());
    assert!(!a.logs().contains("stop deadline"), "{}", a.logs());
    // Given back: gone, or marked released for the rest of its lease (free to claim).
    let lease = master.command(&["GET", "rtmp-server:lease:live/cam"]);
    assert!(
        lease
            .as_deref()
            .is_some_and(|v| v == "$-1" || v.starts_with("released:node-a:")),
        "{lease:?}"
    );
    assert_eq!(
        master
            .command(&["EXISTS", "rtmp-server:node:node-a"])
            .as_deref(),
        Some(":0")
    );
}
