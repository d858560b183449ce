//! What a recording reads back: its journal after any crash, and the timing of fragments.
//!
//! Input: a mode byte, then the bytes. Mode 0: a journal (JSON lines) and, in its first 8
//! bytes, the media file's length; it is read whole and cut at every byte (a crash may cut
//! it anywhere). Mode 1: a fragment (moof+mdat) or an init section.
//!
//! Properties: no panic; a journal read back never accounts for bytes beyond the media
//! file, its segments follow on one after the other, and closing its open segment keeps
//! that true; the playlist renders; a fragment whose timing reads back can be moved, and
//! reads back moved by exactly the shift, with the same durations.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_server::mp4::retime::{fragment_timing, track_clocks};
use rtmp_server::record::journal::{Journal, State};
use rtmp_server::record::playlist::render;

/// Longest journal cut at every byte (the cuts cost its length squared).
const MAX_CUT_INPUT: usize = 4096;

fn check(journal: Option<Journal>, media_len: u64) {
    let Some(mut j) = journal else { return };
    let mut follows = j.init.map_or(0, |i| i.end());
    for s in &j.segments {
        assert_eq!(s.span.at, follows, "segments follow on");
        follows = s.span.end();
    }
    assert!(j.bytes() <= media_len);
    j.close_open_segment();
    assert!(j.segments.iter().all(|s| s.span.end() <= media_len));
    assert!(j.bytes() <= media_len);
    let _ = render(&j, State::Interrupted);
    let _ = render(&j, State::Recording);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            let Some((len, text)) = rest.split_at_checked(8) else {
                return;
            };
            let media_len = u64::from_be_bytes(len.try_into().unwrap()) % (1 << 40);
            check(Journal::read(text, media_len), media_len);
            if text.len() <= MAX_CUT_INPUT {
                for cut in 0..text.len() {
                    check(Journal::read(&text[..cut], media_len), media_len);
                }
            }
        }
        _ => {
            let _ = track_clocks(rest);
            let fragment = Bytes::copy_from_slice(rest);
            let Ok(timing) = fragment_timing(&fragment) else {
                return;
            };
            let Ok([moof, tail]) = timing.moved(&fragment, |id| u64::from(id % 7) * 1000, 3)
            else {
                return;
            };
            let mut moved = moof.to_vec();
            moved.extend_from_slice(&tail);
            assert_eq!(moved.len(), fragment.len());
            let again = fragment_timing(&moved).expect("a moved fragment reads back");
            assert_eq!(again.tracks.len(), timing.tracks.len());
            for (a, b) in again.tracks.iter().zip(&timing.tracks) {
                assert_eq!(a.duration, b.duration);
                assert_eq!(a.decode_time, b.decode_time + u64::from(b.track_id % 7) * 1000);
            }
        }
    }
});
