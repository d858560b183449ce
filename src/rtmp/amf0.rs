//! AMF0: the value encoding of RTMP command and data messages and of FLV script tags.
//!
//! The decoder reads from a complete message body (RTMP reassembles messages before they
//! are parsed), so input that ends inside a value is invalid, never "need more". Every length
//! is checked against the bytes that are there before anything is allocated, nesting and the
//! number of values are bounded, and references are kept as indices instead of being copied
//! (a few bytes of references could otherwise expand into gigabytes).
//!
//! Spec: AMF0 (Adobe "Action Message Format -- AMF 0", 2006), §2.

use bytes::{BufMut, BytesMut};

use super::error::Amf0Error;

/// Deepest nesting of objects and arrays accepted. Commands and metadata nest two or three
/// levels; the bound keeps recursion (and the stack) small on hostile input.
pub const MAX_DEPTH: usize = 32;

/// Most values decoded from one input (every nested value counts). Each value costs tens of
/// bytes of memory but as little as one byte of input, so without a bound a 16 MiB message of
/// nulls would expand to hundreds of MiB. Real commands hold about ten values, metadata a few
/// dozen.
pub const MAX_VALUES: usize = 65_536;

/// Most elements reserved up front for a strict array, whatever count it announces; the
/// vector grows past this as elements are actually read.
const MAX_PREALLOCATED_ELEMENTS: usize = 64;

/// Type markers. Spec: AMF0 §2.1.
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
}

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Spec: AMF0 §2.2: an IEEE 754 double.
    Number(f64),
    /// Spec: AMF0 §2.3.
    Boolean(bool),
    /// Spec: AMF0 §2.4 (string) and §2.14 (long string): the encoder writes a long string
    /// when the text does not fit a 16-bit length.
    String(String),
    /// Spec: AMF0 §2.5: anonymous object, properties in wire order.
    Object(Vec<(String, Value)>),
    /// Spec: AMF0 §2.7.
    Null,
    /// Spec: AMF0 §2.8.
    Undefined,
    /// Spec: AMF0 §2.9: index of an earlier object or array in the same input (counted from
    /// 0 in decoding order). Kept unresolved: copying the target would let a few bytes of
    /// references expand without bound.
    Reference(u16),
    /// Spec: AMF0 §2.10: associative array, properties in wire order. The count on the wire
    /// is only a hint; the object-end marker ends the array.
    EcmaArray(Vec<(String, Value)>),
    /// Spec: AMF0 §2.12: dense array.
    StrictArray(Vec<Value>),
    /// Spec: AMF0 §2.13: milliseconds since the Unix epoch, UTC, and the reserved time-zone
    /// field (should be 0).
    Date { millis: f64, time_zone: i16 },
}

