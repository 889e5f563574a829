//! Validation of an uploaded CSV dataset: a header row, a rectangular
//! body, numeric features, and a target column that suits the task.
//!
//! Errors name the line (1-based, the header being line 1) so that a user
//! can fix the file; nothing is committed for a file that fails.

use std::collections::{BTreeMap, HashSet};

use boat_raft::{ColumnKind, DatasetColumn, DatasetTask};

/// What validation learned about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSummary {
    pub columns: Vec<DatasetColumn>,
    pub target: String,
    pub rows: u64,
    pub class_counts: BTreeMap<String, u64>,
}

/// Validates `bytes` as a dataset for `task` whose target column is
/// `target` (the last column when `None`).
pub fn check(bytes: &[u8], task: DatasetTask, target: Option<&str>) -> Result<CsvSummary, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("the file is not UTF-8 text (byte {})", e.valid_up_to()))?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    let (_, header) = lines.find(|(_, l)| !l.trim().is_empty()).ok_or("the file is empty")?;
    let names: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(format!("line 1: column {} has no name", i + 1));
    }
    let mut unique = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !unique.insert(n.as_str())) {
        return Err(format!("line 1: column {dup:?} appears twice"));
    }
    if names.len() < 2 {
        return Err("line 1: a dataset needs at least one feature column and a target column".into());
    }
    let target_at = match target {
        None => names.len() - 1,
        Some(t) => names
            .iter()
            .position(|n| n == t)
            .ok_or_else(|| format!("line 1: there is no target column {t:?}; the columns are {}", names.join(", ")))?,
    };
    let mut rows = 0u64;
    let mut class_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut target_numeric = true;
    for (line, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(format!("line {line}: {} values, but the header has {} columns", cells.len(), names.len()));
        }
        for (i, cell) in cells.iter().enumerate() {
            let numeric = cell.parse::<f64>().is_ok_and(f64::is_finite);
            if i == target_at {
                if cell.is_empty() {
                    return Err(format!("line {line}: the target {:?} is empty", names[i]));
                }
                target_numeric &= numeric;
                if task == DatasetTask::Classification {
                    *class_counts.entry(cell.to_string()).or_default() += 1;
                } else if !numeric {
                    return Err(format!("line {line}: the regression target {:?} is {cell:?}, not a number", names[i]));
                }
            } else if !numeric {
                return Err(format!("line {line}: feature {:?} is {cell:?}, not a finite number", names[i]));
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err("the file has a header but no rows".into());
    }
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, n)| DatasetColumn {
            name: n.clone(),
            kind: if i == target_at && !target_numeric { ColumnKind::Categorical } else { ColumnKind::Numeric },
        })
        .collect();
    Ok(CsvSummary { columns, target: names[target_at].clone(), rows, class_counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: DatasetTask = DatasetTask::Classification;

    #[test]
    fn a_good_file_is_summarised() {
        let s = check(b"a,b,label\n1,2.5,x\n3,-4e2,y\n5,6,x\n", C, None).unwrap();
        assert_eq!(s.rows, 3);
        assert_eq!(s.target, "label");
        assert_eq!(s.class_counts, BTreeMap::from([("x".into(), 2), ("y".into(), 1)]));
        assert_eq!(s.columns[2].kind, ColumnKind::Categorical);
        let r = check(b"t,a\n1.5,2\n", DatasetTask::Regression, Some("t")).unwrap();
        assert_eq!((r.target.as_str(), r.columns[0].kind), ("t", ColumnKind::Numeric));
    }

    #[test]
    fn each_malformed_case_names_its_line() {
        let err = |bytes: &[u8], task, target| check(bytes, task, target).unwrap_err();
        assert!(err(b"", C, None).contains("empty"));
        assert!(err(b"a,b\n", C, None).contains("no rows"));
        assert!(err(b"a,b\n1,2\n3\n", C, None).starts_with("line 3:"), "ragged row");
        assert!(err(b"a,b\n1,2\nx,2\n", C, None).starts_with("line 3: feature \"a\""), "non-numeric feature");
        assert!(err(b"a,b\n1,2\n", C, Some("c")).contains("no target column \"c\""));
        assert!(err(b"a,b\n1,x\n", DatasetTask::Regression, None).starts_with("line 2:"));
        assert!(err(b"a,a\n1,2\n", C, None).contains("twice"));
        assert!(err(b"a,b\n1,NaN\n", DatasetTask::Regression, None).starts_with("line 2:"));
    }
}
