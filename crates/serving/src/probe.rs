//! The load-time batch-invariance probe.
//!
//! Some kernels give bit-different results for the same row depending on how many rows run
//! with it (ONNX Runtime's `LinearClassifier`, behind sklearn's logistic regression, is one).
//! Boat replicas may group requests differently, so the registry records per model whether
//! grouping can change results.
//!
//! A model is probed when it has at least one input and every input is a tensor with a
//! dynamic first dimension and a known datatype. For batch sizes 1, 2, 3, 8 and 17 the probe
//! builds inputs from a fixed linear congruential generator (same seed on every node, so
//! every node probes with identical data): fixed trailing dimensions as declared, dynamic
//! ones as 1; floats in `[-4, 4)`, integers in `0..8`, random booleans, and short lowercase
//! ASCII strings for BYTES. It runs the whole batch once and each row alone, and requires
//! every output of every row to match bit for bit (floats by their bits, so `-0.0 ≠ 0.0`
//! and NaNs compare equal to themselves; sequence and map outputs by their JSON text). Any
//! failed run, any output that does not have one row (or sequence element) per input row,
//! or any difference makes the model not invariant. Batches that would exceed
//! [`PROBE_MAX_ELEMENTS`] input elements are not probed (not invariant), and batch sizes
//! whose outputs would exceed [`PROBE_MAX_ELEMENTS`] elements are skipped, so that loading
//! a model with very wide outputs stays cheap; a model that cannot be probed with at least
//! two rows is not invariant.

use half::f16;

use crate::model::{IoKind, LoadedModel, ModelMeta};
use crate::output::Output;
use crate::tensor::{element_count, DataType, Tensor, TensorData};

/// Batch sizes the probe tries.
pub(crate) const PROBE_BATCH_SIZES: [usize; 5] = [1, 2, 3, 8, 17];

/// Largest number of input elements the probe feeds in one run (17 rows).
pub(crate) const PROBE_MAX_ELEMENTS: usize = 4_000_000;

const SEED: u64 = 0x5EED_B0A7_0000_0001;

/// Runs the probe described in the module doc on a freshly loaded model.
pub(crate) fn batch_invariant(model: &LoadedModel) -> bool {
    let meta = model.meta();
    if !probeable(meta) {
        return false;
    }
    let mut rng = Lcg(SEED);
    let mut max_rows = usize::MAX;
    let mut probed_batch = false;
    for &rows in &PROBE_BATCH_SIZES {
        if rows > max_rows {
            break;
        }
        let Some(inputs) = meta
            .inputs
            .iter()
            .map(|io| random_tensor(&io.name, io.datatype?, &io.shape, rows, &mut rng))
            .collect::<Option<Vec<_>>>()
        else {
            tracing::debug!(model = %meta.name, rows, "batch probe skipped: inputs too large");
            return false;
        };
        match rows_match_alone(model, &inputs, rows) {
            Ok(true) if rows == 1 => {
                let per_row = output_elements(model, &inputs).max(1);
                max_rows = PROBE_MAX_ELEMENTS / per_row;
            }
            Ok(true) => probed_batch = true,
            Ok(false) => {
                tracing::info!(model = %meta.name, version = meta.version, rows,
                    "model is not batch invariant: a row differs when run in a batch");
                return false;
            }
            Err(why) => {
                tracing::info!(model = %meta.name, version = meta.version, rows, %why,
                    "model is not batch invariant: the probe could not compare rows");
                return false;
            }
        }
    }
    if !probed_batch {
        tracing::info!(model = %meta.name, version = meta.version, "model is not batch invariant: outputs too wide to probe");
    }
    probed_batch
}

/// Elements the model outputs for `inputs` (0 when the run fails).
fn output_elements(model: &LoadedModel, inputs: &[Tensor]) -> usize {
    match model.run(inputs.to_vec()) {
        Ok(outputs) => outputs
            .iter()
            .map(|o| match o {
                Output::Tensor(t) => t.data().len(),
                Output::Json { data, .. } => data.len(),
            })
            .sum(),
        Err(_) => 0,
    }
}

/// Whether every input is a typed tensor with a dynamic first dimension.
fn probeable(meta: &ModelMeta) -> bool {
    !meta.inputs.is_empty()
        && meta.inputs.iter().all(|i| i.kind == IoKind::Tensor && i.datatype.is_some() && i.shape.first() == Some(&-1))
}

