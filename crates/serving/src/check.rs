//! Checking a request against a model's signature and the request size limit, without
//! running anything.
//!
//! [`check_inputs`] is the single gate every request path goes through (`check`, `infer`,
//! `infer_batch`, `boat_inputs`, `predict_json`), so a request that passes it here passes it
//! again when it runs, on this node or another with the same model and limit.

use crate::error::ServingError;
use crate::model::ModelMeta;
use crate::tensor::{nominal_count, DataType, Tensor};

/// Checks `inputs` against the model and the limit, and returns them in the model's input
/// order (the form a run takes).
///
/// Rules, in order: the request's elements summed over its tensors must not exceed
/// `max_elements`, and no tensor's dimensions may multiply (zero dimensions counted as 1) past
/// it either, so an empty `[0, 2^40]` tensor cannot make a model allocate from its shape;
/// every input must name a model input, at most once, with the model's datatype, rank and
/// fixed dimensions; every model input must be given.
pub(crate) fn check_inputs(
    meta: &ModelMeta,
    inputs: Vec<Tensor>,
    max_elements: usize,
) -> Result<Vec<Tensor>, ServingError> {
    check_size(&inputs, max_elements)?;
    let expected = || {
        meta.inputs
            .iter()
            .map(|i| format!("'{}' ({} {:?})", i.name, dt_name(i.datatype), i.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut slots: Vec<Option<Tensor>> = vec![None; meta.inputs.len()];
    for t in inputs {
        let Some(idx) = meta.inputs.iter().position(|m| m.name == t.name()) else {
            return Err(ServingError::input(format!(
                "model '{}' version {} has no input '{}'; its inputs are {}",
                meta.name,
                meta.version,
                t.name(),
                expected()
            )));
        };
        let (Some(want), Some(slot)) = (meta.inputs.get(idx), slots.get_mut(idx)) else {
            return Err(ServingError::input("input index out of range"));
        };
        if slot.is_some() {
            return Err(ServingError::input(format!("input '{}' given twice", want.name)));
        }
        if want.datatype != Some(t.datatype()) {
            return Err(ServingError::input(format!(
                "input '{}' has datatype {} but the model expects {}",
                want.name,
                t.datatype(),
                dt_name(want.datatype)
            )));
        }
        let fits =
            want.shape.len() == t.shape().len() && want.shape.iter().zip(t.shape()).all(|(&w, &g)| w < 0 || w == g);
        if !fits {
            return Err(ServingError::input(format!(
                "input '{}' has shape {:?} but the model expects {:?} (-1 = any size)",
                want.name,
                t.shape(),
                want.shape
            )));
        }
        *slot = Some(t);
    }
    let missing: Vec<_> =
        meta.inputs.iter().zip(&slots).filter(|(_, s)| s.is_none()).map(|(m, _)| format!("'{}'", m.name)).collect();
    if !missing.is_empty() {
        return Err(ServingError::input(format!(
            "missing input(s) {}; model '{}' version {} takes {}",
            missing.join(", "),
            meta.name,
            meta.version,
            expected()
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// The size rules of [`check_inputs`].
fn check_size(inputs: &[Tensor], max_elements: usize) -> Result<(), ServingError> {
    let limit = max_elements as u64;
    let total = inputs.iter().fold(0u64, |acc, t| acc.saturating_add(t.data().len() as u64));
    if total > limit {
        return Err(ServingError::input(format!("the request has {total} elements, the limit is {max_elements}")));
    }
    for t in inputs {
        // Valid tensors always have a nominal count; treat "none" as over the limit.
        if nominal_count(t.shape()).is_none_or(|n| n > limit) {
            return Err(ServingError::input(format!(
                "input '{}' has shape {:?}, whose dimensions (zero ones counted as 1) \
                 multiply past the limit of {max_elements} elements",
                t.name(),
                t.shape()
            )));
        }
    }
    Ok(())
}

fn dt_name(dt: Option<DataType>) -> &'static str {
    dt.map(DataType::as_str).unwrap_or("non-tensor")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IoKind, IoMeta};
    use crate::tensor::TensorData;

    fn meta() -> ModelMeta {
        let io = |name: &str, dt, shape: Vec<i64>| IoMeta {
            name: name.into(),
            datatype: Some(dt),
            shape,
            kind: IoKind::Tensor,
        };
        ModelMeta {
            name: "m".into(),
            version: 1,
            sha256: String::new(),
            size_bytes: 0,
            inputs: vec![io("a", DataType::Fp32, vec![-1, 2]), io("b", DataType::Int64, vec![-1])],
            outputs: vec![],
            batch_invariant: false,
        }
    }

    fn a(rows: i64) -> Tensor {
        Tensor::new("a", vec![rows, 2], TensorData::Fp32(vec![0.5; 2 * rows as usize])).unwrap()
    }

    fn b(rows: i64) -> Tensor {
        Tensor::new("b", vec![rows], TensorData::Int64(vec![1; rows as usize])).unwrap()
    }

    fn msg(r: Result<Vec<Tensor>, ServingError>) -> String {
        match r {
            Err(ServingError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn orders_inputs_like_the_model() {
        let got = check_inputs(&meta(), vec![b(3), a(3)], 100).unwrap();
        assert_eq!(got, vec![a(3), b(3)]);
    }

    #[test]
    fn rejects_mismatches() {
        let m = meta();
        assert!(msg(check_inputs(&m, vec![a(1)], 100)).contains("missing input(s) 'b'"));
        assert!(msg(check_inputs(&m, vec![a(1), a(1), b(1)], 100)).contains("given twice"));
        let c = Tensor::new("c", vec![1], TensorData::Int64(vec![1])).unwrap();
        assert!(msg(check_inputs(&m, vec![a(1), c], 100)).contains("no input 'c'"));
        let wrong_type = Tensor::new("b", vec![1], TensorData::Int32(vec![1])).unwrap();
        assert!(msg(check_inputs(&m, vec![a(1), wrong_type], 100))
            .contains("has datatype INT32 but the model expects INT64"));
        let wide = Tensor::new("a", vec![1, 3], TensorData::Fp32(vec![0.0; 3])).unwrap();
        assert!(msg(check_inputs(&m, vec![wide, b(1)], 100)).contains("has shape [1, 3]"));
        let rank = Tensor::new("a", vec![2], TensorData::Fp32(vec![0.0; 2])).unwrap();
        assert!(msg(check_inputs(&m, vec![rank, b(1)], 100)).contains("expects [-1, 2]"));
    }

    #[test]
    fn enforces_the_element_limit() {
        let m = meta();
        // 2*4 + 4 = 12 elements
        assert!(check_inputs(&m, vec![a(4), b(4)], 12).is_ok());
        assert_eq!(msg(check_inputs(&m, vec![a(4), b(4)], 11)), "the request has 12 elements, the limit is 11");
        // the limit applies before anything else, even to unknown inputs
        let big = Tensor::new("zzz", vec![20], TensorData::Uint8(vec![0; 20])).unwrap();
        assert!(msg(check_inputs(&m, vec![big], 11)).contains("has 20 elements"));
        // an empty tensor with an absurd dimension
        let empty = Tensor::new("a", vec![0, 1 << 40], TensorData::Fp32(vec![])).unwrap();
        let err = msg(check_inputs(&m, vec![empty, b(0)], 1_000_000));
        assert!(err.contains("multiply past the limit of 1000000"), "{err}");
        // but an ordinary empty request is fine ([0, 2] counts as 2 against the limit)
        assert!(check_inputs(&m, vec![a(0), b(0)], 2).is_ok());
        assert!(msg(check_inputs(&m, vec![a(0), b(0)], 1)).contains("shape [0, 2]"));
    }
}
