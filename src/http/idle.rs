//! Whether an HTTP/2 connection is still used: one that carried no request for
//! [`IDLE_LIMIT`] is closed and gives its place under `http.max_connections` back. HTTP/1.1
//! connections have the header time-out for that; an HTTP/2 connection's pings keep its
//! socket busy while nobody uses it, so only requests count here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long an HTTP/2 connection may go without a request in flight. Players ask every
/// part or segment (a second or two); a page that stopped playing has left.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The requests of one connection: how many are in flight and when the last one started or
/// ended.
#[derive(Debug)]
pub struct Requests {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// A request in flight; it ends when dropped (answered, or reset by the client).
#[derive(Debug)]
pub struct InFlight(Arc<Requests>);

impl Requests {
    pub fn new() -> Arc<Requests> {
        Arc::new(Requests {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        })
    }

    /// A request starts; it is in flight until the returned value is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long the connection has been without a request in flight at `now`: `None` while
    /// one is.
    pub fn idle_at(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        Some(now.saturating_duration_since(last))
    }

    /// Returns once no request has been in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let now = Instant::now();
            let wait = match self.idle_at(now) {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_counts_from_the_last_request_and_not_while_one_is_in_flight() {
        let requests = Requests::new();
        let start = Instant::now();
        assert!(requests.idle_at(start).is_some());
        let held = requests.start();
        let later = start + Duration::from_secs(100);
        assert_eq!(requests.idle_at(later), None);
        let second = requests.start();
        drop(held);
        assert_eq!(requests.idle_at(later), None, "one is still in flight");
        drop(second);
        let idle = requests
            .idle_at(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert!(idle >= Duration::from_secs(5) && idle < Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_out_requests_in_flight() {
        let requests = Requests::new();
        let held = requests.start();
        let waiting = tokio::spawn({
            let requests = requests.clone();
            async move { requests.idle_for(IDLE_LIMIT).await }
        });
        tokio::time::sleep(IDLE_LIMIT * 3).await;
        assert!(!waiting.is_finished(), "a request is in flight");
        drop(held);
        tokio::time::sleep(IDLE_LIMIT / 2).await;
        assert!(!waiting.is_finished());
        tokio::time::sleep(IDLE_LIMIT).await;
        waiting.await.unwrap();
    }
}
