//! A small builder for ONNX graphs over the generated types.
//!
//! Values are named by strings, as in ONNX. Each operator method adds one node
//! and returns the name of its (fresh) output, so a graph reads like the
//! computation it holds:
//!
//! ```
//! use boat_training::onnx::{model_bytes, Dim, GraphBuilder};
//! use boat_training::onnx::proto::tensor_proto::DataType;
//!
//! let mut g = GraphBuilder::new("affine");
//! let x = g.input("input", DataType::Float, &[Dim::named("batch"), Dim::fixed(2)]);
//! let w = g.initializer_f32("w", &[2, 1], &[0.5, -1.0]);
//! let b = g.initializer_f32("b", &[1], &[3.0]);
//! let y = g.gemm(&x, &w, &b);
//! g.output("y", &y, DataType::Float, &[Dim::named("batch"), Dim::fixed(1)]);
//! let bytes = model_bytes(g.finish());
//! assert!(!bytes.is_empty());
//! ```

use std::collections::BTreeSet;

use prost::Message;

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use super::{IR_VERSION, OPSET_VERSION};

/// One dimension of a declared input or output shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A size fixed in the model.
    Fixed(i64),
    /// A symbolic size (such as `batch`), known only when the model runs.
    Named(String),
}

impl Dim {
    pub fn fixed(size: usize) -> Dim {
        Dim::Fixed(size as i64)
    }

    pub fn named(name: &str) -> Dim {
        Dim::Named(name.to_string())
    }

    fn to_proto(&self) -> Dimension {
        let value = match self {
            Dim::Fixed(v) => dimension::Value::DimValue(*v),
            Dim::Named(n) => dimension::Value::DimParam(n.clone()),
        };
        Dimension { value: Some(value), denotation: None }
    }
}

/// The declared type of a tensor value: element type and shape.
fn tensor_value(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let shape = TensorShapeProto { dim: dims.iter().map(Dim::to_proto).collect() };
    let tensor = type_proto::Tensor { elem_type: Some(elem as i32), shape: Some(shape) };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), denotation: None }),
        doc_string: None,
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// Builds one graph: inputs, initializers, nodes and outputs.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    name: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    used: BTreeSet<String>,
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder { name: name.to_string(), ..Default::default() }
    }

    /// A value name not used yet in this graph: `hint` itself if free, else
    /// `hint_1`, `hint_2`, ...
    pub fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut n = 0;
        while self.used.contains(&name) {
            n += 1;
            name = format!("{hint}_{n}");
        }
        self.used.insert(name.clone());
        name
    }

    /// Declares a graph input. The name is taken as given (it is part of
    /// the model's interface); returns it.
    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> String {
        self.used.insert(name.to_string());
        self.inputs.push(tensor_value(name, elem, dims));
        name.to_string()
    }

    /// Declares `value` a graph output called `name`, with its type. When
    /// the names differ, an Identity node gives the value its output name.
    pub fn output(&mut self, name: &str, value: &str, elem: DataType, dims: &[Dim]) {
        if name != value {
            self.used.insert(name.to_string());
            self.node_to("Identity", &[value], name, vec![]);
        }
        self.outputs.push(tensor_value(name, elem, dims));
    }

    /// A float32 constant of shape `dims` (row-major `data`); returns its
    /// name (`hint`, made unique).
    pub fn initializer_f32(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer '{hint}' shape and data differ");
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            float_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// An int64 constant of shape `dims`; returns its name.
    pub fn initializer_i64(&mut self, hint: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer '{hint}' shape and data differ");
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|d| *d as i64).collect(),
            data_type: Some(DataType::Int64 as i32),
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// Adds a node of the default operator set writing the value `output`
    /// (a name the caller chose).
    pub fn node_to(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        self.used.insert(output.to_string());
        let name = self.fresh(&format!("{}_node", op.to_lowercase()));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attributes,
            doc_string: None,
            domain: None,
        });
    }

    /// Adds a node with one fresh output, named after the operator; returns
    /// the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_to(op, inputs, &out, attributes);
        out
    }

    /// `a × b + c` (Gemm; `a` is `[M, K]`, `b` `[K, N]`, `c` broadcasts to
    /// `[M, N]`).
    pub fn gemm(&mut self, a: &str, b: &str, c: &str) -> String {
        self.node("Gemm", &[a, b, c], vec![])
    }

    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.node("MatMul", &[a, b], vec![])
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.node("Sub", &[a, b], vec![])
    }

    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.node("Mul", &[a, b], vec![])
    }

    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.node("Div", &[a, b], vec![])
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    pub fn tanh(&mut self, x: &str) -> String {
        self.node("Tanh", &[x], vec![])
    }

    pub fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.node("Softmax", &[x], vec![attr_int("axis", axis)])
    }

    /// Index of the largest value along `axis` (the first one on ties), as
    /// int64.
    pub fn argmax(&mut self, x: &str, axis: i64, keepdims: bool) -> String {
        self.node("ArgMax", &[x], vec![attr_int("axis", axis), attr_int("keepdims", keepdims as i64)])
    }

    /// `data[indices]` along `axis`.
    pub fn gather(&mut self, data: &str, indices: &str, axis: i64) -> String {
        self.node("Gather", &[data, indices], vec![attr_int("axis", axis)])
    }

    pub fn cast(&mut self, x: &str, to: DataType) -> String {
        self.node("Cast", &[x], vec![attr_int("to", to as i64)])
    }

    /// The finished graph.
    pub fn finish(self) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: Some(self.name),
            initializer: self.initializers,
            doc_string: None,
            input: self.inputs,
            output: self.outputs,
            value_info: vec![],
        }
    }
}

