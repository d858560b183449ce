//! A thumbnail as a baseline JPEG (JFIF) file: the 4:2:0 YCbCr planes handed to
//! `jpeg-encoder` as they are (no RGB pass), at a fixed quality.
//!
//! Spec: ITU-T T.81 (JPEG baseline), JFIF 1.02.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use super::scale::Image;

/// The JPEG quality (1-100) thumbnails are written at: small files, no visible blocks at
/// thumbnail sizes.
pub const QUALITY: u8 = 80;

/// The image's rows as the encoder takes them: full-width Y, Cb and Cr per row, each chroma
/// sample repeated over the 2x2 luma samples it covers. With 4:2:0 sampling the encoder takes
/// one of every 2x2, so the chroma planes come out as they went in.
struct Planes<'a>(&'a Image);

impl ImageBuffer for Planes<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let image = self.0;
        let y = usize::from(y);
        let luma = &image.y[y * image.width..(y + 1) * image.width];
        buffers[0].extend_from_slice(luma);
        let cw = image.chroma_width();
        let row = (y / 2) * cw;
        for x in 0..image.width {
            buffers[1].push(image.cb[row + x / 2]);
            buffers[2].push(image.cr[row + x / 2]);
        }
    }
}

/// Why an image could not be written as JPEG.
#[derive(Debug, thiserror::Error)]
#[error("JPEG encoding failed: {0}")]
pub struct JpegError(String);

/// `image` as a JPEG file.
pub fn encode(image: &Image) -> Result<Vec<u8>, JpegError> {
    let fits = |v: usize| (1..=usize::from(u16::MAX)).contains(&v);
    if !fits(image.width) || !fits(image.height) {
        return Err(JpegError(format!(
            "{}x{} is outside JPEG's sizes",
            image.width, image.height
        )));
    }
    let mut out = Vec::with_capacity(image.width * image.height / 8 + 1024);
    let mut encoder = Encoder::new(&mut out, QUALITY);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder
        .encode_image(Planes(image))
        .map_err(|e| JpegError(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_becomes_a_jfif_file_of_its_size() {
        let (w, h) = (33, 17);
        let image = Image {
            width: w,
            height: h,
            y: (0..w * h).map(|i| (i % 251) as u8).collect(),
            cb: vec![90; w.div_ceil(2) * h.div_ceil(2)],
            cr: vec![200; w.div_ceil(2) * h.div_ceil(2)],
        };
        let jpeg = encode(&image).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "SOI");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "EOI");
        // SOF0: precision, height, width, three components, Y sampled 2x2.
        let sof = jpeg.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
        let frame = &jpeg[sof + 4..sof + 4 + 9];
        assert_eq!(frame[0], 8);
        assert_eq!(u16::from_be_bytes([frame[1], frame[2]]), h as u16);
        assert_eq!(u16::from_be_bytes([frame[3], frame[4]]), w as u16);
        assert_eq!(frame[5], 3);
        assert_eq!(frame[7], 0x22);
    }
}
