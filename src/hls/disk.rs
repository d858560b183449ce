//! The background disk writer: carries out the streams' [`DiskAction`]s under the media root
//! on one blocking thread, in the order they were submitted, so the async runtime never
//! waits on a file system.
//!
//! Submitting never blocks: the queue is bounded and a full queue drops the action (counted,
//! logged at most once every 10 s). HTTP serves segments and playlists from memory,
//! so a dropped or failed write costs the on-disk copy only. File errors (ENOSPC, EACCES,
//! ...) are counted and logged the same way and never stop the writer. Dropping every
//! [`DiskWriterHandle`] closes the queue: the writer carries out what is queued and exits,
//! and graceful shutdown can wait on its `JoinHandle` (with its own time limit).

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ll_stream::PLAYLIST_NAME as LL_PLAYLIST_NAME;
use super::stream::{DiskAction, PLAYLIST_NAME};

/// At most one log line per kind of trouble (queue full, file error) in this period: a full
/// disk fails every write, several a second per stream, and the counters carry the totals.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The queue holds at least one action (a zero-capacity channel cannot be built).
const MIN_CAPACITY: usize = 1;

/// Most bytes of segments and playlists queued for writing. A stalled disk (a hung network
/// mount) would otherwise pin every segment queued behind it; past this, new writes are
/// dropped (and served from memory still) while deletions keep their place, so files that
/// left the playlist still go. 256 MiB is several seconds of a hundred 3 Mb/s streams.
pub const MAX_QUEUED_BYTES: u64 = 256 * 1024 * 1024;

/// A stream folder is `{app}/{key}`: removing a folder with fewer components (a whole app's
/// folder) is refused, so no bad path can wipe other streams' files.
const STREAM_DIR_COMPONENTS: usize = 2;

/// Counters for metrics, shared between the writer, its handles and any reader.
#[derive(Debug, Default)]
pub struct DiskStats {
    writes: AtomicU64,
    bytes_written: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    queue_depth: AtomicUsize,
    queued_bytes: AtomicU64,
}

impl DiskStats {
    /// Files written (segments and playlists).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Bytes in the files written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Actions that failed (file errors, refused paths).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Actions not queued: the queue was full or the writer had stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Actions queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Bytes of queued writes.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }
}

/// Bytes an action writes.
fn write_size(action: &DiskAction) -> u64 {
    match action {
        DiskAction::WriteSegment { data, .. } => data.len() as u64,
        DiskAction::WritePieces { pieces, .. } => pieces.iter().map(|p| p.len() as u64).sum(),
        DiskAction::WritePlaylist { text, .. } => text.len() as u64,
        DiskAction::Delete { .. } | DiskAction::RemoveStreamDir { .. } => 0,
    }
}

/// Lets one log line through per [`LOG_INTERVAL`], from any thread.
#[derive(Debug)]
struct LogLimiter {
    origin: Instant,
    /// Milliseconds after `origin` before which lines are held back.
    next_ms: AtomicU64,
}

impl LogLimiter {
    fn new() -> LogLimiter {
        LogLimiter {
            origin: Instant::now(),
            next_ms: AtomicU64::new(0),
        }
    }

