//! Tabular datasets: a CSV file read into a dense `f32` feature matrix and
//! its targets.
//!
//! The format is the one the shipped datasets use: a header row, then one row
//! per example, comma separated, no quoting, every feature numeric. One
//! column, named by the caller, is the target; every other column is a
//! feature, in file order. Blank lines are skipped; surrounding spaces of a
//! cell are ignored.
//!
//! For classification the target is a class label, kept as text: the sorted
//! distinct labels of the training file are the classes ([`Dataset::classes`],
//! in numeric order when every label is a number, else in text order) and each
//! row holds the index of its class. For regression the target is a number.
//!
//! A validation file is read against its training file
//! ([`Dataset::load_validation`]): same columns in the same order, and for
//! classification only classes the training file has, so both share class
//! indices.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::templates::Task;

/// Why a dataset could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path} has no rows: it needs a header and at least one data row")]
    Empty { path: PathBuf },
    #[error("{path} has no target column '{column}' (columns: {columns})")]
    MissingTarget { path: PathBuf, column: String, columns: String },
    #[error("{path} has no feature columns besides the target '{column}'")]
    NoFeatures { path: PathBuf, column: String },
    #[error("{path} names column '{column}' twice")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{path} line {line}: {found} cells, but the header has {expected}")]
    Ragged { path: PathBuf, line: usize, expected: usize, found: usize },
    #[error("{path} line {line}, column '{column}': '{value}' is not a finite number")]
    NotNumeric { path: PathBuf, line: usize, column: String, value: String },
    #[error("{path} line {line}: the target '{column}' is empty")]
    EmptyLabel { path: PathBuf, line: usize, column: String },
    #[error("{path}: its columns differ from the training file's: {detail}")]
    ColumnsDiffer { path: PathBuf, detail: String },
    #[error("{path} line {line}: class '{label}' does not occur in the training file")]
    UnknownClass { path: PathBuf, line: usize, label: String },
}

/// Per-feature mean and standard deviation, from a training set. A feature
/// whose values are all equal gets a standard deviation of 1, so it
/// standardises to 0 instead of dividing by zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardizer {
    /// `(x - mean) / std`, row by row, for a row-major matrix of
    /// `mean.len()` columns.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let n = self.mean.len();
        x.iter().enumerate().map(|(i, v)| (v - self.mean[i % n]) / self.std[i % n]).collect()
    }
}

/// One dataset held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Feature column names, in file order (the target left out).
    pub features: Vec<String>,
    /// The target column's name.
    pub target_column: String,
    pub task: Task,
    /// Row-major features: `rows() * n_features()` values.
    pub x: Vec<f32>,
    /// Regression targets, one per row; empty for classification.
    pub y: Vec<f32>,
    /// Classification: the classes, sorted (see the module docs); empty for
    /// regression.
    pub classes: Vec<String>,
    /// Classification: each row's index into `classes`; empty for regression.
    pub class_index: Vec<u32>,
}

/// The cells of a file: header and data rows, with their line numbers.
struct Table {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn read(path: &Path) -> Result<Table, DataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DataError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty());
        let empty = || DataError::Empty { path: path.to_path_buf() };
        let (_, header) = lines.next().ok_or_else(empty)?;
        let header: Vec<String> = split(header).map(str::to_string).collect();
        let mut seen = BTreeSet::new();
        for name in &header {
            if !seen.insert(name.as_str()) {
                return Err(DataError::DuplicateColumn { path: path.to_path_buf(), column: name.clone() });
            }
        }
        let mut rows = Vec::new();
        for (line, text) in lines {
            let cells: Vec<String> = split(text).map(str::to_string).collect();
            if cells.len() != header.len() {
                return Err(DataError::Ragged {
                    path: path.to_path_buf(),
                    line,
                    expected: header.len(),
                    found: cells.len(),
                });
            }
            rows.push((line, cells));
        }
        if rows.is_empty() {
            return Err(empty());
        }
        Ok(Table { path: path.to_path_buf(), header, rows })
    }

    fn target_position(&self, column: &str) -> Result<usize, DataError> {
        self.header.iter().position(|h| h == column).ok_or_else(|| DataError::MissingTarget {
            path: self.path.clone(),
            column: column.to_string(),
            columns: self.header.join(", "),
        })
    }
}

