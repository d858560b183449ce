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
    // Deletions the last run did not finish.
    super::writer::empty_trash(root);
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
        // Recordings are folders of plain files this server made: a symbolic link, or a
        // folder whose files are links, is left alone (recovery truncates files).
        let plain = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
        if !item.file_type().is_ok_and(|t| t.is_dir())
            || !plain(&folder.join(JOURNAL_FILE))
            || !plain(&folder.join(playlist::MEDIA_FILE))
        {
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
    if let Some(entry) = closed(folder, id) {
        return Ok(entry);
    }
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
    let (bytes, duration) = (journal.bytes(), journal.duration().ticks());
    Ok(Entry::closed(&journal.head, end, bytes, duration))
}

/// A recording closed with its totals in its end line, listed from its first and last
/// lines (its journal is not read through: a server with years of recordings starts at
/// once).
fn closed(folder: &Path, id: &str) -> Option<Entry> {
    let text = std::fs::read(folder.join(JOURNAL_FILE)).ok()?;
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let Line::Recording(head) = serde_json::from_slice(lines.next()?).ok()? else {
        return None;
    };
    let Line::End(end) = serde_json::from_slice(lines.next_back()?).ok()? else {
        return None;
    };
    let (Some(bytes), Some(duration)) = (end.bytes, end.duration) else {
        return None;
    };
    if head.id != id {
        return None;
    }
    Some(Entry::closed(&head, end, bytes, duration))
}

/// Closes a recording the server did not close: truncated to its last complete fragment,
/// its open segment ended, marked interrupted.
fn close_interrupted(folder: &Path, journal: &mut Journal) -> Result<End, String> {
    let media = OpenOptions::new()
        .read(true)
        .write(true)
        .open(folder.join(playlist::MEDIA_FILE))
        .map_err(|e| format!("its media file does not open: {e}"))?;
    // After a power loss the file may be as long as the journal says and still end in bytes
    // that never reached the disk (zeros): what was written since the last flush, at a
    // segment's end, is checked box by box, and the journal read again only as far as the
    // boxes hold.
    let from = journal
        .segments
        .iter()
        .rev()
        .nth(1)
        .map(|s| s.span.at)
        .or(journal.init.map(|i| i.end()))
        .unwrap_or(0);
    let intact = intact_until(&media, from, journal.bytes());
    if intact < journal.bytes() {
        let text = std::fs::read(folder.join(JOURNAL_FILE)).map_err(|e| e.to_string())?;
        tracing::warn!(
            recording = %journal.head.id,
            "recording's media file ends in bytes that are not fragments (they never reached \
             the disk): cut back to {intact} bytes"
        );
        *journal = Journal::read(&text, intact).ok_or("its journal does not read again")?;
    }
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
        bytes: Some(journal.bytes()),
        duration: Some(journal.duration().ticks()),
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

/// Where the fragments of `media` between `from` and `to` stop following one another: the end
/// of the last `mdat` reached by walking whole `moof`/`mdat` boxes from `from` (ISO/IEC
/// 14496-12 §4.2, §8.8.4, §8.1.1).
fn intact_until(media: &std::fs::File, from: u64, to: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let (mut at, mut intact) = (from, from);
    while at < to {
        let mut header = [0u8; 8];
        if media.read_exact_at(&mut header, at).is_err() {
            break;
        }
        let size = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let kind = &header[4..];
        if size < 8 || at + size > to || !(kind == b"moof" || kind == b"mdat") {
            break;
        }
        at += size;
        if kind == b"mdat" {
            intact = at;
        }
    }
    intact
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::journal::Head;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn a_media_tail_that_never_reached_the_disk_is_cut_off() {
        let root = tempfile::tempdir().unwrap();
        let id = "k_20261205T120000.000Z";
        let folder = root.path().join(id);
        std::fs::create_dir(&folder).unwrap();
        // The init section, one whole fragment, then a fragment's worth of zeros (what a
        // power loss leaves of a write the journal already names).
        let mut media = vec![7u8; 16];
        let fragment = [boxed(b"moof", &[1; 8]), boxed(b"mdat", &[2; 8])].concat();
        media.extend_from_slice(&fragment);
        media.extend_from_slice(&vec![0; fragment.len()]);
        std::fs::write(folder.join(playlist::MEDIA_FILE), &media).unwrap();
        let head = Head {
            id: id.into(),
            app: "live".into(),
            stream: "k".into(),
            started_ms: 0,
            codecs: vec![],
            tracks: serde_json::json!([]),
        };
        let lines: String = [
            Line::Recording(head),
            Line::Init { at: 0, len: 16 },
            Line::Segment {
                discontinuity: false,
            },
            Line::Part {
                at: 16,
                len: 32,
                duration: 90_000,
            },
            Line::SegmentEnd {
                duration: 90_000,
                target: Some(1),
            },
            Line::Segment {
                discontinuity: false,
            },
            Line::Part {
                at: 48,
                len: 32,
                duration: 90_000,
            },
        ]
        .iter()
        .map(Line::to_text)
        .collect();
        std::fs::write(folder.join(JOURNAL_FILE), lines).unwrap();

        let entries = recover(root.path());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].state, State::Interrupted);
        assert_eq!(entries[0].bytes, 48);
        assert_eq!(entries[0].duration_s, 1.0);
        let kept = std::fs::metadata(folder.join(playlist::MEDIA_FILE)).unwrap();
        assert_eq!(kept.len(), 48);
        let text = std::fs::read_to_string(folder.join(PLAYLIST_FILE)).unwrap();
        assert!(text.contains("#EXT-X-BYTERANGE:32@16\n") && text.ends_with("#EXT-X-ENDLIST\n"));
        // Read again, it is closed: nothing changes.
        let again = recover(root.path());
        assert_eq!(again[0].bytes, 48);
        assert_eq!(again[0].state, State::Interrupted);
    }

    #[test]
    fn links_and_strangers_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join(playlist::MEDIA_FILE), b"precious").unwrap();
        std::fs::write(outside.path().join(JOURNAL_FILE), b"{}").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("k_1")).unwrap();
        std::fs::create_dir(root.path().join("not a recording")).unwrap();
        std::fs::create_dir(root.path().join("k_2")).unwrap();
        std::fs::write(root.path().join("k_2").join(JOURNAL_FILE), b"garbage").unwrap();
        std::fs::write(root.path().join("k_2").join(playlist::MEDIA_FILE), b"x").unwrap();
        assert!(recover(root.path()).is_empty());
        assert_eq!(
            std::fs::read(outside.path().join(playlist::MEDIA_FILE)).unwrap(),
            b"precious"
        );
        assert_eq!(
            std::fs::read(root.path().join("k_2").join(playlist::MEDIA_FILE)).unwrap(),
            b"x"
        );
    }
}
