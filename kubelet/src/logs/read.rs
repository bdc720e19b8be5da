//! Reading CRI logs back for `kubectl logs`: joins partial records, keeps the newest `tailLines`, drops lines
//! older than `sinceTime`, optionally prefixes the timestamp, across rotated files (oldest first).

use std::path::Path;

use super::cri::CriWriter;

/// What the client asked for.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `tailLines`: keep only the last this many lines (after `since_time`).
    pub tail_lines: Option<usize>,
    /// RFC 3339 (with or without nanoseconds); lines stamped earlier are skipped.
    pub since_time: Option<chrono::DateTime<chrono::Utc>>,
    /// `timestamps`: prefix each line with its RFC 3339 timestamp and a space.
    pub timestamps: bool,
    /// `limitBytes`: cut the rendered output at this many bytes (mid-line if need be, as upstream).
    pub limit_bytes: Option<usize>,
}

/// One parsed, reassembled log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// The record's timestamp as written (RFC 3339 with nanoseconds); a joined line has its first chunk's.
    pub timestamp: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line's bytes without the newline: the runtime's chunks joined, not necessarily UTF-8.
    pub text: Vec<u8>,
}

/// Parses CRI records, joining `P` chunks with the following record of the same stream. Malformed lines are
/// skipped.
pub fn parse(data: &[u8]) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut partial: [Option<LogLine>; 2] = [None, None];
    for rec in data.split(|&b| b == b'\n') {
        let mut it = rec.splitn(4, |&b| b == b' ');
        let (Some(ts), Some(stream), Some(tag)) = (it.next(), it.next(), it.next()) else { continue };
        let text = it.next().unwrap_or(b"");
        let idx = match stream {
            b"stdout" => 0,
            b"stderr" => 1,
            _ => continue,
        };
        let line = partial[idx].get_or_insert_with(|| LogLine {
            timestamp: String::from_utf8_lossy(ts).into_owned(),
            stream: String::from_utf8_lossy(stream).into_owned(),
            text: Vec::new(),
        });
        line.text.extend_from_slice(text);
        if tag != b"P" {
            if let Some(l) = partial[idx].take() {
                out.push(l);
            }
        }
    }
    out.extend(partial.into_iter().flatten());
    out
}

/// All lines of the log at `path` including its rotations, oldest first.
pub fn read_all(path: &Path) -> Vec<LogLine> {
    let mut data = Vec::new();
    let mut n = 1;
    let mut rotated = Vec::new();
    while let Ok(d) = std::fs::read(CriWriter::rotated(path, n)) {
        rotated.push(d);
        n += 1;
    }
    for d in rotated.into_iter().rev() {
        data.extend_from_slice(&d);
    }
    if let Ok(d) = std::fs::read(path) {
        data.extend_from_slice(&d);
    }
    parse(&data)
}

/// Renders lines the way the kubelet returns them (text + newline, optionally `<timestamp> ` first).
pub fn render(lines: &[LogLine], opts: &LogOptions) -> Vec<u8> {
    let selected: Vec<&LogLine> = lines
        .iter()
        .filter(|l| match opts.since_time {
            Some(since) => chrono::DateTime::parse_from_rfc3339(&l.timestamp).map(|t| t >= since).unwrap_or(true),
            None => true,
        })
        .collect();
    let start = match opts.tail_lines {
        Some(n) => selected.len().saturating_sub(n),
        None => 0,
    };
    let mut out = Vec::new();
    for l in &selected[start..] {
        out.extend_from_slice(&render_line(l, opts.timestamps));
    }
    if let Some(limit) = opts.limit_bytes {
        out.truncate(limit);
    }
    out
}

/// One rendered line.
pub fn render_line(l: &LogLine, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(l.text.len() + 40);
    if timestamps {
        out.extend_from_slice(l.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&l.text);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::super::cri::{CriWriter, Stream, MAX_LINE};
    use super::*;

    #[test]
    fn parse_joins_partials_per_stream() {
        let data = b"2024-01-01T00:00:00.000000001Z stdout P abc\n\
2024-01-01T00:00:00.000000002Z stderr F err\n\
2024-01-01T00:00:00.000000003Z stdout F def\n\
garbage\n\
2024-01-01T00:00:00.000000004Z stdout F \n";
        let lines = parse(data);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].stream, "stderr");
        assert_eq!(lines[1].text, b"abcdef");
        assert_eq!(lines[1].timestamp, "2024-01-01T00:00:00.000000001Z");
        assert_eq!(lines[2].text, b"");
    }

    #[test]
    fn tail_since_timestamps_across_rotation() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = CriWriter::open(&path, 4096, 20).expect("open");
        for i in 0..300 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes()).expect("write");
        }
        w.write(Stream::Stdout, &vec![b'y'; MAX_LINE * 2 + 3]).expect("long");
        w.write(Stream::Stdout, b"\n").expect("nl");
        assert!(CriWriter::rotated(&path, 1).exists());
        let lines = read_all(&path);
        let last = lines.last().expect("last");
        assert_eq!(last.text.len(), MAX_LINE * 2 + 3, "long line reassembled");
        let tail = render(&lines[..lines.len() - 1], &LogOptions { tail_lines: Some(2), ..Default::default() });
        assert_eq!(String::from_utf8_lossy(&tail), "line 298\nline 299\n");
        let ts = render(&lines[..1], &LogOptions { timestamps: true, ..Default::default() });
        let s = String::from_utf8_lossy(&ts);
        assert!(s.ends_with("Z line 0\n") || s.ends_with(&format!("Z line {}\n", lines[0].text.len())), "{s}");
        // since after everything: nothing
        let future = chrono::Utc::now() + chrono::Duration::hours(1);
        assert!(render(&lines, &LogOptions { since_time: Some(future), ..Default::default() }).is_empty());
        let limited = render(&lines, &LogOptions { limit_bytes: Some(7), ..Default::default() });
        assert_eq!(limited.len(), 7);
    }
}
