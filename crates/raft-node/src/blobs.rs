//! A content-addressed blob store on the node's disk: every file is named
//! by the hex SHA-256 of its bytes, under `<data-dir>/blobs/`.
//!
//! The replicated state holds only hashes; the bytes (model files and
//! chunks of uploads in progress) live here, so they cost disk, not memory,
//! and snapshots carry them as files, not inside the encoded state.
//!
//! Writes go to a temporary file that is synced and then renamed, so a blob
//! that exists under its name is complete. Blobs no longer referenced are
//! removed by [`BlobStore::retain`], which the state machine calls after a
//! snapshot; [`BlobStore::guard`] keeps it from removing a blob that apply
//! has written but not yet recorded.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("blob {0} is missing")]
    Missing(String),
    #[error("the bytes hash to {actual}, expected {expected}")]
    Mismatch { expected: String, actual: String },
}

/// Cheap to clone; clones share the directory and the guard.
#[derive(Clone)]
pub struct BlobStore {
    dir: Arc<PathBuf>,
    guard: Arc<Mutex<()>>,
    temp_seq: Arc<AtomicU64>,
}

fn is_hash(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BlobStore {
    /// Opens (creating) the store and removes temporary files left by a crash.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self { dir: Arc::new(dir), guard: Arc::default(), temp_seq: Arc::default() })
    }

    /// Held while writing a blob and recording it in the state, and while
    /// removing unreferenced blobs, so the two never interleave.
    pub fn guard(&self) -> MutexGuard<'_, ()> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self, sha: &str) -> PathBuf {
        self.dir.join(sha)
    }

    pub fn contains(&self, sha: &str) -> bool {
        is_hash(sha) && self.path(sha).is_file()
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(".tmp-{}-{n}", std::process::id()))
    }

    /// Stores `bytes` and returns their hash; a blob already present is kept.
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let sha = hex::encode(Sha256::digest(bytes));
        if !self.contains(&sha) {
            self.write_new(&sha, |f| f.write_all(bytes))?;
        }
        Ok(sha)
    }

    /// Stores a blob streamed from `reader` (`len` bytes), which must hash
    /// to `expected`.
    pub fn put_from(&self, expected: &str, len: u64, reader: &mut impl Read) -> Result<(), BlobError> {
        if self.contains(expected) {
            io::copy(&mut reader.take(len), &mut io::sink())?;
            return Ok(());
        }
        let mut hasher = Sha256::new();
        self.write_new_checked(expected, &mut hasher, |f, h| copy_hashing(&mut reader.take(len), f, h).map(|_| ()))
    }

    /// Stores the concatenation of existing blobs, which must hash to
    /// `expected`; streamed, never held in memory whole.
    pub fn concat(&self, parts: &[String], expected: &str) -> Result<u64, BlobError> {
        let mut size = 0u64;
        for p in parts {
            size += fs::metadata(self.path(p)).map_err(|_| BlobError::Missing(p.clone()))?.len();
        }
        if self.contains(expected) {
            return Ok(size);
        }
        let mut hasher = Sha256::new();
        self.write_new_checked(expected, &mut hasher, |f, h| {
            for p in parts {
                copy_hashing(&mut File::open(self.path(p))?, f, h)?;
            }
            Ok(())
        })?;
        Ok(size)
    }

    /// Reads a whole blob and checks its hash.
    pub fn read(&self, sha: &str) -> Result<Vec<u8>, BlobError> {
        let bytes = fs::read(self.path(sha)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing(sha.to_string()),
            _ => BlobError::Io(e),
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha {
            return Err(BlobError::Mismatch { expected: sha.to_string(), actual });
        }
        Ok(bytes)
    }

    /// Size of a stored blob.
    pub fn len_of(&self, sha: &str) -> Result<u64, BlobError> {
        Ok(fs::metadata(self.path(sha)).map_err(|_| BlobError::Missing(sha.to_string()))?.len())
    }

    /// Every stored blob's hash.
    pub fn list(&self) -> io::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for entry in fs::read_dir(self.dir.as_path())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if is_hash(&name) {
                out.insert(name);
            }
        }
        Ok(out)
    }

    /// Removes every blob not in `keep`; the caller holds [`Self::guard`].
    /// Returns how many were removed.
    pub fn retain(&self, keep: &BTreeSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for sha in self.list()? {
            if !keep.contains(&sha) {
                fs::remove_file(self.path(&sha))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn write_new(&self, sha: &str, fill: impl FnOnce(&mut File) -> io::Result<()>) -> Result<(), BlobError> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            fill(&mut f)?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(sha))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    fn write_new_checked(
        &self,
        expected: &str,
        hasher: &mut Sha256,
        fill: impl FnOnce(&mut File, &mut Sha256) -> io::Result<()>,
    ) -> Result<(), BlobError> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            fill(&mut f, hasher)?;
            let actual = hex::encode(std::mem::take(hasher).finalize());
            if actual != expected {
                return Err(BlobError::Mismatch { expected: expected.to_string(), actual });
            }
            f.sync_all()?;
            fs::rename(&tmp, self.path(expected))?;
            sync_dir(&self.dir)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Copies `from` into `to` through a fixed buffer, hashing what passes.
fn copy_hashing(from: &mut impl Read, to: &mut impl Write, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_named_by_content_assembled_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put(b"hello ").unwrap();
        let b = store.put(b"world").unwrap();
        assert_eq!(store.put(b"hello ").unwrap(), a, "same bytes, same blob");
        let whole = hex::encode(Sha256::digest(b"hello world"));
        assert_eq!(store.concat(&[a.clone(), b.clone()], &whole).unwrap(), 11);
        assert_eq!(store.read(&whole).unwrap(), b"hello world");
        assert!(matches!(store.concat(&[b.clone(), a.clone()], &whole), Ok(11)), "an existing blob is kept");
        let wrong = hex::encode(Sha256::digest(b"other"));
        assert!(matches!(store.concat(&[b.clone(), a.clone()], &wrong), Err(BlobError::Mismatch { .. })));
        assert!(!store.contains(&wrong), "a blob whose bytes do not match is not stored");

        let mut reader: &[u8] = b"streamed";
        let streamed = hex::encode(Sha256::digest(b"streamed"));
        store.put_from(&streamed, 8, &mut reader).unwrap();
        assert_eq!(store.len_of(&streamed).unwrap(), 8);

        let _g = store.guard();
        assert_eq!(store.retain(&BTreeSet::from([whole.clone()])).unwrap(), 3);
        assert_eq!(store.list().unwrap(), BTreeSet::from([whole]));
        assert!(matches!(store.read(&a), Err(BlobError::Missing(_))));
    }
}
