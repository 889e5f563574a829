use boat_serving::{ServingError, Tensor};

use crate::common::*;

/// How closely batched results must match single runs.
#[derive(Clone, Copy)]
enum Match {
    /// Bit for bit.
    Exact,
    /// Floats within 1e-6 (other values exactly).
    Close,
}

/// Runs each request alone and all of them through `infer_batch`, and compares the results.
/// Returns how many ONNX Runtime runs the batch took.
fn batch_equals_single(model: &str, requests: Vec<Vec<Tensor>>) -> u64 {
    batch_matches_single(model, requests, Match::Exact)
}

fn batch_matches_single(model: &str, requests: Vec<Vec<Tensor>>, how: Match) -> u64 {
    let reg = registry();
    let single: Vec<_> = requests.iter().map(|r| reg.infer(model, 1, r.clone())).collect();
    let before = reg.run_count(model, 1).unwrap();
    let batched = reg.infer_batch(model, 1, requests);
    let runs = reg.run_count(model, 1).unwrap() - before;
    assert_eq!(single.len(), batched.len());
    for (i, (s, b)) in single.iter().zip(&batched).enumerate() {
        match (s, b) {
            (Ok(s), Ok(b)) => match how {
                Match::Exact => assert_bit_identical(s, b),
                Match::Close => assert_close_outputs(s, b),
            },
            (Err(s), Err(b)) => assert_eq!(s, b, "request {i}"),
            _ => panic!("request {i}: single {s:?} vs batched {b:?}"),
        }
    }
    runs
}

#[test]
fn mlp_batch_is_one_run_and_bit_identical() {
    let requests =
        vec![vec![iris_batch(&[0])], vec![iris_batch(&[1, 2])], vec![iris_batch(&[3, 4, 5])], vec![iris_batch(&[5])]];
    assert_eq!(batch_equals_single("mlp", requests), 1);
}

#[test]
fn zipmap_sequence_outputs_split_by_rows() {
    // ONNX Runtime's LinearClassifier kernel is not batch-size invariant: the same row can
    // differ in the last bits between a 1-row and a 3-row run, so compare within 1e-6.
    let requests = vec![vec![iris_batch(&[0, 1])], vec![iris_batch(&[2])], vec![iris_batch(&[3, 4, 5])]];
    assert_eq!(batch_matches_single("iris_logreg", requests, Match::Close), 1);
}

#[test]
fn echo_batch_of_string_requests() {
    let requests = vec![
        vec![strings("input", &["Hello"])],
        vec![strings("input", &["héllo", "wörld"])],
        vec![strings("input", &["🚤"])],
    ];
    assert_eq!(batch_equals_single("echo", requests), 1);
}

#[test]
fn fixed_batch_dim_falls_back_to_one_by_one() {
    let requests: Vec<Vec<Tensor>> = (0..4).map(|r| vec![iris_batch(&[r])]).collect();
    assert_eq!(batch_equals_single("fixed_batch", requests), 4);
}

#[test]
fn a_bad_request_fails_alone() {
    let reg = registry();
    let requests = vec![
        vec![iris_batch(&[0])],
        vec![fp32("input", vec![1, 3], vec![1.0, 2.0, 3.0])], // wrong width
        vec![iris_batch(&[1, 2])],
        vec![fp32("other", vec![1, 4], vec![0.0; 4])], // unknown input
        vec![],                                        // missing input
        vec![iris_batch(&[3])],
    ];
    let before = reg.run_count("mlp", 1).unwrap();
    let results = reg.infer_batch("mlp", 1, requests.clone());
    assert_eq!(reg.run_count("mlp", 1).unwrap() - before, 1, "the good ones still share a run");
    for i in [1, 3, 4] {
        assert!(matches!(results[i], Err(ServingError::InvalidInput(_))), "request {i}: {:?}", results[i]);
    }
    for i in [0, 2, 5] {
        let alone = reg.infer("mlp", 1, requests[i].clone()).unwrap();
        assert_bit_identical(results[i].as_ref().unwrap(), &alone);
    }
    assert_eq!(batch_equals_single("mlp", requests), 1);
}

#[test]
fn empty_and_single_batches() {
    let reg = registry();
    assert!(reg.infer_batch("mlp", 1, vec![]).is_empty());
    let one = reg.infer_batch("mlp", 1, vec![vec![iris_batch(&[2])]]);
    assert_bit_identical(one[0].as_ref().unwrap(), &reg.infer("mlp", 1, vec![iris_batch(&[2])]).unwrap());
}
