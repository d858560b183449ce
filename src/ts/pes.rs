//! The PES packet header: stream id, length, PTS and (when it differs) DTS.
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.6 (PES packet), §2.4.3.7 (semantics), Table 2-22
//! (stream_id).

use crate::media::Timestamp90k;
use crate::ts::error::TsError;

/// stream_id values of the elementary streams this muxer writes.
///
/// Spec: ISO/IEC 13818-1 Table 2-22.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamId {
    /// 0xC0: the first audio stream (ISO/IEC 13818-3/11172-3/13818-7/14496-3 audio).
    Audio = 0xc0,
    /// 0xE0: the first video stream.
    Video = 0xe0,
}

/// Largest PES header this writer produces: 6 fixed bytes, 3 flag bytes, PTS and DTS.
pub const MAX_HEADER_SIZE: usize = 19;

/// Largest PES_packet_length: a 16-bit field. A bounded PES (audio) must fit it; a video
/// PES may write 0, "neither specified nor bounded" (§2.4.3.7).
pub const MAX_PES_PACKET_LENGTH: usize = 0xffff;

/// A PES header built on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PesHeader {
    bytes: [u8; MAX_HEADER_SIZE],
    len: usize,
}

impl PesHeader {
    /// The header for a PES packet of `payload_len` bytes. `dts` is written only when it
    /// differs from `pts`. `bounded` writes the real PES_packet_length (audio); otherwise it
    /// is 0 (video, whose access units can exceed 64 KiB).
    pub fn new(
        stream_id: StreamId,
        pts: Timestamp90k,
        dts: Option<Timestamp90k>,
        payload_len: usize,
        bounded: bool,
    ) -> Result<PesHeader, TsError> {
        let dts = dts.filter(|&dts| dts.wire() != pts.wire());
        let header_data_length: usize = if dts.is_some() { 10 } else { 5 };
        let pes_packet_length = if bounded {
            let length = 3 + header_data_length + payload_len;
            if length > MAX_PES_PACKET_LENGTH {
                return Err(TsError::PesTooLong {
                    length,
                    limit: MAX_PES_PACKET_LENGTH,
                });
            }
            length as u16
        } else {
            0
        };
        let mut bytes = [0u8; MAX_HEADER_SIZE];
        bytes[..3].copy_from_slice(&[0, 0, 1]);
        bytes[3] = stream_id as u8;
        bytes[4..6].copy_from_slice(&pes_packet_length.to_be_bytes());
        // '10', PES_scrambling_control '00', PES_priority 0, data_alignment_indicator 1 (an
        // access unit starts right after the header), copyright 0, original_or_copy 0.
        bytes[6] = 0x84;
        // PTS_DTS_flags, no other optional fields.
        bytes[7] = if dts.is_some() { 0xc0 } else { 0x80 };
        bytes[8] = header_data_length as u8;
        match dts {
            Some(dts) => {
                put_timestamp(&mut bytes[9..14], 0b0011, pts);
                put_timestamp(&mut bytes[14..19], 0b0001, dts);
            }
            None => put_timestamp(&mut bytes[9..14], 0b0010, pts),
        }
        Ok(PesHeader {
            bytes,
            len: 9 + header_data_length,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A 33-bit timestamp in five bytes: a 4-bit prefix, then bits 32..30, 29..15 and 14..0,
/// each followed by a marker bit.
///
/// Spec: ISO/IEC 13818-1 §2.4.3.6 (PTS [32..30], marker_bit, ...).
fn put_timestamp(out: &mut [u8], prefix: u8, t: Timestamp90k) {
    let v = t.wire();
    out[0] = (prefix << 4) | (((v >> 30) as u8 & 0x07) << 1) | 1;
    out[1] = (v >> 22) as u8;
    out[2] = (((v >> 15) as u8) << 1) | 1;
    out[3] = (v >> 7) as u8;
    out[4] = ((v as u8) << 1) | 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.replace(' ', "")).unwrap()
    }

    #[test]
    fn audio_pts_only_golden() {
        // PTS 126000 (1.4 s), 371 + 7 bytes of ADTS frame: PES_packet_length 3 + 5 + 378.
        let header =
            PesHeader::new(StreamId::Audio, Timestamp90k(126_000), None, 378, true).unwrap();
        assert_eq!(
            header.as_bytes(),
            unhex("000001c0 0182 84 80 05 21 0007 d861")
        );
    }

    #[test]
    fn video_pts_and_dts_golden() {
        // DTS 126000, PTS 132000 (two frames later at 30 fps), unbounded length.
        let header = PesHeader::new(
            StreamId::Video,
            Timestamp90k(132_000),
            Some(Timestamp90k(126_000)),
            5000,
            false,
        )
        .unwrap();
        assert_eq!(
            header.as_bytes(),
            unhex("000001e0 0000 84 c0 0a 31 0009 0741 11 0007 d861")
        );
    }

    #[test]
    fn equal_dts_is_left_out_and_33_bits_wrap() {
        let t = Timestamp90k(0x1_ffff_ffff);
        let header = PesHeader::new(StreamId::Video, t, Some(t), 10, false).unwrap();
        assert_eq!(
            header.as_bytes(),
            unhex("000001e0 0000 84 80 05 2f ffff ffff")
        );
        // A timestamp past 2^33 is written modulo 2^33.
        let wrapped = PesHeader::new(
            StreamId::Audio,
            Timestamp90k(Timestamp90k::WIRE_MODULUS + 126_000),
            None,
            0,
            true,
        )
        .unwrap();
        assert_eq!(
            wrapped.as_bytes(),
            unhex("000001c0 0008 84 80 05 21 0007 d861")
        );
    }

    #[test]
    fn bounded_length_is_checked() {
        assert_eq!(
            PesHeader::new(StreamId::Audio, Timestamp90k(0), None, 0xffff, true),
            Err(TsError::PesTooLong {
                length: 0xffff + 8,
                limit: MAX_PES_PACKET_LENGTH
            })
        );
        assert!(PesHeader::new(StreamId::Audio, Timestamp90k(0), None, 0xffff - 8, true).is_ok());
        assert!(PesHeader::new(StreamId::Video, Timestamp90k(0), None, 1 << 20, false).is_ok());
    }
}
