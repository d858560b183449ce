//! Why a relay attempt failed or a relay connection ended: the text the API shows as a
//! target's `last_error` and the log gives with `retrying`.

use std::time::Duration;

use crate::flv::mux::Unplayable;
use crate::playback::queue::Behind;
use crate::rtmp::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("no accepted publish within {0:?} (connection, handshake, connect, publish)")]
    Timeout(Duration),
    #[error("the target refused: {code}: {description}")]
    Refused { code: String, description: String },
    #[error("RTMP: {0}")]
    Protocol(#[from] ClientError),
    #[error(
        "the target cannot take {}: it announced no Enhanced RTMP support for it in its \
         connect answer",
        .0.codec
    )]
    Unplayable(#[from] Unplayable),
    #[error("{}", behind(.0))]
    Behind(#[from] Behind),
    #[error("the target did not read for {0:?}")]
    Stalled(Duration),
    #[error("the target closed the connection")]
    Closed,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// [`Behind`] in a target's terms.
fn behind(b: &Behind) -> String {
    match b {
        Behind::KeepsFallingBehind { skips, window } => format!(
            "the target fell behind {skips} times within {window:?}: it takes the stream \
             slower than it comes"
        ),
        Behind::Full { bytes } => {
            format!("the queue for the target is full ({bytes} bytes) with audio and headers alone")
        }
    }
}
