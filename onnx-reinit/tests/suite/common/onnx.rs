//! ONNX messages built in code from [`pb`] field encodings: tensors, nodes, attributes, graphs
//! and models. Every builder returns a message body (without its own field tag).
//!
//! Some builders come in two variants whose bytes differ on purpose: the load/rewrite tests
//! want metadata around every message (it must survive a rewrite byte for byte), the others do
//! not. The seeded mutation tests depend on the exact bytes, so neither variant may change.

use super::pb;

/// `TensorProto.DataType` codes.
pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;
pub const FLOAT16: i32 = 10;
pub const DOUBLE: i32 = 11;
pub const BFLOAT16: i32 = 16;

/// How a built tensor stores its values.
#[derive(Clone, Debug)]
pub enum Payload {
    Raw(Vec<u8>),
    /// Packed `float_data`.
    Floats(Vec<f32>),
    /// `float_data` as one fixed32 field per element.
    FloatsUnpacked(Vec<f32>),
    Doubles(Vec<f64>),
    /// `int32_data` varints (bit patterns for f16/bf16).
    Int32(Vec<u64>),
    /// `external_data` entries `(key, value)`, in order, then `data_location = EXTERNAL`.
    External(Vec<(String, String)>),
    None,
}

impl Payload {
    /// External data at `location`, with `offset` and `length` entries unless `None`.
    pub fn external(location: &str, offset: Option<u64>, length: Option<u64>) -> Payload {
        let mut entries = vec![("location".to_owned(), location.to_owned())];
        if let Some(o) = offset {
            entries.push(("offset".to_owned(), o.to_string()));
        }
        if let Some(l) = length {
            entries.push(("length".to_owned(), l.to_string()));
        }
        Payload::External(entries)
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `TensorProto` body with only dims, data type, name and payload.
pub fn tensor_fields(name: &str, dims: &[i64], dtype: i32, payload: &Payload) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = dims.iter().map(|&d| pb::int(1, d)).collect();
    parts.push(pb::int(2, i64::from(dtype)));
    parts.push(pb::string(8, name));
    match payload {
        Payload::Raw(b) => parts.push(pb::bytes(9, b)),
        Payload::Floats(v) => parts.push(pb::bytes(4, &f32_bytes(v))),
        Payload::FloatsUnpacked(v) => {
            parts.extend(v.iter().map(|x| pb::fixed32(4, x.to_bits())));
        }
        Payload::Doubles(v) => {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            parts.push(pb::bytes(10, &b));
        }
        Payload::Int32(v) => {
            let mut b = Vec::new();
            for &x in v {
                pb::varint(x, &mut b);
            }
            parts.push(pb::bytes(5, &b));
        }
        Payload::External(entries) => {
            for (k, v) in entries {
                parts.push(pb::entry(13, k, v));
            }
            parts.push(pb::int(14, 1));
        }
        Payload::None => {}
    }
    parts.concat()
}

/// A `TensorProto` body: [`tensor_fields`], then a doc string `doc of {name}`.
pub fn tensor(name: &str, dims: &[i64], dtype: i32, payload: &Payload) -> Vec<u8> {
    [
        tensor_fields(name, dims, dtype, payload),
        pb::string(12, &format!("doc of {name}")),
    ]
    .concat()
}

/// A [`tensor`] with a `metadata_props` entry `origin = {name}` after the doc string.
pub fn tensor_with_metadata(name: &str, dims: &[i64], dtype: i32, payload: &Payload) -> Vec<u8> {
    [
        tensor(name, dims, dtype, payload),
        pb::entry(16, "origin", name),
    ]
    .concat()
}

/// A `NodeProto` body; an empty `name` is left out.
pub fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = inputs.iter().map(|s| pb::string(1, s)).collect();
    parts.extend(outputs.iter().map(|s| pb::string(2, s)));
    if !name.is_empty() {
        parts.push(pb::string(3, name));
    }
    parts.push(pb::string(4, op));
    parts.extend(attrs.iter().map(|a| pb::bytes(5, a)));
    parts.concat()
}

