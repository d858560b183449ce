//! Recording: each recorded publish kept as one fragmented MP4 file with its journal and a
//! VOD playlist, in `record.path`, listed in a catalog that the API and HTTP read.
//!
//! The CMAF output's task feeds a [`recorder::Recorder`] the fragments it makes, as they
//! close; the recorder's writes go through a queue bounded in bytes to one writer thread
//! ([`writer`]), which appends them, flushes both files to the disk at every segment's end,
//! closes recordings (their journal's last line, then `index.m3u8`), closes recordings
//! whose gap has passed, deletes recordings (retention, the API) and keeps the catalog's
//! figures. At start, [`recovery`] closes the recordings a crash left open.
//!
//! ```text
//! {record.path}/{id}/media.mp4      ftyp moov | moof mdat | moof mdat | ...   (appended)
//!                    journal.jsonl  what media.mp4 holds, one line per fragment
//!                    index.m3u8     the VOD playlist, written at the close
//! ```

pub mod journal;
pub mod playlist;
pub mod recorder;
mod recovery;
mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hooks::Hooks;
use crate::hub::stream::lock;
use crate::metrics::Metrics;
use journal::{Head, State};
use recorder::{Parked, Write};

/// Bytes of recording writes queued at most. A disk slower than the streams it records
/// for long enough to fill it closes the recordings that do not fit as incomplete, rather
/// than hold their media without bound.
const MAX_QUEUED_BYTES: u64 = 64 * 1024 * 1024;

/// Queued bytes past which the writer is woken at once. Below it, a fragment waits for the
/// writer's next turn (a segment's end, which is flushed to the disk at once, or at most
/// [`writer::APPEND_DELAY`]): one wakeup of the writer per segment and stream rather than one
/// per fragment.
const WAKE_BYTES: u64 = 4 * 1024 * 1024;

/// What the configuration says about recording (`record.*`).
#[derive(Clone, Debug)]
pub struct RecordSettings {
    /// Record every publish of the application (`record.enabled`); without it, only the
    /// publishes the stream-service answers `record: true` for.
    pub enabled: bool,
    /// Where recordings are kept (`record.path`).
    pub path: PathBuf,
    /// A publish of the same stream within this time continues the recording
    /// (`record.gap`).
    pub gap: Duration,
    /// Recordings older than this are deleted (`record.max_age`); `None`: kept.
    pub max_age: Option<Duration>,
    /// The oldest recordings are deleted while all of them take more (`record.max_bytes`);
    /// `None`: no limit.
    pub max_bytes: Option<u64>,
}

/// A recording as the API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: String,
    pub app: String,
    pub stream: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; `None` while recording.
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub bytes: u64,
    pub codecs: Vec<String>,
    pub tracks: serde_json::Value,
    /// `recording`, `complete`, `interrupted` or `incomplete`.
    pub state: State,
    /// Why the recording ended early: an incomplete one's failure, or the operator's stop
    /// (a complete one), or new codec parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The VOD playlist and the download, as paths on this server.
    pub playlist: String,
    pub download: String,
    #[serde(skip)]
    started_ms: u64,
    #[serde(skip)]
    ended_ms: u64,
}

impl Entry {
    /// A closed recording: its head, its end line, and what it holds (bytes, 90 kHz ticks).
    fn closed(head: &Head, end: journal::End, bytes: u64, duration: u64) -> Entry {
        Entry {
            ended_at: Some(unix_ms_rfc3339(end.at_ms)),
            ended_ms: end.at_ms,
            reason: end.reason,
            bytes,
            duration_s: duration as f64 / 90_000.0,
            ..Entry::new(head, end.state)
        }
    }

    fn new(head: &Head, state: State) -> Entry {
        Entry {
            id: head.id.clone(),
            app: head.app.clone(),
            stream: head.stream.clone(),
            started_at: unix_ms_rfc3339(head.started_ms),
            ended_at: None,
            duration_s: 0.0,
            bytes: 0,
            codecs: head.codecs.clone(),
            tracks: head.tracks.clone(),
            state,
            reason: None,
            playlist: format!("/recordings/{}/index.m3u8", head.id),
            download: format!("/recordings/{}.mp4", head.id),
            started_ms: head.started_ms,
            ended_ms: 0,
        }
    }
}

