//! The thumbnail service: a small pool of worker threads (`thumbnail.workers`), off the
//! ingest and HTTP runtimes, that decode keyframes and scale and encode pictures, under one
//! CPU budget for all of them (`thumbnail.cpu`, measured from each worker thread's CPU time,
//! checked when a worker takes a job), and the request path that asks a stream's
//! [`StreamThumbnails`] what to serve.
//!
//! The workers hold the pictures they decode until each one's interval ends (a stream keeps
//! a weak handle), and free them then, off the ingest and HTTP runtimes.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use super::budget::Budget;
use super::cache::{Answer, Job, Made, StreamThumbnails, Which, Work};
use super::decode::{self, Picture};
use super::{jpeg, scale};
use crate::hub::stream::lock;
use crate::media::codec::CodecConfig;
use crate::metrics::Metrics;

/// Jobs waiting for a worker at most. A stream has at most two jobs in flight (its latest
/// and its first keyframe), so this is only reached with that many streams asked for at
/// once; past it requests are answered 503 as when the budget is spent.
const QUEUE: usize = 64;

/// How long a request waits for the job it depends on before it is answered 503.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// How often an idle worker looks for pictures whose interval has ended.
const SWEEP: Duration = Duration::from_secs(1);

/// Rounds of waiting one request goes through (a decode, then a scale to its width).
const MAX_ROUNDS: usize = 4;

/// The `thumbnail.*` options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThumbnailSettings {
    /// Worker threads.
    pub workers: usize,
    /// Share of one core the workers may use together.
    pub cpu: f64,
    /// A stream's picture is decoded at most once per this long.
    pub interval: Duration,
}

