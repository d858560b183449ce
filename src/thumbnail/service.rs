//! The thumbnail service: a small pool of worker threads (`thumbnail.workers`), off the
//! ingest and HTTP runtimes, that decode keyframes and scale and encode pictures, under one
//! CPU budget for all of them (`thumbnail.cpu`, measured from each worker thread's CPU time,
//! checked when a worker takes a job), and the request path that asks a stream's
//! [`StreamThumbnails`] what to serve.
//!
//! The workers hold the pictures they decode until each one's interval ends, or sooner when
//! its stream is gone or has replaced the product it was made for, within
//! [`MAX_HELD_BYTES`] for all (a stream keeps a weak handle), and free them off the ingest
//! and HTTP runtimes.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
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

/// How long a request waits, in all, for the jobs it depends on before it is answered 503.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// How often an idle worker looks for pictures whose interval has ended.
const SWEEP: Duration = Duration::from_secs(1);

/// Bytes of decoded pictures the workers hold at most, for all streams together; past it
/// the oldest is let go (it is decoded again if another width of it is asked, within the
/// budget). 64 MiB is some twenty 1080p pictures.
const MAX_HELD_BYTES: usize = 64 << 20;

/// The `thumbnail.*` options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThumbnailSettings {
    /// Worker threads.
    pub workers: usize,
    /// Share of one core the workers may use together.
    pub cpu: f64,
    /// Each keyframe a stream is asked for (latest, first) is decoded at most once per this
    /// long.
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
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let now = Instant::now();
            let answer = stream.request(which, width, now, self.interval, |job| {
                self.admit(job, &name, now)
            });
            let (mut changed, refused) = match answer {
                Answer::Jpeg(j) => return Outcome::Jpeg(j),
                Answer::Failed(reason) => return Outcome::Failed(reason),
                Answer::NoKeyframe => return Outcome::NoKeyframe,
                Answer::NoDecoder(codec) => return Outcome::NoDecoder(codec),
                Answer::Refused => return Outcome::Busy(self.retry_after()),
                Answer::Wait(changed, seen) => (changed, seen.refused[which as usize]),
            };
            // Every job of the stream wakes its waiters (other widths, the other keyframe):
            // each asks again, until an answer or the deadline.
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Outcome::Busy(self.retry_after());
            }
            // A worker refused this keyframe's job (counted once, there): the budget is in
            // debt, so it is not offered again now.
            if changed.borrow_and_update().refused[which as usize] != refused {
                return Outcome::Busy(self.retry_after());
            }
        }
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

/// The pictures the workers decoded, oldest first, each held until its interval ends (while
/// it may be scaled to another width without decoding again), while its stream still has
/// the product it belongs to, and within [`MAX_HELD_BYTES`] for all.
#[derive(Default)]
struct Held {
    pictures: Vec<HeldPicture>,
    /// Their bytes together.
    bytes: usize,
}

/// A picture held, and what it was made for.
struct HeldPicture {
    /// Its decode's admission plus the interval.
    until: Instant,
    picture: Arc<Picture>,
    stream: Weak<StreamThumbnails>,
    which: Which,
    /// The keyframe it was decoded from.
    seq: u64,
}

/// The bytes of a picture's samples.
fn picture_bytes(picture: &Picture) -> usize {
    picture.y.len() + picture.cb.len() + picture.cr.len()
}

impl Held {
    /// Holds `held`; gives back the oldest pictures let go to stay within
    /// [`MAX_HELD_BYTES`], for the caller to free.
    fn hold(&mut self, held: HeldPicture) -> Vec<Arc<Picture>> {
        self.bytes += picture_bytes(&held.picture);
        self.pictures.push(held);
        let mut gone = Vec::new();
        while self.bytes > MAX_HELD_BYTES && self.pictures.len() > 1 {
            let oldest = self.pictures.remove(0);
            self.bytes -= picture_bytes(&oldest.picture);
            gone.push(oldest.picture);
        }
        gone
    }

