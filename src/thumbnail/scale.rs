//! A decoded picture scaled to a thumbnail's width, in the colours a JPEG file holds.
//!
//! Scaling is by area (each output sample the average of the source samples it covers, with
//! fractional weights at the edges: no aliasing however far down), separable, in fixed point.
//! A JPEG (JFIF) holds full-range BT.601 YCbCr, so video's limited-range samples are
//! stretched and BT.709 pictures converted on the way out; the planes stay 4:2:0, which is
//! what the JPEG encoder writes, with no RGB pass.
//!
//! Spec: JFIF 1.02 (full-range YCbCr, ITU-R BT.601 matrix); ISO/IEC 14496-10 §E.2.1
//! (video_full_range_flag, matrix_coefficients); ITU-R BT.709 Table 3 and BT.601 §2.5.

use super::decode::{Colour, Picture};

/// Narrowest thumbnail made.
pub const MIN_WIDTH: u32 = 16;

/// Widest thumbnail made; never wider than the picture either.
pub const MAX_WIDTH: u32 = 1920;

/// The widths thumbnails are made at: a width asked for is rounded up to the next of these
/// (never above the picture's own), so one picture has at most these and its own width as
/// JPEG files, however many widths are asked for.
pub const WIDTHS: [u32; 7] = [160, 320, 480, 640, 960, 1280, 1920];

/// Tallest thumbnail made (a picture with very tall samples).
const MAX_HEIGHT: usize = 4096;

/// A picture ready for JPEG: full-range BT.601 YCbCr, chroma at half width and height
/// (rounded up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
}

impl Image {
    /// Chroma plane width.
    pub fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }
}

/// The width of a thumbnail of a picture `picture_width` wide at `width` (its own width
/// when none is asked for): `width` rounded up to the next of [`WIDTHS`], at most the
/// picture's width and [`MAX_WIDTH`].
pub fn output_width(picture_width: usize, width: Option<u32>) -> usize {
    let rounded = width.map(|w| WIDTHS.into_iter().find(|&s| s >= w).unwrap_or(MAX_WIDTH));
    rounded
        .map_or(picture_width, |w| w as usize)
        .min(picture_width)
        .min(MAX_WIDTH as usize)
        .max(1)
}

/// The thumbnail's size for `picture` at `width` (its own width when none is asked for):
/// [`output_width`], the height keeping the picture's shape on screen (its sample aspect
/// ratio applied).
pub fn output_size(picture: &Picture, width: Option<u32>) -> (usize, usize) {
    let width = output_width(picture.width, width);
    let height = (width as f64 / picture.display_aspect()).round();
    let height = if height.is_finite() {
        (height as usize).clamp(1, MAX_HEIGHT)
    } else {
        1
    };
    (width, height)
}

/// `picture` scaled to `width` x `height`, in JPEG's colours.
pub fn scale(picture: &Picture, width: usize, height: usize) -> Image {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (pw, ph) = (picture.width, picture.height);
    let mut image = Image {
        width,
        height,
        y: resample(&picture.y, pw, ph, width, height),
        cb: resample(&picture.cb, pw / 2, ph / 2, cw, ch),
        cr: resample(&picture.cr, pw / 2, ph / 2, cw, ch),
    };
    to_jfif(&mut image, picture.colour);
    image
}

/// Fixed-point weights carry this many fractional bits.
const WEIGHT_BITS: u32 = 14;
const ONE: u32 = 1 << WEIGHT_BITS;

/// The source samples each output sample covers: where they start, and their weights
/// (summing to [`ONE`]).
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<u32>>,
}

impl Taps {
    fn new(from: usize, to: usize) -> Taps {
        let step = from as f64 / to as f64;
        let mut start = Vec::with_capacity(to);
        let mut weights = Vec::with_capacity(to);
        for i in 0..to {
            let (lo, hi) = (i as f64 * step, ((i + 1) as f64 * step).min(from as f64));
            let first = (lo.floor() as usize).min(from - 1);
            let last = ((hi.ceil() as usize).max(first + 1)).min(from);
            let mut w: Vec<u32> = (first..last)
                .map(|j| {
                    let overlap = (hi.min((j + 1) as f64) - lo.max(j as f64)).max(0.0);
                    (overlap / (hi - lo) * f64::from(ONE)).round() as u32
                })
                .collect();
            // Rounding leaves the sum a little off ONE: the largest weight takes it up.
            let sum: u32 = w.iter().sum();
            if let Some(max) = w.iter_mut().max() {
                *max = (*max + ONE).saturating_sub(sum);
            }
            start.push(first);
            weights.push(w);
        }
        Taps { start, weights }
    }
}