/// Wraps a graph into a model of IR version [`IR_VERSION`] importing the
/// default operator set at [`OPSET_VERSION`].
pub fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("boat".to_string()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        domain: None,
        model_version: None,
        doc_string: None,
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET_VERSION) }],
        metadata_props: vec![],
    }
}

/// The bytes of an ONNX file holding `graph` (see [`model`]).
pub fn model_bytes(graph: GraphProto) -> Vec<u8> {
    model(graph).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_unique_and_round_trip() {
        let mut g = GraphBuilder::new("g");
        let x = g.input("input", DataType::Float, &[Dim::named("batch"), Dim::fixed(3)]);
        let a = g.relu(&x);
        let b = g.relu(&a);
        assert_ne!(a, b);
        let w = g.initializer_f32("relu", &[1], &[2.0]);
        assert!(w != a && w != b);
        let y = g.mul(&b, &w);
        g.output("y", &y, DataType::Float, &[Dim::named("batch"), Dim::fixed(3)]);
        let bytes = model_bytes(g.finish());
        let back = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.ir_version, Some(IR_VERSION));
        let graph = back.graph.unwrap();
        let ops: Vec<_> = graph.node.iter().map(|n| n.op_type.clone().unwrap()).collect();
        assert_eq!(ops, ["Relu", "Relu", "Mul", "Identity"]);
        assert_eq!(graph.node[3].output, ["y"]);
        assert_eq!(graph.initializer[0].float_data, [2.0]);
        let dims = match &graph.input[0].r#type.as_ref().unwrap().value {
            Some(type_proto::Value::TensorType(t)) => t.shape.clone().unwrap().dim,
            other => panic!("{other:?}"),
        };
        assert_eq!(dims[0].value, Some(dimension::Value::DimParam("batch".into())));
        assert_eq!(dims[1].value, Some(dimension::Value::DimValue(3)));
    }

    #[test]
    fn zero_valued_attributes_are_written() {
        // A proto2 optional field keeps an explicit 0, which the ONNX checker
        // needs to see which value field an attribute uses.
        let a = attr_int("keepdims", 0);
        let bytes = a.encode_to_vec();
        let back = AttributeProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.i, Some(0));
        assert_eq!(attr_float("alpha", 1.5).f, Some(1.5));
        assert_eq!(attr_ints("perm", &[1, 0]).ints, [1, 0]);
    }
}
