//! The multivariant (master) playlist of an adaptive-bitrate stream: one EXT-X-STREAM-INF
//! per video variant, each naming its media playlist, and one EXT-X-MEDIA per audio
//! rendition, grouped by GROUP-ID, that the variants refer to. Sans-IO: a typed value in,
//! text out.
//!
//! Values from publishers (rendition names, languages) are written so the playlist stays
//! valid whatever they hold: see [`Multivariant::render`].
//!
//! Spec: RFC 8216bis (draft-pantos-hls-rfc8216bis) §4.1 (format), §4.2 (attribute lists),
//! §4.4.2.1 (EXT-X-INDEPENDENT-SEGMENTS), §4.4.3.1 (EXT-X-VERSION), §4.4.6.1 (EXT-X-MEDIA),
//! §4.4.6.2 (EXT-X-STREAM-INF); RFC 6381 §3 (CODECS values).

use std::fmt::Write;

/// One variant stream: an EXT-X-STREAM-INF tag and the URI line of its media playlist.
///
/// Spec: RFC 8216bis §4.4.6.2.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The media playlist, relative to the multivariant playlist.
    pub uri: String,
    /// BANDWIDTH: the peak segment bit rate in bits per second, of the variant with its
    /// audio (§4.4.6.2).
    pub bandwidth: u64,
    /// AVERAGE-BANDWIDTH: the average segment bit rate, when known.
    pub average_bandwidth: Option<u64>,
    /// RESOLUTION: width and height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// FRAME-RATE: the maximum frame rate, written to 3 decimals; left out when not a
    /// positive finite number.
    pub frame_rate: Option<f64>,
    /// CODECS: comma-joined RFC 6381 strings of the variant AND its audio group, e.g.
    /// "avc1.64001f,mp4a.40.2" (§4.4.6.2: every format in the variant's renditions).
    pub codecs: String,
    /// AUDIO: the GROUP-ID of the audio renditions that play with this variant.
    pub audio_group: Option<String>,
}

/// One audio rendition: an EXT-X-MEDIA tag of TYPE=AUDIO.
///
/// Spec: RFC 8216bis §4.4.6.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRendition {
    /// GROUP-ID: the group a variant's AUDIO attribute names.
    pub group: String,
    /// NAME: what a player shows; unique within the group (§4.4.6.1.1, the caller's job).
    pub name: String,
    /// LANGUAGE: an RFC 5646 language tag.
    pub language: Option<String>,
    /// DEFAULT=YES: play this one when the user has not chosen. At most one per group is
    /// written as such (§4.4.6.1.1); a later one in the same group is written NO.
    pub default: bool,
    /// AUTOSELECT=YES: a player may choose it by its language. Written YES whenever
    /// DEFAULT is (§4.4.6.1: "its value MUST be YES if the value of the DEFAULT attribute
    /// is YES").
    pub autoselect: bool,
    /// CHANNELS: the most independent channels in any of its media segments.
    pub channels: Option<u8>,
    /// URI of its media playlist, relative to the multivariant playlist.
    pub uri: String,
}

/// A multivariant playlist.
///
/// Spec: RFC 8216bis §4.4.6 (Multivariant Playlist tags).
#[derive(Clone, Debug, PartialEq)]
pub struct Multivariant {
    /// EXT-X-VERSION (at least 1 is written). The tags here need none above 1; a caller
    /// gives the version its media playlists use.
    pub version: u8,
    /// EXT-X-INDEPENDENT-SEGMENTS: every segment of every media playlist starts with a
    /// frame that decodes on its own (§4.4.2.1).
    pub independent_segments: bool,
    /// The variants in the order to write them. Players start with the first listed
    /// (Apple TN2224: "the first entry ... will be played at the initiation of a stream";
    /// hls.js's default start level), so the caller lists them by BANDWIDTH descending,
    /// the highest first.
    pub variants: Vec<Variant>,
    /// The audio renditions, written before the variants, in the order given.
    pub audio: Vec<AudioRendition>,
}

