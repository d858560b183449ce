//! Movie fragments: a `moof` describing one run of samples per track, then the `mdat` that
//! holds them, runs in the order given. One fragment is one LL-HLS part; a segment is the
//! concatenation of its parts' fragments.
//!
//! Spec: ISO/IEC 14496-12 §8.8.4 (moof), §8.8.5 (mfhd), §8.8.6 (traf), §8.8.7 (tfhd),
//! §8.8.8 (trun), §8.8.12 (tfdt), §8.8.3.1 (sample flags), §8.1.1 (mdat); RFC 8216 §3.3
//! (every traf has a tfdt; movie-fragment-relative addressing); ISO/IEC 23000-19 §7.5.16,
//! §7.5.17 (tfhd and trun of CMAF fragments).

use bytes::{BufMut, BytesMut};

use crate::mp4::boxes::{BOX_HEADER_SIZE, FULL_BOX_HEADER_SIZE, FourCc, OpenBox, all_or_nothing};
use crate::mp4::error::Mp4Error;
use crate::mp4::{MAX_SAMPLES_PER_RUN, MAX_TRACKS, TrackId};

/// One sample of a run: its duration and composition offset in the track's timescale, its
/// size in the mdat, and whether decoding can start at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleInfo {
    /// Decode time of the next sample minus this one's.
    pub duration: u32,
    /// Bytes of the sample in the mdat.
    pub size: u32,
    /// A sync sample: an IDR picture, or any audio frame.
    pub sync: bool,
    /// Composition (presentation) time minus decode time; negative values are allowed
    /// (trun version 1), so a caller may shift presentation to start at the decode time.
    pub composition_offset: i32,
}

/// The samples of one track in a fragment, consecutive in decode order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackRun<'a> {
    pub track: TrackId,
    /// Decode time of the first sample, in the track's timescale, from the start of the
    /// track's timeline.
    pub base_decode_time: u64,
    pub samples: &'a [SampleInfo],
}

/// What a fragment header holds, for a caller that sends the payloads itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Bytes of the moof box.
    pub moof_size: u32,
    /// Bytes of sample data the mdat header announces: the sum of every sample's size.
    pub payload_size: u32,
}

impl FragmentHeader {
    /// Bytes of the header written: the moof and the mdat's box header.
    pub fn header_size(&self) -> usize {
        self.moof_size as usize + MDAT_HEADER_SIZE
    }

    /// Bytes of the whole fragment once the payloads follow the header.
    pub fn total_size(&self) -> u64 {
        u64::from(self.moof_size) + MDAT_HEADER_SIZE as u64 + u64::from(self.payload_size)
    }
}

/// Size of the mdat header this writer uses: 32-bit size and type, no largesize.
pub const MDAT_HEADER_SIZE: usize = BOX_HEADER_SIZE;

/// Most sample bytes one fragment can carry: the mdat's 32-bit size counts its own header.
/// A 4 GiB fragment never happens here (a part is 0.2 s), so a larger one is refused
/// rather than written with a 64-bit largesize.
pub const MAX_FRAGMENT_PAYLOAD: u64 = u32::MAX as u64 - MDAT_HEADER_SIZE as u64;

/// tfhd flags: default-base-is-moof (0x020000). Data offsets count from the first byte of
/// the moof, and no base_data_offset is written (RFC 8216 §3.3 movie-fragment-relative
/// addressing; ISO/IEC 23000-19 §7.5.16).
///
/// Spec: ISO/IEC 14496-12 §8.8.7.1.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// trun flags: data-offset-present (0x000001), sample-duration-present (0x000100),
/// sample-size-present (0x000200), sample-flags-present (0x000400) and
/// sample-composition-time-offsets-present (0x000800). Every sample carries its four
/// fields, so no default in trex or tfhd is relied on.
///
/// Spec: ISO/IEC 14496-12 §8.8.8.1.
const TRUN_FLAGS: u32 = 0x00_0f01;

/// trun version 1: composition offsets are signed.
///
/// Spec: ISO/IEC 14496-12 §8.8.8.2.
const TRUN_VERSION_SIGNED_OFFSETS: u8 = 1;

/// Bytes each sample takes in the trun: duration, size, flags, composition offset.
const TRUN_SAMPLE_SIZE: usize = 16;

