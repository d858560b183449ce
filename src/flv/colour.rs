//! The colour information an Enhanced RTMP video track announces in a Metadata packet
//! (`colorInfo`): colour description (ITU-T H.273 code points), content light levels and
//! the mastering display's colour volume, as HDR streams carry them. Kept per track for the
//! stats API and the webhooks.
//!
//! Spec: Enhanced RTMP v2 "Metadata Frame" (colorInfo: colorConfig, hdrCll, hdrMdcv);
//! ITU-T H.273 (colour primaries, transfer characteristics, matrix coefficients).

use serde::Serialize;

use crate::rtmp::amf0::{Decoder, Value};

/// A track's colour information; every field is optional, as the encoder may leave any out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ColourInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    /// H.273 ColourPrimaries (1 BT.709, 9 BT.2020).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour_primaries: Option<u8>,
    /// H.273 TransferCharacteristics (16 PQ, 18 HLG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_characteristics: Option<u8>,
    /// H.273 MatrixCoefficients (1 BT.709, 9 BT.2020 non-constant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix_coefficients: Option<u8>,
    /// Maximum frame-average light level, cd/m².
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fall: Option<f64>,
    /// Maximum content light level, cd/m².
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cll: Option<f64>,
    /// Mastering display luminance range, cd/m².
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_luminance: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_luminance: Option<f64>,
}

impl ColourInfo {
    /// Reads a Metadata packet's AMF0 body (`"colorInfo"`, then its object). `None` when it
    /// holds no colour information (another name, or nothing readable): such metadata is
    /// left alone, as the specification lets a receiver do with what it does not know.
    pub fn from_metadata(body: &[u8]) -> Option<ColourInfo> {
        let mut decoder = Decoder::new(body);
        let name = decoder.decode().ok()??;
        if name.as_str() != Some("colorInfo") {
            return None;
        }
        let info = decoder.decode().ok()??;
        let number = |object: Option<&Value>, field: &str| {
            object?
                .property(field)?
                .as_number()
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        let code_point = |object: Option<&Value>, field: &str| {
            number(object, field)
                .filter(|n| *n <= 255.0)
                .map(|n| n as u8)
        };
        let config = info.property("colorConfig");
        let cll = info.property("hdrCll");
        let mdcv = info.property("hdrMdcv");
        Some(ColourInfo {
            bit_depth: code_point(config, "bitDepth"),
            colour_primaries: code_point(config, "colorPrimaries"),
            transfer_characteristics: code_point(config, "transferCharacteristics"),
            matrix_coefficients: code_point(config, "matrixCoefficients"),
            max_fall: number(cll, "maxFall"),
            max_cll: number(cll, "maxCLL"),
            max_luminance: number(mdcv, "maxLuminance"),
            min_luminance: number(mdcv, "minLuminance"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    use crate::rtmp::amf0::encode;

    fn body(values: &[Value]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for v in values {
            encode(v, &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn hdr10_colour_info_is_read() {
        let info = Value::object(&[
            (
                "colorConfig",
                Value::object(&[
                    ("bitDepth", Value::Number(10.0)),
                    ("colorPrimaries", Value::Number(9.0)),
                    ("transferCharacteristics", Value::Number(16.0)),
                    ("matrixCoefficients", Value::Number(9.0)),
                ]),
            ),
            (
                "hdrCll",
                Value::object(&[
                    ("maxFall", Value::Number(400.0)),
                    ("maxCLL", Value::Number(1000.0)),
                ]),
            ),
            (
                "hdrMdcv",
                Value::object(&[
                    ("maxLuminance", Value::Number(1000.0)),
                    ("minLuminance", Value::Number(0.005)),
                ]),
            ),
        ]);
        let colour = ColourInfo::from_metadata(&body(&["colorInfo".into(), info])).unwrap();
        assert_eq!(colour.bit_depth, Some(10));
        assert_eq!(
            (
                colour.colour_primaries,
                colour.transfer_characteristics,
                colour.matrix_coefficients
            ),
            (Some(9), Some(16), Some(9))
        );
        assert_eq!(
            (colour.max_fall, colour.max_cll),
            (Some(400.0), Some(1000.0))
        );
        assert_eq!(colour.min_luminance, Some(0.005));
    }

    #[test]
    fn other_metadata_and_bad_values_are_left_alone() {
        assert_eq!(ColourInfo::from_metadata(&body(&["other".into()])), None);
        assert_eq!(ColourInfo::from_metadata(&[0xff, 0x00]), None);
        let bad = Value::object(&[(
            "colorConfig",
            Value::object(&[
                ("colorPrimaries", Value::Number(300.0)),
                ("matrixCoefficients", Value::Number(f64::NAN)),
                ("bitDepth", Value::String("ten".into())),
            ]),
        )]);
        let colour = ColourInfo::from_metadata(&body(&["colorInfo".into(), bad])).unwrap();
        assert_eq!(colour, ColourInfo::default());
        // Every cut of a real body is refused or read, never a panic.
        let full = body(&[
            "colorInfo".into(),
            Value::object(&[(
                "colorConfig",
                Value::object(&[("bitDepth", Value::Number(8.0))]),
            )]),
        ]);
        for cut in 0..full.len() {
            let _ = ColourInfo::from_metadata(&full[..cut]);
        }
    }
}