/// Runs `inputs` (all with `rows` rows) as one batch and each row alone; `Ok(true)` when
/// every row's outputs are bit-identical.
fn rows_match_alone(model: &LoadedModel, inputs: &[Tensor], rows: usize) -> Result<bool, String> {
    let batched = model.run(inputs.to_vec()).map_err(|e| e.to_string())?;
    if batched.iter().any(|o| o.rows() != Some(rows)) {
        return Err("an output does not have one row per input row".into());
    }
    for r in 0..rows {
        let alone: Vec<Tensor> = inputs.iter().map(|t| t.slice_rows(r..r + 1)).collect();
        let single = model.run(alone).map_err(|e| e.to_string())?;
        if single.len() != batched.len() {
            return Err("the number of outputs changed with the batch size".into());
        }
        let same = batched.iter().zip(&single).all(|(b, s)| bit_identical(&b.slice_rows(r..r + 1), s));
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Outputs equal bit for bit: tensors by name, shape and element bits; the JSON form by its
/// serialised text.
pub(crate) fn bit_identical(a: &Output, b: &Output) -> bool {
    match (a, b) {
        (Output::Tensor(x), Output::Tensor(y)) => {
            x.name() == y.name() && x.shape() == y.shape() && data_bits_equal(x.data(), y.data())
        }
        (Output::Json { .. }, Output::Json { .. }) => match (serde_json::to_string(a), serde_json::to_string(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

fn data_bits_equal(a: &TensorData, b: &TensorData) -> bool {
    fn bits<T, B: PartialEq>(x: &[T], y: &[T], f: impl Fn(&T) -> B) -> bool {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| f(p) == f(q))
    }
    match (a, b) {
        (TensorData::Fp16(x), TensorData::Fp16(y)) => bits(x, y, |v| v.to_bits()),
        (TensorData::Fp32(x), TensorData::Fp32(y)) => bits(x, y, |v| v.to_bits()),
        (TensorData::Fp64(x), TensorData::Fp64(y)) => bits(x, y, |v| v.to_bits()),
        // every other type compares exactly with `==`
        (x, y) => x == y,
    }
}

/// A probe input: `rows` rows of the declared shape, dynamic trailing dims as 1. `None` if
/// the batch would be larger than [`PROBE_MAX_ELEMENTS`].
fn random_tensor(name: &str, datatype: DataType, declared: &[i64], rows: usize, rng: &mut Lcg) -> Option<Tensor> {
    let mut shape: Vec<i64> = declared.iter().map(|&d| if d < 0 { 1 } else { d }).collect();
    *shape.first_mut()? = i64::try_from(rows).ok()?;
    let n = element_count(&shape).ok()?;
    if n > PROBE_MAX_ELEMENTS {
        return None;
    }
    let data = random_data(datatype, n, rng);
    Tensor::new(name, shape, data).ok()
}

fn random_data(datatype: DataType, n: usize, rng: &mut Lcg) -> TensorData {
    macro_rules! ints {
        ($t:ty) => {
            (0..n).map(|_| (rng.next() % 8) as $t).collect::<Vec<$t>>().into()
        };
    }
    match datatype {
        DataType::Bool => TensorData::Bool((0..n).map(|_| rng.next() & 1 == 1).collect()),
        DataType::Uint8 => ints!(u8),
        DataType::Uint16 => ints!(u16),
        DataType::Uint32 => ints!(u32),
        DataType::Uint64 => ints!(u64),
        DataType::Int8 => ints!(i8),
        DataType::Int16 => ints!(i16),
        DataType::Int32 => ints!(i32),
        DataType::Int64 => ints!(i64),
        DataType::Fp16 => TensorData::Fp16((0..n).map(|_| f16::from_f64(rng.float())).collect()),
        DataType::Fp32 => TensorData::Fp32((0..n).map(|_| rng.float() as f32).collect()),
        DataType::Fp64 => TensorData::Fp64((0..n).map(|_| rng.float()).collect()),
        DataType::Bytes => TensorData::Bytes((0..n).map(|_| rng.word()).collect()),
    }
}

/// Knuth's MMIX linear congruential generator; the high bits are the output.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `[-4, 4)` on a 2^-21 grid (exact in f32 and f64; f16 rounds).
    fn float(&mut self) -> f64 {
        f64::from(self.next() >> 8) / f64::from(1u32 << 24) * 8.0 - 4.0
    }

    /// 1 to 8 lowercase ASCII letters.
    fn word(&mut self) -> String {
        let len = 1 + self.next() % 8;
        (0..len).map(|_| char::from(b'a' + (self.next() % 26) as u8)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generator_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Lcg(SEED), Lcg(SEED));
        let xs: Vec<u32> = (0..100).map(|_| a.next()).collect();
        let ys: Vec<u32> = (0..100).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
        for _ in 0..1000 {
            let f = a.float();
            assert!((-4.0..4.0).contains(&f), "{f}");
            let w = a.word();
            assert!((1..=8).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase()));
        }
    }

    #[test]
    fn random_tensors_follow_the_declared_shape() {
        let mut rng = Lcg(SEED);
        let t = random_tensor("x", DataType::Fp32, &[-1, 4, -1], 3, &mut rng).unwrap();
        assert_eq!(t.shape(), &[3, 4, 1]);
        assert_eq!(t.data().len(), 12);
        let t = random_tensor("s", DataType::Bytes, &[-1], 17, &mut rng).unwrap();
        assert_eq!(t.datatype(), DataType::Bytes);
        let t = random_tensor("i", DataType::Int8, &[-1, 2], 8, &mut rng).unwrap();
        let TensorData::Int8(v) = t.data() else { panic!("INT8 expected") };
        assert!(v.iter().all(|x| (0..8).contains(x)));
        assert!(random_tensor("big", DataType::Uint8, &[-1, 1 << 20], 17, &mut rng).is_none());
    }

    #[test]
    fn bitwise_comparison() {
        let t = |v: Vec<f32>| Output::Tensor(Tensor::new("y", vec![v.len() as i64], v.into()).unwrap());
        assert!(bit_identical(&t(vec![1.0, f32::NAN]), &t(vec![1.0, f32::NAN])));
        assert!(!bit_identical(&t(vec![0.0]), &t(vec![-0.0])));
        assert!(!bit_identical(&t(vec![1.0]), &t(vec![1.0 + f32::EPSILON])));
        let j = |x: f64| Output::json("p", vec![json!({"0": x})]);
        assert!(bit_identical(&j(0.25), &j(0.25)));
        assert!(!bit_identical(&j(0.25), &j(0.250_000_1)));
        assert!(!bit_identical(&j(0.25), &t(vec![0.25])));
    }
}
