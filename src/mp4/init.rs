//! The initialization segment: `ftyp` and a `moov` that describes every track and holds
//! no samples, with `mvex` announcing that the samples come in movie fragments.
//!
//! Spec: ISO/IEC 14496-12 §4.3 (ftyp), §8.2 (moov, mvhd), §8.3 (trak, tkhd), §8.4 (mdia,
//! mdhd, hdlr, minf), §8.4.5 (vmhd, smhd), §8.7 (dinf, dref, stsz, stsc, stco), §8.6.1
//! (stts), §8.5.2 (stsd), §8.8.1 to §8.8.3 (mvex, trex); RFC 8216 §3.3 (an fMP4 Media
//! Initialization Section); ISO/IEC 23000-19 §7.3.2.1, §7.5 (CMAF header boxes).

use bytes::{BufMut, BytesMut};

use crate::mp4::boxes::{FourCc, OpenBox, all_or_nothing};
use crate::mp4::error::Mp4Error;
use crate::mp4::sample_entry::{MediaKind, SampleEntry};
use crate::mp4::{MAX_TRACKS, TrackId};

/// One track of the presentation: its ID (the `traf`s of the fragments name it), its media
/// timescale (ticks per second of every duration, decode time and composition offset of its
/// samples) and its codec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    pub id: TrackId,
    pub timescale: u32,
    pub entry: SampleEntry,
}

/// ftyp major_brand `iso6`: the ISO base media file format edition that defines every box
/// and flag written here (trun version 1 with signed composition offsets, tfdt,
/// default-base-is-moof). RFC 8216 §3.3 asks an fMP4 Media Initialization Section for a
/// brand compatible with `iso6` or higher.
///
/// `cmfc` (the CMAF structural brand) is not claimed: a CMAF track file holds one track
/// and each CMAF fragment one `traf` (ISO/IEC 23000-19 §7.3.2.2), while this writer's
/// fragments carry every track of a stream in one `moof`, which HLS allows (RFC 8216 §3.3
/// asks only for a `trak` matching every `traf`).
///
/// Spec: ISO/IEC 14496-12 §4.3, Annex E.
pub const MAJOR_BRAND: FourCc = FourCc::new(b"iso6");

/// ftyp minor_version: 0 (informative only; no version of `iso6` is singled out).
pub const MINOR_VERSION: u32 = 0;

/// ftyp compatible_brands: `iso6` (the major brand listed again, as is usual) and `mp41`,
/// the MP4 file format (ISO/IEC 14496-14), which defines `mp4a`'s `esds`. FFmpeg's HLS
/// fMP4 output carries these two (with `iso5`). Chromium's MSE, which hls.js feeds, plays
/// this writer's output; players treat brands as information, not as a gate. A codec
/// binding that requires a brand of its own adds it after these
/// ([`SampleEntry::required_brand`]: `av01` for AV1).
///
/// Spec: ISO/IEC 14496-12 §4.3, Annex E; ISO/IEC 14496-14; AV1-ISOBMFF §2.1.
pub const COMPATIBLE_BRANDS: [FourCc; 2] = [FourCc::new(b"iso6"), FourCc::new(b"mp41")];

/// The movie timescale of mvhd. Only mvhd's duration (0 here) and edit lists (none) use
/// it; milliseconds is the common choice.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// The unity transformation matrix of mvhd and tkhd: {0x00010000, 0, 0, 0, 0x00010000, 0,
/// 0, 0, 0x40000000}.
///
/// Spec: ISO/IEC 14496-12 §8.2.2.3, §6.2.2.
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// tkhd flags: track_enabled (0x1) and track_in_movie (0x2).
///
/// Spec: ISO/IEC 14496-12 §8.3.2.3.
const TKHD_ENABLED_IN_MOVIE: u32 = 0x00_0003;

/// Full volume, 8.8 fixed point: mvhd's rate of play and an audio track's tkhd volume.
const FULL_VOLUME: u16 = 0x0100;

/// mdhd language "und" (undetermined): ISO 639-2/T code, each letter minus 0x60 in 5 bits.
///
/// Spec: ISO/IEC 14496-12 §8.4.2.3.
const LANGUAGE_UND: u16 =
    (((b'u' - 0x60) as u16) << 10) | (((b'n' - 0x60) as u16) << 5) | (b'd' - 0x60) as u16;

