//! Checks an exported model against the network it came from: the ONNX bytes
//! are loaded the way a Boat node serves them (boat-serving, ONNX Runtime),
//! run on rows the trainer already computed, and every output compared.
//!
//! Classifiers must give the same label on every row and probabilities
//! within [`PROBABILITY_TOLERANCE`]; regressors predictions within
//! [`REGRESSION_TOLERANCE`], relative to the value's size or absolute below 1.

use boat_serving::{init_runtime, ModelRegistry, Output, RegistryConfig, Tensor, TensorData};

/// Largest accepted difference of a class probability.
pub const PROBABILITY_TOLERANCE: f32 = 1e-4;

/// Largest accepted difference of a prediction, times `max(1, |expected|)`.
pub const REGRESSION_TOLERANCE: f32 = 1e-4;

/// Rows sent to ONNX Runtime per run, well inside the registry's request
/// size limit for any feature count this crate trains on.
const ROWS_PER_RUN: usize = 1024;

/// What the trained network computed on the rows checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// Per row the index of the predicted class, and the class
    /// probabilities (row-major `[rows, classes]`).
    Classifier { class_index: Vec<usize>, probabilities: Vec<f32> },
    /// Per row the prediction, in target units.
    Regressor { predictions: Vec<f32> },
}

impl Reference {
    pub fn rows(&self) -> usize {
        match self {
            Reference::Classifier { class_index, .. } => class_index.len(),
            Reference::Regressor { predictions } => predictions.len(),
        }
    }
}

/// Why an export did not pass the check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("the exported model does not load: {0}")]
    Load(String),
    #[error("the exported model's output is not as expected: {0}")]
    Output(String),
    #[error("the exported model disagrees with the trained one on row {row}: {detail}")]
    Mismatch { row: usize, detail: String },
}

/// Runs `onnx` on `x` (row-major raw features, `n_features` a row) and
/// compares its outputs with `expected`; `labels[k]` is class `k`'s label.
/// Returns the number of rows compared.
pub fn verify(
    onnx: &[u8],
    x: &[f32],
    n_features: usize,
    expected: &Reference,
    labels: &[i64],
) -> Result<usize, VerifyError> {
    let rows = expected.rows();
    if n_features == 0 || x.len() != rows * n_features {
        return Err(VerifyError::Output(format!("{} values for {rows} rows of {n_features} features", x.len())));
    }
    init_runtime(None).map_err(|e| VerifyError::Runtime(e.to_string()))?;
    let registry = ModelRegistry::new(RegistryConfig::default());
    registry.load("trial", 1, onnx).map_err(|e| VerifyError::Load(e.to_string()))?;
    let mut start = 0;
    while start < rows {
        let end = (start + ROWS_PER_RUN).min(rows);
        let input = Tensor::new(
            "input",
            vec![(end - start) as i64, n_features as i64],
            TensorData::Fp32(x[start * n_features..end * n_features].to_vec()),
        )
        .map_err(|e| VerifyError::Output(e.to_string()))?;
        let outputs = registry.infer("trial", 1, vec![input]).map_err(|e| VerifyError::Output(e.to_string()))?;
        compare(&outputs, expected, labels, start, end)?;
        start = end;
    }
    Ok(rows)
}

fn output<'a>(outputs: &'a [Output], name: &str) -> Result<&'a TensorData, VerifyError> {
    outputs
        .iter()
        .find(|o| o.name() == name)
        .and_then(Output::as_tensor)
        .map(Tensor::data)
        .ok_or_else(|| VerifyError::Output(format!("no tensor output '{name}'")))
}

fn compare(
    outputs: &[Output],
    expected: &Reference,
    labels: &[i64],
    start: usize,
    end: usize,
) -> Result<(), VerifyError> {
    let n = end - start;
    let wrong_size = |name: &str, len: usize| VerifyError::Output(format!("'{name}' has {len} values for {n} rows"));
    match expected {
        Reference::Classifier { class_index, probabilities } => {
            let classes = labels.len();
            let TensorData::Int64(got_labels) = output(outputs, "label")? else {
                return Err(VerifyError::Output("'label' is not int64".into()));
            };
            let TensorData::Fp32(got_probs) = output(outputs, "probabilities")? else {
                return Err(VerifyError::Output("'probabilities' is not float32".into()));
            };
            if got_labels.len() != n {
                return Err(wrong_size("label", got_labels.len()));
            }
            if got_probs.len() != n * classes {
                return Err(wrong_size("probabilities", got_probs.len()));
            }
            for (i, row) in (start..end).enumerate() {
                let want = labels[class_index[row]];
                if got_labels[i] != want {
                    return Err(VerifyError::Mismatch {
                        row,
                        detail: format!("label {} instead of {want}", got_labels[i]),
                    });
                }
                for k in 0..classes {
                    let (got, want) = (got_probs[i * classes + k], probabilities[row * classes + k]);
                    if (got - want).abs() > PROBABILITY_TOLERANCE || !got.is_finite() {
                        return Err(VerifyError::Mismatch {
                            row,
                            detail: format!("probability of class {} is {got} instead of {want}", labels[k]),
                        });
                    }
                }
            }
        }
        Reference::Regressor { predictions } => {
            let TensorData::Fp32(got) = output(outputs, "prediction")? else {
                return Err(VerifyError::Output("'prediction' is not float32".into()));
            };
            if got.len() != n {
                return Err(wrong_size("prediction", got.len()));
            }
            for (i, row) in (start..end).enumerate() {
                let want = predictions[row];
                if (got[i] - want).abs() > REGRESSION_TOLERANCE * want.abs().max(1.0) || !got[i].is_finite() {
                    return Err(VerifyError::Mismatch {
                        row,
                        detail: format!("prediction {} instead of {want}", got[i]),
                    });
                }
            }
        }
    }
    Ok(())
}
