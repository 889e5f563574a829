//! Builds ONNX files of a chosen size in memory (protobuf written by hand),
//! for benchmarks and tests that need large models without Python.
//!
//! Field numbers are those of `onnx.proto` (ModelProto, GraphProto,
//! NodeProto, TensorProto, ValueInfoProto, TypeProto).

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// ValueInfoProto of a float tensor `[batch, width]` (batch dynamic).
fn float_matrix(name: &str, width: u64) -> Vec<u8> {
    let mut batch = Vec::new();
    field_bytes(&mut batch, 2, b"batch"); // Dimension.dim_param
    let mut fixed = Vec::new();
    field_varint(&mut fixed, 1, width); // Dimension.dim_value
    let mut shape = Vec::new();
    field_bytes(&mut shape, 1, &batch);
    field_bytes(&mut shape, 1, &fixed);
    let mut tensor = Vec::new();
    field_varint(&mut tensor, 1, 1); // elem_type FLOAT
    field_bytes(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    field_bytes(&mut ty, 1, &tensor); // TypeProto.tensor_type
    let mut info = Vec::new();
    field_bytes(&mut info, 1, name.as_bytes());
    field_bytes(&mut info, 2, &ty);
    info
}

/// A model computing `output = input x W` with `input: [batch, 4]` and a
/// seeded `W: [4, width]`, so the file is about `16 * width` bytes.
pub fn matmul_model(width: u64, seed: u32) -> Vec<u8> {
    let mut weights = Vec::with_capacity(16 * width as usize);
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for _ in 0..4 * width {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        weights.extend_from_slice(&((x % 1000) as f32 / 1000.0).to_le_bytes());
    }
    let mut init = Vec::new();
    field_varint(&mut init, 1, 4); // dims
    field_varint(&mut init, 1, width);
    field_varint(&mut init, 2, 1); // data_type FLOAT
    field_bytes(&mut init, 8, b"W"); // name
    field_bytes(&mut init, 9, &weights); // raw_data

    let mut node = Vec::new();
    field_bytes(&mut node, 1, b"input");
    field_bytes(&mut node, 1, b"W");
    field_bytes(&mut node, 2, b"output");
    field_bytes(&mut node, 4, b"MatMul");

    let mut graph = Vec::new();
    field_bytes(&mut graph, 1, &node);
    field_bytes(&mut graph, 2, b"matmul");
    field_bytes(&mut graph, 5, &init);
    field_bytes(&mut graph, 11, &float_matrix("input", 4));
    field_bytes(&mut graph, 12, &float_matrix("output", width));

    let mut opset = Vec::new();
    field_bytes(&mut opset, 1, b"");
    field_varint(&mut opset, 2, 17);
    let mut model = Vec::new();
    field_varint(&mut model, 1, 8); // ir_version
    field_bytes(&mut model, 7, &graph);
    field_bytes(&mut model, 8, &opset);
    model
}
