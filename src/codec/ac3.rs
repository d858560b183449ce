//! AC-3 and E-AC-3 as Enhanced RTMP carries them (FourCC `ac-3`, `ec-3`). Enhanced RTMP v2
//! defines no SequenceStart content for them (the coded frames are syncframes, which
//! describe themselves) and FFmpeg's FLV muxer sends an empty one; so the configuration is
//! read from the first syncframe: the stream facts and the `dac3`/`dec3` box an MP4 sample
//! entry needs.
//!
//! Only the syncframe's header is read (syncinfo and the start of bsi); the frame need not
//! be whole. An E-AC-3 frame is described by its first (independent) substream: dependent
//! substreams (7.1 and beyond) are not reflected in `dec3`.
//!
//! Spec: ETSI TS 102 366 §4.3.1 (syncinfo), §4.3.2 (bsi), §4.4.1 (fscod, frmsizecod,
//! Table 4.13), §4.4.2 (bsid, bsmod, acmod), Annex E.1.2 (E-AC-3 syncinfo and bsi: strmtyp,
//! substreamid, frmsiz, fscod2, numblkscod), Annex F.4 (AC3SpecificBox), Annex F.6
//! (EC3SpecificBox).

use bytes::Bytes;

use super::bits::BitReader;
use super::{AudioFacts, CodecError};

const AC3: &str = "AC-3 syncframe header";
const EAC3: &str = "E-AC-3 syncframe header";

/// The syncword that starts every syncframe.
pub const SYNCWORD: u16 = 0x0b77;

/// Samples per AC-3 syncframe: six blocks of 256.
pub const AC3_SAMPLES_PER_FRAME: u32 = 1536;

/// Sample rates by fscod (3 is reserved, or for E-AC-3 means fscod2 follows).
const SAMPLE_RATES: [u32; 3] = [48000, 44100, 32000];

/// Half sample rates by E-AC-3's fscod2 (3 is reserved).
const REDUCED_SAMPLE_RATES: [u32; 3] = [24000, 22050, 16000];

/// Full-bandwidth channels by acmod (0 is 1+1, two independent mono channels).
///
/// Spec: ETSI TS 102 366 Table 4.3.
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// Highest frmsizecod: Table 4.13 has 38 rows (32 to 640 kbit/s).
const MAX_FRMSIZECOD: u8 = 37;

/// The configuration of an AC-3 or E-AC-3 stream, read from a syncframe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ac3Config {
    /// E-AC-3 (bsid 11 to 16) rather than AC-3 (bsid up to 8).
    pub eac3: bool,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels: those of acmod, plus one for the LFE channel.
    pub channels: u8,
    /// Samples per syncframe: 1536 for AC-3; 256 per audio block (1, 2, 3 or 6) for E-AC-3.
    pub samples_per_frame: u32,
    /// The AC3SpecificBox (`dac3`, 3 bytes) or EC3SpecificBox (`dec3`, one independent
    /// substream, 5 bytes) content.
    pub specific: Bytes,
    /// The sample rate, the channel count, codec "ac-3" or "ec-3".
    pub facts: AudioFacts,
}

/// The fields of a syncframe header the configuration is made from.
struct Header {
    eac3: bool,
    fscod: u8,
    sample_rate: u32,
    bsid: u8,
    bsmod: u8,
    acmod: u8,
    lfeon: bool,
    /// AC-3: frmsizecod.
    frmsizecod: u8,
    /// E-AC-3: the frame size in bytes.
    frame_bytes: u32,
    samples: u32,
}