/// One plane (`w` x `h`, row by row) scaled to `to_w` x `to_h` by area.
fn resample(plane: &[u8], w: usize, h: usize, to_w: usize, to_h: usize) -> Vec<u8> {
    if w == 0 || h == 0 || plane.len() < w * h {
        return vec![128; to_w * to_h];
    }
    if (w, h) == (to_w, to_h) {
        return plane[..w * h].to_vec();
    }
    let across = Taps::new(w, to_w);
    let down = Taps::new(h, to_h);
    // Rows scaled across, with 8 fractional bits kept.
    let mut rows = vec![0u16; to_w * h];
    for (src, dst) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(to_w)) {
        for (x, out) in dst.iter_mut().enumerate() {
            let s = across.start[x];
            let sum: u32 = across.weights[x]
                .iter()
                .zip(&src[s..])
                .map(|(&wt, &v)| wt * u32::from(v))
                .sum();
            *out = ((sum + (1 << (WEIGHT_BITS - 9))) >> (WEIGHT_BITS - 8)) as u16;
        }
    }
    let mut out = vec![0u8; to_w * to_h];
    let mut acc = vec![0u32; to_w];
    for (y, dst) in out.chunks_exact_mut(to_w).enumerate() {
        acc.fill(0);
        let s = down.start[y];
        for (k, &wt) in down.weights[y].iter().enumerate() {
            let row = &rows[(s + k) * to_w..(s + k + 1) * to_w];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += wt * u32::from(v);
            }
        }
        let shift = WEIGHT_BITS + 8;
        for (o, &a) in dst.iter_mut().zip(&acc) {
            *o = ((a + (1 << (shift - 1))) >> shift).min(255) as u8;
        }
    }
    out
}

/// Video samples to JFIF's: limited range stretched to full, BT.709 matrix converted to
/// BT.601's.
fn to_jfif(image: &mut Image, colour: Colour) {
    if !colour.full_range {
        let luma = lut(|v| (v - 16.0) * 255.0 / 219.0);
        let chroma = lut(|v| (v - 128.0) * 255.0 / 224.0 + 128.0);
        image.y.iter_mut().for_each(|v| *v = luma[usize::from(*v)]);
        for v in image.cb.iter_mut().chain(image.cr.iter_mut()) {
            *v = chroma[usize::from(*v)];
        }
    }
    if colour.bt709 {
        bt709_to_bt601(image);
    }
}

fn lut(f: impl Fn(f32) -> f32) -> [u8; 256] {
    std::array::from_fn(|i| f(i as f32).round().clamp(0.0, 255.0) as u8)
}

