//! Enhanced RTMP capability negotiation in `connect`: what a client announces about the
//! codecs and extensions it handles, and what this server answers.
//!
//! A client names the codecs it handles in its `connect` command object: `fourCcList` (a
//! strict array of FourCC strings, `"*"` for any codec), `videoFourCcInfoMap` and
//! `audioFourCcInfoMap` (FourCC → [`fourcc_info`] flags) and `capsEx` ([`caps_ex`] flags).
//! The server states what it supports the same way in the properties object of the connect
//! `_result`. Only clients that announced something get those properties back: a legacy
//! client sees the reply it always saw.
//!
//! What is read is bounded ([`MAX_ENTRIES`] per property) and forgiving: a property of the
//! wrong type, or an entry that is not a FourCC with a flag number, is left out with a debug
//! log; it never fails the connect.
//!
//! Spec: Enhanced RTMP v2 (veovera/enhanced-rtmp, docs/enhanced/enhanced-rtmp-v2.md),
//! "Enhancing NetConnection connect Command".

use super::amf0::Value;
use super::session::MediaKind;

/// Most entries read from each of `fourCcList`, `videoFourCcInfoMap` and
/// `audioFourCcInfoMap`; later ones are ignored. Clients name about ten codecs; the bound
/// keeps what one connect can make the session hold small.
pub const MAX_ENTRIES: usize = 64;

/// The flags of a `[video|audio]FourCcInfoMap` entry (enum FourCcInfoMask). Spec: Enhanced
/// RTMP v2, "Enhancing NetConnection connect Command".
pub mod fourcc_info {
    /// The peer can decode the codec.
    pub const CAN_DECODE: u32 = 0x01;
    /// The peer can encode the codec.
    pub const CAN_ENCODE: u32 = 0x02;
    /// The peer can forward the codec without decoding it (a server, a recorder).
    pub const CAN_FORWARD: u32 = 0x04;
}

/// The flags of `capsEx` (enum CapsExMask). Spec: Enhanced RTMP v2, "Enhancing
/// NetConnection connect Command".
pub mod caps_ex {
    /// Support for NetConnection.Connect.ReconnectRequest.
    pub const RECONNECT: u32 = 0x01;
    /// Support for multitrack audio and video (AvMultitrackType).
    pub const MULTITRACK: u32 = 0x02;
    /// The peer can parse the ModEx signal (PacketType.ModEx modifier extensions).
    pub const MOD_EX: u32 = 0x04;
    /// Support for the ModEx nanosecond timestamp offset.
    pub const TIMESTAMP_NANO_OFFSET: u32 = 0x08;
}

/// The codecs this server takes from publishers and repackages into HLS, with the media
/// they are: the FourCCs of its `fourCcList` answer and the keys of its
/// `videoFourCcInfoMap` and `audioFourCcInfoMap` answers (one list for all three).
pub const SERVED_FOURCCS: [(&str, MediaKind); 10] = [
    ("avc1", MediaKind::Video),
    ("hvc1", MediaKind::Video),
    ("av01", MediaKind::Video),
    ("vp09", MediaKind::Video),
    ("mp4a", MediaKind::Audio),
    ("Opus", MediaKind::Audio),
    ("fLaC", MediaKind::Audio),
    ("ac-3", MediaKind::Audio),
    ("ec-3", MediaKind::Audio),
    (".mp3", MediaKind::Audio),
];

/// The [`fourcc_info`] flags answered for every codec of [`SERVED_FOURCCS`]: CanForward.
///
/// The server ingests a codec and repackages it without decoding, which is what CanForward
/// says ("can forward any codec", the spec's example for a server); CanDecode would claim
/// a decoder it does not have. No encoder reads the flags to decide what to publish:
/// OBS's librtmp (obs-studio plugins/obs-outputs/librtmp/rtmp.c, SendConnectPacket and
/// HandleInvoke) neither sends these properties nor reads the connect `_result` beyond its
/// transaction id (rtmp-stream.c takes the codecs from the encoders the user chose), so
/// OBS publishes HEVC, AV1 and multitrack whatever the bits. ffmpeg announces a
/// `fourCcList` when asked (`-rtmp_enhanced_codecs`) and does not read the answer either.
/// So the bits follow the spec's meaning.
pub const SERVED_INFO: u32 = fourcc_info::CAN_FORWARD;

