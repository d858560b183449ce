//! Accepting TCP connections under a cap, shared by the RTMP and HTTP listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// First wait after a failed accept (out of file descriptors and the like); doubled on each
/// failure in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A listener that admits at most `cap` connections at once. A connection over the cap is
/// closed as soon as it is accepted: a storm of connects costs an accept and a close each.
pub struct Admission {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// `RTMP` or `HTTP`, for the log.
    protocol: &'static str,
    option: &'static str,
    /// Counts the connections closed because the cap was reached.
    refused: Counter,
    at_cap: bool,
}

/// An admitted connection; dropping the permit frees its place.
pub struct Admitted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

impl Admission {
    /// `option` names the config option that sets `cap`, for the log.
    pub fn new(
        listener: TcpListener,
        cap: usize,
        protocol: &'static str,
        option: &'static str,
        refused: Counter,
    ) -> Admission {
        Admission {
            listener,
            permits: Arc::new(Semaphore::new(cap)),
            protocol,
            option,
            refused,
            at_cap: false,
        }
    }

    /// The next admitted connection, or `None` once `shutdown` is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<Admitted> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.cancelled() => return None,
            };
            let (socket, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(
                        "{} accept failed: {e}; retrying in {backoff:?}",
                        self.protocol
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.at_cap = false;
                    let _ = socket.set_nodelay(true);
                    return Some(Admitted {
                        socket,
                        peer,
                        permit,
                    });
                }
                Err(_) => {
                    self.refused.inc();
                    if !self.at_cap {
                        // Once per stretch at the cap, not once per connection.
                        self.at_cap = true;
                        warn!(%peer, "{} connections refused: {} reached", self.protocol, self.option);
                    }
                }
            }
        }
    }
}
