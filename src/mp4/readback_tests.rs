//! The writer's output read back by two independent parsers: `mp4-atom` (init segment and
//! fragments, every field) and `mp4parse` (Firefox's parser, the init segment as a player
//! sees it), plus a property test over random sample tables. The codecs past H.264 and AAC
//! are also read by ffprobe, which decodes one real sample of each.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use mp4_atom::{Codec, Decode, Ftyp, Mdat, Moof, Moov};

use super::*;

fn id(n: u32) -> TrackId {
    TrackId::new(n).unwrap()
}

/// A High 4.0 record as x264 writes it for 640x360: SPS, PPS, then the High-profile
/// extension (chroma_format 1, 8-bit luma and chroma, no SPS extensions).
fn avc_record() -> Bytes {
    Bytes::from(
        hex::decode(
            concat!(
                "01 64 00 1e ff",
                "e1 0019 6764001eacd940a02ff9610000030001000003003c0f162d96",
                "01 0006 68ebe3cb22c0",
                "fdf8f800",
            )
            .replace(' ', ""),
        )
        .unwrap(),
    )
}

/// AAC-LC, 48 kHz, stereo.
const ASC: [u8; 2] = [0x11, 0x90];

fn two_tracks() -> Vec<TrackConfig> {
    vec![
        TrackConfig {
            id: id(1),
            timescale: 90_000,
            entry: SampleEntry::Avc {
                width: 640,
                height: 360,
                record: avc_record(),
            },
        },
        TrackConfig {
            id: id(2),
            timescale: 48_000,
            entry: SampleEntry::Aac {
                sample_rate: 48_000,
                channels: 2,
                config: Bytes::from_static(&ASC),
            },
        },
    ]
}

