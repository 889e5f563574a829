//! The snapshot file: the applied state plus the blobs it refers to.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! "BOATSNAP"  format: u32  full: u8
//! meta_len: u64   meta   (bincode SnapshotMeta)
//! state_len: u64  state  (bincode AppliedState of this format)
//! blob_count: u64, then per blob: sha256 (64 hex bytes), len: u64,
//!                 and, in a full file only, the blob's bytes
//! rows: in a full file only, per row len: u64 and the row's bytes (opaque
//!       here: the domains' node-local records); then u64::MAX
//! ```
//!
//! A node keeps its current snapshot *thin* (blob hashes and sizes, no
//! bytes): building one costs only the encoded state. When openraft needs
//! to send it, the *full* file is written once from the blob store and then
//! streamed in chunks; the receiver stores the blobs as they are read, so
//! no side ever holds the blobs in memory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::blobs::{BlobError, BlobStore};
use crate::domains::AppliedState;
use crate::format::{self, FormatError, SNAPSHOT_FORMAT};
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"BOATSNAP";
const WHAT: &str = "snapshot";

/// Why a snapshot file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("snapshot blob: {0}")]
    Blob(#[from] BlobError),
}

fn corrupt(detail: impl ToString) -> SnapshotError {
    SnapshotError::Format(FormatError::Corrupt { what: WHAT, detail: detail.to_string() })
}

/// The readable head of a snapshot file.
pub struct Head {
    pub format: u32,
    pub full: bool,
    pub meta: SnapshotMeta,
    /// The encoded state, decoded with [`decode_state`].
    pub state: Vec<u8>,
    /// (hash, size) of every blob the state refers to.
    pub blobs: Vec<(String, u64)>,
}

/// Encodes the state in the current format.
pub fn encode_state(state: &AppliedState) -> Result<Vec<u8>, SnapshotError> {
    bincode::serialize(state).map_err(|e| SnapshotError::Io(io::Error::other(e)))
}

/// Decodes a state encoded in snapshot format `format`.
pub fn decode_state(format: u32, bytes: &[u8]) -> Result<AppliedState, SnapshotError> {
    format::check(WHAT, format, SNAPSHOT_FORMAT)?;
    // Older formats decode through frozen copies of their types.
    match format {
        1 => bincode::deserialize::<crate::domains::v1::AppliedStateV1>(bytes).map(Into::into).map_err(corrupt),
        2 => bincode::deserialize::<crate::domains::v2::AppliedStateV2>(bytes).map(Into::into).map_err(corrupt),
        _ => bincode::deserialize(bytes).map_err(corrupt),
    }
}

/// Rows of a full snapshot, produced by the domains.
pub type Rows<'a> = &'a mut dyn Iterator<Item = Result<Vec<u8>, SnapshotError>>;

/// Marks the end of the rows.
const END_OF_ROWS: u64 = u64::MAX;

/// Writes a snapshot file at `path` atomically (temporary file, sync,
/// rename). A full file (`rows` given) also holds the blobs' bytes, copied
/// in from `store`, and the rows.
pub fn write(
    path: &Path,
    meta: &SnapshotMeta,
    state: &[u8],
    refs: &BTreeSet<String>,
    store: &BlobStore,
    rows: Option<Rows<'_>>,
) -> Result<(), SnapshotError> {
    let full = rows.is_some();
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(&SNAPSHOT_FORMAT.to_be_bytes())?;
        out.write_all(&[full as u8])?;
        let meta = bincode::serialize(meta).map_err(io::Error::other)?;
        for section in [&meta[..], state] {
            out.write_all(&(section.len() as u64).to_be_bytes())?;
            out.write_all(section)?;
        }
        out.write_all(&(refs.len() as u64).to_be_bytes())?;
        for sha in refs {
            let len = store.len_of(sha)?;
            out.write_all(sha.as_bytes())?;
            out.write_all(&len.to_be_bytes())?;
            if full {
                let copied = io::copy(&mut File::open(store.path(sha))?.take(len), &mut out)?;
                if copied != len {
                    return Err(corrupt(format!("blob {sha} shrank while it was copied")));
                }
            }
        }
        if let Some(rows) = rows {
            for row in rows {
                let row = row?;
                out.write_all(&(row.len() as u64).to_be_bytes())?;
                out.write_all(&row)?;
            }
        }
        out.write_all(&END_OF_ROWS.to_be_bytes())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

/// Sections are bounded by what a node could have written, so a damaged
/// length fails cleanly instead of allocating without limit.
const MAX_SECTION: u64 = 4 * 1024 * 1024 * 1024;

fn read_section(r: &mut impl Read) -> Result<Vec<u8>, SnapshotError> {
    let len = read_u64(r)?;
    if len > MAX_SECTION {
        return Err(corrupt(format!("a section claims {len} bytes")));
    }
    let mut buf = Vec::with_capacity(len as usize);
    r.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(corrupt("the file ends inside a section"));
    }
    Ok(buf)
}

/// Receives the rows of a full snapshot, one at a time.
pub type RowSink<'a> = &'a mut dyn FnMut(Vec<u8>) -> Result<(), SnapshotError>;

