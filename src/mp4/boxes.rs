//! Box headers written in place: the 32-bit size is written as a placeholder when a box
//! opens and patched when it closes, so nested boxes need no size computed up front.
//!
//! Spec: ISO/IEC 14496-12 §4.2 (Box, FullBox), §4.3 (FileTypeBox).

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::mp4::error::Mp4Error;

/// Size of a box header: 32-bit size and 32-bit type.
pub const BOX_HEADER_SIZE: usize = 8;

/// Size of a full box header: the box header, then 8-bit version and 24-bit flags.
pub const FULL_BOX_HEADER_SIZE: usize = 12;

/// A four-character code: a box type or a brand.
///
/// Spec: ISO/IEC 14496-12 §4.2 (type), §4.3 (brands).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const fn new(code: &[u8; 4]) -> FourCc {
        FourCc(*code)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            self.0
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            write!(f, "0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// A box whose header is written and whose size is still to be patched in by
/// [`OpenBox::end`].
#[must_use = "a box left open keeps a zero size"]
pub struct OpenBox {
    /// Offset of the size field in the output buffer.
    start: usize,
    kind: FourCc,
}

impl OpenBox {
    /// Starts a box: a size placeholder and the type.
    ///
    /// Spec: ISO/IEC 14496-12 §4.2 `aligned(8) class Box`.
    pub fn begin(out: &mut BytesMut, kind: FourCc) -> OpenBox {
        let start = out.len();
        out.put_u32(0);
        out.put_slice(&kind.0);
        OpenBox { start, kind }
    }

    /// Starts a full box: the box header, then version and flags (24 bits; higher bits of
    /// `flags` are ignored).
    ///
    /// Spec: ISO/IEC 14496-12 §4.2 `aligned(8) class FullBox`.
    pub fn begin_full(out: &mut BytesMut, kind: FourCc, version: u8, flags: u32) -> OpenBox {
        let open = OpenBox::begin(out, kind);
        out.put_u32(u32::from(version) << 24 | (flags & 0x00ff_ffff));
        open
    }

    /// Closes the box: patches its size (everything written since it began, header
    /// included) and returns it. Refuses a box over 32 bits; this writer never uses
    /// `largesize`.
    pub fn end(self, out: &mut BytesMut) -> Result<u32, Mp4Error> {
        let size = out.len() - self.start;
        let size32 = u32::try_from(size).map_err(|_| Mp4Error::BoxTooLarge {
            kind: self.kind,
            size: size as u64,
        })?;
        out[self.start..self.start + 4].copy_from_slice(&size32.to_be_bytes());
        Ok(size32)
    }
}

/// Runs `write` and, if it fails, truncates `out` back to where it started, so a refused
/// request leaves no half-written box behind.
pub fn all_or_nothing<T>(
    out: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Result<T, Mp4Error>,
) -> Result<T, Mp4Error> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_patch_their_sizes() {
        let mut out = BytesMut::from(&b"xx"[..]);
        let outer = OpenBox::begin(&mut out, FourCc::new(b"moov"));
        let inner = OpenBox::begin_full(&mut out, FourCc::new(b"mvhd"), 1, 0xff_00_00_03);
        out.put_u8(0xaa);
        assert_eq!(inner.end(&mut out), Ok(13));
        assert_eq!(outer.end(&mut out), Ok(21));
        let expected = hex::decode(
            concat!(
                "7878",                       // bytes already in the buffer stay
                "00000015 6d6f6f76",          // size 21, 'moov'
                "0000000d 6d766864 01000003", // size 13, 'mvhd', version 1, flags 3 (bits above 24 dropped)
                "aa",
            )
            .replace(' ', ""),
        )
        .unwrap();
        assert_eq!(out[..], expected[..]);
    }

    #[test]
    fn a_failed_write_leaves_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let result: Result<(), _> = all_or_nothing(&mut out, |out| {
            out.put_slice(b"partial");
            Err(Mp4Error::TrackIdZero)
        });
        assert_eq!(result, Err(Mp4Error::TrackIdZero));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn four_cc_displays_as_text_or_hex() {
        assert_eq!(FourCc::new(b"url ").to_string(), "url ");
        assert_eq!(FourCc([0, 1, 2, 3]).to_string(), "0x00010203");
    }
}
