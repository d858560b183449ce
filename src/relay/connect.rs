//! The connection to a relay target: TCP, and for `rtmps://` TLS on top (rustls with the
//! ring provider and the compiled-in web PKI roots, as the stream-service client uses; the
//! target's host named in SNI and checked against its certificate).

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::error::RelayError;
use super::target::Target;

/// A byte stream to a target, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `target`; `tls` gives the TLS client configuration for `rtmps://`.
pub async fn open(
    target: &Target,
    tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, String>,
) -> Result<Box<dyn Io>, RelayError> {
    let address = match target.host.contains(':') {
        true => format!("[{}]:{}", target.host, target.port),
        false => format!("{}:{}", target.host, target.port),
    };
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| RelayError::Connect {
            address,
            reason: e.to_string(),
        })?;
    // Media goes out in whole messages; nothing is gained by holding a tail back.
    let _ = tcp.set_nodelay(true);
    if !target.tls {
        return Ok(Box::new(tcp));
    }
    let tls_error = |reason: String| RelayError::Tls {
        host: target.host.clone(),
        reason,
    };
    let config = tls().map_err(tls_error)?;
    let name = ServerName::try_from(target.host.clone()).map_err(|e| tls_error(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))?;
    Ok(Box::new(stream))
}
