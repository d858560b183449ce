//! The Delivery Directives of a Low-Latency playlist request, read from its query string:
//! `_HLS_msn`, `_HLS_part` and `_HLS_skip`.
//!
//! The query is `application/x-www-form-urlencoded` (as players build it): `&`-separated
//! `name=value` pairs, `%XX` escapes and `+` for a space, in names and values alike. Other
//! parameters (cache busters, tokens) are ignored unread, except that a name must decode, so
//! that no directive hides behind a broken escape. Every error says why, for a 400 body.
//!
//! Spec: RFC 8216bis §6.2.5 (Delivery Directives), §6.2.5.1 (`_HLS_skip`), §6.2.5.2
//! (`_HLS_msn`, `_HLS_part`), §4.2 (decimal-integer); WHATWG URL §5.1
//! (application/x-www-form-urlencoded parsing).

use std::fmt;

use super::blocking;
use super::ll_stream::MAX_PARTS_PER_SEGMENT;

/// Largest `_HLS_msn` accepted: 2^53 - 1, the largest integer a JavaScript player holds
/// exactly. A stream making a segment every 100 ms reaches it after 28 million years, so
/// anything larger asks for a segment no stream here will have.
pub const MAX_MSN: u64 = (1 << 53) - 1;

/// Largest `_HLS_part` accepted: the last Part Index a segment can have. A larger index can
/// never exist (and would be past the Advance Part Limit of any open segment).
pub const MAX_PART: u64 = MAX_PARTS_PER_SEGMENT as u64 - 1;

/// `_HLS_msn`: block until the playlist has this Media Sequence Number (§6.2.5.2).
pub const MSN: &str = "_HLS_msn";
/// `_HLS_part`: block until the playlist has this Part Index of `_HLS_msn` (§6.2.5.2).
pub const PART: &str = "_HLS_part";
/// `_HLS_skip`: answer with a Playlist Delta Update (§6.2.5.1).
pub const SKIP: &str = "_HLS_skip";

/// The `_HLS_skip` value.
///
/// Spec: RFC 8216bis §6.2.5.1: `YES` skips Media Segments; `v2` also skips EXT-X-DATERANGE
/// tags and is only valid when the playlist says CAN-SKIP-DATERANGES=YES. This server writes
/// no EXT-X-DATERANGE (and does not say CAN-SKIP-DATERANGES), so both ask for the same
/// Playlist Delta Update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Yes,
    V2,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::Yes => "YES",
            Skip::V2 => "v2",
        }
    }
}

/// The Delivery Directives of one playlist request. No directive: a plain reload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryDirectives {
    /// `_HLS_msn`, at most [`MAX_MSN`].
    pub msn: Option<u64>,
    /// `_HLS_part`, at most [`MAX_PART`]; only with `msn`.
    pub part: Option<u64>,
    /// `_HLS_skip`.
    pub skip: Option<Skip>,
}

impl DeliveryDirectives {
    /// The Blocking Playlist Reload asked for, if any.
    pub fn blocking(&self) -> Option<blocking::Request> {
        self.msn.map(|msn| blocking::Request {
            msn,
            part: self.part,
        })
    }

    /// Whether a Playlist Delta Update is asked for.
    pub fn delta(&self) -> bool {
        self.skip.is_some()
    }
}

impl fmt::Display for DeliveryDirectives {
    /// The directives as a query string (no `?`), in the order msn, part, skip; the inverse
    /// of [`parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(msn) = self.msn {
            write!(f, "{MSN}={msn}")?;
            sep = "&";
        }
        if let Some(part) = self.part {
            write!(f, "{sep}{PART}={part}")?;
            sep = "&";
        }
        if let Some(skip) = self.skip {
            write!(f, "{sep}{SKIP}={}", skip.as_str())?;
        }
        Ok(())
    }
}

