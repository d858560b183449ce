//! The webhooks of one publish: `on_publish` once its first segment is playable (so codecs
//! and resolution are known, and its first keyframe is in: the payload names its
//! thumbnail), `on_unpublish` when it stops, if it was announced.
//!
//! Segments are listed by the stream's output tasks, off the ingest path, so a task of its
//! own per publish waits for the stream to become playable and for the publish to end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use crate::hooks::{HookEvent, Hooks};
use crate::hub::stream::{Publisher, Stream};
use crate::thumbnail::cache::Which;
use crate::wallclock::rfc3339_millis;

/// How long after a publish stopped its outputs may take to list the segment it ended
/// with. They do it as soon as they run; this only bounds the wait.
const LAST_SEGMENT_WAIT: Duration = Duration::from_secs(5);

/// How a publish ended, for `on_unpublish`.
pub(super) struct Stopped {
    pub at: SystemTime,
    pub bytes: u64,
    pub duration_s: f64,
}

/// Starts the webhook task of the publish by `publisher`; the returned sender tells it
/// that the publish stopped.
pub(super) fn spawn(
    hooks: Hooks,
    stream: Arc<Stream>,
    publisher: Publisher,
    thumbnails: bool,
) -> oneshot::Sender<Stopped> {
    let (tx, mut stopped) = oneshot::channel::<Stopped>();
    let mut playable = stream.playable();
    let id = publisher.id;
    // The stream's count of bytes received when this publish began: the publish's own bytes
    // are what it grew by.
    let baseline = stream.bytes_in.load(Ordering::Relaxed);
    tokio::spawn(async move {
        let became_playable = async { playable.wait_for(|p| *p == id).await.is_ok() };
        let announced = tokio::select! {
            ok = became_playable => ok,
            end = &mut stopped => {
                // Stopped before a first segment was listed: the outputs list the one it
                // ended with right after; announce it then, with its end.
                let listed = tokio::time::timeout(LAST_SEGMENT_WAIT, playable.wait_for(|p| *p == id))
                    .await
                    .is_ok_and(|r| r.is_ok());
                if let (true, Ok(end)) = (listed, end) {
                    let mut publish = event("publish", &stream, &publisher, baseline, None);
                    publish.thumbnail = thumbnail(&stream, thumbnails);
                    hooks.notify(publish);
                    hooks.notify(event("unpublish", &stream, &publisher, baseline, Some(&end)));
                }
                return;
            }
        };
        if announced {
            let mut publish = event("publish", &stream, &publisher, baseline, None);
            publish.thumbnail = thumbnail(&stream, thumbnails);
            hooks.notify(publish);
        }
        if let (true, Ok(end)) = (announced, stopped.await) {
            hooks.notify(event(
                "unpublish",
                &stream,
                &publisher,
                baseline,
                Some(&end),
            ));
        }
    });
    tx
}

/// The path of the thumbnail of the publish's first keyframe, when thumbnails are on and its
/// video is H.264.
fn thumbnail(stream: &Stream, thumbnails: bool) -> Option<String> {
    let decodes = stream
        .thumbnails
        .codec(Which::First)
        .is_some_and(crate::thumbnail::decodes);
    (thumbnails && decodes)
        .then(|| crate::thumbnail::path(&stream.app, stream.name.as_str()) + "?keyframe=first")
}

/// The webhook body for a publish that started (`stopped` None) or stopped.
fn event(
    event: &'static str,
    stream: &Stream,
    publisher: &Publisher,
    baseline: u64,
    stopped: Option<&Stopped>,
) -> HookEvent {
    let media = stream.media();
    HookEvent {
        event,
        app: stream.app.clone(),
        key: stream.key.to_string(),
        name: stream.name.to_string(),
        client: publisher.addr.to_string(),
        video: media.video,
        audio: media.audio,
        tracks: media.tracks,
        started_at: rfc3339_millis(publisher.started),
        stopped_at: stopped.map(|s| rfc3339_millis(s.at)),
        bytes: stopped.map_or_else(
            || {
                stream
                    .bytes_in
                    .load(Ordering::Relaxed)
                    .saturating_sub(baseline)
            },
            |s| s.bytes,
        ),
        duration_s: stopped.map_or_else(
            || publisher.started_at.elapsed().as_secs_f64(),
            |s| s.duration_s,
        ),
        thumbnail: None,
    }
}
