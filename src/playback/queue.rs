//! One player's queue of tags waiting to be written, and what happens when the player does
//! not read fast enough: it is bounded in bytes; a player that fills it skips video to the
//! next keyframe (its audio and sequence headers kept, so sound goes on without a gap), and
//! one that keeps falling behind is dropped.
//!
//! Sans-IO: tags and clocks in, tags and verdicts out. The queue holds references to the
//! stream's frames, not copies, so a stalled player costs the tags it holds and keeps alive
//! at most a queue's worth of frames the other players have long written.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::flv::mux::Tag;
use crate::flv::tag::TagType;

/// How much a player may have waiting, and how often it may fall behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most tag body bytes waiting. Above it, queued video is dropped up to the next
    /// keyframe. It holds a cached GOP of a high-rate stream (the first burst a player
    /// gets) with room to spare.
    pub bytes: usize,
    /// Skips within [`QueueLimits::window`] after which the player is dropped.
    pub skips: usize,
    pub window: Duration,
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            bytes: 8 * 1024 * 1024,
            skips: 3,
            window: Duration::from_secs(60),
        }
    }
}

/// Why a player is dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Behind {
    #[error(
        "the player fell behind {skips} times within {window:?}: it reads slower than the stream"
    )]
    KeepsFallingBehind { skips: usize, window: Duration },
    #[error("the player's queue is full ({bytes} bytes) with audio and headers alone")]
    Full { bytes: usize },
}

/// What [`PlayerQueue::push`] did with a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Left out: the player is skipping video to the next keyframe.
    Skipped,
    /// The queue overflowed: its video was dropped and the player waits for the next
    /// keyframe (this tag included).
    FellBehind {
        dropped: usize,
    },
}

/// One player's waiting tags.
#[derive(Debug)]
pub struct PlayerQueue {
    limits: QueueLimits,
    tags: VecDeque<Tag>,
    bytes: usize,
    /// Video is left out until the lead track's next keyframe.
    skipping: bool,
    skips: VecDeque<Instant>,
}

impl PlayerQueue {
    /// A queue whose player starts with a keyframe: video before the first one is left out.
    pub fn new(limits: QueueLimits) -> PlayerQueue {
        PlayerQueue {
            limits,
            tags: VecDeque::new(),
            bytes: 0,
            skipping: true,
            skips: VecDeque::new(),
        }
    }