impl Header {
    /// Reads the header of the syncframe at the start of `frame`.
    fn parse(frame: &[u8]) -> Result<Header, CodecError> {
        let sync = CodecError::take(AC3, frame, 0, 2)?;
        let syncword = u16::from_be_bytes([sync[0], sync[1]]);
        if syncword != SYNCWORD {
            return Err(CodecError::invalid(
                AC3,
                "syncword",
                syncword,
                "must be 0x0B77",
            ));
        }
        // bsid sits at the same place in both syntaxes: the top 5 bits of byte 5.
        let bsid = CodecError::take(AC3, frame, 5, 1)?[0] >> 3;
        match bsid {
            0..=8 => Header::parse_ac3(frame),
            11..=16 => Header::parse_eac3(frame),
            _ => Err(CodecError::invalid(
                AC3,
                "bsid",
                bsid,
                "neither AC-3 (0 to 8) nor E-AC-3 (11 to 16)",
            )),
        }
    }

    /// §4.3.1 syncinfo and §4.3.2 bsi up to lfeon.
    fn parse_ac3(frame: &[u8]) -> Result<Header, CodecError> {
        let mut r = BitReader::new(frame, AC3);
        r.skip(32, "syncword/crc1")?;
        let fscod = r.u8(2, "fscod")?;
        let frmsizecod = r.u8(6, "frmsizecod")?;
        let bsid = r.u8(5, "bsid")?;
        let bsmod = r.u8(3, "bsmod")?;
        let acmod = r.u8(3, "acmod")?;
        if acmod & 1 != 0 && acmod != 1 {
            r.skip(2, "cmixlev")?;
        }
        if acmod & 4 != 0 {
            r.skip(2, "surmixlev")?;
        }
        if acmod == 2 {
            r.skip(2, "dsurmod")?;
        }
        let lfeon = r.flag("lfeon")?;
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(fscod))
            .ok_or(CodecError::invalid(AC3, "fscod", fscod, "reserved"))?;
        if frmsizecod > MAX_FRMSIZECOD {
            return Err(CodecError::invalid(
                AC3,
                "frmsizecod",
                frmsizecod,
                "above 37",
            ));
        }
        Ok(Header {
            eac3: false,
            fscod,
            sample_rate,
            bsid,
            bsmod,
            acmod,
            lfeon,
            frmsizecod,
            frame_bytes: 0,
            samples: AC3_SAMPLES_PER_FRAME,
        })
    }

    /// Annex E.1.2.1 syncinfo and E.1.2.2 bsi up to bsid.
    fn parse_eac3(frame: &[u8]) -> Result<Header, CodecError> {
        let mut r = BitReader::new(frame, EAC3);
        r.skip(16, "syncword")?;
        let strmtyp = r.u8(2, "strmtyp")?;
        let substreamid = r.u8(3, "substreamid")?;
        let frmsiz = r.u32(11, "frmsiz")?;
        let fscod = r.u8(2, "fscod")?;
        let (sample_rate, numblkscod) = if fscod == 3 {
            let fscod2 = r.u8(2, "fscod2")?;
            let rate = *REDUCED_SAMPLE_RATES
                .get(usize::from(fscod2))
                .ok_or(CodecError::invalid(EAC3, "fscod2", fscod2, "reserved"))?;
            (rate, 3)
        } else {
            (SAMPLE_RATES[usize::from(fscod)], r.u8(2, "numblkscod")?)
        };
        let acmod = r.u8(3, "acmod")?;
        let lfeon = r.flag("lfeon")?;
        let bsid = r.u8(5, "bsid")?;
        match strmtyp {
            0 | 2 => {}
            1 => {
                return Err(CodecError::invalid(
                    EAC3,
                    "strmtyp",
                    strmtyp,
                    "a dependent substream cannot start the stream",
                ));
            }
            _ => return Err(CodecError::invalid(EAC3, "strmtyp", strmtyp, "reserved")),
        }
        if substreamid != 0 {
            return Err(CodecError::invalid(
                EAC3,
                "substreamid",
                substreamid,
                "the first independent substream is 0",
            ));
        }
        let blocks = [1, 2, 3, 6][usize::from(numblkscod)];
        Ok(Header {
            eac3: true,
            fscod,
            sample_rate,
            bsid,
            // bsmod sits deep in E-AC-3's bsi (infomdate); 0, complete main, is written.
            bsmod: 0,
            acmod,
            lfeon,
            frmsizecod: 0,
            frame_bytes: (frmsiz + 1) * 2,
            samples: 256 * blocks,
        })
    }

    fn channels(&self) -> u8 {
        ACMOD_CHANNELS[usize::from(self.acmod & 7)] + u8::from(self.lfeon)
    }

    /// The AC3SpecificBox: fscod(2) bsid(5) bsmod(3) acmod(3) lfeon(1) bit_rate_code(5)
    /// reserved(5).
    ///
    /// Spec: ETSI TS 102 366 Annex F.4.
    fn dac3(&self) -> Bytes {
        let bits = u32::from(self.fscod) << 22
            | u32::from(self.bsid) << 17
            | u32::from(self.bsmod) << 14
            | u32::from(self.acmod) << 11
            | u32::from(self.lfeon) << 10
            | u32::from(self.frmsizecod >> 1) << 5;
        Bytes::copy_from_slice(&bits.to_be_bytes()[1..])
    }

    /// The EC3SpecificBox for one independent substream without dependents:
    /// data_rate(13) num_ind_sub(3) = 0, then fscod(2) bsid(5) reserved(1) asvc(1) bsmod(3)
    /// acmod(3) lfeon(1) reserved(3) num_dep_sub(4) = 0 reserved(1). data_rate is this
    /// frame's bit rate in kbit/s.
    ///
    /// Spec: ETSI TS 102 366 Annex F.6.
    fn dec3(&self) -> Bytes {
        let data_rate = u64::from(self.frame_bytes) * 8 * u64::from(self.sample_rate)
            / u64::from(self.samples)
            / 1000;
        let data_rate = data_rate.min(0x1fff);
        let bits = data_rate << 27
            | u64::from(self.fscod) << 22
            | u64::from(self.bsid) << 17
            | u64::from(self.bsmod) << 12
            | u64::from(self.acmod) << 9
            | u64::from(self.lfeon) << 8;
        Bytes::copy_from_slice(&bits.to_be_bytes()[3..])
    }
}