/// The `capsEx` answered: multitrack, ModEx and its nanosecond timestamp offset (the
/// demuxer folds the offset into media time). Not Reconnect: the server never asks a
/// publisher to reconnect.
pub const SERVED_CAPS_EX: u32 =
    caps_ex::MULTITRACK | caps_ex::MOD_EX | caps_ex::TIMESTAMP_NANO_OFFSET;

/// A codec named in Enhanced RTMP: a FourCC, or the wildcard `"*"` (any codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FourCc {
    /// `"*"`: any codec.
    Any,
    /// Four bytes of printable ASCII, e.g. `hvc1`, `.mp3`, `ac-3`.
    Code([u8; 4]),
}

impl FourCc {
    /// The code a string names: `"*"`, or exactly four printable ASCII characters.
    pub fn parse(s: &str) -> Option<FourCc> {
        if s == "*" {
            return Some(FourCc::Any);
        }
        let code: [u8; 4] = s.as_bytes().try_into().ok()?;
        code.iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
            .then_some(FourCc::Code(code))
    }
}

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FourCc::Any => f.write_str("*"),
            // parse admits printable ASCII only.
            FourCc::Code(code) => f.write_str(std::str::from_utf8(code).unwrap_or("????")),
        }
    }
}

/// Where a client named a codec, with the flags it gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// In `fourCcList`, which carries no flags: the client handles the codec.
    List,
    /// In `videoFourCcInfoMap`, with its [`fourcc_info`] flags.
    Video(u32),
    /// In `audioFourCcInfoMap`, with its [`fourcc_info`] flags.
    Audio(u32),
}

/// One codec a client named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FourCcCap {
    pub fourcc: FourCc,
    pub announced: Announced,
}

/// What a client announced about Enhanced RTMP in `connect`: the codecs it named (at most
/// [`MAX_ENTRIES`] from each property, in wire order: `fourCcList`, then the video map,
/// then the audio map) and its `capsEx` flags (0 when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnhancedCaps {
    pub fourccs: Vec<FourCcCap>,
    pub caps_ex: u32,
}

impl EnhancedCaps {
    /// What a connect command object announces; `None` when it holds none of the Enhanced
    /// RTMP properties in a form that can be read (a legacy client). Entries that cannot be
    /// read are left out; an empty `fourCcList` still makes the client an Enhanced RTMP one.
    pub fn from_connect_object(object: &Value) -> Option<EnhancedCaps> {
        let mut caps = EnhancedCaps::default();
        let mut announced = false;
        match object.property("fourCcList") {
            None => {}
            Some(Value::StrictArray(items)) => {
                announced = true;
                if items.len() > MAX_ENTRIES {
                    tracing::debug!(
                        entries = items.len(),
                        "fourCcList longer than {MAX_ENTRIES}; the rest is ignored"
                    );
                }
                for item in items.iter().take(MAX_ENTRIES) {
                    match item.as_str().and_then(FourCc::parse) {
                        Some(fourcc) => caps.fourccs.push(FourCcCap {
                            fourcc,
                            announced: Announced::List,
                        }),
                        None => tracing::debug!(?item, "ignoring a fourCcList entry"),
                    }
                }
            }
            Some(other) => {
                tracing::debug!(value = ?other, "ignoring fourCcList: not a strict array");
            }
        }
        for (name, as_announced) in [
            (
                "videoFourCcInfoMap",
                Announced::Video as fn(u32) -> Announced,
            ),
            ("audioFourCcInfoMap", Announced::Audio),
        ] {
            let Some(map) = object.property(name) else {
                continue;
            };
            let Some(entries) = map.properties() else {
                tracing::debug!(name, value = ?map, "ignoring a FourCC map: not an object");
                continue;
            };
            announced = true;
            if entries.len() > MAX_ENTRIES {
                tracing::debug!(
                    name,
                    entries = entries.len(),
                    "FourCC map larger than {MAX_ENTRIES}; the rest is ignored"
                );
            }
            for (key, value) in entries.iter().take(MAX_ENTRIES) {
                match (FourCc::parse(key), value.as_number().and_then(flags)) {
                    (Some(fourcc), Some(mask)) => caps.fourccs.push(FourCcCap {
                        fourcc,
                        announced: as_announced(mask),
                    }),
                    _ => tracing::debug!(name, key, ?value, "ignoring a FourCC map entry"),
                }
            }
        }
        match object.property("capsEx") {
            None => {}
            Some(value) => match value.as_number().and_then(flags) {
                Some(mask) => {
                    announced = true;
                    caps.caps_ex = mask;
                }
                None => tracing::debug!(?value, "ignoring capsEx: not a flag number"),
            },
        }
        announced.then_some(caps)
    }

