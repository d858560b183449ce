//! The recording writer: one thread that carries out every recording's file work in the
//! order it was queued, so the ingest never waits on a disk.
//!
//! When data reaches the disk: a fragment's bytes are appended to the media file, then its
//! journal line to the journal, within [`APPEND_DELAY`] of the CMAF output closing the
//! fragment, and at once when it ends a segment (page cache: a crash of the server loses
//! nothing written, so at most the fragments of the last quarter second). At every segment's
//! end both files are flushed with `fdatasync`, media first: a power loss loses at most the
//! segment being recorded and what was still queued. A failed write (a full disk) truncates the media file
//! back to its last whole fragment and closes the recording as incomplete.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::journal::{End, Head, Journal, Line, State};
use super::recorder::{Health, Write};
use super::{DeleteError, Entry, Job, Recordings, playlist};
use crate::hub::stream::lock;
use crate::metrics::ReasonLabel;

/// File names in a recording's folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const PLAYLIST_FILE: &str = "index.m3u8";

/// How often retention runs besides after each close (`record.max_age` passes with time).
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Longest a fragment waits in the queue while recordings are open: the writer is woken at
/// once only by a segment's end, a close or a full-ish queue, and looks at the queue this
/// often otherwise.
pub(super) const APPEND_DELAY: Duration = Duration::from_millis(250);

/// A recording being written.
struct Open {
    folder: PathBuf,
    media: File,
    journal: File,
    len: u64,
    /// Bytes of the journal written whole.
    journal_len: u64,
    duration: u64,
    health: Arc<Health>,
}

