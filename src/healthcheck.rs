//! `rtmp-server healthcheck`: asks the local server's `/healthz`, for container health
//! checks in an image that has no curl. It asks over plain HTTP on `http.port`, or, when
//! plain HTTP is off, over HTTPS on `http.tls_port`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::Config;

/// How long the probe waits for each step; container runtimes time the whole check too.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Ok when `GET /healthz` on 127.0.0.1 answers 200, on the listener `config` has on.
pub fn probe(config: &Config) -> Result<(), String> {
    match (config.http.plain, config.http.tls_port.0) {
        (true, _) => probe_plain(config.http.port),
        (false, Some(port)) => probe_tls(port),
        (false, None) => Err("no HTTP listener is on (http.plain off, no http.tls_port)".into()),
    }
}

/// Ok when `GET /healthz` over plain HTTP on 127.0.0.1:`port` answers 200.
pub fn probe_plain(port: u16) -> Result<(), String> {
    let mut s = connect(port)?;
    s.write_all(REQUEST).map_err(|e| e.to_string())?;
    status_is_ok(&mut s)
}

/// Ok when `GET /healthz` over HTTPS on 127.0.0.1:`port` answers 200. The certificate is
/// not checked: the probe asks whether this host's server answers, and its certificate
/// names the public host, not 127.0.0.1.
pub fn probe_tls(port: u16) -> Result<(), String> {
    let provider = crate::tls::config::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("a valid name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, connect(port)?);
    s.write_all(REQUEST).map_err(|e| e.to_string())?;
    status_is_ok(&mut s)
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn status_is_ok(s: &mut impl Read) -> Result<(), String> {
    let mut head = [0u8; 32];
    let n = s.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "/healthz answered {:?}",
            line.lines().next().unwrap_or("")
        ))
    }
}

/// Takes any certificate, and checks the handshake's signatures with it as usual.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
