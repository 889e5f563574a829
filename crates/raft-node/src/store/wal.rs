//! The Raft log's entries as append-only segment files, made durable with
//! `fdatasync`.
//!
//! sled, which held the log before, makes its writes durable with
//! `sync_file_range`, which writes the pages out but neither flushes the
//! device's write cache nor records a grown file's size: an acknowledged
//! entry could be lost with the power. Its flush also wrote the entry and
//! the commit marker as two buffers, each waited for in turn. Here an
//! append is one `write` and one `fdatasync`.
//!
//! Layout: `<dir>/<first index, 20 digits>.wal`, each starting with a
//! header (magic and format version) followed by frames:
//! `[payload length u32][crc32 of index and payload u32][index u64][payload]`,
//! little-endian. Indexes are consecutive across segments. A new segment is
//! started once the current one passes `SEGMENT_BYTES`.
//!
//! Recovery: a torn or damaged frame at the end of the last segment (a crash
//! during a write that was never acknowledged) is cut off; damage anywhere
//! else is refused. The byte layer knows nothing of openraft: payloads are
//! opaque.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic of a segment file.
const MAGIC: &[u8; 8] = b"BOATWAL\0";
/// Format version of the segment layout.
pub const WAL_FORMAT: u32 = 1;
const HEADER_BYTES: u64 = 16;
const FRAME_HEADER_BYTES: usize = 16;
/// A segment is closed once it holds this much; purges remove whole segments.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where one entry lives.
#[derive(Debug, Clone, Copy)]
struct Loc {
    /// First index of its segment (the segment's key).
    segment: u64,
    /// Offset of the payload in that segment.
    offset: u64,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes in the file (where the next frame goes, for the last segment).
    len: u64,
}

/// The segment files of one log. Not synchronised: `LogStore` holds it
/// behind a lock.
pub struct Wal {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    /// Index of `locs[0]`.
    first: u64,
    locs: VecDeque<Loc>,
    /// Size past which a new segment is started.
    segment_bytes: u64,
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {detail}; the log is damaged: wipe this node (reset.sh) and let it catch up from the cluster",
            path.display()
        ),
    )
}

fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.wal")
}

