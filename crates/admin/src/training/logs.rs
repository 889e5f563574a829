//! Trial logs on the shared directory: what each worker printed, as JSON
//! lines, rotated by size.
//!
//! A worker's stdout and stderr lines are parsed as the worker contract
//! says (JSON lines with an `epoch` field are per-epoch metrics, anything
//! else is a message) and stored one JSON object per line:
//! `{"ts_ms":…,"attempt":1,"kind":"metrics","epoch":3,"values":{"loss":0.4}}` or
//! `{"ts_ms":…,"attempt":1,"kind":"message","message":"…"}`.
//! Files rotate once they pass [`MAX_LOG_BYTES`], keeping [`KEEP_LOGS`] old
//! ones (`T.log.1` is the newest), so no trial can fill the disk.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use boat_training::worker::{parse_log_line, LogLine};
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::runtime::LineSink;

/// A trial log file is rotated past this size.
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;
/// Rotated trial log files kept besides the current one.
pub const KEEP_LOGS: usize = 2;
/// Longest line kept; longer ones are cut.
const MAX_LINE: usize = 16 * 1024;

/// One line of a trial log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub ts_ms: u64,
    pub attempt: u32,
    #[serde(flatten)]
    pub body: LogBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogBody {
    Metrics { epoch: u32, values: BTreeMap<String, f64> },
    Message { message: String },
}

fn now_ms() -> u64 {
    crate::inference::now_ms()
}

/// A sink that appends a worker's lines to `path`, tagged with `attempt`.
pub fn trial_sink(path: &Path, attempt: u32) -> std::io::Result<LineSink> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = FileRotate::new(
        path,
        AppendCount::new(KEEP_LOGS),
        ContentLimit::BytesSurpassed(MAX_LOG_BYTES),
        Compression::None,
        None,
    );
    let file = Arc::new(Mutex::new(file));
    Ok(Arc::new(move |line: &str| {
        let line = if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            &line[..cut]
        } else {
            line
        };
        let body = match parse_log_line(line) {
            LogLine::Metrics { epoch, values } => LogBody::Metrics { epoch, values },
            LogLine::Message(message) => LogBody::Message { message },
        };
        let entry = LogEntry { ts_ms: now_ms(), attempt, body };
        if let Ok(mut text) = serde_json::to_string(&entry) {
            text.push('\n');
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            // A full disk must not stop training; the line is lost.
            let _ = f.write_all(text.as_bytes()).and_then(|_| f.flush());
        }
    }))
}

/// The files of a rotated log, oldest first.
fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=KEEP_LOGS + 8)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .filter(|p| p.exists())
        .collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Items of a rotated log from position `since` on (positions count
/// non-empty lines over the kept files, oldest first), at most `limit` of
/// them, and the position after the last one returned. `parse` turns a line
/// into an item; a line it refuses still takes its position.
fn read_log<T>(
    path: &Path,
    since: usize,
    limit: usize,
    mut parse: impl FnMut(String) -> Option<T>,
) -> std::io::Result<(Vec<T>, usize)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for file in files_of(path) {
        let reader = std::io::BufReader::new(std::fs::File::open(&file)?);
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            if out.len() >= limit {
                return Ok((out, pos));
            }
            if pos >= since {
                out.extend(parse(line));
            }
            pos += 1;
        }
    }
    Ok((out, pos.max(since)))
}

/// Entries of a trial log (see [`read_log`] for positions).
pub fn read_trial_log(path: &Path, since: usize, limit: usize) -> std::io::Result<(Vec<LogEntry>, usize)> {
    read_log(path, since, limit, |line| serde_json::from_str(&line).ok())
}

/// Lines of a plain text log (a node's own).
pub fn read_text_log(path: &Path, since: usize, limit: usize) -> std::io::Result<(Vec<String>, usize)> {
    read_log(path, since, limit, Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_stored_and_read_back_from_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/jobs/1/trials/2.log");
        let sink = trial_sink(&path, 1).unwrap();
        sink(r#"{"epoch": 1, "loss": 0.5, "val_score": 0.8}"#);
        sink("loading data");
        sink(&"x".repeat(MAX_LINE * 2));
        let (entries, next) = read_trial_log(&path, 0, 100).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(next, 3);
        match &entries[0].body {
            LogBody::Metrics { epoch, values } => {
                assert_eq!(*epoch, 1);
                assert_eq!(values["loss"], 0.5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[1].body, LogBody::Message { message: "loading data".into() });
        let LogBody::Message { message } = &entries[2].body else { panic!() };
        assert_eq!(message.len(), MAX_LINE, "long lines are cut");
        let (later, _) = read_trial_log(&path, 2, 100).unwrap();
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn a_log_rotates_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let sink = trial_sink(&path, 1).unwrap();
        let line = "y".repeat(MAX_LINE - 1);
        for _ in 0..(MAX_LOG_BYTES / MAX_LINE) * (KEEP_LOGS + 3) {
            sink(&line);
        }
        let files = files_of(&path);
        assert_eq!(files.len(), KEEP_LOGS + 1, "{files:?}");
        let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
        assert!(total <= ((KEEP_LOGS + 1) * (MAX_LOG_BYTES + 2 * MAX_LINE)) as u64, "{total}");
    }
}