/// Sample flags of a sync sample: sample_depends_on 2 (does not depend on others), all
/// else 0 (sample_is_non_sync_sample 0).
///
/// The 32 bits are: reserved (4), is_leading (2), sample_depends_on (2),
/// sample_is_depended_on (2), sample_has_redundancy (2), sample_padding_value (3),
/// sample_is_non_sync_sample (1), sample_degradation_priority (16).
///
/// Spec: ISO/IEC 14496-12 §8.8.3.1, §8.6.4.3 (sample_depends_on values).
pub const SYNC_SAMPLE_FLAGS: u32 = 2 << 24;

/// Sample flags of a non-sync sample: sample_depends_on 1 (depends on others) and
/// sample_is_non_sync_sample 1.
///
/// Spec: ISO/IEC 14496-12 §8.8.3.1, §8.6.4.3.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 1 << 24 | 1 << 16;

/// Sizes of the boxes of a fragment, computed before anything is written.
const MFHD_SIZE: usize = FULL_BOX_HEADER_SIZE + 4;
const TFHD_SIZE: usize = FULL_BOX_HEADER_SIZE + 4;
const TFDT_SIZE: usize = FULL_BOX_HEADER_SIZE + 8;
/// trun without its samples: sample_count and data_offset.
const TRUN_FIXED_SIZE: usize = FULL_BOX_HEADER_SIZE + 8;

/// Bytes of the traf describing `samples` samples.
fn traf_size(samples: usize) -> usize {
    BOX_HEADER_SIZE + TFHD_SIZE + TFDT_SIZE + TRUN_FIXED_SIZE + samples * TRUN_SAMPLE_SIZE
}

/// The sample flags written for a sample.
fn sample_flags(sync: bool) -> u32 {
    if sync {
        SYNC_SAMPLE_FLAGS
    } else {
        NON_SYNC_SAMPLE_FLAGS
    }
}

/// Where each run's samples start, counted from the first byte of the moof, and the sizes
/// of the moof and the mdat payload, checked against the fields that hold them.
struct Layout {
    moof_size: u32,
    payload_size: u32,
    data_offsets: [i32; MAX_TRACKS],
}

/// Checks the runs and lays the fragment out. Runs without samples are left out of the
/// fragment (an empty trun describes nothing), but still count against [`MAX_TRACKS`] and
/// the duplicate check.
fn layout(runs: &[TrackRun]) -> Result<Layout, Mp4Error> {
    if runs.len() > MAX_TRACKS {
        return Err(Mp4Error::TooManyTracks {
            count: runs.len(),
            limit: MAX_TRACKS,
        });
    }
    let mut moof_size = BOX_HEADER_SIZE + MFHD_SIZE;
    for (i, run) in runs.iter().enumerate() {
        if runs[..i].iter().any(|r| r.track == run.track) {
            return Err(Mp4Error::DuplicateTrack { track: run.track });
        }
        if run.samples.len() > MAX_SAMPLES_PER_RUN {
            return Err(Mp4Error::TooManySamples {
                track: run.track,
                count: run.samples.len(),
                limit: MAX_SAMPLES_PER_RUN,
            });
        }
        if !run.samples.is_empty() {
            moof_size += traf_size(run.samples.len());
        }
    }
    if moof_size == BOX_HEADER_SIZE + MFHD_SIZE {
        return Err(Mp4Error::Empty {
            what: "a fragment needs a sample",
        });
    }
    // At most MAX_TRACKS runs of MAX_SAMPLES_PER_RUN samples: about 32 MiB, within u32.
    let moof_size = u32::try_from(moof_size).map_err(|_| Mp4Error::BoxTooLarge {
        kind: FourCc::new(b"moof"),
        size: moof_size as u64,
    })?;
    let mut data_offsets = [0; MAX_TRACKS];
    let mut payload: u64 = 0;
    for (run, data_offset) in runs.iter().zip(&mut data_offsets) {
        if run.samples.is_empty() {
            continue;
        }
        let offset = u64::from(moof_size) + MDAT_HEADER_SIZE as u64 + payload;
        *data_offset = i32::try_from(offset).map_err(|_| Mp4Error::DataOffsetTooLarge {
            track: run.track,
            offset,
        })?;
        payload += run.samples.iter().map(|s| u64::from(s.size)).sum::<u64>();
    }
    if payload > MAX_FRAGMENT_PAYLOAD {
        return Err(Mp4Error::BoxTooLarge {
            kind: FourCc::new(b"mdat"),
            size: payload + MDAT_HEADER_SIZE as u64,
        });
    }
    Ok(Layout {
        moof_size,
        payload_size: payload as u32,
        data_offsets,
    })
}

