//! What the Low-Latency viewers did: counts per viewer, errors by kind, and the run's
//! latency figures, as rows of the summary table.

use std::fmt;
use std::time::Duration;

use crate::latency::{Latencies, LatencyHistogram};

/// Errors a Low-Latency viewer counts, by kind. Each is a failure of the server (or of the
/// path to it); none is expected in a healthy run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LlErrors {
    /// Requests that failed: connection refused or reset, time-out, malformed HTTP.
    pub transport: u64,
    /// 503: a blocking request or hinted part not answered within three target durations.
    pub unavailable: u64,
    /// 400: a request the server refused (a blocking request it judged too far ahead).
    pub bad_request: u64,
    /// Other statuses than 200 (a 404 for a listed part, or for the playlist once it
    /// appeared).
    pub other_status: u64,
    /// Playlists that could not be read.
    pub playlist: u64,
    /// Parts or initialization sections whose boxes do not add up, or parts whose `mfhd`
    /// sequence number did not increase.
    pub framing: u64,
    /// Playlists whose new parts did not follow the last part fetched.
    pub missing_parts: u64,
    /// Playlists whose Media Sequence Number went back.
    pub sequence_back: u64,
    /// Blocking answers (without EXT-X-ENDLIST) that listed no part after the last one
    /// fetched.
    pub no_new_part: u64,
}

impl LlErrors {
    pub fn total(&self) -> u64 {
        self.transport
            + self.unavailable
            + self.bad_request
            + self.other_status
            + self.playlist
            + self.framing
            + self.missing_parts
            + self.sequence_back
            + self.no_new_part
    }

    fn add(&mut self, o: &LlErrors) {
        self.transport += o.transport;
        self.unavailable += o.unavailable;
        self.bad_request += o.bad_request;
        self.other_status += o.other_status;
        self.playlist += o.playlist;
        self.framing += o.framing;
        self.missing_parts += o.missing_parts;
        self.sequence_back += o.sequence_back;
        self.no_new_part += o.no_new_part;
    }
}

/// One Low-Latency viewer's run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlViewerReport {
    /// The stream watched.
    pub key: String,
    /// Playlist requests, blocking ones included.
    pub playlist_requests: u64,
    /// Requests with `_HLS_msn` and `_HLS_part`.
    pub blocking_requests: u64,
    /// Parts fetched in full with 200 and checked.
    pub parts: u64,
    pub part_bytes: u64,
    /// Initialization sections fetched.
    pub inits: u64,
    pub errors: LlErrors,
    pub first_error: Option<String>,
    /// Parts whose latency was measured: listed in a blocking answer, their last frame sent
    /// after the request went out.
    pub timed: u64,
    /// Parts listed in a blocking answer whose last frame had been sent before the request
    /// went out (the viewer was behind): not timed.
    pub listed_before_asked: u64,
    /// Parts with video whose last frame could not be tied to a frame sent (a mapping that
    /// does not hold, or a frame forgotten): not timed.
    pub unmatched: u64,
    /// Playlists whose first new part was not the one the previous playlist's preload hint
    /// named. The server numbers parts over the stream's life so that its hint names the part
    /// that comes next whatever segment it opens; only a new publisher or the end may make a
    /// hint miss, so outside those this stays 0.
    pub hint_misses: u64,
    /// Connections opened again after the server closed one.
    pub reconnects: u64,
}

impl LlViewerReport {
    pub fn new(key: String) -> LlViewerReport {
        LlViewerReport {
            key,
            ..LlViewerReport::default()
        }
    }