impl Ac3Config {
    /// Reads the configuration from the header of a syncframe (AC-3 by bsid up to 8,
    /// E-AC-3 by bsid 11 to 16). Refuses a wrong syncword, reserved fscod, fscod2 and
    /// frmsizecod values, and an E-AC-3 frame that is not the first independent substream.
    pub fn from_syncframe(frame: &[u8]) -> Result<Ac3Config, CodecError> {
        let header = Header::parse(frame)?;
        let channels = header.channels();
        let (specific, codec) = if header.eac3 {
            (header.dec3(), "ec-3")
        } else {
            (header.dac3(), "ac-3")
        };
        Ok(Ac3Config {
            eac3: header.eac3,
            sample_rate: header.sample_rate,
            channels,
            samples_per_frame: header.samples,
            specific,
            facts: AudioFacts {
                sample_rate: header.sample_rate,
                channels,
                codec: codec.into(),
            },
        })
    }
}

/// Samples in the syncframe at the start of `frame`: 1536 for AC-3, 256 per audio block for
/// E-AC-3. Reads the header only, without allocating.
pub fn frame_samples(frame: &[u8]) -> Result<u32, CodecError> {
    Ok(Header::parse(frame)?.samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex};

    /// Syncframe headers (the bytes up to lfeon or bsid) from ffmpeg 9 `-c:a ac3` /
    /// `-c:a eac3` in FLV. ffmpeg: "ac3, 48000 Hz, stereo, 192 kb/s", "ac3, 48000 Hz,
    /// 5.1(side), 448 kb/s", "eac3, 48000 Hz, stereo, 192 kb/s", "eac3, 44100 Hz,
    /// 5.1(side), 447 kb/s".
    const AC3_STEREO: &str = "0b77fe95144043";
    const AC3_51: &str = "0b77c4b71e40eb";
    const EAC3_STEREO: &str = "0b77017f3487";
    const EAC3_51: &str = "0b7703ce7f87";

    fn config(text: &str) -> Ac3Config {
        Ac3Config::from_syncframe(&hex(text)).unwrap()
    }

    #[test]
    fn reads_ffmpeg_syncframes() {
        let c = config(AC3_STEREO);
        assert!(!c.eac3);
        assert_eq!(
            (c.sample_rate, c.channels, c.samples_per_frame),
            (48000, 2, 1536)
        );
        assert_eq!(c.specific.as_ref(), hex("101140"));
        assert_eq!(
            c.facts,
            AudioFacts {
                sample_rate: 48000,
                channels: 2,
                codec: "ac-3".into()
            }
        );
        let c = config(AC3_51);
        assert_eq!((c.sample_rate, c.channels), (48000, 6));
        assert_eq!(c.specific.as_ref(), hex("103de0"));

        let c = config(EAC3_STEREO);
        assert!(c.eac3);
        assert_eq!(
            (c.sample_rate, c.channels, c.samples_per_frame),
            (48000, 2, 1536)
        );
        assert_eq!(c.specific.as_ref(), hex("0600200400"));
        assert_eq!(c.facts.codec, "ec-3");
        let c = config(EAC3_51);
        assert_eq!((c.sample_rate, c.channels), (44100, 6));
        assert_eq!(c.specific.as_ref(), hex("0df8600f00"));
        assert_eq!(frame_samples(&hex(EAC3_51)).unwrap(), 1536);
        assert_eq!(frame_samples(&hex(AC3_51)).unwrap(), 1536);
    }

    #[test]
    fn reads_block_counts_and_reduced_rates() {
        // numblkscod 1 (2 blocks), fscod 0, acmod 1 (mono), bsid 16.
        let two_blocks = hex("0b77 00ff 1280");
        assert_eq!(frame_samples(&two_blocks).unwrap(), 512);
        assert_eq!(Ac3Config::from_syncframe(&two_blocks).unwrap().channels, 1);
        // fscod 3, fscod2 1 (22.05 kHz), six blocks.
        let reduced = hex("0b77 00ff d280");
        let c = Ac3Config::from_syncframe(&reduced).unwrap();
        assert_eq!((c.sample_rate, c.samples_per_frame), (22050, 1536));
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [AC3_STEREO, AC3_51, EAC3_STEREO, EAC3_51] {
            let data = hex(text);
            every_prefix_refused(&data, Ac3Config::from_syncframe);
            every_prefix_refused(&data, frame_samples);
        }
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let field = |data: Vec<u8>| match Ac3Config::from_syncframe(&data) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let ac3 = hex(AC3_STEREO);
        let mut bad = ac3.clone();
        bad[1] = 0x78;
        assert_eq!(field(bad), "syncword");
        let mut bad = ac3.clone();
        bad[4] |= 0xc0;
        assert_eq!(field(bad), "fscod");
        let mut bad = ac3.clone();
        bad[4] = 38;
        assert_eq!(field(bad), "frmsizecod");
        let mut bad = ac3.clone();
        bad[5] = 10 << 3;
        assert_eq!(field(bad), "bsid");
        let eac3 = hex(EAC3_STEREO);
        let mut bad = eac3.clone();
        bad[2] |= 0x40; // strmtyp 1
        assert_eq!(field(bad), "strmtyp");
        let mut bad = eac3.clone();
        bad[2] |= 0x08; // substreamid 1
        assert_eq!(field(bad), "substreamid");
        let mut bad = eac3.clone();
        bad[4] = 0xf0 | (bad[4] & 0x0f); // fscod 3, fscod2 3
        assert_eq!(field(bad), "fscod2");
    }
}