impl Multivariant {
    /// The playlist text (UTF-8, LF line ends): the header tags, the EXT-X-MEDIA tags, then
    /// each EXT-X-STREAM-INF followed by its URI line.
    ///
    /// Whatever the strings hold, the text stays a valid playlist:
    /// - quoted-string values (GROUP-ID, NAME, LANGUAGE, CODECS, AUDIO) have each double
    ///   quote replaced by an apostrophe and each control character, CR and LF among them,
    ///   by a space (§4.2: no double quote, CR or LF in a quoted-string; §4.1: no control
    ///   characters but the line ends). Commas are kept: a quoted-string may hold them;
    /// - URIs have those characters, and a `#` that would start a URI line, percent-encoded
    ///   (RFC 3986 §2.1), so a URI line never turns into a tag or breaks in two;
    /// - a variant with an empty URI is left out (its EXT-X-STREAM-INF would otherwise
    ///   take the next variant's URI line), and an AUDIO attribute is written only when a
    ///   rendition of that group is listed (§4.4.6.2: it MUST match one).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 + 160 * (self.variants.len() + self.audio.len()));
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version.max(1));
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for (i, rendition) in self.audio.iter().enumerate() {
            let default = rendition.default
                && !self.audio[..i]
                    .iter()
                    .any(|r| r.default && r.group == rendition.group);
            out.push_str("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=");
            put_quoted(&mut out, &rendition.group);
            out.push_str(",NAME=");
            put_quoted(&mut out, &rendition.name);
            if let Some(language) = &rendition.language {
                out.push_str(",LANGUAGE=");
                put_quoted(&mut out, language);
            }
            out.push_str(",DEFAULT=");
            out.push_str(yes_no(default));
            out.push_str(",AUTOSELECT=");
            out.push_str(yes_no(rendition.autoselect || default));
            if let Some(channels) = rendition.channels {
                let _ = write!(out, ",CHANNELS=\"{channels}\"");
            }
            out.push_str(",URI=\"");
            put_uri(&mut out, &rendition.uri);
            out.push_str("\"\n");
        }
        for variant in self.variants.iter().filter(|v| !v.uri.is_empty()) {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", variant.bandwidth);
            if let Some(average) = variant.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={average}");
            }
            out.push_str(",CODECS=");
            put_quoted(&mut out, &variant.codecs);
            if let Some((width, height)) = variant.resolution {
                let _ = write!(out, ",RESOLUTION={width}x{height}");
            }
            if let Some(rate) = variant.frame_rate.filter(|r| r.is_finite() && *r > 0.0) {
                let _ = write!(out, ",FRAME-RATE={rate:.3}");
            }
            let group = variant
                .audio_group
                .as_ref()
                .filter(|g| self.audio.iter().any(|r| &r.group == *g));
            if let Some(group) = group {
                out.push_str(",AUDIO=");
                put_quoted(&mut out, group);
            }
            out.push('\n');
            put_uri(&mut out, &variant.uri);
            out.push('\n');
        }
        out
    }
}

/// An enumerated-string YES or NO (§4.2).
fn yes_no(value: bool) -> &'static str {
    if value { "YES" } else { "NO" }
}

/// Writes `value` as a quoted-string: a double quote becomes an apostrophe, a control
/// character a space.
///
/// Spec: RFC 8216bis §4.2 (quoted-string), §4.1 (no control characters).
fn put_quoted(out: &mut String, value: &str) {
    out.push('"');
    out.extend(value.chars().map(|c| match c {
        '"' => '\'',
        c if c.is_control() => ' ',
        c => c,
    }));
    out.push('"');
}

