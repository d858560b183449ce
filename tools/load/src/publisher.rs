//! One published stream: a TCP connection driven by the sans-IO client, the file's tags
//! paced at real time and written in whole batches, stopped after the run's duration.
//!
//! Per tag the only work is chunking it into the connection's output buffer, which is
//! reused; the tag bodies are the shared slices of the file read once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

use crate::media::MediaFile;
use crate::pacer::Pacer;
use crate::playout::Playout;
use crate::report::{Outcome, StreamReport};
use crate::send_log::SendLog;
use crate::target::RtmpTarget;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::{ClientConfig, ClientEvent, MediaKind, PublishClient};

/// How long the TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// From connecting to NetStream.Publish.Start: the handshake, the commands and the
/// server's key check (which may ask a stream-service).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one batch may take to write: a server that does not read for this long is
/// failing the test.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for NetStream.Unpublish.Success after unpublishing.
pub const UNPUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes asked of the socket per read: the server sends replies, acknowledgements and pings.
const READ_SIZE: usize = 4096;

/// Most bytes chunked into one write. A stream that fell behind sends what is due in
/// batches of this size instead of buffering everything it owes.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Why a stream ended early.
enum End {
    Rejected { code: String, description: String },
    Failed(String),
}

fn failed(reason: impl Into<String>) -> End {
    End::Failed(reason.into())
}

/// The connection and the client driving it.
struct Link {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    client: PublishClient,
    input: BytesMut,
    /// Reused for every batch.
    out: BytesMut,
    events: Vec<ClientEvent>,
    bytes_sent: u64,
}

impl Link {
    /// Reads what the server sent and feeds it to the client (whose answers land in `out`).
    /// Cancel-safe: nothing happens after the read completes but synchronous work.
    async fn read(&mut self) -> Result<(), End> {
        self.input.reserve(READ_SIZE);
        let n = self
            .rd
            .read_buf(&mut self.input)
            .await
            .map_err(|e| failed(format!("read: {e}")))?;
        if n == 0 {
            return Err(failed("the server closed the connection"));
        }
        self.client
            .feed(&mut self.input, &mut self.out, &mut self.events)
            .map_err(|e| failed(e.to_string()))
    }

    /// Writes `out` whole and empties it (keeping its capacity).
    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(WRITE_TIMEOUT, self.wr.write_all(&self.out))
            .await
            .map_err(|_| failed(format!("the server did not read for {WRITE_TIMEOUT:?}")))?
            .map_err(|e| failed(format!("write: {e}")))?;
        self.bytes_sent += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }
}

/// Publishes `key` until `duration` of media has gone out (or `stop`), then unpublishes.
/// With a `log`, notes when each video frame is written, for viewers' latency figures.
pub async fn publish(
    target: Arc<RtmpTarget>,
    media: Arc<MediaFile>,
    key: String,
    duration: Duration,
    log: Option<Arc<SendLog>>,
    stop: CancellationToken,
) -> StreamReport {
    let mut report = StreamReport::new(key);
    let result = run(&target, media, duration, log.as_deref(), &stop, &mut report).await;
    report.outcome = match result {
        Ok(()) => Outcome::Completed,
        Err(End::Rejected { code, description }) => Outcome::Rejected { code, description },
        Err(End::Failed(reason)) => Outcome::Failed(reason),
    };
    report
}

