//! What each stream and viewer did, and the summary table printed at the end of a run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::ll_report::LlSummary;
use crate::player_report::{self, PlayerReport};

/// Failures listed one by one under the table; the rest are counted.
const MAX_FAILURES_LISTED: usize = 10;

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Published for the whole duration (or until the run was stopped) and unpublished.
    Completed,
    /// The server refused the connect or the publish.
    Rejected { code: String, description: String },
    /// The connection failed, or the server ended a publish that had started.
    Failed(String),
}

/// One stream's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReport {
    pub key: String,
    pub outcome: Outcome,
    /// From connecting to NetStream.Publish.Start; `None` when the publish never started.
    pub publish_time: Option<Duration>,
    /// Media time sent: the timestamp of the last tag that went out.
    pub media: Duration,
    /// Wall time from the first tag to the last.
    pub wall: Duration,
    /// How far behind real time the stream fell at its worst.
    pub max_lag: Duration,
    /// Bytes written to the connection, handshake included.
    pub bytes_sent: u64,
    pub tags_sent: u64,
    /// The server answered the unpublish with NetStream.Unpublish.Success.
    pub unpublish_confirmed: bool,
}

impl StreamReport {
    pub fn new(key: String) -> StreamReport {
        StreamReport {
            key,
            outcome: Outcome::Failed("not run".to_owned()),
            publish_time: None,
            media: Duration::ZERO,
            wall: Duration::ZERO,
            max_lag: Duration::ZERO,
            bytes_sent: 0,
            tags_sent: 0,
            unpublish_confirmed: false,
        }
    }

    /// The publish started (NetStream.Publish.Start arrived).
    pub fn started(&self) -> bool {
        self.publish_time.is_some()
    }
}

/// One viewer's run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewerReport {
    /// The stream watched.
    pub key: String,
    pub playlist_requests: u64,
    pub segment_requests: u64,
    /// Segments fetched in full with 200.
    pub segments: u64,
    /// Bytes of those segments.
    pub bytes: u64,
    /// Failed requests, unexpected statuses and unreadable playlists.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// The last segment sequence number in the first playlist read, and in the latest.
    pub first_last_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
}

impl ViewerReport {
    pub fn new(key: String) -> ViewerReport {
        ViewerReport {
            key,
            ..ViewerReport::default()
        }
    }

    pub fn requests(&self) -> u64 {
        self.playlist_requests + self.segment_requests
    }

