//! The uploader: a thread of its own (a current-thread tokio runtime) that takes requests
//! from the upload queue and sends them, up to `s3.concurrency` at once, so slow or failing
//! storage never holds up the ingest runtime, the HTTP runtime or the disk writer. Failed
//! requests are retried with jittered back-off (bounded per object, see
//! [`super::queue::MAX_ATTEMPTS`]); what it does is counted in `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::client::{S3Client, S3Error};
use super::queue::{Kind, Outcome, Request, Task, UploadQueue};
use super::{Fence, Uploads};
use crate::config::S3Config;
use crate::metrics::{KindLabel, Metrics, ReasonLabel};

/// At most one log line per failure reason in this period (a storage outage fails every
/// request); the counters carry the totals.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the handles and the thread share.
pub struct Shared {
    queue: Mutex<UploadQueue>,
    pub(super) wake: Notify,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
    /// Asked before playlist writes; unset: always write.
    pub(super) fence: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, UploadQueue> {
        crate::hub::stream::lock(&self.queue)
    }

    pub(super) fn dropped(&self, n: u64) {
        if n > 0 {
            self.metrics.s3_dropped_total.inc_by(n);
            tracing::warn!(
                dropped = n,
                "object storage: upload queue full, dropping the oldest segment uploads \
                 (the bucket's playlists skip them; the node still serves them)"
            );
        }
    }
}

/// The running uploader.
#[derive(Debug)]
pub struct Uploader {
    shared: Arc<Shared>,
    thread: std::thread::JoinHandle<()>,
}

impl Uploader {
    /// Lets what is queued go up for at most `within`, then ends the thread. Blocking.
    pub fn stop(self, within: Duration) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        let deadline = Instant::now() + within;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            tracing::warn!("object storage: uploads still queued at shutdown are abandoned");
        }
    }
}

/// Starts the uploader for `config` (object storage on): its queue handle and the thread.
/// Playlists are written freely until [`Uploads::fence_with`] hands it a cluster.
pub fn spawn(config: &S3Config, metrics: Arc<Metrics>) -> Result<(Uploads, Uploader), String> {
    let client = Arc::new(S3Client::new(config)?);
    let shared = Arc::new(Shared {
        queue: Mutex::new(UploadQueue::new(&config.prefix, config.max_queue)),
        wake: Notify::new(),
        metrics,
        stopping: AtomicBool::new(false),
        fence: std::sync::OnceLock::new(),
    });
    let concurrency = usize::try_from(config.concurrency.max(1)).unwrap_or(1);
    // What the fence vouches for: a playlist request's time-out.
    let timeout = client.playlist_timeout();
    let bucket = config.bucket.clone();
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("s3-uploader".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "object storage: cannot start the uploader");
                    return;
                }
            };
            runtime.block_on(run(Run {
                client,
                shared: thread_shared,
                concurrency,
                timeout,
                bucket,
            }));
        })
        .map_err(|e| format!("object storage: cannot start the uploader thread: {e}"))?;
    Ok((
        Uploads {
            shared: Arc::clone(&shared),
        },
        Uploader { shared, thread },
    ))
}

struct Run {
    client: Arc<S3Client>,
    shared: Arc<Shared>,
    concurrency: usize,
    timeout: Duration,
    bucket: String,
}

/// What one request came to.
struct Finished {
    task: Task,
    result: Result<Outcome, S3Error>,
    bytes: u64,
    took: Duration,
}

async fn run(r: Run) {
    check_bucket(&r).await;
    let metrics = &r.shared.metrics;
    let mut set: JoinSet<Finished> = JoinSet::new();
    let mut logged: HashMap<&'static str, Instant> = HashMap::new();
    let fence = |stream: &str| match r.shared.fence.get() {
        Some(cluster) => cluster.fence(stream, r.timeout),
        None => Fence::Write,
    };
    loop {
        let now = Instant::now();
        let (idle, due) = {
            let mut queue = r.shared.lock();
            while set.len() < r.concurrency {
                let Some(task) = queue.next(now, &fence) else {
                    break;
                };
                let client = Arc::clone(&r.client);
                set.spawn(execute(client, task));
            }
            metrics.s3_queue_bytes.set(queue.bytes() as i64);
            (queue.is_idle(), queue.next_due(now))
        };
        if r.shared.stopping.load(Ordering::Relaxed) && (idle || set.is_empty() && due.is_some()) {
            // Stopping: what can go now has gone; retries and deletions due later are left.
            if set.is_empty() {
                break;
            }
        }
        let sleep = tokio::time::sleep_until(
            due.map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
        );
        tokio::select! {
            Some(done) = set.join_next(), if !set.is_empty() => {
                let Ok(done) = done else { continue };
                finished(&r, done, &mut logged);
            }
            _ = r.shared.wake.notified() => {}
            _ = sleep => {}
        }
    }
    tracing::debug!("object storage: uploader stopped");
}

