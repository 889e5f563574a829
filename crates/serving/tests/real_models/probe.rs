//! The load-time batch-invariance probe, checked against a direct comparison made here with
//! different inputs: each row run inside batches of the probe's sizes vs the same row alone.

use boat_serving::{ModelMeta, ModelRegistry, Output, ServingError, Tensor, TensorData};

use crate::common::*;

/// Batch sizes the registry's probe uses.
const SIZES: [usize; 5] = [1, 2, 3, 8, 17];

/// Row `r` of a tensor or output whose dimension 0 has `n` rows.
fn row_of_tensor(t: &Tensor, r: usize, n: usize) -> Tensor {
    let (name, mut shape, data) = t.clone().into_parts();
    let per = data.len() / n;
    let range = r * per..(r + 1) * per;
    let sliced = match data {
        TensorData::Fp32(v) => TensorData::Fp32(v[range].to_vec()),
        TensorData::Int64(v) => TensorData::Int64(v[range].to_vec()),
        TensorData::Bytes(v) => TensorData::Bytes(v[range].to_vec()),
        other => panic!("unexpected datatype {:?}", other.datatype()),
    };
    shape[0] = 1;
    Tensor::new(name, shape, sliced).unwrap()
}

fn row_of_output(o: &Output, r: usize, n: usize) -> Output {
    match o {
        Output::Tensor(t) => Output::Tensor(row_of_tensor(t, r, n)),
        Output::Json { name, data, .. } => {
            assert_eq!(data.len(), n, "one sequence element per row");
            Output::Json { name: name.clone(), shape: vec![1], data: vec![data[r].clone()] }
        }
    }
}

/// Bit-for-bit equality: float tensors by their bits, the JSON form by its text.
fn same_bits(a: &Output, b: &Output) -> bool {
    match (a.as_tensor(), b.as_tensor()) {
        (Some(x), Some(y)) => {
            let same_data = match (x.data(), y.data()) {
                (TensorData::Fp32(p), TensorData::Fp32(q)) => {
                    p.iter().map(|f| f.to_bits()).eq(q.iter().map(|f| f.to_bits()))
                }
                (p, q) => p == q,
            };
            x.name() == y.name() && x.shape() == y.shape() && same_data
        }
        (None, None) => serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap(),
        _ => false,
    }
}

/// `n` iris rows (real ones first, then perturbed copies) as the `input` tensor.
fn iris_like(n: usize, salt: u32) -> Tensor {
    let base = iris_rows();
    let mut x = 12_345u32.wrapping_add(salt);
    let mut data = Vec::with_capacity(n * 4);
    for r in 0..n {
        for c in 0..4 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = ((x >> 16) % 1000) as f32 / 1000.0 - 0.5;
            let noise = if r < base.len() { 0.0 } else { noise };
            data.push(base[r % base.len()][c] + noise);
        }
    }
    fp32("input", vec![n as i64, 4], data)
}

fn words(n: usize, salt: u32) -> Tensor {
    let all: Vec<String> = (0..n).map(|i| format!("w{salt}-{i}-é")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    strings("input", &refs)
}

/// For each probe batch size, how many rows differ from running alone.
fn differing_rows(reg: &ModelRegistry, model: &str, make: fn(usize, u32) -> Tensor) -> Vec<usize> {
    SIZES
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let batch = make(n, k as u32);
            let together = reg.infer(model, 1, vec![batch.clone()]).unwrap();
            (0..n)
                .filter(|&r| {
                    let alone = reg.infer(model, 1, vec![row_of_tensor(&batch, r, n)]).unwrap();
                    assert_eq!(together.len(), alone.len());
                    !together.iter().zip(&alone).all(|(t, a)| same_bits(&row_of_output(t, r, n), a))
                })
                .count()
        })
        .collect()
}

#[test]
fn probe_flags_match_a_direct_bitwise_comparison() {
    let reg = registry();
    for (model, make) in [("echo", words as fn(usize, u32) -> Tensor), ("mlp", iris_like), ("iris_logreg", iris_like)] {
        let diffs = differing_rows(&reg, model, make);
        let direct = diffs.iter().all(|&d| d == 0);
        assert_eq!(
            reg.batch_invariant(model, 1),
            direct,
            "{model}: probe flag vs direct comparison (rows differing per batch size {SIZES:?}: {diffs:?})"
        );
        assert_eq!(reg.meta(model, 1).unwrap().batch_invariant, direct, "{model}");
    }
    // What ONNX Runtime 1.31.1 does on this machine: the Identity model and the MLP (MatMul,
    // Add, activations) are batch invariant; sklearn's logistic regression (the
    // LinearClassifier kernel) gives some rows different low bits inside a batch.
    assert!(reg.batch_invariant("echo", 1));
    assert!(reg.batch_invariant("mlp", 1));
    assert!(!reg.batch_invariant("iris_logreg", 1));
    let logreg_diffs = differing_rows(&reg, "iris_logreg", iris_like);
    assert_eq!(logreg_diffs[0], 0, "a batch of one is the row alone");
    assert!(logreg_diffs.iter().sum::<usize>() > 0);
}

#[test]
fn fixed_batch_models_are_not_invariant() {
    let reg = registry();
    assert!(!reg.batch_invariant("fixed_batch", 1));
    // it cannot take a batch at all, so there is nothing to group
    let err = reg.infer("fixed_batch", 1, vec![iris_batch(&[0, 1])]);
    assert!(matches!(err, Err(ServingError::InvalidInput(_))));
}

#[test]
fn probe_is_deterministic_and_not_counted_as_runs() {
    let a = registry();
    let b = registry();
    for model in ["echo", "mlp", "iris_logreg", "fixed_batch"] {
        assert_eq!(a.batch_invariant(model, 1), b.batch_invariant(model, 1), "{model}");
        assert_eq!(a.run_count(model, 1), Some(0), "{model}: probe runs are not requests");
    }
    // reloading the same bytes keeps the metadata, flag included
    let again = a.load("mlp", 1, &model_bytes("mlp.onnx")).unwrap();
    assert!(again.batch_invariant);
    assert!(!a.batch_invariant("mlp", 2), "not loaded");
}

#[test]
fn metadata_without_the_flag_still_decodes() {
    let reg = registry();
    let meta = reg.meta("mlp", 1).unwrap();
    let mut v = serde_json::to_value(&meta).unwrap();
    assert_eq!(v["batch_invariant"], serde_json::json!(true));
    v.as_object_mut().unwrap().remove("batch_invariant");
    let old: ModelMeta = serde_json::from_value(v).unwrap();
    assert!(!old.batch_invariant);
    assert_eq!(old.inputs, meta.inputs);
}
