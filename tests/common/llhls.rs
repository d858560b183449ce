//! Low-Latency HLS for the end-to-end tests: `llhls.m3u8` parsed with its parts, hint and
//! delta-update tags; the fragmented-MP4 media it lists, fetched over HTTP or read from the
//! stream folder and read back with ffprobe and ffmpeg; publishers for live and paused
//! streams; raw HTTP/1.1 requests held open.
//!
//! Spec: RFC 8216bis §4.4.3.7, §4.4.3.8, §4.4.4.9, §4.4.5.2, §4.4.5.3 (the Low-Latency tags).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{
    ClientPublisher, Response, STREAM_TIMEOUT, ServerProcess, flv_tags, http, probe_packets,
    relative, wait_for,
};

/// The Low-Latency playlist's name in a stream's folder and URL.
pub const LL_PLAYLIST: &str = "llhls.m3u8";

/// One EXT-X-PART tag. Its number over the stream's life is read from the URI the server
/// writes, `{prefix}-p{number}.m4s`; its Media Sequence Number and Part Index from where it
/// is listed (a segment's parts are listed all or none).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub number: u64,
    pub msn: u64,
    pub index: u64,
    pub duration: f64,
    pub independent: bool,
}

/// One complete Media Segment as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub uri: String,
    pub duration: f64,
    pub discontinuity: bool,
    /// The EXT-X-MAP in force for it.
    pub map: Option<String>,
    /// An EXT-X-MAP tag is written among its own tags.
    pub map_tag: bool,
    pub parts: Vec<Part>,
}

/// A Low-Latency media playlist, as far as the tests check it.
#[derive(Debug, Clone, Default)]
pub struct LlPlaylist {
    pub text: String,
    pub version: u32,
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// EXT-X-SKIP:SKIPPED-SEGMENTS (0 without the tag).
    pub skipped: u64,
    pub server_control: Option<String>,
    pub part_target: Option<f64>,
    pub segments: Vec<Segment>,
    /// Parts of the open segment (listed after the last complete segment).
    pub open_parts: Vec<Part>,
    /// The open segment starts with EXT-X-DISCONTINUITY.
    pub open_discontinuity: bool,
    pub preload_hint: Option<String>,
    pub ended: bool,
}

/// The number of a part URI `{prefix}-p{number}.m4s`.
pub fn part_number(uri: &str) -> Option<u64> {
    let stem = uri.strip_suffix(".m4s")?;
    let number = stem.rsplit_once('-')?.1.strip_prefix('p')?;
    number.parse().ok()
}

/// The value of `name="..."` or `name=...` in an attribute list (the server's quoted
/// values hold no commas: plain file names).
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    list.split(',')
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// Parses a Low-Latency media playlist; panics on what the server never writes.
pub fn parse_ll(text: &str) -> LlPlaylist {
    assert!(text.starts_with("#EXTM3U\n"), "not a playlist: {text}");
    let mut p = LlPlaylist {
        text: text.to_string(),
        ..LlPlaylist::default()
    };
    let mut duration: Option<f64> = None;
    let mut discontinuity = false;
    let mut map: Option<String> = None;
    let mut map_tag = false;
    let mut parts = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            p.version = v.parse().expect("EXT-X-VERSION");
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.parse().expect("EXT-X-TARGETDURATION");
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().expect("EXT-X-MEDIA-SEQUENCE");
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().expect("EXT-X-DISCONTINUITY-SEQUENCE");
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            p.skipped = attribute(v, "SKIPPED-SEGMENTS")
                .and_then(|n| n.parse().ok())
                .expect("SKIPPED-SEGMENTS");
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            p.server_control = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attribute(v, "PART-TARGET").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            map = Some(attribute(v, "URI").expect("EXT-X-MAP URI").to_string());
            map_tag = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attribute(v, "URI").expect("EXT-X-PART URI").to_string();
            let number =
                part_number(&uri).unwrap_or_else(|| panic!("part URI {uri:?} in:\n{text}"));
            parts.push(Part {
                uri,
                number,
                // Its segment's number is known at the segment's URI line.
                msn: 0,
                index: parts.len() as u64,
                duration: attribute(v, "DURATION")
                    .and_then(|d| d.parse().ok())
                    .expect("EXT-X-PART DURATION"),
                independent: attribute(v, "INDEPENDENT") == Some("YES"),
            });
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attribute(v, "TYPE"), Some("PART"), "{line}");
            p.preload_hint = Some(attribute(v, "URI").expect("hint URI").to_string());
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = Some(
                v.split(',')
                    .next()
                    .and_then(|d| d.parse().ok())
                    .expect("EXTINF"),
            );
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let msn = p.media_sequence + p.skipped + p.segments.len() as u64;
            for part in &mut parts {
                part.msn = msn;
            }
            p.segments.push(Segment {
                msn,
                uri: line.to_string(),
                duration: duration.take().expect("EXTINF before the URI"),
                discontinuity: std::mem::take(&mut discontinuity),
                map: map.clone(),
                map_tag: std::mem::take(&mut map_tag),
                parts: std::mem::take(&mut parts),
            });
        }
    }
    let open_msn = p.open_msn();
    for part in &mut parts {
        part.msn = open_msn;
    }
    p.open_parts = parts;
    p.open_discontinuity = discontinuity;
    p
}

