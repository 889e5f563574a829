//! The replicated model catalog: which models and versions exist, their
//! files, and which version is each model's default.
//!
//! Pure data, changed only by applying log entries, so that every replica
//! switches default versions at the same log index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub models: BTreeMap<String, ModelEntry>,
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
        let entry = ModelEntry {
            versions: BTreeMap::from([(1, echo)]),
            default: Some(1),
            next_version: 2,
        };
        Self {
            models: BTreeMap::from([(ECHO_MODEL.to_string(), entry)]),
        }
    }
}

impl Catalog {
    /// Adds a version, makes it the default and returns its number.
    pub fn upload(
        &mut self,
        name: &str,
        sha256: String,
        bytes: Vec<u8>,
        uploaded_at_ms: u64,
        index: u64,
    ) -> u64 {
        let entry = self
            .models
            .entry(name.to_string())
            .or_insert_with(|| ModelEntry {
                versions: BTreeMap::new(),
                default: None,
                next_version: 1,
            });
        let version = entry.next_version;
        entry.next_version += 1;
        let record = VersionRecord {
            sha256,
            size_bytes: bytes.len() as u64,
            uploaded_at_ms,
            index,
            builtin: false,
            bytes,
        };
        entry.versions.insert(version, record);
        entry.default = Some(version);
        version
    }

    pub fn set_default(&mut self, name: &str, version: u64) -> Result<(), String> {
        let entry = self
            .models
            .get_mut(name)
            .ok_or_else(|| format!("unknown model {name:?}"))?;
        if !entry.versions.contains_key(&version) {
            return Err(format!("model {name:?} has no version {version}"));
        }
        entry.default = Some(version);
        Ok(())
    }

    /// Deletes a version. The default cannot be deleted: roll back first.
    pub fn delete(&mut self, name: &str, version: u64) -> Result<(), String> {
        let entry = self
            .models
            .get_mut(name)
            .ok_or_else(|| format!("unknown model {name:?}"))?;
        if !entry.versions.contains_key(&version) {
            return Err(format!("model {name:?} has no version {version}"));
        }
        if entry.default == Some(version) {
            return Err(format!("version {version} is the default of {name:?}; make another version the default first"));
        }
        entry.versions.remove(&version);
        Ok(())
    }

    /// The version a request for `name` (optionally pinned) runs on.
    pub fn resolve(&self, name: &str, version: Option<u64>) -> Result<u64, String> {
        let entry = self
            .models
            .get(name)
            .ok_or_else(|| format!("unknown model {name:?}"))?;
        match version {
            Some(v) if entry.versions.contains_key(&v) => Ok(v),
            Some(v) => Err(format!("model {name:?} has no version {v}")),
            None => entry
                .default
                .ok_or_else(|| format!("model {name:?} has no default version")),
        }
    }

    pub fn default_of(&self, name: &str) -> Option<u64> {
        self.models.get(name).and_then(|e| e.default)
    }

    /// Every (name, version) pair, in order.
    pub fn versions(&self) -> impl Iterator<Item = (&str, u64, &VersionRecord)> {
        self.models
            .iter()
            .flat_map(|(n, e)| e.versions.iter().map(move |(v, r)| (n.as_str(), *v, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_number_versions_and_move_the_default() {
        let mut c = Catalog::default();
        assert_eq!(c.resolve(ECHO_MODEL, None), Ok(1));
        assert_eq!(c.upload("m", "a".into(), vec![1], 0, 5), 1);
        assert_eq!(c.upload("m", "b".into(), vec![2], 0, 6), 2);
        assert_eq!(c.resolve("m", None), Ok(2));
        assert_eq!(c.resolve("m", Some(1)), Ok(1));
        assert!(c.delete("m", 2).is_err(), "the default cannot be deleted");
        c.set_default("m", 1).unwrap();
        c.delete("m", 2).unwrap();
        assert!(c.resolve("m", Some(2)).is_err());
        assert_eq!(
            c.upload("m", "c".into(), vec![3], 0, 7),
            3,
            "numbers are never reused"
        );
        assert!(c.resolve("nope", None).is_err());
    }
}
