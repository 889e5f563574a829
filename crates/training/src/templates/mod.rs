//! The built-in model templates and how one trial trains.
//!
//! A template is a kind of model with a knob space ([`TemplateInfo`]):
//!
//! | name | task | model |
//! |------|------|-------|
//! | `mlp_classifier` | classification | 1–3 hidden layers, softmax output, cross-entropy |
//! | `mlp_regressor` | regression | 1–3 hidden layers, one linear output, squared error |
//! | `logistic_regression` | classification | one linear layer into a softmax, L2 penalty |
//!
//! [`train`] runs one trial ([`TrialSpec`]): it checks the knobs against the
//! template's space and the task against the template's, reads the CSV files
//! ([`crate::data`]), trains on the CPU with candle, keeping the epoch with
//! the best validation score (accuracy for classification, R² for
//! regression; higher is better for both), exports the network to ONNX
//! ([`crate::onnx`], which documents the model's inputs and outputs), and
//! checks the export in ONNX Runtime against the trained network on every
//! validation row.
//!
//! Standardisation is part of the model: features are scaled with the
//! training set's mean and standard deviation, inside the exported graph as
//! well. The regressor also trains on a standardised target and scales its
//! output back.
//!
//! A trial is reproducible: the weight initialisation and the row order come
//! from a generator seeded with [`TrialSpec::seed`]. Candle's CPU matrix
//! products use as many threads as `RAYON_NUM_THREADS` (or `CANDLE_NUM_THREADS`)
//! says, by default one per physical core; the split does not change results,
//! and the trial worker ([`crate::worker`]) sets one thread unless told
//! otherwise.

mod logistic;
mod mlp;
pub mod net;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset};
use crate::knobs::{KnobConfig, KnobError, Knobs};
use crate::onnx::verify::{verify, VerifyError};
use crate::onnx::ExportError;

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A class label per row.
    Classification,
    /// A number per row.
    Regression,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }

    /// The task named `s` (`classification` or `regression`).
    pub fn parse(s: &str) -> Option<Task> {
        match s {
            "classification" => Some(Task::Classification),
            "regression" => Some(Task::Regression),
            _ => None,
        }
    }

    /// The validation score's name: `accuracy` or `r2`.
    pub fn metric(self) -> &'static str {
        match self {
            Task::Classification => "accuracy",
            Task::Regression => "r2",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template as jobs and clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateInfo {
    pub name: String,
    pub task: Task,
    pub description: String,
    pub knob_config: KnobConfig,
}

/// The built-in templates, in a fixed order.
pub fn builtin_templates() -> Vec<TemplateInfo> {
    vec![
        TemplateInfo {
            name: mlp::CLASSIFIER.into(),
            task: Task::Classification,
            description: "Multi-layer perceptron classifier: 1 to 3 hidden layers (ReLU or tanh), softmax output, \
                          trained with AdamW on cross-entropy."
                .into(),
            knob_config: mlp::knob_config(),
        },
        TemplateInfo {
            name: mlp::REGRESSOR.into(),
            task: Task::Regression,
            description: "Multi-layer perceptron regressor: 1 to 3 hidden layers (ReLU or tanh), one linear output, \
                          trained with AdamW on squared error."
                .into(),
            knob_config: mlp::knob_config(),
        },
        TemplateInfo {
            name: logistic::NAME.into(),
            task: Task::Classification,
            description: "Multinomial logistic regression: one linear layer into a softmax, with an L2 penalty on \
                          the weights, trained with Adam."
                .into(),
            knob_config: logistic::knob_config(),
        },
    ]
}

/// The built-in template called `name`.
pub fn builtin_template(name: &str) -> Option<TemplateInfo> {
    builtin_templates().into_iter().find(|t| t.name == name)
}

/// One trial: which template, with which knobs, on which data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialSpec {
    pub template: String,
    pub task: Task,
    pub knobs: Knobs,
    pub train_csv: PathBuf,
    pub val_csv: PathBuf,
    pub target_column: String,
    /// Seeds the weight initialisation and the row order.
    pub seed: u64,
}

/// Progress of a trial.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainEvent {
    /// One epoch done: its mean training loss (over the epoch's batches) and
    /// the validation score and loss after it.
    Epoch { epoch: u32, train_loss: f64, val_score: f64, val_loss: Option<f64> },
    /// Anything else worth telling.
    Message(String),
}

/// A finished trial.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialOutput {
    /// The exported model (see [`crate::onnx`] for its inputs and outputs).
    pub onnx: Vec<u8>,
    /// The best epoch's validation score.
    pub score: f64,
    /// `accuracy` or `r2`.
    pub metric: String,
    /// Epochs run, early stopping included.
    pub epochs_run: u32,
    /// The class labels in output order; empty for regression.
    pub classes: Vec<String>,
    /// Validation rows on which the exported model was checked against the
    /// trained one.
    pub checked_rows: usize,
}

