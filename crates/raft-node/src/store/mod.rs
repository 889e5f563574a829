//! Durable storage: the Raft log and vote (`log`, in segment files written
//! by `wal`), the state machine (`state_machine`) and its snapshot files
//! (`snapshot`). The log lives in `<data-dir>/raft-log/`, its commit marker
//! and the store's format marker in a sled database at
//! `<data-dir>/raft.sled`; snapshots in `<data-dir>/snapshots/`, and the
//! blobs they refer to in `<data-dir>/blobs/` (see `crate::blobs`).

pub mod log;
pub mod snapshot;
pub mod state_machine;
pub mod wal;

use std::path::Path;

pub use log::LogStore;
pub use state_machine::{StateMachineStore, StateView};

use crate::format::{self, FormatError, STORE_FORMAT};

/// Key of the store format version in the `meta` tree.
const FORMAT_KEY: &[u8] = b"store_format";
/// The log's directory, and the sled database's, in a data directory.
pub const LOG_DIR: &str = "raft-log";
pub const SLED_DIR: &str = "raft.sled";
/// The prediction records' sled database in a data directory.
pub const RECORDS_DIR: &str = "records.sled";

/// Makes what a sled database has flushed durable. sled's flush waits with
/// `sync_file_range`, which flushes neither the device's write cache nor a
/// grown file's size; `fdatasync` of its file does both.
pub fn sync_sled(sled_dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(sled_dir.join("db"))?.sync_data()
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
}

/// Checks the store's format version and returns it, recording the current
/// one in a new store. A store with data but no version was written before
/// versions existed (the snapshot then lived in a sled tree) and is
/// refused. Format 1 kept the log in sled; `LogStore::open` converts it.
pub fn check_format(db: &sled::Db) -> Result<u32, OpenError> {
    let meta = db.open_tree("meta")?;
    match meta.get(FORMAT_KEY)? {
        Some(v) => {
            let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| FormatError::Corrupt {
                what: "store format marker",
                detail: format!("{} bytes", v.len()),
            })?;
            let found = u32::from_be_bytes(bytes);
            format::check("this node's data directory", found, STORE_FORMAT)?;
            Ok(found)
        }
        None => {
            let has_data =
                !db.open_tree("log")?.is_empty() || db.tree_names().iter().any(|n| n.as_ref() == b"snapshot");
            if has_data {
                return Err(FormatError::Unversioned { what: "this node's data directory", known: STORE_FORMAT }.into());
            }
            meta.insert(FORMAT_KEY, &STORE_FORMAT.to_be_bytes())?;
            db.flush()?;
            Ok(STORE_FORMAT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_without_a_format_marker_or_with_a_newer_one_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = sled::Config::new().path(dir.path().join("fresh")).open().unwrap();
        assert_eq!(check_format(&fresh).unwrap(), STORE_FORMAT);
        assert_eq!(check_format(&fresh).expect("a marked store opens again"), STORE_FORMAT);

        let legacy = sled::Config::new().path(dir.path().join("legacy")).open().unwrap();
        legacy.open_tree("log").unwrap().insert(0u64.to_be_bytes(), b"old entry".to_vec()).unwrap();
        let e = check_format(&legacy).unwrap_err().to_string();
        assert!(e.contains("before format versions"), "{e}");

        let newer = sled::Config::new().path(dir.path().join("newer")).open().unwrap();
        newer.open_tree("meta").unwrap().insert(FORMAT_KEY, &(STORE_FORMAT + 1).to_be_bytes()).unwrap();
        let e = check_format(&newer).unwrap_err().to_string();
        assert!(e.contains(&format!("format version {}", STORE_FORMAT + 1)), "{e}");
    }
}