/// What a thumbnail request is answered with.
#[derive(Debug)]
pub enum Outcome {
    Jpeg(Bytes),
    /// The keyframe did not decode: the decoder's reason.
    Failed(Arc<str>),
    NoKeyframe,
    /// The stream's video codec (named) has no decoder here.
    NoDecoder(&'static str),
    /// The CPU budget is spent (or the workers are swamped) and nothing is cached: ask again
    /// after this long.
    Busy(Duration),
}

/// The worker pool and its budget. Dropping the last handle ends the workers once they
/// finish what they hold.
pub struct Thumbnailer {
    queue: SyncSender<Task>,
    budget: Arc<Mutex<Budget>>,
    metrics: Arc<Metrics>,
    interval: Duration,
}

/// A job and the name of its stream, for the log.
struct Task {
    job: Job,
    stream: Arc<str>,
}

impl Thumbnailer {
    /// Starts `settings.workers` worker threads (at least one).
    pub fn start(
        settings: ThumbnailSettings,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Thumbnailer> {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Task>(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let budget = Arc::new(Mutex::new(Budget::new(settings.cpu, Instant::now())));
        let held = Arc::new(Mutex::new(Held::default()));
        for i in 0..settings.workers.max(1) {
            let pool = Pool {
                jobs: jobs.clone(),
                budget: budget.clone(),
                held: held.clone(),
                metrics: metrics.clone(),
            };
            std::thread::Builder::new()
                .name(format!("thumbnail-{i}"))
                .spawn(move || work(&pool))?;
        }
        Ok(Thumbnailer {
            queue,
            budget,
            metrics,
            interval: settings.interval,
        })
    }

    /// The thumbnail of `which` keyframe of a stream (`name` for the log) at `width`.
    pub async fn get(
        &self,
        stream: &Arc<StreamThumbnails>,
        name: &str,
        which: Which,
        width: Option<u32>,
    ) -> Outcome {
        let name: Arc<str> = name.into();
        for _ in 0..MAX_ROUNDS {
            let now = Instant::now();
            let answer = stream.request(which, width, now, self.interval, |job| {
                self.admit(job, &name, now)
            });
            let mut changed = match answer {
                Answer::Jpeg(j) => return Outcome::Jpeg(j),
                Answer::Failed(reason) => return Outcome::Failed(reason),
                Answer::NoKeyframe => return Outcome::NoKeyframe,
                Answer::NoDecoder(codec) => return Outcome::NoDecoder(codec),
                Answer::Refused => return Outcome::Busy(self.retry_after()),
                Answer::Wait(changed) => changed,
            };
            if tokio::time::timeout(WAIT_LIMIT, changed.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        Outcome::Busy(self.retry_after())
    }

    /// Hands `job` to a worker if the budget allows and the queue has room; gives it back
    /// otherwise.
    fn admit(&self, job: Job, stream: &Arc<str>, now: Instant) -> Result<(), Job> {
        if !lock(&self.budget).allows(now) {
            self.metrics.thumbnail_budget_refusals_total.inc();
            return Err(job);
        }
        let task = Task {
            job,
            stream: stream.clone(),
        };
        match self.queue.try_send(task) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(task)) => {
                self.metrics.thumbnail_budget_refusals_total.inc();
                debug!(stream = %stream, "thumbnail refused: {QUEUE} jobs queued");
                Err(task.job)
            }
            Err(TrySendError::Disconnected(task)) => Err(task.job),
        }
    }

    /// When to ask again after a refusal: once the budget is out of debt (a second at least).
    fn retry_after(&self) -> Duration {
        lock(&self.budget)
            .retry_after(Instant::now())
            .max(Duration::from_secs(1))
    }
}

/// What the workers share.
struct Pool {
    jobs: Arc<Mutex<Receiver<Task>>>,
    budget: Arc<Mutex<Budget>>,
    held: Arc<Mutex<Held>>,
    metrics: Arc<Metrics>,
}

/// The pictures the workers decoded, each held until its interval ends (while it may be
/// scaled to another width without decoding again).
#[derive(Default)]
struct Held(Vec<(Instant, Arc<Picture>)>);

impl Held {
    /// Takes out the pictures whose interval has ended at `now`, for the caller to free.
    fn expired(&mut self, now: Instant) -> Vec<Arc<Picture>> {
        let (gone, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(until, _)| *until <= now);
        self.0 = kept;
        gone.into_iter().map(|(_, p)| p).collect()
    }
}

/// A worker thread: takes jobs until the service is dropped, and frees the pictures whose
/// interval has ended (within [`SWEEP`] of it).
fn work(pool: &Pool) {
    let metrics = &*pool.metrics;
    loop {
        let task = {
            let jobs = lock(&pool.jobs);
            jobs.recv_timeout(SWEEP)
        };
        let expired = lock(&pool.held).expired(Instant::now());
        drop(expired);
        let Task { job, stream } = match task {
            Ok(task) => task,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // The budget is checked again as the job starts: one queued while it was not in
        // debt waits for no refill, and its requests are answered from what is cached.
        if !lock(&pool.budget).allows(Instant::now()) {
            metrics.thumbnail_budget_refusals_total.inc();
            debug!(stream = %stream, "thumbnail refused: the CPU budget is in debt");
            job.stream
                .complete(job.which, &job.work, job.until, Made::Refused);
            continue;
        }
        let started = thread_cpu();
        let made = std::panic::catch_unwind(|| run(&job.work, job.width)).unwrap_or_else(|_| {
            let reason: Arc<str> = "the thumbnail worker failed on this keyframe".into();
            match job.work {
                Work::Decode(_) => Made::Decoded {
                    picture: Err(reason),
                    jpeg: None,
                },
                Work::Encode { .. } => Made::Encoded(Err(reason)),
            }
        });
        let cpu = thread_cpu().saturating_sub(started);
        lock(&pool.budget).charge(cpu, Instant::now());
        match (&job.work, &made) {
            (Work::Decode(keyframe), Made::Decoded { picture, .. }) => {
                metrics.thumbnail_decodes_total.inc();
                metrics.thumbnail_decode_seconds.observe(cpu.as_secs_f64());
                match picture {
                    Ok(p) => debug!(
                        stream = %stream,
                        width = p.width,
                        height = p.height,
                        cpu_ms = cpu.as_millis() as u64,
                        "thumbnail decoded"
                    ),
                    Err(reason) => {
                        metrics.thumbnail_decode_failures_total.inc();
                        warn!(
                            stream = %stream,
                            bytes = keyframe.data.len(),
                            "keyframe did not decode for a thumbnail: {reason}"
                        );
                    }
                }
            }
            _ => {
                metrics.thumbnail_encodes_total.inc();
            }
        }
        if let Made::Decoded {
            picture: Ok(picture),
            ..
        } = &made
        {
            lock(&pool.held).0.push((job.until, picture.clone()));
        }
        job.stream.complete(job.which, &job.work, job.until, made);
    }
}

/// Does one job's work (sans-IO).
fn run(work: &Work, width: Option<u32>) -> Made {
    match work {
        Work::Decode(keyframe) => {
            let picture = match &*keyframe.config {
                CodecConfig::H264(config) => decode::decode(config, &keyframe.data),
                other => {
                    let reason = format!("{} has no decoder here", other.name());
                    return Made::Decoded {
                        picture: Err(reason.into()),
                        jpeg: None,
                    };
                }
            };
            match picture {
                Ok(picture) => {
                    let jpeg = render(&picture, width);
                    match jpeg {
                        Ok(jpeg) => Made::Decoded {
                            picture: Ok(Arc::new(picture)),
                            jpeg: Some(jpeg),
                        },
                        Err(reason) => Made::Decoded {
                            picture: Err(reason),
                            jpeg: None,
                        },
                    }
                }
                Err(e) => Made::Decoded {
                    picture: Err(e.to_string().into()),
                    jpeg: None,
                },
            }
        }
        Work::Encode { picture, .. } => Made::Encoded(render(picture, width)),
    }
}

/// `picture` as a JPEG at `width` (its own when none), and the width it came out at.
pub fn render(picture: &Picture, width: Option<u32>) -> Result<(usize, Bytes), Arc<str>> {
    let (w, h) = scale::output_size(picture, width);
    let image = scale::scale(picture, w, h);
    let jpeg = jpeg::encode(&image).map_err(|e| Arc::<str>::from(e.to_string()))?;
    Ok((w, Bytes::from(jpeg)))
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
