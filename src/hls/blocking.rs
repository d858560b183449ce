//! Blocking Playlist Reload: whether a playlist request carrying `_HLS_msn` (and maybe
//! `_HLS_part`) can be answered now, must wait for the stream, or asks too far ahead.
//!
//! Sans-IO: [`Position`] is where a Low-Latency stream stands (the window publishes it after
//! every change), [`readiness`] decides. The HTTP layer holds a waiting request on a
//! `tokio::sync::watch::Receiver<Position>` (the type is `Copy`, `Send` and `Sync`),
//! deciding again on every change, and gives up with 503 after [`hold_limit`]:
//!
//! ```text
//! loop {
//!     match readiness(&rx.borrow_and_update(), request) {
//!         Ready => break serve(playlist),
//!         TooFarAhead => break 400,
//!         Wait => select! { changed = rx.changed() => { if closed: 404 }, sleep(limit) => 503 }
//!     }
//! }
//! ```
//!
//! Spec: RFC 8216bis §6.2.5.2 (Blocking Playlist Reload).

use std::time::Duration;

use crate::media::Duration90k;

/// A request is held at most this many target durations, then answered 503.
///
/// Spec: RFC 8216bis §6.2.5.2: "A Server that cannot provide the requested Playlist after
/// blocking for more than three Target Durations SHOULD return Service Unavailable, such as
/// HTTP 503."
pub const HOLD_TARGET_DURATIONS: u32 = 3;

/// How far past the last Media Segment `_HLS_msn` may ask before the request is refused.
///
/// Spec: RFC 8216bis §6.2.5.2: "If the _HLS_msn is greater than the Media Sequence Number of
/// the last Media Segment in the current Playlist plus two [...] the server SHOULD
/// immediately return Bad Request".
pub const MAX_SEGMENTS_AHEAD: u64 = 2;

/// The Advance Part Limit for Part Target Durations of a second or more.
///
/// Spec: RFC 8216bis §6.2.5.2: "The Advance Part Limit is three divided by the Part Target
/// Duration if the Part Target Duration is less than one second, or three otherwise."
const ADVANCE_PART_LIMIT_FROM_ONE_SECOND: u64 = 3;

/// Where a Low-Latency stream stands, as blocking requests need it. Sent through a
/// `tokio::sync::watch` by whoever owns the stream's window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Media Sequence Number of the last complete Media Segment; `None` before the first.
    pub last_msn: Option<u64>,
    /// Partial Segments of that segment (every complete segment has at least one).
    pub last_parts: u64,
    /// Partial Segments that exist of the segment after it (the open segment, Media Sequence
    /// Number [`Position::open_msn`]); 0 when none has started.
    pub open_parts: u64,
    /// The playlist has EXT-X-ENDLIST: nothing more will come.
    pub ended: bool,
    /// Parts a request may ask beyond the last one that exists ([`advance_part_limit`]).
    pub advance_part_limit: u64,
}

impl Position {
    /// Media Sequence Number of the segment being written (or next to be).
    pub fn open_msn(&self) -> u64 {
        self.last_msn.map_or(0, |m| m.saturating_add(1))
    }
}

/// A Blocking Playlist Reload request: `_HLS_msn` and the optional `_HLS_part`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub msn: u64,
    pub part: Option<u64>,
}

/// What to do with a blocking request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Answer with the current playlist.
    Ready,
    /// Hold the request until the position changes (at most [`hold_limit`]).
    Wait,
    /// Answer 400 at once: the request asks further ahead than the stream can be soon.
    TooFarAhead,
}

/// Decides a blocking request against the stream's position.
///
/// - With EXT-X-ENDLIST every request is ready: the directives are ignored.
/// - `_HLS_msn` more than [`MAX_SEGMENTS_AHEAD`] past the last Media Segment, or `_HLS_part`
///   more than the Advance Part Limit past the last Partial Segment, is too far ahead.
/// - `_HLS_msn` alone is ready once that segment (or a later one) is complete; one already
///   complete, listed or not, is ready at once.
/// - With `_HLS_part`, ready once that Partial Segment exists; a Part Index past the last
///   Partial Segment of a complete segment means Part Index 0 of the next segment.
///
/// Spec: RFC 8216bis §6.2.5.2.
pub fn readiness(position: &Position, request: Request) -> Readiness {
    // "A Server MUST ignore _HLS_msn and _HLS_part if the Playlist contains an EXT-X-ENDLIST
    // tag."
    if position.ended {
        return Readiness::Ready;
    }
    let open_msn = position.open_msn();
    // Before the first segment there is no last one: `open_msn` is 0, and the limit counts
    // from the one that would precede it.
    if request.msn > open_msn.saturating_add(MAX_SEGMENTS_AHEAD - 1) {
        return Readiness::TooFarAhead;
    }
    let Some(part) = request.part else {
        // "until the Playlist contains a Media Segment with a Media Sequence Number of M or
        // later".
        return ready_if(position.last_msn.is_some_and(|last| last >= request.msn));
    };
    if let Some(last) = position.last_msn {
        if request.msn < last {
            // The segment is complete, and so is the next one, which holds Part Index 0 of
            // the segment after it if the index asked is past its last part.
            return Readiness::Ready;
        }
        if request.msn == last {
            // "If the Client requests a Part Index greater than that of the final Partial
            // Segment of the Parent Segment, the Server MUST treat the request as one for
            // Part Index 0 of the following Parent Segment."
            return ready_if(part < position.last_parts || position.open_parts > 0);
        }
    }
    // Parts beyond the last one that exists. For the segment after the open one, at least
    // the rest of the open segment comes first, unknown in length: counted as none.
    let ahead = if request.msn == open_msn {
        if part < position.open_parts {
            return Readiness::Ready;
        }
        part - position.open_parts + 1
    } else {
        part.saturating_add(1)
    };
    if ahead > position.advance_part_limit {
        Readiness::TooFarAhead
    } else {
        Readiness::Wait
    }
}

