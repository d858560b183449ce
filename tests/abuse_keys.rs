//! Stream keys tried in bulk, end to end: the real server binary, a real HTTP stub of the
//! stream-service that counts what it is asked, and the project's RTMP client (fast enough
//! to make hundreds of attempts) connecting from chosen loopback addresses. The failed-publish
//! table and the limit's rules are checked in `ingest::failures` and `ingest_layer.rs`; here a
//! storm of bad keys is cut off while other clients are let in.

mod common;

use std::net::IpAddr;

use common::stub::{Answer, StubService};
use common::*;

/// Bad-key attempts the storm makes.
const STORM: usize = 300;

const LIMIT: usize = 10;

fn from(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// The series `rtmp_server_publishes_rejected_total{reason="..."}`.
fn rejected(reason: &str) -> String {
    format!("rtmp_server_publishes_rejected_total{{reason=\"{reason}\"}}")
}

#[test]
fn a_storm_of_bad_keys_from_one_address_is_cut_off_and_others_still_publish() {
    let stub = StubService::start();
    stub.set("good", Answer::json(200, "{}"));
    // A cool-down far longer than the test: it must not end while the storm goes on.
    let server = ServerProcess::start(&[
        "--stream-service",
        &stub.url,
        "--auth-max-failures",
        &LIMIT.to_string(),
        "--auth-failure-window",
        "600",
        "--auth-failure-cooldown",
        "3600",
    ]);
    let mut limited = 0;
    for n in 0..STORM {
        // A different key each time: the negative cache does not help, the limit must.
        match ClientPublisher::attempt(&server, &format!("guess-{n}"), from(1)) {
            Attempt::Published(_) => panic!("guess-{n} was accepted"),
            Attempt::Refused { code, description } => {
                assert_eq!(code, "NetStream.Publish.Unauthorized", "guess-{n}");
                if n < LIMIT {
                    assert!(description.contains("unknown"), "guess-{n}: {description}");
                } else {
                    assert!(
                        description.contains("too many failed publishes"),
                        "guess-{n}: {description}"
                    );
                    limited += 1;
                }
            }
        }
    }
    assert_eq!(limited, STORM - LIMIT);
    // The stream-service heard the first attempts only.
    assert_eq!(stub.seen().len(), LIMIT, "{:?}", stub.seen());

    // A good key from another address publishes at once.
    let publisher = match ClientPublisher::attempt(&server, "good", from(2)) {
        Attempt::Published(p) => p,
        Attempt::Refused { code, description } => {
            panic!("refused: {code}: {description}\n{}", server.logs())
        }
    };
    assert_eq!(stub.seen().len(), LIMIT + 1);
    assert_eq!(stub.seen()[LIMIT].path, "/api/streams/good");
    // The limited address stays refused, good key or not, without the service being asked.
    assert!(matches!(
        ClientPublisher::attempt(&server, "good", from(1)),
        Attempt::Refused { .. }
    ));
    assert_eq!(stub.seen().len(), LIMIT + 1);
    publisher.finish();

    let metrics = server.metrics();
    assert_eq!(
        metric_value(&metrics, &rejected("rate_limited")),
        Some((STORM - LIMIT + 1) as f64),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, &rejected("unknown_key")),
        Some(LIMIT as f64)
    );
    assert_eq!(
        metric_value(&metrics, "rtmp_server_publish_cooldowns_total"),
        Some(1.0)
    );
    // The gauge is refreshed about once a second.
    assert!(wait_for(STREAM_TIMEOUT, || server
        .metric("rtmp_server_publish_cooldown_addresses")
        == Some(1.0)));

    // One line says the address reached the limit; each refused connection says why it
    // ended.
    server.assert_logged("failed-publish limit reached");
    server.assert_logged_times("too many failed publishes", STORM - LIMIT + 1);
    let logs = server.logs();
    assert_eq!(
        logs.matches("failed-publish limit reached").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("client=127.0.0.1"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_good_key_below_the_limit_publishes_and_clears_its_address_count() {
    let stub = StubService::start();
    stub.set("good", Answer::json(200, "{}"));
    let server = ServerProcess::start(&[
        "--stream-service",
        &stub.url,
        "--auth-max-failures",
        "3",
        "--auth-failure-window",
        "600",
    ]);
    // Two failures, a good publish, two failures, a good publish: never four failures in a
    // row, so never the limit.
    for round in 0..2 {
        for n in 0..2 {
            let key = format!("typo-{round}-{n}");
            assert!(
                matches!(
                    ClientPublisher::attempt(&server, &key, from(1)),
                    Attempt::Refused { .. }
                ),
                "{key}"
            );
        }
        let mut publisher = match ClientPublisher::attempt(&server, "good", from(1)) {
            Attempt::Published(p) => p,
            Attempt::Refused { code, description } => {
                panic!("round {round}: {code}: {description}\n{}", server.logs())
            }
        };
        for tag in flv_tags(&testdata("flv/h264_aac.flv")).iter().take(20) {
            publisher.send_tag(tag, tag.timestamp);
        }
        publisher.finish();
    }
    assert_eq!(server.metric(&rejected("unknown_key")), Some(4.0));
    // A series is written once something was counted in it.
    assert_eq!(server.metric(&rejected("rate_limited")).unwrap_or(0.0), 0.0);
    assert_eq!(
        server.metric("rtmp_server_publish_cooldowns_total"),
        Some(0.0)
    );
    assert!(!server.logs().contains("failed-publish limit reached"));
}

#[test]
fn one_bad_key_tried_again_and_again_is_asked_about_once() {
    let stub = StubService::start();
    // The limit off: only the negative cache stands between the attempts and the service.
    let server = ServerProcess::start(&["--stream-service", &stub.url, "--auth-max-failures", "0"]);
    for n in 0..50 {
        assert!(
            matches!(
                ClientPublisher::attempt(&server, "revoked-key", from(1 + n % 4)),
                Attempt::Refused { .. }
            ),
            "attempt {n}"
        );
    }
    assert_eq!(stub.seen().len(), 1, "{:?}", stub.seen());
    assert_eq!(server.metric(&rejected("unknown_key")), Some(50.0));
    assert_eq!(server.metric(&rejected("rate_limited")).unwrap_or(0.0), 0.0);
}
