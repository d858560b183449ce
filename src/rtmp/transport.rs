//! What an RTMP connection reads from and writes to: a TCP socket, plain (RTMP) or through
//! TLS (RTMPS). Either way the connection reads with [`merged_read`] on the socket itself,
//! so RTMPS keeps merged reads and the kernel's receive times; TLS opens what was read
//! ([`TlsSession`]) into the same buffer plain RTMP reads into.

use std::io;
use std::sync::Arc;

use std::io::IoSlice;

use bytes::BytesMut;

use super::egress::Egress;

/// Pieces written at once: the kernel takes up to 1024 (IOV_MAX); a few dozen cover a turn
/// of a stream's frames.
const MAX_SLICES: usize = 64;

/// Plaintext sealed at once for a TLS player.
const TLS_BATCH: usize = 64 * 1024;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::merged_read::{self, Drained};
use crate::tls::session::{TlsError, TlsSession};

/// Why reading or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// One connection's socket, and its TLS session for RTMPS.
pub struct Transport {
    socket: TcpStream,
    tls: Option<Box<Tls>>,
}

struct Tls {
    session: TlsSession,
    /// Ciphertext read and not yet opened (emptied by each open).
    cipher: BytesMut,
    /// Records to send.
    sealed: Vec<u8>,
    /// A played stream's next bytes, joined to be sealed (kept between writes).
    plain: BytesMut,
}

impl Transport {
    pub fn plain(socket: TcpStream) -> Transport {
        Transport { socket, tls: None }
    }

    /// A connection whose client starts with a TLS handshake, answered with `config`.
    pub fn tls(
        socket: TcpStream,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<Transport, TlsError> {
        Ok(Transport {
            socket,
            tls: Some(Box::new(Tls {
                session: TlsSession::new(config)?,
                cipher: BytesMut::new(),
                sealed: Vec::new(),
                plain: BytesMut::new(),
            })),
        })
    }

    /// The socket, for its options.
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Waits until the socket is readable, then appends what it carries to `input` (see
    /// [`merged_read::read_ready`]). `bytes` counts what came off the network; through TLS,
    /// what it carried may be less (a record not yet whole), or nothing.
    pub async fn read_ready(
        &mut self,
        input: &mut BytesMut,
        max: usize,
    ) -> Result<Drained, TransportError> {
        match &mut self.tls {
            None => Ok(merged_read::read_ready(&self.socket, input, max).await?),
            Some(tls) => {
                let drained = merged_read::read_ready(&self.socket, &mut tls.cipher, max).await?;
                tls.open(drained, input)
            }
        }
    }

    /// After the socket was seen readable: appends what it holds to `input`, at most `max`
    /// bytes off the network, or `None` when it held nothing after all (see
    /// [`merged_read::read_now`]).
    pub fn read_now(
        &mut self,
        input: &mut BytesMut,
        max: usize,
    ) -> Result<Option<Drained>, TransportError> {
        match &mut self.tls {
            None => Ok(merged_read::read_now(&self.socket, input, max)?),
            Some(tls) => match merged_read::read_now(&self.socket, &mut tls.cipher, max)? {
                Some(drained) => tls.open(drained, input).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Appends what the socket holds now to `input`, without waiting (see
    /// [`merged_read::drain`]).
    pub fn drain(&mut self, input: &mut BytesMut) -> Result<Drained, TransportError> {
        match &mut self.tls {
            None => Ok(merged_read::drain(&self.socket, input)?),
            Some(tls) => {
                let drained = merged_read::drain(&self.socket, &mut tls.cipher)?;
                tls.open(drained, input)
            }
        }
    }

    /// Writes `bytes`, and whatever TLS has to send of its own (its handshake, tickets).
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        match &mut self.tls {
            None => Ok(self.socket.write_all(bytes).await?),
            Some(tls) => {
                tls.session.seal(bytes, &mut tls.sealed)?;
                if !tls.sealed.is_empty() {
                    self.socket.write_all(&tls.sealed).await?;
                    tls.sealed.clear();
                }
                Ok(())
            }
        }
    }

    /// Writes what the socket takes now of `egress` without waiting, from where its pieces
    /// lie (vectored); through TLS, up to 64 KiB of it is sealed and the records go out as the
    /// socket takes them. Returns the bytes of `egress` that left.
    pub fn try_write_egress(&mut self, egress: &mut Egress) -> Result<usize, TransportError> {
        let would_block = |e: &io::Error| e.kind() == io::ErrorKind::WouldBlock;
        match &mut self.tls {
            None => {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = egress.io_slices(&mut slices);
                match self.socket.try_write_vectored(&slices[..n]) {
                    Ok(written) => {
                        egress.advance(written);
                        Ok(written)
                    }
                    Err(e) if would_block(&e) => Ok(0),
                    Err(e) => Err(e.into()),
                }
            }
            Some(tls) => {
                // Sealed from one joined batch: a record per piece would cost a record
                // header per few-byte chunk header.
                let mut taken = 0;
                if tls.sealed.len() < TLS_BATCH {
                    tls.plain.clear();
                    egress.take_into(&mut tls.plain, TLS_BATCH);
                    taken = tls.plain.len();
                    if taken > 0 {
                        tls.session.seal(&tls.plain, &mut tls.sealed)?;
                    }
                }
                match self.socket.try_write(&tls.sealed) {
                    Ok(n) => {
                        tls.sealed.drain(..n);
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(taken)
            }
        }
    }

    /// Bytes TLS holds sealed that the socket has not taken yet.
    pub fn pending_len(&self) -> usize {
        self.tls.as_ref().map_or(0, |tls| tls.sealed.len())
    }

    /// Sends, as the connection ends, what TLS still has to send, if the socket takes it at
    /// once: the alert that says why it failed, or, past the handshake, close_notify (RFC
    /// 8446 §6.1: without it the client cannot tell the end from a truncation).
    pub fn send_pending_now(&mut self) {
        if let Some(tls) = &mut self.tls {
            if tls.sealed.is_empty() && !tls.session.is_handshaking() {
                tls.session.close(&mut tls.sealed);
            }
            if !tls.sealed.is_empty() {
                let _ = self.socket.try_write(&tls.sealed);
                tls.sealed.clear();
            }
        }
    }

    /// Whether this is a TLS connection whose handshake has not completed.
    pub fn tls_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.session.is_handshaking())
    }

    /// Whether TLS has bytes of its own to send (the handshake's answer).
    pub fn has_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| !tls.sealed.is_empty())
    }
}

impl Tls {
    fn open(&mut self, drained: Drained, input: &mut BytesMut) -> Result<Drained, TransportError> {
        let opened = self.session.open(&mut self.cipher, input);
        // What TLS answers (the handshake, or the alert that says why it ends) goes out with
        // the next write.
        self.session.sealed(&mut self.sealed);
        let opened = opened?;
        Ok(Drained {
            closed: drained.closed || opened.closed,
            ..drained
        })
    }
}