/// Makes a created, renamed or removed file name durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Opens (or creates) the log in `dir`. Entries below `keep_from` were
    /// purged: they may still sit in the first segment and are skipped.
    pub fn open(dir: &Path, keep_from: u64) -> io::Result<Self> {
        Self::open_with(dir, keep_from, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, keep_from: u64, segment_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if let Some(first) = name.strip_suffix(".wal").and_then(|n| n.parse::<u64>().ok()) {
                names.push((first, item.path()));
            }
        }
        names.sort();
        let mut wal = Self {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            first: keep_from,
            locs: VecDeque::new(),
            segment_bytes,
        };
        let count = names.len();
        for (n, (first, path)) in names.into_iter().enumerate() {
            wal.load_segment(first, path, n + 1 == count, keep_from)?;
        }
        if keep_from > 0 && wal.first_index().is_some_and(|f| f != keep_from) {
            return Err(corrupt(dir, format!("the log starts at {}, not after the purge point", wal.first)));
        }
        Ok(wal)
    }

    fn load_segment(&mut self, first: u64, path: PathBuf, last: bool, keep_from: u64) -> io::Result<()> {
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER_BYTES as usize || &bytes[..8] != MAGIC {
            if last && bytes.len() < HEADER_BYTES as usize {
                // Created, never written: a crash right after rotation.
                drop(file);
                std::fs::remove_file(&path)?;
                return sync_dir(&self.dir);
            }
            return Err(corrupt(&path, "not a log segment"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != WAL_FORMAT {
            return Err(corrupt(&path, format!("segment format {version}, this binary reads {WAL_FORMAT}")));
        }
        let mut off = HEADER_BYTES as usize;
        let mut expected = first;
        while off < bytes.len() {
            let frame = parse_frame(&bytes[off..]);
            let Some((index, payload_len)) = frame else {
                if last {
                    // A write that was cut short was never acknowledged.
                    tracing::warn!(segment = %path.display(), offset = off, "cutting a torn write off the log");
                    file.set_len(off as u64)?;
                    file.sync_all()?;
                    bytes.truncate(off);
                    break;
                }
                return Err(corrupt(&path, format!("damaged frame at offset {off}")));
            };
            if index != expected {
                return Err(corrupt(&path, format!("entry {index} where {expected} was expected")));
            }
            let loc = Loc { segment: first, offset: (off + FRAME_HEADER_BYTES) as u64, len: payload_len as u32 };
            if index >= keep_from {
                if self.locs.is_empty() {
                    self.first = index;
                } else if index != self.first + self.locs.len() as u64 {
                    return Err(corrupt(&path, format!("entry {index} leaves a gap in the log")));
                }
                self.locs.push_back(loc);
            }
            expected += 1;
            off += FRAME_HEADER_BYTES + payload_len;
        }
        self.segments.insert(first, Segment { file: Arc::new(file), path, len: bytes.len() as u64 });
        Ok(())
    }

    /// Index of the first entry held, if any.
    pub fn first_index(&self) -> Option<u64> {
        (!self.locs.is_empty()).then_some(self.first)
    }

    /// Index of the last entry held, if any.
    pub fn last_index(&self) -> Option<u64> {
        (!self.locs.is_empty()).then(|| self.first + self.locs.len() as u64 - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// Writes `entries` (index, payload), which must follow the last entry
    /// (or start the log anywhere when it is empty), without syncing.
    /// Returns the segment to `fdatasync` before they are durable (a
    /// segment closed on the way was synced already).
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<Option<Arc<File>>> {
        let mut frames: Vec<u8> = Vec::new();
        let mut pending: Vec<(u64, usize, u32)> = Vec::new();
        let mut expected = self.last_index().map(|l| l + 1);
        for (index, payload) in entries {
            if let Some(e) = expected.filter(|e| e != index) {
                return Err(io::Error::other(format!("append of entry {index} where {e} was expected")));
            }
            expected = Some(index + 1);
            if self.locs.is_empty() && pending.is_empty() {
                // Whatever segments remain hold only purged entries.
                self.remove_segments_from(0)?;
                self.first = *index;
                self.start_segment(*index)?;
            } else if self.active_len() + (frames.len() + FRAME_HEADER_BYTES + payload.len()) as u64
                > self.segment_bytes
                && (self.active_len() > HEADER_BYTES || !frames.is_empty())
            {
                if let Some(file) = self.flush_frames(&mut frames, &mut pending)? {
                    file.sync_data()?;
                }
                self.start_segment(*index)?;
            }
            pending.push((*index, frames.len() + FRAME_HEADER_BYTES, payload.len() as u32));
            frames.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frames.extend_from_slice(&checksum(*index, payload).to_le_bytes());
            frames.extend_from_slice(&index.to_le_bytes());
            frames.extend_from_slice(payload);
        }
        self.flush_frames(&mut frames, &mut pending)
    }

    fn active_len(&self) -> u64 {
        self.segments.values().next_back().map(|s| s.len).unwrap_or(0)
    }

    /// Removes the segments whose first index is `from` or above.
    fn remove_segments_from(&mut self, from: u64) -> io::Result<()> {
        let doomed: Vec<u64> = self.segments.range(from..).map(|(k, _)| *k).collect();
        for key in &doomed {
            if let Some(s) = self.segments.remove(key) {
                std::fs::remove_file(&s.path)?;
            }
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Writes buffered frames to the last segment and records them.
    fn flush_frames(
        &mut self,
        frames: &mut Vec<u8>,
        pending: &mut Vec<(u64, usize, u32)>,
    ) -> io::Result<Option<Arc<File>>> {
        if frames.is_empty() {
            return Ok(None);
        }
        let Some((&key, segment)) = self.segments.iter_mut().next_back() else {
            return Err(io::Error::other("no segment to write to"));
        };
        let base = segment.len;
        if let Err(e) = segment.file.write_all_at(frames, base) {
            // Leave no partial frame behind for a later append to follow.
            let _ = segment.file.set_len(base);
            return Err(e);
        }
        segment.len += frames.len() as u64;
        for (_, at, len) in pending.drain(..) {
            self.locs.push_back(Loc { segment: key, offset: base + at as u64, len });
        }
        frames.clear();
        Ok(Some(segment.file.clone()))
    }

    fn start_segment(&mut self, first: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(first));
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        let mut header = [0u8; HEADER_BYTES as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&WAL_FORMAT.to_le_bytes());
        file.write_all(&header)?;
        file.sync_data()?;
        sync_dir(&self.dir)?;
        self.segments.insert(first, Segment { file: Arc::new(file), path, len: HEADER_BYTES });
        Ok(())
    }

    /// Where entry `index` is: its segment's file, offset and length.
    pub fn locate(&self, index: u64) -> Option<(Arc<File>, u64, usize)> {
        let pos = index.checked_sub(self.first)?;
        let loc = self.locs.get(pos as usize)?;
        let segment = self.segments.get(&loc.segment)?;
        Some((segment.file.clone(), loc.offset, loc.len as usize))
    }

    /// Removes every entry from `index` on, durably.
    pub fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some(last) = self.last_index() else { return Ok(()) };
        if index > last {
            return Ok(());
        }
        let keep = index.saturating_sub(self.first) as usize;
        let cut = self.locs.get(keep).copied();
        self.locs.truncate(keep);
        let Some(cut) = cut else { return Ok(()) };
        let frame_start = cut.offset - FRAME_HEADER_BYTES as u64;
        if frame_start == HEADER_BYTES {
            return self.remove_segments_from(cut.segment);
        }
        self.remove_segments_from(cut.segment + 1)?;
        if let Some(s) = self.segments.get_mut(&cut.segment) {
            s.file.set_len(frame_start)?;
            s.file.sync_data()?;
            s.len = frame_start;
        }
        Ok(())
    }

    /// Forgets every entry up to `index` and removes the segments that hold
    /// nothing else. The caller has made the purge point durable first.
    pub fn purge(&mut self, index: u64) -> io::Result<()> {
        if self.locs.is_empty() {
            self.first = self.first.max(index + 1);
        } else {
            let drop = (index + 1).saturating_sub(self.first).min(self.locs.len() as u64) as usize;
            self.locs.drain(..drop);
            self.first += drop as u64;
        }
        // A segment is removable when the next one starts at or below the
        // first kept entry; the last one only when nothing is kept.
        let keys: Vec<u64> = self.segments.keys().copied().collect();
        let mut removed = false;
        for (n, key) in keys.iter().enumerate() {
            let removable = match keys.get(n + 1) {
                Some(next) => *next <= index + 1,
                None => self.locs.is_empty(),
            };
            if !removable {
                break;
            }
            if let Some(s) = self.segments.remove(key) {
                std::fs::remove_file(&s.path)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The index and payload length of the frame at the start of `bytes`, if it
/// is whole and intact.
fn parse_frame(bytes: &[u8]) -> Option<(u64, usize)> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let index = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len)?;
    (checksum(index, payload) == crc).then_some((index, len))
}

/// Reads `len` bytes at `offset` of `file`.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Replaces `dir/name` with `bytes`, durably: written to a temporary file,
/// synced, renamed over the old one, and the directory synced.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(i: u64) -> Vec<u8> {
        format!("entry {i} ").repeat((i % 7 + 1) as usize).into_bytes()
    }

    fn append_range(wal: &mut Wal, range: std::ops::Range<u64>) {
        let items: Vec<(u64, Vec<u8>)> = range.map(|i| (i, payload(i))).collect();
        if let Some(f) = wal.append(&items).unwrap() {
            f.sync_data().unwrap();
        }
    }

    fn read(wal: &Wal, i: u64) -> Vec<u8> {
        let (f, off, len) = wal.locate(i).unwrap_or_else(|| panic!("entry {i} missing"));
        read_at(&f, off, len).unwrap()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn entries_survive_reopening_with_truncation_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 0).unwrap();
        assert!(wal.is_empty());
        append_range(&mut wal, 1..50);
        wal.truncate(40).unwrap();
        assert_eq!(wal.last_index(), Some(39));
        append_range(&mut wal, 40..60);
        wal.purge(9).unwrap();
        assert_eq!(wal.first_index(), Some(10));
        assert!(wal.locate(9).is_none());
        drop(wal);

        let wal = Wal::open(dir.path(), 10).unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (Some(10), Some(59)));
        for i in 10..60 {
            assert_eq!(read(&wal, i), payload(i), "entry {i}");
        }
        let err = Wal::open(dir.path(), 0).and_then(|mut w| w.append(&[(7, payload(7))])).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn a_torn_last_write_is_cut_off_and_damage_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 0).unwrap();
        append_range(&mut wal, 1..6);
        drop(wal);
        let seg = segment_files(dir.path()).pop().unwrap();
        let full = std::fs::metadata(&seg).unwrap().len();
        // Half of the last frame reached the disk.
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(full - 3).unwrap();
        let mut wal = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(wal.last_index(), Some(4));
        append_range(&mut wal, 5..8);
        drop(wal);
        let wal = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(wal.last_index(), Some(7));
        assert_eq!(read(&wal, 5), payload(5));
        drop(wal);

        // A flipped byte in a segment that is not the last one.
        let small = tempfile::tempdir().unwrap();
        let mut wal = Wal::open_with(small.path(), 0, 200).unwrap();
        append_range(&mut wal, 1..20);
        drop(wal);
        let segments = segment_files(small.path());
        assert!(segments.len() > 2, "{} segments", segments.len());
        let mut bytes = std::fs::read(&segments[0]).unwrap();
        bytes[HEADER_BYTES as usize + FRAME_HEADER_BYTES + 1] ^= 0xff;
        std::fs::write(&segments[0], &bytes).unwrap();
        let e = Wal::open_with(small.path(), 0, 200).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("damaged frame") && e.contains(".wal"), "{e}");
    }

    #[test]
    fn segments_rotate_and_purge_removes_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open_with(dir.path(), 0, 1000).unwrap();
        let big = vec![7u8; 300];
        for i in 1..=7 {
            if let Some(f) = wal.append(&[(i, big.clone())]).unwrap() {
                f.sync_data().unwrap();
            }
        }
        let before = segment_files(dir.path()).len();
        assert!(before >= 3, "{before} segments");
        wal.purge(4).unwrap();
        let after = segment_files(dir.path()).len();
        assert!(after < before, "{after} segments after the purge, {before} before");
        drop(wal);
        let mut wal = Wal::open_with(dir.path(), 5, 1000).unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (Some(5), Some(7)));
        assert_eq!(read(&wal, 6).len(), big.len());
        // Truncating into an earlier segment removes the later ones.
        wal.truncate(6).unwrap();
        assert_eq!(wal.last_index(), Some(5));
        drop(wal);
        let mut wal = Wal::open_with(dir.path(), 5, 1000).unwrap();
        assert_eq!(wal.last_index(), Some(5));
        // Purging everything leaves an empty log that starts where it is told.
        wal.purge(20).unwrap();
        assert!(wal.is_empty() && segment_files(dir.path()).is_empty());
        append_range(&mut wal, 21..23);
        drop(wal);
        let wal = Wal::open(dir.path(), 21).unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (Some(21), Some(22)));
    }
}