    /// Takes out the pictures whose interval has ended at `now`, or whose stream is gone or
    /// no longer has the product they were made for, for the caller to free.
    fn expired(&mut self, now: Instant) -> Vec<Arc<Picture>> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pictures)
            .into_iter()
            .partition(|h| {
                h.until <= now
                    || !h
                        .stream
                        .upgrade()
                        .is_some_and(|s| s.has_product(h.which, h.seq))
            });
        self.pictures = kept;
        self.bytes = self
            .pictures
            .iter()
            .map(|h| picture_bytes(&h.picture))
            .sum();
        gone.into_iter().map(|h| h.picture).collect()
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
        let Task { job, stream: name } = match task {
            Ok(task) => task,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // The budget is checked again as the job starts: one queued while it was not in
        // debt waits for no refill, and its requests are answered from what is cached.
        if !lock(&pool.budget).allows(Instant::now()) {
            metrics.thumbnail_budget_refusals_total.inc();
            debug!(stream = %name, "thumbnail refused: the CPU budget is in debt");
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
                        stream = %name,
                        width = p.width,
                        height = p.height,
                        cpu_ms = cpu.as_millis() as u64,
                        "thumbnail decoded"
                    ),
                    Err(reason) => {
                        metrics.thumbnail_decode_failures_total.inc();
                        warn!(
                            stream = %name,
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
        let decoded = match &made {
            Made::Decoded {
                picture: Ok(picture),
                ..
            } => Some(picture.clone()),
            _ => None,
        };
        job.stream.complete(job.which, &job.work, job.until, made);
        // Held once the stream has its product (the sweep lets go of one it has not).
        if let (Work::Decode(keyframe), Some(picture)) = (&job.work, decoded) {
            let held = HeldPicture {
                until: job.until,
                picture,
                stream: Arc::downgrade(&job.stream),
                which: job.which,
                seq: keyframe.seq,
            };
            let evicted = lock(&pool.held).hold(held);
            drop(evicted);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thumbnail::decode::Colour;

    fn picture(width: usize, height: usize) -> Arc<Picture> {
        Arc::new(Picture {
            width,
            height,
            y: vec![0; width * height],
            cb: vec![128; width / 2 * height / 2],
            cr: vec![128; width / 2 * height / 2],
            colour: Colour::default(),
            sample_aspect: (1, 1),
        })
    }

    fn held(picture: &Arc<Picture>, stream: &Arc<StreamThumbnails>, until: Instant) -> HeldPicture {
        HeldPicture {
            until,
            picture: picture.clone(),
            stream: Arc::downgrade(stream),
            which: Which::Latest,
            seq: 1,
        }
    }

    #[test]
    fn the_sweep_lets_go_of_a_picture_whose_stream_is_gone() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut list = Held::default();
        let stream = Arc::new(StreamThumbnails::default());
        let p = picture(320, 180);
        assert!(list.hold(held(&p, &stream, later)).is_empty());
        drop(stream);
        let gone = list.expired(now);
        assert_eq!(gone.len(), 1);
        assert!(Arc::ptr_eq(&gone[0], &p));
        assert!(list.pictures.is_empty());
        assert_eq!(list.bytes, 0);
    }

    #[test]
    fn past_the_cap_the_oldest_picture_is_let_go() {
        let later = Instant::now() + Duration::from_secs(3600);
        let mut list = Held::default();
        let stream = Arc::new(StreamThumbnails::default());
        let pictures: Vec<_> = (0..30).map(|_| picture(1920, 1080)).collect();
        let each = picture_bytes(&pictures[0]);
        let fit = MAX_HELD_BYTES / each;
        let mut gone = Vec::new();
        for p in &pictures {
            gone.extend(list.hold(held(p, &stream, later)));
        }
        assert!(list.bytes <= MAX_HELD_BYTES);
        assert_eq!(list.pictures.len(), fit);
        // The oldest went, in order; the newest are held.
        assert_eq!(gone.len(), pictures.len() - fit);
        for (g, p) in gone.iter().zip(&pictures) {
            assert!(Arc::ptr_eq(g, p));
        }
        assert!(Arc::ptr_eq(
            &list.pictures.last().unwrap().picture,
            pictures.last().unwrap()
        ));
    }

    /// Every width at once of a 1280x720 keyframe: one decode and five encodes, each waking
    /// every waiter; all are answered with their JPEG while the budget allows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_widths_at_once_are_all_answered() {
        let settings = ThumbnailSettings {
            workers: 1,
            cpu: 1000.0,
            interval: Duration::from_secs(3600),
        };
        let service = Arc::new(Thumbnailer::start(settings, Arc::new(Metrics::default())).unwrap());
        let (config, frame) = decode::tests::keyframe("testsrc2_1280x720.h264");
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&Arc::new(CodecConfig::H264(config)), &frame, 1);
        let widths = [
            None,
            Some(160),
            Some(320),
            Some(480),
            Some(640),
            Some(960),
            Some(1280),
        ];
        let asks = widths.map(|width| {
            let (service, stream) = (service.clone(), stream.clone());
            tokio::spawn(async move { service.get(&stream, "s", Which::Latest, width).await })
        });
        for (ask, width) in asks.into_iter().zip(widths) {
            match ask.await.unwrap() {
                Outcome::Jpeg(j) => assert!(j.starts_with(&[0xff, 0xd8]), "{width:?}"),
                other => panic!("{width:?}: {other:?}"),
            }
        }
    }
}
