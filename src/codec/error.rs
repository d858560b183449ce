//! The error type of the codec layer: configuration records of the Enhanced RTMP codecs and
//! the per-frame headers the server reads.

/// Why codec bytes were refused. Every variant says which structure, which field or offset,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A structure ended before a byte-aligned field it announces.
    #[error("{structure} truncated: needs {needed} bytes at offset {offset}, has {available}")]
    Truncated {
        structure: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A bit-level structure ended inside a field.
    #[error(
        "{structure} truncated: {field} needs {needed} bits at bit {bit_offset}, \
         {available} left"
    )]
    OutOfBits {
        structure: &'static str,
        field: &'static str,
        bit_offset: usize,
        needed: usize,
        available: usize,
    },
    /// A field holds a value the specification forbids, reserves, or that this server does
    /// not support.
    #[error("{structure}: {field} = {value} is invalid ({reason})")]
    InvalidField {
        structure: &'static str,
        field: &'static str,
        value: u64,
        reason: &'static str,
    },
    /// A structure lacks a part it must have.
    #[error("{structure}: {what}")]
    Missing {
        structure: &'static str,
        what: &'static str,
    },
    /// A length-prefixed unit runs past the end of the bytes holding it.
    #[error(
        "{structure}: length {length} at offset {offset} runs past the end ({remaining} bytes left)"
    )]
    Length {
        structure: &'static str,
        offset: usize,
        length: usize,
        remaining: usize,
    },
    /// A structure holds more units than the server accepts.
    #[error("{structure}: more than {limit} {what}")]
    TooMany {
        structure: &'static str,
        what: &'static str,
        limit: usize,
    },
}

impl CodecError {
    /// A [`CodecError::Truncated`] unless `data` holds `needed` bytes at `offset`; returns
    /// those bytes.
    pub(crate) fn take<'a>(
        structure: &'static str,
        data: &'a [u8],
        offset: usize,
        needed: usize,
    ) -> Result<&'a [u8], CodecError> {
        offset
            .checked_add(needed)
            .and_then(|end| data.get(offset..end))
            .ok_or(CodecError::Truncated {
                structure,
                offset,
                needed,
                available: data.len().saturating_sub(offset),
            })
    }

    /// An [`CodecError::InvalidField`].
    pub(crate) fn invalid(
        structure: &'static str,
        field: &'static str,
        value: impl Into<u64>,
        reason: &'static str,
    ) -> CodecError {
        CodecError::InvalidField {
            structure,
            field,
            value: value.into(),
            reason,
        }
    }
}