    fn allow(&self) -> bool {
        self.allow_at(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// `allow` at `now_ms` milliseconds after `origin`.
    fn allow_at(&self, now_ms: u64) -> bool {
        let next_ms = self.next_ms.load(Ordering::Relaxed);
        let interval_ms = u64::try_from(LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        now_ms >= next_ms
            && self
                .next_ms
                .compare_exchange(
                    next_ms,
                    now_ms.saturating_add(interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("refusing {path:?}: not a relative path of plain components under the media root")]
    UnsafePath { path: PathBuf },
    #[error("refusing to remove {path:?}: a stream folder is {{app}}/{{key}}")]
    NotAStreamDir { path: PathBuf },
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiskError {
    move |source| DiskError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Submits actions to the disk writer. Cheap to clone; the writer exits once every clone is
/// dropped and the queue is empty.
#[derive(Clone, Debug)]
pub struct DiskWriterHandle {
    queue: mpsc::Sender<DiskAction>,
    stats: Arc<DiskStats>,
    drop_log: Arc<LogLimiter>,
    /// Object storage: every action also goes to the upload queue.
    uploads: Option<crate::storage::Uploads>,
}

impl DiskWriterHandle {
    /// Queues `action` without waiting. Returns false when it was dropped because the queue
    /// is full or the writer has stopped.
    pub fn submit(&self, action: DiskAction) -> bool {
        if let Some(uploads) = &self.uploads {
            // Whatever the disk does with it: the bucket has a queue of its own.
            uploads.push(&action);
        }
        let bytes = write_size(&action);
        // Counted before sending, so the writer's decrement never comes first.
        let queued = self.stats.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        let error = if bytes > 0 && queued + bytes > MAX_QUEUED_BYTES {
            Some("too many bytes queued")
        } else {
            self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
            match self.queue.try_send(action) {
                Ok(()) => None,
                Err(e) => {
                    self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    Some(match e {
                        mpsc::error::TrySendError::Full(_) => "queue full",
                        mpsc::error::TrySendError::Closed(_) => "writer stopped",
                    })
                }
            }
        };
        let Some(reason) = error else {
            return true;
        };
        self.stats.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if self.drop_log.allow() {
            tracing::warn!(
                reason,
                dropped,
                "disk writer: dropping a file action (served from memory still)"
            );
        }
        false
    }

    /// Hands every action from now on to object storage too (set before the handle is
    /// cloned to the streams).
    pub fn with_uploads(mut self, uploads: Option<crate::storage::Uploads>) -> DiskWriterHandle {
        self.uploads = uploads;
        self
    }

    /// The writer's counters; holding them does not keep the writer alive.
    pub fn stats(&self) -> Arc<DiskStats> {
        Arc::clone(&self.stats)
    }
}

/// The writer side: owns the queue's receiving end and the media root.
#[derive(Debug)]
pub struct DiskWriter {
    root: MediaRoot,
    queue: mpsc::Receiver<DiskAction>,
    stats: Arc<DiskStats>,
    error_log: LogLimiter,
}

impl DiskWriter {
    /// Starts the writer on tokio's blocking pool with a queue of `capacity` actions (at
    /// least one). Paths in actions are taken relative to `media_root`.
    pub fn spawn(media_root: PathBuf, capacity: usize) -> (DiskWriterHandle, JoinHandle<()>) {
        let (handle, writer) = DiskWriter::new(media_root, capacity);
        (handle, tokio::task::spawn_blocking(move || writer.run()))
    }

    fn new(media_root: PathBuf, capacity: usize) -> (DiskWriterHandle, DiskWriter) {
        let (sender, receiver) = mpsc::channel(capacity.max(MIN_CAPACITY));
        let stats = Arc::new(DiskStats::default());
        let handle = DiskWriterHandle {
            queue: sender,
            stats: Arc::clone(&stats),
            drop_log: Arc::new(LogLimiter::new()),
            uploads: None,
        };
        let writer = DiskWriter {
            root: MediaRoot::new(media_root),
            queue: receiver,
            stats,
            error_log: LogLimiter::new(),
        };
        (handle, writer)
    }

    /// Carries out actions until every handle is gone and the queue is empty. Blocking.
    fn run(mut self) {
        while let Some(action) = self.queue.blocking_recv() {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            let bytes = write_size(&action);
            let done = self.root.apply(action);
            self.stats.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            if let Ok(written) = done
                && written > 0
            {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_written
                    .fetch_add(written as u64, Ordering::Relaxed);
            }
            if let Err(error) = done {
                let errors = self.stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if self.error_log.allow() {
                    tracing::error!(%error, errors, "disk writer: file action failed");
                }
            }
        }
        tracing::debug!("disk writer: queue closed and drained");
    }
}

/// The folder HLS files go under, and the one way they are written there: every path is
/// checked to stay inside it, playlists are replaced atomically. Shared by the background
/// writer of the live path and the offline remux.
#[derive(Clone, Debug)]
pub struct MediaRoot(PathBuf);

impl MediaRoot {
    pub fn new(path: PathBuf) -> MediaRoot {
        MediaRoot(path)
    }

    /// Removes what earlier runs left of their streams under `{root}/{app}/` (a crash, or a
    /// stop before the files' grace period was over): in each folder named like a stream,
    /// the playlists (classic and Low-Latency), their temporary files, the segments and the
    /// initialization sections, then the folder once empty. Anything else is left alone.
    /// Returns the number of folders emptied.
    pub fn remove_stale_streams(&self, app: &str) -> usize {
        /// Endings of the media files the streams write: MPEG-TS segments, CMAF segments,
        /// CMAF initialization sections.
        const MEDIA_ENDINGS: [&str; 3] = [".ts", ".m4s", ".mp4"];
        let Ok(entries) = fs::read_dir(self.0.join(app)) else {
            return 0;
        };
        let playlists = [PLAYLIST_NAME, LL_PLAYLIST_NAME];
        let temporaries = playlists.map(|name| temporary_sibling(Path::new(name)));
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_stream = name
                .to_str()
                .is_some_and(|n| crate::hub::key::StreamKey::parse(n).is_ok());
            if !is_stream || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = fs::read_dir(entry.path()) else {
                continue;
            };
            for file in files.flatten() {
                let file_name = file.file_name();
                let ours = playlists.iter().any(|p| file_name == *p)
                    || temporaries.iter().any(|t| file_name == t.as_os_str())
                    || file_name
                        .to_str()
                        .is_some_and(|n| MEDIA_ENDINGS.iter().any(|e| n.ends_with(e)));
                if ours && file.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(file.path());
                }
            }
            if fs::remove_dir(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Carries out one action; returns the bytes written (0 for deletions).
    pub fn apply(&self, action: DiskAction) -> Result<usize, DiskError> {
        match action {
            DiskAction::WriteSegment { path, data } => {
                let full = self.resolve(&path)?;
                write_creating_parent(&full, &[data.as_ref()])?;
                return Ok(data.len());
            }
            DiskAction::WritePieces { path, pieces } => {
                let full = self.resolve(&path)?;
                let slices: Vec<&[u8]> = pieces.iter().map(|p| p.as_ref()).collect();
                write_creating_parent(&full, &slices)?;
                return Ok(slices.iter().map(|s| s.len()).sum());
            }
            DiskAction::WritePlaylist { path, text } => {
                let full = self.resolve(&path)?;
                let tmp = temporary_sibling(&full);
                let replaced = write_creating_parent(&tmp, &[text.as_ref()])
                    .and_then(|()| fs::rename(&tmp, &full).map_err(io_error("rename into", &full)));
                if let Err(error) = replaced {
                    // Best effort: a temporary file left now is only litter.
                    let _ = fs::remove_file(&tmp);
                    return Err(error);
                }
                return Ok(text.len());
            }
            DiskAction::Delete { path } => {
                let full = self.resolve(&path)?;
                ignore_not_found(fs::remove_file(&full)).map_err(io_error("delete", &full))?;
            }
            DiskAction::RemoveStreamDir { path } => {
                if path.components().count() < STREAM_DIR_COMPONENTS {
                    return Err(DiskError::NotAStreamDir { path });
                }
                let full = self.resolve(&path)?;
                ignore_not_found(fs::remove_dir_all(&full))
                    .map_err(io_error("remove folder", &full))?;
            }
        }
        Ok(0)
    }

    /// `relative` under the media root, refusing anything that could leave it: absolute
    /// paths, `..`, `.`, prefixes, and the empty path. Keys are validated before they get
    /// here; this is the last line.
    fn resolve(&self, relative: &Path) -> Result<PathBuf, DiskError> {
        let mut components = relative.components().peekable();
        let plain =
            components.peek().is_some() && components.all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(DiskError::UnsafePath {
                path: relative.to_owned(),
            });
        }
        Ok(self.0.join(relative))
    }
}

/// Writes `pieces`, one after the other, to a new file at `path` (replacing any), creating
/// its folder when it does not exist yet. The folder is made on the first write only, not
/// checked on every one.
fn write_creating_parent(path: &Path, pieces: &[&[u8]]) -> Result<(), DiskError> {
    let file = match fs::File::create(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_error("create folder", parent))?;
            }
            fs::File::create(path)
        }
        other => other,
    };
    let mut file = file.map_err(io_error("write", path))?;
    write_pieces(&mut file, pieces).map_err(io_error("write", path))
}

/// Writes `pieces` in order, as few system calls as the kernel allows (vectored writes).
fn write_pieces(file: &mut fs::File, pieces: &[&[u8]]) -> io::Result<()> {
    /// Pieces handed to one `writev`: far below IOV_MAX (1024 on Linux).
    const MAX_SLICES: usize = 64;
    let mut slices: Vec<io::IoSlice<'_>> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| io::IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let batch = rest.len().min(MAX_SLICES);
        match file.write_vectored(&rest[..batch]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `.{name}.tmp` beside `path`: same folder, so the rename is atomic; hidden, so a folder
/// listing does not show it.
fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// A file already gone is what deleting it asks for.
fn ignore_not_found(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn stale_stream_folders_are_emptied_and_nothing_else() {
        let dir = TempDir::new("stale");
        let live = dir.0.join("live");
        for (path, body) in [
            ("k1/index.m3u8", "x"),
            ("k1/a-1.ts", "x"),
            ("k1/notes.txt", "keep"),
            ("k2/index.m3u8", "x"),
            ("k2/.index.m3u8.tmp", "x"),
            ("k2/b-7.ts", "x"),
            ("k2/llhls.m3u8", "x"),
            ("k2/.llhls.m3u8.tmp", "x"),
            ("k2/b-7.m4s", "x"),
            ("k2/b-init-0.mp4", "x"),
            (".hidden/a.ts", "keep"),
        ] {
            let p = live.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, body).unwrap();
        }
        fs::write(live.join("top.ts"), "keep").unwrap();
        let root = MediaRoot::new(dir.0.clone());
        assert_eq!(root.remove_stale_streams("live"), 1);
        assert!(!live.join("k2").exists());
        assert!(live.join("k1/notes.txt").exists());
        assert!(!live.join("k1/a-1.ts").exists());
        assert!(live.join(".hidden/a.ts").exists());
        assert!(live.join("top.ts").exists());
        assert_eq!(root.remove_stale_streams("nosuchapp"), 0);
    }

    /// A folder under the system temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("rtmp-server-disk-{}-{test}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create the test folder");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn segment(path: &str, data: &'static [u8]) -> DiskAction {
        DiskAction::WriteSegment {
            path: PathBuf::from(path),
            data: Bytes::from_static(data),
        }
    }

    fn playlist(path: &str, text: &'static str) -> DiskAction {
        DiskAction::WritePlaylist {
            path: PathBuf::from(path),
            text: Bytes::from_static(text.as_bytes()),
        }
    }

    /// Runs a writer over `actions` until it has drained its queue and exited.
    async fn run(root: &Path, actions: Vec<DiskAction>) -> Arc<DiskStats> {
        let (handle, join) = DiskWriter::spawn(root.to_owned(), 16);
        for action in actions {
            assert!(handle.submit(action));
        }
        let stats = handle.stats();
        drop(handle);
        join.await.expect("the writer exits cleanly");
        stats
    }

    #[tokio::test]
    async fn writes_segments_and_playlists_creating_folders() {
        let dir = TempDir::new("writes");
        let stats = run(
            &dir.0,
            vec![
                segment("live/k/a-0.ts", b"\x47\x00"),
                playlist("live/k/index.m3u8", "#EXTM3U\n"),
            ],
        )
        .await;
        assert_eq!(
            fs::read(dir.0.join("live/k/a-0.ts")).expect("segment"),
            b"\x47\x00"
        );
        assert_eq!(
            fs::read_to_string(dir.0.join("live/k/index.m3u8")).expect("playlist"),
            "#EXTM3U\n"
        );
        assert_eq!(
            (
                stats.writes(),
                stats.bytes_written(),
                stats.errors(),
                stats.dropped()
            ),
            (2, 10, 0, 0)
        );
        assert_eq!(stats.queue_depth(), 0);
    }

    #[tokio::test]
    async fn writes_a_segment_from_its_pieces() {
        let dir = TempDir::new("pieces");
        let pieces = vec![
            Bytes::from_static(b"moof1mdat1"),
            Bytes::new(),
            Bytes::from_static(b"moof2mdat2"),
        ];
        let stats = run(
            &dir.0,
            vec![
                DiskAction::WritePieces {
                    path: PathBuf::from("live/k/a-0.m4s"),
                    pieces: pieces.clone(),
                },
                // Written again over a longer file: nothing of the old one is left.
                segment("live/k/a-1.m4s", b"0123456789abcdefghijklmnopqrstuvwxyz"),
                DiskAction::WritePieces {
                    path: PathBuf::from("live/k/a-1.m4s"),
                    pieces: vec![Bytes::from_static(b"short")],
                },
            ],
        )
        .await;
        assert_eq!(
            fs::read(dir.0.join("live/k/a-0.m4s")).expect("segment"),
            b"moof1mdat1moof2mdat2"
        );
        assert_eq!(
            fs::read(dir.0.join("live/k/a-1.m4s")).expect("segment"),
            b"short"
        );
        assert_eq!(
            (stats.writes(), stats.bytes_written(), stats.errors()),
            (3, 20 + 36 + 5, 0)
        );
        assert_eq!(
            write_size(&DiskAction::WritePieces {
                path: PathBuf::new(),
                pieces
            }),
            20
        );
    }

    #[tokio::test]
    async fn playlist_is_replaced_atomically() {
        let dir = TempDir::new("atomic");
        run(&dir.0, vec![playlist("live/k/index.m3u8", "first\n")]).await;
        // A reader that opened the old file keeps reading it whole: the new text went into
        // another file that was renamed over it, not into this one.
        let mut old = fs::File::open(dir.0.join("live/k/index.m3u8")).expect("open");
        run(
            &dir.0,
            vec![playlist("live/k/index.m3u8", "second, longer\n")],
        )
        .await;
        let mut seen = String::new();
        old.read_to_string(&mut seen).expect("read");
        assert_eq!(seen, "first\n");
        assert_eq!(
            fs::read_to_string(dir.0.join("live/k/index.m3u8")).expect("read"),
            "second, longer\n"
        );
        let names: Vec<_> = fs::read_dir(dir.0.join("live/k"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["index.m3u8"], "no temporary file left behind");
    }

    #[tokio::test]
    async fn deletes_files_and_removes_the_stream_folder() {
        let dir = TempDir::new("delete");
        let stats = run(
            &dir.0,
            vec![
                segment("live/k/a-0.ts", b"0"),
                segment("live/k/a-1.ts", b"1"),
                segment("live/other/b-0.ts", b"2"),
                DiskAction::Delete {
                    path: PathBuf::from("live/k/a-0.ts"),
                },
                DiskAction::Delete {
                    path: PathBuf::from("live/k/never-written.ts"),
                },
            ],
        )
        .await;
        assert!(!dir.0.join("live/k/a-0.ts").exists());
        assert!(dir.0.join("live/k/a-1.ts").exists());
        assert_eq!(stats.errors(), 0, "deleting a missing file is not an error");

        let stats = run(
            &dir.0,
            vec![
                DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live/k"),
                },
                DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live/gone"),
                },
            ],
        )
        .await;
        assert!(!dir.0.join("live/k").exists());
        assert!(dir.0.join("live/other/b-0.ts").exists());
        assert_eq!(stats.errors(), 0);
    }

    #[tokio::test]
    async fn refuses_paths_that_leave_the_media_root() {
        let dir = TempDir::new("unsafe");
        let root = dir.0.join("media");
        fs::create_dir_all(root.join("live/k")).expect("create");
        let stats = run(
            &root,
            vec![
                segment("../escaped.ts", b"x"),
                segment("live/../../escaped.ts", b"x"),
                segment(dir.0.join("absolute.ts").to_str().expect("UTF-8"), b"x"),
                segment("./live/k/dot.ts", b"x"),
                segment("", b"x"),
                DiskAction::Delete {
                    path: PathBuf::from(".."),
                },
                DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live"),
                },
                DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live/.."),
                },
                DiskAction::RemoveStreamDir {
                    path: PathBuf::new(),
                },
            ],
        )
        .await;
        assert_eq!(stats.errors(), 9);
        assert_eq!(stats.writes(), 0);
        assert!(!dir.0.join("escaped.ts").exists());
        assert!(!dir.0.join("absolute.ts").exists());
        assert!(root.join("live/k").is_dir());
    }

    #[tokio::test]
    async fn file_errors_are_counted_and_not_fatal() {
        let dir = TempDir::new("errors");
        // Root ignores permissions, but nothing can create a folder under a regular file.
        let file = dir.0.join("not-a-folder");
        fs::write(&file, b"").expect("create");
        let root = file.join("media");
        let stats = run(
            &root,
            vec![
                segment("live/k/a-0.ts", b"x"),
                playlist("live/k/index.m3u8", "#EXTM3U\n"),
                DiskAction::Delete {
                    path: PathBuf::from("live/k/a-0.ts"),
                },
                DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live/k"),
                },
            ],
        )
        .await;
        assert_eq!(
            (stats.errors(), stats.writes(), stats.bytes_written()),
            (4, 0, 0)
        );
    }

