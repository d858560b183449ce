//! HTTP/1.1 as a player's keep-alive connection speaks it, sans-IO: GET requests written into
//! a reused buffer, the response head read, and the body's framing (Content-Length, chunked,
//! or until the connection closes) followed byte by byte, so that the next response on the
//! connection starts where this one ends and no body is kept unless the caller keeps it.
//!
//! The Low-Latency viewers make thousands of small requests a second; this costs a few
//! hundred bytes of reused buffers per request where a general client builds a request
//! object, a header map and a URL each time.
//!
//! Spec: RFC 9112 §3 (request line), §4 (status line), §6.3 (message body length), §7.1
//! (chunked transfer coding), §9.3 (persistence); RFC 9110 §15.2 (1xx), §15.3.5 (204),
//! §15.4.5 (304).

use thiserror::Error;

/// Most bytes a response head may take: the server's heads are a few hundred bytes; the
/// bound keeps a broken peer from growing the read buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header fields read from one response: the server sends fewer than ten.
pub const MAX_HEADERS: usize = 32;

/// Most hexadecimal digits of a chunk size: 15 keep it within a `u64`.
const MAX_CHUNK_SIZE_DIGITS: u32 = 15;

/// Why a response could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Http1Error {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("unsupported Transfer-Encoding {0:?}")]
    TransferEncoding(String),
    #[error("informational response {0} to a GET")]
    Informational(u16),
    #[error("malformed chunked body at byte {0}")]
    Chunked(u64),
    #[error("the connection closed {0} bytes before the end of the body")]
    Truncated(u64),
    #[error("the connection closed inside a chunked body")]
    TruncatedChunked,
}

