//! Program specific information: the program association table and the program map
//! table of the one program a stream carries, each in one packet, with their CRC32.
//!
//! Spec: ISO/IEC 13818-1 §2.4.4.3 (PAT), §2.4.4.8 (PMT), §2.4.4.4 and Table 2-34
//! (stream_type), Annex A (CRC32).

use bytes::{BufMut, BytesMut};

use crate::ts::packet::{
    AdaptationFieldControl, ContinuityCounter, PACKET_BODY_SIZE, Pid, put_header,
};

/// transport_stream_id written in the PAT (a single-stream output has no use for another).
pub const TRANSPORT_STREAM_ID: u16 = 1;

/// program_number of the one program.
pub const PROGRAM_NUMBER: u16 = 1;

/// stream_type values of the elementary streams this muxer writes.
///
/// Spec: ISO/IEC 13818-1 Table 2-34.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    /// 0x0F: ISO/IEC 13818-7 audio with ADTS transport syntax.
    AacAdts = 0x0f,
    /// 0x1B: AVC video stream (ITU-T H.264 | ISO/IEC 14496-10).
    H264 = 0x1b,
}

/// One elementary stream listed in the PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementaryStream {
    pub stream_type: StreamType,
    pub elementary_pid: Pid,
}

/// Largest section this module writes: a PMT with two streams is 12 + 2 * 5 + 4 bytes.
const MAX_SECTION_SIZE: usize = 32;

/// Most elementary streams in the PMT: one video and one audio.
pub const MAX_STREAMS: usize = 2;

/// A PSI section built on the stack.
struct Section {
    bytes: [u8; MAX_SECTION_SIZE],
    len: usize,
}