impl LlPlaylist {
    /// Media Sequence Number of the last complete segment.
    pub fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }

    /// Media Sequence Number of the open segment (the next one to complete).
    pub fn open_msn(&self) -> u64 {
        self.media_sequence + self.skipped + self.segments.len() as u64
    }

    /// The last part listed, of the open segment or of the last complete one.
    pub fn last_part(&self) -> Option<&Part> {
        self.open_parts
            .last()
            .or_else(|| self.segments.last()?.parts.last())
    }

    /// Every part listed, in order.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(&self.open_parts)
    }

    /// Whether the playlist lists part `index` of segment `msn`.
    pub fn lists_part(&self, msn: u64, index: u64) -> bool {
        self.parts().any(|p| p.msn == msn && p.index == index)
    }

    /// The listed part named `uri`.
    pub fn part_named(&self, uri: &str) -> Option<&Part> {
        self.parts().find(|p| p.uri == uri)
    }

    /// The init sections the segments use, in order of first use, each once.
    pub fn maps(&self) -> Vec<String> {
        let mut maps: Vec<String> = Vec::new();
        for m in self.segments.iter().filter_map(|s| s.map.clone()) {
            if !maps.contains(&m) {
                maps.push(m);
            }
        }
        maps
    }
}

/// The URL of `key`'s Low-Latency playlist with `query` (no `?` when empty).
pub fn ll_url(server: &ServerProcess, key: &str, query: &str) -> String {
    let sep = if query.is_empty() { "" } else { "?" };
    server.http_url(&format!("/live/{key}/{LL_PLAYLIST}{sep}{query}"))
}

/// The URL of a file in `key`'s folder.
pub fn media_url(server: &ServerProcess, key: &str, file: &str) -> String {
    server.http_url(&format!("/live/{key}/{file}"))
}

/// `GET llhls.m3u8?query`, the answer and, when it is 200, the playlist.
pub fn get_ll(server: &ServerProcess, key: &str, query: &str) -> (Response, Option<LlPlaylist>) {
    let r = http("GET", &ll_url(server, key, query), &[]);
    let p = (r.status == 200).then(|| parse_ll(&r.text()));
    (r, p)
}

/// Waits until `key`'s Low-Latency playlist satisfies `cond`, and returns it.
pub fn wait_ll(
    server: &ServerProcess,
    key: &str,
    what: &str,
    mut cond: impl FnMut(&LlPlaylist) -> bool,
) -> LlPlaylist {
    let mut last = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        last = get_ll(server, key, "").1;
        last.as_ref().is_some_and(&mut cond)
    });
    assert!(
        ok,
        "{key}: {LL_PLAYLIST} never {what}; last:\n{}\nserver:\n{}",
        last.map(|p| p.text).unwrap_or_default(),
        server.logs()
    );
    last.unwrap()
}

/// Reads the stream folder's `llhls.m3u8` once it has EXT-X-ENDLIST.
pub fn ended_on_disk(server: &ServerProcess, key: &str) -> LlPlaylist {
    let path = server.stream_dir(key).join(LL_PLAYLIST);
    let mut playlist = None;
    let ended = wait_for(STREAM_TIMEOUT, || {
        playlist = std::fs::read_to_string(&path).ok().map(|t| parse_ll(&t));
        playlist.as_ref().is_some_and(|p| p.ended)
    });
    assert!(
        ended,
        "no ended {} on disk:\n{}",
        path.display(),
        server.logs()
    );
    playlist.unwrap()
}

