//! What a Low-Latency viewer checks in the CMAF files it fetches, without a full MP4 parser:
//! an initialization section's tracks (which is video, its timescale, its `trex` defaults),
//! and a part's framing, checked as its bytes stream in: top-level boxes whose sizes add up
//! to the body, one `moof` then one `mdat`, every `traf` with a `tfhd`, a `tfdt` and `trun`s
//! whose samples fill the `mdat` exactly. Only the `moof` is kept (a few KiB); sample data is
//! counted and dropped. From the video track's runs it gives the decode time of the part's
//! last video frame, which ties the part to the frame a publisher sent.
//!
//! Spec: ISO/IEC 14496-12 §4.2 (box header, largesize), §8.3.2 (tkhd), §8.4.2 (mdhd), §8.4.3
//! (hdlr), §8.8.3 (trex), §8.8.4 (moof), §8.8.5 (mfhd), §8.8.7 (tfhd), §8.8.8 (trun), §8.8.12
//! (tfdt), §8.1.1 (mdat); RFC 8216 §3.3 (every traf has a tfdt).

use thiserror::Error;

/// Most bytes of a `moof` kept while a part streams in: a 0.2 s part's `moof` describes a
/// few dozen samples in a few KiB; the bound keeps a broken server from growing a viewer's
/// memory.
pub const MAX_MOOF_BYTES: usize = 1024 * 1024;

/// Most tracks read from an initialization section: the server writes at most 32.
pub const MAX_TRACKS: usize = 32;

/// Bytes of a box header with a 32-bit size, and with a 64-bit largesize.
const HEADER: usize = 8;
const LARGE_HEADER: usize = 16;

/// tfhd flags. Spec: ISO/IEC 14496-12 §8.8.7.1.
const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// trun flags. Spec: ISO/IEC 14496-12 §8.8.8.1.
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_COMPOSITION_OFFSET: u32 = 0x00_0800;

/// Why a file is not what a player can use.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Fmp4Error {
    #[error("box at byte {offset}: size {size} is smaller than its header")]
    BoxSize { offset: u64, size: u64 },
    #[error("{what} ends early")]
    Truncated { what: &'static str },
    #[error("the file ends inside a box ({missing} bytes missing)")]
    Unfinished { missing: u64 },
    #[error("moof larger than {MAX_MOOF_BYTES} bytes")]
    MoofTooLarge,
    #[error("{0}")]
    Layout(&'static str),
    #[error("traf of track {track} has no {what}")]
    Missing { track: u32, what: &'static str },
    #[error("samples of track {track} lie outside the mdat")]
    DataOutside { track: u32 },
    #[error("the runs' samples take {runs} bytes, the mdat holds {mdat}")]
    PayloadMismatch { runs: u64, mdat: u64 },
    #[error("initialization section has no moov")]
    NoMoov,
}

/// A track of an initialization section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub id: u32,
    pub timescale: u32,
    pub video: bool,
    /// trex defaults, for runs and fragments that give none.
    pub default_duration: u32,
    pub default_size: u32,
}

/// What an initialization section says about its tracks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitInfo {
    pub tracks: Vec<TrackInfo>,
}

impl InitInfo {
    /// The first video track.
    pub fn video(&self) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.video)
    }

    fn track(&self, id: u32) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.id == id)
    }
}

/// Reads an initialization section: top-level boxes that tile it, a `moov` with its
/// tracks.
pub fn read_init(data: &[u8]) -> Result<InitInfo, Fmp4Error> {
    let mut info = InitInfo::default();
    let mut moov = None;
    for child in children(data, 0) {
        let (kind, body) = child?;
        if &kind == b"moov" {
            moov = Some(body);
        }
    }
    let moov = moov.ok_or(Fmp4Error::NoMoov)?;
    let mut defaults = Vec::new();
    for child in children(moov, 0) {
        match child? {
            (kind, trak) if &kind == b"trak" => {
                if info.tracks.len() == MAX_TRACKS {
                    return Err(Fmp4Error::Layout("too many tracks"));
                }
                info.tracks.push(read_trak(trak)?);
            }
            (kind, mvex) if &kind == b"mvex" => {
                for child in children(mvex, 0) {
                    let (kind, trex) = child?;
                    if &kind == b"trex" {
                        let mut c = Cursor::new(trex, "trex");
                        c.skip(4)?;
                        let id = c.u32()?;
                        c.skip(4)?;
                        defaults.push((id, c.u32()?, c.u32()?));
                    }
                }
            }
            _ => {}
        }
    }
    for (id, duration, size) in defaults {
        if let Some(t) = info.tracks.iter_mut().find(|t| t.id == id) {
            t.default_duration = duration;
            t.default_size = size;
        }
    }
    Ok(info)
}