/// Why a trial failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("unknown template '{name}' (built-in templates: {known})")]
    UnknownTemplate { name: String, known: String },
    #[error("template '{template}' does {template_task}, but the trial asks for {requested}")]
    TaskMismatch { template: String, template_task: Task, requested: Task },
    #[error(transparent)]
    Knobs(#[from] KnobError),
    #[error("{0}")]
    Knob(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Unsupported(String),
    #[error("training diverged at epoch {epoch}: the loss is not finite (try a lower learning_rate)")]
    Diverged { epoch: u32 },
    #[error("training failed: {0}")]
    Candle(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Candle(e.to_string())
    }
}

/// Reading knob values that [`KnobConfig::validate`] already checked.
mod knob_values {
    use super::TrainError;
    use crate::knobs::Knobs;

    fn missing(name: &str, want: &str) -> TrainError {
        TrainError::Knob(format!("knob '{name}' must be {want}"))
    }

    pub fn int(knobs: &Knobs, name: &str) -> Result<i64, TrainError> {
        knobs.get(name).and_then(|v| v.as_i64()).ok_or_else(|| missing(name, "an integer"))
    }

    pub fn float(knobs: &Knobs, name: &str) -> Result<f64, TrainError> {
        knobs.get(name).and_then(|v| v.as_f64()).ok_or_else(|| missing(name, "a number"))
    }

    pub fn string<'a>(knobs: &'a Knobs, name: &str) -> Result<&'a str, TrainError> {
        knobs.get(name).and_then(|v| v.as_str()).ok_or_else(|| missing(name, "a string"))
    }
}

/// Class labels as the integers the exported model outputs.
fn integer_labels(classes: &[String]) -> Result<Vec<i64>, TrainError> {
    classes
        .iter()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                TrainError::Unsupported(format!(
                    "class label '{c}' is not an integer; exported classifiers output integer labels, so the \
                     target column must hold integers"
                ))
            })
        })
        .collect()
}

/// Runs one trial (see the module docs), reporting progress to `on_event`.
pub fn train(spec: &TrialSpec, on_event: &mut dyn FnMut(TrainEvent)) -> Result<TrialOutput, TrainError> {
    let template = builtin_template(&spec.template).ok_or_else(|| TrainError::UnknownTemplate {
        name: spec.template.clone(),
        known: builtin_templates().iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    if template.task != spec.task {
        return Err(TrainError::TaskMismatch {
            template: template.name,
            template_task: template.task,
            requested: spec.task,
        });
    }
    template.knob_config.validate(&spec.knobs)?;
    let early = template.knob_config.early_stopping.clone();
    let config = match template.name.as_str() {
        mlp::CLASSIFIER | mlp::REGRESSOR => mlp::net_config(&spec.knobs, early)?,
        logistic::NAME => logistic::net_config(&spec.knobs, early)?,
        other => unreachable!("built-in template '{other}' has no trainer"),
    };

    let train_set = Dataset::load(&spec.train_csv, &spec.target_column, spec.task)?;
    let val_set = Dataset::load_validation(&spec.val_csv, &train_set)?;
    let labels = match spec.task {
        Task::Classification => {
            if train_set.classes.len() < 2 {
                return Err(TrainError::Unsupported(format!(
                    "the training file has {} class(es); a classifier needs at least two",
                    train_set.classes.len()
                )));
            }
            Some(integer_labels(&train_set.classes)?)
        }
        Task::Regression => None,
    };
    on_event(TrainEvent::Message(format!(
        "{}: {} training rows, {} validation rows, {} features{}",
        template.name,
        train_set.rows(),
        val_set.rows(),
        train_set.n_features(),
        match spec.task {
            Task::Classification => format!(", {} classes", train_set.classes.len()),
            Task::Regression => String::new(),
        }
    )));

    let fitted = net::fit(&config, &train_set, &val_set, labels.clone(), spec.seed, on_event)?;
    on_event(TrainEvent::Message(format!(
        "best epoch {} of {}: {} {:.4}",
        fitted.best_epoch,
        fitted.epochs_run,
        spec.task.metric(),
        fitted.score
    )));
    let onnx = fitted.network.to_onnx(&template.name)?;
    let checked_rows =
        verify(&onnx, &val_set.x, val_set.n_features(), &fitted.reference, labels.as_deref().unwrap_or(&[]))?;
    on_event(TrainEvent::Message(format!(
        "exported model ({} bytes) agrees with the trained one on {checked_rows} validation rows",
        onnx.len()
    )));
    Ok(TrialOutput {
        onnx,
        score: fitted.score,
        metric: spec.task.metric().to_string(),
        epochs_run: fitted.epochs_run,
        classes: if spec.task == Task::Classification { train_set.classes } else { Vec::new() },
        checked_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_have_valid_spaces_and_unique_names() {
        let all = builtin_templates();
        assert_eq!(all.len(), 3);
        for t in &all {
            t.knob_config.check().unwrap();
            // Every point of the space reads into a training configuration.
            for u in [0.0, 0.5, 1.0] {
                let point = vec![u; t.knob_config.searched().len()];
                let knobs = t.knob_config.from_unit_point(&point);
                t.knob_config.validate(&knobs).unwrap();
                let early = t.knob_config.early_stopping.clone();
                match t.name.as_str() {
                    "logistic_regression" => logistic::net_config(&knobs, early).unwrap(),
                    _ => mlp::net_config(&knobs, early).unwrap(),
                };
            }
            assert!(t.knob_config.early_stopping.is_some());
            assert_eq!(builtin_template(&t.name).as_ref(), Some(t));
        }
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["task"], "classification");
        let back: TemplateInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, all[0]);
    }

    #[test]
    fn task_names() {
        for t in [Task::Classification, Task::Regression] {
            assert_eq!(Task::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert_eq!(Task::parse("ranking"), None);
    }

    #[test]
    fn labels_must_be_integers() {
        assert_eq!(integer_labels(&["0".into(), "12".into()]).unwrap(), [0, 12]);
        assert!(matches!(integer_labels(&["setosa".into()]), Err(TrainError::Unsupported(_))));
    }
}