impl Section {
    fn new() -> Section {
        Section {
            bytes: [0; MAX_SECTION_SIZE],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Fills in section_length (bytes after the field, CRC included) and appends the CRC.
    fn finish(&mut self) -> &[u8] {
        let section_length = (self.len - 3 + 4) as u16;
        // section_syntax_indicator '1', '0', reserved '11', then 12 bits of length.
        self.bytes[1] = 0xb0 | (section_length >> 8) as u8;
        self.bytes[2] = section_length as u8;
        let crc = crc32_mpeg2(&self.bytes[..self.len]);
        self.push(&crc.to_be_bytes());
        &self.bytes[..self.len]
    }
}

/// Writes one packet carrying the PAT: program 1 at `program_map_pid`.
///
/// Spec: ISO/IEC 13818-1 §2.4.4.3, Table 2-30.
pub fn put_pat(out: &mut BytesMut, program_map_pid: Pid, cc: ContinuityCounter) {
    let mut section = Section::new();
    // table_id 0x00, then section length (filled in), transport_stream_id, reserved '11',
    // version_number 0, current_next_indicator 1, section_number 0, last_section_number 0.
    section.push(&[0x00, 0, 0]);
    section.push(&TRANSPORT_STREAM_ID.to_be_bytes());
    section.push(&[0xc1, 0x00, 0x00]);
    section.push(&PROGRAM_NUMBER.to_be_bytes());
    section.push(&(0xe000 | program_map_pid.value()).to_be_bytes());
    put_section_packet(out, Pid::PAT, cc, section.finish());
}

/// Writes one packet carrying the PMT: the program's PCR_PID and its streams, no
/// descriptors. `streams` holds at most [`MAX_STREAMS`] entries.
///
/// Spec: ISO/IEC 13818-1 §2.4.4.8, Table 2-33.
pub fn put_pmt(
    out: &mut BytesMut,
    program_map_pid: Pid,
    pcr_pid: Pid,
    streams: &[ElementaryStream],
    cc: ContinuityCounter,
) {
    debug_assert!(streams.len() <= MAX_STREAMS);
    let mut section = Section::new();
    // table_id 0x02, section length (filled in), program_number, reserved '11',
    // version_number 0, current_next_indicator 1, section_number 0, last_section_number 0.
    section.push(&[0x02, 0, 0]);
    section.push(&PROGRAM_NUMBER.to_be_bytes());
    section.push(&[0xc1, 0x00, 0x00]);
    // reserved '111' + PCR_PID; reserved '1111' + program_info_length 0.
    section.push(&(0xe000 | pcr_pid.value()).to_be_bytes());
    section.push(&[0xf0, 0x00]);
    for stream in streams.iter().take(MAX_STREAMS) {
        section.push(&[stream.stream_type as u8]);
        section.push(&(0xe000 | stream.elementary_pid.value()).to_be_bytes());
        // reserved '1111' + ES_info_length 0.
        section.push(&[0xf0, 0x00]);
    }
    put_section_packet(out, program_map_pid, cc, section.finish());
}

/// One packet: header, pointer_field 0, the section, then 0xFF fill (which is how a
/// section packet is padded: §2.4.4.2, stuffing bytes after the last section).
fn put_section_packet(out: &mut BytesMut, pid: Pid, cc: ContinuityCounter, section: &[u8]) {
    put_header(out, pid, true, AdaptationFieldControl::PayloadOnly, cc);
    out.put_u8(0);
    out.put_slice(section);
    out.put_bytes(0xff, PACKET_BODY_SIZE - 1 - section.len());
}

/// The CRC-32 of PSI sections: polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no
/// reflection, no final XOR.
///
/// Spec: ISO/IEC 13818-1 Annex A.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::PACKET_SIZE;

    const PMT_PID: Pid = match Pid::new(0x1000) {
        Ok(pid) => pid,
        Err(_) => panic!(),
    };

    fn pid(v: u16) -> Pid {
        Pid::new(v).unwrap()
    }

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.replace(' ', "")).unwrap()
    }

    /// The packet as FFmpeg's mpegts muxer writes it (golden bytes taken from its output).
    fn assert_packet(out: &[u8], start: &str) {
        let start = unhex(start);
        assert_eq!(out.len(), PACKET_SIZE);
        assert_eq!(out[..start.len()], start[..]);
        assert!(out[start.len()..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn pat_golden() {
        let mut out = BytesMut::new();
        put_pat(&mut out, PMT_PID, ContinuityCounter::default());
        assert_packet(&out, "47400010 00 00b00d0001c10000 0001f000 2ab104b2");
    }

    #[test]
    fn pmt_video_and_audio_golden() {
        let mut out = BytesMut::new();
        let streams = [
            ElementaryStream {
                stream_type: StreamType::H264,
                elementary_pid: pid(0x100),
            },
            ElementaryStream {
                stream_type: StreamType::AacAdts,
                elementary_pid: pid(0x101),
            },
        ];
        put_pmt(
            &mut out,
            PMT_PID,
            pid(0x100),
            &streams,
            ContinuityCounter::default(),
        );
        assert_packet(
            &out,
            "47500010 00 02b0170001c10000 e100f000 1be100f000 0fe101f000 2f44b99b",
        );
    }

    #[test]
    fn pmt_video_only_golden() {
        let mut out = BytesMut::new();
        let streams = [ElementaryStream {
            stream_type: StreamType::H264,
            elementary_pid: pid(0x100),
        }];
        put_pmt(
            &mut out,
            PMT_PID,
            pid(0x100),
            &streams,
            ContinuityCounter::default(),
        );
        assert_packet(
            &out,
            "47500010 00 02b0120001c10000 e100f000 1be100f000 15bd4d56",
        );
    }

    #[test]
    fn pmt_audio_only_golden() {
        let mut out = BytesMut::new();
        let streams = [ElementaryStream {
            stream_type: StreamType::AacAdts,
            elementary_pid: pid(0x101),
        }];
        put_pmt(
            &mut out,
            PMT_PID,
            pid(0x101),
            &streams,
            ContinuityCounter::default(),
        );
        assert_packet(
            &out,
            "47500010 00 02b0120001c10000 e101f000 0fe101f000 ece2b094",
        );
    }

    #[test]
    fn crc_of_a_section_with_its_crc_is_zero() {
        let section = unhex("00b00d0001c100000001f0002ab104b2");
        assert_eq!(crc32_mpeg2(&section), 0);
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }
}
