//! The replicated model catalog: which models and versions exist, their
//! files, and which version is each model's default.
//!
//! Pure data, changed only by applying log entries, so that every replica
//! switches default versions at the same log index. Model files are not
//! held here: a version names its file by SHA-256 in the node's blob store,
//! and a staged upload lists the hashes of the chunks received so far.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::executor::ECHO_MODEL;
use crate::domains::Refusal;

/// One stored version of a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Hex SHA-256 of the ONNX file, which is also its blob name.
    pub sha256: String,
    pub size_bytes: u64,
    pub uploaded_at_ms: u64,
    /// Log index of the upload.
    pub index: u64,
    /// Compiled into the binary (the echo model); no blob holds it.
    pub builtin: bool,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StagedUpload {
    pub started_at_ms: u64,
    /// Blob hash of each chunk, in order.
    pub chunks: Vec<String>,
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
            sha256: super::command::sha256_hex(boat_serving::ECHO_ONNX),
            size_bytes: boat_serving::ECHO_ONNX.len() as u64,
            uploaded_at_ms: 0,
            index: 0,
            builtin: true,
        };
        let entry = ModelEntry { versions: BTreeMap::from([(1, echo)]), default: Some(1), next_version: 2 };
        Self { models: BTreeMap::from([(ECHO_MODEL.to_string(), entry)]), staged: BTreeMap::new() }
    }
}

impl Catalog {
    /// Stages the next chunk of an upload and drops abandoned uploads.
    pub fn stage_chunk(&mut self, upload_id: u64, seq: u32, chunk_sha: String, at_ms: u64) -> Result<(), String> {
        let horizon = at_ms.saturating_sub(STAGED_UPLOAD_TTL_MS);
        self.staged.retain(|_, s| s.started_at_ms >= horizon);
        let staged =
            self.staged.entry(upload_id).or_insert_with(|| StagedUpload { started_at_ms: at_ms, chunks: Vec::new() });
        if staged.chunks.len() != seq as usize {
            return Err(format!("upload {upload_id}: chunk {seq} arrived after {} chunks", staged.chunks.len()));
        }
        staged.chunks.push(chunk_sha);
        Ok(())
    }

    /// Removes a staged upload and returns its chunks' hashes, if it has
    /// exactly `chunks` chunks.
    pub fn take_staged(&mut self, upload_id: u64, chunks: u32) -> Result<Vec<String>, String> {
        let staged =
            self.staged.remove(&upload_id).ok_or_else(|| format!("upload {upload_id} has no staged chunks"))?;
        if staged.chunks.len() != chunks as usize {
            return Err(format!("upload {upload_id} has {} chunks, expected {chunks}", staged.chunks.len()));
        }
        Ok(staged.chunks)
    }

    /// The number the next upload of `name` will get.
    pub fn next_version(&self, name: &str) -> u64 {
        self.models.get(name).map_or(1, |e| e.next_version)
    }

    /// Adds a version, makes it the default and returns its number.
    pub fn upload(&mut self, name: &str, sha256: String, size_bytes: u64, uploaded_at_ms: u64, index: u64) -> u64 {
        let entry = self.models.entry(name.to_string()).or_insert_with(|| ModelEntry {
            versions: BTreeMap::new(),
            default: None,
            next_version: 1,
        });
        let version = entry.next_version;
        entry.next_version += 1;
        let record = VersionRecord { sha256, size_bytes, uploaded_at_ms, index, builtin: false };
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

    /// Blobs this catalog refers to: every stored version's file and every
    /// staged chunk.
    pub fn blob_refs(&self) -> BTreeSet<String> {
        let files = self.versions().filter(|(_, _, r)| !r.builtin).map(|(_, _, r)| r.sha256.clone());
        let chunks = self.staged.values().flat_map(|s| s.chunks.iter().cloned());
        files.chain(chunks).collect()
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
        assert_eq!(c.upload("m", "a".into(), 1, 0, 5), 1);
        assert_eq!(c.next_version("m"), 2);
        assert_eq!(c.upload("m", "b".into(), 1, 0, 6), 2);
        assert_eq!(c.resolve("m", None), Ok(2));
        assert_eq!(c.resolve("m", Some(1)), Ok(1));
        assert!(c.delete("m", 2).is_err(), "the default cannot be deleted");
        c.set_default("m", 1).unwrap();
        c.delete("m", 2).unwrap();
        assert!(c.resolve("m", Some(2)).is_err());
        assert_eq!(c.upload("m", "c".into(), 1, 0, 7), 3, "numbers are never reused");
        assert!(c.resolve("nope", None).is_err());
    }

    #[test]
    fn chunks_stage_in_order_and_abandoned_uploads_expire() {
        let mut c = Catalog::default();
        let h = |s: &str| s.to_string();
        c.stage_chunk(7, 0, h("a"), 1_000).unwrap();
        assert!(c.stage_chunk(7, 2, h("z"), 1_000).is_err(), "a gap is refused");
        c.stage_chunk(7, 1, h("b"), 1_000).unwrap();
        assert!(c.take_staged(7, 3).is_err(), "wrong chunk count");
        c.stage_chunk(8, 0, h("a"), 1_000).unwrap();
        c.stage_chunk(8, 1, h("c"), 1_000).unwrap();
        assert!(c.blob_refs().contains("c"), "staged chunks are referenced");
        assert_eq!(c.take_staged(8, 2).unwrap(), vec![h("a"), h("c")]);
        assert!(!c.blob_refs().contains("c"));
        c.stage_chunk(9, 0, h("d"), 1_000).unwrap();
        c.stage_chunk(10, 0, h("e"), 1_000 + STAGED_UPLOAD_TTL_MS + 1).unwrap();
        assert!(!c.staged.contains_key(&9), "an abandoned upload is dropped by age");
    }
}
