//! The Delivery Directives parser of Low-Latency playlist requests (`hls::ll_query::parse`).
//!
//! Input: a mode byte, then
//! - even mode (any query): the rest is a query string. Parsing never panics and gives
//!   exactly what a plain reference reader gives (the same directives, or the same error):
//!   split on `&`, each name and value decoded whole (`%XX`, `+`), the three names matched,
//!   numbers read with `str::parse`. An accepted query is within the bounds, and its
//!   directives written out parse back to the same.
//! - odd mode (round trip): directives chosen by the input (numbers within the bounds,
//!   some written with leading zeros or escaped digits) are written among other parameters
//!   (names escaped, values anything but `&`) in an order the input chooses; parsing gives
//!   the directives back.
//!
//! The parser is not incremental (a query arrives whole), so input is not split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_server::hls::ll_query::{
    self, DeliveryDirectives, MAX_MSN, MAX_PART, MSN, PART, QueryError, SKIP, Skip,
};
use rtmp_server_fuzz::input::Input;

/// Most parameters one round-trip input writes besides the directives.
const MAX_OTHER_PARAMS: usize = 8;

/// Decodes a form-urlencoded name or value whole; the first broken escape is an error at
/// its offset in the query.
fn decode(raw: &[u8], offset: usize) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly (from_str_radix alone would take a sign too).
                let hex = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    return Err(QueryError::MalformedEncoding { offset: offset + i });
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

fn number(value: &[u8], param: &'static str, max: u64) -> Result<u64, QueryError> {
    let (negative, digits) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::NotANumber { param });
    }
    if negative {
        return Err(QueryError::Negative { param });
    }
    let text = std::str::from_utf8(digits).expect("ASCII digits");
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(QueryError::TooLarge { param, max }),
    }
}

/// The reference reader.
fn reference(query: &[u8]) -> Result<DeliveryDirectives, QueryError> {
    let mut d = DeliveryDirectives::default();
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
        let name = decode(name, start)?;
        let param = match name.as_slice() {
            b"_HLS_msn" => MSN,
            b"_HLS_part" => PART,
            b"_HLS_skip" => SKIP,
            _ => continue,
        };
        let Some((value, value_offset)) = value else {
            return Err(QueryError::MissingValue { param });
        };
        let value = decode(value, value_offset)?;
        let repeated = Err(QueryError::Repeated { param });
        match param {
            MSN => {
                let n = number(&value, param, MAX_MSN)?;
                if d.msn.replace(n).is_some() {
                    return repeated;
                }
            }
            PART => {
                let n = number(&value, param, MAX_PART)?;
                if d.part.replace(n).is_some() {
                    return repeated;
                }
            }
            _ => {
                let skip = match value.as_slice() {
                    b"YES" => Skip::Yes,
                    b"v2" => Skip::V2,
                    _ => return Err(QueryError::BadSkip),
                };
                if d.skip.replace(skip).is_some() {
                    return repeated;
                }
            }
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(d)
}

fn check_any(query: &[u8]) {
    let parsed = ll_query::parse(query);
    assert_eq!(
        parsed,
        reference(query),
        "{:?}",
        String::from_utf8_lossy(query)
    );
    if let Ok(d) = parsed {
        assert!(d.msn.is_none_or(|m| m <= MAX_MSN));
        assert!(d.part.is_none_or(|p| p <= MAX_PART));
        assert!(d.part.is_none() || d.msn.is_some());
        assert_eq!(ll_query::parse(d.to_string().as_bytes()), Ok(d));
    }
}

/// `n` in decimal, with leading zeros or escaped digits as the input chooses.
fn write_number(input: &mut Input<'_>, n: u64) -> String {
    let zeros = usize::from(input.byte() % 4);
    let digits = format!("{}{n}", "0".repeat(zeros));
    if input.bool() {
        digits.bytes().map(|d| format!("%{d:02X}")).collect()
    } else {
        digits
    }
}

/// A parameter name from the input, escaped where it has to be (and sometimes where it need
/// not), that decodes to no directive name.
fn other_name(input: &mut Input<'_>) -> String {
    let len = usize::from(input.byte() % 12);
    // Every byte is written as itself or escaped, so the name decodes to `raw`.
    let raw = input.bytes(len);
    if [MSN, PART, SKIP].iter().any(|n| n.as_bytes() == raw) {
        return "cb".to_owned();
    }
    raw.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() && b % 3 != 0 {
                char::from(b).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn check_round_trip(input: &mut Input<'_>) {
    let msn = input
        .bool()
        .then(|| ((u64::from(input.u32()) << 21) | u64::from(input.u24())) % (MAX_MSN + 1));
    let part = msn
        .filter(|_| input.bool())
        .map(|_| u64::from(input.u16()) % (MAX_PART + 1));
    let skip = match input.byte() % 3 {
        0 => None,
        1 => Some(Skip::Yes),
        _ => Some(Skip::V2),
    };
    let wanted = DeliveryDirectives { msn, part, skip };

    let mut params = Vec::new();
    if let Some(m) = msn {
        params.push(format!("{MSN}={}", write_number(input, m)));
    }
    if let Some(p) = part {
        params.push(format!("{PART}={}", write_number(input, p)));
    }
    if let Some(s) = skip {
        let value = match s {
            Skip::Yes => "YES",
            Skip::V2 => "v2",
        };
        params.push(format!("{SKIP}={value}"));
    }
    for _ in 0..usize::from(input.byte()) % (MAX_OTHER_PARAMS + 1) {
        let name = other_name(input);
        let len = usize::from(input.byte() % 8);
        let value: String = input
            .bytes(len)
            .iter()
            .map(|&b| if b == b'&' { '_' } else { char::from(b) })
            .collect();
        let param = if input.bool() {
            format!("{name}={value}")
        } else {
            name
        };
        let at = usize::from(input.byte()) % (params.len() + 1);
        params.insert(at, param);
    }
    let query = params.join("&");
    assert_eq!(ll_query::parse(query.as_bytes()), Ok(wanted), "{query:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if input.bool() {
        check_round_trip(&mut input);
    } else {
        check_any(input.rest());
    }
});