/// A [`node`] with a `metadata_props` entry `pkg.torch.stack = node {name}` (as dynamo writes).
pub fn node_with_metadata(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[Vec<u8>],
) -> Vec<u8> {
    [
        node(name, op, inputs, outputs, attrs),
        pb::entry(9, "pkg.torch.stack", &format!("node {name}")),
    ]
    .concat()
}

/// An `AttributeProto` holding an int.
pub fn attr_int(name: &str, v: i64) -> Vec<u8> {
    [pb::string(1, name), pb::int(20, 2), pb::int(3, v)].concat()
}

/// An `AttributeProto` holding ints.
pub fn attr_ints(name: &str, v: &[i64]) -> Vec<u8> {
    let mut parts = vec![pb::string(1, name), pb::int(20, 7)];
    parts.extend(v.iter().map(|&x| pb::int(8, x)));
    parts.concat()
}

/// An `AttributeProto` holding a string.
pub fn attr_str(name: &str, v: &str) -> Vec<u8> {
    [pb::string(1, name), pb::int(20, 3), pb::string(4, v)].concat()
}

/// An `AttributeProto` holding a float.
pub fn attr_float(name: &str, v: f32) -> Vec<u8> {
    [
        pb::string(1, name),
        pb::int(20, 1),
        pb::fixed32(2, v.to_bits()),
    ]
    .concat()
}

/// An `AttributeProto` holding one graph (`g`).
pub fn attr_graph(name: &str, graph_body: &[u8]) -> Vec<u8> {
    [
        pb::string(1, name),
        pb::int(20, 5),
        pb::bytes(6, graph_body),
    ]
    .concat()
}

/// An `AttributeProto` holding several graphs (`graphs`).
pub fn attr_graphs(name: &str, graph_bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![pb::string(1, name), pb::int(20, 10)];
    parts.extend(graph_bodies.iter().map(|g| pb::bytes(11, g)));
    parts.concat()
}

/// A `ValueInfoProto` with a name only.
pub fn value_info(name: &str) -> Vec<u8> {
    pb::string(1, name)
}

/// A `GraphProto` body named `g`: nodes, name, initializers, inputs and outputs (name-only
/// value infos), then a `metadata_props` entry.
pub fn graph(nodes: &[Vec<u8>], inits: &[Vec<u8>], inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = nodes.iter().map(|n| pb::bytes(1, n)).collect();
    parts.push(pb::string(2, "g"));
    parts.extend(inits.iter().map(|t| pb::bytes(5, t)));
    parts.extend(inputs.iter().map(|i| pb::bytes(11, &value_info(i))));
    parts.extend(outputs.iter().map(|o| pb::bytes(12, &value_info(o))));
    parts.push(pb::entry(16, "graph-meta", "kept"));
    parts.concat()
}

/// A `GraphProto` body named `name` without inputs or outputs: nodes first, then initializers
/// (as exporters write them), a doc string and a `metadata_props` entry naming the graph.
pub fn named_graph(name: &str, nodes: &[Vec<u8>], inits: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = nodes.iter().map(|n| pb::bytes(1, n)).collect();
    parts.push(pb::string(2, name));
    parts.extend(inits.iter().map(|t| pb::bytes(5, t)));
    parts.push(pb::string(10, "graph doc"));
    parts.push(pb::entry(16, "graph-meta", name));
    parts.concat()
}

/// A `ModelProto` (IR version 9, opset 20) by `producer` around a graph body, with an optional
/// doc string before it and metadata and an unknown field after it.
pub fn model(producer: &str, doc: Option<&str>, graph_body: &[u8]) -> Vec<u8> {
    let mut parts = vec![pb::int(1, 9), pb::string(2, producer)];
    parts.extend(doc.map(|d| pb::string(6, d)));
    parts.extend([
        pb::msg(8, &[pb::string(1, ""), pb::int(2, 20)]),
        pb::bytes(7, graph_body),
        pb::entry(14, "model-meta", "kept"),
        pb::int(4242, 7),
    ]);
    parts.concat()
}