fn init_bytes(tracks: &[TrackConfig]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_init(tracks, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn init_segment_reads_back_with_mp4_atom() {
    let tracks = two_tracks();
    let bytes = init_bytes(&tracks);
    let mut buf = &bytes[..];
    let ftyp = Ftyp::decode(&mut buf).unwrap();
    assert_eq!(ftyp.major_brand, b"iso6".into());
    assert_eq!(ftyp.minor_version, 0);
    assert_eq!(ftyp.compatible_brands, [b"iso6".into(), b"mp41".into()]);
    let moov = Moov::decode(&mut buf).unwrap();
    assert!(buf.is_empty(), "ftyp and moov only");

    assert_eq!(moov.mvhd.timescale, 1000);
    assert_eq!(moov.mvhd.duration, 0);
    assert_eq!(moov.mvhd.next_track_id, 3);
    assert_eq!(moov.mvhd.rate.integer(), 1);
    assert_eq!(moov.mvhd.volume.integer(), 1);
    assert_eq!(moov.trak.len(), 2);

    let video = &moov.trak[0];
    assert_eq!(video.tkhd.track_id, 1);
    assert!(video.tkhd.enabled && video.tkhd.in_movie);
    assert_eq!(video.tkhd.duration, 0);
    assert_eq!(
        (video.tkhd.width.integer(), video.tkhd.height.integer()),
        (640, 360)
    );
    assert_eq!(video.tkhd.volume.integer(), 0);
    assert_eq!(video.mdia.mdhd.timescale, 90_000);
    assert_eq!(video.mdia.mdhd.duration, 0);
    assert_eq!(video.mdia.mdhd.language, "und");
    assert_eq!(video.mdia.hdlr.handler, b"vide".into());
    assert_eq!(video.mdia.hdlr.name, "VideoHandler");
    assert!(video.mdia.minf.vmhd.is_some() && video.mdia.minf.smhd.is_none());
    assert_eq!(video.mdia.minf.dinf.dref.entries.len(), 1);
    let stbl = &video.mdia.minf.stbl;
    assert!(stbl.stts.entries.is_empty() && stbl.stsc.entries.is_empty());
    assert!(
        matches!(&stbl.stsz.samples, mp4_atom::StszSamples::Different { sizes } if sizes.is_empty()),
        "{:?}",
        stbl.stsz
    );
    assert_eq!(stbl.stco.as_ref().map(|s| s.entries.len()), Some(0));
    let [Codec::Avc1(avc1)] = &stbl.stsd.codecs[..] else {
        panic!("one avc1 entry: {:?}", stbl.stsd.codecs);
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (640, 360));
    assert_eq!(avc1.visual.data_reference_index, 1);
    assert_eq!(avc1.visual.depth, 24);
    let record = avc_record();
    assert_eq!(avc1.avcc.configuration_version, 1);
    assert_eq!(avc1.avcc.avc_profile_indication, 0x64);
    assert_eq!(avc1.avcc.avc_level_indication, 0x1e);
    assert_eq!(avc1.avcc.length_size, 4);
    assert_eq!(avc1.avcc.sequence_parameter_sets, [record[8..33].to_vec()]);
    assert_eq!(avc1.avcc.picture_parameter_sets, [record[36..42].to_vec()]);

    let audio = &moov.trak[1];
    assert_eq!(audio.tkhd.track_id, 2);
    assert_eq!(audio.tkhd.volume.integer(), 1);
    assert_eq!(
        (audio.tkhd.width.integer(), audio.tkhd.height.integer()),
        (0, 0)
    );
    assert_eq!(audio.mdia.mdhd.timescale, 48_000);
    assert_eq!(audio.mdia.hdlr.handler, b"soun".into());
    assert_eq!(audio.mdia.hdlr.name, "SoundHandler");
    assert!(audio.mdia.minf.smhd.is_some() && audio.mdia.minf.vmhd.is_none());
    let [Codec::Mp4a(mp4a)] = &audio.mdia.minf.stbl.stsd.codecs[..] else {
        panic!("one mp4a entry");
    };
    assert_eq!(mp4a.audio.channel_count, 2);
    assert_eq!(mp4a.audio.sample_size, 16);
    assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
    let es = &mp4a.esds.es_desc;
    assert_eq!(es.es_id, 0);
    assert_eq!(es.dec_config.object_type_indication, 0x40);
    assert_eq!(es.dec_config.stream_type, 5);
    assert_eq!(es.dec_config.up_stream, 0);
    let dsi = es
        .dec_config
        .dec_specific
        .as_ref()
        .expect("DecoderSpecificInfo");
    assert_eq!(dsi.raw, ASC);
    assert_eq!((dsi.profile, dsi.freq_index, dsi.chan_conf), (2, 3, 2));

    let mvex = moov.mvex.expect("mvex");
    assert!(mvex.mehd.is_none());
    let trex: Vec<_> = mvex
        .trex
        .iter()
        .map(|t| (t.track_id, t.default_sample_description_index))
        .collect();
    assert_eq!(trex, [(1, 1), (2, 1)]);
    assert!(mvex.trex.iter().all(|t| t.default_sample_duration == 0
        && t.default_sample_size == 0
        && t.default_sample_flags == 0));
}

#[test]
fn init_segment_reads_back_with_mp4parse() {
    let tracks = two_tracks();
    let bytes = init_bytes(&tracks);
    let context = mp4parse::read_mp4(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(context.timescale, Some(mp4parse::MediaTimeScale(1000)));
    assert!(context.mvex.is_some(), "fragmented");
    assert_eq!(context.tracks.len(), 2);

    let video = &context.tracks[0];
    assert_eq!(video.track_type, mp4parse::TrackType::Video);
    assert_eq!(video.track_id, Some(1));
    assert_eq!(video.timescale.map(|t| t.0), Some(90_000));
    let tkhd = video.tkhd.as_ref().unwrap();
    assert_eq!((tkhd.width, tkhd.height), (640 << 16, 360 << 16));
    assert!(!tkhd.disabled);
    assert_eq!(tkhd.duration, 0);
    let stsd = video.stsd.as_ref().unwrap();
    let [mp4parse::SampleEntry::Video(entry)] = &stsd.descriptions[..] else {
        panic!("one video entry");
    };
    assert_eq!(entry.codec_type, mp4parse::CodecType::H264);
    assert_eq!((entry.width, entry.height), (640, 360));
    let mp4parse::VideoCodecSpecific::AVCConfig(record) = &entry.codec_specific else {
        panic!("avcC");
    };
    assert_eq!(record[..], avc_record()[..], "the record, byte for byte");

    let audio = &context.tracks[1];
    assert_eq!(audio.track_type, mp4parse::TrackType::Audio);
    assert_eq!(audio.track_id, Some(2));
    assert_eq!(audio.timescale.map(|t| t.0), Some(48_000));
    let stsd = audio.stsd.as_ref().unwrap();
    let [mp4parse::SampleEntry::Audio(entry)] = &stsd.descriptions[..] else {
        panic!("one audio entry");
    };
    assert_eq!(entry.codec_type, mp4parse::CodecType::AAC);
    assert_eq!(entry.channelcount, 2);
    assert_eq!(entry.samplesize, 16);
    assert_eq!(entry.samplerate, 48_000.0);
    let mp4parse::AudioCodecSpecific::ES_Descriptor(es) = &entry.codec_specific else {
        panic!("esds");
    };
    assert_eq!(es.audio_codec, mp4parse::CodecType::AAC);
    assert_eq!(es.audio_object_type, Some(2));
    assert_eq!(es.audio_sample_rate, Some(48_000));
    assert_eq!(es.audio_channel_count, Some(2));
    assert_eq!(es.decoder_specific_data[..], ASC);
}

#[test]
fn a_single_audio_track_init_reads_back() {
    let tracks = &two_tracks()[1..];
    let bytes = init_bytes(tracks);
    let context = mp4parse::read_mp4(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(context.tracks.len(), 1);
    assert_eq!(context.tracks[0].track_id, Some(2));
    let mut buf = &bytes[..];
    Ftyp::decode(&mut buf).unwrap();
    let moov = Moov::decode(&mut buf).unwrap();
    assert_eq!(moov.mvhd.next_track_id, 3);
}

/// What a parsed fragment says: per traf, (track, base decode time, data offset, samples).
type ParsedRun = (u32, u64, i32, Vec<SampleInfo>);

/// Parses one moof + mdat with mp4-atom, checks the structure every fragment must have,
/// and returns the sequence number, the runs and the payload of each run located through
/// its data offset.
fn parse_fragment(bytes: &[u8]) -> (u32, Vec<ParsedRun>, Vec<Vec<u8>>) {
    let mut buf = bytes;
    let moof = Moof::decode(&mut buf).unwrap();
    let moof_size = bytes.len() - buf.len();
    let mdat = Mdat::decode(&mut buf).unwrap();
    assert!(buf.is_empty(), "moof and mdat only");
    let mut runs = Vec::new();
    let mut payloads = Vec::new();
    let mut next_offset = moof_size + 8;
    for traf in &moof.traf {
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(traf.tfhd.sample_description_index, None);
        assert_eq!(traf.tfhd.default_sample_flags, None);
        let [trun] = &traf.trun[..] else {
            panic!("one trun per traf");
        };
        let data_offset = trun.data_offset.expect("data offset");
        assert_eq!(data_offset as usize, next_offset, "runs follow each other");
        let samples: Vec<SampleInfo> = trun
            .samples
            .iter()
            .map(|e| {
                let flags = e.flags.expect("per-sample flags");
                let sync = match flags {
                    0x0200_0000 => true,
                    0x0101_0000 => false,
                    other => panic!("unexpected sample flags {other:#010x}"),
                };
                SampleInfo {
                    duration: e.duration.expect("per-sample duration"),
                    size: e.size.expect("per-sample size"),
                    sync,
                    composition_offset: i32::try_from(e.cts.expect("per-sample offset")).unwrap(),
                }
            })
            .collect();
        let len: usize = samples.iter().map(|s| s.size as usize).sum();
        let start = data_offset as usize;
        payloads.push(bytes[start..start + len].to_vec());
        next_offset += len;
        let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
        runs.push((traf.tfhd.track_id, tfdt, data_offset, samples));
    }
    assert_eq!(
        moof_size + 8 + mdat.data.len(),
        next_offset,
        "mdat holds every run"
    );
    (moof.mfhd.sequence_number, runs, payloads)
}

#[test]
fn a_two_track_fragment_reads_back_with_mp4_atom() {
    let video = [
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
    let audio = [SampleInfo {
        duration: 1024,
        size: 4,
        sync: true,
        composition_offset: 0,
    }];
    let runs = [
        TrackRun {
            track: id(1),
            base_decode_time: (1 << 32) + 3003,
            samples: &video,
        },
        TrackRun {
            track: id(2),
            base_decode_time: 48_000,
            samples: &audio,
        },
    ];
    let payloads: [&[u8]; 3] = [b"IDR..", b"P..", b"aac!"];
    let mut out = BytesMut::new();
    let header = write_fragment(7, &runs, &payloads, &mut out).unwrap();
    assert_eq!(header.total_size(), out.len() as u64);
    let (sequence, parsed, data) = parse_fragment(&out);
    assert_eq!(sequence, 7);
    assert_eq!(
        parsed,
        [
            (1, (1 << 32) + 3003, 208, video.to_vec()),
            (2, 48_000, 216, audio.to_vec())
        ]
    );
    assert_eq!(data, [b"IDR..P..".to_vec(), b"aac!".to_vec()]);
}

/// A small, replayable generator (SplitMix64): the property test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly small values, sometimes the extremes of the type.
    fn u32_edgy(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => u32::MAX,
            2 => self.next() as u32,
            _ => self.below(4000) as u32,
        }
    }

    fn i32_edgy(&mut self) -> i32 {
        match self.below(8) {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => self.next() as i32,
            _ => self.below(12_000) as i32 - 6000,
        }
    }
}

/// One random fragment: up to [`MAX_TRACKS`] runs with distinct track IDs, some of them
/// empty, random 64-bit decode times, durations, signed offsets and sync flags, small
/// payloads. Written with `write_fragment`, parsed back, compared.
fn check_random_fragment(seed: u64) {
    let mut rng = Rng(seed);
    let most_runs = if rng.below(10) == 0 { MAX_TRACKS } else { 4 };
    let run_count = 1 + rng.below(most_runs as u64) as usize;
    let mut ids: Vec<u32> = Vec::new();
    while ids.len() < run_count {
        let candidate = match rng.below(10) {
            0 => u32::MAX,
            _ => 1 + rng.below(1000) as u32,
        };
        if !ids.contains(&candidate) {
            ids.push(candidate);
        }
    }
    let tables: Vec<(u64, Vec<SampleInfo>)> = ids
        .iter()
        .map(|_| {
            let count = match rng.below(6) {
                0 => 0,
                1 => rng.below(400) as usize,
                _ => rng.below(30) as usize,
            };
            let base = match rng.below(4) {
                0 => rng.next(),
                _ => rng.below(1 << 40),
            };
            let samples = (0..count)
                .map(|_| SampleInfo {
                    duration: rng.u32_edgy(),
                    size: {
                        let most = if rng.below(20) == 0 { 5000 } else { 40 };
                        rng.below(most) as u32
                    },
                    sync: rng.below(3) == 0,
                    composition_offset: rng.i32_edgy(),
                })
                .collect();
            (base, samples)
        })
        .collect();
    let runs: Vec<TrackRun> = ids
        .iter()
        .zip(&tables)
        .map(|(&track, (base, samples))| TrackRun {
            track: id(track),
            base_decode_time: *base,
            samples,
        })
        .collect();
    let payloads: Vec<Vec<u8>> = tables
        .iter()
        .flat_map(|(_, samples)| samples)
        .map(|s| (0..s.size).map(|_| rng.next() as u8).collect())
        .collect();
    let slices: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    let sequence = rng.next() as u32;

    let mut out = BytesMut::from(&b"prefix"[..]);
    let result = write_fragment(sequence, &runs, &slices, &mut out);
    if payloads.is_empty() {
        assert_eq!(
            result,
            Err(Mp4Error::Empty {
                what: "a fragment needs a sample"
            }),
            "seed {seed:#x}"
        );
        assert_eq!(&out[..], b"prefix", "seed {seed:#x}: nothing written");
        return;
    }
    let header = result.unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
    let fragment = &out[6..];
    assert_eq!(header.total_size(), fragment.len() as u64, "seed {seed:#x}");
    let (parsed_sequence, parsed, data) = parse_fragment(fragment);
    assert_eq!(parsed_sequence, sequence, "seed {seed:#x}");
    let expected: Vec<(u32, u64, Vec<SampleInfo>)> = runs
        .iter()
        .filter(|r| !r.samples.is_empty())
        .map(|r| (r.track.get(), r.base_decode_time, r.samples.to_vec()))
        .collect();
    let got: Vec<(u32, u64, Vec<SampleInfo>)> = parsed
        .into_iter()
        .map(|(track, base, _, samples)| (track, base, samples))
        .collect();
    assert_eq!(got, expected, "seed {seed:#x}");
    let expected_data: Vec<Vec<u8>> = runs
        .iter()
        .filter(|r| !r.samples.is_empty())
        .scan(payloads.iter(), |rest, run| {
            Some(
                rest.by_ref()
                    .take(run.samples.len())
                    .flatten()
                    .copied()
                    .collect(),
            )
        })
        .collect();
    assert_eq!(data, expected_data, "seed {seed:#x}");
}

/// Random sample tables written and parsed back equal. Replay one case with
/// `MP4_PBT_SEED=0x... cargo test --lib mp4::readback_tests`.
#[test]
fn random_fragments_read_back_equal() {
    if let Ok(seed) = std::env::var("MP4_PBT_SEED") {
        let seed = u64::from_str_radix(seed.trim_start_matches("0x"), 16).expect("hex seed");
        check_random_fragment(seed);
        return;
    }
    let mut seeds = Rng(0x6d70_345f_7062_7421);
    for _ in 0..300 {
        check_random_fragment(seeds.next());
    }
}

/// One codec of the newer sample entries, with real configuration records and one real
/// sample taken from FFmpeg 9's MP4 output of a 1-second encode (a 128x72 flat-colour
/// picture; silence): the entry, the track's timescale, the sample and its duration, and
/// what ffprobe says of the stream (`key=value` as `-show_entries` prints them).
struct CodecCase {
    entry: SampleEntry,
    timescale: u32,
    sample: Vec<u8>,
    duration: u32,
    probe: &'static [&'static str],
}

fn unhex(spaced: &str) -> Vec<u8> {
    hex::decode(spaced.split_whitespace().collect::<String>()).unwrap()
}

/// hvcC of libx265 (Main, level 3.0) for 128x72: VPS, SPS and PPS arrays.
const HEVC_RECORD: &str = concat!(
    "0101600000009000000000001ef000fcfdf8f800000f03",
    "a00001 0018 40010c01ffff01600000030090000003000003001e959809",
    "a10001 0029 42010101600000030090000003000003001ea010204965959a4932bc05a02000000300200000030321",
    "a20001 0007 4401c172b42240",
);

/// av1C of libsvtav1 (Main, level 2.0) for 128x72, with its sequence header OBU.
const AV1_RECORD: &str = "81000c00 0a0b0200000559bfc700be0010";

/// libopus's dOps for stereo: Version 0, 2 channels, pre-skip 312, 48 kHz input, gain 0,
/// family 0.
const OPUS_DOPS: &str = "00 02 0138 0000bb80 0000 00";

/// The FLAC encoder's only metadata block for mono 16-bit 44.1 kHz: STREAMINFO, flagged
/// last.
const FLAC_METADATA: &str =
    "80000022 0400040000000b00000c0ac440f00000ac44e9ded829730eccd2d0273d7cc06be58c";

fn codec_cases() -> Vec<CodecCase> {
    let video = |entry, sample: &str, probe| CodecCase {
        entry,
        timescale: 90_000,
        sample: unhex(sample),
        duration: 3600,
        probe,
    };
    let audio = |entry, timescale, sample: &str, duration, probe| CodecCase {
        entry,
        timescale,
        sample: unhex(sample),
        duration,
        probe,
    };
    let ac3_frame = concat!(
        "0b773f11004043e106f00108080821010104571f3e7cf9f3e7cf9f3e7cfbfe757cf9f3e7cf9f3e7cf8ff",
        "9d5f3e7cf9f3e7cf9f3e32fede4c99200000f1e35ad680035ac3000000078f1ad6b4001ad61800000",
        "03c78d6b5a000d6b0c0000001e3c6b5ad0006b5860000000f1e35ad680035ac3000000078f1ad6b40",
        "01ad60e48e",
    );
    let eac3_frame = concat!(
        "0b77003f3f87c000200000000200000002581f000404040101010040404010101004040418f9f3e7cf9",
        "f3e7cf9f3e7dff3abe7cf9f3e7cf9f3e7c7fceaf9f3e7cf9f3e7cf9f1ff3abe7cf9f3e7cf9f3e7c7fce",
        "af9f3e7cf9f3e7cf9f1ff3abe7cf9f3e7cf9f3e7c7fcea01ad0035a006b400d6801ad0035a000000000",
        "0002ec6",
    );
    let mp3_frame = concat!(
        "fffb10640000005b0458c50c000e00000d20a0000104a8334cb9a100000000348300000000160000777e",
        "2044131c7e60792400008dc23bd30178d601a200d162425c363652eb4e7fafff7c280f80835c2a0af888",
        "f2ab55fd8e4046ab7e678325d165b0d3fd0f5ad6",
    );
    vec![
        video(
            SampleEntry::Hevc {
                width: 128,
                height: 72,
                record: Bytes::from(unhex(HEVC_RECORD)),
            },
            "0000001b2801af1d80f7cf80ffece7a2cc07bf25aebeb35886a000680006f4",
            &["codec_name=hevc", "width=128", "height=72"],
        ),
        video(
            SampleEntry::Av1 {
                width: 128,
                height: 72,
                record: Bytes::from(unhex(AV1_RECORD)),
            },
            "0a0b0200000559bfc71abe6010321810008e80820810404000020095d0499f0f08964f0746c730",
            &["codec_name=av1", "width=128", "height=72"],
        ),
        video(
            SampleEntry::Vp9 {
                width: 128,
                height: 72,
                // Profile 0, level 1.0, 8-bit 4:2:0 colocated, BT.709, no init data.
                record: Bytes::from(unhex("00 0a 82 02 02 02 0000")),
            },
            concat!(
                "824983420007f004760038241c184200003060000078b9fffe3c7bffffff2e0ffffff97239fa",
                "5d1e181c00",
            ),
            &["codec_name=vp9", "width=128", "height=72"],
        ),
        audio(
            SampleEntry::Opus {
                channels: 2,
                dops: Bytes::from(unhex(OPUS_DOPS)),
            },
            48_000,
            "fcfffe",
            960,
            &["codec_name=opus", "sample_rate=48000", "channels=2"],
        ),
        audio(
            SampleEntry::Flac {
                sample_rate: 44_100,
                channels: 1,
                bits_per_sample: 16,
                metadata: Bytes::from(unhex(FLAC_METADATA)),
            },
            44_100,
            "fff8a9080050000000039f",
            1024,
            &["codec_name=flac", "sample_rate=44100", "channels=1"],
        ),
        audio(
            SampleEntry::Ac3 {
                eac3: false,
                sample_rate: 48_000,
                channels: 2,
                specific: Bytes::from(unhex("101000")),
            },
            48_000,
            ac3_frame,
            1536,
            &["codec_name=ac3", "sample_rate=48000", "channels=2"],
        ),
        audio(
            SampleEntry::Ac3 {
                eac3: true,
                sample_rate: 48_000,
                channels: 6,
                specific: Bytes::from(unhex("0100200f00")),
            },
            48_000,
            eac3_frame,
            1536,
            &["codec_name=eac3", "sample_rate=48000", "channels=6"],
        ),
        audio(
            SampleEntry::Mp3 {
                sample_rate: 44_100,
                channels: 2,
            },
            44_100,
            mp3_frame,
            1152,
            &["codec_name=mp3", "sample_rate=44100", "channels=2"],
        ),
        audio(
            SampleEntry::Mp3 {
                sample_rate: 22_050,
                channels: 1,
            },
            22_050,
            "fff310c40002803ebc01430001777777f477030303030f5255e3",
            576,
            &["codec_name=mp3", "sample_rate=22050", "channels=1"],
        ),
    ]
}

impl CodecCase {
    fn track(&self) -> TrackConfig {
        TrackConfig {
            id: id(1),
            timescale: self.timescale,
            entry: self.entry.clone(),
        }
    }

    /// The init segment and one fragment holding the sample: what a CMAF segment of this
    /// track begins with.
    fn file(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_init(&[self.track()], &mut out).unwrap();
        let samples = [SampleInfo {
            duration: self.duration,
            size: self.sample.len() as u32,
            sync: true,
            composition_offset: 0,
        }];
        let runs = [TrackRun {
            track: id(1),
            base_decode_time: 0,
            samples: &samples,
        }];
        write_fragment(1, &runs, &[&self.sample[..]], &mut out).unwrap();
        out.to_vec()
    }
}

/// mp4parse (Firefox's parser) knows AV1, VP9, Opus, FLAC and MP3 and reads their
/// configurations; HEVC (`hvc1`) and AC-3 (`ac-3`, `ec-3`) it parses as an unknown entry,
/// without error.
#[test]
fn new_codecs_read_back_with_mp4parse() {
    use mp4parse::{AudioCodecSpecific as A, CodecType, SampleEntry as E, VideoCodecSpecific as V};
    for case in codec_cases() {
        let name = case.entry.fourcc();
        let context = mp4parse::read_mp4(&mut Cursor::new(case.file()))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let [track] = &context.tracks[..] else {
            panic!("{name}: one track");
        };
        let [description] = &track.stsd.as_ref().expect("stsd").descriptions[..] else {
            panic!("{name}: one sample entry");
        };
        match (&case.entry, description) {
            (SampleEntry::Hevc { .. } | SampleEntry::Ac3 { .. }, E::Unknown) => {}
            (SampleEntry::Av1 { record, .. }, E::Video(v)) => {
                assert_eq!((v.codec_type, v.width, v.height), (CodecType::AV1, 128, 72));
                let V::AV1Config(av1c) = &v.codec_specific else {
                    panic!("av1C");
                };
                assert_eq!((av1c.profile, av1c.level, av1c.bit_depth), (0, 0, 8));
                assert_eq!(av1c.raw_config[..], record[..]);
            }
            (SampleEntry::Vp9 { .. }, E::Video(v)) => {
                assert_eq!((v.codec_type, v.width, v.height), (CodecType::VP9, 128, 72));
                let V::VPxConfig(vpcc) = &v.codec_specific else {
                    panic!("vpcC");
                };
                assert_eq!((vpcc.bit_depth, vpcc.colour_primaries), (8, 2));
                assert_eq!(vpcc.chroma_subsampling, 1);
            }
            (SampleEntry::Opus { .. }, E::Audio(a)) => {
                assert_eq!(
                    (a.codec_type, a.channelcount, a.samplesize),
                    (CodecType::Opus, 2, 16)
                );
                assert_eq!(a.samplerate, 48_000.0);
                let A::OpusSpecificBox(dops) = &a.codec_specific else {
                    panic!("dOps");
                };
                assert_eq!(dops.version, 0);
            }
            (SampleEntry::Flac { .. }, E::Audio(a)) => {
                assert_eq!(
                    (a.codec_type, a.channelcount, a.samplesize),
                    (CodecType::FLAC, 1, 16)
                );
                assert_eq!(a.samplerate, 44_100.0);
                let A::FLACSpecificBox(dfla) = &a.codec_specific else {
                    panic!("dfLa");
                };
                let [streaminfo] = &dfla.blocks[..] else {
                    panic!("one metadata block");
                };
                assert_eq!(streaminfo.block_type, 0);
                assert_eq!(streaminfo.data[..], unhex(FLAC_METADATA)[4..]);
            }
            (
                SampleEntry::Mp3 {
                    sample_rate,
                    channels,
                },
                E::Audio(a),
            ) => {
                assert_eq!(a.codec_type, CodecType::MP3);
                assert_eq!(
                    (a.channelcount, a.samplerate),
                    (u32::from(*channels), f64::from(*sample_rate))
                );
                let A::ES_Descriptor(es) = &a.codec_specific else {
                    panic!("esds");
                };
                assert_eq!(es.audio_codec, CodecType::MP3);
                assert!(es.decoder_specific_data.is_empty());
            }
            (entry, description) => panic!("{entry:?} read as {description:?}"),
        }
    }
}

/// mp4-atom decodes every new entry into its own type with the fields written.
#[test]
fn new_codecs_read_back_with_mp4_atom() {
    for case in codec_cases() {
        let name = case.entry.fourcc();
        let file = case.file();
        let mut buf = &file[..];
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        let av01 = ftyp.compatible_brands.contains(&b"av01".into());
        assert_eq!(
            av01,
            matches!(case.entry, SampleEntry::Av1 { .. }),
            "{name}: av01 brand"
        );
        let moov = Moov::decode(&mut buf).unwrap_or_else(|e| panic!("{name}: {e}"));
        let [codec] = &moov.trak[0].mdia.minf.stbl.stsd.codecs[..] else {
            panic!("{name}: one sample entry");
        };
        let visual = |v: &mp4_atom::Visual| (v.width, v.height, v.depth);
        let audio = |a: &mp4_atom::Audio| (a.channel_count, a.sample_size, a.sample_rate.integer());
        match (&case.entry, codec) {
            (SampleEntry::Hevc { .. }, Codec::Hvc1(hvc1)) => {
                assert_eq!(visual(&hvc1.visual), (128, 72, 24));
                assert_eq!(hvc1.hvcc.configuration_version, 1);
                assert_eq!(hvc1.hvcc.length_size_minus_one, 3);
                let types: Vec<u8> = hvc1.hvcc.arrays.iter().map(|a| a.nal_unit_type).collect();
                assert_eq!(types, [32, 33, 34], "VPS, SPS, PPS");
            }
            (SampleEntry::Av1 { record, .. }, Codec::Av01(av01)) => {
                assert_eq!(visual(&av01.visual), (128, 72, 24));
                assert_eq!(av01.visual.compressor.as_ref(), "AOM Coding");
                assert_eq!(av01.av1c.config_obus[..], record[4..]);
            }
            (SampleEntry::Vp9 { .. }, Codec::Vp09(vp09)) => {
                assert_eq!(visual(&vp09.visual), (128, 72, 24));
                assert_eq!(
                    (vp09.vpcc.profile, vp09.vpcc.level, vp09.vpcc.bit_depth),
                    (0, 10, 8)
                );
                assert_eq!(vp09.vpcc.color_primaries, 2);
            }
            (SampleEntry::Opus { .. }, Codec::Opus(opus)) => {
                assert_eq!(audio(&opus.audio), (2, 16, 48_000));
                assert_eq!(
                    (opus.dops.output_channel_count, opus.dops.pre_skip),
                    (2, 312)
                );
                assert_eq!(opus.dops.input_sample_rate, 48_000);
            }
            (SampleEntry::Flac { .. }, Codec::Flac(flac)) => {
                assert_eq!(audio(&flac.audio), (1, 16, 44_100));
                assert_eq!(flac.dfla.blocks.len(), 1);
            }
            (SampleEntry::Ac3 { eac3: false, .. }, Codec::Ac3(ac3)) => {
                assert_eq!(audio(&ac3.audio), (2, 16, 48_000));
                assert_eq!(
                    (ac3.dac3.fscod, ac3.dac3.acmod, ac3.dac3.lfeon),
                    (0, 2, false)
                );
            }
            (SampleEntry::Ac3 { eac3: true, .. }, Codec::Eac3(eac3)) => {
                assert_eq!(audio(&eac3.audio), (6, 16, 48_000));
                let [substream] = &eac3.dec3.substreams[..] else {
                    panic!("one independent substream");
                };
                assert_eq!((substream.acmod, substream.lfeon), (7, true));
            }
            (
                SampleEntry::Mp3 {
                    sample_rate,
                    channels,
                },
                Codec::Mp4a(mp4a),
            ) => {
                assert_eq!(audio(&mp4a.audio), (*channels, 16, *sample_rate as u16));
                let dec_config = &mp4a.esds.es_desc.dec_config;
                let expected = if *sample_rate >= 32_000 { 0x6b } else { 0x69 };
                assert_eq!(dec_config.object_type_indication, expected);
                assert_eq!(dec_config.stream_type, 5);
                assert!(dec_config.dec_specific.is_none());
            }
            (entry, codec) => panic!("{entry:?} read as {codec:?}"),
        }
    }
}

/// ffprobe (FFmpeg's MP4 demuxer and decoders) reads each init segment and fragment, names
/// the codec, reports the picture size or the channels and rate, and decodes the one
/// sample without a message at level `error`.
#[test]
fn new_codecs_read_back_and_decode_with_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    for case in codec_cases() {
        let name = case.entry.fourcc();
        let path = dir
            .path()
            .join(format!("{}.mp4", name.to_string().replace(' ', "_")));
        std::fs::write(&path, case.file()).unwrap();
        let probe = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .arg("stream=codec_name,width,height,sample_rate,channels,nb_read_frames")
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&path)
            .output()
            .expect("ffprobe must be installed");
        let stderr = String::from_utf8_lossy(&probe.stderr);
        assert!(
            probe.status.success() && stderr.trim().is_empty(),
            "{name}: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&probe.stdout);
        let fields: Vec<&str> = stdout.lines().collect();
        for expected in case.probe.iter().chain(&["nb_read_frames=1"]) {
            assert!(
                fields.contains(expected),
                "{name}: {expected} not in {fields:?}"
            );
        }
    }
}
