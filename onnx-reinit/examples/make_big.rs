//! Writes a big synthetic ONNX model for benchmarks, streaming: the protobuf bytes are encoded
//! by hand and the weights are generated piece by piece, so memory stays at a few MiB whatever
//! the model size.
//!
//! ```text
//! cargo run --release -p onnx-reinit --no-default-features --example make_big -- \
//!     OUT.onnx [--layers 10] [--dim 3200] [--external]
//! ```
//!
//! The model is the one the Python baseline's generator (built with `onnx.helper`) writes: `layers`
//! Gemm layers (transB=1) of `dim`×`dim` f32 weights and `dim` zero biases, alternating Relu and
//! Tanh between them (none after the last), input and output `[1, dim]`, opset 17, ir_version
//! 8, a model doc string and one `metadata_props` entry. Fields are written in field-number
//! order, as protobuf serializers do. Weights are uniform in ±0.0346 (std 0.02, like the
//! script's `0.02·N(0,1)`), from a fixed-seed SplitMix64, so the file is the same on every run.
//!
//! With `--external`, every tensor of 1024 bytes or more goes to `OUT.onnx.data` (the file name
//! of the output plus `.data`, in the same folder), back to back, with `location`, `offset` and
//! `length` keys and `data_location = EXTERNAL`, as `onnx.save(..., save_as_external_data=True,
//! size_threshold=1024)` does. Use it for models over 2 GB (e.g. `--layers 12 --dim 7000`,
//! 2.35 GB), which protobuf cannot hold in one file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to generate.
#[derive(Debug, Clone)]
pub struct BigModel {
    /// Number of Gemm layers.
    pub layers: usize,
    /// Width: weights are `dim`×`dim`, biases `dim`.
    pub dim: usize,
    /// Put tensors of 1024 bytes or more in `<model file name>.data`.
    pub external: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The `.onnx` file.
    pub model: PathBuf,
    /// The side file (external models only).
    pub data: Option<PathBuf>,
    /// Number of parameters.
    pub params: u64,
    /// Bytes written to all files.
    pub bytes: u64,
}

/// Tensors at least this large go to the side file (onnx's `size_threshold` default).
const SIZE_THRESHOLD: u64 = 1024;
/// Values generated and written per step.
const STEP: usize = 1 << 16;
const LEN: u8 = 2;
const VARINT: u8 = 0;

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    put_tag(out, field, VARINT);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, field: u32, s: &str) {
    put_bytes(out, field, s.as_bytes());
}

/// Encoded length of a length-delimited field with a body of `body` bytes (tag < 128).
fn field_len(body: u64) -> u64 {
    1 + varint_len(body) + body
}

/// `StringStringEntryProto { key = 1, value = 2 }`.
fn entry(key: &str, value: &str) -> Vec<u8> {
    let mut m = Vec::new();
    put_str(&mut m, 1, key);
    put_str(&mut m, 2, value);
    m
}

/// `ValueInfoProto` of an f32 tensor `[1, dim]`.
fn value_info(name: &str, dim: usize) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in [1, dim as u64] {
        let mut dimension = Vec::new();
        put_uint(&mut dimension, 1, d); // dim_value
        put_bytes(&mut shape, 1, &dimension); // TensorShapeProto.dim
    }
    let mut tensor = Vec::new();
    put_uint(&mut tensor, 1, 1); // elem_type = FLOAT
    put_bytes(&mut tensor, 2, &shape); // shape
    let mut ty = Vec::new();
    put_bytes(&mut ty, 1, &tensor); // TypeProto.tensor_type
    let mut m = Vec::new();
    put_str(&mut m, 1, name);
    put_bytes(&mut m, 2, &ty);
    m
}

fn node(inputs: &[&str], outputs: &[&str], name: &str, op: &str, trans_b: bool) -> Vec<u8> {
    let mut m = Vec::new();
    for i in inputs {
        put_str(&mut m, 1, i);
    }
    for o in outputs {
        put_str(&mut m, 2, o);
    }
    put_str(&mut m, 3, name);
    put_str(&mut m, 4, op);
    if trans_b {
        let mut a = Vec::new();
        put_str(&mut a, 1, "transB");
        put_uint(&mut a, 3, 1); // i
        put_uint(&mut a, 20, 2); // type = INT
        put_bytes(&mut m, 5, &a);
    }
    m
}

