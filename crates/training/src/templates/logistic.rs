//! `logistic_regression`: multinomial logistic regression, one linear layer
//! into a softmax, with an L2 penalty on the weights, trained with Adam from
//! zero weights (the loss is convex, so no random start is needed).

use std::collections::BTreeMap;

use super::knob_values::{float, int};
use super::net::NetConfig;
use super::TrainError;
use crate::knobs::{EarlyStopping, KnobConfig, KnobSpec, KnobValue, Knobs};
use crate::onnx::Activation;

pub const NAME: &str = "logistic_regression";

/// Rows per optimiser step; a knob fixed at this value.
const BATCH_SIZE: i64 = 32;

pub fn knob_config() -> KnobConfig {
    let mut knobs = BTreeMap::new();
    knobs.insert("learning_rate".into(), KnobSpec::Float { min: 1e-3, max: 3e-1, log: true });
    knobs.insert("l2".into(), KnobSpec::Float { min: 1e-6, max: 1e-2, log: true });
    knobs.insert("epochs".into(), KnobSpec::Integer { min: 20, max: 200, log: false });
    knobs.insert("batch_size".into(), KnobSpec::Fixed { value: KnobValue::Int(BATCH_SIZE) });
    KnobConfig { knobs, early_stopping: Some(EarlyStopping { patience: 8, min_delta: 0.0 }) }
}

pub fn net_config(knobs: &Knobs, early_stopping: Option<EarlyStopping>) -> Result<NetConfig, TrainError> {
    Ok(NetConfig {
        hidden: vec![],
        activation: Activation::Relu,
        learning_rate: float(knobs, "learning_rate")?,
        weight_decay: 0.0,
        l2: float(knobs, "l2")?,
        epochs: int(knobs, "epochs")? as u32,
        batch_size: int(knobs, "batch_size")? as usize,
        early_stopping,
        zero_init: true,
    })
}