fn split(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(str::trim)
}

fn number(path: &Path, line: usize, column: &str, cell: &str) -> Result<f32, DataError> {
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(DataError::NotNumeric {
            path: path.to_path_buf(),
            line,
            column: column.to_string(),
            value: cell.to_string(),
        }),
    }
}

/// Orders class labels: numerically when both are numbers, numbers before
/// text otherwise, and text by its bytes.
fn label_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Dataset {
    /// Reads a training file.
    pub fn load(path: impl AsRef<Path>, target_column: &str, task: Task) -> Result<Dataset, DataError> {
        let table = Table::read(path.as_ref())?;
        let target = table.target_position(target_column)?;
        let classes = match task {
            Task::Classification => {
                let mut labels: Vec<String> = Vec::new();
                for (line, cells) in &table.rows {
                    let label = &cells[target];
                    if label.is_empty() {
                        return Err(DataError::EmptyLabel {
                            path: table.path.clone(),
                            line: *line,
                            column: target_column.to_string(),
                        });
                    }
                    labels.push(label.clone());
                }
                labels.sort_by(|a, b| label_order(a, b));
                labels.dedup();
                labels
            }
            Task::Regression => Vec::new(),
        };
        Dataset::from_table(table, target, task, classes)
    }

    /// Reads a validation (or test) file against the training set `train`:
    /// the same columns in the same order, the same target and task, and for
    /// classification only the training set's classes.
    pub fn load_validation(path: impl AsRef<Path>, train: &Dataset) -> Result<Dataset, DataError> {
        let table = Table::read(path.as_ref())?;
        let target = table.target_position(&train.target_column)?;
        let features: Vec<&String> =
            table.header.iter().enumerate().filter(|(i, _)| *i != target).map(|(_, h)| h).collect();
        if features.len() != train.features.len() || features.iter().zip(&train.features).any(|(a, b)| *a != b) {
            let missing: Vec<&str> =
                train.features.iter().filter(|f| !features.contains(f)).map(String::as_str).collect();
            let extra: Vec<&str> =
                features.iter().filter(|f| !train.features.contains(f)).map(|f| f.as_str()).collect();
            let detail = if missing.is_empty() && extra.is_empty() {
                "the same features in another order".to_string()
            } else {
                format!("missing [{}], extra [{}]", missing.join(", "), extra.join(", "))
            };
            return Err(DataError::ColumnsDiffer { path: table.path, detail });
        }
        Dataset::from_table(table, target, train.task, train.classes.clone())
    }

    fn from_table(table: Table, target: usize, task: Task, classes: Vec<String>) -> Result<Dataset, DataError> {
        let target_column = table.header[target].clone();
        let features: Vec<String> =
            table.header.iter().enumerate().filter(|(i, _)| *i != target).map(|(_, h)| h.clone()).collect();
        if features.is_empty() {
            return Err(DataError::NoFeatures { path: table.path, column: target_column });
        }
        let mut x = Vec::with_capacity(table.rows.len() * features.len());
        let mut y = Vec::new();
        let mut class_index = Vec::new();
        for (line, cells) in &table.rows {
            for (i, cell) in cells.iter().enumerate() {
                if i != target {
                    x.push(number(&table.path, *line, &table.header[i], cell)?);
                }
            }
            let label = &cells[target];
            match task {
                Task::Regression => y.push(number(&table.path, *line, &target_column, label)?),
                Task::Classification => {
                    let Some(k) = classes.iter().position(|c| c == label) else {
                        return Err(if label.is_empty() {
                            DataError::EmptyLabel { path: table.path.clone(), line: *line, column: target_column }
                        } else {
                            DataError::UnknownClass { path: table.path.clone(), line: *line, label: label.clone() }
                        });
                    };
                    class_index.push(k as u32);
                }
            }
        }
        Ok(Dataset { features, target_column, task, x, y, classes, class_index })
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    pub fn rows(&self) -> usize {
        self.x.len() / self.features.len().max(1)
    }

    /// One row's features.
    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.n_features();
        &self.x[i * n..(i + 1) * n]
    }

    /// Mean and standard deviation (population) of every feature.
    pub fn standardizer(&self) -> Standardizer {
        let n = self.n_features();
        let rows = self.rows().max(1) as f64;
        let mut mean = vec![0f64; n];
        for (i, v) in self.x.iter().enumerate() {
            mean[i % n] += *v as f64;
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        let mut var = vec![0f64; n];
        for (i, v) in self.x.iter().enumerate() {
            let d = *v as f64 - mean[i % n];
            var[i % n] += d * d;
        }
        let std = var
            .iter()
            .map(|v| {
                let s = (v / rows).sqrt() as f32;
                if s > 1e-12 && s.is_finite() {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_classification_with_sorted_classes() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "t.csv", "a,target,b\n1,10,2\n3,2,4\n\n5,10,6\n7,9,8\n");
        let d = Dataset::load(&p, "target", Task::Classification).unwrap();
        assert_eq!(d.features, ["a", "b"]);
        assert_eq!(d.rows(), 4);
        assert_eq!(d.row(1), &[3.0, 4.0]);
        // Numeric order, not text order ("10" < "2" as text).
        assert_eq!(d.classes, ["2", "9", "10"]);
        assert_eq!(d.class_index, [2, 0, 2, 1]);
        assert!(d.y.is_empty());
    }

    #[test]
    fn standardizer_guards_constant_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "t.csv", "a,b,y\n1,5,0.5\n3,5,1.5\n");
        let d = Dataset::load(&p, "y", Task::Regression).unwrap();
        assert_eq!(d.y, [0.5, 1.5]);
        let s = d.standardizer();
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]);
        assert_eq!(s.apply(&d.x), [-1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn faults_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| Dataset::load(file(&dir, "t.csv", text), "y", Task::Regression).unwrap_err();
        assert!(matches!(load(""), DataError::Empty { .. }));
        assert!(matches!(load("a,y\n"), DataError::Empty { .. }));
        assert!(matches!(load("a,b\n1,2\n"), DataError::MissingTarget { column, .. } if column == "y"));
        assert!(matches!(load("a,y\n1,2\n3\n"), DataError::Ragged { line: 3, expected: 2, found: 1, .. }));
        assert!(
            matches!(load("a,y\n1,2\nx,3\n"), DataError::NotNumeric { line: 3, column, value, .. } if column == "a" && value == "x")
        );
        assert!(matches!(load("a,y\nnan,1\n"), DataError::NotNumeric { .. }));
        assert!(matches!(load("y\n1\n"), DataError::NoFeatures { .. }));
        assert!(matches!(load("a,a,y\n1,2,3\n"), DataError::DuplicateColumn { .. }));
        let missing = Dataset::load(dir.path().join("nope.csv"), "y", Task::Regression).unwrap_err();
        assert!(matches!(missing, DataError::Io { .. }));
    }

    #[test]
    fn validation_must_match_training() {
        let dir = tempfile::tempdir().unwrap();
        let train = Dataset::load(file(&dir, "t.csv", "a,b,y\n1,2,0\n3,4,1\n"), "y", Task::Classification).unwrap();
        let val = Dataset::load_validation(file(&dir, "v.csv", "a,b,y\n5,6,1\n"), &train).unwrap();
        assert_eq!(val.class_index, [1]);
        assert_eq!(val.classes, train.classes);
        let err = Dataset::load_validation(file(&dir, "v.csv", "a,c,y\n5,6,1\n"), &train).unwrap_err();
        assert!(matches!(err, DataError::ColumnsDiffer { ref detail, .. } if detail.contains("missing [b]")), "{err}");
        let err = Dataset::load_validation(file(&dir, "v.csv", "b,a,y\n5,6,1\n"), &train).unwrap_err();
        assert!(matches!(err, DataError::ColumnsDiffer { .. }));
        let err = Dataset::load_validation(file(&dir, "v.csv", "a,b,y\n5,6,7\n"), &train).unwrap_err();
        assert!(matches!(err, DataError::UnknownClass { ref label, .. } if label == "7"));
        let err = Dataset::load_validation(file(&dir, "v.csv", "a,b\n5,6\n"), &train).unwrap_err();
        assert!(matches!(err, DataError::MissingTarget { .. }));
    }
}
