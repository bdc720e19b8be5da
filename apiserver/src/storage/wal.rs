//! The embedded store's write-ahead log: what makes a write durable between redb checkpoints.
//!
//! A durable redb commit rewrites scattered B-tree pages and flushes them; appending the batch's changes to this
//! file and flushing it is one sequential write, about half the latency on the disks we run on. So the writer
//! appends each batch here and flushes *before* committing it to redb without a flush, and makes a durable redb
//! commit (a checkpoint) only every so many batches, after which the log is emptied. On open, records newer
//! than redb's revision are replayed. Records are physical (key, revision, value), so replay needs no
//! precondition checks.
//!
//! Frame: `[len u32 LE][crc32 u32 LE][payload]`; a torn or corrupt frame ends the log (it was never
//! acknowledged: acknowledgement waits for the flush).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One change as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Put { rev: u64, create: u64, key: Vec<u8>, value: Vec<u8> },
    Delete { rev: u64, key: Vec<u8> },
}

impl Record {
    pub(crate) fn rev(&self) -> u64 {
        match self {
            Record::Put { rev, .. } | Record::Delete { rev, .. } => *rev,
        }
    }
}

/// Appends the frame for a put to `out`.
pub(crate) fn encode_put(out: &mut Vec<u8>, rev: u64, create: u64, key: &[u8], value: &[u8]) {
    frame(out, 1, rev, create, key, value);
}

/// Appends the frame for a delete to `out`.
pub(crate) fn encode_delete(out: &mut Vec<u8>, rev: u64, key: &[u8]) {
    frame(out, 0, rev, 0, key, &[]);
}

fn frame(out: &mut Vec<u8>, kind: u8, rev: u64, create: u64, key: &[u8], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    out.push(kind);
    out.extend_from_slice(&rev.to_le_bytes());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn decode(payload: &[u8]) -> Option<Record> {
    let kind = *payload.first()?;
    let rev = u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    let create = u64::from_le_bytes(payload.get(9..17)?.try_into().ok()?);
    let klen = u32::from_le_bytes(payload.get(17..21)?.try_into().ok()?) as usize;
    let key = payload.get(21..21 + klen)?.to_vec();
    let value = payload.get(21 + klen..)?.to_vec();
    match kind {
        1 => Some(Record::Put { rev, create, key, value }),
        0 => Some(Record::Delete { rev, key }),
        _ => None,
    }
}

/// Every intact record in `data`, in order, up to the first torn or corrupt frame.
pub(crate) fn parse(data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while data.len() - at >= 8 {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let Some(payload) = data.get(at + 8..at + 8 + len) else { break };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        match decode(payload) {
            Some(r) => out.push(r),
            None => break,
        }
        at += 8 + len;
    }
    out
}

/// The open log file and where the next frame goes.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Wal {
    /// Opens (or creates) the log at `path` and returns it with the records it holds. The next append
    /// overwrites from the start: the caller replays the records and then calls `reset`.
    pub(crate) fn open(path: &Path) -> std::io::Result<(Wal, Vec<Record>)> {
        // the log holds recent writes, Secrets included: created 0600 (the store checks an existing one)
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let records = parse(&data);
        let len = data.len() as u64;
        Ok((Wal { file, path: path.to_path_buf(), len }, records))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next frame will be written.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Writes `frames` at the end and flushes them to disk.
    pub(crate) fn append(&mut self, frames: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(frames, self.len)?;
        self.file.sync_data()?;
        self.len += frames.len() as u64;
        Ok(())
    }

    /// Cuts the log back to `len` bytes (undoing appends whose redb commit failed) and flushes that.
    pub(crate) fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()?;
        self.len = len;
        Ok(())
    }

    /// Empties the log once a durable redb commit holds everything in it.
    pub(crate) fn reset(&mut self) -> std::io::Result<()> {
        self.truncate_to(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_torn_tail_ends_the_log() {
        let mut buf = Vec::new();
        encode_put(&mut buf, 7, 3, b"/registry/pods/a", b"{\"x\":1}");
        encode_delete(&mut buf, 8, b"/registry/pods/b");
        let whole = parse(&buf);
        assert_eq!(
            whole,
            vec![
                Record::Put { rev: 7, create: 3, key: b"/registry/pods/a".to_vec(), value: b"{\"x\":1}".to_vec() },
                Record::Delete { rev: 8, key: b"/registry/pods/b".to_vec() },
            ]
        );
        // A frame cut short, or with a flipped byte, is not a record; nothing after it is read.
        assert_eq!(parse(&buf[..buf.len() - 1]).len(), 1);
        let mut corrupt = buf.clone();
        corrupt[10] ^= 0xff;
        assert!(parse(&corrupt).is_empty());
    }

    #[test]
    fn append_truncate_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal");
        let (mut wal, recs) = Wal::open(&path).expect("open");
        assert!(recs.is_empty());
        let mut a = Vec::new();
        encode_put(&mut a, 1, 1, b"k", b"v");
        wal.append(&a).expect("append");
        let keep = wal.len();
        let mut b = Vec::new();
        encode_put(&mut b, 2, 1, b"k", b"w");
        wal.append(&b).expect("append");
        wal.truncate_to(keep).expect("truncate");
        drop(wal);
        let (mut wal, recs) = Wal::open(&path).expect("reopen");
        assert_eq!(recs.iter().map(Record::rev).collect::<Vec<_>>(), vec![1]);
        wal.reset().expect("reset");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    }
}