    /// Whether the client named `fourcc`, or `"*"`, anywhere (list or map, whatever the
    /// flags).
    pub fn names(&self, fourcc: FourCc) -> bool {
        self.fourccs
            .iter()
            .any(|cap| cap.fourcc == fourcc || cap.fourcc == FourCc::Any)
    }

    /// The properties this server adds to the connect `_result` properties object for a
    /// client that announced Enhanced RTMP: `fourCcList`, `videoFourCcInfoMap`,
    /// `audioFourCcInfoMap` (built from [`SERVED_FOURCCS`] with [`SERVED_INFO`]) and
    /// `capsEx` ([`SERVED_CAPS_EX`]).
    pub fn server_answer() -> Vec<(String, Value)> {
        let list = SERVED_FOURCCS
            .iter()
            .map(|(fourcc, _)| Value::from(*fourcc))
            .collect();
        let map = |kind: MediaKind| {
            Value::Object(
                SERVED_FOURCCS
                    .iter()
                    .filter(|(_, k)| *k == kind)
                    .map(|(fourcc, _)| ((*fourcc).to_owned(), f64::from(SERVED_INFO).into()))
                    .collect(),
            )
        };
        vec![
            ("fourCcList".to_owned(), Value::StrictArray(list)),
            ("videoFourCcInfoMap".to_owned(), map(MediaKind::Video)),
            ("audioFourCcInfoMap".to_owned(), map(MediaKind::Audio)),
            ("capsEx".to_owned(), f64::from(SERVED_CAPS_EX).into()),
        ]
    }
}