impl Value {
    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// An object of these properties, in this order.
    pub fn object(fields: &[(&str, Value)]) -> Value {
        Value::Object(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// The first property called `name` of an object or ECMA array.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Boolean(b)
    }
}

/// Reads AMF0 values one after another from a complete buffer.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Objects and arrays decoded so far: the targets a reference may name (§2.9).
    complex_values: usize,
    /// Values decoded so far, nested ones included (bounded by [`MAX_VALUES`]).
    values: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            complex_values: 0,
            values: 0,
        }
    }

    /// Bytes consumed so far: where the next value starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next value, or `None` when the input has been read to its end.
    pub fn decode(&mut self) -> Result<Option<Value>, Amf0Error> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        self.value(0).map(Some)
    }

    /// Every value up to the end of the input.
    pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
        let mut decoder = Decoder::new(buf);
        let mut values = Vec::new();
        while let Some(v) = decoder.decode()? {
            values.push(v);
        }
        Ok(values)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Amf0Error::Truncated {
                offset: self.pos,
                needed: n,
                available: self.buf.len(),
            }),
        }
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        let b = self.take(1)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(b);
        Ok(f64::from_be_bytes(raw))
    }

    /// UTF-8 text of `length` bytes. Spec: AMF0 §1.3 (UTF-8, UTF-8-long).
    fn utf8(&mut self, length: usize) -> Result<String, Amf0Error> {
        let offset = self.pos;
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Amf0Error::InvalidUtf8 { offset, length }),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        let offset = self.pos;
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues {
                offset,
                limit: MAX_VALUES,
            });
        }
        let m = self.u8()?;
        match m {
            marker::NUMBER => Ok(Value::Number(self.f64()?)),
            marker::BOOLEAN => Ok(Value::Boolean(self.u8()? != 0)),
            marker::STRING => {
                let length = self.u16()?;
                Ok(Value::String(self.utf8(usize::from(length))?))
            }
            marker::LONG_STRING => {
                let length = self.u32()?;
                Ok(Value::String(self.utf8(length as usize)?))
            }
            marker::OBJECT => {
                self.enter(offset, depth)?;
                Ok(Value::Object(self.properties(depth + 1)?))
            }
            marker::ECMA_ARRAY => {
                self.enter(offset, depth)?;
                // The associative-count is a hint only (§2.10): the object-end marker ends
                // the array, and encoders in the field write 0 here.
                self.u32()?;
                Ok(Value::EcmaArray(self.properties(depth + 1)?))
            }
            marker::STRICT_ARRAY => {
                self.enter(offset, depth)?;
                let count = self.u32()? as usize;
                // Every element takes at least one byte: a count beyond the bytes left is
                // truncated input, caught before anything is reserved.
                let left = self.buf.len() - self.pos;
                if count > left {
                    return Err(Amf0Error::Truncated {
                        offset: self.pos,
                        needed: count,
                        available: self.buf.len(),
                    });
                }
                let mut elements = Vec::with_capacity(count.min(MAX_PREALLOCATED_ELEMENTS));
                for _ in 0..count {
                    elements.push(self.value(depth + 1)?);
                }
                Ok(Value::StrictArray(elements))
            }
            marker::NULL => Ok(Value::Null),
            marker::UNDEFINED => Ok(Value::Undefined),
            marker::REFERENCE => {
                let index = self.u16()?;
                if usize::from(index) >= self.complex_values {
                    return Err(Amf0Error::BadReference {
                        offset,
                        index,
                        known: self.complex_values,
                    });
                }
                Ok(Value::Reference(index))
            }
            marker::DATE => {
                let millis = self.f64()?;
                let time_zone = self.u16()? as i16;
                Ok(Value::Date { millis, time_zone })
            }
            marker::OBJECT_END => Err(Amf0Error::UnexpectedObjectEnd { offset }),
            other => Err(Amf0Error::UnsupportedMarker {
                offset,
                marker: other,
            }),
        }
    }

    /// Checks the nesting limit for an object or array starting at `offset` and records it
    /// as a possible reference target.
    fn enter(&mut self, offset: usize, depth: usize) -> Result<(), Amf0Error> {
        if depth >= MAX_DEPTH {
            return Err(Amf0Error::TooDeep {
                offset,
                limit: MAX_DEPTH,
            });
        }
        self.complex_values += 1;
        Ok(())
    }

    /// Properties up to the object end: an empty name followed by the object-end marker.
    /// Spec: AMF0 §2.5 (object-property, object-end-type).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let length = self.u16()?;
            if length == 0 && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(properties);
            }
            let name = self.utf8(usize::from(length))?;
            let value = self.value(depth)?;
            properties.push((name, value));
        }
    }
}

/// Appends `value` to `out`.
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), Amf0Error> {
    match value {
        Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(length) => {
                out.put_u8(marker::STRING);
                out.put_u16(length);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                let length = u32::try_from(s.len()).map_err(|_| Amf0Error::TooLong {
                    what: "long string",
                    length: s.len(),
                    limit: u64::from(u32::MAX),
                })?;
                out.put_u8(marker::LONG_STRING);
                out.put_u32(length);
                out.put_slice(s.as_bytes());
            }
        },
        Value::Object(properties) => {
            out.put_u8(marker::OBJECT);
            encode_properties(properties, out)?;
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::Reference(index) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*index);
        }
        Value::EcmaArray(properties) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(count(properties.len(), "ECMA array")?);
            encode_properties(properties, out)?;
        }
        Value::StrictArray(elements) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(count(elements.len(), "strict array")?);
            for element in elements {
                encode(element, out)?;
            }
        }
        Value::Date { millis, time_zone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*time_zone);
        }
    }
    Ok(())
}

fn count(length: usize, what: &'static str) -> Result<u32, Amf0Error> {
    u32::try_from(length).map_err(|_| Amf0Error::TooLong {
        what,
        length,
        limit: u64::from(u32::MAX),
    })
}

