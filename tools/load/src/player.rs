//! One RTMP player of one stream: a TCP connection driven by the sans-IO [`PlayClient`],
//! playing as ffmpeg does. A reading player reads everything the server sends (and so
//! acknowledges it and answers pings) and times the first video message from its `play`; a
//! stalled player sends `play` and then reads nothing more, the way a player on a link too
//! slow for the stream looks to the server.
//!
//! A stalled player cannot see a server close its connection behind the bytes it left
//! unread (the FIN waits behind them, outside a window it never opens again); it probes the
//! socket every [`PROBE_INTERVAL`] without reading, which shows a reset (the socket error
//! of a server that closes with unread data, or with SO_LINGER 0), and reads what was
//! buffered at the end, which shows any close.
//!
//! Spec: RTMP 1.0 §7.2.2.1 (play), §7.1.7 (user control events: Stream Begin, Stream EOF,
//! Set Buffer Length, Ping).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::player_report::{PlayerKind, PlayerOutcome, PlayerReport};
use crate::publisher::{CONNECT_TIMEOUT, WRITE_TIMEOUT};
use crate::target::RtmpTarget;
use rtmp_server::flv::tag::{FrameType, IS_EX_HEADER, VideoBody, VideoMessage};
use rtmp_server::rtmp::{MediaKind, PlayClient, PlayConfig, PlayEvent};

/// From connecting to `play` going out: the handshake, connect and createStream.
pub const PLAY_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a stalled player looks at its socket, without reading, for a reset.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// At the end, a stalled player reads what was buffered until nothing comes for this long...
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// ...or for this long in all (the server may still be sending).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long the closing commands may take to write.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes asked of the socket per read: media arrives in chunks of up to the server's chunk
/// size (60000 by default).
const READ_SIZE: usize = 64 * 1024;

/// onStatus codes that end a play: the stream stopped, its publisher left, or a recorded
/// stream is over.
const END_CODES: [&str; 3] = [
    "NetStream.Play.Stop",
    "NetStream.Play.UnpublishNotify",
    "NetStream.Play.Complete",
];

/// What one player plays, and when.
#[derive(Clone, Debug)]
pub struct Play {
    pub target: Arc<RtmpTarget>,
    /// The stream name `play` asks for.
    pub name: String,
    /// The player's label in the report.
    pub label: String,
    /// When it connects.
    pub start: Instant,
    /// When it stops playing, whatever the stream does.
    pub until: Instant,
    /// Cancelled when this tool's publisher of the stream has finished; `None` for a stream
    /// published elsewhere. Once the publisher is done, the stream's end or the server
    /// closing the connection is the expected end of the play.
    pub published: Option<CancellationToken>,
}

/// Why a player stopped early.
enum End {
    /// The server closed or reset the connection.
    Disconnected(String),
    Rejected {
        code: String,
        description: String,
    },
    /// Anything else: connect failure, time-out, protocol error.
    Failed(String),
}

fn failed(reason: impl Into<String>) -> End {
    End::Failed(reason.into())
}

/// The connection and the client driving it.
struct Link {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    client: PlayClient,
    input: BytesMut,
    out: BytesMut,
    events: Vec<PlayEvent>,
}

impl Link {
    /// Reads what the server sent and feeds it to the client (whose answers land in `out`),
    /// counting the bytes. Cancel-safe: nothing happens after the read completes but
    /// synchronous work.
    async fn read(&mut self, report: &mut PlayerReport) -> Result<(), End> {
        self.input.reserve(READ_SIZE);
        let n = self
            .rd
            .read_buf(&mut self.input)
            .await
            .map_err(|e| End::Disconnected(format!("read: {e}")))?;
        if n == 0 {
            return Err(End::Disconnected(
                "the server closed the connection".to_owned(),
            ));
        }
        report.bytes += n as u64;
        self.client
            .feed(&mut self.input, &mut self.out, &mut self.events)
            .map_err(|e| failed(e.to_string()))
    }