async fn run(
    target: &RtmpTarget,
    media: Arc<MediaFile>,
    duration: Duration,
    log: Option<&SendLog>,
    stop: &CancellationToken,
    report: &mut StreamReport,
) -> Result<(), End> {
    let connect_started = Instant::now();
    let mut link = connect(target, &report.key).await?;

    // Until NetStream.Publish.Start.
    let deadline = tokio::time::Instant::now() + PUBLISH_TIMEOUT;
    while !link.client.is_publishing() {
        tokio::select! {
            read = tokio::time::timeout_at(deadline, link.read()) => {
                read.map_err(|_| failed(format!("not publishing within {PUBLISH_TIMEOUT:?}")))??;
            }
            _ = stop.cancelled() => return Err(failed("stopped before the publish started")),
        }
        link.flush().await?;
        for event in link.events.drain(..) {
            if let ClientEvent::Rejected { code, description } = event {
                return Err(End::Rejected { code, description });
            }
        }
    }
    report.publish_time = Some(connect_started.elapsed());

    if let Some(metadata) = media.metadata() {
        link.client
            .send_metadata(RtmpTimestamp(0), metadata, &mut link.out)
            .map_err(|e| failed(e.to_string()))?;
    }
    let mut pacer = Pacer::new(Instant::now());
    let mut playout = Playout::new(media);
    let end_ms = duration.as_millis() as u64;
    // Timestamps of the video frames in the batch being written; reused.
    let mut video_ms: Vec<u64> = Vec::new();
    let sent = 'stream: loop {
        let next_ms = playout.current().media_ms;
        if next_ms >= end_ms {
            break Ok(());
        }
        let due = tokio::time::Instant::from_std(pacer.due(next_ms));
        tokio::select! {
            biased;
            _ = stop.cancelled() => break Ok(()),
            read = link.read() => {
                if let Err(end) = read {
                    break Err(end);
                }
                if let Err(end) = link.flush().await {
                    break Err(end);
                }
                let refused = link.events.drain(..).find_map(|e| match e {
                    ClientEvent::Rejected { code, description } => Some((code, description)),
                    _ => None,
                });
                if let Some((code, description)) = refused {
                    break Err(failed(format!("the server ended the publish: {code} ({description})")));
                }
            }
            _ = tokio::time::sleep_until(due) => {
                // Everything due by now goes out in one write.
                let now = Instant::now();
                loop {
                    let tag = playout.current();
                    if tag.media_ms >= end_ms
                        || pacer.due(tag.media_ms) > now
                        || link.out.len() >= MAX_BATCH_BYTES
                    {
                        break;
                    }
                    // RTMP timestamps are 32-bit milliseconds and wrap (after 49.7 days).
                    let timestamp = RtmpTimestamp(tag.media_ms as u32);
                    if let Err(e) = link.client.send_media(tag.kind, timestamp, tag.body, &mut link.out) {
                        break 'stream Err(failed(e.to_string()));
                    }
                    if tag.kind == MediaKind::Video && !tag.config {
                        video_ms.push(tag.media_ms);
                    }
                    pacer.sent(tag.media_ms, now);
                    report.media = Duration::from_millis(tag.media_ms);
                    report.tags_sent += 1;
                    playout.advance();
                }
                // The frames leave with the write that starts now.
                if let Some(log) = log {
                    log.record(&video_ms, Instant::now());
                }
                video_ms.clear();
                if let Err(end) = link.flush().await {
                    break Err(end);
                }
            }
        }
    };
    report.wall = pacer.wall();
    report.max_lag = pacer.max_lag();
    report.bytes_sent = link.bytes_sent;
    sent?;

    link.client
        .unpublish(&mut link.out)
        .map_err(|e| failed(e.to_string()))?;
    link.flush().await?;
    let confirmed = tokio::time::timeout(UNPUBLISH_TIMEOUT, async {
        loop {
            link.read().await?;
            link.flush().await?;
            if link.events.drain(..).any(|e| e == ClientEvent::Closed) {
                return Ok::<(), End>(());
            }
        }
    })
    .await;
    report.unpublish_confirmed = matches!(confirmed, Ok(Ok(())));
    report.bytes_sent = link.bytes_sent;
    // The server may already have closed; the stream is over either way.
    let _ = link.wr.shutdown().await;
    Ok(())
}

/// Connects, starts the handshake and sends C0 + C1.
async fn connect(target: &RtmpTarget, key: &str) -> Result<Link, End> {
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
    let client = PublishClient::new(
        ClientConfig::new(&target.app, &target.tc_url, key),
        &mut out,
    )
    .map_err(|e| failed(e.to_string()))?;
    let mut link = Link {
        rd,
        wr,
        client,
        input: BytesMut::with_capacity(READ_SIZE),
        out,
        events: Vec::new(),
        bytes_sent: 0,
    };
    link.flush().await?;
    Ok(link)
}