fn read_trak(trak: &[u8]) -> Result<TrackInfo, Fmp4Error> {
    let mut track = TrackInfo {
        id: 0,
        timescale: 0,
        video: false,
        default_duration: 0,
        default_size: 0,
    };
    for child in children(trak, 0) {
        match child? {
            (kind, tkhd) if &kind == b"tkhd" => {
                let mut c = Cursor::new(tkhd, "tkhd");
                let version = c.u8()?;
                c.skip(3)?;
                c.skip(if version == 1 { 16 } else { 8 })?;
                track.id = c.u32()?;
            }
            (kind, mdia) if &kind == b"mdia" => {
                for child in children(mdia, 0) {
                    match child? {
                        (kind, mdhd) if &kind == b"mdhd" => {
                            let mut c = Cursor::new(mdhd, "mdhd");
                            let version = c.u8()?;
                            c.skip(3)?;
                            c.skip(if version == 1 { 16 } else { 8 })?;
                            track.timescale = c.u32()?;
                        }
                        (kind, hdlr) if &kind == b"hdlr" => {
                            let mut c = Cursor::new(hdlr, "hdlr");
                            c.skip(8)?;
                            track.video = c.take(4)? == b"vide";
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if track.id == 0 || track.timescale == 0 {
        return Err(Fmp4Error::Layout("trak without a track ID or a timescale"));
    }
    Ok(track)
}

/// What a part holds, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// mfhd sequence_number.
    pub sequence: u32,
    /// Bytes of the whole part.
    pub bytes: u64,
    /// Samples in all its runs.
    pub samples: u64,
    /// Decode time of the last video sample, in the video track's timescale (`None`
    /// without video samples).
    pub last_video_decode: Option<u64>,
}

/// Where the streaming check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Reading a box header; `need` is 8, or 16 once a largesize is announced.
    Header { need: usize },
    /// In a moof's body: kept.
    Moof { left: u64 },
    /// In another box's body: counted.
    Skip { left: u64 },
}

/// Checks one part's framing as its bytes arrive, in pieces of any size. Reused for every
/// part a viewer fetches ([`FragmentCheck::reset`]), so it allocates only when a moof is
/// larger than any before.
#[derive(Clone, Debug)]
pub struct FragmentCheck {
    at: At,
    header: [u8; LARGE_HEADER],
    have: usize,
    /// Bytes pushed so far.
    offset: u64,
    /// Where the moof box starts, its size, and its body.
    moof_at: Option<u64>,
    moof_size: u64,
    moof: Vec<u8>,
    /// The mdat's payload, as offsets in the part.
    mdat: Option<(u64, u64)>,
    error: Option<Fmp4Error>,
}

impl Default for FragmentCheck {
    fn default() -> FragmentCheck {
        FragmentCheck {
            at: At::Header { need: HEADER },
            header: [0; LARGE_HEADER],
            have: 0,
            offset: 0,
            moof_at: None,
            moof_size: 0,
            moof: Vec::new(),
            mdat: None,
            error: None,
        }
    }
}

impl FragmentCheck {
    /// Ready for the next part (keeping the moof buffer).
    pub fn reset(&mut self) {
        let mut moof = std::mem::take(&mut self.moof);
        moof.clear();
        *self = FragmentCheck {
            moof,
            ..FragmentCheck::default()
        };
    }

    /// Takes the next bytes of the part. After an error the rest is ignored and
    /// [`FragmentCheck::finish`] reports it.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            match self.step(data) {
                Ok(n) => data = &data[n..],
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// Takes bytes from the front of `data`; how many.
    fn step(&mut self, data: &[u8]) -> Result<usize, Fmp4Error> {
        let n = match self.at {
            At::Header { need } => {
                let n = (need - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                self.offset += n as u64;
                if self.have == need {
                    self.begin_box(need)?;
                }
                return Ok(n);
            }
            At::Moof { left } => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                self.moof.extend_from_slice(&data[..n]);
                self.at = next(
                    left - n as u64,
                    At::Moof {
                        left: left - n as u64,
                    },
                );
                n
            }
            At::Skip { left } => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                self.at = next(
                    left - n as u64,
                    At::Skip {
                        left: left - n as u64,
                    },
                );
                n
            }
        };
        self.offset += n as u64;
        Ok(n)
    }

    /// A box header of `len` bytes is complete, ending at the current offset.
    fn begin_box(&mut self, len: usize) -> Result<(), Fmp4Error> {
        let start = self.offset - len as u64;
        let size32 = u32::from_be_bytes([
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ]);
        let kind = [
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ];
        let size = match size32 {
            1 if len == HEADER => {
                self.at = At::Header { need: LARGE_HEADER };
                return Ok(());
            }
            1 => u64::from_be_bytes(self.header[8..16].try_into().unwrap_or_default()),
            0 => return Err(Fmp4Error::Layout("a box that runs to the end of the file")),
            n => u64::from(n),
        };
        if size < len as u64 {
            return Err(Fmp4Error::BoxSize {
                offset: start,
                size,
            });
        }
        let body = size - len as u64;
        self.have = 0;
        match &kind {
            b"moof" => {
                if self.moof_at.is_some() {
                    return Err(Fmp4Error::Layout("more than one moof"));
                }
                if body > MAX_MOOF_BYTES as u64 {
                    return Err(Fmp4Error::MoofTooLarge);
                }
                self.moof_at = Some(start);
                self.moof_size = size;
                self.moof.reserve(body as usize);
                self.at = next(body, At::Moof { left: body });
            }
            b"mdat" => {
                if self.moof_at.is_none() {
                    return Err(Fmp4Error::Layout("mdat before moof"));
                }
                if self.mdat.is_some() {
                    return Err(Fmp4Error::Layout("more than one mdat"));
                }
                let payload = start + len as u64;
                self.mdat = Some((payload, payload + body));
                self.at = next(body, At::Skip { left: body });
            }
            _ => self.at = next(body, At::Skip { left: body }),
        }
        Ok(())
    }

    /// The part has ended: checks what came and reads the moof. `init` describes its tracks.
    pub fn finish(&mut self, init: &InitInfo) -> Result<Fragment, Fmp4Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.at {
            At::Header { need: HEADER } if self.have == 0 => {}
            At::Header { need } => {
                return Err(Fmp4Error::Unfinished {
                    missing: (need - self.have) as u64,
                });
            }
            At::Moof { left } | At::Skip { left } => {
                return Err(Fmp4Error::Unfinished { missing: left });
            }
        }
        let moof_at = self.moof_at.ok_or(Fmp4Error::Layout("no moof"))?;
        let (mdat_start, mdat_end) = self.mdat.ok_or(Fmp4Error::Layout("no mdat"))?;
        let mut fragment = Fragment {
            sequence: 0,
            bytes: self.offset,
            samples: 0,
            last_video_decode: None,
        };
        let mut saw_mfhd = false;
        let mut data = DataCheck {
            mdat: (mdat_start, mdat_end),
            moof_at,
            end: moof_at,
            bytes: 0,
            first_traf: true,
        };
        for child in children(&self.moof, moof_at + HEADER as u64) {
            match child? {
                (kind, mfhd) if &kind == b"mfhd" => {
                    let mut c = Cursor::new(mfhd, "mfhd");
                    c.skip(4)?;
                    fragment.sequence = c.u32()?;
                    saw_mfhd = true;
                }
                (kind, traf) if &kind == b"traf" => {
                    let summary = read_traf(traf, init, &mut data)?;
                    fragment.samples += summary.samples;
                    if summary.video && summary.samples > 0 {
                        fragment.last_video_decode = Some(summary.last_decode);
                    }
                }
                _ => {}
            }
        }
        if !saw_mfhd {
            return Err(Fmp4Error::Layout("moof without mfhd"));
        }
        if data.bytes != mdat_end - mdat_start {
            return Err(Fmp4Error::PayloadMismatch {
                runs: data.bytes,
                mdat: mdat_end - mdat_start,
            });
        }
        Ok(fragment)
    }
}

/// The state after taking bytes of a box body: the next header once none are left.
fn next(left: u64, within: At) -> At {
    if left == 0 {
        At::Header { need: HEADER }
    } else {
        within
    }
}

/// What a traf says.
struct TrafSummary {
    video: bool,
    samples: u64,
    /// Decode time of its last sample.
    last_decode: u64,
}

/// Where the runs' sample data lie, checked run by run against the mdat.
struct DataCheck {
    /// The mdat's payload, as offsets in the part.
    mdat: (u64, u64),
    moof_at: u64,
    /// Where the last run's data ended: the base of a traf that names none.
    end: u64,
    /// Sample bytes of every run so far.
    bytes: u64,
    first_traf: bool,
}

impl DataCheck {
    /// A run of `len` bytes at `start`.
    fn run(&mut self, track: u32, start: u64, len: u64) -> Result<(), Fmp4Error> {
        if start < self.mdat.0 || start.saturating_add(len) > self.mdat.1 {
            return Err(Fmp4Error::DataOutside { track });
        }
        self.end = start + len;
        self.bytes += len;
        Ok(())
    }
}

fn read_traf(traf: &[u8], init: &InitInfo, data: &mut DataCheck) -> Result<TrafSummary, Fmp4Error> {
    let moof_at = data.moof_at;
    let first_traf = std::mem::replace(&mut data.first_traf, false);
    let mut track = None;
    let mut base = None;
    let mut default_duration = None;
    let mut default_size = None;
    let mut decode = None;
    let mut summary = TrafSummary {
        video: false,
        samples: 0,
        last_decode: 0,
    };
    let mut next_data: Option<u64> = None;
    let mut saw_trun = false;
    for child in children(traf, 0) {
        match child? {
            (kind, tfhd) if &kind == b"tfhd" => {
                let mut c = Cursor::new(tfhd, "tfhd");
                let flags = c.u32()? & 0x00ff_ffff;
                let id = c.u32()?;
                let info = init.track(id).copied();
                summary.video = info.is_some_and(|t| t.video);
                track = Some(id);
                base = Some(if flags & TFHD_BASE_DATA_OFFSET != 0 {
                    c.u64()?
                } else if flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 || first_traf {
                    moof_at
                } else {
                    data.end
                });
                if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
                    c.skip(4)?;
                }
                default_duration = if flags & TFHD_DEFAULT_DURATION != 0 {
                    Some(c.u32()?)
                } else {
                    info.map(|t| t.default_duration)
                };
                default_size = if flags & TFHD_DEFAULT_SIZE != 0 {
                    Some(c.u32()?)
                } else {
                    info.map(|t| t.default_size)
                };
                if flags & TFHD_DEFAULT_FLAGS != 0 {
                    c.skip(4)?;
                }
            }
            (kind, tfdt) if &kind == b"tfdt" => {
                let mut c = Cursor::new(tfdt, "tfdt");
                let version = c.u8()?;
                c.skip(3)?;
                decode = Some(if version == 1 {
                    c.u64()?
                } else {
                    u64::from(c.u32()?)
                });
            }
            (kind, trun) if &kind == b"trun" => {
                let id = track.ok_or(Fmp4Error::Layout("trun before tfhd"))?;
                let mut time = decode.ok_or(Fmp4Error::Missing {
                    track: id,
                    what: "tfdt before its trun",
                })?;
                saw_trun = true;
                let mut c = Cursor::new(trun, "trun");
                let flags = c.u32()? & 0x00ff_ffff;
                let count = c.u32()?;
                let start = if flags & TRUN_DATA_OFFSET != 0 {
                    let offset = c.u32()? as i32;
                    base.unwrap_or(moof_at)
                        .checked_add_signed(i64::from(offset))
                } else {
                    next_data.or(base)
                }
                .ok_or(Fmp4Error::DataOutside { track: id })?;
                if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
                    c.skip(4)?;
                }
                let mut bytes = 0u64;
                for _ in 0..count {
                    let duration = if flags & TRUN_DURATION != 0 {
                        c.u32()?
                    } else {
                        default_duration.ok_or(Fmp4Error::Missing {
                            track: id,
                            what: "sample duration",
                        })?
                    };
                    let size = if flags & TRUN_SIZE != 0 {
                        c.u32()?
                    } else {
                        default_size.ok_or(Fmp4Error::Missing {
                            track: id,
                            what: "sample size",
                        })?
                    };
                    if flags & TRUN_FLAGS != 0 {
                        c.skip(4)?;
                    }
                    if flags & TRUN_COMPOSITION_OFFSET != 0 {
                        c.skip(4)?;
                    }
                    summary.last_decode = time;
                    time += u64::from(duration);
                    bytes += u64::from(size);
                }
                summary.samples += u64::from(count);
                decode = Some(time);
                next_data = Some(start + bytes);
                data.run(id, start, bytes)?;
            }
            _ => {}
        }
    }
    let id = track.ok_or(Fmp4Error::Layout("traf without tfhd"))?;
    if decode.is_none() {
        return Err(Fmp4Error::Missing {
            track: id,
            what: "tfdt",
        });
    }
    if !saw_trun {
        return Err(Fmp4Error::Missing {
            track: id,
            what: "trun",
        });
    }
    Ok(summary)
}

