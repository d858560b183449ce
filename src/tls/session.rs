//! The server's side of one TLS connection as bytes in and bytes out, for a connection that
//! does its own reads (RTMPS reads through `rtmp::transport`, on the merged-read grid, with
//! the kernel's receive times): ciphertext in, plaintext out, and back.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::{ServerConfig, ServerConnection};

/// Why a TLS connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}", describe(.0))]
    Protocol(#[from] rustls::Error),
    /// rustls' own buffers refused bytes: the peer sent records faster than they can be
    /// opened, which a well-behaved peer cannot do with what [`TlsSession::open`] drains.
    #[error("{0}")]
    Buffer(#[from] std::io::Error),
}

/// What went wrong, said for an operator: a client that does not speak TLS at all (plain
/// RTMP or HTTP sent to a TLS port) is named as such rather than as a corrupt record.
pub fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            "the client does not speak TLS (plain RTMP or HTTP sent to a TLS port?)".into()
        }
        e => e.to_string(),
    }
}

/// One TLS connection's state, driven by bytes.
pub struct TlsSession {
    conn: ServerConnection,
}

/// What [`TlsSession::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Plaintext bytes appended.
    pub bytes: usize,
    /// The peer sent close_notify: nothing follows.
    pub closed: bool,
}

impl TlsSession {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        Ok(TlsSession {
            conn: ServerConnection::new(config)?,
        })
    }

    /// Takes every byte of `cipher` (records, or parts of records, which are kept until they
    /// are whole) and appends the plaintext they carry to `plain`. After an error the
    /// session has an alert to send ([`TlsSession::sealed`]) and must not be fed more.
    pub fn open(
        &mut self,
        cipher: &mut BytesMut,
        plain: &mut BytesMut,
    ) -> Result<Opened, TlsError> {
        let mut opened = Opened::default();
        // Records carry no more plaintext than their own length: one allocation at most per
        // read, as for plain RTMP, rather than one per record.
        plain.reserve(cipher.len());
        while cipher.has_remaining() {
            let mut rest: &[u8] = cipher;
            let n = self.conn.read_tls(&mut rest)?;
            cipher.advance(n);
            let state = self.conn.process_new_packets()?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                self.conn.reader().read_exact(&mut plain[start..])?;
                opened.bytes += ready;
            }
            if state.peer_has_closed() {
                opened.closed = true;
                cipher.clear();
            }
            if n == 0 {
                break;
            }
        }
        Ok(opened)
    }

    /// Seals `plain` into records and appends them, with whatever else TLS has to send, to
    /// `out`.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut rest = plain;
        // rustls takes as much as its send buffer has room for; what it sealed is moved
        // out before the rest goes in.
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            self.sealed(out);
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            rest = &rest[n..];
        }
        self.sealed(out);
        Ok(())
    }

    /// Appends what TLS has to send of its own (the handshake, session tickets, alerts) and
    /// any sealed records not yet taken, to `out`.
    pub fn sealed(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Appends close_notify, which ends this side's sending (RFC 8446 §6.1), and what else
    /// TLS had still to send, to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.conn.send_close_notify();
        self.sealed(out);
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::{CertPaths, CertStore};
    use rustls::pki_types::ServerName;

    fn server_config() -> (Arc<ServerConfig>, rustls::RootCertStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let paths = CertPaths {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::write(&paths.cert, made.cert.pem()).unwrap();
        std::fs::write(&paths.key, made.signing_key.serialize_pem()).unwrap();
        let provider = crate::tls::config::provider();
        let store = Arc::new(CertStore::open(paths, provider.clone()).unwrap());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        (crate::tls::config::server(store, provider, &[]), roots, dir)
    }

    fn client(
        roots: rustls::RootCertStore,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> rustls::ClientConnection {
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::config::provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap()
    }

    /// Moves what `from` has to send to the server, in pieces of `split` bytes at most, and
    /// returns the plaintext the server opened.
    fn to_server(
        from: &mut rustls::ClientConnection,
        server: &mut TlsSession,
        split: usize,
    ) -> Vec<u8> {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut plain = BytesMut::new();
        for piece in wire.chunks(split.max(1)) {
            let mut cipher = BytesMut::from(piece);
            server.open(&mut cipher, &mut plain).unwrap();
            assert!(cipher.is_empty());
        }
        plain.to_vec()
    }

    fn to_client(server: &mut TlsSession, client: &mut rustls::ClientConnection) -> Vec<u8> {
        let mut wire = Vec::new();
        server.sealed(&mut wire);
        let mut rest = &wire[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut plain = Vec::new();
        let _ = client.reader().read_to_end(&mut plain);
        plain
    }

    fn handshake(split: usize, version: &'static rustls::SupportedProtocolVersion) {
        let (config, roots, _dir) = server_config();
        let mut server = TlsSession::new(config).unwrap();
        let mut client = client(roots, version);
        client.writer().write_all(b"\x03 RTMP C0+C1").unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(to_server(&mut client, &mut server, split));
            to_client(&mut server, &mut client);
        }
        assert!(!server.is_handshaking() && !client.is_handshaking());
        assert_eq!(got, b"\x03 RTMP C0+C1");
        // More than rustls' send buffer holds at once.
        let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        server.seal(&sent, &mut wire).unwrap();
        let mut rest = &wire[..];
        let mut received = Vec::new();
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut received);
        }
        assert!(received == sent);
        client.send_close_notify();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        let opened = server
            .open(&mut BytesMut::from(&wire[..]), &mut BytesMut::new())
            .unwrap();
        assert!(opened.closed);
        // The server's close_notify in turn: the client reads a clean end.
        let mut wire = Vec::new();
        server.close(&mut wire);
        let mut rest = &wire[..];
        client.read_tls(&mut rest).unwrap();
        assert!(client.process_new_packets().unwrap().peer_has_closed());
    }

    #[test]
    fn handshakes_and_carries_data_both_ways_whatever_the_pieces() {
        for split in [1, 2, 5, 100, 1 << 20] {
            handshake(split, &rustls::version::TLS13);
            handshake(split, &rustls::version::TLS12);
        }
    }

    #[test]
    fn plain_rtmp_and_random_bytes_are_refused_with_an_alert() {
        let (config, _, _dir) = server_config();
        for input in [
            &b"\x03\x00\x00\x00\x00\x00\x00\x00\x00"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0, 0],
        ] {
            let mut server = TlsSession::new(config.clone()).unwrap();
            let r = server.open(&mut BytesMut::from(input), &mut BytesMut::new());
            let e = r.expect_err("refused").to_string();
            if input[0] != 0x16 {
                assert!(e.contains("does not speak TLS"), "{e}");
            }
            let mut alert = Vec::new();
            server.sealed(&mut alert);
            assert_eq!(alert.first(), Some(&0x15), "an alert record for {input:?}");
        }
    }
}