/// Writes a fragment's `moof` and the 8-byte header of the `mdat` that follows it.
///
/// The moof holds an mfhd with `sequence` (the caller's fragment counter: ISO/IEC
/// 14496-12 §8.8.5 wants it to increase from fragment to fragment) and, per run with
/// samples, a traf: tfhd with default-base-is-moof, tfdt version 1 (64-bit decode time),
/// and trun version 1 with the data offset and each sample's duration, size, flags and
/// signed composition offset. The mdat header is sized for every sample of every run.
///
/// The caller then appends the sample bytes: runs in the order given, samples in order,
/// so payloads can be copied once or sent as slices after the header.
///
/// On error nothing is written.
pub fn write_fragment_header(
    sequence: u32,
    runs: &[TrackRun],
    out: &mut BytesMut,
) -> Result<FragmentHeader, Mp4Error> {
    let layout = layout(runs)?;
    out.reserve(layout.moof_size as usize + MDAT_HEADER_SIZE);
    all_or_nothing(out, |out| {
        let moof = OpenBox::begin(out, FourCc::new(b"moof"));
        let mfhd = OpenBox::begin_full(out, FourCc::new(b"mfhd"), 0, 0);
        out.put_u32(sequence);
        mfhd.end(out)?;
        for (run, &data_offset) in runs.iter().zip(&layout.data_offsets) {
            if !run.samples.is_empty() {
                write_traf(out, run, data_offset)?;
            }
        }
        let moof_size = moof.end(out)?;
        debug_assert_eq!(
            moof_size, layout.moof_size,
            "moof size computed in layout()"
        );
        out.put_u32(layout.payload_size + MDAT_HEADER_SIZE as u32);
        out.put_slice(b"mdat");
        Ok(FragmentHeader {
            moof_size,
            payload_size: layout.payload_size,
        })
    })
}

/// Spec: ISO/IEC 14496-12 §8.8.6, §8.8.7, §8.8.12, §8.8.8.
fn write_traf(out: &mut BytesMut, run: &TrackRun, data_offset: i32) -> Result<(), Mp4Error> {
    let traf = OpenBox::begin(out, FourCc::new(b"traf"));
    let tfhd = OpenBox::begin_full(out, FourCc::new(b"tfhd"), 0, TFHD_DEFAULT_BASE_IS_MOOF);
    out.put_u32(run.track.get());
    tfhd.end(out)?;
    let tfdt = OpenBox::begin_full(out, FourCc::new(b"tfdt"), 1, 0);
    out.put_u64(run.base_decode_time);
    tfdt.end(out)?;
    let trun = OpenBox::begin_full(
        out,
        FourCc::new(b"trun"),
        TRUN_VERSION_SIGNED_OFFSETS,
        TRUN_FLAGS,
    );
    // At most MAX_SAMPLES_PER_RUN, checked in layout().
    out.put_u32(run.samples.len() as u32);
    out.put_i32(data_offset);
    for sample in run.samples {
        out.put_u32(sample.duration);
        out.put_u32(sample.size);
        out.put_u32(sample_flags(sample.sync));
        out.put_i32(sample.composition_offset);
    }
    trun.end(out)?;
    traf.end(out)?;
    Ok(())
}