fn unix_ms_rfc3339(ms: u64) -> String {
    crate::wallclock::rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// The recordings, by id, and the recordings waiting for a publish to continue them.
#[derive(Default)]
struct Catalog {
    entries: BTreeMap<String, Entry>,
    /// Parked recordings by stream (`app/name`), with when their gap ends.
    parked: HashMap<String, (Parked, Instant)>,
    /// The health of recordings being written, by id.
    health: HashMap<Arc<str>, Arc<recorder::Health>>,
}

/// Work for the writer thread.
enum Job {
    Write(Write),
    Delete {
        id: String,
        done: tokio::sync::oneshot::Sender<Result<(), DeleteError>>,
    },
}

struct Queue {
    jobs: VecDeque<Job>,
    bytes: u64,
    stopping: bool,
}

struct Shared {
    settings: RecordSettings,
    catalog: Mutex<Catalog>,
    /// The playlists of recordings being recorded, with the journal length they were
    /// rendered at (dropped at their close).
    playlists: Mutex<HashMap<String, (u64, Arc<str>)>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: Arc<Metrics>,
    hooks: Hooks,
    /// Object storage: closed recordings are uploaded (set once at start).
    uploads: std::sync::OnceLock<crate::storage::Uploads>,
}

/// Why a recording could not be deleted.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    /// It is being recorded (or waits for its publish to come back).
    Recording,
    Failed(String),
}

/// The recordings' handle: the catalog, and the queue to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Recordings {
    shared: Arc<Shared>,
}

