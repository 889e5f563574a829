//! The training loop shared by the built-in templates: a dense network
//! (zero or more hidden layers) trained with Adam on mini-batches, on the CPU
//! with candle, and early stopping on the validation score.
//!
//! Everything random comes from one `StdRng` seeded with the trial's seed:
//! the weight initialisation, then the order of the rows in every epoch. The
//! same seed, data and knobs give the same model.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{Task, TrainError, TrainEvent};
use crate::data::{Dataset, Standardizer};
use crate::knobs::EarlyStopping;
use crate::onnx::verify::Reference;
use crate::onnx::{Activation, DenseLayer, DenseNetwork, Head};

/// How to train one network, read from a template's knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Width of each hidden layer; empty for a linear model.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub learning_rate: f64,
    /// Decoupled weight decay (AdamW), applied to every parameter.
    pub weight_decay: f64,
    /// L2 penalty added to the loss: `l2 * Σ w²` over the weight matrices
    /// (not the biases).
    pub l2: f64,
    pub epochs: u32,
    pub batch_size: usize,
    pub early_stopping: Option<EarlyStopping>,
    /// Start every weight at zero (fine for a linear model, whose loss is
    /// convex); otherwise weights start uniform at random, scaled to the
    /// layer's width.
    pub zero_init: bool,
}

/// A trained network with its validation results.
pub struct Fitted {
    pub network: DenseNetwork,
    /// The best epoch's validation score.
    pub score: f64,
    /// Epochs run (including those after the best one).
    pub epochs_run: u32,
    /// The best epoch (1-based).
    pub best_epoch: u32,
    /// What the trained network computes on the validation rows.
    pub reference: Reference,
}

struct Layer {
    weight: Var,
    bias: Var,
    inputs: usize,
    outputs: usize,
}

struct Net {
    layers: Vec<Layer>,
    activation: Activation,
}

impl Net {
    fn new(config: &NetConfig, inputs: usize, outputs: usize, rng: &mut StdRng) -> Result<Net, TrainError> {
        let mut widths = vec![inputs];
        widths.extend(&config.hidden);
        widths.push(outputs);
        let last = widths.len() - 2;
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            // He-style scale into ReLU, Glorot-style into tanh and into the
            // output layer.
            let limit = if i < last && config.activation == Activation::Relu {
                (6.0 / fan_in as f64).sqrt()
            } else {
                (6.0 / (fan_in + fan_out) as f64).sqrt()
            } as f32;
            let weight: Vec<f32> = if config.zero_init {
                vec![0.0; fan_in * fan_out]
            } else {
                (0..fan_in * fan_out).map(|_| rng.gen_range(-limit..=limit)).collect()
            };
            layers.push(Layer {
                weight: Var::from_vec(weight, (fan_in, fan_out), &Device::Cpu)?,
                bias: Var::from_vec(vec![0f32; fan_out], fan_out, &Device::Cpu)?,
                inputs: fan_in,
                outputs: fan_out,
            });
        }
        Ok(Net { layers, activation: config.activation })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = h.matmul(layer.weight.as_tensor())?.broadcast_add(layer.bias.as_tensor())?;
            if i < last {
                h = match self.activation {
                    Activation::Relu => h.relu()?,
                    Activation::Tanh => h.tanh()?,
                };
            }
        }
        Ok(h)
    }

    fn vars(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|l| [l.weight.clone(), l.bias.clone()]).collect()
    }

    /// Copies of every weight and bias, in [`Net::vars`] order.
    fn snapshot(&self) -> Result<Vec<Vec<f32>>, TrainError> {
        self.vars().iter().map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)).collect()
    }

    fn to_dense(&self, snapshot: &[Vec<f32>], scaler: &Standardizer, head: Head) -> DenseNetwork {
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| DenseLayer {
                inputs: l.inputs,
                outputs: l.outputs,
                weight: snapshot[2 * i].clone(),
                bias: snapshot[2 * i + 1].clone(),
            })
            .collect();
        DenseNetwork { mean: scaler.mean.clone(), std: scaler.std.clone(), layers, activation: self.activation, head }
    }
}