/// Why a query is refused (400 Bad Request, with this text as the body).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("malformed percent-encoding at byte {offset} of the query")]
    MalformedEncoding { offset: usize },
    #[error("{param} is given more than once")]
    Repeated { param: &'static str },
    #[error("{param} has no value")]
    MissingValue { param: &'static str },
    #[error("{param} is negative")]
    Negative { param: &'static str },
    #[error("{param} is not a decimal integer")]
    NotANumber { param: &'static str },
    #[error("{param} is larger than {max}, more than a stream can reach")]
    TooLarge { param: &'static str, max: u64 },
    #[error("{PART} needs {MSN}")]
    PartWithoutMsn,
    #[error("{SKIP} must be YES or v2")]
    BadSkip,
}

/// Reads the Delivery Directives from a request's query string (the bytes after `?`, without
/// the fragment). Unknown parameters are ignored; `_HLS_` names are case-sensitive.
///
/// Spec: RFC 8216bis §6.2.5.2: "If the Playlist URI contains an _HLS_part directive but no
/// _HLS_msn directive, the Server MUST return Bad Request".
pub fn parse(query: &[u8]) -> Result<DeliveryDirectives, QueryError> {
    let mut directives = DeliveryDirectives::default();
    let mut offset = 0;
    for pair in query.split(|&b| b == b'&') {
        let start = offset;
        offset += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], Some((&pair[eq + 1..], start + eq + 1))),
            None => (pair, None),
        };
        let Some(param) = directive(name, start)? else {
            continue;
        };
        let Some((value, value_offset)) = value else {
            return Err(QueryError::MissingValue { param });
        };
        let value = Decoded::new(value, value_offset);
        match param {
            MSN => set(&mut directives.msn, param, integer(value, param, MAX_MSN)?)?,
            PART => set(
                &mut directives.part,
                param,
                integer(value, param, MAX_PART)?,
            )?,
            _ => set(&mut directives.skip, param, skip(value)?)?,
        }
    }
    if directives.part.is_some() && directives.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(directives)
}

/// Which directive `raw` names, if any (the name decoded; a broken escape is an error).
fn directive(raw: &[u8], offset: usize) -> Result<Option<&'static str>, QueryError> {
    let mut candidates = [MSN, PART, SKIP].map(|name| Some(name.as_bytes().iter()));
    for byte in Decoded::new(raw, offset) {
        let byte = byte?;
        for candidate in &mut candidates {
            if candidate.as_mut().and_then(Iterator::next) != Some(&byte) {
                *candidate = None;
            }
        }
    }
    Ok([MSN, PART, SKIP]
        .into_iter()
        .zip(candidates)
        .find_map(|(name, mut rest)| {
            rest.as_mut()
                .is_some_and(|r| r.next().is_none())
                .then_some(name)
        }))
}

/// Stores a directive's value, refusing a second one.
fn set<T>(slot: &mut Option<T>, param: &'static str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Repeated { param });
    }
    *slot = Some(value);
    Ok(())
}

/// A decimal-integer (RFC 8216 §4.2: digits only, so no sign or space) no larger than
/// `max`.
fn integer(value: Decoded<'_>, param: &'static str, max: u64) -> Result<u64, QueryError> {
    let mut n: u64 = 0;
    let mut digits = 0usize;
    let mut too_large = false;
    let mut negative = false;
    let mut other = false;
    for (i, byte) in value.enumerate() {
        match byte? {
            b'-' if i == 0 => negative = true,
            d @ b'0'..=b'9' => {
                digits += 1;
                match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                {
                    Some(next) if next <= max => n = next,
                    _ => too_large = true,
                }
            }
            _ => other = true,
        }
    }
    if other || digits == 0 {
        Err(QueryError::NotANumber { param })
    } else if negative {
        Err(QueryError::Negative { param })
    } else if too_large {
        Err(QueryError::TooLarge { param, max })
    } else {
        Ok(n)
    }
}

/// `YES` or `v2`, as written (enumerated-strings are case-sensitive, RFC 8216 §4.2).
fn skip(value: Decoded<'_>) -> Result<Skip, QueryError> {
    /// Bytes kept: as long as the longest accepted value.
    const KEPT: usize = 3;
    let mut kept = [0u8; KEPT];
    let mut len = 0usize;
    // Every byte is decoded, so a broken escape is reported wherever it is.
    for byte in value {
        let byte = byte?;
        if let Some(slot) = kept.get_mut(len) {
            *slot = byte;
        }
        len = len.saturating_add(1);
    }
    match kept.get(..len) {
        Some(b"YES") => Ok(Skip::Yes),
        Some(b"v2") => Ok(Skip::V2),
        _ => Err(QueryError::BadSkip),
    }
}

/// The bytes of a form-urlencoded name or value, decoded one at a time: `%XX` is the byte
/// XX, `+` a space. A `%` without two hex digits is an error naming its offset in the query.
#[derive(Clone, Debug)]
struct Decoded<'a> {
    raw: &'a [u8],
    /// Offset of `raw` in the query, for errors.
    offset: usize,
    at: usize,
}