    pub fn status(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    pub fn error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    /// Notes a playlist read, by the sequence number of its last segment.
    pub fn saw(&mut self, last_sequence: Option<u64>) {
        if let Some(last) = last_sequence {
            self.first_last_sequence.get_or_insert(last);
            self.last_sequence = Some(self.last_sequence.map_or(last, |s| s.max(last)));
        }
    }

    /// A playlist with at least one segment was read.
    pub fn appeared(&self) -> bool {
        self.first_last_sequence.is_some()
    }

    /// A later playlist listed segments the first did not.
    pub fn advanced(&self) -> bool {
        matches!((self.first_last_sequence, self.last_sequence), (Some(a), Some(b)) if b > a)
    }
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Summary {
    pub url: String,
    pub file: String,
    /// One pass of the file.
    pub file_duration: Duration,
    /// Requested media time per stream.
    pub duration: Duration,
    pub ramp: Duration,
    pub streams: Vec<StreamReport>,
    pub viewers: Vec<ViewerReport>,
    /// The Low-Latency viewers, when the run had any.
    pub ll: Option<LlSummary>,
    /// The RTMP players, reading and stalled.
    pub players: Vec<PlayerReport>,
    /// From the first stream's start to the end of the last task.
    pub wall: Duration,
    /// CPU time (user + system) this process used, where the platform reports it.
    pub cpu: Option<Duration>,
}

impl Summary {
    /// Every stream published to its end and every RTMP player played.
    pub fn all_completed(&self) -> bool {
        self.streams.iter().all(|s| s.outcome == Outcome::Completed)
            && self.players.iter().all(PlayerReport::played)
    }

    /// Streams whose playlist at least one viewer read, and saw advance.
    fn playlists(&self) -> (usize, usize) {
        let mut by_key: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for v in &self.viewers {
            let entry = by_key.entry(&v.key).or_default();
            entry.0 |= v.appeared();
            entry.1 |= v.advanced();
        }
        let appeared = by_key.values().filter(|e| e.0).count();
        let advanced = by_key.values().filter(|e| e.1).count();
        (appeared, advanced)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Milliseconds with a decimal, for times that are often below one.
fn fine_millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Mean of durations; zero for none.
/// Min, mean and max of `values` (zero when empty).
fn spread(values: &[Duration]) -> (Duration, Duration, Duration) {
    let mean = match u32::try_from(values.len()) {
        Ok(n) if n > 0 => values.iter().sum::<Duration>() / n,
        _ => Duration::ZERO,
    };
    let min = values.iter().min().copied().unwrap_or_default();
    let max = values.iter().max().copied().unwrap_or_default();
    (min, mean, max)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "  {name:<18} {value}")
        };
        writeln!(
            f,
            "rtmp-load: {} streams of {} ({}, looped) to {}, {} each, ramp {}",
            self.streams.len(),
            self.file,
            secs(self.file_duration),
            self.url,
            secs(self.duration),
            secs(self.ramp),
        )?;
        let started: Vec<&StreamReport> = self.streams.iter().filter(|s| s.started()).collect();
        let rejected = self
            .streams
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Rejected { .. }))
            .count();
        let failed = self
            .streams
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
            .count();
        let completed = self.streams.len() - rejected - failed;
        row(
            f,
            "streams",
            format!(
                "{} started, {rejected} rejected, {failed} failed, {completed} completed",
                started.len()
            ),
        )?;
        if !started.is_empty() {
            let media: Vec<Duration> = started.iter().map(|s| s.media).collect();
            let (min, mean, max) = spread(&media);
            row(
                f,
                "media per stream",
                format!("min {}, mean {}, max {}", secs(min), secs(mean), secs(max)),
            )?;
            let wall: Vec<Duration> = started.iter().map(|s| s.wall).collect();
            let (_, mean, max) = spread(&wall);
            row(
                f,
                "wall per stream",
                format!("mean {}, max {}", secs(mean), secs(max)),
            )?;
            let lags: Vec<Duration> = started.iter().map(|s| s.max_lag).collect();
            if let Some(slowest) = started.iter().max_by_key(|s| s.max_lag) {
                row(
                    f,
                    "lag",
                    format!(
                        "max {} ({}), mean of stream maxima {}",
                        millis(slowest.max_lag),
                        slowest.key,
                        millis(spread(&lags).1)
                    ),
                )?;
            }
            let publish: Vec<Duration> = started.iter().filter_map(|s| s.publish_time).collect();
            let (_, mean, max) = spread(&publish);
            row(
                f,
                "publish time",
                format!(
                    "mean {}, max {} (connect to NetStream.Publish.Start)",
                    fine_millis(mean),
                    fine_millis(max)
                ),
            )?;
        }
        let bytes: u64 = self.streams.iter().map(|s| s.bytes_sent).sum();
        let tags: u64 = self.streams.iter().map(|s| s.tags_sent).sum();
        let wall = self.wall.as_secs_f64().max(f64::EPSILON);
        let per_stream_kbps = if started.is_empty() {
            0.0
        } else {
            let rates: f64 = started
                .iter()
                .map(|s| s.bytes_sent as f64 * 8.0 / s.wall.as_secs_f64().max(f64::EPSILON))
                .sum();
            rates / started.len() as f64 / 1000.0
        };
        row(
            f,
            "sent",
            format!(
                "{} in {tags} tags, {:.1} Mbit/s in all, {per_stream_kbps:.0} kbit/s per stream",
                mib(bytes),
                bytes as f64 * 8.0 / wall / 1e6
            ),
        )?;
        let unconfirmed = self
            .streams
            .iter()
            .filter(|s| s.outcome == Outcome::Completed && !s.unpublish_confirmed)
            .count();
        if unconfirmed > 0 {
            row(
                f,
                "unpublish",
                format!("{unconfirmed} not confirmed with NetStream.Unpublish.Success"),
            )?;
        }
        if !self.viewers.is_empty() {
            let requests: u64 = self.viewers.iter().map(ViewerReport::requests).sum();
            let segments: u64 = self.viewers.iter().map(|v| v.segments).sum();
            let bytes: u64 = self.viewers.iter().map(|v| v.bytes).sum();
            let errors: u64 = self.viewers.iter().map(|v| v.errors).sum();
            row(
                f,
                "viewers",
                format!(
                    "{}: {requests} requests ({:.1}/s), {segments} segments fetched, {}, {errors} errors",
                    self.viewers.len(),
                    requests as f64 / wall,
                    mib(bytes)
                ),
            )?;
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            for v in &self.viewers {
                for (status, n) in &v.statuses {
                    *statuses.entry(*status).or_default() += n;
                }
            }
            let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            row(f, "HTTP statuses", statuses.join(", "))?;
            let (appeared, advanced) = self.playlists();
            let watched = self.streams.len();
            row(
                f,
                "playlists",
                format!("{appeared} of {watched} appeared, {advanced} of {watched} advanced"),
            )?;
            if let Some(error) = self.viewers.iter().find_map(|v| v.first_error.as_ref()) {
                row(f, "first viewer error", error.clone())?;
            }
        }
        if let Some(ll) = &self.ll {
            ll.rows(f, self.wall, row)?;
        }
        player_report::rows(&self.players, f, row)?;
        if let Some(cpu) = self.cpu {
            let viewers = self.viewers.len() + self.ll.as_ref().map_or(0, |l| l.viewers.len());
            let per_thousand = if viewers > 0 {
                format!(
                    ", {:.1}% per 1,000 viewers",
                    cpu.as_secs_f64() / wall * 100.0 * 1000.0 / viewers as f64
                )
            } else {
                String::new()
            };
            row(
                f,
                "loadgen CPU",
                format!(
                    "{} ({:.1}% of one core over {}{per_thousand})",
                    secs(cpu),
                    cpu.as_secs_f64() / wall * 100.0,
                    secs(self.wall)
                ),
            )?;
        }
        row(f, "run time", secs(self.wall))?;
        let failures: Vec<String> = self
            .streams
            .iter()
            .filter_map(|s| match &s.outcome {
                Outcome::Completed => None,
                Outcome::Rejected { code, description } => {
                    Some(format!("{}: rejected: {code} ({description})", s.key))
                }
                Outcome::Failed(reason) => Some(format!("{}: failed: {reason}", s.key)),
            })
            .chain(player_report::failures(&self.players))
            .collect();
        if !failures.is_empty() {
            writeln!(f, "failures:")?;
            for failure in failures.iter().take(MAX_FAILURES_LISTED) {
                writeln!(f, "  {failure}")?;
            }
            if failures.len() > MAX_FAILURES_LISTED {
                writeln!(f, "  ... and {} more", failures.len() - MAX_FAILURES_LISTED)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(key: &str, outcome: Outcome, lag_ms: u64) -> StreamReport {
        let started = !matches!(outcome, Outcome::Rejected { .. });
        StreamReport {
            key: key.to_owned(),
            outcome,
            publish_time: started.then_some(Duration::from_millis(8)),
            media: Duration::from_millis(if started { 9_967 } else { 0 }),
            wall: Duration::from_millis(if started { 9_970 } else { 0 }),
            max_lag: Duration::from_millis(lag_ms),
            bytes_sent: if started { 1_000_000 } else { 3_200 },
            tags_sent: if started { 770 } else { 0 },
            unpublish_confirmed: started,
        }
    }

    fn viewer(key: &str, sequences: &[Option<u64>], segments: u64) -> ViewerReport {
        let mut v = ViewerReport::new(key.to_owned());
        for &s in sequences {
            v.playlist_requests += 1;
            v.status(if s.is_some() { 200 } else { 404 });
            v.saw(s);
        }
        v.segment_requests = segments;
        v.segments = segments;
        v.bytes = segments * 500_000;
        for _ in 0..segments {
            v.status(200);
        }
        v
    }

    fn summary() -> Summary {
        Summary {
            url: "rtmp://127.0.0.1:1935/live".to_owned(),
            file: "testdata/flv/h264_aac.flv".to_owned(),
            file_duration: Duration::from_millis(10_072),
            duration: Duration::from_secs(10),
            ramp: Duration::from_millis(60),
            streams: vec![
                stream("bench-1", Outcome::Completed, 3),
                stream("bench-2", Outcome::Completed, 41),
                stream(
                    "bench-3",
                    Outcome::Rejected {
                        code: "NetStream.Publish.Unauthorized".to_owned(),
                        description: "unknown key".to_owned(),
                    },
                    0,
                ),
            ],
            viewers: vec![
                viewer("bench-1", &[None, Some(0), Some(0), Some(2)], 3),
                viewer("bench-2", &[Some(1)], 2),
                viewer("bench-3", &[None, None], 0),
            ],
            ll: None,
            players: Vec::new(),
            wall: Duration::from_secs(10),
            cpu: Some(Duration::from_millis(250)),
        }
    }

    #[test]
    fn viewer_counts() {
        let v = viewer("k", &[None, Some(4), Some(4), Some(6), Some(5)], 3);
        assert!(v.appeared() && v.advanced());
        assert_eq!((v.first_last_sequence, v.last_sequence), (Some(4), Some(6)));
        assert_eq!(v.requests(), 8);
        assert_eq!(v.statuses, BTreeMap::from([(200, 7), (404, 1)]));
        let still = viewer("k", &[Some(4), Some(4)], 0);
        assert!(still.appeared() && !still.advanced());
        let mut failing = viewer("k", &[None], 0);
        failing.error("first".to_owned());
        failing.error("second".to_owned());
        assert_eq!(
            (failing.errors, failing.first_error.as_deref()),
            (2, Some("first"))
        );
        assert!(!failing.appeared());
    }

    #[test]
    fn summary_table() {
        let s = summary();
        assert!(!s.all_completed());
        assert_eq!(
            s.to_string(),
            "rtmp-load: 3 streams of testdata/flv/h264_aac.flv (10.07 s, looped) to \
             rtmp://127.0.0.1:1935/live, 10.00 s each, ramp 0.06 s\n\
             \x20 streams            2 started, 1 rejected, 0 failed, 2 completed\n\
             \x20 media per stream   min 9.97 s, mean 9.97 s, max 9.97 s\n\
             \x20 wall per stream    mean 9.97 s, max 9.97 s\n\
             \x20 lag                max 41 ms (bench-2), mean of stream maxima 22 ms\n\
             \x20 publish time       mean 8.0 ms, max 8.0 ms (connect to NetStream.Publish.Start)\n\
             \x20 sent               1.9 MiB in 1540 tags, 1.6 Mbit/s in all, 802 kbit/s per stream\n\
             \x20 viewers            3: 12 requests (1.2/s), 5 segments fetched, 2.4 MiB, 0 errors\n\
             \x20 HTTP statuses      200: 9, 404: 3\n\
             \x20 playlists          2 of 3 appeared, 1 of 3 advanced\n\
             \x20 loadgen CPU        0.25 s (2.5% of one core over 10.00 s, 833.3% per 1,000 viewers)\n\
             \x20 run time           10.00 s\n\
             failures:\n\
             \x20 bench-3: rejected: NetStream.Publish.Unauthorized (unknown key)\n"
        );
        let mut all_good = summary();
        all_good.streams.truncate(2);
        assert!(all_good.all_completed());
    }
}
