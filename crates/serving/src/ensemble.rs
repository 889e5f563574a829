//! Combining the outputs of several models run on the same input: the
//! ensemble rules of an app.
//!
//! Every rule is a pure function of the members' outputs, taken in member
//! order and computed in `f64`, so every replica combines identically.
//!
//! What a member must produce:
//! - class **probabilities**: a float tensor `[N, k]` (sklearn with ZipMap
//!   off: `probabilities`), or the JSON form of a sequence of maps, one
//!   `{label: probability}` object per row (ZipMap on:
//!   `output_probability`); map keys that are all integers are ordered
//!   numerically, otherwise as strings;
//! - a **label**: an integer or string tensor `[N]` whose name contains
//!   `label` (or the only such tensor);
//! - a **value** (regressors): the first float tensor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::output::Output;
use crate::tensor::{Tensor, TensorData};

/// How an app combines its members' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnsembleRule {
    /// Mean of the class probabilities; the label is the most probable class.
    MeanProbabilities,
    /// The label most members chose; a tie goes to the label chosen by the
    /// earliest member among the tied.
    MajorityVote,
    /// Mean of the members' values (regressors).
    Mean,
    /// The first member's outputs, unchanged.
    First,
}

impl EnsembleRule {
    pub const ALL: [EnsembleRule; 4] =
        [EnsembleRule::MeanProbabilities, EnsembleRule::MajorityVote, EnsembleRule::Mean, EnsembleRule::First];