/// Where the bytes of a stream's files come from.
pub enum Origin<'a> {
    /// `GET /live/{key}/{file}`, which must answer 200.
    Http(&'a ServerProcess, &'a str),
    /// The stream folder.
    Disk(PathBuf),
}

impl Origin<'_> {
    pub fn read(&self, file: &str) -> Vec<u8> {
        match self {
            Origin::Http(server, key) => {
                let r = http("GET", &media_url(server, key, file), &[]);
                assert_eq!(r.status, 200, "GET {file}: {}", r.text());
                r.body
            }
            Origin::Disk(dir) => std::fs::read(dir.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display())),
        }
    }
}

/// The listed segments as files ffprobe reads on their own, each its init section (the
/// EXT-X-MAP in force) followed by the segment, written to `out` in playlist order. Also
/// writes the playlist and the files it names there, for ffmpeg to read as a whole.
pub fn readable_segments(playlist: &LlPlaylist, origin: &Origin<'_>, out: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(out).expect("output folder");
    std::fs::write(out.join(LL_PLAYLIST), &playlist.text).expect("write the playlist");
    for map in playlist.maps() {
        std::fs::write(out.join(&map), origin.read(&map)).expect("write init");
    }
    playlist
        .segments
        .iter()
        .map(|s| {
            let map = s
                .map
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no EXT-X-MAP in force", s.uri));
            let media = origin.read(&s.uri);
            std::fs::write(out.join(&s.uri), &media).expect("write segment");
            let mut whole = std::fs::read(out.join(map)).expect("init written");
            whole.extend_from_slice(&media);
            let path = out.join(format!("{:05}-{}.mp4", s.msn, s.uri));
            std::fs::write(&path, whole).expect("write init + segment");
            path
        })
        .collect()
}

/// Asserts that the files hold the first frames of `source`, in order with its relative
/// timestamps and keyframes, all of them but at most `missing` at the end of each track
/// (what a publisher taken over leaves unfinished).
pub fn assert_frames_prefix(source: &Path, output: &[PathBuf], missing: Duration) {
    let src = probe_packets(source);
    let out: Vec<_> = output.iter().flat_map(|p| probe_packets(p)).collect();
    for video in [true, false] {
        let (a, b) = (relative(&src, video), relative(&out, video));
        let kind = if video { "video" } else { "audio" };
        assert!(
            b.len() <= a.len(),
            "{kind}: {} frames out of {}",
            b.len(),
            a.len()
        );
        if let (Some(last_src), Some(last_out)) = (a.last(), b.last()) {
            let gap = last_src.1 - last_out.1;
            assert!(
                gap <= missing.as_millis() as i64,
                "{kind}: the output ends {gap} ms before the source"
            );
        } else {
            assert_eq!(a.len(), b.len(), "{kind}: a track is missing");
        }
        for (i, (s, o)) in a.iter().zip(&b).enumerate() {
            let close = (s.0 - o.0).abs() <= 2 && (s.1 - o.1).abs() <= 2;
            assert!(close, "{kind} frame {i}: source {s:?}, output {o:?}");
            if video {
                assert_eq!(s.2, o.2, "{kind} frame {i}: keyframe flag");
            }
        }
    }
}

/// Asserts that `data` is one CMAF fragment: a moof (with a tfdt and samples in every
/// traf) and an mdat holding exactly the samples' bytes. Returns the samples per traf.
///
/// Spec: ISO/IEC 14496-12 §8.8.4 (moof), §8.8.8 (trun), §8.8.12 (tfdt); ISO/IEC 23000-19
/// §7.3.2.3 (CMAF fragment).
pub fn assert_fragment(data: &[u8], what: &str) -> Vec<usize> {
    use mp4_atom::{Decode, Mdat, Moof};
    let mut buf = data;
    let moof = Moof::decode(&mut buf).unwrap_or_else(|e| panic!("{what}: moof: {e}"));
    let mdat = Mdat::decode(&mut buf).unwrap_or_else(|e| panic!("{what}: mdat: {e}"));
    assert!(buf.is_empty(), "{what}: bytes after the mdat");
    assert!(!moof.traf.is_empty(), "{what}: no traf");
    let mut bytes = 0usize;
    let samples = moof
        .traf
        .iter()
        .map(|traf| {
            assert!(traf.tfdt.is_some(), "{what}: traf without tfdt");
            let n: usize = traf.trun.iter().map(|t| t.samples.len()).sum();
            assert!(n > 0, "{what}: traf without samples");
            bytes += traf
                .trun
                .iter()
                .flat_map(|t| &t.samples)
                .map(|s| s.size.expect("per-sample size") as usize)
                .sum::<usize>();
            n
        })
        .collect();
    assert_eq!(mdat.data.len(), bytes, "{what}: mdat holds the samples");
    samples
}

