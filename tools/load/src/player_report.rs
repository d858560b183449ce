//! What the RTMP players did: per player, and as rows of the summary table.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rtmp_server::media::RtmpTimestamp;

/// Statuses kept per player, in the order they came: a play sees a handful.
pub const MAX_STATUSES: usize = 16;

/// How a player behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerKind {
    /// Reads everything the server sends, acknowledges it and answers pings.
    Reading,
    /// Stops reading once `play` is out: a player whose connection the server cannot drain.
    Stalled,
}

/// How a player ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerOutcome {
    /// A reading player played until its stream ended, the run ended or the run was stopped,
    /// and received media; a stalled player sent `play`.
    Played,
    /// The server refused: an `_error` reply, or an error onStatus before any media
    /// (NetStream.Play.Failed, NetStream.Play.StreamNotFound).
    Rejected { code: String, description: String },
    /// The connection failed, the play did not start in time, no media came, or the server
    /// ended the play or the connection while the stream went on.
    Failed(String),
}

/// One RTMP player's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerReport {
    /// Which player: the stream and its number, for the failure list.
    pub label: String,
    /// The stream name played.
    pub name: String,
    pub kind: PlayerKind,
    pub outcome: PlayerOutcome,
    /// From writing `play` to reading the first video message.
    pub first_video: Option<Duration>,
    /// The first video message's frame type said keyframe: FLV VideoTagHeader FrameType 1,
    /// or Enhanced RTMP VideoFrameType 1 (a sequence header carries it too).
    pub first_video_keyframe: Option<bool>,
    /// The first video message that carried a picture (coded frames, not a sequence header
    /// or command) was a keyframe.
    pub first_picture_keyframe: Option<bool>,
    /// onStatus codes received, in order (the first [`MAX_STATUSES`]).
    pub statuses: Vec<String>,
    /// Bytes read from the connection, handshake included.
    pub bytes: u64,
    pub video_messages: u64,
    pub audio_messages: u64,
    pub data_messages: u64,
    /// Timestamps of the first and the last media message.
    pub first_timestamp: Option<RtmpTimestamp>,
    pub last_timestamp: Option<RtmpTimestamp>,
    /// What ended the player: the run's end, the stream's end (Stream EOF or an onStatus
    /// code), the server closing the connection.
    pub end: Option<String>,
    /// The server closed or reset the connection, and how that was seen.
    pub disconnected: Option<String>,
}

impl PlayerReport {
    pub fn new(label: String, name: String, kind: PlayerKind) -> PlayerReport {
        PlayerReport {
            label,
            name,
            kind,
            outcome: PlayerOutcome::Failed("not run".to_owned()),
            first_video: None,
            first_video_keyframe: None,
            first_picture_keyframe: None,
            statuses: Vec::new(),
            bytes: 0,
            video_messages: 0,
            audio_messages: 0,
            data_messages: 0,
            first_timestamp: None,
            last_timestamp: None,
            end: None,
            disconnected: None,
        }
    }

    /// Notes an onStatus code.
    pub fn status(&mut self, code: &str) {
        if self.statuses.len() < MAX_STATUSES {
            self.statuses.push(code.to_owned());
        }
    }

    /// Audio and video messages received.
    pub fn media_messages(&self) -> u64 {
        self.video_messages + self.audio_messages
    }

    /// Notes a media message's timestamp.
    pub fn timestamp(&mut self, timestamp: RtmpTimestamp) {
        self.first_timestamp.get_or_insert(timestamp);
        self.last_timestamp = Some(timestamp);
    }

