//! Builds ONNX files of a chosen size in memory, for benchmarks and tests
//! that need large models without Python. The files are written through
//! boat-training's generated ONNX types and graph builder.

use boat_training::onnx::proto::tensor_proto::DataType;
use boat_training::onnx::{model_bytes, Dim, GraphBuilder};

/// A model computing `output = input x W` with `input: [batch, 4]` and a
/// seeded `W: [4, width]`, so the file is about `16 * width` bytes.
pub fn matmul_model(width: u64, seed: u32) -> Vec<u8> {
    let mut weights = Vec::with_capacity(4 * width as usize);
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for _ in 0..4 * width {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        weights.push((x % 1000) as f32 / 1000.0);
    }
    let batch = || Dim::named("batch");
    let mut g = GraphBuilder::new("matmul");
    let input = g.input("input", DataType::Float, &[batch(), Dim::Fixed(4)]);
    let w = g.initializer_f32("W", &[4, width as usize], &weights);
    g.node_to("MatMul", &[&input, &w], "output", vec![]);
    g.output("output", "output", DataType::Float, &[batch(), Dim::Fixed(width as i64)]);
    model_bytes(g.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_follows_the_width_and_the_seed_picks_the_weights() {
        let small = matmul_model(1000, 1);
        let large = matmul_model(100_000, 1);
        assert!((16_000..17_000).contains(&small.len()), "{}", small.len());
        assert!((1_600_000..1_601_000).contains(&large.len()), "{}", large.len());
        assert_eq!(matmul_model(1000, 1), small);
        assert_ne!(matmul_model(1000, 2), small);
    }
}
