//! Telling a publisher to stop, and why: the signal its connection waits on, and the reason
//! the connection tells the encoder in its last `onStatus` before it closes.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a publisher was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Another publish of the same key took the stream over (here, or on another node of
    /// the cluster).
    TakenOver,
    /// The stream-service no longer accepts the key (`auth.recheck`).
    KeyRevoked,
    /// The server's operator stopped the stream (`POST /api/streams/{name}/stop`).
    Operator,
}

impl StopReason {
    /// The NetStream status code of the `onStatus` (level `error`) the encoder is sent.
    /// An error-level status is what ends a publish in clients: ffmpeg's RTMP protocol
    /// prints its description as "Server error: ..." and fails the write, so the encoder
    /// exits instead of sending into a closed connection.
    pub fn code(self) -> &'static str {
        "NetStream.Publish.Failed"
    }

    /// The status's description: what the encoder shows its user.
    pub fn description(self) -> &'static str {
        match self {
            StopReason::TakenOver => "the stream was taken over by another publish of its key",
            StopReason::KeyRevoked => "the stream key is no longer valid",
            StopReason::Operator => "the stream was stopped by the server's operator",
        }
    }
}

/// A publisher's stop signal, shared by everything that may stop it and the tasks that end
/// with it. The first reason given is the one kept.
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl StopSignal {
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Tells the publisher to stop, for `reason` (unless it was told already).
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Whether the publisher was told to stop.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the publisher was told to stop, once it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// The token that is cancelled at the stop, for tasks that only wait for it.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept() {
        let signal = StopSignal::new();
        let waiter = signal.token();
        assert!(!signal.is_stopped());
        assert_eq!(signal.reason(), None);
        signal.clone().stop(StopReason::Operator);
        signal.stop(StopReason::TakenOver);
        assert!(waiter.is_cancelled());
        assert_eq!(signal.reason(), Some(StopReason::Operator));
        assert!(
            StopReason::Operator
                .description()
                .contains("stopped by the server's operator")
        );
    }
}
