//! `mlp_classifier` and `mlp_regressor`: multi-layer perceptrons of one to
//! three equally wide hidden layers, trained with AdamW.
//!
//! The ranges keep a trial short on the shipped datasets (a few seconds on
//! digits, the largest) while leaving room to search: learning rates below
//! 1e-3 barely move in the epochs allowed, and more than 256 units only add
//! time on data of this size.

use std::collections::BTreeMap;

use super::knob_values::{float, int, string};
use super::net::NetConfig;
use super::TrainError;
use crate::knobs::{EarlyStopping, KnobConfig, KnobSpec, KnobValue, Knobs};
use crate::onnx::Activation;

pub const CLASSIFIER: &str = "mlp_classifier";
pub const REGRESSOR: &str = "mlp_regressor";

/// Both MLP templates search the same space.
pub fn knob_config() -> KnobConfig {
    let mut knobs = BTreeMap::new();
    knobs.insert("hidden_layers".into(), KnobSpec::Integer { min: 1, max: 3, log: false });
    knobs.insert("hidden_units".into(), KnobSpec::Integer { min: 8, max: 256, log: true });
    knobs.insert("learning_rate".into(), KnobSpec::Float { min: 1e-3, max: 1e-1, log: true });
    knobs.insert("epochs".into(), KnobSpec::Integer { min: 20, max: 200, log: false });
    knobs.insert(
        "batch_size".into(),
        KnobSpec::Categorical { values: [16, 32, 64, 128].into_iter().map(KnobValue::Int).collect() },
    );
    knobs.insert(
        "activation".into(),
        KnobSpec::Categorical { values: vec![KnobValue::Str("relu".into()), KnobValue::Str("tanh".into())] },
    );
    knobs.insert("weight_decay".into(), KnobSpec::Float { min: 1e-6, max: 1e-2, log: true });
    KnobConfig { knobs, early_stopping: Some(EarlyStopping { patience: 8, min_delta: 0.0 }) }
}

/// The training settings of (validated) knobs.
pub fn net_config(knobs: &Knobs, early_stopping: Option<EarlyStopping>) -> Result<NetConfig, TrainError> {
    let layers = int(knobs, "hidden_layers")? as usize;
    let units = int(knobs, "hidden_units")? as usize;
    let activation = string(knobs, "activation")?;
    Ok(NetConfig {
        hidden: vec![units; layers],
        activation: Activation::parse(activation)
            .ok_or_else(|| TrainError::Knob(format!("activation '{activation}' is not relu or tanh")))?,
        learning_rate: float(knobs, "learning_rate")?,
        weight_decay: float(knobs, "weight_decay")?,
        l2: 0.0,
        epochs: int(knobs, "epochs")? as u32,
        batch_size: int(knobs, "batch_size")? as usize,
        early_stopping,
        zero_init: false,
    })
}