/// The boxes in `data`, which must tile it exactly: each box's type and body. `at` is
/// where `data` starts in the file, for error offsets.
fn children(data: &[u8], at: u64) -> impl Iterator<Item = Result<([u8; 4], &[u8]), Fmp4Error>> {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos == data.len() {
            return None;
        }
        let result = (|| {
            let rest = &data[pos..];
            let mut c = Cursor::new(rest, "box header");
            let size32 = c.u32()?;
            let kind: [u8; 4] = c.take(4)?.try_into().unwrap_or_default();
            let (size, header) = match size32 {
                1 => (c.u64()?, LARGE_HEADER),
                0 => (rest.len() as u64, HEADER),
                n => (u64::from(n), HEADER),
            };
            if size < header as u64 {
                return Err(Fmp4Error::BoxSize {
                    offset: at + pos as u64,
                    size,
                });
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > rest.len() {
                return Err(Fmp4Error::Truncated { what: "box" });
            }
            pos += size;
            Ok((kind, &rest[header..size]))
        })();
        failed = result.is_err();
        Some(result)
    })
}

/// Big-endian reads from a box body, each checked.
struct Cursor<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor { data, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fmp4Error> {
        if self.data.len() < n {
            return Err(Fmp4Error::Truncated { what: self.what });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn skip(&mut self, n: usize) -> Result<(), Fmp4Error> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Fmp4Error> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Fmp4Error> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn u64(&mut self) -> Result<u64, Fmp4Error> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use rtmp_server::mp4::{
        SampleEntry, SampleInfo, TrackConfig, TrackId, TrackRun, write_fragment, write_init,
    };

    /// The server's own writer makes the files: video (track 1, 90 kHz) and AAC audio
    /// (track 2, 48 kHz), as `llhls.m3u8` serves them.
    fn init() -> Bytes {
        let tracks = [
            TrackConfig {
                id: TrackId::new(1).expect("id"),
                timescale: 90_000,
                entry: SampleEntry::Avc {
                    width: 640,
                    height: 360,
                    record: Bytes::from_static(&[
                        0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1e,
                        0x01, 0x00, 0x02, 0x68, 0xce,
                    ]),
                },
            },
            TrackConfig {
                id: TrackId::new(2).expect("id"),
                timescale: 48_000,
                entry: SampleEntry::Aac {
                    sample_rate: 48_000,
                    channels: 2,
                    config: Bytes::from_static(&[0x11, 0x90]),
                },
            },
        ];
        let mut out = BytesMut::new();
        write_init(&tracks, &mut out).expect("init");
        out.freeze()
    }

    fn sample(duration: u32, size: u32) -> SampleInfo {
        SampleInfo {
            duration,
            size,
            sync: false,
            composition_offset: 0,
        }
    }

    /// A part of three video frames from 126 000 (3 000 ticks apart, the last lasting
    /// 3 003) and two audio frames.
    fn part(sequence: u32) -> Bytes {
        let video = [sample(3000, 100), sample(3000, 40), sample(3003, 50)];
        let audio = [sample(1024, 20), sample(1024, 21)];
        let runs = [
            TrackRun {
                track: TrackId::new(1).expect("id"),
                base_decode_time: 126_000,
                samples: &video,
            },
            TrackRun {
                track: TrackId::new(2).expect("id"),
                base_decode_time: 67_200,
                samples: &audio,
            },
        ];
        let payloads: Vec<Vec<u8>> = [100, 40, 50, 20, 21].map(|n| vec![0xab; n]).to_vec();
        let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut out = BytesMut::new();
        write_fragment(sequence, &runs, &payloads, &mut out).expect("fragment");
        out.freeze()
    }

    fn check(data: &[u8], split: usize, info: &InitInfo) -> Result<Fragment, Fmp4Error> {
        let mut check = FragmentCheck::default();
        check.push(&data[..split]);
        check.push(&data[split..]);
        check.finish(info)
    }

    #[test]
    fn reads_the_tracks_of_an_initialization_section() {
        let info = read_init(&init()).expect("valid");
        assert_eq!(
            info.tracks
                .iter()
                .map(|t| (t.id, t.timescale, t.video))
                .collect::<Vec<_>>(),
            [(1, 90_000, true), (2, 48_000, false)]
        );
        assert_eq!(info.video().map(|t| t.id), Some(1));
        assert_eq!(read_init(b""), Err(Fmp4Error::NoMoov));
        let data = init();
        assert!(read_init(&data[..data.len() - 1]).is_err());
    }

    #[test]
    fn a_part_checks_split_anywhere_and_gives_its_last_video_decode_time() {
        let info = read_init(&init()).expect("valid");
        let data = part(7);
        for split in 0..=data.len() {
            assert_eq!(
                check(&data, split, &info),
                Ok(Fragment {
                    sequence: 7,
                    bytes: data.len() as u64,
                    samples: 5,
                    last_video_decode: Some(132_000),
                }),
                "split at {split}"
            );
        }
        // Reused for the next part.
        let mut reused = FragmentCheck::default();
        reused.push(&data);
        reused.finish(&info).expect("valid");
        reused.reset();
        reused.push(&part(8));
        assert_eq!(reused.finish(&info).map(|f| f.sequence), Ok(8));
    }

    #[test]
    fn broken_parts_are_found() {
        let info = read_init(&init()).expect("valid");
        let data = part(1).to_vec();
        let finish = |bytes: &[u8]| {
            let mut check = FragmentCheck::default();
            check.push(bytes);
            check.finish(&info)
        };
        // Cut short, or with a byte too many.
        assert_eq!(
            finish(&data[..data.len() - 3]),
            Err(Fmp4Error::Unfinished { missing: 3 })
        );
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(finish(&longer), Err(Fmp4Error::Unfinished { missing: 7 }));
        // The mdat holds a byte more than the runs describe.
        let moof_size = u32::from_be_bytes(data[..4].try_into().expect("4")) as usize;
        let mut padded = data.clone();
        let mdat_size = u32::from_be_bytes(padded[moof_size..moof_size + 4].try_into().expect("4"));
        padded[moof_size..moof_size + 4].copy_from_slice(&(mdat_size + 1).to_be_bytes());
        padded.push(0);
        assert_eq!(
            finish(&padded),
            Err(Fmp4Error::PayloadMismatch {
                runs: 231,
                mdat: 232
            })
        );
        // mdat alone, a box smaller than its header, a part without tfdt.
        assert_eq!(
            finish(&data[moof_size..]),
            Err(Fmp4Error::Layout("mdat before moof"))
        );
        assert!(matches!(
            finish(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']),
            Err(Fmp4Error::BoxSize { offset: 0, size: 4 })
        ));
        let tfdt = data.windows(4).position(|w| w == b"tfdt").expect("tfdt");
        let mut renamed = data.clone();
        renamed[tfdt..tfdt + 4].copy_from_slice(b"xxxx");
        assert_eq!(
            finish(&renamed),
            Err(Fmp4Error::Missing {
                track: 1,
                what: "tfdt before its trun"
            })
        );
    }

    #[test]
    fn a_hand_written_part_with_defaults_from_trex() {
        // moof { mfhd(seq 3), traf { tfhd(track 1, default-base-is-moof), tfdt v1 = 90_000,
        // trun(2 samples, data offset, no per-sample fields) } }, mdat of 2 x 5 bytes; the
        // durations and sizes are trex defaults.
        let mut moof = Vec::new();
        let boxed = |kind: &[u8; 4], body: &[u8]| {
            let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(kind);
            b.extend_from_slice(body);
            b
        };
        let mfhd = boxed(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 3]);
        let tfhd = boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
        let tfdt = boxed(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x5f, 0x90]);
        // trun flags: data-offset-present only; offset patched below.
        let trun = boxed(b"trun", &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        let traf = boxed(b"traf", &[tfhd, tfdt, trun].concat());
        moof.extend(boxed(b"moof", &[mfhd, traf].concat()));
        let offset = (moof.len() + 8) as u32;
        let at = moof.len() - 4;
        moof[at..].copy_from_slice(&offset.to_be_bytes());
        moof.extend(boxed(b"mdat", &[7; 10]));
        let info = InitInfo {
            tracks: vec![TrackInfo {
                id: 1,
                timescale: 90_000,
                video: true,
                default_duration: 3_000,
                default_size: 5,
            }],
        };
        assert_eq!(
            check(&moof, 13, &info),
            Ok(Fragment {
                sequence: 3,
                bytes: moof.len() as u64,
                samples: 2,
                last_video_decode: Some(93_000),
            })
        );
        // Without the defaults the sizes are unknown.
        assert_eq!(
            check(&moof, 0, &InitInfo::default()),
            Err(Fmp4Error::Missing {
                track: 1,
                what: "sample duration"
            })
        );
    }
}
