//! The periodic re-check of a live stream's key (`auth.recheck`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use crate::auth::{KeyChecker, Rejection};
use crate::hub::key::StreamKey;
use crate::hub::stop::{StopReason, StopSignal};
use crate::metrics::Metrics;

/// Asks the stream-service about `key` every `every` while it is published, and stops
/// the publisher (`stop`, for [`StopReason::KeyRevoked`]) when the service no longer accepts it. An unreachable service
/// does not stop a live stream: only a definite answer (unknown, inactive, expired) does.
/// The re-checks end when the returned guard is dropped.
pub(super) fn spawn(
    checker: KeyChecker,
    metrics: Arc<Metrics>,
    key: StreamKey,
    every: Duration,
    stop: StopSignal,
) -> DropGuard {
    let done = CancellationToken::new();
    let guard = done.clone().drop_guard();
    let stopped = stop.token();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = done.cancelled() => return,
                _ = stopped.cancelled() => return,
            }
            match checker.check(&key, true).await {
                Ok(_) => debug!(key = %key.redacted(), "key re-check: still accepted"),
                // 401 is about this server's own credentials (a rotated auth.token), not the key.
                Err(Rejection::Unknown(401)) => {
                    warn!(key = %key.redacted(), "key re-check answered 401, stream kept: check auth.token");
                }
                Err(Rejection::Unavailable(reason)) => {
                    warn!(key = %key.redacted(), "key re-check failed, stream kept: stream-service unavailable: {reason}");
                }
                Err(rejection) => {
                    warn!(key = %key.redacted(), "key re-check: {rejection}; stopping the stream");
                    metrics.reject(rejection.label());
                    stop.stop(StopReason::KeyRevoked);
                    return;
                }
            }
        }
    });
    guard
}