/// vmhd flags: 1, a fixed value.
///
/// Spec: ISO/IEC 14496-12 §8.4.5.2.
const VMHD_FLAGS: u32 = 1;

/// `url ` flags: 1, media data in the same file.
///
/// Spec: ISO/IEC 14496-12 §8.7.2.3.
const DREF_SELF_CONTAINED: u32 = 1;

/// Writes the init segment: `ftyp`, then `moov` with `mvhd`, one `trak` per track (in the
/// order given) and `mvex` with one `trex` per track, after the last `trak` (RFC 8216
/// §3.3). Durations are 0 (RFC 8216 §3.3: mvhd and tkhd durations of an fMP4 init
/// section are 0), and so are creation and modification times: the writer keeps no clock,
/// and equal inputs give equal bytes.
///
/// On error nothing is written.
pub fn write_init(tracks: &[TrackConfig], out: &mut BytesMut) -> Result<(), Mp4Error> {
    validate(tracks)?;
    all_or_nothing(out, |out| {
        write_ftyp(out, tracks)?;
        let moov = OpenBox::begin(out, FourCc::new(b"moov"));
        write_mvhd(out, next_track_id(tracks))?;
        for track in tracks {
            write_trak(out, track)?;
        }
        write_mvex(out, tracks)?;
        moov.end(out)?;
        Ok(())
    })
}

fn validate(tracks: &[TrackConfig]) -> Result<(), Mp4Error> {
    if tracks.is_empty() {
        return Err(Mp4Error::Empty {
            what: "an init segment needs a track",
        });
    }
    if tracks.len() > MAX_TRACKS {
        return Err(Mp4Error::TooManyTracks {
            count: tracks.len(),
            limit: MAX_TRACKS,
        });
    }
    for (i, track) in tracks.iter().enumerate() {
        if tracks[..i].iter().any(|t| t.id == track.id) {
            return Err(Mp4Error::DuplicateTrack { track: track.id });
        }
        if track.timescale == 0 {
            return Err(Mp4Error::TimescaleZero { track: track.id });
        }
        track.entry.validate(track.id)?;
    }
    Ok(())
}

/// mvhd's next_track_ID: one past the largest ID in use, or all ones when the largest is
/// already u32::MAX (the value that tells an editor to search for a free ID).
///
/// Spec: ISO/IEC 14496-12 §8.2.2.3.
fn next_track_id(tracks: &[TrackConfig]) -> u32 {
    let largest = tracks.iter().map(|t| t.id.get()).max().unwrap_or(0);
    largest.saturating_add(1)
}

/// ftyp: the major brand, and the compatible brands followed by each brand a track's
/// codec requires, once.
///
/// Spec: ISO/IEC 14496-12 §4.3.
fn write_ftyp(out: &mut BytesMut, tracks: &[TrackConfig]) -> Result<(), Mp4Error> {
    let ftyp = OpenBox::begin(out, FourCc::new(b"ftyp"));
    out.put_slice(&MAJOR_BRAND.0);
    out.put_u32(MINOR_VERSION);
    let mut brands = COMPATIBLE_BRANDS.to_vec();
    for brand in tracks.iter().filter_map(|t| t.entry.required_brand()) {
        if !brands.contains(&brand) {
            brands.push(brand);
        }
    }
    for brand in brands {
        out.put_slice(&brand.0);
    }
    ftyp.end(out)?;
    Ok(())
}