/// Writes `GET {target} HTTP/1.1` with the Host header into `out` (appended). `target` is the
/// origin-form path and query, as sent.
pub fn write_get(out: &mut Vec<u8>, host: &str, target: &str) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: rtmp-load\r\nAccept: */*\r\n\r\n");
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// After this many bytes (0 for a response that has no body).
    Length(u64),
    /// After the last chunk and its trailer section.
    Chunked,
    /// When the server closes the connection.
    UntilClose,
}

/// What a response head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub body: BodyFraming,
    /// The connection ends after this response (`Connection: close`, or HTTP/1.0).
    pub close: bool,
}

/// Reads a response head from the start of `input`: the head and its length in bytes, or
/// `None` when more bytes are needed.
pub fn parse_head(input: &[u8]) -> Result<Option<(Head, usize)>, Http1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() >= MAX_HEAD_BYTES => {
            return Err(Http1Error::HeadTooLong);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Http1Error::Head(e.to_string())),
    };
    if len > MAX_HEAD_BYTES {
        return Err(Http1Error::HeadTooLong);
    }
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) {
        return Err(Http1Error::Informational(status));
    }
    let mut close = response.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Http1Error::ContentLength)?;
            // Repeated fields must agree (RFC 9112 §6.3 item 5).
            if length.is_some_and(|l| l != n) {
                return Err(Http1Error::ContentLength);
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let text = String::from_utf8_lossy(value);
            let last = text.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(Http1Error::TransferEncoding(text.into_owned()));
            }
            chunked = true;
        } else if header.name.eq_ignore_ascii_case("connection") {
            let text = String::from_utf8_lossy(value);
            for option in text.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    close = true;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    // 204 and 304 have no body whatever the fields say; chunked overrides a length.
    let body = if status == 204 || status == 304 {
        BodyFraming::Length(0)
    } else if chunked {
        BodyFraming::Chunked
    } else if let Some(n) = length {
        BodyFraming::Length(n)
    } else {
        BodyFraming::UntilClose
    };
    Ok(Some((
        Head {
            status,
            body,
            close,
        },
        len,
    )))
}

/// Where a chunked body's reader stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line's digits.
    Size {
        value: u64,
        digits: u32,
    },
    /// In a chunk extension, up to the line's end.
    Extension {
        value: u64,
    },
    /// After the CR that ends a chunk-size line.
    SizeLf {
        value: u64,
    },
    /// In chunk data, this many bytes left.
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the empty line that ends the body).
    TrailerStart,
    /// In a trailer field line, up to its end.
    TrailerLine,
    /// After the CR of the final empty line.
    EndLf,
    Done,
}

/// Follows one response body through its framing: which bytes are body data and where it
/// ends. Bytes may arrive in pieces of any size.
#[derive(Clone, Debug)]
pub struct BodyReader {
    framing: BodyFraming,
    /// Length-framed: bytes still to come.
    remaining: u64,
    chunk: Chunk,
    /// Bytes of the framed body taken so far (framing included), for error offsets.
    offset: u64,
}

impl BodyReader {
    pub fn new(framing: BodyFraming) -> BodyReader {
        BodyReader {
            framing,
            remaining: match framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            },
            chunk: Chunk::Size {
                value: 0,
                digits: 0,
            },
            offset: 0,
        }
    }

    /// The body is complete; bytes after it belong to the next response.
    pub fn is_done(&self) -> bool {
        match self.framing {
            BodyFraming::Length(_) => self.remaining == 0,
            BodyFraming::Chunked => self.chunk == Chunk::Done,
            BodyFraming::UntilClose => false,
        }
    }

    /// Takes bytes from the front of `input`: how many were taken, and the body data among
    /// them (a slice of `input`, possibly empty). Call again with the rest until it is
    /// taken or the body is done.
    pub fn read<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), Http1Error> {
        match self.framing {
            BodyFraming::Length(_) => {
                let n = input
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                self.offset += n as u64;
                Ok((n, &input[..n]))
            }
            BodyFraming::UntilClose => {
                self.offset += input.len() as u64;
                Ok((input.len(), input))
            }
            BodyFraming::Chunked => self.read_chunked(input),
        }
    }

    fn read_chunked<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), Http1Error> {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data(left) = self.chunk {
                let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                self.chunk = if n as u64 == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - n as u64)
                };
                self.offset += n as u64;
                return Ok((i + n, &input[i..i + n]));
            }
            let byte = input[i];
            let bad = Http1Error::Chunked(self.offset);
            self.chunk = match self.chunk {
                Chunk::Size { value, digits } => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == MAX_CHUNK_SIZE_DIGITS {
                            return Err(bad);
                        }
                        let digit = (byte as char).to_digit(16).unwrap_or(0);
                        Chunk::Size {
                            value: value * 16 + u64::from(digit),
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(bad),
                    b';' | b' ' | b'\t' => Chunk::Extension { value },
                    b'\r' => Chunk::SizeLf { value },
                    b'\n' => after_size_line(value),
                    _ => return Err(bad),
                },
                Chunk::Extension { value } => match byte {
                    b'\r' => Chunk::SizeLf { value },
                    b'\n' => after_size_line(value),
                    _ => Chunk::Extension { value },
                },
                Chunk::SizeLf { value } if byte == b'\n' => after_size_line(value),
                Chunk::DataCr if byte == b'\r' => Chunk::DataLf,
                Chunk::DataCr | Chunk::DataLf if byte == b'\n' => Chunk::Size {
                    value: 0,
                    digits: 0,
                },
                Chunk::TrailerStart => match byte {
                    b'\r' => Chunk::EndLf,
                    b'\n' => Chunk::Done,
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLine if byte == b'\n' => Chunk::TrailerStart,
                Chunk::TrailerLine => Chunk::TrailerLine,
                Chunk::EndLf if byte == b'\n' => Chunk::Done,
                Chunk::Done => return Ok((i, &input[i..i])),
                _ => return Err(bad),
            };
            i += 1;
            self.offset += 1;
        }
        Ok((i, &input[i..i]))
    }

    /// The connection closed: fine for a body that ends there (or had ended).
    pub fn at_close(&self) -> Result<(), Http1Error> {
        match self.framing {
            BodyFraming::UntilClose => Ok(()),
            _ if self.is_done() => Ok(()),
            BodyFraming::Length(_) => Err(Http1Error::Truncated(self.remaining)),
            BodyFraming::Chunked => Err(Http1Error::TruncatedChunked),
        }
    }
}

/// The state after a chunk-size line: data, or the trailer section after the last chunk.
fn after_size_line(value: u64) -> Chunk {
    if value == 0 {
        Chunk::TrailerStart
    } else {
        Chunk::Data(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_get() {
        let mut out = b"left over".to_vec();
        out.clear();
        write_get(
            &mut out,
            "127.0.0.1:8000",
            "/live/k/llhls.m3u8?_HLS_msn=3&_HLS_part=1",
        );
        assert_eq!(
            out,
            b"GET /live/k/llhls.m3u8?_HLS_msn=3&_HLS_part=1 HTTP/1.1\r\n\
              Host: 127.0.0.1:8000\r\nUser-Agent: rtmp-load\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn reads_heads() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..text.len() - 5 {
            assert_eq!(parse_head(&text[..cut]), Ok(None), "cut at {cut}");
        }
        let (head, len) = parse_head(text).expect("valid").expect("complete");
        assert_eq!(len, text.len() - 5);
        assert_eq!(
            head,
            Head {
                status: 200,
                body: BodyFraming::Length(5),
                close: false
            }
        );
        let head = |t: &str| parse_head(t.as_bytes()).map(|h| h.map(|(h, _)| h));
        assert_eq!(
            head(
                "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            ),
            Ok(Some(Head {
                status: 503,
                body: BodyFraming::Chunked,
                close: true
            }))
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\n\r\n"),
            Ok(Some(Head {
                status: 200,
                body: BodyFraming::UntilClose,
                close: true
            }))
        );
        assert_eq!(
            head("HTTP/1.1 304 Not Modified\r\ncontent-length: 90\r\n\r\n"),
            Ok(Some(Head {
                status: 304,
                body: BodyFraming::Length(0),
                close: false
            }))
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n"),
            Err(Http1Error::ContentLength)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: -4\r\n\r\n"),
            Err(Http1Error::ContentLength)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Err(Http1Error::TransferEncoding("gzip".to_owned()))
        );
        assert_eq!(
            head("HTTP/1.1 100 Continue\r\n\r\n"),
            Err(Http1Error::Informational(100))
        );
        assert!(matches!(head("<html>\r\n\r\n"), Err(Http1Error::Head(_))));
        let long = format!("HTTP/1.1 200 OK\r\nx: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(&long), Err(Http1Error::HeadTooLong));
    }

    /// Feeds `input` split at `split` and returns the body data, the bytes taken, and
    /// whether the body ended.
    fn feed(
        framing: BodyFraming,
        input: &[u8],
        split: usize,
    ) -> Result<(Vec<u8>, usize, bool), Http1Error> {
        let mut reader = BodyReader::new(framing);
        let mut body = Vec::new();
        let mut taken = 0;
        for piece in [&input[..split], &input[split..]] {
            let mut rest = piece;
            while !rest.is_empty() && !reader.is_done() {
                let (n, data) = reader.read(rest)?;
                body.extend_from_slice(data);
                taken += n;
                rest = &rest[n..];
            }
            if reader.is_done() {
                break;
            }
        }
        Ok((body, taken, reader.is_done()))
    }

    #[test]
    fn length_framed_bodies_end_at_their_length() {
        let input = b"helloHTTP/1.1";
        for split in 0..=input.len() {
            let (body, taken, done) = feed(BodyFraming::Length(5), input, split).expect("ok");
            assert_eq!(
                (&body[..], taken, done),
                (&b"hello"[..], 5, true),
                "split {split}"
            );
        }
        let reader = BodyReader::new(BodyFraming::Length(0));
        assert!(reader.is_done());
        let mut reader = BodyReader::new(BodyFraming::Length(4));
        reader.read(b"ab").expect("ok");
        assert_eq!(reader.at_close(), Err(Http1Error::Truncated(2)));
        let mut reader = BodyReader::new(BodyFraming::UntilClose);
        assert_eq!(reader.read(b"abc").expect("ok"), (3, &b"abc"[..]));
        assert!(!reader.is_done());
        assert_eq!(reader.at_close(), Ok(()));
    }

    #[test]
    fn chunked_bodies_split_anywhere() {
        let input = b"5;name=value\r\nhello\r\nB\r\n 0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let end = input.len() - 4;
        for split in 0..=input.len() {
            let (body, taken, done) = feed(BodyFraming::Chunked, input, split).expect("ok");
            assert_eq!(
                (String::from_utf8_lossy(&body).as_ref(), taken, done),
                ("hello 0123456789", end, true),
                "split {split}"
            );
        }
        // Bare LF line ends are tolerated.
        let (body, _, done) = feed(BodyFraming::Chunked, b"2\nab\n0\n\n", 3).expect("ok");
        assert_eq!((&body[..], done), (&b"ab"[..], true));
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"2\r\nabc\r\n",
            b"2\r\nab\rX",
            b"1000000000000000\r\n",
            b"0\r\n\rX",
        ] {
            assert!(
                matches!(
                    feed(BodyFraming::Chunked, bad, 0),
                    Err(Http1Error::Chunked(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut reader = BodyReader::new(BodyFraming::Chunked);
        reader.read(b"5\r\nhel").expect("ok");
        assert_eq!(reader.at_close(), Err(Http1Error::TruncatedChunked));
    }
}
