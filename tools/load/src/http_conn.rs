//! One keep-alive HTTP/1.1 connection of a Low-Latency viewer: GET requests one after the
//! other on the same socket (opened again when the server closes it), each response's body
//! handed to the caller piece by piece as it arrives. The framing is [`crate::http1`]'s; this
//! module only moves bytes.

use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http1::{self, BodyReader, Http1Error};

/// Bytes read from the socket at once. A part of a few hundred kbit/s stream at 0.2 s is a
/// few tens of KiB, so most arrive in one or two reads; a thousand viewers hold 32 MiB.
pub const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] Http1Error),
    #[error("the server closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// What came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Body bytes handed to the caller.
    pub body_bytes: u64,
    /// When the request's first byte was written.
    pub sent: Instant,
    /// When the last byte of the body arrived.
    pub done: Instant,
}

/// A connection to one server, reused for every request.
pub struct HttpConn {
    /// `host:port` to connect to and to send as Host.
    authority: String,
    stream: Option<TcpStream>,
    /// Responses answered on the current socket: a failure before the first byte of an
    /// answer on a reused socket is the server having closed it while idle.
    answered_on_socket: u64,
    request: Vec<u8>,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Sockets opened after the first.
    pub reconnects: u64,
}

impl HttpConn {
    /// A connection to `authority` (`host:port`, an IPv6 host in brackets), opened on the
    /// first request.
    pub fn new(authority: String) -> HttpConn {
        HttpConn {
            authority,
            stream: None,
            answered_on_socket: 0,
            request: Vec::with_capacity(256),
            buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            reconnects: 0,
        }
    }

    /// `GET target` into `body` (cleared first), keeping at most `limit` bytes of it;
    /// the answer, and whether the body was longer than that (then `body` holds none of the
    /// pieces that would have passed the limit).
    pub async fn get_bounded(
        &mut self,
        target: &str,
        timeout: Duration,
        limit: usize,
        body: &mut Vec<u8>,
    ) -> (Result<Answer, FetchError>, bool) {
        body.clear();
        let mut too_long = false;
        let answer = self
            .get(target, timeout, &mut |data: &[u8]| {
                if body.len() + data.len() > limit {
                    too_long = true;
                } else {
                    body.extend_from_slice(data);
                }
            })
            .await;
        (answer, too_long)
    }

    /// `GET target` (origin form: path and query), within `timeout`; the body goes to
    /// `body` piece by piece. A socket the server closed while idle is opened again and the
    /// request repeated once (GET is idempotent, RFC 9110 §9.2.2).
    pub async fn get(
        &mut self,
        target: &str,
        timeout: Duration,
        body: &mut impl FnMut(&[u8]),
    ) -> Result<Answer, FetchError> {
        let attempt = tokio::time::timeout(timeout, async {
            let reused = self.stream.is_some() && self.answered_on_socket > 0;
            match self.exchange(target, body).await {
                Err(FetchError::ClosedBeforeAnswer) if reused => self.exchange(target, body).await,
                other => other,
            }
        })
        .await;
        match attempt {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.drop_socket();
                Err(e)
            }
            Err(_) => {
                self.drop_socket();
                Err(FetchError::TimedOut(timeout))
            }
        }
    }

    fn drop_socket(&mut self) {
        self.stream = None;
        self.start = 0;
        self.end = 0;
    }

    async fn exchange(
        &mut self,
        target: &str,
        body: &mut impl FnMut(&[u8]),
    ) -> Result<Answer, FetchError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.authority.as_str())
                .await
                .map_err(FetchError::Connect)?;
            stream.set_nodelay(true).map_err(FetchError::Connect)?;
            if self.answered_on_socket > 0 || self.reconnects > 0 {
                self.reconnects += 1;
            }
            self.stream = Some(stream);
            self.answered_on_socket = 0;
            self.start = 0;
            self.end = 0;
        }
        self.request.clear();
        http1::write_get(&mut self.request, &self.authority, target);
        let sent = Instant::now();
        let Some(stream) = self.stream.as_mut() else {
            return Err(FetchError::ClosedBeforeAnswer);
        };
        if let Err(e) = stream.write_all(&self.request).await {
            self.drop_socket();
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    FetchError::ClosedBeforeAnswer
                }
                _ => FetchError::Io(e),
            });
        }
        let head = loop {
            if let Some((head, len)) = http1::parse_head(&self.buf[self.start..self.end])? {
                self.start += len;
                break head;
            }
            match self.fill().await {
                Ok(0) | Err(_) if self.start == self.end => {
                    self.drop_socket();
                    return Err(FetchError::ClosedBeforeAnswer);
                }
                Ok(0) => return Err(Http1Error::Head("closed inside the head".to_owned()).into()),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        };
        let mut reader = BodyReader::new(head.body);
        let mut body_bytes = 0u64;
        let mut closed = false;
        loop {
            while self.start < self.end && !reader.is_done() {
                let (n, data) = reader.read(&self.buf[self.start..self.end])?;
                body_bytes += data.len() as u64;
                body(data);
                self.start += n;
            }
            if reader.is_done() {
                break;
            }
            if self.fill().await? == 0 {
                reader.at_close()?;
                closed = true;
                break;
            }
        }
        let done = Instant::now();
        self.answered_on_socket += 1;
        if closed || head.close {
            self.drop_socket();
        }
        Ok(Answer {
            status: head.status,
            body_bytes,
            sent,
            done,
        })
    }

    /// Reads what the socket has into the buffer's free end (compacting it first when
    /// full); the bytes read, 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                // A head larger than the buffer: parse_head refuses it before this.
                return Err(std::io::Error::other("read buffer full"));
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