impl<'a> Decoded<'a> {
    fn new(raw: &'a [u8], offset: usize) -> Decoded<'a> {
        Decoded { raw, offset, at: 0 }
    }
}

impl Iterator for Decoded<'_> {
    type Item = Result<u8, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let byte = *self.raw.get(self.at)?;
        let start = self.at;
        self.at += 1;
        Some(match byte {
            b'+' => Ok(b' '),
            b'%' => {
                let hex = |i: usize| self.raw.get(i).and_then(|&b| char::from(b).to_digit(16));
                match (hex(start + 1), hex(start + 2)) {
                    (Some(hi), Some(lo)) => {
                        self.at += 2;
                        // Two hex digits make at most 0xff.
                        Ok((hi * 16 + lo) as u8)
                    }
                    _ => {
                        // Nothing after an error is read.
                        self.at = self.raw.len();
                        Err(QueryError::MalformedEncoding {
                            offset: self.offset + start,
                        })
                    }
                }
            }
            other => Ok(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(query: &str) -> DeliveryDirectives {
        match parse(query.as_bytes()) {
            Ok(d) => d,
            Err(e) => panic!("{query:?}: {e}"),
        }
    }

    fn err(query: &[u8]) -> QueryError {
        match parse(query) {
            Ok(d) => panic!("{query:?} parsed as {d:?}"),
            Err(e) => e,
        }
    }

    fn directives(msn: Option<u64>, part: Option<u64>, skip: Option<Skip>) -> DeliveryDirectives {
        DeliveryDirectives { msn, part, skip }
    }

    #[test]
    fn directives_and_nothing_else() {
        assert_eq!(ok(""), DeliveryDirectives::default());
        assert_eq!(ok("_HLS_msn=273"), directives(Some(273), None, None));
        assert_eq!(
            ok("_HLS_msn=273&_HLS_part=2"),
            directives(Some(273), Some(2), None)
        );
        assert_eq!(
            ok("_HLS_part=3&_HLS_skip=YES&_HLS_msn=273"),
            directives(Some(273), Some(3), Some(Skip::Yes))
        );
        assert_eq!(ok("_HLS_skip=v2"), directives(None, None, Some(Skip::V2)));
        assert_eq!(
            ok("_HLS_msn=0&_HLS_part=0"),
            directives(Some(0), Some(0), None)
        );
        // Leading zeros are digits like any other (RFC 8216 §4.2 decimal-integer).
        assert_eq!(ok("_HLS_msn=007"), directives(Some(7), None, None));
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        assert_eq!(
            ok("t=1700000000&_HLS_msn=5&cb=%ZZ&token&x=&=y&&_hls_part=9&_HLS_msn_=1&_HLS_=2"),
            directives(Some(5), None, None)
        );
        // Values of other parameters are never read, whatever they hold.
        assert_eq!(
            ok("v=%&w=%4&_HLS_skip=YES"),
            directives(None, None, Some(Skip::Yes))
        );
    }

    #[test]
    fn names_and_values_are_decoded() {
        assert_eq!(
            ok("%5FHLS%5fmsn=%31%32&_HLS_part=%33"),
            directives(Some(12), Some(3), None)
        );
        assert_eq!(
            ok("_HLS_skip=%59ES"),
            directives(None, None, Some(Skip::Yes))
        );
        // '+' is a space, which is not a digit, and a name with one is another name.
        assert_eq!(err(b"_HLS_msn=+5"), QueryError::NotANumber { param: MSN });
        assert_eq!(ok("_HLS+msn=5"), DeliveryDirectives::default());
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(err(b"_HLS_msn=-1"), QueryError::Negative { param: MSN });
        assert_eq!(
            err(b"_HLS_msn=5&_HLS_part=-0"),
            QueryError::Negative { param: PART }
        );
        assert_eq!(err(b"_HLS_msn=%2D3"), QueryError::Negative { param: MSN });
        for bad in [
            &b"_HLS_msn="[..],
            b"_HLS_msn=-",
            b"_HLS_msn=1x",
            b"_HLS_msn=0x10",
            b"_HLS_msn=1.0",
            b"_HLS_msn=1e3",
            b"_HLS_msn= 1",
            b"_HLS_msn=1%00",
            b"_HLS_msn=--1",
            b"_HLS_msn=1-",
            b"_HLS_msn=\xff",
            b"_HLS_msn=1=2",
        ] {
            assert_eq!(err(bad), QueryError::NotANumber { param: MSN }, "{bad:?}");
        }
        assert_eq!(
            err(b"_HLS_msn=1&_HLS_part=two"),
            QueryError::NotANumber { param: PART }
        );
    }

    #[test]
    fn numbers_are_bounded() {
        let at = |max: u64| format!("_HLS_msn={max}");
        assert_eq!(ok(&at(MAX_MSN)).msn, Some(MAX_MSN));
        assert_eq!(
            err(at(MAX_MSN + 1).as_bytes()),
            QueryError::TooLarge {
                param: MSN,
                max: MAX_MSN
            }
        );
        assert_eq!(
            err(format!("_HLS_msn={}", u64::MAX).as_bytes()),
            QueryError::TooLarge {
                param: MSN,
                max: MAX_MSN
            }
        );
        assert_eq!(
            err(b"_HLS_msn=99999999999999999999999999999999999999"),
            QueryError::TooLarge {
                param: MSN,
                max: MAX_MSN
            }
        );
        // Not a number wins over too large: the value is not an integer at all.
        assert_eq!(
            err(b"_HLS_msn=99999999999999999999999x"),
            QueryError::NotANumber { param: MSN }
        );
        assert_eq!(
            ok(&format!("_HLS_msn=1&_HLS_part={MAX_PART}")).part,
            Some(MAX_PART)
        );
        assert_eq!(
            err(format!("_HLS_msn=1&_HLS_part={}", MAX_PART + 1).as_bytes()),
            QueryError::TooLarge {
                param: PART,
                max: MAX_PART
            }
        );
    }

    #[test]
    fn part_needs_msn() {
        assert_eq!(err(b"_HLS_part=1"), QueryError::PartWithoutMsn);
        assert_eq!(
            err(b"_HLS_part=1&_HLS_skip=YES"),
            QueryError::PartWithoutMsn
        );
    }

    #[test]
    fn each_directive_once() {
        assert_eq!(
            err(b"_HLS_msn=1&_HLS_msn=1"),
            QueryError::Repeated { param: MSN }
        );
        assert_eq!(
            err(b"_HLS_msn=1&_HLS_part=1&%5FHLS_part=2"),
            QueryError::Repeated { param: PART }
        );
        assert_eq!(
            err(b"_HLS_skip=YES&_HLS_skip=v2"),
            QueryError::Repeated { param: SKIP }
        );
    }

    #[test]
    fn directives_need_values() {
        assert_eq!(err(b"_HLS_msn"), QueryError::MissingValue { param: MSN });
        assert_eq!(
            err(b"_HLS_msn=1&_HLS_skip"),
            QueryError::MissingValue { param: SKIP }
        );
    }

    #[test]
    fn skip_values() {
        for bad in [
            &b"_HLS_skip=yes"[..],
            b"_HLS_skip=NO",
            b"_HLS_skip=",
            b"_HLS_skip=V2",
            b"_HLS_skip=YESS",
            b"_HLS_skip=YES%20",
            b"_HLS_skip=v22222222222",
        ] {
            assert_eq!(err(bad), QueryError::BadSkip, "{bad:?}");
        }
    }

    #[test]
    fn malformed_escapes_say_where() {
        assert_eq!(
            err(b"_HLS_msn=%3"),
            QueryError::MalformedEncoding { offset: 9 }
        );
        assert_eq!(
            err(b"a=1&_HLS%msn=1"),
            QueryError::MalformedEncoding { offset: 8 }
        );
        assert_eq!(err(b"x%g0=1"), QueryError::MalformedEncoding { offset: 1 });
        assert_eq!(
            err(b"_HLS_skip=%"),
            QueryError::MalformedEncoding { offset: 10 }
        );
        // In a value the number check does not get past the escape.
        assert_eq!(
            err(b"_HLS_msn=1%zz"),
            QueryError::MalformedEncoding { offset: 10 }
        );
    }

    #[test]
    fn errors_read_as_reasons() {
        assert_eq!(
            QueryError::TooLarge {
                param: MSN,
                max: MAX_MSN
            }
            .to_string(),
            "_HLS_msn is larger than 9007199254740991, more than a stream can reach"
        );
        assert_eq!(
            QueryError::PartWithoutMsn.to_string(),
            "_HLS_part needs _HLS_msn"
        );
        assert_eq!(
            QueryError::MalformedEncoding { offset: 3 }.to_string(),
            "malformed percent-encoding at byte 3 of the query"
        );
    }

    #[test]
    fn rendered_directives_parse_back() {
        let all = [
            DeliveryDirectives::default(),
            directives(Some(0), None, None),
            directives(Some(MAX_MSN), Some(MAX_PART), Some(Skip::V2)),
            directives(Some(273), Some(3), Some(Skip::Yes)),
            directives(None, None, Some(Skip::Yes)),
        ];
        for d in all {
            let text = d.to_string();
            assert_eq!(parse(text.as_bytes()), Ok(d), "{text}");
            assert_eq!(parse(format!("cb=1&{text}&z").as_bytes()), Ok(d), "{text}");
        }
        assert_eq!(
            directives(Some(5), Some(1), Some(Skip::Yes)).to_string(),
            "_HLS_msn=5&_HLS_part=1&_HLS_skip=YES"
        );
    }

    #[test]
    fn blocking_request_and_delta() {
        let d = ok("_HLS_msn=9&_HLS_part=2&_HLS_skip=v2");
        assert_eq!(
            d.blocking(),
            Some(blocking::Request {
                msn: 9,
                part: Some(2)
            })
        );
        assert!(d.delta());
        assert_eq!(ok("_HLS_skip=YES").blocking(), None);
        assert!(!ok("_HLS_msn=1").delta());
    }
}
