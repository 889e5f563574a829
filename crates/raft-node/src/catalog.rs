//! The replicated model catalog: which models and versions exist, their
//! files, and which version is each model's default.
//!
//! Pure data, changed only by applying log entries, so that every replica
//! switches default versions at the same log index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::Refusal;
use crate::executor::ECHO_MODEL;

/// One stored version of a model.
#[derive(Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub sha256: String,
    pub size_bytes: u64,
    pub uploaded_at_ms: u64,
    /// Log index of the upload.
    pub index: u64,
    /// Compiled into the binary (the echo model); `bytes` is then empty.
    pub builtin: bool,
    /// The ONNX file. Kept in the replicated state so that a node that
    /// joins from a snapshot can load every model.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("sha256", &self.sha256)
            .field("size_bytes", &self.size_bytes)
            .field("index", &self.index)
            .field("builtin", &self.builtin)
            .finish()
    }
}

/// All versions of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    pub versions: BTreeMap<u64, VersionRecord>,
    pub default: Option<u64>,
    /// Versions only increase, even after deletions.
    pub next_version: u64,
}

/// A model file arriving in chunks.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct StagedUpload {
    pub started_at_ms: u64,
    pub chunks: Vec<serde_bytes::ByteBuf>,
}

impl std::fmt::Debug for StagedUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: usize = self.chunks.iter().map(|c| c.len()).sum();
        f.debug_struct("StagedUpload").field("chunks", &self.chunks.len()).field("bytes", &bytes).finish()
    }
}

/// Uploads never completed are dropped this long after they started
/// (measured with leader timestamps, so every replica drops the same).
pub const STAGED_UPLOAD_TTL_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub models: BTreeMap<String, ModelEntry>,
    /// Uploads in progress, by upload id.
    pub staged: BTreeMap<u64, StagedUpload>,
}

impl Default for Catalog {
    /// A fresh cluster serves the built-in echo model as version 1.
    fn default() -> Self {
        let echo = VersionRecord {
            sha256: crate::command::sha256_hex(boat_serving::ECHO_ONNX),
            size_bytes: boat_serving::ECHO_ONNX.len() as u64,
            uploaded_at_ms: 0,
            index: 0,
            builtin: true,
            bytes: Vec::new(),
        };
        let entry = ModelEntry { versions: BTreeMap::from([(1, echo)]), default: Some(1), next_version: 2 };
        Self { models: BTreeMap::from([(ECHO_MODEL.to_string(), entry)]), staged: BTreeMap::new() }
    }
}

impl Catalog {
    /// Stages the next chunk of an upload and drops abandoned uploads.
    pub fn stage_chunk(&mut self, upload_id: u64, seq: u32, bytes: Vec<u8>, at_ms: u64) -> Result<(), String> {
        let horizon = at_ms.saturating_sub(STAGED_UPLOAD_TTL_MS);
        self.staged.retain(|_, s| s.started_at_ms >= horizon);
        let staged =
            self.staged.entry(upload_id).or_insert_with(|| StagedUpload { started_at_ms: at_ms, chunks: Vec::new() });
        if staged.chunks.len() != seq as usize {
            return Err(format!("upload {upload_id}: chunk {seq} arrived after {} chunks", staged.chunks.len()));
        }
        staged.chunks.push(serde_bytes::ByteBuf::from(bytes));
        Ok(())
    }

    /// Removes a staged upload and returns its file, if it has exactly
    /// `chunks` chunks.
    pub fn take_staged(&mut self, upload_id: u64, chunks: u32) -> Result<Vec<u8>, String> {
        let staged =
            self.staged.remove(&upload_id).ok_or_else(|| format!("upload {upload_id} has no staged chunks"))?;
        if staged.chunks.len() != chunks as usize {
            return Err(format!("upload {upload_id} has {} chunks, expected {chunks}", staged.chunks.len()));
        }
        Ok(staged.chunks.into_iter().flat_map(serde_bytes::ByteBuf::into_vec).collect())
    }

    /// The number the next upload of `name` will get.
    pub fn next_version(&self, name: &str) -> u64 {
        self.models.get(name).map_or(1, |e| e.next_version)
    }