/// A flag number as flags: a whole number from 0 to 2^32 - 1 (AMF0 numbers are doubles).
fn flags(n: f64) -> Option<u32> {
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, Value)]) -> Vec<(String, Value)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn code(s: &str) -> FourCc {
        FourCc::parse(s).expect("a FourCC")
    }

    #[test]
    fn fourcc_forms() {
        assert_eq!(FourCc::parse("*"), Some(FourCc::Any));
        assert_eq!(FourCc::parse("hvc1"), Some(FourCc::Code(*b"hvc1")));
        assert_eq!(FourCc::parse(".mp3"), Some(FourCc::Code(*b".mp3")));
        for bad in ["", "hvc", "hvc1x", "**", "h\0c1", "hé1", "a\tbc"] {
            assert_eq!(FourCc::parse(bad), None, "{bad:?}");
        }
        assert_eq!(code("ac-3").to_string(), "ac-3");
        assert_eq!(FourCc::Any.to_string(), "*");
    }

    #[test]
    fn flag_numbers() {
        assert_eq!(flags(0.0), Some(0));
        assert_eq!(flags(7.0), Some(7));
        assert_eq!(flags(f64::from(u32::MAX)), Some(u32::MAX));
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 4_294_967_296.0] {
            assert_eq!(flags(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_every_property() {
        let object = Value::Object(props(&[
            ("app", "live".into()),
            (
                "fourCcList",
                Value::StrictArray(vec!["av01".into(), "*".into()]),
            ),
            (
                "videoFourCcInfoMap",
                Value::EcmaArray(props(&[("hvc1", 3.0.into())])),
            ),
            (
                "audioFourCcInfoMap",
                Value::Object(props(&[("Opus", 4.0.into())])),
            ),
            ("capsEx", 6.0.into()),
        ]));
        let caps = EnhancedCaps::from_connect_object(&object).expect("announced");
        assert_eq!(
            caps,
            EnhancedCaps {
                fourccs: vec![
                    FourCcCap {
                        fourcc: code("av01"),
                        announced: Announced::List
                    },
                    FourCcCap {
                        fourcc: FourCc::Any,
                        announced: Announced::List
                    },
                    FourCcCap {
                        fourcc: code("hvc1"),
                        announced: Announced::Video(3)
                    },
                    FourCcCap {
                        fourcc: code("Opus"),
                        announced: Announced::Audio(4)
                    },
                ],
                caps_ex: 6,
            }
        );
        assert!(caps.names(code("vp09")), "the wildcard names every codec");
    }

    #[test]
    fn legacy_objects_announce_nothing() {
        for object in [
            Value::Object(props(&[("app", "live".into())])),
            Value::Null,
            Value::StrictArray(vec![]),
        ] {
            assert_eq!(EnhancedCaps::from_connect_object(&object), None);
        }
    }

    #[test]
    fn wrong_types_are_ignored() {
        let object = Value::Object(props(&[
            ("fourCcList", "hvc1".into()),
            (
                "videoFourCcInfoMap",
                Value::StrictArray(vec!["hvc1".into()]),
            ),
            ("audioFourCcInfoMap", 4.0.into()),
            ("capsEx", "2".into()),
        ]));
        assert_eq!(EnhancedCaps::from_connect_object(&object), None);
        // Bad entries drop out; the good ones stay.
        let object = Value::Object(props(&[
            (
                "fourCcList",
                Value::StrictArray(vec![
                    1.0.into(),
                    "toolong".into(),
                    Value::Null,
                    "hvc1".into(),
                ]),
            ),
            (
                "videoFourCcInfoMap",
                Value::Object(props(&[
                    ("av01", "4".into()),
                    ("vp9", 4.0.into()),
                    ("vp09", (-1.0).into()),
                    ("avc1", 1.0.into()),
                ])),
            ),
            ("capsEx", 2.5.into()),
        ]));
        let caps = EnhancedCaps::from_connect_object(&object).expect("announced");
        assert_eq!(
            caps.fourccs,
            [
                FourCcCap {
                    fourcc: code("hvc1"),
                    announced: Announced::List
                },
                FourCcCap {
                    fourcc: code("avc1"),
                    announced: Announced::Video(1)
                },
            ]
        );
        assert_eq!(caps.caps_ex, 0);
        assert!(!caps.names(code("av01")));
    }

    #[test]
    fn reading_is_bounded() {
        let list = Value::StrictArray((0..1000).map(|i| format!("c{i:03}").into()).collect());
        let map = Value::EcmaArray(
            (0..1000)
                .map(|i| (format!("m{i:03}"), 4.0.into()))
                .collect(),
        );
        let object = Value::Object(vec![
            ("fourCcList".to_owned(), list),
            ("videoFourCcInfoMap".to_owned(), map.clone()),
            ("audioFourCcInfoMap".to_owned(), map),
        ]);
        let caps = EnhancedCaps::from_connect_object(&object).expect("announced");
        assert_eq!(caps.fourccs.len(), 3 * MAX_ENTRIES);
        assert_eq!(caps.fourccs[MAX_ENTRIES - 1].fourcc, code("c063"));
    }

    #[test]
    fn answer_lists_each_served_codec_once() {
        let answer = Value::Object(EnhancedCaps::server_answer());
        let Some(Value::StrictArray(list)) = answer.property("fourCcList") else {
            panic!("fourCcList: {answer:?}");
        };
        let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        assert_eq!(
            names,
            [
                "avc1", "hvc1", "av01", "vp09", "mp4a", "Opus", "fLaC", "ac-3", "ec-3", ".mp3"
            ]
        );
        let keys = |name| -> Vec<(String, Value)> {
            answer
                .property(name)
                .and_then(Value::properties)
                .expect("an object")
                .to_vec()
        };
        assert_eq!(
            keys("videoFourCcInfoMap"),
            props(&[
                ("avc1", 4.0.into()),
                ("hvc1", 4.0.into()),
                ("av01", 4.0.into()),
                ("vp09", 4.0.into()),
            ])
        );
        assert_eq!(keys("audioFourCcInfoMap").len(), 6);
        assert_eq!(answer.property("capsEx"), Some(&14.0.into()));
        // What the server answers reads back as what it serves.
        let caps = EnhancedCaps::from_connect_object(&answer).expect("announced");
        assert_eq!(caps.fourccs.len(), 2 * SERVED_FOURCCS.len());
        assert_eq!(caps.caps_ex, SERVED_CAPS_EX);
    }
}