    pub fn as_str(self) -> &'static str {
        match self {
            EnsembleRule::MeanProbabilities => "mean_probabilities",
            EnsembleRule::MajorityVote => "majority_vote",
            EnsembleRule::Mean => "mean",
            EnsembleRule::First => "first",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Combines one request's outputs from each member (in member order).
pub fn combine(rule: EnsembleRule, members: &[Vec<Output>]) -> Result<Vec<Output>, String> {
    if members.is_empty() {
        return Err("an ensemble needs at least one member".into());
    }
    match rule {
        EnsembleRule::First => Ok(members[0].clone()),
        EnsembleRule::MeanProbabilities => mean_probabilities(members),
        EnsembleRule::MajorityVote => majority_vote(members),
        EnsembleRule::Mean => mean_values(members),
    }
}

/// Class probabilities of one member: the class labels (as JSON values,
/// in column order) and one row of probabilities per input row.
struct Probabilities {
    classes: Option<Vec<Value>>,
    rows: Vec<Vec<f64>>,
}

fn floats(data: &TensorData) -> Option<Vec<f64>> {
    Some(match data {
        TensorData::Fp32(v) => v.iter().map(|x| *x as f64).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Fp16(v) => v.iter().map(|x| x.to_f64()).collect(),
        _ => return None,
    })
}

fn probabilities(outputs: &[Output], member: usize) -> Result<Probabilities, String> {
    for o in outputs {
        match o {
            Output::Tensor(t) if t.shape().len() == 2 => {
                let Some(flat) = floats(t.data()) else { continue };
                let k = t.shape()[1].max(1) as usize;
                return Ok(Probabilities { classes: None, rows: flat.chunks(k).map(<[f64]>::to_vec).collect() });
            }
            Output::Json { data, .. } if data.iter().all(Value::is_object) && !data.is_empty() => {
                return json_probabilities(data, member);
            }
            _ => {}
        }
    }
    Err(format!("member {member} has no class probabilities (a float [N, k] tensor or a sequence of maps)"))
}

fn json_probabilities(data: &[Value], member: usize) -> Result<Probabilities, String> {
    let first = data[0].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let numeric: Option<Vec<i64>> = first.iter().map(|k| k.parse::<i64>().ok()).collect();
    let keys: Vec<String> = match numeric {
        Some(mut n) => {
            n.sort_unstable();
            n.iter().map(i64::to_string).collect()
        }
        None => {
            let mut k = first.clone();
            k.sort();
            k
        }
    };
    let classes =
        keys.iter().map(|k| k.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(k.clone()))).collect();
    let rows = data
        .iter()
        .map(|row| {
            keys.iter()
                .map(|k| {
                    row.get(k).and_then(Value::as_f64).ok_or_else(|| format!("member {member}: class {k} missing"))
                })
                .collect::<Result<Vec<f64>, String>>()
        })
        .collect::<Result<_, _>>()?;
    Ok(Probabilities { classes: Some(classes), rows })
}

fn mean_probabilities(members: &[Vec<Output>]) -> Result<Vec<Output>, String> {
    let all: Vec<Probabilities> =
        members.iter().enumerate().map(|(i, o)| probabilities(o, i)).collect::<Result<_, _>>()?;
    let (rows, k) = (all[0].rows.len(), all[0].rows.first().map_or(0, Vec::len));
    if let Some((i, _)) =
        all.iter().enumerate().find(|(_, p)| p.rows.len() != rows || p.rows.iter().any(|r| r.len() != k))
    {
        return Err(format!("member {i}'s probabilities do not have the shape [{rows}, {k}] of member 0"));
    }
    // Class labels come from the first member that names them; members
    // without names are taken to use classes 0..k in column order.
    let named = all.iter().find_map(|p| p.classes.clone());
    if let Some(names) = &named {
        if all.iter().filter_map(|p| p.classes.as_ref()).any(|c| c != names) {
            return Err("members name different classes".into());
        }
    }
    let mut mean = vec![0f64; rows * k];
    for p in &all {
        for (r, row) in p.rows.iter().enumerate() {
            for (c, x) in row.iter().enumerate() {
                mean[r * k + c] += x;
            }
        }
    }
    let n = all.len() as f64;
    mean.iter_mut().for_each(|x| *x /= n);
    let best: Vec<usize> = mean
        .chunks(k.max(1))
        .map(|row| row.iter().enumerate().fold(0, |b, (i, x)| if *x > row[b] { i } else { b }))
        .collect();
    let label = match &named {
        Some(names) if names.iter().all(Value::is_i64) => {
            TensorData::Int64(best.iter().map(|&i| names[i].as_i64().unwrap_or(i as i64)).collect())
        }
        Some(names) => TensorData::Bytes(best.iter().map(|&i| json_label(&names[i])).collect()),
        None => TensorData::Int64(best.iter().map(|&i| i as i64).collect()),
    };
    let probs = TensorData::Fp32(mean.iter().map(|x| *x as f32).collect());
    Ok(vec![
        Output::Tensor(tensor("label", vec![rows as i64], label)?),
        Output::Tensor(tensor("probabilities", vec![rows as i64, k as i64], probs)?),
    ])
}

fn json_label(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn tensor(name: &str, shape: Vec<i64>, data: TensorData) -> Result<Tensor, String> {
    Tensor::new(name, shape, data).map_err(|e| e.to_string())
}

/// A member's labels, one per row.
fn labels(outputs: &[Output], member: usize) -> Result<Vec<LabelValue>, String> {
    let as_labels = |t: &Tensor| -> Option<Vec<LabelValue>> {
        if t.shape().len() != 1 {
            return None;
        }
        Some(match t.data() {
            TensorData::Int64(v) => v.iter().map(|x| LabelValue::Int(*x)).collect(),
            TensorData::Int32(v) => v.iter().map(|x| LabelValue::Int(*x as i64)).collect(),
            TensorData::Bytes(v) => v.iter().map(|x| LabelValue::Text(x.clone())).collect(),
            _ => return None,
        })
    };
    let candidates: Vec<(&str, Vec<LabelValue>)> =
        outputs.iter().filter_map(Output::as_tensor).filter_map(|t| Some((t.name(), as_labels(t)?))).collect();
    let pick = candidates.iter().position(|(name, _)| name.contains("label")).unwrap_or(0);
    candidates
        .into_iter()
        .nth(pick)
        .map(|(_, l)| l)
        .ok_or_else(|| format!("member {member} has no label output (an integer or string tensor [N])"))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LabelValue {
    Int(i64),
    Text(String),
}

fn majority_vote(members: &[Vec<Output>]) -> Result<Vec<Output>, String> {
    let all: Vec<Vec<LabelValue>> = members.iter().enumerate().map(|(i, o)| labels(o, i)).collect::<Result<_, _>>()?;
    let rows = all[0].len();
    if let Some(i) = all.iter().position(|l| l.len() != rows) {
        return Err(format!("member {i} labelled a different number of rows than member 0"));
    }
    let mut winners = Vec::with_capacity(rows);
    for r in 0..rows {
        // label → (votes, first member that chose it)
        let mut tally: BTreeMap<&LabelValue, (usize, usize)> = BTreeMap::new();
        for (m, labels) in all.iter().enumerate() {
            let e = tally.entry(&labels[r]).or_insert((0, m));
            e.0 += 1;
        }
        let (label, _) = tally
            .into_iter()
            .max_by(|(_, (va, fa)), (_, (vb, fb))| va.cmp(vb).then(fb.cmp(fa)))
            .ok_or("no member voted")?;
        winners.push(label.clone());
    }
    let data = if winners.iter().all(|l| matches!(l, LabelValue::Int(_))) {
        TensorData::Int64(winners.iter().map(|l| if let LabelValue::Int(x) = l { *x } else { 0 }).collect())
    } else {
        TensorData::Bytes(
            winners
                .iter()
                .map(|l| match l {
                    LabelValue::Int(x) => x.to_string(),
                    LabelValue::Text(s) => s.clone(),
                })
                .collect(),
        )
    };
    Ok(vec![Output::Tensor(tensor("label", vec![rows as i64], data)?)])
}

fn mean_values(members: &[Vec<Output>]) -> Result<Vec<Output>, String> {
    let values: Vec<(&Tensor, Vec<f64>)> = members
        .iter()
        .enumerate()
        .map(|(i, outputs)| {
            outputs
                .iter()
                .filter_map(Output::as_tensor)
                .find_map(|t| floats(t.data()).map(|f| (t, f)))
                .ok_or_else(|| format!("member {i} has no float output to average"))
        })
        .collect::<Result<_, _>>()?;
    let shape = values[0].0.shape().to_vec();
    if let Some(i) = values.iter().position(|(t, _)| t.shape() != shape.as_slice()) {
        return Err(format!("member {i}'s output shape {:?} differs from member 0's {shape:?}", values[i].0.shape()));
    }
    let mut mean = vec![0f64; values[0].1.len()];
    for (_, v) in &values {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let n = values.len() as f64;
    let data = TensorData::Fp32(mean.iter().map(|x| (*x / n) as f32).collect());
    Ok(vec![Output::Tensor(tensor("output", shape, data)?)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(name: &str, shape: Vec<i64>, data: TensorData) -> Output {
        Output::Tensor(Tensor::new(name, shape, data).unwrap())
    }

    #[test]
    fn mean_of_probabilities_mixes_tensor_and_map_forms() {
        let a = vec![
            t("label", vec![2], TensorData::Int64(vec![0, 1])),
            t("probabilities", vec![2, 2], TensorData::Fp32(vec![0.9, 0.1, 0.4, 0.6])),
        ];
        let b = vec![
            t("output_label", vec![2], TensorData::Int64(vec![1, 0])),
            Output::json("output_probability", vec![json!({"0": 0.3, "1": 0.7}), json!({"1": 0.2, "0": 0.8})]),
        ];
        let out = combine(EnsembleRule::MeanProbabilities, &[a, b]).unwrap();
        let probs = out[1].as_tensor().unwrap();
        let TensorData::Fp32(p) = probs.data() else { panic!() };
        let want = [0.6f32, 0.4, 0.6, 0.4];
        assert!(p.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-6), "{p:?}");
        assert_eq!(out[0].as_tensor().unwrap().data(), &TensorData::Int64(vec![0, 0]));
    }

    #[test]
    fn majority_vote_breaks_ties_by_member_order() {
        let m = |labels: Vec<i64>| vec![t("label", vec![labels.len() as i64], TensorData::Int64(labels))];
        let out = combine(EnsembleRule::MajorityVote, &[m(vec![2, 1]), m(vec![1, 1]), m(vec![2, 0])]).unwrap();
        assert_eq!(out[0].as_tensor().unwrap().data(), &TensorData::Int64(vec![2, 1]));
        let tie = combine(EnsembleRule::MajorityVote, &[m(vec![5]), m(vec![3])]).unwrap();
        assert_eq!(tie[0].as_tensor().unwrap().data(), &TensorData::Int64(vec![5]), "the first member wins a tie");
    }

    #[test]
    fn mean_of_values_and_shape_mismatch() {
        let v = |x: Vec<f32>| vec![t("variable", vec![x.len() as i64, 1], TensorData::Fp32(x))];
        let out = combine(EnsembleRule::Mean, &[v(vec![1.0, 4.0]), v(vec![3.0, 0.0])]).unwrap();
        assert_eq!(out[0].as_tensor().unwrap().data(), &TensorData::Fp32(vec![2.0, 2.0]));
        assert!(combine(EnsembleRule::Mean, &[v(vec![1.0]), v(vec![1.0, 2.0])]).is_err());
        assert!(combine(EnsembleRule::MajorityVote, &[v(vec![1.0])]).is_err(), "no label output");
    }

    #[test]
    fn rule_names_round_trip() {
        for r in EnsembleRule::ALL {
            assert_eq!(EnsembleRule::parse(r.as_str()), Some(r));
        }
    }
}