/// Full-range BT.709 YCbCr to BT.601's: the same RGB, through each matrix. Luma takes a
/// little of both chroma components (the chroma sample covering it).
fn bt709_to_bt601(image: &mut Image) {
    // BT.709: R = Y + 1.5748 Cr, G = Y - 0.1873 Cb - 0.4681 Cr, B = Y + 1.8556 Cb; then
    // BT.601: Y' = 0.299 R + 0.587 G + 0.114 B, Cb' = (B - Y') / 1.772, Cr' = (R - Y') / 1.402.
    const Y_CB: f32 = 0.114 * 1.8556 - 0.587 * 0.1873;
    const Y_CR: f32 = 0.299 * 1.5748 - 0.587 * 0.4681;
    let cw = image.chroma_width();
    for (row, line) in image.y.chunks_exact_mut(image.width).enumerate() {
        for (x, v) in line.iter_mut().enumerate() {
            let c = (row / 2) * cw + x / 2;
            let cb = f32::from(image.cb[c]) - 128.0;
            let cr = f32::from(image.cr[c]) - 128.0;
            *v = (f32::from(*v) + Y_CB * cb + Y_CR * cr)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    for (b, r) in image.cb.iter_mut().zip(image.cr.iter_mut()) {
        let cb = f32::from(*b) - 128.0;
        let cr = f32::from(*r) - 128.0;
        let new_cb = ((1.8556 - Y_CB) * cb - Y_CR * cr) / 1.772;
        let new_cr = ((1.5748 - Y_CR) * cr - Y_CB * cb) / 1.402;
        *b = (new_cb + 128.0).round().clamp(0.0, 255.0) as u8;
        *r = (new_cr + 128.0).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: usize, height: usize, luma: impl Fn(usize, usize) -> u8) -> Picture {
        let mut y = Vec::with_capacity(width * height);
        for row in 0..height {
            for x in 0..width {
                y.push(luma(x, row));
            }
        }
        Picture {
            width,
            height,
            y,
            cb: vec![128; width / 2 * height / 2],
            cr: vec![128; width / 2 * height / 2],
            colour: Colour {
                full_range: true,
                bt709: false,
            },
            sample_aspect: (1, 1),
        }
    }

    #[test]
    fn the_size_keeps_the_shape_and_never_exceeds_the_picture() {
        let p = picture(1280, 720, |_, _| 0);
        assert_eq!(output_size(&p, None), (1280, 720));
        assert_eq!(output_size(&p, Some(320)), (320, 180));
        assert_eq!(output_size(&p, Some(4000)), (1280, 720));
        let mut anamorphic = picture(720, 576, |_, _| 0);
        anamorphic.sample_aspect = (64, 45); // PAL 16:9
        assert_eq!(output_size(&anamorphic, Some(320)), (320, 180));
        let big = picture(3840, 2160, |_, _| 0);
        assert_eq!(output_size(&big, None), (1920, 1080));
        // Asked widths are rounded up to a few sizes, never past the picture's.
        assert_eq!(output_width(1280, Some(16)), 160);
        assert_eq!(output_width(1280, Some(321)), 480);
        assert_eq!(output_width(1280, Some(1000)), 1280);
        assert_eq!(output_width(3840, Some(1000)), 1280);
        assert_eq!(output_width(3840, Some(1921)), 1920);
        assert_eq!(output_width(200, Some(320)), 200);
    }

    #[test]
    fn a_flat_picture_stays_flat_and_an_edge_is_averaged() {
        let flat = picture(64, 32, |_, _| 77);
        let image = scale(&flat, 20, 10);
        assert!(image.y.iter().all(|&v| v == 77), "{:?}", &image.y[..20]);
        assert_eq!(image.cb.len(), 10 * 5);
        // Left half black, right half white, scaled 64 -> 3: the middle sample straddles
        // the edge and is the average.
        let edge = picture(64, 2, |x, _| if x < 32 { 0 } else { 255 });
        let image = scale(&edge, 3, 2);
        assert_eq!(&image.y[..3], &[0, 128, 255]);
    }

    #[test]
    fn scaling_by_two_averages_blocks() {
        let p = picture(4, 2, |x, y| (x * 10 + y * 100) as u8);
        let image = scale(&p, 2, 1);
        // (0 + 10 + 100 + 110) / 4 = 55, (20 + 30 + 120 + 130) / 4 = 75.
        assert_eq!(image.y, vec![55, 75]);
    }

    #[test]
    fn limited_range_is_stretched_to_full() {
        let mut p = picture(4, 4, |x, _| [16, 235, 126, 0][x]);
        p.colour.full_range = false;
        let image = scale(&p, 4, 4);
        assert_eq!(&image.y[..4], &[0, 255, 128, 0]);
        assert!(image.cb.iter().all(|&v| v == 128));
    }

    #[test]
    fn bt709_grey_stays_grey_and_colours_move_toward_bt601() {
        let mut p = picture(2, 2, |_, _| 100);
        p.colour.bt709 = true;
        let image = scale(&p, 2, 2);
        assert_eq!(image.y, vec![100; 4]);
        assert_eq!((image.cb[0], image.cr[0]), (128, 128));
        // Pure red in BT.709 full range: Y 54, Cb 99, Cr 255 -> BT.601: Y 76, Cb 85, Cr 255.
        p.y = vec![54; 4];
        p.cb = vec![99];
        p.cr = vec![255];
        let image = scale(&p, 2, 2);
        assert!((i32::from(image.y[0]) - 76).abs() <= 2, "{}", image.y[0]);
        assert!((i32::from(image.cb[0]) - 85).abs() <= 2, "{}", image.cb[0]);
        assert!(image.cr[0] >= 250, "{}", image.cr[0]);
    }
}