    /// Queues `tag`, unless it is video while the player skips to a keyframe.
    pub fn push(&mut self, tag: Tag, now: Instant) -> Result<Pushed, Behind> {
        let video = tag.kind == TagType::Video && !tag.config;
        if video && self.skipping {
            if !tag.keyframe {
                return Ok(Pushed::Skipped);
            }
            self.skipping = false;
        }
        self.bytes += tag.body_len();
        self.tags.push_back(tag);
        if self.bytes <= self.limits.bytes {
            return Ok(Pushed::Queued);
        }
        // Behind: what the player has not read of the video goes, and it waits for the next
        // keyframe; audio and headers stay.
        let before = self.tags.len();
        self.tags.retain(|t| t.kind != TagType::Video || t.config);
        self.bytes = self.tags.iter().map(Tag::body_len).sum();
        self.skipping = true;
        let window = self.limits.window;
        while self
            .skips
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) > window)
        {
            self.skips.pop_front();
        }
        self.skips.push_back(now);
        if self.skips.len() >= self.limits.skips {
            return Err(Behind::KeepsFallingBehind {
                skips: self.skips.len(),
                window,
            });
        }
        if self.bytes > self.limits.bytes {
            return Err(Behind::Full { bytes: self.bytes });
        }
        Ok(Pushed::FellBehind {
            dropped: before - self.tags.len(),
        })
    }

    /// The next tag to write.
    pub fn pop(&mut self) -> Option<Tag> {
        let tag = self.tags.pop_front()?;
        self.bytes -= tag.body_len();
        Some(tag)
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Gives back room a burst left, keeping what a few turns of a stream need.
    pub fn shrink(&mut self) {
        self.tags.shrink_to(256);
    }

    /// Tag body bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::mux::testing::tag;

    const LIMITS: QueueLimits = QueueLimits {
        bytes: 100,
        skips: 3,
        window: Duration::from_secs(60),
    };

    fn kinds(q: &mut PlayerQueue) -> String {
        std::iter::from_fn(|| q.pop())
            .map(|t| match (t.kind, t.keyframe, t.config) {
                (_, _, true) => 'C',
                (TagType::Video, true, _) => 'K',
                (TagType::Video, false, _) => 'v',
                (TagType::Audio, ..) => 'a',
                (TagType::ScriptData, ..) => 'D',
            })
            .collect()
    }

    #[test]
    fn a_player_starts_at_a_keyframe_and_gets_everything_after_it() {
        let mut q = PlayerQueue::new(LIMITS);
        let now = Instant::now();
        for t in [
            tag(TagType::ScriptData, false, true, 5),
            tag(TagType::Video, false, true, 5),
            tag(TagType::Video, false, false, 5),
            tag(TagType::Audio, false, false, 5),
            tag(TagType::Video, true, false, 5),
            tag(TagType::Video, false, false, 5),
        ] {
            q.push(t, now).unwrap();
        }
        assert_eq!(kinds(&mut q), "CCaKv");
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_slow_player_skips_video_to_the_next_keyframe_and_keeps_its_audio() {
        let mut q = PlayerQueue::new(LIMITS);
        let now = Instant::now();
        q.push(tag(TagType::Video, true, false, 30), now).unwrap();
        q.push(tag(TagType::Audio, false, false, 10), now).unwrap();
        q.push(tag(TagType::Video, false, false, 30), now).unwrap();
        let r = q.push(tag(TagType::Video, false, false, 40), now).unwrap();
        assert_eq!(r, Pushed::FellBehind { dropped: 3 });
        assert_eq!(
            q.push(tag(TagType::Video, false, false, 5), now).unwrap(),
            Pushed::Skipped
        );
        q.push(tag(TagType::Audio, false, false, 10), now).unwrap();
        q.push(tag(TagType::Video, true, false, 5), now).unwrap();
        assert_eq!(kinds(&mut q), "aaK");
    }

    #[test]
    fn a_player_that_keeps_falling_behind_is_dropped() {
        let mut q = PlayerQueue::new(LIMITS);
        let start = Instant::now();
        let mut verdicts = Vec::new();
        for i in 0..3 {
            let now = start + Duration::from_secs(i);
            q.push(tag(TagType::Video, true, false, 60), now).unwrap();
            verdicts.push(q.push(tag(TagType::Video, false, false, 60), now));
        }
        assert!(matches!(verdicts[0], Ok(Pushed::FellBehind { .. })));
        assert!(matches!(verdicts[1], Ok(Pushed::FellBehind { .. })));
        assert!(matches!(
            verdicts[2],
            Err(Behind::KeepsFallingBehind { skips: 3, .. })
        ));
        // Skips far apart are forgiven.
        let mut q = PlayerQueue::new(LIMITS);
        for i in 0..10 {
            let now = start + Duration::from_secs(61 * i);
            q.push(tag(TagType::Video, true, false, 60), now).unwrap();
            q.push(tag(TagType::Video, false, false, 60), now).unwrap();
        }
    }

    #[test]
    fn audio_alone_beyond_the_bound_drops_the_player() {
        let mut q = PlayerQueue::new(LIMITS);
        let now = Instant::now();
        q.push(tag(TagType::Audio, false, false, 90), now).unwrap();
        let r = q.push(tag(TagType::Audio, false, false, 20), now);
        assert_eq!(r, Err(Behind::Full { bytes: 110 }));
    }
}