    /// Adds a version, makes it the default and returns its number.
    pub fn upload(&mut self, name: &str, sha256: String, bytes: Vec<u8>, uploaded_at_ms: u64, index: u64) -> u64 {
        let entry = self.models.entry(name.to_string()).or_insert_with(|| ModelEntry {
            versions: BTreeMap::new(),
            default: None,
            next_version: 1,
        });
        let version = entry.next_version;
        entry.next_version += 1;
        let record =
            VersionRecord { sha256, size_bytes: bytes.len() as u64, uploaded_at_ms, index, builtin: false, bytes };
        entry.versions.insert(version, record);
        entry.default = Some(version);
        version
    }

    pub fn set_default(&mut self, name: &str, version: u64) -> Result<(), Refusal> {
        let entry = self.models.get_mut(name).ok_or_else(|| Refusal::not_found(format!("unknown model {name:?}")))?;
        if !entry.versions.contains_key(&version) {
            return Err(Refusal::not_found(format!("model {name:?} has no version {version}")));
        }
        entry.default = Some(version);
        Ok(())
    }

    /// Deletes a version. The default cannot be deleted: roll back first.
    pub fn delete(&mut self, name: &str, version: u64) -> Result<(), Refusal> {
        let entry = self.models.get_mut(name).ok_or_else(|| Refusal::not_found(format!("unknown model {name:?}")))?;
        if !entry.versions.contains_key(&version) {
            return Err(Refusal::not_found(format!("model {name:?} has no version {version}")));
        }
        if entry.default == Some(version) {
            return Err(Refusal::conflict(format!(
                "version {version} is the default of {name:?}; make another version the default first"
            )));
        }
        entry.versions.remove(&version);
        Ok(())
    }

    /// The version a request for `name` (optionally pinned) runs on.
    pub fn resolve(&self, name: &str, version: Option<u64>) -> Result<u64, String> {
        let entry = self.models.get(name).ok_or_else(|| format!("unknown model {name:?}"))?;
        match version {
            Some(v) if entry.versions.contains_key(&v) => Ok(v),
            Some(v) => Err(format!("model {name:?} has no version {v}")),
            None => entry.default.ok_or_else(|| format!("model {name:?} has no default version")),
        }
    }

    pub fn default_of(&self, name: &str) -> Option<u64> {
        self.models.get(name).and_then(|e| e.default)
    }

    /// Every (name, version) pair, in order.
    pub fn versions(&self) -> impl Iterator<Item = (&str, u64, &VersionRecord)> {
        self.models.iter().flat_map(|(n, e)| e.versions.iter().map(move |(v, r)| (n.as_str(), *v, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_number_versions_and_move_the_default() {
        let mut c = Catalog::default();
        assert_eq!(c.resolve(ECHO_MODEL, None), Ok(1));
        assert_eq!(c.next_version("m"), 1);
        assert_eq!(c.upload("m", "a".into(), vec![1], 0, 5), 1);
        assert_eq!(c.next_version("m"), 2);
        assert_eq!(c.upload("m", "b".into(), vec![2], 0, 6), 2);
        assert_eq!(c.resolve("m", None), Ok(2));
        assert_eq!(c.resolve("m", Some(1)), Ok(1));
        assert!(c.delete("m", 2).is_err(), "the default cannot be deleted");
        c.set_default("m", 1).unwrap();
        c.delete("m", 2).unwrap();
        assert!(c.resolve("m", Some(2)).is_err());
        assert_eq!(c.upload("m", "c".into(), vec![3], 0, 7), 3, "numbers are never reused");
        assert!(c.resolve("nope", None).is_err());
    }

    #[test]
    fn chunks_assemble_in_order_and_abandoned_uploads_expire() {
        let mut c = Catalog::default();
        c.stage_chunk(7, 0, vec![1, 2], 1_000).unwrap();
        assert!(c.stage_chunk(7, 2, vec![9], 1_000).is_err(), "a gap is refused");
        c.stage_chunk(7, 1, vec![3], 1_000).unwrap();
        assert!(c.take_staged(7, 3).is_err(), "wrong chunk count");
        c.stage_chunk(8, 0, vec![1], 1_000).unwrap();
        c.stage_chunk(8, 1, vec![2], 1_000).unwrap();
        assert_eq!(c.take_staged(8, 2).unwrap(), vec![1, 2]);
        c.stage_chunk(9, 0, vec![1], 1_000).unwrap();
        c.stage_chunk(10, 0, vec![1], 1_000 + STAGED_UPLOAD_TTL_MS + 1).unwrap();
        assert!(!c.staged.contains_key(&9), "an abandoned upload is dropped by age");
    }
}