    #[tokio::test]
    async fn failed_playlist_replace_leaves_no_temporary_file() {
        let dir = TempDir::new("rename");
        // A folder where the playlist should be: the rename over it fails.
        fs::create_dir_all(dir.0.join("live/k/index.m3u8/x")).expect("create");
        let stats = run(&dir.0, vec![playlist("live/k/index.m3u8", "#EXTM3U\n")]).await;
        assert_eq!((stats.errors(), stats.writes()), (1, 0));
        assert!(!dir.0.join("live/k/.index.m3u8.tmp").exists());
        assert!(dir.0.join("live/k/index.m3u8/x").is_dir());
    }

    #[tokio::test]
    async fn full_queue_drops_and_closing_drains() {
        let dir = TempDir::new("full");
        let (handle, writer) = DiskWriter::new(dir.0.clone(), 2);
        let stats = handle.stats();
        // The writer is not running yet, so nothing leaves the queue.
        assert!(handle.submit(segment("live/k/a-0.ts", b"0")));
        assert!(handle.submit(segment("live/k/a-1.ts", b"1")));
        assert!(!handle.submit(segment("live/k/a-2.ts", b"2")));
        assert_eq!((stats.dropped(), stats.queue_depth()), (1, 2));

        let join = tokio::task::spawn_blocking(move || writer.run());
        drop(handle);
        join.await.expect("the writer exits cleanly");
        assert_eq!(
            (stats.writes(), stats.queue_depth(), stats.dropped()),
            (2, 0, 1)
        );
        assert!(dir.0.join("live/k/a-1.ts").exists());
        assert!(!dir.0.join("live/k/a-2.ts").exists());
    }

