//! The TLS server configurations of the two listeners: TLS 1.3 and 1.2 only, on the ring
//! provider, presenting the [`CertStore`]'s certificate.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use super::certs::CertStore;

/// ALPN protocol ids the HTTPS listener offers, preferred first (RFC 7301; RFC 9113 §3.2).
pub const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto the server uses: ring, the one C-free provider rustls ships.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `certs`, offering `alpn` (none for RTMPS: encoders do
/// not ask for a protocol).
pub fn server(
    certs: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
