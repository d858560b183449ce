//! Publishers: a real ffmpeg (copying a file, or encoding a test pattern live) and the
//! project's own RTMP client over a blocking socket.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtmp_server::flv::file::{FlvFile, FlvItem, FlvTag};
use rtmp_server::flv::tag::TagType;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::{ClientConfig, ClientEvent, MediaKind, PublishClient};

use super::server::ServerProcess;
use super::{STREAM_TIMEOUT, capture_stderr, testdata, wait_for};

/// The imageio-ffmpeg release whose static ffmpeg 9 the Enhanced RTMP tests use (as
/// scripts/test.sh pins it).
const IMAGEIO_FFMPEG_VERSION: &str = "0.8.1";

/// ffmpeg 9 (the static ffmpeg 9.0.2 of PyPI's imageio-ffmpeg 0.8.1): what publishes HEVC,
/// AV1, VP9, Opus and multitrack Enhanced RTMP, which Debian's ffmpeg 5.1 cannot write.
/// `RTMP_SERVER_FFMPEG9` when set (scripts/test.sh sets it), else the one scripts/test.sh
/// installs in `${XDG_CACHE_HOME:-$HOME/.cache}/rtmp-server/imageio-ffmpeg`, found the way
/// the script finds it. Panics, saying to run scripts/test.sh, when there is neither.
pub fn ffmpeg9() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find_ffmpeg9) {
        Ok(path) => path.clone(),
        Err(why) => panic!("ffmpeg 9 not found ({why}): run scripts/test.sh, which installs it"),
    }
}

fn find_ffmpeg9() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("RTMP_SERVER_FFMPEG9").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "RTMP_SERVER_FFMPEG9={} is not a file",
                path.display()
            ))
        };
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let dir = cache.join("rtmp-server").join("imageio-ffmpeg");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             sys.path.insert(0, sys.argv[1])\n\
             import imageio_ffmpeg\n\
             if imageio_ffmpeg.__version__ != sys.argv[2]: sys.exit(1)\n\
             print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .arg(&dir)
        .arg(IMAGEIO_FFMPEG_VERSION)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no imageio-ffmpeg {IMAGEIO_FFMPEG_VERSION} in {}",
            dir.display()
        ))
    }
}

/// A real ffmpeg publishing a file at real time, copied as-is, over RTMP.
pub struct Publisher {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Publisher {
    /// `ffmpeg -re [input_args] -i FILE -c copy -f flv URL`.
    pub fn start(file: &Path, url: &str, input_args: &[&str]) -> Publisher {
        Publisher::start_with(file, url, input_args, &[])
    }

    /// `ffmpeg -re [input_args] -i FILE -c copy [output_args] -f flv URL`: output options
    /// such as the TLS ones of an `rtmps://` URL (`-tls_verify 1 -ca_file FILE`).
    pub fn start_with(
        file: &Path,
        url: &str,
        input_args: &[&str],
        output_args: &[&str],
    ) -> Publisher {
        let mut command = Command::new("ffmpeg");
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
            .args(input_args)
            .arg("-i")
            .arg(file)
            .args(["-c", "copy"])
            .args(output_args)
            .args(["-f", "flv", url]);
        Publisher::spawn(command)
    }

    /// A live encoder: `ffmpeg -re` encoding a test pattern (testsrc2, 1280x720 at 30 fps,
    /// and a sine tone) with libx264 (veryfast, a keyframe every 2 s: the default
    /// `hls.time`) and AAC, publishing to `url` for at most `seconds`.
    pub fn test_pattern(url: &str, seconds: u32) -> Publisher {
        Publisher::pattern(
            url,
            "testsrc2=size=1280x720:rate=30",
            "veryfast",
            60,
            seconds,
        )
    }

    /// A live encoder as [`Publisher::test_pattern`], of the lavfi `picture` (at 30 fps)
    /// with x264's `preset` and a keyframe every `gop` frames.
    pub fn pattern(url: &str, picture: &str, preset: &str, gop: u32, seconds: u32) -> Publisher {
        let gop = gop.to_string();
        let mut command = Command::new("ffmpeg");
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
            .args(["-re", "-f", "lavfi", "-i", picture])
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args(["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"])
            .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
            .args(["-t", &seconds.to_string(), "-f", "flv", url]);
        Publisher::spawn(command)
    }

