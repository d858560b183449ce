//! Webhooks: a JSON POST to `hooks.on_publish` when a stream goes live and to
//! `hooks.on_unpublish` when it stops; to `hooks.on_play` when a player starts reading a
//! stream and to `hooks.on_stop` when it stops; to `hooks.on_record_done` when a recording is
//! closed.
//!
//! Hooks are sent from a background task, off the ingest path: a slow or dead webhook target
//! never delays or drops a stream. Each event is tried a bounded number of times; the queue
//! is bounded and an event that does not fit is dropped with a log line.

use std::time::Duration;

use crate::media::codec::TrackSummary;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Events waiting to be sent at most. Beyond it (a webhook target down during a burst of
/// publishes) new events are dropped rather than held without bound.
const QUEUE: usize = 1024;

/// Tries per event: the first send and two retries.
const ATTEMPTS: u32 = 3;

/// Wait before the first retry; doubled for each next one.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The body of a webhook POST.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HookEvent {
    /// `publish` or `unpublish`.
    pub event: &'static str,
    pub app: String,
    pub key: String,
    /// The name HLS is served under (the key, or its playback id).
    pub name: String,
    pub client: String,
    /// The first video track.
    pub video: Option<TrackSummary>,
    /// The first audio track.
    pub audio: Option<TrackSummary>,
    /// Every track of the publish.
    pub tracks: Vec<TrackSummary>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; unpublish only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    pub bytes: u64,
    pub duration_s: f64,
    /// `publish` only: the path (on this server's HTTP side) of the thumbnail of the
    /// publish's first keyframe, when its video is H.264 and thumbnails are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

/// The body of a player's webhook POST.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlayEvent {
    /// `play` or `stop`.
    pub event: &'static str,
    pub app: String,
    /// The name the player asked for (the key, or its playback id).
    pub name: String,
    pub client: String,
    /// `rtmp`, `http-flv` or `ws-flv`.
    pub protocol: &'static str,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; stop only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Bytes written to the player; stop only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why the player stopped; stop only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The webhook URLs (`hooks.*`); empty sends nothing.
#[derive(Clone, Debug, Default)]
pub struct HookUrls {
    pub on_publish: String,
    pub on_unpublish: String,
    pub on_play: String,
    pub on_stop: String,
    pub on_record_done: String,
}

/// Queues hook events for the background sender. Cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    tx: Option<mpsc::Sender<(String, &'static str, serde_json::Value)>>,
    urls: std::sync::Arc<HookUrls>,
}

impl Hooks {
    /// Starts the sender task when at least one hook URL is set. The task ends once every
    /// `Hooks` clone is dropped and what was queued has been sent (or given up on): a stop
    /// waits for it, so the `unpublish` events of the streams it ended go out.
    pub fn start(
        urls: HookUrls,
        client: reqwest::Client,
    ) -> (Hooks, Option<tokio::task::JoinHandle<()>>) {
        let none = [
            &urls.on_publish,
            &urls.on_unpublish,
            &urls.on_play,
            &urls.on_stop,
            &urls.on_record_done,
        ]
        .iter()
        .all(|u| u.is_empty());
        let (tx, task) = if none {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(QUEUE);
            (Some(tx), Some(tokio::spawn(send_all(rx, client))))
        };
        let hooks = Hooks {
            tx,
            urls: std::sync::Arc::new(urls),
        };
        (hooks, task)
    }

    /// Queues `event` for its hook URL, if that hook is configured. Never waits.
    pub fn notify(&self, event: HookEvent) {
        let url = match event.event {
            "publish" => &self.urls.on_publish,
            _ => &self.urls.on_unpublish,
        };
        self.queue(url, event.event, &event);
    }

    /// Queues a player's `event` for `hooks.on_play` or `hooks.on_stop`. Never waits.
    pub fn notify_play(&self, event: PlayEvent) {
        let url = match event.event {
            "play" => &self.urls.on_play,
            _ => &self.urls.on_stop,
        };
        self.queue(url, event.event, &event);
    }

    /// Queues `hooks.on_record_done` for a recording that was closed: the recording's entry
    /// as `/api/recordings` lists it, with `"event":"record_done"`. Never waits.
    pub fn record_done(&self, recording: &crate::record::Entry) {
        #[derive(Serialize)]
        struct RecordDone<'a> {
            event: &'static str,
            #[serde(flatten)]
            recording: &'a crate::record::Entry,
        }
        let event = RecordDone {
            event: "record_done",
            recording,
        };
        self.queue(&self.urls.on_record_done, event.event, &event);
    }

    fn queue(&self, url: &str, name: &'static str, event: &impl Serialize) {
        let Some(tx) = &self.tx else { return };
        if url.is_empty() {
            return;
        }
        let Ok(body) = serde_json::to_value(event) else {
            return;
        };
        if tx.try_send((url.to_string(), name, body)).is_err() {
            warn!("webhook queue full ({QUEUE} events): event dropped");
        }
    }
}

async fn send_all(
    mut rx: mpsc::Receiver<(String, &'static str, serde_json::Value)>,
    client: reqwest::Client,
) {
    while let Some((url, name, event)) = rx.recv().await {
        // One event at a time keeps the order a receiver sees (publish before unpublish);
        // retries of one slow target delay the others by at most a few seconds.
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match client.post(&url).json(&event).send().await {
                Ok(r) if r.status().is_success() => {
                    debug!(url, event = name, "webhook delivered");
                    break;
                }
                Ok(r) => warn!(url, attempt, "webhook answered HTTP {}", r.status()),
                Err(e) => warn!(url, attempt, "webhook failed: {e}"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}