    /// Writes `out` whole and empties it.
    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(WRITE_TIMEOUT, self.wr.write_all(&self.out))
            .await
            .map_err(|_| failed(format!("the server did not read for {WRITE_TIMEOUT:?}")))?
            .map_err(|e| End::Disconnected(format!("write: {e}")))?;
        self.out.clear();
        Ok(())
    }

    /// Until `play` has gone out (or `deadline`): reads, answers, and reports a refusal.
    async fn until_play(
        &mut self,
        deadline: Instant,
        report: &mut PlayerReport,
    ) -> Result<(), End> {
        while self.client.stream_id().is_none() {
            tokio::time::timeout_at(deadline, self.read(report))
                .await
                .map_err(|_| failed(format!("no play within {PLAY_TIMEOUT:?} of connecting")))??;
            self.flush().await?;
            for event in self.events.drain(..) {
                if let PlayEvent::Rejected { code, description } = event {
                    return Err(End::Rejected { code, description });
                }
            }
        }
        Ok(())
    }

    /// closeStream and deleteStream, then the end of the connection; failures do not
    /// matter any more.
    async fn close(mut self) {
        if self.client.close(&mut self.out).is_ok() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.wr.write_all(&self.out)).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.wr.shutdown()).await;
    }
}

/// Connects, starts the handshake and sends C0 + C1.
async fn connect(target: &RtmpTarget, name: &str) -> Result<Link, End> {
    let socket = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| failed(format!("connect: no answer within {CONNECT_TIMEOUT:?}")))?
    .map_err(|e| failed(format!("connect: {e}")))?;
    socket
        .set_nodelay(true)
        .map_err(|e| failed(format!("connect: {e}")))?;
    let (rd, wr) = socket.into_split();
    let mut out = BytesMut::new();
    let config = PlayConfig::new(&target.app, &target.tc_url, name);
    let client = PlayClient::new(config, &mut out).map_err(|e| failed(e.to_string()))?;
    let mut link = Link {
        rd,
        wr,
        client,
        input: BytesMut::with_capacity(READ_SIZE),
        out,
        events: Vec::new(),
    };
    link.flush().await?;
    Ok(link)
}

/// Waits for `start`; `false` when stopped first.
async fn wait_for(start: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(start) => true,
        _ = stop.cancelled() => false,
    }
}

fn outcome(result: Result<(), End>, report: &mut PlayerReport) -> PlayerOutcome {
    match result {
        Ok(()) => PlayerOutcome::Played,
        Err(End::Rejected { code, description }) => PlayerOutcome::Rejected { code, description },
        Err(End::Disconnected(reason)) => {
            report.disconnected = Some(reason.clone());
            PlayerOutcome::Failed(format!("disconnected: {reason}"))
        }
        Err(End::Failed(reason)) => PlayerOutcome::Failed(reason),
    }
}

/// Plays `play.name` from `play.start` until its end, reading everything.
pub async fn play(play: Play, stop: CancellationToken) -> PlayerReport {
    let mut report = PlayerReport::new(play.label.clone(), play.name.clone(), PlayerKind::Reading);
    if !wait_for(play.start, &stop).await {
        report.outcome = PlayerOutcome::Failed("stopped before it played".to_owned());
        return report;
    }
    let result = run_reading(&play, &stop, &mut report).await;
    report.outcome = outcome(result, &mut report);
    report
}

async fn run_reading(
    play: &Play,
    stop: &CancellationToken,
    report: &mut PlayerReport,
) -> Result<(), End> {
    let mut link = connect(&play.target, &play.name).await?;
    link.until_play(Instant::now() + PLAY_TIMEOUT, report)
        .await?;
    let play_sent = Instant::now();
    let publisher_done = || play.published.as_ref().is_none_or(|p| p.is_cancelled());
    let ended = loop {
        // What ended the stream, once it said so.
        let mut stream_end: Option<String> = None;
        tokio::select! {
            biased;
            _ = stop.cancelled() => break "the run was stopped".to_owned(),
            _ = tokio::time::sleep_until(play.until) => break "the run ended".to_owned(),
            read = link.read(report) => {
                match read {
                    Ok(()) => {}
                    Err(End::Disconnected(reason))
                        if publisher_done() || report.end.is_some() =>
                    {
                        report.disconnected = Some(reason.clone());
                        return finish(report, format!("{reason}, after the stream ended"));
                    }
                    Err(end) => return Err(end),
                }
                link.flush().await?;
                for event in link.events.drain(..) {
                    on_event(event, play_sent, report, &mut stream_end)?;
                }
            }
        }
        if let Some(end) = stream_end {
            if publisher_done() {
                break format!("the stream ended ({end})");
            }
            // The stream said it ended while its publisher still publishes: noted, and
            // the play goes on (a server may resume it).
            report.end = Some(end);
        }
    };
    link.close().await;
    finish(report, ended)
}