    /// Runs `command` as a publisher (ffmpeg, or another encoder such as gst-launch-1.0),
    /// its stderr collected.
    pub fn spawn(mut command: Command) -> Publisher {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} did not start ({e}): run scripts/test.sh, which installs it")
            });
        let log = capture_stderr(&mut child);
        Publisher { child, log }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the publisher to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_for(timeout, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        status
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to ffmpeg.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Kills ffmpeg at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tags of an FLV file, bodies as slices of it.
pub fn flv_tags(path: &Path) -> Vec<FlvTag> {
    let data = Bytes::from(std::fs::read(path).expect("test file"));
    FlvFile::new(data)
        .filter_map(|item| match item.expect("valid FLV") {
            FlvItem::Tag(tag) => Some(tag),
            FlvItem::Header(_) => None,
        })
        .collect()
}

/// The project's RTMP client publishing over a blocking socket, for tests that choose every
/// timestamp. Sends as fast as the socket takes it (the server cuts segments by media time).
pub struct ClientPublisher {
    socket: TcpStream,
    client: PublishClient,
    input: BytesMut,
    out: BytesMut,
    events: Vec<ClientEvent>,
}

/// How a publish attempt of the project's client ended.
pub enum Attempt {
    /// NetStream.Publish.Start arrived: the publisher may send media.
    Published(Box<ClientPublisher>),
    /// The server refused, with this status code and description.
    Refused { code: String, description: String },
}

impl ClientPublisher {
    /// Connects and publishes `key`; returns once NetStream.Publish.Start has arrived.
    pub fn start(server: &ServerProcess, key: &str) -> ClientPublisher {
        match ClientPublisher::attempt(server, key, IpAddr::from([127, 0, 0, 1])) {
            Attempt::Published(publisher) => *publisher,
            Attempt::Refused { code, description } => {
                panic!("publish refused: {code}: {description}\n{}", server.logs())
            }
        }
    }

    /// Connects from the local address `from` (any of 127/8 reaches the server's loopback
    /// listener on Linux, each a client address of its own) and asks to publish `key`;
    /// returns once the server accepted or refused it.
    pub fn attempt(server: &ServerProcess, key: &str, from: IpAddr) -> Attempt {
        let socket = connect_from(from, server.rtmp_port);
        socket
            .set_read_timeout(Some(STREAM_TIMEOUT))
            .expect("read timeout");
        socket
            .set_write_timeout(Some(STREAM_TIMEOUT))
            .expect("write timeout");
        let tc_url = format!("rtmp://127.0.0.1:{}/live", server.rtmp_port);
        let mut out = BytesMut::new();
        let client =
            PublishClient::new(ClientConfig::new("live", &tc_url, key), &mut out).expect("C1");
        let mut publisher = ClientPublisher {
            socket,
            client,
            input: BytesMut::new(),
            out,
            events: Vec::new(),
        };
        publisher.flush();
        loop {
            if publisher.events.contains(&ClientEvent::Published) {
                return Attempt::Published(Box::new(publisher));
            }
            let refused = publisher.events.iter().find_map(|e| match e {
                ClientEvent::Rejected { code, description } => Some(Attempt::Refused {
                    code: code.clone(),
                    description: description.clone(),
                }),
                _ => None,
            });
            if let Some(refused) = refused {
                return refused;
            }
            publisher.read();
        }
    }

    fn flush(&mut self) {
        self.socket.write_all(&self.out).expect("write");
        self.out.clear();
    }

    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        let n = self.socket.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed the connection");
        self.input.extend_from_slice(&buf[..n]);
        self.client
            .feed(&mut self.input, &mut self.out, &mut self.events)
            .expect("valid server bytes");
        self.flush();
    }

    /// Sends one FLV tag as an RTMP message at `timestamp` (script tags as @setDataFrame).
    pub fn send_tag(&mut self, tag: &FlvTag, timestamp: RtmpTimestamp) {
        match tag.tag_type {
            TagType::Audio => {
                self.client
                    .send_media(MediaKind::Audio, timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
            TagType::Video => {
                self.client
                    .send_media(MediaKind::Video, timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
            TagType::ScriptData => {
                self.client
                    .send_metadata(timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
        }
        self.flush();
    }

    /// Drops the connection as a crashed encoder or a pulled cable would: no FCUnpublish,
    /// no deleteStream.
    pub fn cut(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Unpublishes and waits for NetStream.Unpublish.Success.
    pub fn finish(mut self) {
        self.client.unpublish(&mut self.out).expect("encodable");
        self.flush();
        while !self.events.contains(&ClientEvent::Closed) {
            self.read();
        }
    }
}

/// A TCP connection to the server's RTMP port on 127.0.0.1 from the local address `from`.
/// (std cannot bind a socket before connecting it; tokio's `TcpSocket` can.)
fn connect_from(from: IpAddr, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime");
    runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            let stream = socket
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await?;
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            Ok::<_, std::io::Error>(stream)
        })
        .unwrap_or_else(|e| panic!("connect from {from}: {e}"))
}

/// A real ffmpeg publishing the test file to `key` in a loop, at real time: a stream that
/// keeps going for as long as a test needs it.
pub fn live_publisher(server: &ServerProcess, key: &str) -> Publisher {
    Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmp_url(key),
        &["-stream_loop", "-1"],
    )
}

/// The test picture ffmpeg 9 encodes for the Enhanced RTMP tests: lavfi testsrc2 at `size`
/// and 30 fps, converted to BT.709 limited-range 4:2:0 (as testdata/flv/make.sh does: without
/// it libx265 tags the stream with the RGB source's GBR matrix).
pub fn ffmpeg9_test_picture(size: &str) -> String {
    format!("testsrc2=size={size}:rate=30,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")
}

impl Publisher {
    /// A live encoder on ffmpeg 9 ([`ffmpeg9`]): `-re` the test picture at `size` (input 0)
    /// and a 440 Hz stereo 48 kHz sine (input 1), encoded with `codec_args` (which may
    /// also hold `-filter_complex` and `-map`), published as (Enhanced) FLV to `url` for
    /// at most `seconds`.
    pub fn ffmpeg9_live(url: &str, size: &str, codec_args: &[&str], seconds: u32) -> Publisher {
        let mut command = Command::new(ffmpeg9());
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
            .args(["-re", "-f", "lavfi", "-i"])
            .arg(ffmpeg9_test_picture(size))
            .args(["-re", "-f", "lavfi", "-i"])
            .arg("sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo")
            .args(codec_args)
            .args(["-t", &seconds.to_string(), "-f", "flv", url])
            // libsvtav1 prints its banner and settings unless told otherwise.
            .env("SVT_LOG", "1");
        Publisher::spawn(command)
    }
}