fn ready_if(ready: bool) -> Readiness {
    if ready {
        Readiness::Ready
    } else {
        Readiness::Wait
    }
}

/// The Advance Part Limit for a Part Target Duration, in whole parts: a request may ask for
/// a Partial Segment up to this many past the last one that exists.
///
/// Spec: RFC 8216bis §6.2.5.2 ("three divided by the Part Target Duration if the Part Target
/// Duration is less than one second, or three otherwise"). "Exceeds by the limit" is
/// `ahead > 3 / target`; with whole parts that is `ahead > floor(3 / target)`.
pub fn advance_part_limit(part_target: Duration90k) -> u64 {
    if part_target.ticks() >= Duration90k::HZ {
        return ADVANCE_PART_LIMIT_FROM_ONE_SECOND;
    }
    // A zero target (never configured) counts as the smallest, one tick.
    (ADVANCE_PART_LIMIT_FROM_ONE_SECOND * Duration90k::HZ) / part_target.ticks().max(1)
}

/// How long a blocking request (or one for a hinted part) is held before 503.
///
/// Spec: RFC 8216bis §6.2.5.2.
pub fn hold_limit(target_duration: u32) -> Duration {
    Duration::from_secs(u64::from(target_duration) * u64::from(HOLD_TARGET_DURATIONS))
}

#[cfg(test)]
mod tests {
    use super::Readiness::{Ready, TooFarAhead, Wait};
    use super::*;

    /// Segment 10 complete with 4 parts, segment 11 open with `open_parts`; limit 6 parts
    /// (a 0.5 s Part Target Duration).
    fn at(open_parts: u64) -> Position {
        Position {
            last_msn: Some(10),
            last_parts: 4,
            open_parts,
            ended: false,
            advance_part_limit: 6,
        }
    }

    fn msn(msn: u64) -> Request {
        Request { msn, part: None }
    }

    fn part(msn: u64, part: u64) -> Request {
        Request {
            msn,
            part: Some(part),
        }
    }

    #[test]
    fn msn_alone_waits_for_the_complete_segment() {
        let p = at(2);
        assert_eq!(readiness(&p, msn(10)), Ready);
        assert_eq!(readiness(&p, msn(11)), Wait, "open, not complete");
        assert_eq!(readiness(&p, msn(12)), Wait);
        assert_eq!(readiness(&p, msn(13)), TooFarAhead, "last + 3");
        assert_eq!(readiness(&p, msn(u64::MAX)), TooFarAhead);
    }

    #[test]
    fn old_segments_are_ready_at_once() {
        let p = at(0);
        assert_eq!(readiness(&p, msn(0)), Ready);
        assert_eq!(readiness(&p, msn(9)), Ready);
        assert_eq!(readiness(&p, part(3, 0)), Ready);
        assert_eq!(readiness(&p, part(9, 3)), Ready);
        // Past the last part of segment 9: part 0 of segment 10, complete.
        assert_eq!(readiness(&p, part(9, 4)), Ready);
        assert_eq!(readiness(&p, part(9, u64::MAX)), Ready);
    }

    #[test]
    fn part_of_the_last_complete_segment() {
        let p = at(0);
        assert_eq!(readiness(&p, part(10, 0)), Ready);
        assert_eq!(readiness(&p, part(10, 3)), Ready);
        // Past its last part: part 0 of segment 11, which does not exist yet...
        assert_eq!(readiness(&p, part(10, 4)), Wait);
        assert_eq!(readiness(&p, part(10, 1000)), Wait);
        // ...until it does.
        assert_eq!(readiness(&at(1), part(10, 4)), Ready);
        assert_eq!(readiness(&at(1), part(10, 1000)), Ready);
    }