/// Values of a tensor: zeros for biases, a fixed-seed uniform stream for weights.
enum Values {
    Zeros,
    Uniform { state: u64 },
}

impl Values {
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.clear();
        match self {
            Values::Zeros => out.resize(n * 4, 0),
            Values::Uniform { state } => {
                // SplitMix64; two f32 per draw, uniform in ±0.0346 (std 0.02).
                const HALF_WIDTH: f32 = 0.034_641_016;
                let scale = 2.0 * HALF_WIDTH / (1u32 << 24) as f32;
                for k in 0..n.div_ceil(2) {
                    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = *state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    for (j, half) in [z as u32, (z >> 32) as u32].into_iter().enumerate() {
                        if 2 * k + j < n {
                            let v = (half >> 8) as f32 * scale - HALF_WIDTH;
                            out.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
    }
}

struct Tensor {
    /// Every field but the payload (dims, data_type, name; external keys and location).
    head: Vec<u8>,
    /// Payload bytes; inline as `raw_data` unless `external`.
    payload: u64,
    external: bool,
    values: Values,
}

impl Tensor {
    fn encoded_len(&self) -> u64 {
        let body = self.head.len() as u64;
        if self.external {
            body
        } else {
            body + field_len(self.payload)
        }
    }
}

impl BigModel {
    /// The parameters of the model.
    pub fn params(&self) -> u64 {
        (self.layers * (self.dim * self.dim + self.dim)) as u64
    }

    /// Writes the model to `out` (and `out` + `.data` if external); overwrites existing files.
    pub fn write(&self, out: &Path) -> io::Result<Written> {
        let data_name = format!(
            "{}.data",
            out.file_name()
                .ok_or_else(|| io::Error::other("the output has no file name"))?
                .to_string_lossy()
        );
        let data_path = out.with_file_name(&data_name);
        let d = self.dim as u64;

        // The small messages, and every tensor's head, in memory; payloads stream later.
        let mut nodes = Vec::new();
        let mut tensors = Vec::new();
        let mut data_offset = 0u64;
        let mut x = "input".to_string();
        for i in 0..self.layers {
            let (w, b, y) = (
                format!("fc{i}.weight"),
                format!("fc{i}.bias"),
                format!("fc{i}_out"),
            );
            nodes.push(node(
                &[&x, &w, &b],
                &[&y],
                &format!("/fc{i}/Gemm"),
                "Gemm",
                true,
            ));
            if i + 1 < self.layers {
                let act = if i % 2 == 0 { "Relu" } else { "Tanh" };
                let a = format!("act{i}");
                nodes.push(node(&[&y], &[&a], &format!("/act{i}/{act}"), act, false));
                x = a;
            } else {
                x = y;
            }
            for (name, dims, values) in [
                (
                    w,
                    vec![d, d],
                    Values::Uniform {
                        state: 0x5eed ^ ((i as u64) << 32),
                    },
                ),
                (b, vec![d], Values::Zeros),
            ] {
                let payload = dims.iter().product::<u64>() * 4;
                let external = self.external && payload >= SIZE_THRESHOLD;
                let mut head = Vec::new();
                for &dim in &dims {
                    put_uint(&mut head, 1, dim); // dims (unpacked, as onnx's proto2 schema)
                }
                put_uint(&mut head, 2, 1); // data_type = FLOAT
                put_str(&mut head, 8, &name);
                if external {
                    for (k, v) in [
                        ("location", data_name.clone()),
                        ("offset", data_offset.to_string()),
                        ("length", payload.to_string()),
                    ] {
                        put_bytes(&mut head, 13, &entry(k, &v)); // external_data
                    }
                    put_uint(&mut head, 14, 1); // data_location = EXTERNAL
                    data_offset += payload;
                }
                tensors.push(Tensor {
                    head,
                    payload,
                    external,
                    values,
                });
            }
        }
        let mut graph_tail = Vec::new();
        put_bytes(&mut graph_tail, 11, &value_info("input", self.dim));
        put_bytes(&mut graph_tail, 12, &value_info(&x, self.dim));
        let mut graph_head = Vec::new();
        for n in &nodes {
            put_bytes(&mut graph_head, 1, n);
        }
        put_str(&mut graph_head, 2, "big_mlp");
        let graph_len = graph_head.len() as u64
            + tensors
                .iter()
                .map(|t| field_len(t.encoded_len()))
                .sum::<u64>()
            + graph_tail.len() as u64;

        let mut model_head = Vec::new();
        put_uint(&mut model_head, 1, 8); // ir_version
        put_str(&mut model_head, 2, "make_big.rs"); // producer_name
        put_str(&mut model_head, 6, "synthetic MLP for timing"); // doc_string
        put_tag(&mut model_head, 7, LEN); // graph
        put_varint(&mut model_head, graph_len);
        let mut model_tail = Vec::new();
        let mut opset = Vec::new();
        put_str(&mut opset, 1, "");
        put_uint(&mut opset, 2, 17);
        put_bytes(&mut model_tail, 8, &opset); // opset_import
        put_bytes(
            &mut model_tail,
            14,
            &entry("purpose", "onnx-reinit baseline"),
        ); // metadata_props

        let mut model = BufWriter::with_capacity(1 << 20, File::create(out)?);
        let mut data = if self.external {
            Some(BufWriter::with_capacity(1 << 20, File::create(&data_path)?))
        } else {
            None
        };
        let mut bytes = 0u64;
        let mut emit = |w: &mut BufWriter<File>, b: &[u8]| -> io::Result<()> {
            bytes += b.len() as u64;
            w.write_all(b)
        };
        emit(&mut model, &model_head)?;
        emit(&mut model, &graph_head)?;
        let mut buf = Vec::with_capacity(STEP * 4);
        let mut prefix = Vec::new();
        for t in &mut tensors {
            prefix.clear();
            put_tag(&mut prefix, 5, LEN); // GraphProto.initializer
            put_varint(&mut prefix, t.encoded_len());
            prefix.extend_from_slice(&t.head);
            if !t.external {
                put_tag(&mut prefix, 9, LEN); // raw_data
                put_varint(&mut prefix, t.payload);
            }
            emit(&mut model, &prefix)?;
            let sink = match (&mut data, t.external) {
                (Some(d), true) => d,
                _ => &mut model,
            };
            let mut left = (t.payload / 4) as usize;
            while left > 0 {
                let n = left.min(STEP);
                t.values.fill(&mut buf, n);
                emit(sink, &buf)?;
                left -= n;
            }
        }
        emit(&mut model, &graph_tail)?;
        emit(&mut model, &model_tail)?;
        model.into_inner().map_err(io::IntoInnerError::into_error)?;
        if let Some(d) = data {
            d.into_inner().map_err(io::IntoInnerError::into_error)?;
        }
        Ok(Written {
            model: out.to_path_buf(),
            data: self.external.then_some(data_path),
            params: self.params(),
            bytes,
        })
    }
}

#[allow(dead_code)] // Not called when the bench includes this file as a module.
fn main() {
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut spec = BigModel {
        layers: 10,
        dim: 3200,
        external: false,
    };
    let usage = "usage: make_big OUT.onnx [--layers N] [--dim D] [--external]";
    let number = |v: Option<String>| -> usize {
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--layers" => spec.layers = number(args.next()),
            "--dim" => spec.dim = number(args.next()),
            "--external" => spec.external = true,
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("{usage}");
        std::process::exit(2)
    };
    let t = Instant::now();
    match spec.write(&out) {
        Ok(w) => println!(
            "params={} bytes={} model={}{} written in {:.1}s",
            w.params,
            w.bytes,
            w.model.display(),
            w.data
                .map(|d| format!(" data={}", d.display()))
                .unwrap_or_default(),
            t.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("make_big: {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}