/// ffmpeg publishing a file as fast as it reads it (no `-re`), copied as-is: the server
/// cuts by media time, so a whole file goes through in a moment. Killed if still running
/// when dropped.
pub struct FfmpegPush {
    child: Child,
    file: PathBuf,
}

impl FfmpegPush {
    pub fn start(file: &Path, url: &str) -> FfmpegPush {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
            .arg(file)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg is installed");
        FfmpegPush {
            child,
            file: file.to_path_buf(),
        }
    }

    /// Waits for ffmpeg to finish and asserts that it succeeded.
    pub fn finish(mut self) {
        let mut status = None;
        wait_for(STREAM_TIMEOUT, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        let mut errors = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut errors);
        }
        assert!(
            status.is_some_and(|s| s.success()),
            "ffmpeg publishing {}: {status:?} {errors}",
            self.file.display()
        );
    }
}

impl Drop for FfmpegPush {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends every tag of `file` (as the file stamps it) on a new publish of `key`, as fast as
/// the socket takes them, and returns the publisher still publishing: a stream paused
/// after the file, its last segment open.
pub fn publish_and_pause(server: &ServerProcess, key: &str, file: &Path) -> ClientPublisher {
    let mut publisher = ClientPublisher::start(server, key);
    send_file(&mut publisher, file);
    publisher
}

/// Sends every tag of `file` as the file stamps it, as fast as the socket takes them.
pub fn send_file(publisher: &mut ClientPublisher, file: &Path) {
    for tag in flv_tags(file) {
        publisher.send_tag(&tag, tag.timestamp);
    }
}

/// A 12 s H.264 (High, B-frames, 320x180 at 30 fps) and AAC (48 kHz stereo) FLV with a
/// keyframe every second exactly, for streams cut into 1 s segments (`--hls-time 1`), made
/// once with ffmpeg's lavfi sources into the test target's scratch folder.
pub fn one_second_gop_flv() -> PathBuf {
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("llhls_gop1s_12s.flv");
        if path.exists() {
            return path;
        }
        let partial = dir.join(format!("llhls_gop1s_12s.{}.flv", std::process::id()));
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
            .args(["-f", "lavfi", "-i"])
            .arg("sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo")
            .args(["-t", "12", "-c:v", "libx264", "-profile:v", "high"])
            .args([
                "-preset",
                "veryfast",
                "-bf",
                "2",
                "-g",
                "30",
                "-keyint_min",
                "30",
            ])
            .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "300k"])
            .args(["-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-f", "flv"])
            .arg(&partial)
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "making {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&partial, &path).expect("rename the test media");
        path
    })
    .clone()
}

/// A raw HTTP/1.1 `GET` sent on a connection of its own and left waiting for its answer.
pub struct HeldRequest {
    pub socket: TcpStream,
    pub sent: Instant,
    /// When the first bytes of the answer arrived.
    pub answered: Option<Instant>,
    received: Vec<u8>,
    /// The peer closed the connection (end of stream or reset).
    pub closed: bool,
}

impl HeldRequest {
    /// Connects to `port` and sends `GET path`. A connection refused at accept may fail
    /// the write; that is left for [`HeldRequest::poll`] to see.
    pub fn send(port: u16, path: &str) -> std::io::Result<HeldRequest> {
        let mut socket = TcpStream::connect(("127.0.0.1", port))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let closed = socket.write_all(request.as_bytes()).is_err();
        socket.set_nonblocking(true)?;
        Ok(HeldRequest {
            socket,
            sent: Instant::now(),
            answered: None,
            received: Vec::new(),
            closed,
        })
    }

    /// Reads what has arrived, without waiting.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.closed {
            match self.socket.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.answered.get_or_insert_with(Instant::now);
                    self.received.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// The status code, once the status line has arrived.
    pub fn status(&self) -> Option<u16> {
        let text = std::str::from_utf8(&self.received).ok()?;
        let line = text
            .split("\r\n")
            .next()
            .filter(|_| text.contains("\r\n"))?;
        line.split(' ').nth(1)?.parse().ok()
    }

    /// How long the request waited for its answer, once answered.
    pub fn held(&self) -> Option<Duration> {
        Some(self.answered?.duration_since(self.sent))
    }

    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}