fn encode_properties(properties: &[(String, Value)], out: &mut BytesMut) -> Result<(), Amf0Error> {
    for (name, value) in properties {
        let length = u16::try_from(name.len()).map_err(|_| Amf0Error::TooLong {
            what: "property name",
            length: name.len(),
            limit: u64::from(u16::MAX),
        })?;
        out.put_u16(length);
        out.put_slice(name.as_bytes());
        encode(value, out)?;
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex::FromHex;

    fn bytes(hex: &str) -> Vec<u8> {
        Vec::from_hex(hex.replace(' ', "")).expect("test vector is hex")
    }

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(value, &mut out).expect("encodable");
        out.to_vec()
    }

    fn props(list: &[(&str, Value)]) -> Vec<(String, Value)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn golden_scalars() {
        assert_eq!(encoded(&Value::Number(1.0)), bytes("00 3ff0000000000000"));
        assert_eq!(encoded(&Value::Boolean(true)), bytes("01 01"));
        assert_eq!(encoded(&Value::Boolean(false)), bytes("01 00"));
        assert_eq!(encoded(&"connect".into()), bytes("02 0007 636f6e6e656374"));
        assert_eq!(encoded(&Value::Null), bytes("05"));
        assert_eq!(encoded(&Value::Undefined), bytes("06"));
        assert_eq!(encoded(&Value::Reference(2)), bytes("07 0002"));
        assert_eq!(
            encoded(&Value::Date {
                millis: 0.0,
                time_zone: 0
            }),
            bytes("0b 0000000000000000 0000")
        );
    }

    #[test]
    fn golden_containers() {
        let object = Value::Object(props(&[("app", "live".into()), ("n", 0.0.into())]));
        assert_eq!(
            encoded(&object),
            bytes("03 0003 617070 02 0004 6c697665 0001 6e 00 0000000000000000 0000 09")
        );
        let array = Value::EcmaArray(props(&[("a", true.into())]));
        assert_eq!(encoded(&array), bytes("08 00000001 0001 61 01 01 0000 09"));
        let strict = Value::StrictArray(vec![Value::Null, 2.0.into()]);
        assert_eq!(
            encoded(&strict),
            bytes("0a 00000002 05 00 4000000000000000")
        );
    }

    #[test]
    fn long_string_chosen_by_length() {
        let text = "x".repeat(70_000);
        let out = encoded(&Value::String(text.clone()));
        assert_eq!(&out[..5], &[0x0c, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(out.len(), 5 + 70_000);
        assert_eq!(Decoder::decode_all(&out), Ok(vec![Value::String(text)]));
        // A long string with short text is read as a plain string value.
        assert_eq!(
            Decoder::decode_all(&bytes("0c 00000002 6869")),
            Ok(vec![Value::String("hi".to_owned())])
        );
    }

    /// The values of the `connect` command ffmpeg 5.1 sends to publish.
    fn ffmpeg_connect_values() -> Vec<Value> {
        vec![
            "connect".into(),
            1.0.into(),
            Value::Object(props(&[
                ("app", "live".into()),
                ("type", "nonprivate".into()),
                ("flashVer", "FMLE/3.0 (compatible; Lavf59.27.100)".into()),
                ("tcUrl", "rtmp://127.0.0.1:19350/live".into()),
            ])),
        ]
    }

    fn sample_values() -> Vec<Value> {
        let mut values = ffmpeg_connect_values();
        values.extend([
            Value::Null,
            Value::Undefined,
            Value::Boolean(true),
            Value::Number(-0.5),
            Value::EcmaArray(props(&[
                ("duration", 0.0.into()),
                ("width", 640.0.into()),
                ("encoder", "Lavf59.27.100".into()),
                (
                    "nested",
                    Value::Object(props(&[("list", Value::StrictArray(vec![1.0.into()]))])),
                ),
            ])),
            Value::Reference(1),
            Value::Date {
                millis: 1.7e12,
                time_zone: 0,
            },
            Value::String("é ü".to_owned()),
        ]);
        values
    }

    fn encode_all(values: &[Value]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for v in values {
            encode(v, &mut out).expect("encodable");
        }
        out.to_vec()
    }

    #[test]
    fn round_trip() {
        let values = sample_values();
        let wire = encode_all(&values);
        assert_eq!(Decoder::decode_all(&wire), Ok(values.clone()));
        // And back to identical bytes.
        assert_eq!(
            encode_all(&Decoder::decode_all(&wire).expect("decodes")),
            wire
        );
    }

    #[test]
    fn decoder_reports_positions() {
        let wire = encode_all(&sample_values());
        let mut decoder = Decoder::new(&wire);
        assert_eq!(decoder.decode(), Ok(Some("connect".into())));
        assert_eq!(decoder.position(), 10);
        assert_eq!(decoder.decode(), Ok(Some(1.0.into())));
        assert_eq!(decoder.position(), 19);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let wire = encode_all(&sample_values());
        // Offsets where a top-level value ends: cutting there is a valid shorter input.
        let mut boundaries = vec![0];
        let mut decoder = Decoder::new(&wire);
        while decoder.decode().expect("full input decodes").is_some() {
            boundaries.push(decoder.position());
        }
        for cut in 0..wire.len() {
            let result = Decoder::decode_all(&wire[..cut]);
            if boundaries.contains(&cut) {
                assert!(result.is_ok(), "cut at {cut}: {result:?}");
            } else {
                assert!(
                    matches!(result, Err(Amf0Error::Truncated { .. })),
                    "cut at {cut}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn truncation_reports_where() {
        assert_eq!(
            Decoder::decode_all(&bytes("02 0005 6869")),
            Err(Amf0Error::Truncated {
                offset: 3,
                needed: 5,
                available: 5
            })
        );
        // A strict array announcing 4 billion elements in a few bytes fails before reserving.
        assert_eq!(
            Decoder::decode_all(&bytes("0a ffffffff 05")),
            Err(Amf0Error::Truncated {
                offset: 5,
                needed: 0xffff_ffff,
                available: 6
            })
        );
    }

    #[test]
    fn depth_bomb_is_refused() {
        // 100 nested strict arrays of one element each.
        let mut wire = Vec::new();
        for _ in 0..100 {
            wire.extend_from_slice(&bytes("0a 00000001"));
        }
        wire.push(marker::NULL);
        assert_eq!(
            Decoder::decode_all(&wire),
            Err(Amf0Error::TooDeep {
                offset: 5 * MAX_DEPTH,
                limit: MAX_DEPTH
            })
        );
        // Objects nest the same way.
        let mut wire = Vec::new();
        for _ in 0..100 {
            wire.extend_from_slice(&bytes("03 0001 61"));
        }
        assert!(matches!(
            Decoder::decode_all(&wire),
            Err(Amf0Error::TooDeep { .. })
        ));
        // Exactly the limit is fine.
        let mut wire = Vec::new();
        for _ in 0..MAX_DEPTH {
            wire.extend_from_slice(&bytes("0a 00000001"));
        }
        wire.push(marker::NULL);
        assert!(Decoder::decode_all(&wire).is_ok());
    }

    #[test]
    fn value_count_is_bounded() {
        let mut wire = bytes("0a");
        wire.extend_from_slice(&((MAX_VALUES as u32) + 10).to_be_bytes());
        wire.resize(wire.len() + MAX_VALUES + 10, marker::NULL);
        assert_eq!(
            Decoder::decode_all(&wire),
            Err(Amf0Error::TooManyValues {
                offset: 5 + MAX_VALUES - 1,
                limit: MAX_VALUES
            })
        );
    }

    #[test]
    fn references_must_point_back() {
        assert_eq!(
            Decoder::decode_all(&bytes("07 0000")),
            Err(Amf0Error::BadReference {
                offset: 0,
                index: 0,
                known: 0
            })
        );
        assert_eq!(
            Decoder::decode_all(&bytes("03 0000 09 07 0000")),
            Ok(vec![Value::Object(vec![]), Value::Reference(0)])
        );
    }

    #[test]
    fn refused_markers() {
        for m in [0x04u8, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0xff] {
            assert_eq!(
                Decoder::decode_all(&[m, 0, 0, 0, 0]),
                Err(Amf0Error::UnsupportedMarker {
                    offset: 0,
                    marker: m
                })
            );
        }
        assert_eq!(
            Decoder::decode_all(&bytes("09")),
            Err(Amf0Error::UnexpectedObjectEnd { offset: 0 })
        );
        assert_eq!(
            Decoder::decode_all(&bytes("02 0002 c328")),
            Err(Amf0Error::InvalidUtf8 {
                offset: 3,
                length: 2
            })
        );
    }

    #[test]
    fn ecma_count_is_only_a_hint() {
        // Count 0 but two properties, as some encoders write it.
        let wire = bytes("08 00000000 0001 61 05 0001 62 06 0000 09");
        assert_eq!(
            Decoder::decode_all(&wire),
            Ok(vec![Value::EcmaArray(props(&[
                ("a", Value::Null),
                ("b", Value::Undefined)
            ]))])
        );
        // An empty name not followed by the end marker is an ordinary property.
        let wire = bytes("03 0000 05 0000 09");
        assert_eq!(
            Decoder::decode_all(&wire),
            Ok(vec![Value::Object(props(&[("", Value::Null)]))])
        );
    }

    #[test]
    fn accessors() {
        let object = Value::Object(props(&[("app", "live".into()), ("n", 3.0.into())]));
        assert_eq!(object.property("app").and_then(Value::as_str), Some("live"));
        assert_eq!(object.property("n").and_then(Value::as_number), Some(3.0));
        assert_eq!(object.property("missing"), None);
        assert_eq!(Value::Null.property("app"), None);
    }

    #[test]
    fn unencodable_lengths_are_errors() {
        let name = "k".repeat(70_000);
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&Value::Object(vec![(name, Value::Null)]), &mut out),
            Err(Amf0Error::TooLong {
                what: "property name",
                length: 70_000,
                limit: 65_535
            })
        );
    }
}