    /// Media time received: from the first media timestamp to the last (RTMP timestamps
    /// wrap; a jump back counts as none).
    pub fn media(&self) -> Duration {
        match (self.first_timestamp, self.last_timestamp) {
            (Some(first), Some(last)) => {
                Duration::from_millis(last.wrapping_diff(first).max(0) as u64)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn played(&self) -> bool {
        self.outcome == PlayerOutcome::Played
    }
}

/// The value at quantile `q` (0 to 1) of sorted `values`, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fine_millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Rows of the summary table for `players` (nothing without players).
pub fn rows(
    players: &[PlayerReport],
    f: &mut fmt::Formatter<'_>,
    row: impl Fn(&mut fmt::Formatter<'_>, &str, String) -> fmt::Result,
) -> fmt::Result {
    let (reading, stalled): (Vec<&PlayerReport>, Vec<&PlayerReport>) =
        players.iter().partition(|p| p.kind == PlayerKind::Reading);
    if !reading.is_empty() {
        let count =
            |pick: fn(&PlayerOutcome) -> bool| reading.iter().filter(|p| pick(&p.outcome)).count();
        let played = count(|o| *o == PlayerOutcome::Played);
        let rejected = count(|o| matches!(o, PlayerOutcome::Rejected { .. }));
        let failed = count(|o| matches!(o, PlayerOutcome::Failed(_)));
        let sum = |field: fn(&PlayerReport) -> u64| reading.iter().map(|p| field(p)).sum::<u64>();
        let disconnected = reading.iter().filter(|p| p.disconnected.is_some()).count();
        row(
            f,
            "RTMP players",
            format!(
                "{}: {played} played, {rejected} rejected, {failed} failed; {} in {} video + {} \
                 audio messages, {disconnected} disconnected by the server",
                reading.len(),
                mib(sum(|p| p.bytes)),
                sum(|p| p.video_messages),
                sum(|p| p.audio_messages),
            ),
        )?;
        let mut waits: Vec<Duration> = reading.iter().filter_map(|p| p.first_video).collect();
        waits.sort();
        if !waits.is_empty() {
            row(
                f,
                "play to video",
                format!(
                    "median {}, p90 {}, max {} over {} players (play sent to first video \
                     message)",
                    fine_millis(quantile(&waits, 0.5)),
                    fine_millis(quantile(&waits, 0.9)),
                    fine_millis(quantile(&waits, 1.0)),
                    waits.len()
                ),
            )?;
            let keyframes = |field: fn(&PlayerReport) -> Option<bool>| {
                let known: Vec<bool> = reading.iter().filter_map(|p| field(p)).collect();
                let yes = known.iter().filter(|&&k| k).count();
                format!("{yes} of {}", known.len())
            };
            row(
                f,
                "first video",
                format!(
                    "keyframe in {} players (message frame type), first picture a keyframe in {}",
                    keyframes(|p| p.first_video_keyframe),
                    keyframes(|p| p.first_picture_keyframe)
                ),
            )?;
        }
        let mut statuses: BTreeMap<&str, u64> = BTreeMap::new();
        for code in reading.iter().flat_map(|p| &p.statuses) {
            *statuses.entry(code).or_default() += 1;
        }
        if !statuses.is_empty() {
            let statuses: Vec<String> = statuses.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            row(f, "play statuses", statuses.join(", "))?;
        }
    }
    if !stalled.is_empty() {
        let sent = stalled.iter().filter(|p| p.played()).count();
        let closed = stalled.iter().filter(|p| p.disconnected.is_some()).count();
        let bytes: u64 = stalled.iter().map(|p| p.bytes).sum();
        row(
            f,
            "RTMP stalled",
            format!(
                "{}: {sent} sent play, {closed} closed by the server, {} open at the end; {} \
                 received in all",
                stalled.len(),
                sent - closed.min(sent),
                mib(bytes)
            ),
        )?;
    }
    Ok(())
}

/// One line per player that did not play, for the failure list.
pub fn failures(players: &[PlayerReport]) -> impl Iterator<Item = String> + '_ {
    players.iter().filter_map(|p| match &p.outcome {
        PlayerOutcome::Played => None,
        PlayerOutcome::Rejected { code, description } => {
            Some(format!("{}: rejected: {code} ({description})", p.label))
        }
        PlayerOutcome::Failed(reason) => Some(format!("{}: failed: {reason}", p.label)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows<'a>(&'a [PlayerReport]);

    impl fmt::Display for Rows<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            rows(self.0, f, |f, name, value| {
                writeln!(f, "{name:<18} {value}")
            })
        }
    }

    fn reading(n: u64, first_video_ms: Option<u64>) -> PlayerReport {
        let mut p = PlayerReport::new(
            format!("bench-1 player {n}"),
            "bench-1".to_owned(),
            PlayerKind::Reading,
        );
        p.outcome = PlayerOutcome::Played;
        p.first_video = first_video_ms.map(Duration::from_millis);
        p.first_video_keyframe = first_video_ms.map(|_| true);
        p.first_picture_keyframe = first_video_ms.map(|ms| ms < 100);
        p.bytes = 1024 * 1024;
        p.video_messages = 300;
        p.audio_messages = 430;
        p.status("NetStream.Play.Reset");
        p.status("NetStream.Play.Start");
        p
    }

    #[test]
    fn media_span_and_statuses() {
        let mut p = reading(1, None);
        assert_eq!(p.media(), Duration::ZERO);
        p.timestamp(RtmpTimestamp(u32::MAX - 9));
        p.timestamp(RtmpTimestamp(20));
        assert_eq!(p.media(), Duration::from_millis(30));
        for _ in 0..MAX_STATUSES {
            p.status("NetStream.Play.Start");
        }
        assert_eq!(p.statuses.len(), MAX_STATUSES);
        assert_eq!(p.media_messages(), 730);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|&m| Duration::from_millis(m)).collect() };
        let values = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(5));
        assert_eq!(quantile(&values, 0.9), Duration::from_millis(9));
        assert_eq!(quantile(&values, 1.0), Duration::from_millis(10));
        assert_eq!(quantile(&ms(&[7]), 0.5), Duration::from_millis(7));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn rows_add_up_the_players() {
        let mut refused = reading(3, None);
        refused.outcome = PlayerOutcome::Rejected {
            code: "NetStream.Play.Failed".to_owned(),
            description: "no".to_owned(),
        };
        refused.statuses = vec!["NetStream.Play.Failed".to_owned()];
        refused.bytes = 0;
        refused.video_messages = 0;
        refused.audio_messages = 0;
        let mut cut = reading(4, Some(250));
        cut.outcome = PlayerOutcome::Failed("disconnected: reset".to_owned());
        cut.disconnected = Some("reset".to_owned());
        let mut stalled_open = PlayerReport::new(
            "bench-1 stalled player 1".to_owned(),
            "bench-1".to_owned(),
            PlayerKind::Stalled,
        );
        stalled_open.outcome = PlayerOutcome::Played;
        stalled_open.bytes = 3 * 1024 * 1024;
        let mut stalled_closed = stalled_open.clone();
        stalled_closed.label = "bench-1 stalled player 2".to_owned();
        stalled_closed.disconnected = Some("reset while stalled".to_owned());
        let players = vec![
            reading(1, Some(12)),
            reading(2, Some(40)),
            refused,
            cut,
            stalled_open,
            stalled_closed,
        ];
        assert_eq!(
            Rows(&players).to_string(),
            "RTMP players       4: 2 played, 1 rejected, 1 failed; 3.0 MiB in 900 video + 1290 \
             audio messages, 1 disconnected by the server\n\
             play to video      median 40.0 ms, p90 250.0 ms, max 250.0 ms over 3 players (play \
             sent to first video message)\n\
             first video        keyframe in 3 of 3 players (message frame type), first picture a \
             keyframe in 2 of 3\n\
             play statuses      NetStream.Play.Failed: 1, NetStream.Play.Reset: 3, \
             NetStream.Play.Start: 3\n\
             RTMP stalled       2: 2 sent play, 1 closed by the server, 1 open at the end; 6.0 \
             MiB received in all\n"
        );
        let failures: Vec<String> = failures(&players).collect();
        assert_eq!(
            failures,
            [
                "bench-1 player 3: rejected: NetStream.Play.Failed (no)",
                "bench-1 player 4: failed: disconnected: reset"
            ]
        );
        assert_eq!(Rows(&[]).to_string(), "");
    }
}