pub(super) struct Writer {
    recordings: Recordings,
    open: HashMap<Arc<str>, Open>,
    retention_due: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads a recording's journal back against its media file's length.
pub(super) fn read_journal(folder: &Path) -> Option<Journal> {
    let media_len = std::fs::metadata(folder.join(super::playlist::MEDIA_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let text = std::fs::read(folder.join(JOURNAL_FILE)).ok()?;
    Journal::read(&text, media_len)
}

/// The playlist of the recording in `folder`, rendered from its journal. A closed
/// recording's parts after its last segment end (it closed early, mid-segment) are its last
/// segment.
pub(super) fn render(folder: &Path, state: State) -> Option<String> {
    let mut journal = read_journal(folder)?;
    if state != State::Recording {
        journal.close_open_segment();
    }
    playlist::render(&journal, state)
}

/// Writes `text` to `folder/name` through a temporary file and a rename.
pub(super) fn replace_file(folder: &Path, name: &str, text: &[u8]) -> std::io::Result<()> {
    let temporary = folder.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, folder.join(name))
}

impl Writer {
    pub(super) fn new(recordings: Recordings) -> Writer {
        Writer {
            recordings,
            open: HashMap::new(),
            retention_due: Instant::now(),
        }
    }

    /// Carries out jobs until the server stops; between jobs, closes recordings whose gap
    /// passed and applies retention.
    pub(super) fn run(mut self) {
        let shared = self.recordings.shared.clone();
        let mut due = Instant::now();
        loop {
            if Instant::now() >= due {
                due = self.timers();
            }
            let job = {
                let mut queue = lock(&shared.queue);
                loop {
                    if let Some(job) = queue.jobs.pop_front() {
                        if let Job::Write(Write::Append { pieces, .. }) = &job {
                            queue.bytes -= super::pieces_len(pieces);
                        }
                        break Some(job);
                    }
                    if queue.stopping {
                        break None;
                    }
                    let now = Instant::now();
                    if now >= due {
                        drop(queue);
                        due = self.timers();
                        queue = lock(&shared.queue);
                        continue;
                    }
                    let mut wait = due - now;
                    if !self.open.is_empty() {
                        wait = wait.min(APPEND_DELAY);
                    }
                    queue = shared
                        .wake
                        .wait_timeout(queue, wait)
                        .map(|(q, _)| q)
                        .unwrap_or_else(|e| e.into_inner().0);
                    // Woken: a recording may have been parked since (its gap is a new
                    // deadline).
                    drop(queue);
                    due = self.timers();
                    queue = lock(&shared.queue);
                }
            };
            match job {
                Some(Job::Write(write)) => self.apply(write),
                Some(Job::Delete { id, done }) => {
                    let _ = done.send(self.delete(&id, "api"));
                }
                None => break,
            }
        }
        // Nothing is taken any more: a delete that came too late is answered (its sender
        // dropped).
        lock(&shared.queue).jobs.clear();
        // The server stops: recordings waiting for their publish to come back are complete.
        let parked: Vec<_> = lock(&shared.catalog).parked.drain().collect();
        for (_, (p, _)) in parked {
            self.close(&p.id, State::Complete, None);
        }
        let left: Vec<Arc<str>> = self.open.keys().cloned().collect();
        for id in left {
            self.close(&id, State::Complete, None);
        }
    }

    /// Queues the close of parked recordings whose gap passed (behind whatever is queued
    /// for them) and runs retention when due; returns when to look again.
    fn timers(&mut self) -> Instant {
        let now = Instant::now();
        let due: Vec<Arc<str>> = {
            let mut catalog = lock(&self.recordings.shared.catalog);
            let streams: Vec<String> = catalog
                .parked
                .iter()
                .filter(|(_, (_, until))| *until <= now)
                .map(|(s, _)| s.clone())
                .collect();
            streams
                .iter()
                .filter_map(|s| catalog.parked.remove(s))
                .map(|(p, _)| p.id.clone())
                .collect()
        };
        if !due.is_empty() {
            let mut queue = lock(&self.recordings.shared.queue);
            for id in due {
                queue.jobs.push_back(Job::Write(Write::Close {
                    id,
                    state: State::Complete,
                    reason: None,
                }));
            }
        }
        if now >= self.retention_due {
            self.retention();
        }
        let catalog = lock(&self.recordings.shared.catalog);
        catalog
            .parked
            .values()
            .map(|(_, until)| *until)
            .chain([self.retention_due])
            .min()
            .unwrap_or(self.retention_due)
    }

    fn apply(&mut self, write: Write) {
        match write {
            Write::Create { head, init, health } => {
                let folder = self.recordings.settings().path.join(&head.id);
                // Only a folder this recording made is removed when it cannot start (never
                // one of the same name that was there before).
                let made = std::fs::create_dir(&folder);
                let started =
                    made.and_then(|()| self.create(&head, &init, health.clone(), folder.clone()));
                if let Err(e) = started {
                    health.fail();
                    lock(&self.recordings.shared.catalog)
                        .health
                        .remove(head.id.as_str());
                    self.count_error("write");
                    tracing::error!(recording = %head.id, "recording not started: {e}");
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        let _ = std::fs::remove_dir_all(&folder);
                    }
                }
            }
            Write::Append {
                id,
                pieces,
                lines,
                completes,
                sync,
            } => {
                let Some(open) = self.open.get_mut(&id) else {
                    return;
                };
                match append(open, &pieces, &lines, sync) {
                    Ok(written) => {
                        open.len += written;
                        open.journal_len += lines.len() as u64;
                        open.duration += completes;
                        let (len, duration) = (open.len, open.duration);
                        let metrics = &self.recordings.shared.metrics;
                        metrics.recording_bytes_written_total.inc_by(written);
                        metrics.recordings_bytes.inc_by(written as i64);
                        let mut catalog = lock(&self.recordings.shared.catalog);
                        if let Some(e) = catalog.entries.get_mut(&*id) {
                            e.bytes = len;
                            e.duration_s = duration as f64 / 90_000.0;
                        }
                    }
                    Err(e) => {
                        // Both files are cut back to their last whole fragment and line, so
                        // the end line starts a line of its own.
                        let _ = open.media.set_len(open.len);
                        let _ = open.journal.set_len(open.journal_len);
                        open.health.fail();
                        self.count_error("write");
                        let reason = format!("a write failed: {e}");
                        tracing::error!(recording = %id, "recording closed as incomplete: {reason}");
                        self.close(&id, State::Incomplete, Some(reason));
                    }
                }
            }
            Write::Close { id, state, reason } => self.close(&id, state, reason),
            Write::Park(_) => unreachable!("parked recordings go to the catalog"),
        }
    }

    fn create(
        &mut self,
        head: &Head,
        init: &Bytes,
        health: Arc<Health>,
        folder: PathBuf,
    ) -> std::io::Result<()> {
        let mut media = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(folder.join(playlist::MEDIA_FILE))?;
        media.write_all(init)?;
        let mut journal = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(folder.join(JOURNAL_FILE))?;
        let lines = Line::Recording(head.clone()).to_text()
            + &Line::Init {
                at: 0,
                len: init.len() as u64,
            }
            .to_text();
        journal.write_all(lines.as_bytes())?;
        let mut entry = Entry::new(head, State::Recording);
        entry.bytes = init.len() as u64;
        tracing::info!(recording = %head.id, stream = %head.stream, "recording started");
        {
            let mut catalog = lock(&self.recordings.shared.catalog);
            catalog.entries.insert(head.id.clone(), entry);
            self.recordings.update_gauges(&catalog);
        }
        self.open.insert(
            head.id.as_str().into(),
            Open {
                folder,
                media,
                journal,
                len: init.len() as u64,
                journal_len: lines.len() as u64,
                duration: 0,
                health,
            },
        );
        Ok(())
    }

    /// Ends a recording: its journal's end line, both files flushed, its playlist written,
    /// the catalog updated and `on_record_done` sent.
    fn close(&mut self, id: &str, state: State, reason: Option<String>) {
        let Some(mut open) = self.open.remove(id) else {
            return;
        };
        let at_ms = now_ms();
        // What the journal holds (a recording closed mid-segment keeps that segment's parts
        // as its last segment), for the end line, the playlist and the catalog.
        let mut journal = read_journal(&open.folder);
        if let Some(j) = journal.as_mut() {
            j.close_open_segment();
        }
        let (bytes, duration) = match &journal {
            Some(j) => (j.bytes(), j.duration().ticks()),
            None => (open.len, open.duration),
        };
        let end = Line::End(End {
            at_ms,
            state,
            reason: reason.clone(),
            bytes: Some(bytes),
            duration: Some(duration),
        });
        let flushed = open
            .journal
            .write_all(end.to_text().as_bytes())
            .and_then(|()| open.media.sync_data())
            .and_then(|()| open.journal.sync_data());
        if let Err(e) = flushed {
            tracing::warn!(recording = %id, "recording's end not recorded in its journal: {e}");
        }
        let rendered = journal.and_then(|j| playlist::render(&j, state));
        let written = rendered
            .as_ref()
            .map(|text| replace_file(&open.folder, PLAYLIST_FILE, text.as_bytes()));
        lock(&self.recordings.shared.playlists).remove(id);
        if let Some(Err(e)) = written {
            tracing::warn!(recording = %id, "recording's playlist file not written: {e}");
        }
        // Object storage: the finished recording goes up (its file is read by the uploader,
        // off this thread).
        if let (Some(uploads), Some(text)) = (self.recordings.shared.uploads.get(), rendered) {
            uploads.push_recording(
                id,
                open.folder.join(playlist::MEDIA_FILE),
                bytes::Bytes::from(text),
            );
        }
        drop(open);
        let entry = {
            let mut catalog = lock(&self.recordings.shared.catalog);
            catalog.health.remove(id);
            let entry = catalog.entries.get_mut(id).map(|e| {
                e.state = state;
                e.bytes = bytes;
                e.duration_s = duration as f64 / 90_000.0;
                e.ended_at = Some(super::unix_ms_rfc3339(at_ms));
                e.ended_ms = at_ms;
                e.reason = reason;
                e.clone()
            });
            self.recordings.update_gauges(&catalog);
            entry
        };
        if let Some(entry) = entry {
            tracing::info!(
                recording = %id,
                state = state.as_str(),
                duration_s = entry.duration_s,
                bytes = entry.bytes,
                "recording closed"
            );
            self.recordings.shared.hooks.record_done(&entry);
        }
        self.retention();
    }

    /// Deletes recordings past `record.max_age`, then the oldest while all of them take more
    /// than `record.max_bytes`. Recordings being written are never deleted.
    fn retention(&mut self) {
        self.retention_due = Instant::now() + RETENTION_EVERY;
        let settings = self.recordings.settings().clone();
        let now = now_ms();
        let doomed: Vec<(String, &'static str)> = {
            let catalog = lock(&self.recordings.shared.catalog);
            let mut closed: Vec<&Entry> = catalog
                .entries
                .values()
                .filter(|e| e.state != State::Recording)
                .collect();
            closed.sort_by_key(|e| (e.started_ms, e.id.clone()));
            let mut total: u64 = catalog.entries.values().map(|e| e.bytes).sum();
            let mut doomed = Vec::new();
            for e in closed {
                let old = settings
                    .max_age
                    .is_some_and(|age| now.saturating_sub(e.ended_ms) > age.as_millis() as u64);
                let over = settings.max_bytes.is_some_and(|max| total > max);
                if old || over {
                    total -= e.bytes;
                    doomed.push((e.id.clone(), if old { "max_age" } else { "max_bytes" }));
                }
            }
            doomed
        };
        for (id, reason) in doomed {
            match self.delete(&id, reason) {
                Ok(()) => tracing::info!(recording = %id, "recording deleted (record.{reason})"),
                Err(e) => tracing::warn!(recording = %id, "recording not deleted: {e:?}"),
            }
        }
    }

    fn delete(&mut self, id: &str, reason: &'static str) -> Result<(), DeleteError> {
        let folder = {
            let catalog = lock(&self.recordings.shared.catalog);
            match catalog.entries.get(id) {
                None => return Err(DeleteError::NotFound),
                Some(e) if e.state == State::Recording => return Err(DeleteError::Recording),
                Some(e) => self.recordings.settings().path.join(&e.id),
            }
        };
        // Renamed at once, removed on a thread of its own: a recording of many gigabytes
        // takes a while to free, and the writer must not fall behind the streams meanwhile.
        let trash = self
            .recordings
            .settings()
            .path
            .join(format!("{TRASH_PREFIX}{id}"));
        match std::fs::rename(&folder, &trash) {
            Ok(()) => empty_trash(&self.recordings.settings().path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DeleteError::Failed(e.to_string())),
        }
        let mut catalog = lock(&self.recordings.shared.catalog);
        catalog.entries.remove(id);
        self.recordings.update_gauges(&catalog);
        self.recordings
            .shared
            .metrics
            .recordings_deleted_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
        Ok(())
    }

    fn count_error(&self, reason: &'static str) {
        self.recordings
            .shared
            .metrics
            .recording_errors_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// Deleted recordings' folders are renamed with this prefix, then removed.
pub(super) const TRASH_PREFIX: &str = ".deleting-";

/// Whether a thread is removing deleted recordings now.
static EMPTYING: AtomicBool = AtomicBool::new(false);

/// Removes the deleted recordings' folders in `root` on a thread of its own (one at a time;
/// it looks again until none is left).
pub(super) fn empty_trash(root: &Path) {
    if EMPTYING.swap(true, Ordering::AcqRel) {
        return;
    }
    let root = root.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("recording-trash".into())
        .spawn(move || {
            loop {
                let trash: Vec<PathBuf> = std::fs::read_dir(&root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(TRASH_PREFIX))
                    .map(|e| e.path())
                    .collect();
                if trash.is_empty() {
                    break;
                }
                for folder in trash {
                    if let Err(e) = std::fs::remove_dir_all(&folder) {
                        tracing::warn!(folder = %folder.display(), "deleted recording not removed: {e}");
                        EMPTYING.store(false, Ordering::Release);
                        return;
                    }
                }
            }
            EMPTYING.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        EMPTYING.store(false, Ordering::Release);
    }
}

/// Appends `pieces` to the media file, then `lines` to the journal; flushes both with
/// `sync`. Returns the media bytes written.
fn append(open: &mut Open, pieces: &[Bytes], lines: &str, sync: bool) -> std::io::Result<u64> {
    let mut written = 0;
    for piece in pieces {
        open.media.write_all(piece)?;
        written += piece.len() as u64;
    }
    open.journal.write_all(lines.as_bytes())?;
    if sync {
        open.media.sync_data()?;
        open.journal.sync_data()?;
    }
    Ok(written)
}