/// mvhd version 0 (32-bit times suffice for times and durations of 0).
///
/// Spec: ISO/IEC 14496-12 §8.2.2.
fn write_mvhd(out: &mut BytesMut, next_track_id: u32) -> Result<(), Mp4Error> {
    let mvhd = OpenBox::begin_full(out, FourCc::new(b"mvhd"), 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(MOVIE_TIMESCALE);
    out.put_u32(0); // duration: fragments carry every sample
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(FULL_VOLUME);
    out.put_u16(0); // reserved
    out.put_bytes(0, 8); // reserved[2]
    put_matrix(out);
    out.put_bytes(0, 24); // pre_defined[6]
    out.put_u32(next_track_id);
    mvhd.end(out)?;
    Ok(())
}

fn put_matrix(out: &mut BytesMut) {
    for value in UNITY_MATRIX {
        out.put_u32(value);
    }
}

/// Spec: ISO/IEC 14496-12 §8.3.1.
fn write_trak(out: &mut BytesMut, track: &TrackConfig) -> Result<(), Mp4Error> {
    let kind = track.entry.kind();
    let trak = OpenBox::begin(out, FourCc::new(b"trak"));
    write_tkhd(out, track.id, kind)?;
    let mdia = OpenBox::begin(out, FourCc::new(b"mdia"));
    write_mdhd(out, track.timescale)?;
    write_hdlr(out, kind)?;
    let minf = OpenBox::begin(out, FourCc::new(b"minf"));
    write_media_header(out, kind)?;
    write_dinf(out)?;
    write_stbl(out, &track.entry)?;
    minf.end(out)?;
    mdia.end(out)?;
    trak.end(out)?;
    Ok(())
}

/// tkhd version 0: enabled, in the movie, duration 0, layer 0, alternate_group 0, unity
/// matrix; volume 1.0 for audio and 0 for video; width and height as 16.16 fixed point
/// for video and 0 for audio.
///
/// Spec: ISO/IEC 14496-12 §8.3.2.
fn write_tkhd(out: &mut BytesMut, id: TrackId, kind: MediaKind) -> Result<(), Mp4Error> {
    let (volume, width, height) = match kind {
        MediaKind::Video { width, height } => (0, width, height),
        MediaKind::Audio => (FULL_VOLUME, 0, 0),
    };
    let tkhd = OpenBox::begin_full(out, FourCc::new(b"tkhd"), 0, TKHD_ENABLED_IN_MOVIE);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(id.get());
    out.put_u32(0); // reserved
    out.put_u32(0); // duration
    out.put_bytes(0, 8); // reserved[2]
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(volume);
    out.put_u16(0); // reserved
    put_matrix(out);
    out.put_u32(u32::from(width) << 16);
    out.put_u32(u32::from(height) << 16);
    tkhd.end(out)?;
    Ok(())
}

/// mdhd version 0: the media timescale, duration 0, language "und".
///
/// Spec: ISO/IEC 14496-12 §8.4.2.
fn write_mdhd(out: &mut BytesMut, timescale: u32) -> Result<(), Mp4Error> {
    let mdhd = OpenBox::begin_full(out, FourCc::new(b"mdhd"), 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(timescale);
    out.put_u32(0); // duration
    out.put_u16(LANGUAGE_UND); // pad bit 0, then three 5-bit letters
    out.put_u16(0); // pre_defined
    mdhd.end(out)?;
    Ok(())
}

/// hdlr: handler_type `vide` or `soun` and a name, null-terminated UTF-8 (the names FFmpeg
/// and most tools write, which players show as the track's name).
///
/// Spec: ISO/IEC 14496-12 §8.4.3.
fn write_hdlr(out: &mut BytesMut, kind: MediaKind) -> Result<(), Mp4Error> {
    let (handler_type, name): (&[u8; 4], &[u8]) = match kind {
        MediaKind::Video { .. } => (b"vide", b"VideoHandler\0"),
        MediaKind::Audio => (b"soun", b"SoundHandler\0"),
    };
    let hdlr = OpenBox::begin_full(out, FourCc::new(b"hdlr"), 0, 0);
    out.put_u32(0); // pre_defined
    out.put_slice(handler_type);
    out.put_bytes(0, 12); // reserved[3]
    out.put_slice(name);
    hdlr.end(out)?;
    Ok(())
}

/// vmhd (graphicsmode 0: copy, opcolor 0) for video, smhd (balance 0: centre) for audio.
///
/// Spec: ISO/IEC 14496-12 §8.4.5.2, §8.4.5.3.
fn write_media_header(out: &mut BytesMut, kind: MediaKind) -> Result<(), Mp4Error> {
    match kind {
        MediaKind::Video { .. } => {
            let vmhd = OpenBox::begin_full(out, FourCc::new(b"vmhd"), 0, VMHD_FLAGS);
            out.put_u16(0); // graphicsmode
            out.put_bytes(0, 6); // opcolor[3]
            vmhd.end(out)?;
        }
        MediaKind::Audio => {
            let smhd = OpenBox::begin_full(out, FourCc::new(b"smhd"), 0, 0);
            out.put_u16(0); // balance
            out.put_u16(0); // reserved
            smhd.end(out)?;
        }
    }
    Ok(())
}

/// dinf with a dref of one `url ` entry flagged self-contained: no external data
/// references (RFC 8216 §3.3).
///
/// Spec: ISO/IEC 14496-12 §8.7.1, §8.7.2.
fn write_dinf(out: &mut BytesMut) -> Result<(), Mp4Error> {
    let dinf = OpenBox::begin(out, FourCc::new(b"dinf"));
    let dref = OpenBox::begin_full(out, FourCc::new(b"dref"), 0, 0);
    out.put_u32(1); // entry_count
    OpenBox::begin_full(out, FourCc::new(b"url "), 0, DREF_SELF_CONTAINED).end(out)?;
    dref.end(out)?;
    dinf.end(out)?;
    Ok(())
}

/// stbl: the one sample entry, then empty sample tables (RFC 8216 §3.3: the sample count
/// of an init section's tracks is 0; ISO/IEC 23000-19 Table 3 lists stts, stsc, stsz and
/// stco as required in a CMAF header).
///
/// Spec: ISO/IEC 14496-12 §8.5.1, §8.5.2, §8.6.1.2, §8.7.3, §8.7.4, §8.7.5.
fn write_stbl(out: &mut BytesMut, entry: &SampleEntry) -> Result<(), Mp4Error> {
    let stbl = OpenBox::begin(out, FourCc::new(b"stbl"));
    let stsd = OpenBox::begin_full(out, FourCc::new(b"stsd"), 0, 0);
    out.put_u32(1); // entry_count
    entry.write(out)?;
    stsd.end(out)?;
    for kind in [b"stts", b"stsc"] {
        let table = OpenBox::begin_full(out, FourCc::new(kind), 0, 0);
        out.put_u32(0); // entry_count
        table.end(out)?;
    }
    let stsz = OpenBox::begin_full(out, FourCc::new(b"stsz"), 0, 0);
    out.put_u32(0); // sample_size: sizes given per sample
    out.put_u32(0); // sample_count
    stsz.end(out)?;
    let stco = OpenBox::begin_full(out, FourCc::new(b"stco"), 0, 0);
    out.put_u32(0); // entry_count
    stco.end(out)?;
    stbl.end(out)?;
    Ok(())
}

/// mvex with one trex per track: sample description 1, and no defaults (every fragment's
/// trun gives each sample's duration, size and flags). No mehd: a live stream's length is
/// not known.
///
/// Spec: ISO/IEC 14496-12 §8.8.1, §8.8.3.
fn write_mvex(out: &mut BytesMut, tracks: &[TrackConfig]) -> Result<(), Mp4Error> {
    let mvex = OpenBox::begin(out, FourCc::new(b"mvex"));
    for track in tracks {
        let trex = OpenBox::begin_full(out, FourCc::new(b"trex"), 0, 0);
        out.put_u32(track.id.get());
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(0); // default_sample_flags
        trex.end(out)?;
    }
    mvex.end(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.split_whitespace().collect::<String>()).unwrap()
    }

    fn id(n: u32) -> TrackId {
        TrackId::new(n).unwrap()
    }

    fn aac_track(n: u32) -> TrackConfig {
        TrackConfig {
            id: id(n),
            timescale: 48_000,
            entry: SampleEntry::Aac {
                sample_rate: 48_000,
                channels: 2,
                config: Bytes::from_static(&[0x11, 0x90]),
            },
        }
    }

    fn avc_track(n: u32) -> TrackConfig {
        TrackConfig {
            id: id(n),
            timescale: 90_000,
            entry: SampleEntry::Avc {
                width: 640,
                height: 360,
                record: Bytes::from(unhex("01 42 c0 1e ff e1 0004 6742c01e 01 0002 68ce")),
            },
        }
    }

    #[test]
    fn ftyp_golden() {
        let mut out = BytesMut::new();
        write_ftyp(&mut out, &[avc_track(1), aac_track(2)]).unwrap();
        let expected = unhex(concat!(
            "00000018 66747970", // size 24, 'ftyp'
            "69736f36",          // major_brand 'iso6'
            "00000000",          // minor_version 0
            "69736f36 6d703431", // compatible_brands 'iso6' 'mp41'
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn av1_tracks_add_the_av01_brand_once() {
        let av1 = |n| TrackConfig {
            id: id(n),
            timescale: 90_000,
            entry: SampleEntry::Av1 {
                width: 640,
                height: 360,
                record: Bytes::from_static(&[0x81, 0x04, 0x0c, 0x00]),
            },
        };
        let mut out = BytesMut::new();
        write_ftyp(&mut out, &[av1(1), aac_track(2), av1(3)]).unwrap();
        let expected = unhex(concat!(
            "0000001c 66747970",          // size 28, 'ftyp'
            "69736f36 00000000",          // major_brand 'iso6', minor_version 0
            "69736f36 6d703431 61763031", // 'iso6' 'mp41' 'av01'
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn avc1_stsd_golden() {
        let mut out = BytesMut::new();
        write_stbl(&mut out, &avc_track(1).entry).unwrap();
        let expected = unhex(concat!(
            "000000cb 7374626c",                  // size 8 + 127 + 68 = 203, 'stbl'
            "0000007f 73747364 00000000",         // size 16 + 111 = 127, 'stsd', version 0, flags 0
            "00000001",                           // entry_count 1
            "0000006f 61766331",                  // size 111, 'avc1'
            "000000000000 0001",                  // reserved[6], data_reference_index 1
            "0000 0000 000000000000000000000000", // pre_defined, reserved, pre_defined[3]
            "0280 0168",                          // width 640, height 360
            "00480000 00480000 00000000",         // 72 dpi, 72 dpi, reserved
            "0001",                               // frame_count 1
            "0000000000000000000000000000000000000000000000000000000000000000", // compressorname
            "0018 ffff",                          // depth 24, pre_defined -1
            "00000019 61766343",                  // size 25, 'avcC'
            "0142c01effe1 0004 6742c01e 01 0002 68ce", // the record as given
            "00000010 73747473 00000000 00000000", // 'stts', entry_count 0
            "00000010 73747363 00000000 00000000", // 'stsc', entry_count 0
            "00000014 7374737a 00000000 00000000 00000000", // 'stsz', sample_size 0, count 0
            "00000010 7374636f 00000000 00000000", // 'stco', entry_count 0
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn audio_only_init_golden() {
        let mut out = BytesMut::new();
        write_init(&[aac_track(1)], &mut out).unwrap();
        let expected = unhex(concat!(
            "00000018 66747970 69736f36 00000000 69736f36 6d703431", // ftyp as above
            "00000238 6d6f6f76",          // size 8 + 108 + 412 + 40 = 568, 'moov'
            "0000006c 6d766864 00000000", // size 108, 'mvhd', version 0, flags 0
            "00000000 00000000",          // creation_time, modification_time
            "000003e8 00000000",          // timescale 1000, duration 0
            "00010000 0100 0000",         // rate 1.0, volume 1.0, reserved
            "00000000 00000000",          // reserved[2]
            "00010000 00000000 00000000", // matrix: unity
            "00000000 00010000 00000000",
            "00000000 00000000 40000000",
            "000000000000000000000000000000000000000000000000", // pre_defined[6]
            "00000002",                                         // next_track_ID
            "0000019c 7472616b",                                // size 8 + 92 + 312 = 412, 'trak'
            "0000005c 746b6864 00000003", // size 92, 'tkhd', version 0, enabled | in movie
            "00000000 00000000",          // creation_time, modification_time
            "00000001 00000000 00000000", // track_ID 1, reserved, duration 0
            "00000000 00000000",          // reserved[2]
            "0000 0000 0100 0000",        // layer, alternate_group, volume 1.0, reserved
            "00010000 00000000 00000000", // matrix: unity
            "00000000 00010000 00000000",
            "00000000 00000000 40000000",
            "00000000 00000000",                    // width 0, height 0
            "00000138 6d646961",                    // size 8 + 32 + 45 + 227 = 312, 'mdia'
            "00000020 6d646864 00000000",           // size 32, 'mdhd', version 0
            "00000000 00000000",                    // creation_time, modification_time
            "0000bb80 00000000",                    // timescale 48000, duration 0
            "55c4 0000",                            // language 'und', pre_defined
            "0000002d 68646c72 00000000",           // size 45, 'hdlr', version 0
            "00000000 736f756e",                    // pre_defined, handler_type 'soun'
            "00000000 00000000 00000000",           // reserved[3]
            "536f756e6448616e646c657200",           // name "SoundHandler\0"
            "000000e3 6d696e66",                    // size 8 + 16 + 36 + 167 = 227, 'minf'
            "00000010 736d6864 00000000 0000 0000", // 'smhd', balance 0, reserved
            "00000024 64696e66",                    // size 36, 'dinf'
            "0000001c 64726566 00000000 00000001",  // size 28, 'dref', entry_count 1
            "0000000c 75726c20 00000001",           // size 12, 'url ', flags 1: self-contained
            "000000a7 7374626c",                    // size 8 + 91 + 68 = 167, 'stbl'
            "0000005b 73747364 00000000 00000001",  // size 16 + 75 = 91, 'stsd', entry_count 1
            "0000004b 6d703461", // size 75, 'mp4a' (byte layout in sample_entry.rs)
            "000000000000 0001 0000000000000000 0002 0010 0000 0000 bb800000",
            "00000027 65736473 00000000 0319 000000 0411 4015 000000 00000000 00000000",
            "05021190 060102",
            "00000010 73747473 00000000 00000000", // 'stts', entry_count 0
            "00000010 73747363 00000000 00000000", // 'stsc', entry_count 0
            "00000014 7374737a 00000000 00000000 00000000", // 'stsz'
            "00000010 7374636f 00000000 00000000", // 'stco'
            "00000028 6d766578",                   // size 40, 'mvex'
            "00000020 74726578 00000000",          // size 32, 'trex', version 0
            "00000001 00000001",                   // track_ID 1, default_sample_description_index 1
            "00000000 00000000 00000000",          // default duration, size, flags
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn video_track_header_carries_the_picture_size_in_16_16() {
        let mut out = BytesMut::new();
        write_tkhd(
            &mut out,
            id(7),
            MediaKind::Video {
                width: 1920,
                height: 1080,
            },
        )
        .unwrap();
        assert_eq!(out[20..24], 7u32.to_be_bytes(), "track_ID");
        assert_eq!(out[40..44], [0, 0, 0, 0], "layer, alternate_group");
        assert_eq!(out[44..46], [0, 0], "volume 0 for video");
        assert_eq!(out[48..52], 0x0001_0000u32.to_be_bytes(), "matrix starts");
        assert_eq!(
            out[84..92],
            unhex("07800000 04380000")[..],
            "1920.0 x 1080.0"
        );
    }

    #[test]
    fn next_track_id_follows_the_largest() {
        let tracks = [avc_track(5), aac_track(2)];
        assert_eq!(next_track_id(&tracks), 6);
        assert_eq!(next_track_id(&[aac_track(u32::MAX)]), u32::MAX);
    }

    #[test]
    fn bad_track_lists_are_refused_and_nothing_is_written() {
        let mut zero_timescale = aac_track(2);
        zero_timescale.timescale = 0;
        let mut bad_entry = avc_track(3);
        bad_entry.entry = SampleEntry::Avc {
            width: 640,
            height: 360,
            record: Bytes::new(),
        };
        let too_many: Vec<TrackConfig> = (1..=MAX_TRACKS as u32 + 1).map(aac_track).collect();
        let cases: [(&[TrackConfig], Mp4Error); 5] = [
            (
                &[],
                Mp4Error::Empty {
                    what: "an init segment needs a track",
                },
            ),
            (
                &too_many,
                Mp4Error::TooManyTracks {
                    count: MAX_TRACKS + 1,
                    limit: MAX_TRACKS,
                },
            ),
            (
                &[avc_track(1), aac_track(1)],
                Mp4Error::DuplicateTrack { track: id(1) },
            ),
            (
                &[avc_track(1), zero_timescale],
                Mp4Error::TimescaleZero { track: id(2) },
            ),
            (
                &[bad_entry],
                Mp4Error::InvalidSampleEntry {
                    track: id(3),
                    entry: FourCc::new(b"avc1"),
                    reason: "AVCDecoderConfigurationRecord shorter than 7 bytes",
                },
            ),
        ];
        for (tracks, error) in cases {
            let mut out = BytesMut::from(&b"before"[..]);
            assert_eq!(write_init(tracks, &mut out), Err(error));
            assert_eq!(&out[..], b"before");
        }
        let most: Vec<TrackConfig> = (1..=MAX_TRACKS as u32).map(aac_track).collect();
        assert_eq!(write_init(&most, &mut BytesMut::new()), Ok(()));
    }
}