/// Targets in the form the loss wants.
enum Targets {
    /// Class indices (u32, `[rows]`).
    Classes(Tensor),
    /// Standardised values (f32, `[rows, 1]`), with the mean and standard
    /// deviation used.
    Values { tensor: Tensor, mean: f32, std: f32 },
}

fn features(data: &Dataset, scaler: &Standardizer) -> Result<Tensor, TrainError> {
    Ok(Tensor::from_vec(scaler.apply(&data.x), (data.rows(), data.n_features()), &Device::Cpu)?)
}

fn mean_std(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = values.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    (mean as f32, if std > 1e-12 && std.is_finite() { std as f32 } else { 1.0 })
}

fn targets(data: &Dataset, mean_std: Option<(f32, f32)>) -> Result<Targets, TrainError> {
    Ok(match data.task {
        Task::Classification => Targets::Classes(Tensor::from_slice(&data.class_index, data.rows(), &Device::Cpu)?),
        Task::Regression => {
            let (mean, std) = mean_std.unwrap_or((0.0, 1.0));
            let scaled: Vec<f32> = data.y.iter().map(|v| (v - mean) / std).collect();
            Targets::Values { tensor: Tensor::from_vec(scaled, (data.rows(), 1), &Device::Cpu)?, mean, std }
        }
    })
}

fn loss(out: &Tensor, targets: &Tensor, task: Task) -> candle_core::Result<Tensor> {
    match task {
        Task::Classification => candle_nn::loss::cross_entropy(out, targets),
        Task::Regression => candle_nn::loss::mse(out, targets),
    }
}

/// Validation results of one epoch.
struct Evaluation {
    score: f64,
    loss: f64,
    reference: Reference,
}

fn evaluate(net: &Net, x: &Tensor, val: &Dataset, targets: &Targets) -> Result<Evaluation, TrainError> {
    let out = net.forward(x)?;
    match targets {
        Targets::Classes(t) => {
            let loss = loss(&out, t, Task::Classification)?.to_scalar::<f32>()? as f64;
            let probabilities = candle_nn::ops::softmax(&out, 1)?;
            let class_index: Vec<usize> = out.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|k| k as usize).collect();
            let right = class_index.iter().zip(&val.class_index).filter(|(p, t)| **p == **t as usize).count();
            Ok(Evaluation {
                score: right as f64 / val.rows().max(1) as f64,
                loss,
                reference: Reference::Classifier {
                    class_index,
                    probabilities: probabilities.flatten_all()?.to_vec1::<f32>()?,
                },
            })
        }
        Targets::Values { tensor, mean, std } => {
            let loss = loss(&out, tensor, Task::Regression)?.to_scalar::<f32>()? as f64;
            let predictions: Vec<f32> = out.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v * std + mean).collect();
            Ok(Evaluation { score: r2(&predictions, &val.y), loss, reference: Reference::Regressor { predictions } })
        }
    }
}

/// The best epoch so far: its validation score and loss, weights, and
/// outputs on the validation rows.
struct Best {
    score: f64,
    loss: f64,
    epoch: u32,
    weights: Vec<Vec<f32>>,
    reference: Reference,
}