/// Records how the player ended; a reading player that received no media failed.
fn finish(report: &mut PlayerReport, end: String) -> Result<(), End> {
    let nothing = report.media_messages() == 0;
    report.end = Some(end);
    if nothing {
        return Err(failed(format!(
            "no media before the end ({})",
            report.end.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Counts one event; `stream_end` is set when the stream says it ended.
fn on_event(
    event: PlayEvent,
    play_sent: Instant,
    report: &mut PlayerReport,
    stream_end: &mut Option<String>,
) -> Result<(), End> {
    match event {
        PlayEvent::Status {
            level,
            code,
            description,
        } => {
            report.status(&code);
            if level == "error" {
                if report.media_messages() == 0 {
                    return Err(End::Rejected { code, description });
                }
                return Err(failed(format!(
                    "the server ended the play: {code} ({description})"
                )));
            }
            if END_CODES.contains(&code.as_str()) {
                *stream_end = Some(code);
            }
        }
        PlayEvent::StreamEof { .. } => *stream_end = Some("Stream EOF".to_owned()),
        PlayEvent::Data { .. } => report.data_messages += 1,
        PlayEvent::Media {
            kind,
            timestamp,
            payload,
        } => {
            report.timestamp(timestamp);
            match kind {
                MediaKind::Audio => report.audio_messages += 1,
                MediaKind::Video => on_video(&payload, play_sent, report),
            }
        }
        PlayEvent::Rejected { code, description } => {
            return Err(End::Rejected { code, description });
        }
        PlayEvent::Connected | PlayEvent::StreamBegin { .. } => {}
    }
    Ok(())
}

fn on_video(payload: &Bytes, play_sent: Instant, report: &mut PlayerReport) {
    report.video_messages += 1;
    if report.first_video.is_none() {
        report.first_video = Some(play_sent.elapsed());
        report.first_video_keyframe = Some(keyframe_bits(payload));
    }
    if report.first_picture_keyframe.is_none() {
        report.first_picture_keyframe = picture_keyframe(payload);
    }
}

/// The frame type of a video tag body says keyframe (1): the high nibble of the first byte
/// (FLV VideoTagHeader FrameType), or its bits 4-6 when bit 7 announces an Enhanced RTMP
/// ExVideoTagHeader (VideoFrameType). Spec: FLV 10.1 §E.4.3.1; Enhanced RTMP v2
/// "Enhanced Video".
pub fn keyframe_bits(payload: &[u8]) -> bool {
    match payload.first() {
        Some(&first) if first & IS_EX_HEADER != 0 => (first >> 4) & 0x07 == 1,
        Some(&first) => first >> 4 == 1,
        None => false,
    }
}

/// Whether a video tag body's picture is a keyframe; `None` when it carries no picture (a
/// sequence header or end, metadata, a command frame) or cannot be read.
pub fn picture_keyframe(payload: &Bytes) -> Option<bool> {
    let mut message = VideoMessage::parse(payload).ok()?;
    if message.command {
        return None;
    }
    let frame_type = message.frame_type;
    let pictured = message
        .packets()
        .any(|p| matches!(p, Ok(p) if matches!(p.body, VideoBody::CodedFrames { .. })));
    pictured.then_some(frame_type == FrameType::Keyframe)
}

/// Plays `play.name` from `play.start`, then stops reading once `play` is out; looks for
/// the server's close until `play.until`, then reads what was buffered.
pub async fn stall(play: Play, stop: CancellationToken) -> PlayerReport {
    let mut report = PlayerReport::new(play.label.clone(), play.name.clone(), PlayerKind::Stalled);
    if !wait_for(play.start, &stop).await {
        report.outcome = PlayerOutcome::Failed("stopped before it played".to_owned());
        return report;
    }
    let result = run_stalled(&play, &stop, &mut report).await;
    report.outcome = outcome(result, &mut report);
    report
}

async fn run_stalled(
    play: &Play,
    stop: &CancellationToken,
    report: &mut PlayerReport,
) -> Result<(), End> {
    let mut link = connect(&play.target, &play.name).await?;
    link.until_play(Instant::now() + PLAY_TIMEOUT, report)
        .await?;
    let stalled = Instant::now();
    let end = loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break "the run was stopped",
            _ = tokio::time::sleep_until(play.until) => break "the run ended",
            _ = tokio::time::sleep(PROBE_INTERVAL) => {
                if let Some(end) = probe(&mut link.rd, stalled, report).await {
                    break end;
                }
            }
        }
    };
    report.end = Some(end.to_owned());
    if report.disconnected.is_none() {
        drain(&mut link, report).await;
    }
    link.close().await;
    Ok(())
}

/// Looks at a stalled connection without reading: a pending socket error (SO_ERROR) is a
/// reset, which the bytes left unread do not hide; a peek that finds the end and nothing
/// before it is an orderly close. What ended the stall, if anything did.
async fn probe(
    rd: &mut OwnedReadHalf,
    stalled: Instant,
    report: &mut PlayerReport,
) -> Option<&'static str> {
    let into = || {
        format!(
            "seen {:.1} s into the stall",
            stalled.elapsed().as_secs_f64()
        )
    };
    match rd.as_ref().take_error() {
        Ok(Some(e)) | Err(e) => {
            report.disconnected = Some(format!("{e}, {}", into()));
            return Some("the server reset the connection");
        }
        Ok(None) => {}
    }
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::ZERO, rd.peek(&mut byte)).await {
        Ok(Err(e)) => {
            report.disconnected = Some(format!("{e}, {}", into()));
            Some("the server reset the connection")
        }
        Ok(Ok(0)) => {
            report.disconnected = Some(format!("closed, {}", into()));
            Some("the server closed the connection")
        }
        // Bytes waiting, or none yet: nothing to tell.
        Ok(Ok(_)) | Err(_) => None,
    }
}

/// Reads what the stalled connection buffered, counting it, to see whether the server
/// closed it behind those bytes.
async fn drain(link: &mut Link, report: &mut PlayerReport) {
    let limit = Instant::now() + DRAIN_LIMIT;
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    let mut readable = true;
    loop {
        link.input.reserve(READ_SIZE);
        let deadline = limit.min(Instant::now() + DRAIN_IDLE);
        match tokio::time::timeout_at(deadline, link.rd.read_buf(&mut link.input)).await {
            // Still open (or still sending) at the end.
            Err(_) => return,
            Ok(Ok(0)) => {
                report.disconnected =
                    Some("closed, seen when the buffered bytes were read at the end".to_owned());
                return;
            }
            Ok(Ok(n)) => {
                report.bytes += n as u64;
                // Counted, not answered: the player is done.
                if readable
                    && link
                        .client
                        .feed(&mut link.input, &mut out, &mut events)
                        .is_err()
                {
                    readable = false;
                }
                out.clear();
                for event in events.drain(..) {
                    if let PlayEvent::Media {
                        kind, timestamp, ..
                    } = event
                    {
                        report.timestamp(timestamp);
                        match kind {
                            MediaKind::Audio => report.audio_messages += 1,
                            MediaKind::Video => report.video_messages += 1,
                        }
                    }
                }
                if !readable {
                    link.input.clear();
                }
            }
            Ok(Err(e)) => {
                report.disconnected = Some(format!(
                    "{e}, seen when the buffered bytes were read at the end"
                ));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtmp_server::media::RtmpTimestamp;
    use rtmp_server::rtmp::Handshake;
    use rtmp_server::rtmp::amf0::{self, Value};
    use rtmp_server::rtmp::chunk::{
        ChunkDecoder, ChunkEncoder, ChunkSize, ChunkStreamId, MessageHeader,
    };
    use rtmp_server::rtmp::message::{Command, LimitType, Message, UserControlEvent};
    use tokio::net::TcpListener;

    /// The server side of a test: one accepted connection, scripted.
    struct Server {
        socket: TcpStream,
        input: BytesMut,
        decoder: ChunkDecoder,
        encoder: ChunkEncoder,
    }

    impl Server {
        /// Accepts a connection and runs the server handshake.
        async fn accept(listener: &TcpListener) -> Server {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut handshake = Handshake::new();
            let mut input = BytesMut::new();
            loop {
                socket.read_buf(&mut input).await.expect("handshake read");
                let mut out = BytesMut::new();
                let done = handshake
                    .feed(&mut input, &mut out)
                    .expect("valid handshake");
                socket.write_all(&out).await.expect("handshake write");
                if done {
                    break;
                }
            }
            Server {
                socket,
                input,
                decoder: ChunkDecoder::new(),
                encoder: ChunkEncoder::new(),
            }
        }

        /// Reads until the client sends a command (other messages are skipped).
        async fn command(&mut self) -> Command {
            loop {
                while let Some(raw) = self.decoder.decode(&mut self.input).expect("chunks") {
                    let message =
                        Message::parse(raw.header.message_type_id, raw.payload).expect("valid");
                    if let Message::Command(command) = message {
                        return command;
                    }
                }
                let n = self.socket.read_buf(&mut self.input).await.expect("read");
                assert!(n > 0, "the client closed before sending a command");
            }
        }

        /// Reads until the command called `name`.
        async fn expect(&mut self, name: &str) -> Command {
            loop {
                let command = self.command().await;
                if command.name == name {
                    return command;
                }
            }
        }

        async fn send(&mut self, csid: u32, stream: u32, timestamp: u32, message: &Message) {
            let mut payload = BytesMut::new();
            message.write_payload(&mut payload).expect("encodable");
            let header = MessageHeader {
                timestamp: RtmpTimestamp(timestamp),
                message_type_id: message.type_id(),
                message_stream_id: stream,
            };
            let mut out = BytesMut::new();
            let csid = ChunkStreamId::new(csid).expect("valid");
            self.encoder
                .write_message(csid, &header, &payload, &mut out)
                .expect("short enough");
            if let Message::SetChunkSize { chunk_size } = message {
                self.encoder
                    .set_chunk_size(ChunkSize::new(*chunk_size).expect("valid"));
            }
            self.socket.write_all(&out).await.expect("write");
        }

        fn reply(name: &str, transaction_id: f64, arguments: Vec<Value>) -> Message {
            Message::Command(Command {
                name: name.to_owned(),
                transaction_id,
                command_object: Value::Null,
                arguments,
            })
        }

        async fn status(&mut self, level: &str, code: &str) {
            let info = Value::object(&[
                ("level", level.into()),
                ("code", code.into()),
                ("description", "test".into()),
            ]);
            self.send(5, 1, 0, &Server::reply("onStatus", 0.0, vec![info]))
                .await;
        }

        /// Answers connect and createStream (stream 1) as this project's server does, and
        /// reads `play`.
        async fn until_play(&mut self) -> Command {
            let connect = self.expect("connect").await;
            let window = Message::WindowAcknowledgementSize {
                acknowledgement_window_size: 2_500_000,
            };
            self.send(2, 0, 0, &window).await;
            let bandwidth = Message::SetPeerBandwidth {
                acknowledgement_window_size: 2_500_000,
                limit_type: LimitType::Dynamic,
            };
            self.send(2, 0, 0, &bandwidth).await;
            self.send(2, 0, 0, &Message::SetChunkSize { chunk_size: 60_000 })
                .await;
            let info = Value::object(&[("code", "NetConnection.Connect.Success".into())]);
            self.send(
                3,
                0,
                0,
                &Server::reply("_result", connect.transaction_id, vec![info]),
            )
            .await;
            let create = self.expect("createStream").await;
            let result = Server::reply("_result", create.transaction_id, vec![1.0.into()]);
            self.send(3, 0, 0, &result).await;
            self.expect("play").await
        }

        /// Stream Begin, Play.Reset, Play.Start, the data messages and `frames` video
        /// messages (a sequence header, a keyframe, inter frames) with audio between.
        async fn stream(&mut self, frames: u32) {
            let begin = Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 });
            self.send(2, 0, 0, &begin).await;
            self.status("status", "NetStream.Play.Reset").await;
            self.status("status", "NetStream.Play.Start").await;
            for values in [
                vec![Value::from("|RtmpSampleAccess"), true.into(), true.into()],
                vec![
                    Value::from("onMetaData"),
                    Value::EcmaArray(vec![("width".to_owned(), 1280.0.into())]),
                ],
            ] {
                let mut body = BytesMut::new();
                for value in &values {
                    amf0::encode(value, &mut body).expect("encodable");
                }
                self.send(5, 1, 0, &Message::Data(body.freeze())).await;
            }
            for n in 0..frames {
                let first = match n {
                    0 | 1 => [0x17, n as u8],
                    _ => [0x27, 1],
                };
                let mut video = first.to_vec();
                video.extend_from_slice(&[0; 3 + 500]);
                self.send(6, 1, n * 33, &Message::Video(Bytes::from(video)))
                    .await;
                let audio = Bytes::from_static(&[0xaf, 0x01, 0x21, 0x10]);
                self.send(4, 1, n * 33, &Message::Audio(audio)).await;
            }
        }
    }

    async fn listener() -> (TcpListener, Arc<RtmpTarget>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let target = RtmpTarget::parse(&format!("rtmp://127.0.0.1:{port}/live")).expect("valid");
        (listener, Arc::new(target))
    }

    fn plan(
        target: Arc<RtmpTarget>,
        until: Duration,
        published: Option<CancellationToken>,
    ) -> Play {
        Play {
            target,
            name: "bench-1".to_owned(),
            label: "bench-1 player 1".to_owned(),
            start: Instant::now(),
            until: Instant::now() + until,
            published,
        }
    }

    #[tokio::test]
    async fn a_player_times_its_first_video_and_ends_with_the_stream() {
        let (listener, target) = listener().await;
        let server = tokio::spawn(async move {
            let mut server = Server::accept(&listener).await;
            let play = server.until_play().await;
            assert_eq!(
                play.arguments,
                [Value::from("bench-1"), Value::Number(-2000.0)]
            );
            server.stream(5).await;
            let eof = Message::UserControl(UserControlEvent::StreamEof { stream_id: 1 });
            server.send(2, 0, 0, &eof).await;
            server
                .status("status", "NetStream.Play.UnpublishNotify")
                .await;
            let close = server.command().await;
            let delete = server.command().await;
            (close.name, delete.name, delete.arguments)
        });
        let report = play(
            plan(target, Duration::from_secs(10), None),
            CancellationToken::new(),
        )
        .await;
        let (close, delete, deleted) = server.await.expect("server");
        assert_eq!(report.outcome, PlayerOutcome::Played, "{report:?}");
        assert!(
            report
                .first_video
                .is_some_and(|d| d < Duration::from_secs(5))
        );
        assert_eq!(report.first_video_keyframe, Some(true));
        assert_eq!(report.first_picture_keyframe, Some(true));
        assert_eq!(
            (
                report.video_messages,
                report.audio_messages,
                report.data_messages
            ),
            (5, 5, 2)
        );
        assert_eq!(report.media(), Duration::from_millis(4 * 33));
        assert_eq!(
            report.statuses[..2],
            ["NetStream.Play.Reset", "NetStream.Play.Start"]
        );
        assert!(
            report
                .end
                .as_deref()
                .is_some_and(|e| e.starts_with("the stream ended")),
            "{report:?}"
        );
        assert_eq!(report.disconnected, None);
        assert!(report.bytes > 5 * 500);
        assert_eq!(
            (close.as_str(), delete.as_str(), &deleted[..]),
            ("closeStream", "deleteStream", &[Value::Number(1.0)][..])
        );
    }

    #[tokio::test]
    async fn a_refused_play_is_rejected() {
        let (listener, target) = listener().await;
        tokio::spawn(async move {
            let mut server = Server::accept(&listener).await;
            server.until_play().await;
            server
                .status("error", "NetStream.Play.StreamNotFound")
                .await;
            // Holds the connection until the player is gone.
            let _ = server.socket.read_buf(&mut server.input).await;
        });
        let report = play(
            plan(target, Duration::from_secs(10), None),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(
            report.outcome,
            PlayerOutcome::Rejected {
                code: "NetStream.Play.StreamNotFound".to_owned(),
                description: "test".to_owned()
            }
        );
        assert_eq!(report.first_video, None);
    }

    #[tokio::test]
    async fn a_close_while_the_publisher_publishes_is_a_failure() {
        for publisher_done in [false, true] {
            let (listener, target) = listener().await;
            tokio::spawn(async move {
                let mut server = Server::accept(&listener).await;
                server.until_play().await;
                server.stream(3).await;
                // Dropped: the connection closes.
            });
            let published = CancellationToken::new();
            if publisher_done {
                published.cancel();
            }
            let report = play(
                plan(target, Duration::from_secs(10), Some(published)),
                CancellationToken::new(),
            )
            .await;
            assert_eq!(report.video_messages, 3);
            assert_eq!(
                report.disconnected.as_deref(),
                Some("the server closed the connection")
            );
            if publisher_done {
                assert_eq!(report.outcome, PlayerOutcome::Played);
                assert_eq!(
                    report.end.as_deref(),
                    Some("the server closed the connection, after the stream ended")
                );
            } else {
                assert_eq!(
                    report.outcome,
                    PlayerOutcome::Failed(
                        "disconnected: the server closed the connection".to_owned()
                    )
                );
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_player_sees_a_reset() {
        let (listener, target) = listener().await;
        tokio::spawn(async move {
            let mut server = Server::accept(&listener).await;
            server.until_play().await;
            server.stream(2).await;
            // Sends until the player's buffers are full, then drops it with a reset, as a
            // server gives up on a slow player.
            let video = Message::Video(Bytes::from(vec![0x27; 50_000]));
            let mut timestamp = 100;
            while tokio::time::timeout(
                Duration::from_millis(300),
                server.send(6, 1, timestamp, &video),
            )
            .await
            .is_ok()
            {
                timestamp += 33;
            }
            server.socket.set_zero_linger().expect("SO_LINGER");
        });
        let mut plan = plan(target, Duration::from_secs(20), None);
        plan.label = "bench-1 stalled player 1".to_owned();
        let started = Instant::now();
        let report = stall(plan, CancellationToken::new()).await;
        assert_eq!(report.kind, PlayerKind::Stalled);
        assert_eq!(report.outcome, PlayerOutcome::Played);
        assert_eq!(
            report.end.as_deref(),
            Some("the server reset the connection")
        );
        assert!(
            report
                .disconnected
                .as_deref()
                .is_some_and(|d| d.contains("into the stall")),
            "{report:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "seen before the end"
        );
    }

    #[tokio::test]
    async fn a_stalled_player_reads_what_was_buffered_at_the_end() {
        for close in [false, true] {
            let (listener, target) = listener().await;
            let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let mut server = Server::accept(&listener).await;
                server.until_play().await;
                server.stream(4).await;
                if !close {
                    // Keeps the connection open until the test is done.
                    let _ = held_rx.await;
                }
            });
            let report = stall(
                plan(target, Duration::from_secs(2), None),
                CancellationToken::new(),
            )
            .await;
            drop(held_tx);
            assert_eq!(report.outcome, PlayerOutcome::Played);
            assert_eq!(report.end.as_deref(), Some("the run ended"));
            // Counted when read at the end.
            assert_eq!(report.video_messages, 4, "{report:?}");
            if close {
                assert_eq!(
                    report.disconnected.as_deref(),
                    Some("closed, seen when the buffered bytes were read at the end")
                );
            } else {
                assert_eq!(report.disconnected, None);
            }
        }
    }

    #[test]
    fn keyframes_by_the_bits_and_by_the_picture() {
        // Legacy AVC: sequence header, keyframe, inter frame.
        let avc = |first: u8, packet_type: u8| {
            Bytes::from([&[first, packet_type, 0, 0, 0][..], &[0, 0, 0, 1, 0x65]].concat())
        };
        assert!(keyframe_bits(&avc(0x17, 0)));
        assert_eq!(picture_keyframe(&avc(0x17, 0)), None);
        assert_eq!(picture_keyframe(&avc(0x17, 1)), Some(true));
        assert!(!keyframe_bits(&avc(0x27, 1)));
        assert_eq!(picture_keyframe(&avc(0x27, 1)), Some(false));
        // Enhanced RTMP: IsExHeader, frame type in bits 4-6, packet type, FourCC.
        let ex = |frame_type: u8, packet_type: u8| {
            let first = IS_EX_HEADER | (frame_type << 4) | packet_type;
            Bytes::from([&[first][..], b"av01", &[0x12, 0x00]].concat())
        };
        assert!(keyframe_bits(&ex(1, 0)));
        assert_eq!(picture_keyframe(&ex(1, 0)), None);
        assert!(keyframe_bits(&ex(1, 1)));
        assert_eq!(picture_keyframe(&ex(1, 1)), Some(true));
        assert!(!keyframe_bits(&ex(2, 1)));
        assert_eq!(picture_keyframe(&ex(2, 1)), Some(false));
        assert!(!keyframe_bits(&[]));
        assert_eq!(picture_keyframe(&Bytes::new()), None);
    }
}
