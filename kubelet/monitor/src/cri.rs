//! Writing CRI-format log lines with size-based rotation. No allocation per line beyond the line itself and
//! no async runtime: the per-container monitor uses this and must stay tiny.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest chunk written as one log line; longer lines are split into `P` (partial) records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as CRI log lines name the stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Days since 1970-01-01 to a civil (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Length of a CRI timestamp: `2024-01-01T00:00:00.000000000Z`.
pub const TIMESTAMP_LEN: usize = 30;

fn put_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Writes `t` as RFC 3339 with nanoseconds in UTC into `out`, without allocating or formatting machinery (the
/// monitor stamps every log line with it).
pub fn write_rfc3339_nano(t: SystemTime, out: &mut [u8; TIMESTAMP_LEN]) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400) as u64;
    *out = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut out[0..4], y.clamp(0, 9999) as u64);
    put_digits(&mut out[5..7], mo as u64);
    put_digits(&mut out[8..10], day as u64);
    put_digits(&mut out[11..13], rem / 3600);
    put_digits(&mut out[14..16], (rem % 3600) / 60);
    put_digits(&mut out[17..19], rem % 60);
    put_digits(&mut out[20..29], d.subsec_nanos() as u64);
}

/// RFC 3339 with nanoseconds in UTC, as CRI logs use: `2024-01-01T00:00:00.000000000Z`.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let mut b = [0u8; TIMESTAMP_LEN];
    write_rfc3339_nano(t, &mut b);
    b.iter().map(|&c| c as char).collect()
}

/// Appends one CRI log record (with its trailing newline) to `out`.
pub fn append_line(out: &mut Vec<u8>, t: SystemTime, stream: Stream, partial: bool, text: &[u8]) {
    let mut ts = [0u8; TIMESTAMP_LEN];
    write_rfc3339_nano(t, &mut ts);
    out.reserve(TIMESTAMP_LEN + text.len() + 11);
    out.extend_from_slice(&ts);
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// One CRI log record (with its trailing newline).
pub fn format_line(t: SystemTime, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_line(&mut out, t, stream, partial, text);
    out
}

/// Appends records to `path`, rotating to `path.1`, `path.2`... when it grows past `max_bytes`, keeping
/// `max_files` files in all (the current one included).
pub struct CriWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
    /// Bytes of an unfinished line per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
    /// The record being written, reused so a line costs no allocation once the buffer has grown.
    line: Vec<u8>,
}

impl CriWriter {
    /// Opens (appending) the log at `path`, rotated at `max_bytes` keeping `max_files` files.
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: max_bytes.max(1024),
            max_files: max_files.max(1),
            pending: [Vec::new(), Vec::new()],
            line: Vec::new(),
        })
    }

    /// Path of rotated file number `n` (1 is the newest).
    pub fn rotated(path: &Path, n: u32) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(".");
        s.push(n.to_string());
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(Self::rotated(&self.path, self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let from = Self::rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, Self::rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn record(&mut self, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        append_line(&mut line, SystemTime::now(), stream, partial, text);
        let result = self.append(&line);
        // a line far longer than usual (a 16 KiB chunk) does not stay allocated
        if line.capacity() > 4096 {
            line = Vec::new();
        }
        self.line = line;
        result
    }

    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Feeds bytes read from `stream`: complete lines become `F` records, overlong ones `P` chunks.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let idx = stream as usize;
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            if self.pending[idx].is_empty() {
                self.emit(stream, &data[..nl])?;
            } else {
                let mut line = std::mem::take(&mut self.pending[idx]);
                line.extend_from_slice(&data[..nl]);
                self.emit(stream, &line)?;
            }
            data = &data[nl + 1..];
        }
        self.pending[idx].extend_from_slice(data);
        while self.pending[idx].len() >= MAX_LINE {
            let rest = self.pending[idx].split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.pending[idx], rest);
            self.record(stream, true, &chunk)?;
        }
        if self.pending[idx].is_empty() && self.pending[idx].capacity() > 4096 {
            self.pending[idx] = Vec::new();
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let mut rest = line;
        while rest.len() > MAX_LINE {
            self.record(stream, true, &rest[..MAX_LINE])?;
            rest = &rest[MAX_LINE..];
        }
        self.record(stream, false, rest)
    }

    /// Writes what is left of an unfinished line (the stream ended without a newline) as a full record.
    pub fn flush_stream(&mut self, stream: Stream) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending[stream as usize]);
        if !rest.is_empty() {
            self.record(stream, false, &rest)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH).len(), TIMESTAMP_LEN);
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_704_067_200, 5);
        assert_eq!(rfc3339_nano(t), "2024-01-01T00:00:00.000000005Z");
        let t = UNIX_EPOCH + Duration::new(951_827_696, 123_456_789); // leap day
        assert_eq!(rfc3339_nano(t), "2000-02-29T12:34:56.123456789Z");
        // agrees with chrono across many days
        for days in (0..40_000).step_by(37) {
            let secs = days * 86_400 + 3_723;
            let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
            let want = chrono::DateTime::from_timestamp(secs, 0).expect("valid").format("%Y-%m-%dT%H:%M:%S.000000000Z").to_string();
            assert_eq!(rfc3339_nano(t), want);
        }
    }

    #[test]
    fn lines_partials_and_streams() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = CriWriter::open(&path, 1 << 20, 3).expect("open");
        w.write(Stream::Stdout, b"hello\nwor").expect("write");
        w.write(Stream::Stderr, b"oops\n").expect("write");
        w.write(Stream::Stdout, b"ld\n").expect("write");
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE + 10]).expect("write");
        w.write(Stream::Stdout, b"\nlast").expect("write");
        w.flush_stream(Stream::Stdout).expect("flush");
        let text = fs::read_to_string(&path).expect("read");
        let recs: Vec<(&str, &str, usize)> = text
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().expect("ts");
                assert!(ts.ends_with('Z') && ts.len() == 30, "{ts}");
                let s = p.next().expect("stream");
                let tag = p.next().expect("tag");
                (s, tag, p.next().unwrap_or("").len())
            })
            .collect();
        assert_eq!(
            recs,
            vec![
                ("stdout", "F", 5),
                ("stderr", "F", 4),
                ("stdout", "F", 5),
                ("stdout", "P", MAX_LINE),
                ("stdout", "F", 10),
                ("stdout", "F", 4),
            ]
        );
        assert!(text.contains(" stdout F world\n"));
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = CriWriter::open(&path, 2048, 3).expect("open");
        for i in 0..200 {
            w.write(Stream::Stdout, format!("line {i:04} padding padding padding\n").as_bytes()).expect("write");
        }
        let cur = fs::read_to_string(&path).expect("current");
        let r1 = fs::read_to_string(CriWriter::rotated(&path, 1)).expect(".1");
        let r2 = fs::read_to_string(CriWriter::rotated(&path, 2)).expect(".2");
        assert!(!CriWriter::rotated(&path, 3).exists(), "only max_files kept");
        for f in [&cur, &r1, &r2] {
            assert!(f.len() <= 2048, "each file within the limit");
        }
        assert!(cur.contains("line 0199"));
        // rotation order: .2 older than .1 older than current
        let first = |s: &str| s.lines().next().and_then(|l| l.split(' ').nth(4)).expect("n").to_string();
        assert!(first(&r2) < first(&r1) && first(&r1) < first(&cur));
    }
}