impl Recordings {
    /// Opens `settings.path` (created if missing), closes the recordings a crash left open,
    /// loads the catalog and starts the writer thread. Blocking: call before serving.
    pub fn open(
        settings: RecordSettings,
        metrics: Arc<Metrics>,
        hooks: Hooks,
    ) -> std::io::Result<(Recordings, std::thread::JoinHandle<()>)> {
        std::fs::create_dir_all(&settings.path)?;
        let entries = recovery::recover(&settings.path);
        let shared = Arc::new(Shared {
            catalog: Mutex::new(Catalog {
                entries: entries.into_iter().map(|e| (e.id.clone(), e)).collect(),
                parked: HashMap::new(),
                health: HashMap::new(),
            }),
            playlists: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                bytes: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
            uploads: std::sync::OnceLock::new(),
            settings,
            metrics,
            hooks,
        });
        let recordings = Recordings { shared };
        recordings.update_gauges(&lock(&recordings.shared.catalog));
        let writer = writer::Writer::new(recordings.clone());
        let thread = std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || writer.run())?;
        Ok((recordings, thread))
    }

    /// Uploads every recording closed from now on (its media file and playlist) to object
    /// storage.
    pub fn upload_to(&self, uploads: crate::storage::Uploads) {
        let _ = self.shared.uploads.set(uploads);
    }

    pub fn settings(&self) -> &RecordSettings {
        &self.shared.settings
    }

    /// Hands a recorder's writes over: appends and closes to the writer's queue, parked
    /// recordings to the catalog. An append that does not fit the queue closes its
    /// recording as incomplete (its health says so to the recorder).
    pub fn submit(&self, writes: impl IntoIterator<Item = Write>) {
        let mut queue = lock(&self.shared.queue);
        let mut urgent = false;
        for write in writes {
            urgent |= !matches!(write, Write::Append { sync: false, .. });
            match write {
                Write::Park(parked) => {
                    let until = Instant::now() + self.shared.settings.gap;
                    let stream = parked.stream.clone();
                    if let Some((old, _)) = lock(&self.shared.catalog)
                        .parked
                        .insert(stream, (parked, until))
                    {
                        queue.jobs.push_back(Job::Write(Write::Close {
                            id: old.id.clone(),
                            state: State::Complete,
                            reason: None,
                        }));
                    }
                }
                Write::Append { id, ref pieces, .. }
                    if queue.bytes + pieces_len(pieces) > MAX_QUEUED_BYTES =>
                {
                    if let Some(health) = self.health_of(&id) {
                        health.fail();
                    }
                    self.shared
                        .metrics
                        .recording_errors_total
                        .get_or_create(&crate::metrics::ReasonLabel { reason: "behind" })
                        .inc();
                    tracing::error!(recording = %id, "recording closed as incomplete: the disk did not keep up (queue full)");
                    queue.jobs.push_back(Job::Write(Write::Close {
                        id,
                        state: State::Incomplete,
                        reason: Some("the disk did not keep up with the stream".into()),
                    }));
                }
                write => {
                    match &write {
                        Write::Append { pieces, .. } => queue.bytes += pieces_len(pieces),
                        Write::Create { head, health, .. } => {
                            lock(&self.shared.catalog)
                                .health
                                .insert(head.id.as_str().into(), health.clone());
                        }
                        _ => {}
                    }
                    queue.jobs.push_back(Job::Write(write));
                }
            }
        }
        urgent |= queue.bytes >= WAKE_BYTES;
        drop(queue);
        if urgent {
            self.shared.wake.notify_one();
        }
    }

    fn health_of(&self, id: &str) -> Option<Arc<recorder::Health>> {
        lock(&self.shared.catalog).health.get(id).cloned()
    }

    /// A parked recording of `app/name`, taken out of the catalog to be continued.
    pub fn unpark(&self, stream: &str) -> Option<Parked> {
        let mut catalog = lock(&self.shared.catalog);
        // One whose gap has passed waits for the writer to close it.
        match catalog.parked.get(stream) {
            Some((_, until)) if *until > Instant::now() => {
                catalog.parked.remove(stream).map(|(p, _)| p)
            }
            _ => None,
        }
    }

    /// Every recording, oldest first.
    pub fn list(&self) -> Vec<Entry> {
        let catalog = lock(&self.shared.catalog);
        let mut list: Vec<Entry> = catalog.entries.values().cloned().collect();
        list.sort_by_key(|e| (e.started_ms, e.id.clone()));
        list
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        lock(&self.shared.catalog).entries.get(id).cloned()
    }

    /// The folder of recording `id`, when the catalog has it (the only way a request's id
    /// reaches the file system).
    pub fn folder(&self, id: &str) -> Option<PathBuf> {
        let catalog = lock(&self.shared.catalog);
        let entry = catalog.entries.get(id)?;
        Some(self.shared.settings.path.join(&entry.id))
    }

    /// The recording's playlist. Blocking (reads files). A closed recording's is the file
    /// written at its close (written again from the journal if it is missing); one being
    /// recorded is rendered from its journal when that grew since it was last asked for.
    pub fn playlist(&self, id: &str) -> Option<Arc<str>> {
        let entry = self.get(id)?;
        let folder = self.folder(id)?;
        if entry.state != State::Recording {
            if let Ok(text) = std::fs::read_to_string(folder.join(writer::PLAYLIST_FILE)) {
                return Some(text.into());
            }
            let text = writer::render(&folder, entry.state)?;
            let _ = writer::replace_file(&folder, writer::PLAYLIST_FILE, text.as_bytes());
            return Some(text.into());
        }
        let grown = std::fs::metadata(folder.join(writer::JOURNAL_FILE))
            .ok()?
            .len();
        if let Some((len, text)) = lock(&self.shared.playlists).get(id)
            && *len == grown
        {
            return Some(text.clone());
        }
        let text: Arc<str> = writer::render(&folder, State::Recording)?.into();
        lock(&self.shared.playlists).insert(id.to_string(), (grown, text.clone()));
        Some(text)
    }

    /// Deletes a closed recording (its folder and catalog entry).
    pub async fn delete(&self, id: &str) -> Result<(), DeleteError> {
        match self.get(id) {
            None => return Err(DeleteError::NotFound),
            Some(e) if e.state == State::Recording => return Err(DeleteError::Recording),
            Some(_) => {}
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        {
            let mut queue = lock(&self.shared.queue);
            if queue.stopping {
                return Err(DeleteError::Failed("the server is stopping".into()));
            }
            queue.jobs.push_back(Job::Delete {
                id: id.to_string(),
                done,
            });
        }
        self.shared.wake.notify_one();
        answer
            .await
            .unwrap_or(Err(DeleteError::Failed("the writer stopped".into())))
    }

    /// Lets the writer finish: once its queue is empty it closes the parked recordings and
    /// ends. Called when the server stops, after every stream's outputs ended.
    pub fn stop(&self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.wake.notify_one();
    }

    fn update_gauges(&self, catalog: &Catalog) {
        let m = &self.shared.metrics;
        let bytes: u64 = catalog.entries.values().map(|e| e.bytes).sum();
        m.recordings_bytes.set(bytes as i64);
        m.recordings.set(catalog.entries.len() as i64);
        m.recordings_active.set(
            catalog
                .entries
                .values()
                .filter(|e| e.state == State::Recording)
                .count() as i64,
        );
    }
}

fn pieces_len(pieces: &[bytes::Bytes]) -> u64 {
    pieces.iter().map(|p| p.len() as u64).sum()
}
