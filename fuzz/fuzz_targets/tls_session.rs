//! `tls::session::TlsSession::open` on arbitrary client bytes, in arbitrary pieces: what an
//! RTMPS connection reads before and during its TLS handshake.
//!
//! Input: a flags byte (bit 0: start with a ClientHello a rustls client made, so the server's
//! side of the handshake is exercised past the first record), a count of cut points and the
//! cut points (u16 each), then the client bytes.
//!
//! Properties: no panic; every piece is taken whole; a handshake never yields plaintext
//! before it completes; after an error it is not fed again (what it then has to send, if
//! anything, is rustls' alert: none for some malformed handshakes, e.g. a handshake message
//! longer than it allows, and encrypted, so not told apart, once handshake keys are in use).
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_server::tls::certs::{CertPaths, CertStore};
use rtmp_server::tls::session::TlsSession;
use rtmp_server_fuzz::input::{Input, pieces};

/// Most cut points read from one input.
const MAX_CUTS: u8 = 16;

/// The server configuration with the test certificate, and a ClientHello for it.
fn setup() -> &'static (Arc<rustls::ServerConfig>, Vec<u8>) {
    static SETUP: OnceLock<(Arc<rustls::ServerConfig>, Vec<u8>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls");
        let paths = CertPaths {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let provider = rtmp_server::tls::config::provider();
        let store = Arc::new(CertStore::open(paths, provider.clone()).expect("test pair"));
        let server = rtmp_server::tls::config::server(store, provider.clone(), &[]);
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).expect("hello");
        }
        (server, hello)
    })
}

fuzz_target!(|data: &[u8]| {
    let (config, hello) = setup();
    let mut input = Input::new(data);
    let flags = input.byte();
    let cuts: Vec<usize> = (0..input.byte() % MAX_CUTS)
        .map(|_| usize::from(input.u16()))
        .collect();
    let mut client = Vec::new();
    if flags & 1 == 1 {
        client.extend_from_slice(hello);
    }
    client.extend_from_slice(input.rest());

    let mut session = TlsSession::new(config.clone()).expect("a session");
    let mut plain = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces(&client, &cuts) {
        let mut cipher = BytesMut::from(piece);
        let opened = session.open(&mut cipher, &mut plain);
        session.sealed(&mut out);
        match opened {
            Ok(opened) => {
                assert!(cipher.is_empty() || opened.closed, "bytes left unread");
                if session.is_handshaking() {
                    assert!(plain.is_empty(), "plaintext before the handshake completed");
                }
            }
            Err(_) => break,
        }
    }
});
