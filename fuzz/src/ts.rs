//! Checks on the MPEG-TS segments a stream produced, written from the specification
//! rather than from the muxer, and backed by mpeg2ts as an independent reader.
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.2 (sync_byte, 188-byte packets), §2.4.3.3
//! (continuity_counter: +1 per packet with payload, unchanged for a packet without),
//! §2.4.3.5 (adaptation_field_length), §2.4.4 (PAT on PID 0, PMT).

use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::TsPacketReader;
use rtmp_server::ts::muxer::PMT_PID;

const PACKET_SIZE: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const PID_COUNT: usize = 1 << 13;

/// Segments larger than this are read by mpeg2ts only when they are a stream's first: its
/// reader costs several times what the remux itself does, and what it checks (PSI CRCs,
/// PES headers) is written the same way in every segment.
const FULL_READ_LIMIT: usize = 64 * 1024;

/// What the continuity counters of a stream's PIDs were after the last packet seen, over
/// all of its segments (the counters continue from one segment into the next).
pub struct Continuity {
    last: Vec<Option<u8>>,
}

impl Default for Continuity {
    fn default() -> Continuity {
        Continuity {
            last: vec![None; PID_COUNT],
        }
    }
}

impl Continuity {
    fn check(&mut self, pid: u16, has_payload: bool, cc: u8, at: At) {
        let slot = &mut self.last[usize::from(pid)];
        if let Some(last) = *slot {
            let expected = if has_payload { (last + 1) & 0x0f } else { last };
            assert_eq!(
                cc, expected,
                "{at}: PID {pid:#06x} continuity_counter {cc} after {last} (payload: {has_payload})"
            );
        }
        *slot = Some(cc);
    }
}

/// Where a packet is, for messages (formatted only when a check fails).
#[derive(Clone, Copy)]
struct At {
    segment: usize,
    packet: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {} packet {}", self.segment, self.packet)
    }
}

/// Checks one segment's bytes: whole 188-byte packets that each start with the sync byte,
/// PAT then PMT first, well-formed headers and adaptation field lengths, continuity
/// counters that continue `continuity`, and that mpeg2ts reads every packet and PES (of
/// the first segment and of any up to [`FULL_READ_LIMIT`]).
pub fn check_segment(data: &[u8], continuity: &mut Continuity, segment: usize) {
    assert_eq!(
        data.len() % PACKET_SIZE,
        0,
        "segment {segment}: {} bytes is not a whole number of packets",
        data.len()
    );
    assert!(
        data.len() >= 2 * PACKET_SIZE,
        "segment {segment}: no room for PAT and PMT"
    );
    for (i, p) in data.chunks_exact(PACKET_SIZE).enumerate() {
        let at = At { segment, packet: i };
        assert_eq!(p[0], SYNC_BYTE, "{at}: sync byte");
        assert_eq!(p[1] & 0x80, 0, "{at}: transport_error_indicator");
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        assert_eq!(p[3] >> 6, 0, "{at}: transport_scrambling_control");
        let control = (p[3] >> 4) & 0x03;
        assert_ne!(
            control, 0,
            "{at}: adaptation_field_control '00' is reserved"
        );
        let has_adaptation = control & 0x02 != 0;
        let has_payload = control & 0x01 != 0;
        if has_adaptation {
            let length = usize::from(p[4]);
            if has_payload {
                assert!(length <= 182, "{at}: adaptation_field_length {length}");
            } else {
                assert_eq!(length, 183, "{at}: adaptation-only packet");
            }
        }
        match i {
            0 => assert!(
                pid == PAT_PID && pusi,
                "{at}: a segment starts with the PAT"
            ),
            1 => assert!(
                pid == PMT_PID.value() && pusi,
                "{at}: the PMT follows the PAT"
            ),
            _ => {}
        }
        continuity.check(pid, has_payload, p[3] & 0x0f, at);
    }

    if segment > 0 && data.len() > FULL_READ_LIMIT {
        return;
    }
    // The PES reader reads every TS packet (PSI tables with their CRCs, adaptation fields)
    // on its way to the PES packets.
    let mut pes = PesPacketReader::new(TsPacketReader::new(data));
    loop {
        match pes.read_pes_packet() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("segment {segment}: mpeg2ts cannot read a PES: {e}"),
        }
    }
}