/// Writes `uri` with control characters, double quotes and a leading `#` percent-encoded
/// (each UTF-8 byte as %XX), everything else as given.
///
/// Spec: RFC 3986 §2.1; RFC 8216bis §4.1 (a line starting with `#` is a tag or a comment).
fn put_uri(out: &mut String, uri: &str) {
    for (i, c) in uri.char_indices() {
        if c.is_control() || c == '"' || (i == 0 && c == '#') {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(uri: &str, bandwidth: u64, height: u32) -> Variant {
        Variant {
            uri: uri.to_owned(),
            bandwidth,
            average_bandwidth: Some(bandwidth * 4 / 5),
            resolution: Some((height * 16 / 9, height)),
            frame_rate: Some(30.0),
            codecs: "avc1.64001f,mp4a.40.2".to_owned(),
            audio_group: Some("aac".to_owned()),
        }
    }

    fn rendition(name: &str, language: &str, default: bool) -> AudioRendition {
        AudioRendition {
            group: "aac".to_owned(),
            name: name.to_owned(),
            language: Some(language.to_owned()),
            default,
            autoselect: true,
            channels: Some(2),
            uri: format!("audio_{language}/llhls.m3u8"),
        }
    }

    fn ladder() -> Multivariant {
        Multivariant {
            version: 6,
            independent_segments: true,
            variants: vec![
                variant("720p/llhls.m3u8", 3_000_000, 720),
                variant("360p/llhls.m3u8", 800_000, 360),
            ],
            audio: vec![
                rendition("English", "en", true),
                rendition("Deutsch", "de", false),
            ],
        }
    }

    #[test]
    fn ladder_with_an_audio_group() {
        let expected = concat!(
            "#EXTM3U\n",
            "#EXT-X-VERSION:6\n",
            "#EXT-X-INDEPENDENT-SEGMENTS\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",LANGUAGE=\"en\",",
            "DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio_en/llhls.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Deutsch\",LANGUAGE=\"de\",",
            "DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio_de/llhls.m3u8\"\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2400000,",
            "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"aac\"\n",
            "720p/llhls.m3u8\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=640000,",
            "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aac\"\n",
            "360p/llhls.m3u8\n",
        );
        assert_eq!(ladder().render(), expected);
    }

    #[test]
    fn optional_attributes_are_left_out() {
        let playlist = Multivariant {
            version: 0,
            independent_segments: false,
            variants: vec![Variant {
                uri: "index.m3u8".to_owned(),
                bandwidth: 1_500_000,
                average_bandwidth: None,
                resolution: None,
                frame_rate: None,
                codecs: "avc1.42e01e".to_owned(),
                audio_group: None,
            }],
            audio: Vec::new(),
        };
        let expected = concat!(
            "#EXTM3U\n",
            "#EXT-X-VERSION:1\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=1500000,CODECS=\"avc1.42e01e\"\n",
            "index.m3u8\n",
        );
        assert_eq!(playlist.render(), expected);
    }

    #[test]
    fn frame_rates_take_three_decimals_and_nonsense_is_left_out() {
        for (rate, written) in [
            (29.97002997, Some("29.970")),
            (59.94, Some("59.940")),
            (25.0, Some("25.000")),
            (0.0, None),
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ] {
            let mut playlist = ladder();
            playlist.variants.truncate(1);
            playlist.variants[0].frame_rate = Some(rate);
            let text = playlist.render();
            let found = text.split(',').find_map(|a| a.strip_prefix("FRAME-RATE="));
            assert_eq!(found, written, "{rate}");
        }
    }

    #[test]
    fn one_default_per_group_and_default_implies_autoselect() {
        let mut playlist = ladder();
        playlist.audio[0].autoselect = false;
        playlist.audio[1].default = true;
        let mut other_group = rendition("Commentary", "en", true);
        other_group.group = "commentary".to_owned();
        other_group.autoselect = false;
        playlist.audio.push(other_group);
        let text = playlist.render();
        let flags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
            .map(|l| {
                let start = l.find("DEFAULT=").unwrap();
                let end = l.find(",CHANNELS").unwrap();
                &l[start..end]
            })
            .collect();
        assert_eq!(
            flags,
            [
                "DEFAULT=YES,AUTOSELECT=YES",
                "DEFAULT=NO,AUTOSELECT=YES",
                "DEFAULT=YES,AUTOSELECT=YES",
            ]
        );
    }

    #[test]
    fn publisher_strings_cannot_break_the_playlist() {
        let mut playlist = ladder();
        playlist.audio[0].name = "Director's \"cut\",\r\nEN\u{0}".to_owned();
        playlist.audio[0].language = Some("en\"\n".to_owned());
        playlist.audio[0].uri = "#a\"b\nc.m3u8".to_owned();
        playlist.variants[0].uri = "#EXT-X-ENDLIST\nx.m3u8".to_owned();
        let text = playlist.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3],
            concat!(
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Director's 'cut',  EN \",",
                "LANGUAGE=\"en' \",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",",
                "URI=\"%23a%22b%0Ac.m3u8\""
            )
        );
        assert_eq!(lines[6], "%23EXT-X-ENDLIST%0Ax.m3u8");
        assert!(
            text.chars().all(|c| c == '\n' || !c.is_control()),
            "{text:?}"
        );
        assert_eq!(lines.len(), 9, "one line per tag and URI");
    }

    #[test]
    fn variants_without_a_uri_or_with_an_unknown_group_stay_valid() {
        let mut playlist = ladder();
        playlist.variants[0].uri.clear();
        playlist.variants[1].audio_group = Some("missing".to_owned());
        let text = playlist.render();
        let tail: Vec<&str> = text.lines().skip(5).collect();
        assert_eq!(
            tail,
            [
                concat!(
                    "#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=640000,",
                    "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000"
                ),
                "360p/llhls.m3u8",
            ]
        );
    }

    /// An attribute list split as hls.js's `AttrList` does: `NAME=value` pairs separated
    /// by commas outside double quotes, quoted values unquoted.
    fn attributes(list: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut rest = list;
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=').expect("NAME=value");
            let (value, next) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"').expect("closing quote");
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_at(after.find(',').unwrap_or(after.len())),
            };
            pairs.push((name.to_owned(), value.to_owned()));
            rest = next.strip_prefix(',').unwrap_or(next);
            assert!(next.is_empty() || next.starts_with(','), "{list}");
        }
        pairs
    }

    #[test]
    fn parses_as_hls_js_reads_a_multivariant_playlist() {
        let mut playlist = ladder();
        playlist.audio[1].name = "Deutsch, \"Original\"".to_owned();
        let text = playlist.render();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("#EXTM3U"));
        let mut levels = Vec::new();
        let mut tracks = Vec::new();
        while let Some(line) = lines.next() {
            if let Some(list) = line.strip_prefix("#EXT-X-STREAM-INF:") {
                let uri = lines.next().expect("a URI line after EXT-X-STREAM-INF");
                assert!(!uri.is_empty() && !uri.starts_with('#'), "{uri}");
                levels.push((attributes(list), uri));
            } else if let Some(list) = line.strip_prefix("#EXT-X-MEDIA:") {
                tracks.push(attributes(list));
            }
        }
        let names: Vec<&str> = tracks
            .iter()
            .map(|t| t.iter().find(|(n, _)| n == "NAME").unwrap().1.as_str())
            .collect();
        assert_eq!(names, ["English", "Deutsch, 'Original'"]);
        let summary: Vec<(String, &str)> = levels
            .iter()
            .map(|(attrs, uri)| {
                let get = |key: &str| attrs.iter().find(|(n, _)| n == key).unwrap().1.clone();
                (
                    format!("{} {} {}", get("BANDWIDTH"), get("CODECS"), get("AUDIO")),
                    *uri,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "3000000 avc1.64001f,mp4a.40.2 aac".to_owned(),
                    "720p/llhls.m3u8"
                ),
                (
                    "800000 avc1.64001f,mp4a.40.2 aac".to_owned(),
                    "360p/llhls.m3u8"
                ),
            ]
        );
    }
}