    /// Counts an error of the kind `kind` picks, keeping the first message.
    pub fn error(&mut self, kind: fn(&mut LlErrors) -> &mut u64, message: impl FnOnce() -> String) {
        *kind(&mut self.errors) += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// The run's latency histograms, filled by every Low-Latency viewer.
#[derive(Debug, Default)]
pub struct LlFigures {
    /// From a blocking request's first byte sent to its answer's last byte received.
    pub blocked_wait: LatencyHistogram,
    /// From the publisher's write of a part's last frame to the blocking answer that lists
    /// the part.
    pub part_listed: LatencyHistogram,
    /// From the same write to the part's last byte received.
    pub part_received: LatencyHistogram,
}

/// All Low-Latency viewers of a run.
#[derive(Clone, Debug, Default)]
pub struct LlSummary {
    pub viewers: Vec<LlViewerReport>,
    pub blocked_wait: Latencies,
    pub part_listed: Latencies,
    pub part_received: Latencies,
}

impl LlSummary {
    pub fn new(viewers: Vec<LlViewerReport>, figures: &LlFigures) -> LlSummary {
        LlSummary {
            viewers,
            blocked_wait: figures.blocked_wait.latencies(),
            part_listed: figures.part_listed.latencies(),
            part_received: figures.part_received.latencies(),
        }
    }

    /// Every viewer's errors added up.
    pub fn errors(&self) -> LlErrors {
        let mut all = LlErrors::default();
        for v in &self.viewers {
            all.add(&v.errors);
        }
        all
    }

    /// The summary rows, `row(name, value)` each; `wall` is the run's length.
    pub fn rows(
        &self,
        f: &mut fmt::Formatter<'_>,
        wall: Duration,
        row: impl Fn(&mut fmt::Formatter<'_>, &str, String) -> fmt::Result,
    ) -> fmt::Result {
        let sum = |field: fn(&LlViewerReport) -> u64| self.viewers.iter().map(field).sum::<u64>();
        let errors = self.errors();
        let requests = sum(|v| v.playlist_requests);
        let wall = wall.as_secs_f64().max(f64::EPSILON);
        row(
            f,
            "LL viewers",
            format!(
                "{}: {requests} playlist requests, {} blocking, {} parts fetched ({:.1}/s), \
                 {:.1} MiB, {} errors",
                self.viewers.len(),
                sum(|v| v.blocking_requests),
                sum(|v| v.parts),
                sum(|v| v.parts) as f64 / wall,
                sum(|v| v.part_bytes) as f64 / (1024.0 * 1024.0),
                errors.total()
            ),
        )?;
        row(
            f,
            "LL errors",
            format!(
                "{} transport, {} 503, {} 400, {} other status, {} playlist, {} framing, \
                 {} parts missing, {} sequence back, {} without a new part",
                errors.transport,
                errors.unavailable,
                errors.bad_request,
                errors.other_status,
                errors.playlist,
                errors.framing,
                errors.missing_parts,
                errors.sequence_back,
                errors.no_new_part
            ),
        )?;
        row(
            f,
            "LL blocked wait",
            format!(
                "{} over {} requests, sent to answered",
                quantiles(&self.blocked_wait),
                self.blocked_wait.count
            ),
        )?;
        row(
            f,
            "LL part listed",
            format!(
                "{} over {} parts timed: publisher write of the part's last frame to the \
                 blocking answer listing it",
                quantiles(&self.part_listed),
                self.part_listed.count
            ),
        )?;
        row(
            f,
            "LL part received",
            format!(
                "{} over the same parts: that write to the part's last byte received",
                quantiles(&self.part_received)
            ),
        )?;
        row(
            f,
            "LL untimed parts",
            format!(
                "{} listed before asked, {} not matched to a sent frame; {} hint misses, \
                 {} reconnects, {} initialization sections",
                sum(|v| v.listed_before_asked),
                sum(|v| v.unmatched),
                sum(|v| v.hint_misses),
                sum(|v| v.reconnects),
                sum(|v| v.inits)
            ),
        )?;
        if let Some(error) = self.viewers.iter().find_map(|v| v.first_error.as_ref()) {
            row(f, "first LL error", error.clone())?;
        }
        Ok(())
    }
}

/// `p50 A ms, p90 B ms, p99 C ms, max D ms`.
fn quantiles(l: &Latencies) -> String {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "p50 {}, p90 {}, p99 {}, max {}",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows<'a>(&'a LlSummary);

    impl fmt::Display for Rows<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.rows(f, Duration::from_secs(10), |f, name, value| {
                writeln!(f, "{name:<18} {value}")
            })
        }
    }

    #[test]
    fn rows_add_up_the_viewers() {
        let figures = LlFigures::default();
        for ms in [2, 3, 4] {
            figures.part_listed.record(Duration::from_millis(ms));
            figures.part_received.record(Duration::from_millis(ms + 1));
        }
        figures.blocked_wait.record(Duration::from_millis(150));
        let mut a = LlViewerReport::new("bench-1".to_owned());
        a.playlist_requests = 11;
        a.blocking_requests = 10;
        a.parts = 12;
        a.part_bytes = 3 * 1024 * 1024;
        a.inits = 1;
        a.timed = 3;
        a.listed_before_asked = 1;
        let mut b = a.clone();
        b.error(|e| &mut e.unavailable, || "playlist: HTTP 503".to_owned());
        b.error(|e| &mut e.framing, || "second".to_owned());
        b.reconnects = 2;
        let summary = LlSummary::new(vec![a, b], &figures);
        assert_eq!(summary.errors().total(), 2);
        assert_eq!(
            Rows(&summary).to_string(),
            "LL viewers         2: 22 playlist requests, 20 blocking, 24 parts fetched (2.4/s), \
             6.0 MiB, 2 errors\n\
             LL errors          0 transport, 1 503, 0 400, 0 other status, 0 playlist, \
             1 framing, 0 parts missing, 0 sequence back, 0 without a new part\n\
             LL blocked wait    p50 150.0 ms, p90 150.0 ms, p99 150.0 ms, max 150.0 ms over 1 requests, sent \
             to answered\n\
             LL part listed     p50 3.0 ms, p90 4.0 ms, p99 4.0 ms, max 4.0 ms over 3 parts timed: \
             publisher write of the part's last frame to the blocking answer listing it\n\
             LL part received   p50 4.0 ms, p90 5.0 ms, p99 5.0 ms, max 5.0 ms over the same parts: that \
             write to the part's last byte received\n\
             LL untimed parts   2 listed before asked, 0 not matched to a sent frame; 0 hint \
             misses, 2 reconnects, 2 initialization sections\n\
             first LL error     playlist: HTTP 503\n"
        );
    }
}
