//! At start: the catalog read from `record.path`, and the recordings a crash left open
//! closed. An open recording (a journal without its end line) is cut back to its last
//! complete fragment: the media file is truncated to what the journal accounts for, the
//! parts after the last segment end become a last segment, the journal gets its end line
//! (`interrupted`) and the playlist is written. Folders that are not recordings are left
//! alone.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::journal::{End, Journal, Line, State};
use super::recorder::is_recording_id;
use super::writer::{JOURNAL_FILE, PLAYLIST_FILE, read_journal, replace_file};
use super::{Entry, playlist};

/// The recordings in `root`, each closed.
pub(super) fn recover(root: &Path) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in dir.flatten() {
        let name = item.file_name();
        let Some(id) = name.to_str().filter(|n| is_recording_id(n)) else {
            continue;
        };
        let folder = item.path();
        if !folder.join(JOURNAL_FILE).is_file() {
            continue;
        }
        match recover_one(&folder, id) {
            Ok(entry) => entries.push(entry),
            Err(why) => tracing::warn!(recording = id, "recording left as it is: {why}"),
        }
    }
    entries
}

fn recover_one(folder: &Path, id: &str) -> Result<Entry, String> {
    let mut journal = read_journal(folder).ok_or("its journal has no recording line")?;
    if journal.head.id != id {
        return Err(format!(
            "its journal names another recording ({})",
            journal.head.id
        ));
    }
    let end = match journal.end.clone() {
        Some(end) => end,
        None => close_interrupted(folder, &mut journal)?,
    };
    let mut entry = Entry::new(&journal.head, end.state);
    entry.ended_at = Some(super::unix_ms_rfc3339(end.at_ms));
    entry.ended_ms = end.at_ms;
    entry.reason = end.reason;
    entry.bytes = journal.bytes();
    entry.duration_s = journal.duration().as_secs_f64();
    Ok(entry)
}

/// Closes a recording the server did not close: truncated to its last complete fragment,
/// its open segment ended, marked interrupted.
fn close_interrupted(folder: &Path, journal: &mut Journal) -> Result<End, String> {
    let media = OpenOptions::new()
        .write(true)
        .open(folder.join(playlist::MEDIA_FILE))
        .map_err(|e| format!("its media file does not open: {e}"))?;
    media
        .set_len(journal.bytes())
        .map_err(|e| format!("its media file cannot be cut back: {e}"))?;
    let mut lines = String::new();
    if let Some(line) = journal.close_open_segment() {
        lines.push_str(&line.to_text());
    }
    let at_ms = std::fs::metadata(folder.join(JOURNAL_FILE))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now())
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let end = End {
        at_ms,
        state: State::Interrupted,
        reason: Some("the server stopped without closing it".into()),
    };
    lines.push_str(&Line::End(end.clone()).to_text());
    // A torn last line is cut off first, so the end line starts a line of its own.
    let text = std::fs::read(folder.join(JOURNAL_FILE)).map_err(|e| e.to_string())?;
    let kept = text
        .split_inclusive(|&b| b == b'\n')
        .take(journal.lines)
        .map(<[u8]>::len)
        .sum::<usize>();
    if !text[..kept].ends_with(b"\n") && kept > 0 {
        lines.insert(0, '\n');
    }
    let file = OpenOptions::new()
        .write(true)
        .open(folder.join(JOURNAL_FILE))
        .map_err(|e| e.to_string())?;
    file.set_len(kept as u64).map_err(|e| e.to_string())?;
    drop(file);
    let mut file = OpenOptions::new()
        .append(true)
        .open(folder.join(JOURNAL_FILE))
        .map_err(|e| e.to_string())?;
    file.write_all(lines.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("its journal cannot be completed: {e}"))?;
    journal.end = Some(end.clone());
    if let Some(text) = playlist::render(journal, State::Interrupted) {
        replace_file(folder, PLAYLIST_FILE, text.as_bytes()).map_err(|e| e.to_string())?;
    }
    tracing::warn!(
        recording = %journal.head.id,
        duration_s = journal.duration().as_secs_f64(),
        "recording was interrupted (the server stopped without closing it): closed at its last complete fragment"
    );
    Ok(end)
}
