//! Checks on what the CMAF output makes: the order of its events, the target duration rule,
//! and the box framing of every part, and the Low-Latency window taking all of it.

use std::time::{Instant, SystemTime};

use rtmp_server::hls::ll_stream::{CmafEvent, LlStream};
use rtmp_server::hls::stream::{HlsSettings, StreamDir};
use rtmp_server::media::Duration90k;

/// One second on the 90 kHz clock.
const SECOND: u64 = 90_000;

/// Follows a stream of CMAF events and checks each as it comes.
pub struct CmafCheck {
    window: LlStream,
    init: bool,
    open: bool,
    target_duration: Option<u32>,
    last_sequence: Option<u32>,
    segments: usize,
}

impl Default for CmafCheck {
    fn default() -> CmafCheck {
        let dir = StreamDir {
            app: "live".into(),
            key: "fuzz".into(),
        };
        CmafCheck {
            window: LlStream::new(
                dir,
                HlsSettings::default(),
                Duration90k(18_000),
                SystemTime::UNIX_EPOCH,
            ),
            init: false,
            open: false,
            target_duration: None,
            last_sequence: None,
            segments: 0,
        }
    }
}

impl CmafCheck {
    /// A new publisher's media begins (its output starts over).
    pub fn new_publisher(&mut self) {
        self.open = false;
        self.window.begin_publisher(Instant::now(), &mut Vec::new());
    }

    pub fn check(&mut self, events: &[CmafEvent]) {
        for e in events {
            match e {
                CmafEvent::Init(data) => {
                    assert!(!self.open, "a new initialization section inside a segment");
                    assert_eq!(box_type(data, 0), Some(*b"ftyp"), "init starts with ftyp");
                    self.init = true;
                }
                CmafEvent::SegmentStart { .. } => {
                    assert!(self.init, "a segment before any initialization section");
                    assert!(!self.open, "a segment inside a segment");
                    self.open = true;
                }
                CmafEvent::Part { data, .. } => {
                    assert!(self.open, "a part outside a segment");
                    let sequence = check_fragment(data);
                    if let Some(last) = self.last_sequence {
                        assert!(sequence > last, "mfhd sequence {sequence} after {last}");
                    }
                    self.last_sequence = Some(sequence);
                }
                CmafEvent::SegmentEnd {
                    duration,
                    target_duration,
                } => {
                    assert!(self.open, "a segment end without its start");
                    self.open = false;
                    self.segments += 1;
                    let td = *self.target_duration.get_or_insert(*target_duration);
                    assert_eq!(*target_duration, td, "target duration changed");
                    let extinf = (duration.ticks() + SECOND / 2) / SECOND;
                    assert!(extinf <= u64::from(td), "EXTINF {duration} above {td}");
                }
            }
        }
        self.window
            .push(events.iter().cloned(), Instant::now(), SystemTime::now(), &mut Vec::new());
    }

    /// The publisher stopped.
    pub fn end(&mut self) {
        assert!(!self.open, "the end leaves a segment open");
        self.window.end(Instant::now(), &mut Vec::new());
        if self.segments > 0 {
            assert!(self.window.playlist(false).is_some(), "segments but no playlist");
        }
    }
}

/// The four-character type of the box at `at`.
fn box_type(data: &[u8], at: usize) -> Option<[u8; 4]> {
    data.get(at + 4..at + 8)?.try_into().ok()
}

/// A part is one `moof` and one `mdat`, whose sizes add up to it; returns the `mfhd`
/// sequence number.
fn check_fragment(data: &[u8]) -> u32 {
    let size = |at: usize| -> usize {
        u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize
    };
    assert_eq!(box_type(data, 0), Some(*b"moof"), "a part starts with moof");
    let moof = size(0);
    assert_eq!(box_type(data, 8), Some(*b"mfhd"), "mfhd first in moof");
    let sequence = u32::from_be_bytes(data[20..24].try_into().expect("4 bytes"));
    assert_eq!(box_type(data, moof), Some(*b"mdat"), "mdat after moof");
    assert_eq!(moof + size(moof), data.len(), "moof and mdat make the part");
    sequence
}
