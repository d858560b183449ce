//! The 188-byte transport stream packet: PID and continuity counter newtypes, the 4-byte
//! header and the adaptation field, written in place.
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.2 (transport packet), §2.4.3.4 and §2.4.3.5 (adaptation
//! field, PCR).

use bytes::{BufMut, BytesMut};

use crate::media::Timestamp90k;
use crate::ts::error::TsError;

/// Size of a transport stream packet.
pub const PACKET_SIZE: usize = 188;

/// The sync_byte every packet starts with.
pub const SYNC_BYTE: u8 = 0x47;

/// Size of the packet header (sync byte to continuity counter).
pub const HEADER_SIZE: usize = 4;

/// Room after the header for adaptation field and payload.
pub const PACKET_BODY_SIZE: usize = PACKET_SIZE - HEADER_SIZE;

/// A packet identifier: 13 bits.
///
/// Spec: ISO/IEC 13818-1 §2.4.3.3 PID, Table 2-3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u16);

impl Pid {
    /// The program association table's PID.
    pub const PAT: Pid = Pid(0x0000);
    /// Largest PID value.
    pub const MAX: u16 = 0x1fff;

    /// A PID, checked to fit 13 bits.
    pub const fn new(value: u16) -> Result<Pid, TsError> {
        if value > Pid::MAX {
            Err(TsError::PidOutOfRange { value })
        } else {
            Ok(Pid(value))
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// A 4-bit continuity_counter: increments with each packet of a PID that carries payload.
///
/// Spec: ISO/IEC 13818-1 §2.4.3.3 continuity_counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContinuityCounter(u8);

impl ContinuityCounter {
    pub fn value(self) -> u8 {
        self.0
    }

    /// The value of the last packet taken, which a packet without payload repeats.
    pub fn previous(self) -> ContinuityCounter {
        ContinuityCounter(self.0.wrapping_sub(1) & 0x0f)
    }

    /// Returns the current value and steps to the next (modulo 16).
    pub fn take(&mut self) -> ContinuityCounter {
        let current = *self;
        self.0 = (self.0 + 1) & 0x0f;
        current
    }
}

/// adaptation_field_control values.
///
/// Spec: ISO/IEC 13818-1 §2.4.3.3, Table 2-5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptationFieldControl {
    /// '01': payload only.
    PayloadOnly = 0b01,
    /// '10': adaptation field only (the continuity counter does not advance).
    AdaptationOnly = 0b10,
    /// '11': adaptation field followed by payload.
    AdaptationAndPayload = 0b11,
}

/// Writes a packet header.
pub fn put_header(
    out: &mut BytesMut,
    pid: Pid,
    payload_unit_start_indicator: bool,
    control: AdaptationFieldControl,
    continuity_counter: ContinuityCounter,
) {
    out.put_u8(SYNC_BYTE);
    // transport_error_indicator 0, transport_priority 0.
    out.put_u8((u8::from(payload_unit_start_indicator) << 6) | (pid.0 >> 8) as u8);
    out.put_u8(pid.0 as u8);
    // transport_scrambling_control '00'.
    out.put_u8(((control as u8) << 4) | continuity_counter.0);
}

/// The adaptation field flags and values this writer uses.
///
/// Spec: ISO/IEC 13818-1 §2.4.3.4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptationField {
    /// random_access_indicator: the PES starting here begins a random access point.
    pub random_access_indicator: bool,
    /// program_clock_reference_base (the 27 MHz extension is written as 0).
    pub pcr: Option<Timestamp90k>,
}

impl AdaptationField {
    /// Size of the field with its length byte and flags, before stuffing; 0 when there is
    /// nothing to signal.
    pub fn size(&self) -> usize {
        if !self.random_access_indicator && self.pcr.is_none() {
            return 0;
        }
        2 + if self.pcr.is_some() { 6 } else { 0 }
    }

    /// Writes the adaptation field, `stuffing` bytes of 0xFF included, taking exactly
    /// `self.size() + stuffing` bytes. With nothing to signal and one byte of stuffing it is
    /// the length byte alone (adaptation_field_length 0).
    pub fn put(&self, out: &mut BytesMut, stuffing: usize) {
        let total = self.size() + stuffing;
        if total == 0 {
            return;
        }
        // adaptation_field_length counts the bytes after itself.
        out.put_u8((total - 1) as u8);
        if total == 1 {
            return;
        }
        let mut flags = 0u8;
        if self.random_access_indicator {
            flags |= 0x40;
        }
        if self.pcr.is_some() {
            flags |= 0x10;
        }
        out.put_u8(flags);
        let mut written = 2;
        if let Some(pcr) = self.pcr {
            put_pcr(out, pcr);
            written += 6;
        }
        out.put_bytes(0xff, total - written);
    }
}

/// Writes a PCR: 33-bit base, 6 reserved '1' bits, 9-bit extension (0).
///
/// Spec: ISO/IEC 13818-1 §2.4.3.5 program_clock_reference_base/extension.
fn put_pcr(out: &mut BytesMut, pcr: Timestamp90k) {
    let base = pcr.wire();
    out.put_u8((base >> 25) as u8);
    out.put_u8((base >> 17) as u8);
    out.put_u8((base >> 9) as u8);
    out.put_u8((base >> 1) as u8);
    out.put_u8((((base & 1) as u8) << 7) | 0x7e);
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_range_is_checked() {
        assert_eq!(Pid::new(0x1fff).map(Pid::value), Ok(0x1fff));
        assert_eq!(
            Pid::new(0x2000),
            Err(TsError::PidOutOfRange { value: 0x2000 })
        );
    }

    #[test]
    fn continuity_counter_wraps_at_16() {
        let mut cc = ContinuityCounter::default();
        let values: Vec<u8> = (0..18).map(|_| cc.take().value()).collect();
        assert_eq!(values[..3], [0, 1, 2]);
        assert_eq!(values[15..], [15, 0, 1]);
    }

    #[test]
    fn header_golden() {
        let mut out = BytesMut::new();
        let pid = Pid::new(0x100).unwrap();
        let mut cc = ContinuityCounter::default();
        cc.take();
        cc.take();
        put_header(
            &mut out,
            pid,
            true,
            AdaptationFieldControl::AdaptationAndPayload,
            cc,
        );
        assert_eq!(&out[..], [0x47, 0x41, 0x00, 0x32]);
    }

    #[test]
    fn adaptation_field_with_pcr_golden() {
        // PCR base 0x1_2345_6789 (33 bits), random access.
        let field = AdaptationField {
            random_access_indicator: true,
            pcr: Some(Timestamp90k(0x1_2345_6789)),
        };
        let mut out = BytesMut::new();
        field.put(&mut out, 0);
        assert_eq!(field.size(), 8);
        assert_eq!(&out[..], [0x07, 0x50, 0x91, 0xa2, 0xb3, 0xc4, 0xfe, 0x00]);
    }

    #[test]
    fn stuffing_golden() {
        let none = AdaptationField::default();
        let mut out = BytesMut::new();
        none.put(&mut out, 0);
        assert!(out.is_empty());
        none.put(&mut out, 1);
        assert_eq!(&out[..], [0x00]);
        out.clear();
        none.put(&mut out, 2);
        assert_eq!(&out[..], [0x01, 0x00]);
        out.clear();
        none.put(&mut out, 5);
        assert_eq!(&out[..], [0x04, 0x00, 0xff, 0xff, 0xff]);
        out.clear();
        let rai = AdaptationField {
            random_access_indicator: true,
            pcr: None,
        };
        rai.put(&mut out, 3);
        assert_eq!(&out[..], [0x04, 0x40, 0xff, 0xff, 0xff]);
    }
}
