//! The error type of the FLV layer: tag headers, the FLV file container, the AVC decoder
//! configuration and NAL framing, and the AAC AudioSpecificConfig.

/// Why FLV-layer bytes were refused. Every variant says which structure and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// A structure ended before a field it announces.
    #[error("{structure} truncated: needs {needed} bytes at offset {offset}, has {available}")]
    Truncated {
        structure: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A field holds a value the specification forbids or reserves.
    #[error("{structure}: {field} = {value} is invalid ({reason})")]
    InvalidField {
        structure: &'static str,
        field: &'static str,
        value: u32,
        reason: &'static str,
    },
    /// An AVCC length prefix points past the end of the access unit.
    #[error(
        "NAL unit length {length} at offset {offset} runs past the end ({remaining} bytes left)"
    )]
    NalLength {
        offset: usize,
        length: usize,
        remaining: usize,
    },
    /// An access unit holds more NAL units than [`crate::flv::avc::MAX_NALS_PER_ACCESS_UNIT`].
    #[error("access unit has more than {limit} NAL units")]
    TooManyNals { limit: usize },
    /// An access unit is larger than [`crate::flv::avc::MAX_ACCESS_UNIT_SIZE`].
    #[error("access unit of {size} bytes exceeds the {limit}-byte limit")]
    AccessUnitTooLarge { size: usize, limit: usize },
    /// The sequence parameter set could not be parsed.
    #[error("sequence parameter set: {reason}")]
    Sps { reason: String },
    /// An AAC configuration that the 7-byte ADTS header cannot carry.
    #[error("AAC {field} = {value} cannot be carried in ADTS ({reason})")]
    NotAdtsExpressible {
        field: &'static str,
        value: u32,
        reason: &'static str,
    },
    /// The bytes do not start with the FLV file signature "FLV".
    #[error("not an FLV file: signature {signature:02x?}")]
    NotFlv { signature: [u8; 3] },
    /// A tag's PreviousTagSize does not match the tag before it.
    #[error(
        "PreviousTagSize at file offset {offset} is {found}, the tag before it is {expected} bytes"
    )]
    PreviousTagSize {
        offset: u64,
        expected: u32,
        found: u32,
    },
    /// The file ends inside a tag.
    #[error("FLV file ends inside a tag at offset {offset} ({available} of {needed} bytes)")]
    UnexpectedEof {
        offset: u64,
        needed: usize,
        available: usize,
    },
}