    #[tokio::test]
    async fn writes_past_the_byte_budget_drop_but_deletions_still_queue() {
        let dir = TempDir::new("budget");
        let (handle, writer) = DiskWriter::new(dir.0.clone(), 8);
        let stats = handle.stats();
        // Zeroed pages that are never touched: no real memory behind them. A file where its
        // folder should be makes the write fail at once instead of writing 256 MiB.
        fs::write(dir.0.join("big"), b"").expect("create");
        let big = Bytes::from(vec![0u8; MAX_QUEUED_BYTES as usize - 10]);
        assert!(handle.submit(DiskAction::WriteSegment {
            path: PathBuf::from("big/k/a-0.ts"),
            data: big,
        }));
        assert!(!handle.submit(segment("live/k/a-1.ts", b"0123456789abc")));
        assert!(handle.submit(DiskAction::Delete {
            path: PathBuf::from("live/k/old-0.ts"),
        }));
        assert_eq!(stats.dropped(), 1);
        assert_eq!(stats.queued_bytes(), MAX_QUEUED_BYTES - 10);
        let join = tokio::task::spawn_blocking(move || writer.run());
        drop(handle);
        join.await.expect("the writer exits cleanly");
        assert_eq!((stats.queued_bytes(), stats.queue_depth()), (0, 0));
        assert_eq!(stats.errors(), 1, "the big write failed, not written");
    }

    #[tokio::test]
    async fn submitting_to_a_stopped_writer_drops() {
        let dir = TempDir::new("stopped");
        let (handle, writer) = DiskWriter::new(dir.0.clone(), 4);
        drop(writer);
        assert!(!handle.submit(segment("live/k/a-0.ts", b"0")));
        assert_eq!(
            (handle.stats().dropped(), handle.stats().queue_depth()),
            (1, 0)
        );
    }

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let limiter = LogLimiter::new();
        assert!(limiter.allow_at(5));
        assert!(!limiter.allow_at(5));
        assert!(!limiter.allow_at(10_004));
        assert!(limiter.allow_at(10_005));
        assert!(!limiter.allow_at(20_004));
        assert!(limiter.allow_at(60_000));
        assert!(!limiter.allow_at(60_001));
    }

    #[test]
    fn temporary_file_is_a_hidden_sibling() {
        assert_eq!(
            temporary_sibling(Path::new("/m/live/k/index.m3u8")),
            Path::new("/m/live/k/.index.m3u8.tmp")
        );
    }
}