/// The coefficient of determination, `1 - SS_res / SS_tot`, of predictions
/// against truth. With constant truth, 1 for an exact fit and 0 otherwise.
pub fn r2(predictions: &[f32], truth: &[f32]) -> f64 {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().map(|v| *v as f64).sum::<f64>() / n;
    let ss_tot: f64 = truth.iter().map(|v| (*v as f64 - mean).powi(2)).sum();
    let ss_res: f64 = predictions.iter().zip(truth).map(|(p, t)| (*p as f64 - *t as f64).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Trains a network on `train`, scoring every epoch on `val`, and returns
/// the best epoch's network.
///
/// Early stopping: an epoch counts as progress when its validation score
/// beats the best so far by more than `min_delta`, or equals the best with a
/// lower validation loss (accuracy on a small validation set moves in coarse
/// steps and would otherwise stop training on a plateau). After `patience`
/// epochs in a row without progress training stops. The best epoch's weights
/// are the ones kept.
pub fn fit(
    config: &NetConfig,
    train: &Dataset,
    val: &Dataset,
    head_labels: Option<Vec<i64>>,
    seed: u64,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Fitted, TrainError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let task = train.task;
    let outputs = match task {
        Task::Classification => train.classes.len(),
        Task::Regression => 1,
    };
    let scaler = train.standardizer();
    let x_train = features(train, &scaler)?;
    let x_val = features(val, &scaler)?;
    let target_scale = (task == Task::Regression).then(|| mean_std(&train.y));
    let y_train = targets(train, target_scale)?;
    let y_val = targets(val, target_scale)?;
    let y_train_tensor = match &y_train {
        Targets::Classes(t) => t,
        Targets::Values { tensor, .. } => tensor,
    };

    let net = Net::new(config, train.n_features(), outputs, &mut rng)?;
    let params = ParamsAdamW { lr: config.learning_rate, weight_decay: config.weight_decay, ..Default::default() };
    let mut optimizer = AdamW::new(net.vars(), params)?;

    let rows = train.rows();
    let batch_size = config.batch_size.clamp(1, rows.max(1));
    let mut order: Vec<u32> = (0..rows as u32).collect();
    let patience = config.early_stopping.as_ref().map(|e| e.patience.max(1));
    let min_delta = config.early_stopping.as_ref().map_or(0.0, |e| e.min_delta.max(0.0));

    let mut best: Option<Best> = None;
    let mut since_best = 0u32;
    let mut epochs_run = 0u32;
    for epoch in 1..=config.epochs.max(1) {
        order.shuffle(&mut rng);
        let mut total = 0f64;
        for chunk in order.chunks(batch_size) {
            let index = Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?;
            let xb = x_train.index_select(&index, 0)?;
            let yb = y_train_tensor.index_select(&index, 0)?;
            let mut batch_loss = loss(&net.forward(&xb)?, &yb, task)?;
            if config.l2 > 0.0 {
                let mut penalty = Tensor::zeros((), DType::F32, &Device::Cpu)?;
                for layer in &net.layers {
                    penalty = (penalty + layer.weight.as_tensor().sqr()?.sum_all()?)?;
                }
                batch_loss = (batch_loss + (penalty * config.l2)?)?;
            }
            total += batch_loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            optimizer.backward_step(&batch_loss)?;
        }
        epochs_run = epoch;
        let train_loss = total / rows.max(1) as f64;
        let eval = evaluate(&net, &x_val, val, &y_val)?;
        let finite = train_loss.is_finite() && eval.loss.is_finite() && eval.score.is_finite();
        on_event(TrainEvent::Epoch { epoch, train_loss, val_score: eval.score, val_loss: Some(eval.loss) });
        if !finite {
            if best.is_none() {
                return Err(TrainError::Diverged { epoch });
            }
            on_event(TrainEvent::Message(format!(
                "the loss is no longer finite at epoch {epoch}; keeping the best epoch so far"
            )));
            break;
        }
        let progress = match &best {
            None => true,
            Some(b) => eval.score > b.score + min_delta || (eval.score >= b.score && eval.loss < b.loss),
        };
        if progress {
            best = Some(Best {
                score: eval.score,
                loss: eval.loss,
                epoch,
                weights: net.snapshot()?,
                reference: eval.reference,
            });
            since_best = 0;
        } else {
            since_best += 1;
            if patience.is_some_and(|p| since_best >= p) {
                on_event(TrainEvent::Message(format!(
                    "stopping early after epoch {epoch}: no progress for {since_best} epochs"
                )));
                break;
            }
        }
    }

    let Some(Best { score, epoch: best_epoch, weights, reference, .. }) = best else {
        return Err(TrainError::Diverged { epoch: epochs_run });
    };
    let head = match (task, target_scale) {
        (Task::Classification, _) => Head::Classifier { labels: head_labels.unwrap_or_default() },
        (Task::Regression, scale) => {
            let (mean, std) = scale.unwrap_or((0.0, 1.0));
            Head::Regressor { mean, std }
        }
    };
    Ok(Fitted { network: net.to_dense(&weights, &scaler, head), score, epochs_run, best_epoch, reference })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_of_known_fits() {
        assert_eq!(r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(r2(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), 0.0);
        assert!(r2(&[3.0, 2.0, 1.0], &[1.0, 2.0, 3.0]) < 0.0);
        assert_eq!(r2(&[5.0], &[5.0]), 1.0);
    }
}
