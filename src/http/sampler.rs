//! The history sampler: one task that, every [`INTERVAL`], adds the server's figures to the
//! `/api/server` history and each live stream's ingest bit rate to its own, for the
//! dashboard's graphs.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::HttpContext;
use crate::hub::history::{INTERVAL, kbps};
use crate::hub::stream::lock;
use crate::metrics::REJECT_REASONS;

/// The server's figures at one moment of its history.
#[derive(Clone, Debug, Serialize)]
pub struct ServerSample {
    /// When it was taken, in Unix seconds.
    pub t: u64,
    pub streams: usize,
    pub rtmp_connections: i64,
    pub http_connections: i64,
    /// Bytes received from RTMP clients per second since the sample before, in kbit/s.
    pub ingest_kbps: u64,
    /// Bytes sent to HLS viewers, players and relay targets per second since the sample
    /// before, in kbit/s.
    pub egress_kbps: u64,
    pub segment_memory_bytes: i64,
    /// The media root's size as last measured (at most twice [`super::api::DISK_USAGE_TTL`]
    /// before), or `None` when it was not measured lately.
    pub disk_bytes_used: Option<u64>,
    pub disk_errors: u64,
    /// Publishes refused so far, whatever the reason.
    pub publishes_refused: u64,
}

/// The byte counters rates are measured from, and when they were read.
struct Counters {
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

fn read_counters(shared: &HttpContext) -> Counters {
    let m = &shared.metrics;
    Counters {
        at: Instant::now(),
        bytes_in: m.rtmp_bytes_in_total.get(),
        bytes_out: m.http_bytes_out_total.get()
            + m.player_bytes_out_total.get()
            + m.relay_bytes_out_total.get(),
    }
}

/// Samples until the server stops.
pub async fn run(shared: Arc<HttpContext>) {
    // The first sample comes an interval after the start: its rates cover a whole one.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = read_counters(&shared);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        before = sample(&shared, before);
    }
}

/// Takes one sample of the server and of every live stream; returns the counters read.
fn sample(shared: &HttpContext, before: Counters) -> Counters {
    let now = read_counters(shared);
    let elapsed = now.at.saturating_duration_since(before.at);
    let live = shared.registry.live_streams();
    for stream in &live {
        stream.sample_bitrate();
    }
    let m = &shared.metrics;
    let disk_bytes_used = lock(&shared.disk_usage)
        .filter(|(at, _)| at.elapsed() <= super::api::DISK_USAGE_TTL * 2)
        .map(|(_, bytes)| bytes);
    let sample = ServerSample {
        t: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        streams: live.len(),
        rtmp_connections: m.rtmp_connections.get(),
        http_connections: m.http_connections.get(),
        ingest_kbps: kbps(before.bytes_in, now.bytes_in, elapsed),
        egress_kbps: kbps(before.bytes_out, now.bytes_out, elapsed),
        segment_memory_bytes: m.segment_memory_bytes.get(),
        disk_bytes_used,
        disk_errors: shared.disk_stats.errors(),
        publishes_refused: REJECT_REASONS.iter().map(|&r| m.rejected(r)).sum(),
    };
    lock(&shared.history).push(sample);
    now
}