/// Where a full snapshot's contents go as it is read.
pub struct Sinks<'a> {
    pub blobs: &'a BlobStore,
    pub rows: RowSink<'a>,
}

/// Reads a snapshot file. In a full file, each blob is stored into the
/// sinks' blob store as it is read (checked against its hash) and each row
/// handed to the row sink; pass `None` to read the head of a thin file.
pub fn read(reader: impl Read, sinks: Option<Sinks<'_>>) -> Result<Head, SnapshotError> {
    let mut r = BufReader::new(reader);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| corrupt("too short"))?;
    if &magic != MAGIC {
        return Err(FormatError::Unversioned { what: WHAT, known: SNAPSHOT_FORMAT }.into());
    }
    let mut version = [0u8; 4];
    r.read_exact(&mut version)?;
    let format = u32::from_be_bytes(version);
    format::check(WHAT, format, SNAPSHOT_FORMAT)?;
    let mut full = [0u8; 1];
    r.read_exact(&mut full)?;
    let full = full[0] == 1;
    let meta: SnapshotMeta = bincode::deserialize(&read_section(&mut r)?).map_err(corrupt)?;
    let state = read_section(&mut r)?;
    let count = read_u64(&mut r)?;
    let mut blobs = Vec::new();
    let mut sinks = sinks;
    if full && sinks.is_none() {
        return Err(corrupt("a full snapshot read without a place for its contents"));
    }
    for _ in 0..count {
        let mut sha = [0u8; 64];
        r.read_exact(&mut sha)?;
        let sha = String::from_utf8(sha.to_vec()).map_err(corrupt)?;
        let len = read_u64(&mut r)?;
        if let (true, Some(s)) = (full, sinks.as_ref()) {
            s.blobs.put_from(&sha, len, &mut r)?;
        }
        blobs.push((sha, len));
    }
    if let (true, Some(s)) = (full, sinks.as_mut()) {
        loop {
            let len = read_u64(&mut r)?;
            if len == END_OF_ROWS {
                break;
            }
            if len > MAX_SECTION {
                return Err(corrupt(format!("a row claims {len} bytes")));
            }
            let mut row = Vec::with_capacity(len as usize);
            (&mut r).take(len).read_to_end(&mut row)?;
            if row.len() as u64 != len {
                return Err(corrupt("the file ends inside a row"));
            }
            (s.rows)(row)?;
        }
    }
    Ok(Head { format, full, meta, state, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, StoredMembership};

    #[test]
    fn a_full_snapshot_carries_its_blobs_to_another_store() {
        let dir = tempfile::tempdir().unwrap();
        let here = BlobStore::open(dir.path().join("a")).unwrap();
        let there = BlobStore::open(dir.path().join("b")).unwrap();
        let sha = here.put(&vec![7u8; 300_000]).unwrap();
        let state = AppliedState {
            last_applied: Some(LogId::new(openraft::CommittedLeaderId::new(2, 0), 9)),
            ..AppliedState::default()
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: StoredMembership::default(),
            snapshot_id: "2-9-0".into(),
        };
        let refs = BTreeSet::from([sha.clone()]);
        let (thin, full) = (dir.path().join("thin.snap"), dir.path().join("full.snap"));
        write(&thin, &meta, &encode_state(&state).unwrap(), &refs, &here, None).unwrap();
        let mut rows = vec![Ok(b"row one".to_vec()), Ok(b"row two".to_vec())].into_iter();
        write(&full, &meta, &encode_state(&state).unwrap(), &refs, &here, Some(&mut rows)).unwrap();
        assert!(fs::metadata(&thin).unwrap().len() < 1000, "a thin snapshot holds no blob bytes");

        let head = read(File::open(&thin).unwrap(), None).unwrap();
        assert!(!head.full);
        assert_eq!(head.blobs, vec![(sha.clone(), 300_000)]);
        assert!(!there.contains(&sha));
        let mut got = Vec::new();
        let mut sink = |row: Vec<u8>| {
            got.push(row);
            Ok(())
        };
        let head = read(File::open(&full).unwrap(), Some(Sinks { blobs: &there, rows: &mut sink })).unwrap();
        assert_eq!(got, vec![b"row one".to_vec(), b"row two".to_vec()]);
        assert_eq!(head.meta.snapshot_id, "2-9-0");
        assert_eq!(decode_state(head.format, &head.state).unwrap().last_applied, state.last_applied);
        assert_eq!(there.read(&sha).unwrap(), vec![7u8; 300_000]);
    }

    #[test]
    fn unversioned_and_newer_snapshots_are_refused_clearly() {
        let e = read(&b"\x01\x02\x03 old bincode state........"[..], None).err().expect("refused").to_string();
        assert!(e.contains("before format versions"), "{e}");
        let mut newer = MAGIC.to_vec();
        newer.extend((SNAPSHOT_FORMAT + 1).to_be_bytes());
        newer.push(0);
        let e = read(&newer[..], None).err().expect("refused").to_string();
        assert!(e.contains(&format!("format version {}", SNAPSHOT_FORMAT + 1)), "{e}");
    }
}
