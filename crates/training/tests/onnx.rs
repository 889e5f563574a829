//! Graphs from the ONNX builder and the dense exporter, run in ONNX Runtime
//! through boat-serving (needs `ORT_DYLIB_PATH`, see `scripts/fetch-ort.sh`).

use boat_serving::{ModelRegistry, Output, RegistryConfig, Tensor, TensorData};
use boat_training::onnx::proto::tensor_proto::DataType;
use boat_training::onnx::verify::{verify, Reference, VerifyError};
use boat_training::onnx::{model_bytes, Activation, DenseLayer, DenseNetwork, Dim, GraphBuilder, Head};

fn run(onnx: &[u8], rows: usize, x: Vec<f32>) -> Vec<Output> {
    let registry = ModelRegistry::new(RegistryConfig::default());
    registry.load("m", 1, onnx).unwrap();
    let n = x.len() / rows;
    let input = Tensor::new("input", vec![rows as i64, n as i64], TensorData::Fp32(x)).unwrap();
    registry.infer("m", 1, vec![input]).unwrap()
}

fn data<'a>(outputs: &'a [Output], name: &str) -> &'a TensorData {
    outputs.iter().find(|o| o.name() == name).and_then(Output::as_tensor).unwrap().data()
}

#[test]
fn builder_operators_compute_what_they_say() {
    let batch = || Dim::named("batch");
    let mut g = GraphBuilder::new("ops");
    let x = g.input("input", DataType::Float, &[batch(), Dim::fixed(2)]);
    let w = g.initializer_f32("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let two = g.initializer_f32("two", &[1], &[2.0]);
    let one = g.initializer_f32("one", &[1], &[1.0]);
    let product = g.matmul(&x, &w); // [x0 + 3 x1, 2 x0 + 4 x1]
    let halved = g.div(&product, &two);
    let shifted = g.sub(&halved, &one);
    let doubled = g.mul(&shifted, &two);
    let summed = g.add(&doubled, &one);
    let squashed = g.tanh(&summed);
    let clipped = g.relu(&summed);
    let index = g.argmax(&summed, 1, false);
    let names = g.initializer_i64("names", &[2], &[10, 20]);
    let picked = g.gather(&names, &index, 0);
    let as_float = g.cast(&picked, DataType::Float);
    g.output("sum", &summed, DataType::Float, &[batch(), Dim::fixed(2)]);
    g.output("tanh", &squashed, DataType::Float, &[batch(), Dim::fixed(2)]);
    g.output("relu", &clipped, DataType::Float, &[batch(), Dim::fixed(2)]);
    g.output("picked", &as_float, DataType::Float, &[batch()]);
    let outputs = run(&model_bytes(g.finish()), 2, vec![1.0, 0.0, -1.0, -1.0]);
    // (x·w / 2 - 1) * 2 + 1 = x·w - 1
    let TensorData::Fp32(sum) = data(&outputs, "sum") else { panic!() };
    assert_eq!(sum, &[0.0, 1.0, -5.0, -7.0]);
    let TensorData::Fp32(relu) = data(&outputs, "relu") else { panic!() };
    assert_eq!(relu, &[0.0, 1.0, 0.0, 0.0]);
    let TensorData::Fp32(tanh) = data(&outputs, "tanh") else { panic!() };
    assert!((tanh[1] - 1f32.tanh()).abs() < 1e-6);
    let TensorData::Fp32(picked) = data(&outputs, "picked") else { panic!() };
    assert_eq!(picked, &[20.0, 10.0]);
}

fn classifier() -> DenseNetwork {
    DenseNetwork {
        mean: vec![1.0, 2.0],
        std: vec![2.0, 4.0],
        layers: vec![
            DenseLayer { inputs: 2, outputs: 2, weight: vec![1.0, -1.0, 0.5, 2.0], bias: vec![0.0, 0.5] },
            DenseLayer { inputs: 2, outputs: 3, weight: vec![1.0, 0.0, -1.0, 0.0, 1.0, 1.0], bias: vec![0.0; 3] },
        ],
        activation: Activation::Relu,
        head: Head::Classifier { labels: vec![3, 5, 9] },
    }
}

/// The classifier computed by hand, row by row.
fn by_hand(net: &DenseNetwork, x: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let (mut index, mut probabilities) = (Vec::new(), Vec::new());
    for row in x.chunks(2) {
        let mut h: Vec<f32> = row.iter().zip(net.mean.iter().zip(&net.std)).map(|(v, (m, s))| (v - m) / s).collect();
        for (i, l) in net.layers.iter().enumerate() {
            let mut out = l.bias.clone();
            for (j, o) in out.iter_mut().enumerate() {
                *o += (0..l.inputs).map(|k| h[k] * l.weight[k * l.outputs + j]).sum::<f32>();
            }
            if i + 1 < net.layers.len() {
                out.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            h = out;
        }
        let max = h.iter().cloned().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = h.iter().map(|v| (v - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        index.push(h.iter().position(|v| *v == max).unwrap());
        probabilities.extend(exp.iter().map(|e| e / total));
    }
    (index, probabilities)
}

#[test]
fn dense_export_matches_the_network_and_verify_catches_a_difference() {
    let net = classifier();
    let onnx = net.to_onnx("c").unwrap();
    let x = vec![1.0, 2.0, 5.0, -2.0, -3.0, 10.0, 0.0, 0.0];
    let (class_index, probabilities) = by_hand(&net, &x);
    let reference = Reference::Classifier { class_index: class_index.clone(), probabilities: probabilities.clone() };
    assert_eq!(verify(&onnx, &x, 2, &reference, &[3, 5, 9]).unwrap(), 4);

    let outputs = run(&onnx, 4, x.clone());
    let TensorData::Int64(labels) = data(&outputs, "label") else { panic!() };
    let want: Vec<i64> = class_index.iter().map(|k| [3, 5, 9][*k]).collect();
    assert_eq!(labels, &want);

    // A network that is not the one exported is caught.
    let mut other = probabilities.clone();
    other[0] += 0.01;
    let wrong = Reference::Classifier { class_index, probabilities: other };
    assert!(matches!(verify(&onnx, &x, 2, &wrong, &[3, 5, 9]), Err(VerifyError::Mismatch { row: 0, .. })));
}

#[test]
fn regressor_export_scales_back_to_target_units() {
    let net = DenseNetwork {
        mean: vec![0.0],
        std: vec![1.0],
        layers: vec![
            DenseLayer { inputs: 1, outputs: 2, weight: vec![1.0, -1.0], bias: vec![0.0, 0.0] },
            DenseLayer { inputs: 2, outputs: 1, weight: vec![1.0, 1.0], bias: vec![0.0] },
        ],
        activation: Activation::Tanh,
        head: Head::Regressor { mean: 100.0, std: 10.0 },
    };
    let onnx = net.to_onnx("r").unwrap();
    // tanh(x) + tanh(-x) = 0, so every prediction is the target mean.
    let reference = Reference::Regressor { predictions: vec![100.0, 100.0] };
    assert_eq!(verify(&onnx, &[0.5, -2.0], 1, &reference, &[]).unwrap(), 2);
    let off = Reference::Regressor { predictions: vec![100.0, 100.1] };
    assert!(matches!(verify(&onnx, &[0.5, -2.0], 1, &off, &[]), Err(VerifyError::Mismatch { row: 1, .. })));
}

#[test]
fn a_node_may_write_a_graph_output_directly() {
    let mut g = GraphBuilder::new("matmul");
    let x = g.input("input", DataType::Float, &[Dim::named("batch"), Dim::Fixed(2)]);
    let w = g.initializer_f32("W", &[2, 3], &[1.0, 0.0, 2.0, 0.0, 1.0, 3.0]);
    g.node_to("MatMul", &[&x, &w], "output", vec![]);
    g.output("output", "output", DataType::Float, &[Dim::named("batch"), Dim::Fixed(3)]);
    let graph = g.finish();
    assert_eq!(graph.node.len(), 1, "no Identity when the names agree");
    let outputs = run(&model_bytes(graph), 1, vec![1.0, 2.0]);
    let TensorData::Fp32(y) = data(&outputs, "output") else { panic!() };
    assert_eq!(y, &[1.0, 2.0, 8.0]);
}