async fn execute(client: Arc<S3Client>, task: Task) -> Finished {
    let start = Instant::now();
    let mut bytes = 0;
    let result = match &task.request {
        Request::Put {
            body,
            content_type,
            cache_control,
        } => client
            .put(&task.key, body.clone(), content_type, cache_control)
            .await
            .map(|n| {
                bytes = n;
                Outcome::Done
            }),
        Request::PutFile {
            path,
            content_type,
            cache_control,
        } => client
            .put_file(&task.key, path, content_type, cache_control)
            .await
            .map(|n| {
                bytes = n;
                Outcome::Done
            }),
        Request::GetPlaylist => client.get_playlist(&task.key).await.map(Outcome::Got),
        Request::Delete => client.delete(&task.key).await.map(|()| Outcome::Done),
    };
    Finished {
        task,
        result,
        bytes,
        took: start.elapsed(),
    }
}

fn finished(r: &Run, done: Finished, logged: &mut HashMap<&'static str, Instant>) {
    let metrics = &r.shared.metrics;
    metrics.s3_request_seconds.observe(done.took.as_secs_f64());
    let outcome = match &done.result {
        Ok(outcome) => outcome.clone(),
        Err(error) => {
            let reason = error.reason();
            metrics
                .s3_failures_total
                .get_or_create(&ReasonLabel { reason })
                .inc();
            let now = Instant::now();
            if logged.get(reason).is_none_or(|t| now >= *t) {
                logged.insert(reason, now + LOG_INTERVAL);
                tracing::error!(
                    %error,
                    key = %done.task.key,
                    bucket = %r.bucket,
                    "object storage: request failed (retried with back-off; the node still \
                     serves the stream)"
                );
            }
            Outcome::Failed {
                retry: error.retry(),
            }
        }
    };
    if outcome == Outcome::Done {
        if done.task.request == Request::Delete {
            metrics.s3_deletes_total.inc();
        } else {
            metrics
                .s3_uploads_total
                .get_or_create(&KindLabel {
                    kind: done.task.kind.label(),
                })
                .inc();
            metrics.s3_upload_bytes_total.inc_by(done.bytes);
        }
    }
    let report = r
        .shared
        .lock()
        .done(&done.task.key, outcome, Instant::now());
    if let Some(lag) = report.playlist_lag {
        metrics.s3_playlist_lag_seconds.observe(lag.as_secs_f64());
    }
    if report.retried {
        metrics.s3_retries_total.inc();
    }
    if report.gave_up {
        tracing::warn!(
            key = %done.task.key,
            "object storage: giving up on an object after repeated failures{}",
            if done.task.kind == Kind::Segment {
                " (the bucket's playlists skip it)"
            } else {
                ""
            }
        );
    }
}

/// HEAD the bucket once at start: a clear error for wrong credentials or a missing bucket.
/// The server starts either way (the node serves its streams; uploads fail and are
/// counted).
async fn check_bucket(r: &Run) {
    let url = r.client.bucket_url().to_string();
    match r.client.check_bucket().await {
        Ok(()) => tracing::info!(bucket = %r.bucket, %url, "object storage: bucket reachable"),
        Err(error) => {
            r.shared
                .metrics
                .s3_failures_total
                .get_or_create(&ReasonLabel {
                    reason: error.reason(),
                })
                .inc();
            let hint = match &error {
                S3Error::Status { status: 403, .. } => {
                    "access denied: check s3.access_key and s3.secret_key (or \
                     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                }
                S3Error::Status { status: 404, .. } => "the bucket does not exist",
                S3Error::Status { status: 301, .. } => "wrong s3.region or s3.endpoint",
                _ => "cannot reach the object storage",
            };
            tracing::error!(
                bucket = %r.bucket,
                %url,
                %error,
                "object storage: {hint}; uploads will fail until this is fixed, the node \
                 still serves its streams"
            );
        }
    }
}
