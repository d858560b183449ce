//! Accepting TCP connections under a cap, shared by the RTMP and HTTP listeners (plain and
//! TLS: a TLS connection holds its place from accept, through its handshake).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// First wait after a failed accept (out of file descriptors and the like); doubled on each
/// failure in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A listener that admits a connection only while one of its places is free (places can be
/// shared by listeners, e.g. plain and TLS of one side). A connection over the cap is
/// closed as soon as it is accepted: a storm of connects costs an accept and a close each.
pub struct Admission {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// `RTMP`, `RTMPS`, `HTTP` or `HTTPS`, for the log.
    protocol: &'static str,
    option: &'static str,
    metrics: ConnectionMetrics,
    at_cap: bool,
}

/// What a listener counts.
pub struct ConnectionMetrics {
    /// Connections admitted, ever.
    pub total: Counter,
    /// Connections admitted and not yet ended.
    pub open: Gauge,
    /// Connections closed because the cap was reached.
    pub refused: Counter,
}

/// An admitted connection. Dropping its place (when the connection ends, however it ends)
/// frees the place and counts the connection as ended.
pub struct Admitted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    pub place: Place,
}

/// A connection's place under the cap.
pub struct Place {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Admission {
    /// Admits connections while `places` has a permit; `option` names the config option
    /// that sets their number, for the log.
    pub fn new(
        listener: TcpListener,
        places: Arc<Semaphore>,
        protocol: &'static str,
        option: &'static str,
        metrics: ConnectionMetrics,
    ) -> Admission {
        Admission {
            listener,
            permits: places,
            protocol,
            option,
            metrics,
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
                    self.metrics.total.inc();
                    self.metrics.open.inc();
                    let place = Place {
                        _permit: permit,
                        open: self.metrics.open.clone(),
                    };
                    return Some(Admitted {
                        socket,
                        peer,
                        place,
                    });
                }
                Err(_) => {
                    self.metrics.refused.inc();
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