    #[test]
    fn parts_of_the_open_segment() {
        let p = at(2);
        assert_eq!(readiness(&p, part(11, 0)), Ready);
        assert_eq!(readiness(&p, part(11, 1)), Ready);
        assert_eq!(readiness(&p, part(11, 2)), Wait, "the next part");
        // Parts 2..=7 are the six the limit allows ahead of part 1.
        assert_eq!(readiness(&p, part(11, 7)), Wait);
        assert_eq!(readiness(&p, part(11, 8)), TooFarAhead);
        assert_eq!(readiness(&p, part(11, u64::MAX)), TooFarAhead);
        // No part yet: parts 0..=5.
        assert_eq!(readiness(&at(0), part(11, 5)), Wait);
        assert_eq!(readiness(&at(0), part(11, 6)), TooFarAhead);
    }

    #[test]
    fn parts_of_the_segment_after_the_open_one() {
        let p = at(3);
        assert_eq!(readiness(&p, part(12, 0)), Wait);
        assert_eq!(readiness(&p, part(12, 5)), Wait);
        assert_eq!(readiness(&p, part(12, 6)), TooFarAhead);
        assert_eq!(readiness(&p, part(13, 0)), TooFarAhead, "last + 3");
    }

    #[test]
    fn the_open_segment_closing_turns_a_wait_into_part_zero_of_the_next() {
        // Waiting for part 4 of segment 11, which closes after part 3.
        let request = part(11, 4);
        assert_eq!(readiness(&at(4), request), Wait);
        let closed = Position {
            last_msn: Some(11),
            last_parts: 4,
            open_parts: 0,
            ..at(0)
        };
        assert_eq!(readiness(&closed, request), Wait, "part 0 of 12 to come");
        let next = Position {
            open_parts: 1,
            ..closed
        };
        assert_eq!(readiness(&next, request), Ready);
    }

    #[test]
    fn ended_stream_answers_everything_at_once() {
        let p = Position {
            ended: true,
            ..at(2)
        };
        for request in [
            msn(11),
            msn(12),
            msn(1000),
            part(11, 2),
            part(11, 500),
            part(10, 4),
            part(u64::MAX, u64::MAX),
        ] {
            assert_eq!(readiness(&p, request), Ready, "{request:?}");
        }
        let never_started = Position {
            ended: true,
            ..Position::default()
        };
        assert_eq!(readiness(&never_started, msn(5)), Ready);
    }

    #[test]
    fn before_the_first_segment() {
        let p = Position {
            advance_part_limit: 6,
            ..Position::default()
        };
        assert_eq!(p.open_msn(), 0);
        assert_eq!(readiness(&p, msn(0)), Wait);
        assert_eq!(readiness(&p, msn(1)), Wait);
        assert_eq!(readiness(&p, msn(2)), TooFarAhead);
        assert_eq!(readiness(&p, part(0, 0)), Wait);
        assert_eq!(readiness(&p, part(0, 6)), TooFarAhead);
        let first_part = Position { open_parts: 1, ..p };
        assert_eq!(readiness(&first_part, part(0, 0)), Ready);
        assert_eq!(readiness(&first_part, msn(0)), Wait, "not complete");
    }

    #[test]
    fn advance_part_limit_follows_the_part_target() {
        // 0.5 s: 6 parts; 1/3 s (30 000 ticks): 9; 0.33334 s: 3 / 0.33334 = 8.99, so 8.
        assert_eq!(advance_part_limit(Duration90k(45_000)), 6);
        assert_eq!(advance_part_limit(Duration90k(30_000)), 9);
        assert_eq!(advance_part_limit(Duration90k(30_001)), 8);
        assert_eq!(advance_part_limit(Duration90k(89_999)), 3);
        assert_eq!(advance_part_limit(Duration90k(90_000)), 3);
        assert_eq!(advance_part_limit(Duration90k(900_000)), 3);
        assert_eq!(advance_part_limit(Duration90k::ZERO), 270_000);
    }

    #[test]
    fn hold_limit_is_three_target_durations() {
        assert_eq!(hold_limit(2), Duration::from_secs(6));
        assert_eq!(hold_limit(0), Duration::ZERO);
        assert_eq!(
            hold_limit(u32::MAX),
            Duration::from_secs(3 * u64::from(u32::MAX))
        );
    }

    #[test]
    fn position_is_what_a_watch_channel_needs() {
        fn sendable<T: Clone + Send + Sync + 'static>() {}
        sendable::<Position>();
        let (tx, mut rx) = tokio::sync::watch::channel(Position::default());
        tx.send_replace(at(1));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(readiness(&rx.borrow_and_update(), part(11, 0)), Ready);
    }
}
