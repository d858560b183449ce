//! Where each relay target stands, for the stats API (`relays` of a stream), `/metrics` and
//! the log: `connecting`, `live` or `retrying`, since when, the last error, the bytes sent
//! and the reconnections. The target's task changes it; readers take a [`RelayReport`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use tracing::info;

use crate::hub::stream::lock;
use crate::metrics::{Metrics, StateLabel};
use crate::wallclock::rfc3339_millis;

/// Where a target stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayState {
    /// Connecting, handshaking, waiting for the target to accept the publish (or for the
    /// stream's first tracks).
    Connecting,
    /// The target accepted the publish; media goes out.
    Live,
    /// The last attempt failed or the connection dropped: waiting to try again.
    Retrying,
}

impl RelayState {
    /// The `state` of the API and of `rtmp_server_relay_targets`.
    pub fn label(self) -> &'static str {
        match self {
            RelayState::Connecting => "connecting",
            RelayState::Live => "live",
            RelayState::Retrying => "retrying",
        }
    }

    pub const ALL: [RelayState; 3] = [
        RelayState::Connecting,
        RelayState::Live,
        RelayState::Retrying,
    ];
}

/// One target of one publish, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RelayReport {
    /// The target without its stream name: `rtmp://host/app/***`.
    pub url: String,
    pub state: &'static str,
    /// Why the last attempt failed or the last connection ended, if one did.
    pub last_error: Option<String>,
    /// When it entered its state (RFC 3339).
    pub since: String,
    /// Bytes written to the target, over every connection of this publish.
    pub bytes_out: u64,
    /// Attempts to connect after the first (failed ones included).
    pub reconnects: u64,
}

struct Current {
    state: RelayState,
    since: SystemTime,
    last_error: Option<String>,
}

/// One target's state, shared by its task (writer) and the API (reader).
pub struct RelayStatus {
    /// The redacted URL.
    pub url: String,
    /// The publish it relays (a stream shows the current publisher's relays only).
    pub publisher: u64,
    stream: String,
    current: Mutex<Current>,
    bytes: AtomicU64,
    reconnects: AtomicU64,
    metrics: Arc<Metrics>,
}

impl RelayStatus {
    /// A target of publisher `publisher` of `stream`, `connecting` (counted in the gauge
    /// until [`RelayStatus::finish`]).
    pub fn new(url: String, stream: &str, publisher: u64, metrics: Arc<Metrics>) -> RelayStatus {
        gauge(&metrics, RelayState::Connecting).inc();
        info!(stream = %stream, target = %url, "relay connecting");
        RelayStatus {
            url,
            publisher,
            stream: stream.to_string(),
            current: Mutex::new(Current {
                state: RelayState::Connecting,
                since: SystemTime::now(),
                last_error: None,
            }),
            bytes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            metrics,
        }
    }

    pub fn state(&self) -> RelayState {
        lock(&self.current).state
    }

    /// Moves to `state` (logged, and counted in the gauge); nothing when already there.
    pub fn set(&self, state: RelayState) {
        let mut current = lock(&self.current);
        if current.state == state {
            return;
        }
        gauge(&self.metrics, current.state).dec();
        gauge(&self.metrics, state).inc();
        current.state = state;
        current.since = SystemTime::now();
        match state {
            RelayState::Live => {
                self.metrics.relay_connects_total.inc();
            }
            RelayState::Connecting => {
                self.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            RelayState::Retrying => {}
        }
        let (stream, target) = (&self.stream, &self.url);
        match (state, &current.last_error) {
            (RelayState::Retrying, Some(error)) => {
                info!(stream = %stream, target = %target, error = %error, "relay retrying")
            }
            (state, _) => info!(stream = %stream, target = %target, "relay {}", state.label()),
        }
    }

    /// The attempt failed or the connection ended for `error`: counted, kept for the API,
    /// and the target is `retrying`.
    pub fn fail(&self, error: String) {
        self.metrics.relay_failures_total.inc();
        lock(&self.current).last_error = Some(error);
        self.set(RelayState::Retrying);
    }

    /// `n` more bytes went to the target.
    pub fn sent(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.relay_bytes_out_total.inc_by(n as u64);
    }

    /// The relay of this publish is over: it leaves the gauge.
    pub fn finish(&self) {
        let current = lock(&self.current);
        gauge(&self.metrics, current.state).dec();
        info!(stream = %self.stream, target = %self.url, "relay stopped");
    }

    pub fn report(&self) -> RelayReport {
        let current = lock(&self.current);
        RelayReport {
            url: self.url.clone(),
            state: current.state.label(),
            last_error: current.last_error.clone(),
            since: rfc3339_millis(current.since),
            bytes_out: self.bytes.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

fn gauge(metrics: &Metrics, state: RelayState) -> prometheus_client::metrics::gauge::Gauge {
    metrics
        .relay_targets
        .get_or_create(&StateLabel {
            state: state.label(),
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_move_the_gauge_and_count_connects_failures_and_reconnects() {
        let metrics = Arc::new(Metrics::default());
        let count = |s: RelayState| gauge(&metrics, s).get();
        let status = RelayStatus::new("rtmp://h/app/***".into(), "s", 1, metrics.clone());
        assert_eq!(count(RelayState::Connecting), 1);
        status.set(RelayState::Live);
        assert_eq!(
            (count(RelayState::Connecting), count(RelayState::Live)),
            (0, 1)
        );
        status.sent(100);
        status.fail("the target closed the connection".into());
        status.set(RelayState::Connecting);
        status.set(RelayState::Live);
        let report = status.report();
        assert_eq!(report.state, "live");
        assert_eq!(
            report.last_error.as_deref(),
            Some("the target closed the connection")
        );
        assert_eq!((report.bytes_out, report.reconnects), (100, 1));
        assert_eq!(metrics.relay_connects_total.get(), 2);
        assert_eq!(metrics.relay_failures_total.get(), 1);
        assert_eq!(metrics.relay_bytes_out_total.get(), 100);
        status.finish();
        assert!(RelayState::ALL.iter().all(|&s| count(s) == 0));
    }
}