/// [`write_fragment_header`], then the payloads copied in: one slice per sample, runs in
/// the order given, samples in order, each as long as its sample's size.
///
/// On error nothing is written.
pub fn write_fragment(
    sequence: u32,
    runs: &[TrackRun],
    payloads: &[&[u8]],
    out: &mut BytesMut,
) -> Result<FragmentHeader, Mp4Error> {
    let samples = runs.iter().flat_map(|run| run.samples);
    let count = samples.clone().count();
    if count != payloads.len() {
        return Err(Mp4Error::PayloadCount {
            samples: count,
            payloads: payloads.len(),
        });
    }
    for (index, (sample, payload)) in samples.zip(payloads).enumerate() {
        if sample.size as usize != payload.len() {
            return Err(Mp4Error::PayloadSize {
                index,
                declared: sample.size,
                actual: payload.len(),
            });
        }
    }
    let header = write_fragment_header(sequence, runs, out)?;
    out.reserve(header.payload_size as usize);
    for payload in payloads {
        out.put_slice(payload);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.split_whitespace().collect::<String>()).unwrap()
    }

    fn id(n: u32) -> TrackId {
        TrackId::new(n).unwrap()
    }

    fn sample(duration: u32, size: u32, sync: bool, composition_offset: i32) -> SampleInfo {
        SampleInfo {
            duration,
            size,
            sync,
            composition_offset,
        }
    }

    const VIDEO: [SampleInfo; 2] = [
        SampleInfo {
            duration: 3000,
            size: 5,
            sync: true,
            composition_offset: 6000,
        },
        SampleInfo {
            duration: 3000,
            size: 3,
            sync: false,
            composition_offset: -3000,
        },
    ];
    const AUDIO: [SampleInfo; 1] = [SampleInfo {
        duration: 1024,
        size: 4,
        sync: true,
        composition_offset: 0,
    }];

    fn two_runs() -> [TrackRun<'static>; 2] {
        [
            TrackRun {
                track: id(1),
                base_decode_time: (1 << 32) + 3003,
                samples: &VIDEO,
            },
            TrackRun {
                track: id(2),
                base_decode_time: 48_000,
                samples: &AUDIO,
            },
        ]
    }

    #[test]
    fn two_track_moof_golden() {
        let mut out = BytesMut::new();
        let header = write_fragment_header(7, &two_runs(), &mut out).unwrap();
        let expected = unhex(concat!(
            "000000c8 6d6f6f66",                   // size 8 + 16 + 96 + 80 = 200, 'moof'
            "00000010 6d666864 00000000 00000007", // 'mfhd', sequence_number 7
            "00000060 74726166",                   // size 8 + 16 + 20 + 52 = 96, 'traf'
            "00000010 74666864 00020000 00000001", // 'tfhd', default-base-is-moof, track 1
            "00000014 74666474 01000000",          // 'tfdt', version 1
            "00000001 00000bbb",                   // baseMediaDecodeTime 2^32 + 3003
            "00000034 7472756e 01000f01",          // size 52, 'trun', version 1, flags 0xf01
            "00000002 000000d0",                   // sample_count 2, data_offset 200 + 8
            "00000bb8 00000005 02000000 00001770", // 3000 ticks, 5 bytes, sync, +6000
            "00000bb8 00000003 01010000 fffff448", // 3000 ticks, 3 bytes, non-sync, -3000
            "00000050 74726166",                   // size 8 + 16 + 20 + 36 = 80, 'traf'
            "00000010 74666864 00020000 00000002", // 'tfhd', default-base-is-moof, track 2
            "00000014 74666474 01000000",          // 'tfdt', version 1
            "00000000 0000bb80",                   // baseMediaDecodeTime 48000
            "00000024 7472756e 01000f01",          // size 36, 'trun', version 1, flags 0xf01
            "00000001 000000d8",                   // sample_count 1, data_offset 208 + 5 + 3
            "00000400 00000004 02000000 00000000", // 1024 ticks, 4 bytes, sync, 0
            "00000014 6d646174",                   // size 8 + 12 = 20, 'mdat'
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
        assert_eq!(
            header,
            FragmentHeader {
                moof_size: 200,
                payload_size: 12
            }
        );
        assert_eq!(header.header_size(), out.len());
        assert_eq!(header.total_size(), 220);
    }

    #[test]
    fn write_fragment_appends_the_payloads_in_run_order() {
        let mut out = BytesMut::new();
        let payloads: [&[u8]; 3] = [b"IDR..", b"P..", b"aac!"];
        let header = write_fragment(7, &two_runs(), &payloads, &mut out).unwrap();
        let mut expected = BytesMut::new();
        write_fragment_header(7, &two_runs(), &mut expected).unwrap();
        expected.put_slice(b"IDR..P..aac!");
        assert_eq!(out, expected);
        assert_eq!(header.total_size(), out.len() as u64);
    }

    #[test]
    fn empty_runs_are_left_out() {
        let runs = [
            TrackRun {
                track: id(1),
                base_decode_time: 0,
                samples: &[],
            },
            two_runs()[1],
        ];
        let mut out = BytesMut::new();
        let header = write_fragment_header(1, &runs, &mut out).unwrap();
        assert_eq!(header.moof_size, 8 + 16 + 80);
        // The one traf is the audio one, and its data starts right after the mdat header.
        assert_eq!(out[24 + 8 + 12..24 + 8 + 16], 2u32.to_be_bytes());
        assert_eq!(
            out[24 + 8 + 16 + 20 + 16..24 + 8 + 16 + 20 + 20],
            112u32.to_be_bytes()
        );
    }

    #[test]
    fn sample_flags_follow_the_sync_flag() {
        // reserved 0000, is_leading 00, sample_depends_on 10 (independent), rest 0.
        assert_eq!(sample_flags(true), 0b0000_0010 << 24);
        // sample_depends_on 01 (dependent) and sample_is_non_sync_sample 1.
        assert_eq!(sample_flags(false), 0b0000_0001 << 24 | 0b1 << 16);
    }

    fn refused(runs: &[TrackRun], error: Mp4Error) {
        let mut out = BytesMut::from(&b"before"[..]);
        assert_eq!(write_fragment_header(1, runs, &mut out), Err(error));
        assert_eq!(&out[..], b"before", "nothing written");
    }

    #[test]
    fn bad_runs_are_refused_and_nothing_is_written() {
        refused(
            &[],
            Mp4Error::Empty {
                what: "a fragment needs a sample",
            },
        );
        let empty = TrackRun {
            track: id(3),
            base_decode_time: 0,
            samples: &[],
        };
        refused(
            &[empty],
            Mp4Error::Empty {
                what: "a fragment needs a sample",
            },
        );
        let [video, _] = two_runs();
        refused(&[video, video], Mp4Error::DuplicateTrack { track: id(1) });
        refused(
            &[
                video,
                empty,
                TrackRun {
                    samples: &[],
                    ..video
                },
            ],
            Mp4Error::DuplicateTrack { track: id(1) },
        );
        let runs: Vec<TrackRun> = (1..=MAX_TRACKS as u32 + 1)
            .map(|n| TrackRun {
                track: id(n),
                ..video
            })
            .collect();
        refused(
            &runs,
            Mp4Error::TooManyTracks {
                count: MAX_TRACKS + 1,
                limit: MAX_TRACKS,
            },
        );
        assert!(write_fragment_header(1, &runs[..MAX_TRACKS], &mut BytesMut::new()).is_ok());
        let many = vec![sample(1, 1, true, 0); MAX_SAMPLES_PER_RUN + 1];
        refused(
            &[TrackRun {
                samples: &many,
                ..video
            }],
            Mp4Error::TooManySamples {
                track: id(1),
                count: MAX_SAMPLES_PER_RUN + 1,
                limit: MAX_SAMPLES_PER_RUN,
            },
        );
        let most = &many[..MAX_SAMPLES_PER_RUN];
        let mut out = BytesMut::new();
        let header = write_fragment_header(
            1,
            &[TrackRun {
                samples: most,
                ..video
            }],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            header.moof_size as usize,
            8 + 16 + 8 + 16 + 20 + 20 + 16 * most.len()
        );
    }

    #[test]
    fn offsets_and_sizes_past_their_fields_are_refused() {
        let [video, audio] = two_runs();
        // 2 GiB in the first run: the second run's data_offset passes i32::MAX.
        let big = [sample(1, 0x8000_0000, true, 0)];
        refused(
            &[
                TrackRun {
                    samples: &big,
                    ..video
                },
                audio,
            ],
            Mp4Error::DataOffsetTooLarge {
                track: id(2),
                offset: 8 + 16 + 80 + 80 + 8 + 0x8000_0000, // moof with two one-sample trafs
            },
        );
        // The same 2 GiB last: its own offset is small, and the mdat fits 32 bits.
        let mut out = BytesMut::new();
        let header = write_fragment_header(
            1,
            &[
                audio,
                TrackRun {
                    samples: &big,
                    ..video
                },
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(header.payload_size, 0x8000_0004);
        assert_eq!(out[out.len() - 8..], unhex("8000000c 6d646174")[..]);
        // The largest payload an mdat with a 32-bit size can hold, then one byte more.
        let fits = [sample(1, u32::MAX - 8, true, 0)];
        assert!(
            write_fragment_header(
                1,
                &[TrackRun {
                    samples: &fits,
                    ..video
                }],
                &mut out
            )
            .is_ok()
        );
        let over = [sample(1, u32::MAX - 8, true, 0), sample(1, 1, false, 0)];
        refused(
            &[TrackRun {
                samples: &over,
                ..video
            }],
            Mp4Error::BoxTooLarge {
                kind: FourCc::new(b"mdat"),
                size: u64::from(u32::MAX) + 1,
            },
        );
    }

    #[test]
    fn payloads_must_match_the_sample_table() {
        let runs = two_runs();
        let mut out = BytesMut::from(&b"before"[..]);
        let two: [&[u8]; 2] = [b"IDR..", b"P.."];
        assert_eq!(
            write_fragment(1, &runs, &two, &mut out),
            Err(Mp4Error::PayloadCount {
                samples: 3,
                payloads: 2
            })
        );
        let wrong: [&[u8]; 3] = [b"IDR..", b"P...", b"aac!"];
        assert_eq!(
            write_fragment(1, &runs, &wrong, &mut out),
            Err(Mp4Error::PayloadSize {
                index: 1,
                declared: 3,
                actual: 4
            })
        );
        assert_eq!(&out[..], b"before");
    }
}
