//! The shared directory: what workers read and write, and the logs.
//!
//! ```text
//! <shared>/jobs/J/data/train.csv        the job's training rows
//! <shared>/jobs/J/data/val.csv          its validation rows
//! <shared>/jobs/J/trials/T-aA/          trial T's output, attempt A
//!                                       (model.onnx, score.json)
//! <shared>/logs/jobs/J/trials/T.log     trial T's messages and metrics
//! <shared>/logs/nodes/node-N.log        node N's own log
//! ```
//!
//! Every host of a multi-host cluster mounts the same directory (NFS), so
//! whichever node leads finds the data, outputs and logs of the others.
//! Files that a reader could see half-written are written to a temporary
//! name and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Fraction of the training rows held out when a job names no validation
/// dataset.
pub const HOLD_OUT: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct SharedDir {
    root: PathBuf,
}

impl SharedDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn job_data(job: u64) -> PathBuf {
        PathBuf::from(format!("jobs/{job}/data"))
    }

    /// Relative path of a trial attempt's output directory.
    pub fn trial_output(job: u64, trial: u32, attempt: u32) -> PathBuf {
        PathBuf::from(format!("jobs/{job}/trials/{trial}-a{attempt}"))
    }

    pub fn trial_log(&self, job: u64, trial: u32) -> PathBuf {
        self.root.join(format!("logs/jobs/{job}/trials/{trial}.log"))
    }

    pub fn node_log(&self, node: u64) -> PathBuf {
        self.root.join(format!("logs/nodes/node-{node}.log"))
    }

    pub fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes the job's `train.csv` and `val.csv` unless they exist: the
    /// validation file as given, or a seeded fifth of the training rows
    /// (then left out of `train.csv`).
    pub fn materialise(&self, job: u64, seed: u64, train: &[u8], val: Option<&[u8]>) -> std::io::Result<()> {
        let dir = self.abs(&Self::job_data(job));
        if dir.join("train.csv").exists() && dir.join("val.csv").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        let (train, val) = match val {
            Some(val) => (train.to_vec(), val.to_vec()),
            None => split(train, seed),
        };
        // val.csv last: train.csv alone never counts as materialised.
        write_atomic(&dir.join("train.csv"), &train)?;
        write_atomic(&dir.join("val.csv"), &val)
    }
}

/// Splits a CSV (header kept in both) into training and held-out rows, by a
/// shuffle seeded with the job's seed.
fn split(csv: &[u8], seed: u64) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8_lossy(csv);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default();
    let mut rows: Vec<&str> = lines.collect();
    rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    // At least one row on each side when there are two.
    let held = ((rows.len() as f64 * HOLD_OUT).round() as usize).max(1).min(rows.len().saturating_sub(1));
    let join = |part: &[&str]| {
        let mut out = String::with_capacity(header.len() + part.iter().map(|r| r.len() + 1).sum::<usize>());
        out.push_str(header);
        out.push('\n');
        for r in part {
            out.push_str(r);
            out.push('\n');
        }
        out.into_bytes()
    };
    (join(&rows[held..]), join(&rows[..held]))
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_out_fifth_is_disjoint_and_repeatable() {
        let mut csv = String::from("a,b,target\n");
        for i in 0..100 {
            csv.push_str(&format!("{i},{},{}\n", i * 2, i % 3));
        }
        let (train, val) = split(csv.as_bytes(), 7);
        let (t, v) = (String::from_utf8(train).unwrap(), String::from_utf8(val).unwrap());
        assert!(t.starts_with("a,b,target\n") && v.starts_with("a,b,target\n"));
        assert_eq!((t.lines().count(), v.lines().count()), (81, 21));
        let rows = |s: &str| s.lines().skip(1).map(String::from).collect::<std::collections::BTreeSet<_>>();
        assert!(rows(&t).is_disjoint(&rows(&v)));
        assert_eq!(split(csv.as_bytes(), 7).1, v.into_bytes(), "the same seed holds out the same rows");
    }

    #[test]
    fn materialising_twice_keeps_the_first_split() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedDir::new(dir.path().to_path_buf());
        shared.materialise(3, 1, b"x,target\n1,0\n2,1\n3,0\n4,1\n5,0\n", None).unwrap();
        let first = std::fs::read(dir.path().join("jobs/3/data/val.csv")).unwrap();
        shared.materialise(3, 2, b"x,target\n9,9\n", None).unwrap();
        assert_eq!(std::fs::read(dir.path().join("jobs/3/data/val.csv")).unwrap(), first);
    }
}
