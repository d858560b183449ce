//! The error type of the MPEG-TS writer.

/// Why the TS writer refused a request. These are caller errors (values out of the
/// field's range), not input data errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// A PID does not fit in 13 bits.
    #[error("PID {value:#x} is out of range (13 bits)")]
    PidOutOfRange { value: u16 },
    /// A program must carry at least one elementary stream.
    #[error("a program needs at least one track")]
    NoTracks,
    /// A bounded PES packet would not fit its 16-bit PES_packet_length.
    #[error("PES packet of {length} bytes exceeds PES_packet_length's {limit}")]
    PesTooLong { length: usize, limit: usize },
}
