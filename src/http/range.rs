//! The `Range` header of a request for one file, read against the file's length: what
//! part of it to send.
//!
//! Spec: RFC 9110 §14.1.2 (byte ranges: `first-last`, `first-`, `-suffix`), §14.2 (a server
//! may ignore a Range it does not support, answering the whole representation), §15.3.7
//! (206, Content-Range), §15.5.17 (416: no range overlaps the representation).

/// What to answer a request for a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file (no Range, or one this server does not take: several ranges, another
    /// unit, bad syntax).
    Whole,
    /// Bytes `first..=last`.
    Part { first: u64, last: u64 },
    /// The range starts beyond the end.
    Unsatisfiable,
}

/// Reads a `Range` header value against a file of `len` bytes.
pub fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part {
                first: len.saturating_sub(n),
                last: len - 1,
            },
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return Wanted::Whole;
            };
            let last = match last {
                "" => None,
                l => match number(l) {
                    Some(l) if l >= first => Some(l),
                    _ => return Wanted::Whole,
                },
            };
            if first >= len {
                return Wanted::Unsatisfiable;
            }
            Wanted::Part {
                first,
                last: last.map_or(len - 1, |l| l.min(len - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_file() {
        let part = |first, last| Wanted::Part { first, last };
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-9"), 100), part(0, 9));
        assert_eq!(wanted(Some("bytes=90-"), 100), part(90, 99));
        assert_eq!(wanted(Some("bytes=90-500"), 100), part(90, 99));
        assert_eq!(wanted(Some("bytes=-10"), 100), part(90, 99));
        assert_eq!(wanted(Some("bytes=-500"), 100), part(0, 99));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=1000-2000"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        // Not taken: answered whole.
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-9",
            "items=0-9",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=18446744073709551616-",
            "",
        ] {
            assert_eq!(wanted(Some(ignored), 100), Wanted::Whole, "{ignored:?}");
        }
    }
}
