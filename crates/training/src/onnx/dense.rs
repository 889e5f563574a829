//! Export of dense networks: standardisation, fully connected layers with an
//! activation between them, and a classification or regression head, laid
//! out as the model contract of [`crate::onnx`] says.
//!
//! The graph is
//!
//! ```text
//! input ─ Sub(mean) ─ Div(std) ─ Gemm ─ act ─ … ─ Gemm ─┬─ Softmax ─────────────── probabilities
//!                                                       └─ ArgMax ─ Gather(labels) ─ label
//! ```
//!
//! for a classifier, and ends in `Mul(target std) ─ Add(target mean) ─
//! prediction` for a regressor (which trains on a standardised target).

use super::builder::{model_bytes, Dim, GraphBuilder};
use super::proto::tensor_proto::DataType;
use super::ExportError;

/// The nonlinearity between hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    pub fn parse(s: &str) -> Option<Activation> {
        match s {
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }
}

/// One fully connected layer: `y = x × weight + bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    pub inputs: usize,
    pub outputs: usize,
    /// Row-major `[inputs, outputs]`.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

/// What the last layer's outputs mean.
#[derive(Clone, Debug, PartialEq)]
pub enum Head {
    /// One score per class; `labels[k]` is class `k`'s label.
    Classifier { labels: Vec<i64> },
    /// One output in standardised target units: the prediction is
    /// `output * std + mean`.
    Regressor { mean: f32, std: f32 },
}

/// A trained dense network, everything needed to compute its predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseNetwork {
    /// Per-feature training mean and standard deviation.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The layers, first to last; an activation follows every layer but the
    /// last.
    pub layers: Vec<DenseLayer>,
    pub activation: Activation,
    pub head: Head,
}

impl DenseNetwork {
    /// Checks that the parts fit together.
    pub fn check(&self) -> Result<(), ExportError> {
        let bad = |m: String| Err(ExportError::Invalid(m));
        let n = self.mean.len();
        if n == 0 || self.std.len() != n {
            return bad(format!("{} means and {} standard deviations", n, self.std.len()));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return bad("a standard deviation is zero or not finite".into());
        }
        let Some(last) = self.layers.last() else {
            return bad("no layers".into());
        };
        let mut width = n;
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.inputs != width
                || layer.weight.len() != layer.inputs * layer.outputs
                || layer.bias.len() != layer.outputs
            {
                return bad(format!(
                    "layer {i} does not fit: {width} values reach a {}x{} layer",
                    layer.inputs, layer.outputs
                ));
            }
            if layer.weight.iter().chain(&layer.bias).any(|v| !v.is_finite()) {
                return bad(format!("layer {i} has a weight that is not finite"));
            }
            width = layer.outputs;
        }
        match &self.head {
            Head::Classifier { labels } if labels.len() != last.outputs => {
                bad(format!("{} class labels for {} outputs", labels.len(), last.outputs))
            }
            Head::Classifier { labels } if labels.len() < 2 => bad("a classifier needs at least two classes".into()),
            Head::Regressor { .. } if last.outputs != 1 => bad(format!("a regressor with {} outputs", last.outputs)),
            _ => Ok(()),
        }
    }

    /// The ONNX file of this network (see the module docs for its graph).
    pub fn to_onnx(&self, graph_name: &str) -> Result<Vec<u8>, ExportError> {
        self.check()?;
        let n = self.mean.len();
        let batch = || Dim::named("batch");
        let mut g = GraphBuilder::new(graph_name);
        let x = g.input("input", DataType::Float, &[batch(), Dim::fixed(n)]);
        let mean = g.initializer_f32("feature_mean", &[n], &self.mean);
        let std = g.initializer_f32("feature_std", &[n], &self.std);
        let centred = g.sub(&x, &mean);
        let mut h = g.div(&centred, &std);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let w = g.initializer_f32(&format!("layer{i}_weight"), &[layer.inputs, layer.outputs], &layer.weight);
            let b = g.initializer_f32(&format!("layer{i}_bias"), &[layer.outputs], &layer.bias);
            h = g.gemm(&h, &w, &b);
            if i < last {
                h = match self.activation {
                    Activation::Relu => g.relu(&h),
                    Activation::Tanh => g.tanh(&h),
                };
            }
        }
        match &self.head {
            Head::Classifier { labels } => {
                let k = labels.len();
                let probabilities = g.softmax(&h, 1);
                let index = g.argmax(&h, 1, false);
                let table = g.initializer_i64("class_labels", &[k], labels);
                let label = g.gather(&table, &index, 0);
                g.output("label", &label, DataType::Int64, &[batch()]);
                g.output("probabilities", &probabilities, DataType::Float, &[batch(), Dim::fixed(k)]);
            }
            Head::Regressor { mean, std } => {
                let s = g.initializer_f32("target_std", &[1], &[*std]);
                let m = g.initializer_f32("target_mean", &[1], &[*mean]);
                let scaled = g.mul(&h, &s);
                let prediction = g.add(&scaled, &m);
                g.output("prediction", &prediction, DataType::Float, &[batch(), Dim::fixed(1)]);
            }
        }
        Ok(model_bytes(g.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(head: Head, outputs: usize) -> DenseNetwork {
        DenseNetwork {
            mean: vec![0.0, 1.0],
            std: vec![1.0, 2.0],
            layers: vec![
                DenseLayer { inputs: 2, outputs: 3, weight: vec![0.1; 6], bias: vec![0.0; 3] },
                DenseLayer { inputs: 3, outputs, weight: vec![0.2; 3 * outputs], bias: vec![0.0; outputs] },
            ],
            activation: Activation::Tanh,
            head,
        }
    }

    #[test]
    fn misfits_are_refused() {
        assert!(net(Head::Classifier { labels: vec![0, 1] }, 2).check().is_ok());
        assert!(net(Head::Regressor { mean: 0.0, std: 1.0 }, 1).check().is_ok());
        assert!(net(Head::Classifier { labels: vec![0, 1, 2] }, 2).check().is_err());
        assert!(net(Head::Regressor { mean: 0.0, std: 1.0 }, 2).check().is_err());
        let mut n = net(Head::Classifier { labels: vec![0, 1] }, 2);
        n.layers[1].inputs = 4;
        assert!(n.to_onnx("g").is_err());
        let mut n = net(Head::Classifier { labels: vec![0, 1] }, 2);
        n.layers[0].weight[0] = f32::NAN;
        assert!(n.check().is_err());
    }
}
