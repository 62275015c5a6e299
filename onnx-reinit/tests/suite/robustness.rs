//! Robustness: hostile, broken and huge models never crash onnx-reinit or lose a file.
//!
//! - A seeded, structure-aware mutation loop over every fixture (bit flips, truncations,
//!   splices, length-prefix corruption, duplicated/moved/deleted fields, hostile field values)
//!   through open → analysis → plan → rewrite: an error or a success, never a panic, and every
//!   success passes the fidelity check. `ONNX_REINIT_MUTATIONS=N` runs N rounds instead of the
//!   default (which keeps the test at a few seconds in debug).
//! - Every refusal of issue 7 through the CLI binary: the message names what is wrong, no output
//!   file (nor temporary file) is left, the input is unchanged.
//! - Read-only destination, full disk (a 1 MiB tmpfs, and `RLIMIT_FSIZE`), SIGINT mid-run.
//! - Determinism for 1 vs 2 threads and across runs; external-data models through the CLI.
//! - `#[ignore]`d: the same on ≥ 100 MB and a > 2 GB external-data model (run with
//!   `cargo test --release -p onnx-reinit --test suite -- robustness:: --ignored --nocapture`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use onnx_reinit::analysis::AnalysisOptions;
use onnx_reinit::apply::PlanFiller;
use onnx_reinit::onnx::model::{LoadedModel, Storage};
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::onnx::wire;
use onnx_reinit::pipeline::{self, RunError};
use onnx_reinit::plan::{self, Rules};
use onnx_reinit::report::Report;
use onnx_reinit::rewrite::{self, OutputTarget, RewriteOptions, RewriteStats};

use crate::common::fidelity::{bits, inline_ranges, length_prefixes, outside};
use crate::common::onnx::{
    self, BFLOAT16, DOUBLE, FLOAT, FLOAT16, Payload, attr_float, attr_graph, attr_int, attr_ints,
    attr_str, f32_bytes, graph, node, tensor, value_info,
};
use crate::common::{bin, fixture_models, pb, probe_number, proc_status, run_probe, text};

/// This file's models: by `robustness-test`, without a doc string.
fn model(graph_body: &[u8]) -> Vec<u8> {
    onnx::model("robustness-test", None, graph_body)
}

/// A Gemm MLP: `x → Gemm(W_k, B_k, transB) → act_k → …`; `inits[k]` are the weight and bias
/// tensors of layer k (already encoded).
fn gemm_mlp(layers: &[(&str, &str, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut x = "x".to_string();
    for (k, (w, act, wt, bt)) in layers.iter().enumerate() {
        let b = format!("{w}.bias");
        let h = format!("h{k}");
        let y = format!("y{k}");
        nodes.push(node(
            &format!("gemm{k}"),
            "Gemm",
            &[&x, w, &b],
            &[&h],
            &[attr_int("transB", 1)],
        ));
        nodes.push(node(&format!("act{k}"), act, &[&h], &[&y], &[]));
        inits.push(wt.clone());
        inits.push(bt.clone());
        x = y;
    }
    model(&graph(&nodes, &inits, &["x"], &[&x]))
}

// =============================================================================================
// Deterministic randomness.
// =============================================================================================

/// xorshift64*: small, seeded, good enough to drive mutations.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Values that tend to break integer handling.
const INTERESTING: [i64; 22] = [
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    64,
    255,
    256,
    65536,
    1 << 31,
    (1 << 31) - 1,
    -(1 << 31),
    1 << 32,
    1 << 40,
    1 << 61,
    1 << 62,
    i64::MAX,
    i64::MIN,
    -3,
    100_000,
];

const OPS: [&str; 40] = [
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "LSTM",
    "GRU",
    "RNN",
    "Gather",
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "PRelu",
    "Add",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Reshape",
    "Transpose",
    "If",
    "Loop",
    "Scan",
    "Sigmoid",
    "Mul",
    "Tanh",
    "Softmax",
    "Identity",
    "Constant",
    "Erf",
    "Div",
    "Pow",
    "Sum",
    "Gelu",
    "Elu",
    "HardSigmoid",
    "Cast",
    "Dropout",
    "MaxPool",
    "Flatten",
    "Squeeze",
];

const ATTR_NAMES: [&str; 22] = [
    "group",
    "hidden_size",
    "direction",
    "transA",
    "transB",
    "alpha",
    "beta",
    "axis",
    "kernel_shape",
    "perm",
    "value",
    "then_branch",
    "else_branch",
    "body",
    "layout",
    "epsilon",
    "min",
    "max",
    "num_groups",
    "approximate",
    "activations",
    "linear_before_reset",
];

const LOCATIONS: [&str; 9] = [
    "w.bin",
    "sub/v.bin",
    "/etc/passwd",
    "../w.bin",
    "sub/../w.bin",
    "missing.bin",
    "",
    "model.onnx",
    "sub",
];

// =============================================================================================
// A structure-aware view of a model for mutation: the messages on the path to initializers and
// nodes are parsed into trees and re-encoded with correct lengths after an edit.
// =============================================================================================

mod tree {
    use onnx_reinit::onnx::wire::{Reader, Value};
    use std::ops::Range;

    /// The message types the mutator descends into.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        Model,
        Graph,
        Node,
        Attr,
        Tensor,
        Entry,
    }

    fn child(kind: Kind, field: u32) -> Option<Kind> {
        use Kind::*;
        Some(match (kind, field) {
            (Model, 7) | (Attr, 6 | 11) => Graph,
            (Model, 14) | (Graph, 16) | (Node, 9) | (Tensor, 13 | 16) => Entry,
            (Graph, 1) => Node,
            (Graph, 5) | (Attr, 5 | 10) => Tensor,
            (Node, 5) => Attr,
            _ => return None,
        })
    }

    /// One field of a message.
    #[derive(Clone, Debug)]
    pub enum Item {
        /// A field kept as its encoded bytes (tag included).
        Raw(Vec<u8>),
        /// An embedded message, re-encoded from its children.
        Msg {
            tag: Vec<u8>,
            kind: Kind,
            children: Vec<Item>,
        },
    }

    impl Item {
        /// Field number and wire type of a raw field.
        pub fn raw_tag(&self) -> Option<(u32, u8, usize)> {
            let Item::Raw(b) = self else { return None };
            let (tag, len) = onnx_reinit::onnx::wire::decode_varint(b, 0).ok()?;
            Some(((tag >> 3) as u32, (tag & 7) as u8, len))
        }
    }

    /// Parses a `ModelProto`; `None` if the top level is not well-formed.
    pub fn parse(buf: &[u8]) -> Option<Vec<Item>> {
        parse_body(buf, 0..buf.len(), Kind::Model)
    }

    fn parse_body(buf: &[u8], range: Range<usize>, kind: Kind) -> Option<Vec<Item>> {
        let mut r = Reader::sub(buf, range);
        let mut out = Vec::new();
        while let Some(f) = r.next_field().ok()? {
            let parsed = match (&f.value, child(kind, f.number)) {
                (Value::Len { prefix, body }, Some(k)) => {
                    parse_body(buf, body.clone(), k).map(|children| Item::Msg {
                        tag: buf[f.start..prefix.start].to_vec(),
                        kind: k,
                        children,
                    })
                }
                _ => None,
            };
            out.push(parsed.unwrap_or_else(|| Item::Raw(buf[f.start..f.end].to_vec())));
        }
        Some(out)
    }

    /// Encodes `items`, recording the byte range of every length prefix it writes.
    pub fn encode(items: &[Item], out: &mut Vec<u8>, lens: &mut Vec<Range<usize>>) {
        for it in items {
            match it {
                Item::Raw(b) => out.extend_from_slice(b),
                Item::Msg { tag, children, .. } => {
                    let mut body = Vec::new();
                    let mut inner = Vec::new();
                    encode(children, &mut body, &mut inner);
                    out.extend_from_slice(tag);
                    let p = out.len();
                    super::pb::varint(body.len() as u64, out);
                    lens.push(p..out.len());
                    let base = out.len();
                    lens.extend(inner.into_iter().map(|r| r.start + base..r.end + base));
                    out.extend_from_slice(&body);
                }
            }
        }
    }

    /// Number of messages (the top level included).
    pub fn count(items: &[Item]) -> usize {
        1 + items
            .iter()
            .map(|it| match it {
                Item::Msg { children, .. } => count(children),
                Item::Raw(_) => 0,
            })
            .sum::<usize>()
    }

    /// The `k`-th message in pre-order (0 is the top level) and its kind.
    pub fn nth<'a>(
        items: &'a mut Vec<Item>,
        kind: Kind,
        k: &mut usize,
    ) -> Option<(&'a mut Vec<Item>, Kind)> {
        if *k == 0 {
            return Some((items, kind));
        }
        *k -= 1;
        for it in items.iter_mut() {
            if let Item::Msg { kind, children, .. } = it
                && let Some(found) = nth(children, *kind, k)
            {
                return Some(found);
            }
        }
        None
    }
}

use tree::{Item, Kind};

/// Strings worth reusing in mutations: initializer names and node inputs/outputs.
fn names_of(items: &[Item], out: &mut Vec<String>) {
    for it in items {
        match it {
            Item::Msg { children, .. } => names_of(children, out),
            Item::Raw(b) => {
                if let Some((field, 2, tl)) = it.raw_tag()
                    && matches!(field, 1 | 2 | 8)
                    && let Ok((len, ll)) = wire::decode_varint(&b[tl..], 0)
                    && let Some(s) = b.get(tl + ll..tl + ll + len as usize)
                    && let Ok(s) = std::str::from_utf8(s)
                    && !s.is_empty()
                    && s.len() < 64
                    && out.len() < 64
                {
                    out.push(s.to_owned());
                }
            }
        }
    }
}

/// A random field for a message of `kind`.
fn random_field(rng: &mut Rng, kind: Kind, names: &[String]) -> Vec<u8> {
    let name = |rng: &mut Rng| -> String {
        if names.is_empty() || rng.chance(1, 8) {
            format!("n{}", rng.below(4))
        } else {
            rng.pick(names)
        }
    };
    let int = |rng: &mut Rng| -> i64 {
        if rng.chance(1, 2) {
            rng.pick(&INTERESTING)
        } else {
            rng.below(40) as i64
        }
    };
    match kind {
        Kind::Tensor => match rng.below(12) {
            0 => pb::int(1, int(rng)),
            1 => pb::int(
                2,
                rng.pick(&[0, 1, 2, 6, 7, 8, 10, 11, 14, 16, 17, 21, 25, -1, 1000]),
            ),
            2 => pb::int(14, rng.pick(&[0, 1, 2, -1])),
            3 => pb::entry(13, "location", rng.pick(&LOCATIONS)),
            4 => pb::entry(
                13,
                rng.pick(&["offset", "length", "checksum"]),
                rng.pick(&["0", "4", "16", "-1", "18446744073709551615", "x", " 8"]),
            ),
            5 => {
                let n = rng.pick(&[0, 1, 3, 4, 8, 16]);
                pb::bytes(9, &rng.bytes(n))
            }
            6 => {
                let n = 4 * rng.below(5);
                pb::bytes(4, &rng.bytes(n))
            }
            7 => pb::fixed32(4, rng.next() as u32),
            8 => {
                let mut b = Vec::new();
                for _ in 0..rng.below(6) {
                    pb::varint(rng.next() % 70000, &mut b);
                }
                pb::bytes(5, &b)
            }
            9 => pb::string(8, &name(rng)),
            10 => pb::msg(3, &[pb::int(1, 0), pb::int(2, 2)]),
            _ => pb::bytes(6, b"s"),
        },
        Kind::Node => match rng.below(5) {
            0 => pb::string(1, &name(rng)),
            1 => pb::string(2, &name(rng)),
            2 => pb::string(4, rng.pick(&OPS)),
            3 => pb::string(3, &name(rng)),
            _ => pb::bytes(5, &random_attr(rng, names)),
        },
        Kind::Attr => match rng.below(6) {
            0 => pb::int(3, int(rng)),
            1 => pb::int(8, int(rng)),
            2 => pb::fixed32(2, rng.pick(&[0.0f32, -1.0, 1e30, f32::NAN, 0.01]).to_bits()),
            3 => pb::string(1, rng.pick(&ATTR_NAMES)),
            4 => pb::bytes(6, &small_graph(rng, names)),
            _ => pb::int(20, rng.below(14) as i64),
        },
        Kind::Graph => match rng.below(5) {
            0 => pb::bytes(1, &random_node(rng, names)),
            2 => pb::bytes(11, &value_info(&name(rng))),
            3 => pb::bytes(12, &value_info(&name(rng))),
            _ => pb::bytes(5, &random_tensor(rng, names)),
        },
        Kind::Model => pb::bytes(7, &small_graph(rng, names)),
        Kind::Entry => pb::string(rng.below(3) as u32 + 1, rng.pick(&LOCATIONS)),
    }
}

fn random_attr(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let name = rng.pick(&ATTR_NAMES);
    match rng.below(5) {
        0 => [
            pb::string(1, name),
            pb::int(20, 2),
            pb::int(3, rng.pick(&INTERESTING)),
        ]
        .concat(),
        1 => {
            let mut v = vec![pb::string(1, name), pb::int(20, 7)];
            for _ in 0..rng.below(4) {
                v.push(pb::int(8, rng.pick(&INTERESTING)));
            }
            v.concat()
        }
        2 => [
            pb::string(1, name),
            pb::int(20, 1),
            pb::fixed32(
                2,
                rng.pick(&[0.0f32, 6.0, -1.0, 0.01, f32::INFINITY])
                    .to_bits(),
            ),
        ]
        .concat(),
        3 => attr_graph(name, &small_graph(rng, names)),
        _ => [
            pb::string(1, name),
            pb::int(20, 4),
            pb::bytes(5, &random_tensor(rng, names)),
        ]
        .concat(),
    }
}

fn random_node(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let pick = |rng: &mut Rng| -> String {
        if names.is_empty() {
            "x".into()
        } else {
            rng.pick(names)
        }
    };
    let inputs: Vec<String> = (0..rng.below(4)).map(|_| pick(rng)).collect();
    let outputs: Vec<String> = (0..rng.below(3)).map(|_| pick(rng)).collect();
    let attrs: Vec<Vec<u8>> = (0..rng.below(3)).map(|_| random_attr(rng, names)).collect();
    let i: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let o: Vec<&str> = outputs.iter().map(String::as_str).collect();
    node("", rng.pick(&OPS), &i, &o, &attrs)
}

fn random_tensor(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let name = if names.is_empty() || rng.chance(1, 2) {
        format!("t{}", rng.below(8))
    } else {
        rng.pick(names)
    };
    let n = rng.below(5);
    let dims: Vec<i64> = if rng.chance(1, 4) {
        vec![rng.pick(&INTERESTING), rng.pick(&INTERESTING)]
    } else {
        vec![n as i64]
    };
    let dtype = rng.pick(&[FLOAT, FLOAT, DOUBLE, FLOAT16, BFLOAT16, 7, 6]);
    let width = match dtype {
        DOUBLE | 7 => 8,
        FLOAT16 | BFLOAT16 => 2,
        _ => 4,
    };
    let payload = match rng.below(4) {
        1 => Payload::external(
            rng.pick(&LOCATIONS),
            Some(rng.below(3) as u64 * 4),
            Some((n * width) as u64),
        ),
        2 if dtype == FLOAT => Payload::Floats(vec![0.5; n]),
        _ => Payload::Raw(rng.bytes(n * width)),
    };
    tensor(&name, &dims, dtype, &payload)
}

fn small_graph(rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let nodes: Vec<Vec<u8>> = (0..rng.below(3)).map(|_| random_node(rng, names)).collect();
    let inits: Vec<Vec<u8>> = (0..rng.below(3))
        .map(|_| random_tensor(rng, names))
        .collect();
    graph(&nodes, &inits, &["x"], &["y"])
}

/// Applies one structural edit to the tree.
fn mutate_tree(rng: &mut Rng, items: &mut Vec<Item>, names: &[String]) {
    let total = tree::count(items);
    let mut k = rng.below(total);
    let Some((msg, kind)) = tree::nth(items, Kind::Model, &mut k) else {
        return;
    };
    let n = msg.len();
    match rng.below(8) {
        // Duplicate a field (a duplicate initializer, name, raw_data, dims, graph, …).
        0 if n > 0 => {
            let i = rng.below(n);
            let c = msg[i].clone();
            let at = if rng.chance(1, 2) {
                i + 1
            } else {
                rng.below(n + 1)
            };
            msg.insert(at, c);
        }
        1 if n > 0 => {
            msg.remove(rng.below(n));
        }
        2 if n > 1 => {
            let i = rng.below(n);
            let j = rng.below(n);
            msg.swap(i, j);
        }
        // A varint field gets a hostile value (dims, data_type, attribute ints, …).
        3 => {
            let varints: Vec<usize> = (0..n)
                .filter(|&i| matches!(msg[i].raw_tag(), Some((_, 0, _))))
                .collect();
            if let Some(&i) = varints.get(rng.below(varints.len().max(1))) {
                let (field, _, _) = msg[i].raw_tag().unwrap();
                msg[i] = Item::Raw(pb::int(field, rng.pick(&INTERESTING)));
            }
        }
        // A length-delimited raw field gets its body cut or replaced (framing stays right).
        4 => {
            let lens: Vec<usize> = (0..n)
                .filter(|&i| matches!(msg[i].raw_tag(), Some((_, 2, _))))
                .collect();
            if let Some(&i) = lens.get(rng.below(lens.len().max(1))) {
                let (field, _, tl) = msg[i].raw_tag().unwrap();
                let Item::Raw(b) = &msg[i] else {
                    unreachable!()
                };
                let (len, ll) = wire::decode_varint(&b[tl..], 0).unwrap();
                let body = b[tl + ll..tl + ll + len as usize].to_vec();
                let new_body = if rng.chance(1, 2) && !body.is_empty() {
                    body[..rng.below(body.len())].to_vec()
                } else {
                    let n = rng.below(9);
                    [body, rng.bytes(n)].concat()
                };
                msg[i] = Item::Raw(pb::bytes(field, &new_body));
            }
        }
        // Move a field into another message (a raw_data into an external tensor, a node into a
        // nested graph, an initializer into a branch, …).
        5 if n > 0 => {
            let c = msg.remove(rng.below(n));
            let total = tree::count(items);
            let mut k = rng.below(total);
            if let Some((other, _)) = tree::nth(items, Kind::Model, &mut k) {
                let at = rng.below(other.len() + 1);
                other.insert(at, c);
            }
        }
        _ => {
            let f = random_field(rng, kind, names);
            let at = rng.below(n + 1);
            msg.insert(at, Item::Raw(f));
        }
    }
}

/// Replaces the length varint at `at` with another value (and possibly another width).
fn corrupt_length(rng: &mut Rng, b: &mut Vec<u8>, at: Range<usize>) {
    let Ok((len, _)) = wire::decode_varint(&b[at.start..at.end], 0) else {
        return;
    };
    let mut v = Vec::new();
    match rng.below(6) {
        0 => pb::varint(len + 1 + rng.below(4) as u64, &mut v),
        1 => pb::varint(len.saturating_sub(1 + rng.below(4) as u64), &mut v),
        2 => pb::varint(0, &mut v),
        3 => pb::varint(u64::MAX, &mut v),
        4 => {
            // Overlong: the same value in 11 bytes.
            let mut x = len;
            for _ in 0..10 {
                v.push((x as u8 & 0x7f) | 0x80);
                x >>= 7;
            }
            v.push(0);
        }
        _ => pb::varint(rng.next() >> rng.below(64), &mut v),
    }
    b.splice(at, v);
}

/// One mutant of `src`.
fn mutate(rng: &mut Rng, src: &[u8], others: &[Vec<u8>], names: &[String]) -> Vec<u8> {
    let mut b = if rng.chance(2, 3)
        && let Some(mut items) = tree::parse(src)
    {
        for _ in 0..=rng.below(3) {
            mutate_tree(rng, &mut items, names);
        }
        let mut out = Vec::with_capacity(src.len() + 64);
        let mut lens = Vec::new();
        tree::encode(&items, &mut out, &mut lens);
        if rng.chance(1, 4) && !lens.is_empty() {
            let at = rng.pick(&lens).clone();
            corrupt_length(rng, &mut out, at);
        }
        out
    } else {
        src.to_vec()
    };
    if b.is_empty() {
        return b;
    }
    // Byte-level damage on top, sometimes.
    match rng.below(8) {
        0 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let cut = rng.below(b.len());
            b.truncate(cut);
        }
        2 => {
            let other = rng.pick(others);
            if !other.is_empty() {
                let from = rng.below(other.len());
                let len = rng.below(256);
                let chunk = other[from..(from + len).min(other.len())].to_vec();
                let at = rng.below(b.len());
                let del = rng.below(64).min(b.len() - at);
                b.splice(at..at + del, chunk);
            }
        }
        3 => {
            let i = rng.below(b.len());
            b[i] = rng.pick(&[0x00, 0x80, 0xff, 0x7f, 0x0a, 0x3a]);
        }
        _ => {}
    }
    b
}

// =============================================================================================
// The pipeline under test, and the fidelity check.
// =============================================================================================

/// The CLI's default seed, so the property test writes what the tool would.
const SEED: u64 = pipeline::DEFAULT_SEED;

/// Which stage a model reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reached {
    /// `LoadedModel::open` refused it.
    Refused,
    /// Loaded; analysis, plan or value preparation refused it.
    Loaded,
    /// Planned; the rewrite refused it.
    Planned,
    /// Rewritten, with the length kept.
    Rewritten,
    /// Rewritten with `int32_data` re-framed.
    Reframed,
}

fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// Asserts that `b` is `a` with changes only inside `ranges` (same length).
fn assert_same_outside(a: &[u8], b: &[u8], ranges: &[Range<usize>], what: &str) {
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: output length differs from input length"
    );
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut pos = 0;
    for r in sorted.iter().chain([&(a.len()..a.len())]) {
        if r.start > pos
            && let Some(k) = (pos..r.start).find(|&k| a[k] != b[k])
        {
            panic!("{what}: byte {k} differs outside every payload range");
        }
        pos = pos.max(r.end);
    }
}

/// The fidelity check of one successful rewrite: `before` (the input bytes, opened as `m`) was
/// rewritten into `out` (side files next to it, or in place).
fn check_fidelity(
    m: &LoadedModel,
    before: &[u8],
    side_before: &BTreeMap<PathBuf, Vec<u8>>,
    filler: &PlanFiller,
    targets: &[usize],
    stats: &RewriteStats,
    out: &Path,
) {
    let after = fs::read(out).unwrap();
    let o =
        LoadedModel::open(out).unwrap_or_else(|e| panic!("the rewritten model does not load: {e}"));
    assert_eq!(o.tensors().len(), m.tensors().len());
    for (a, b) in m.tensors().iter().zip(o.tensors()) {
        assert_eq!(
            (
                m.graph_of(a),
                &a.name,
                &a.dims,
                a.data_type,
                a.storage.kind()
            ),
            (
                o.graph_of(b),
                &b.name,
                &b.dims,
                b.data_type,
                b.storage.kind()
            )
        );
    }
    let ranges: Vec<Range<usize>> = targets.iter().flat_map(|&i| inline_ranges(m, i)).collect();
    if stats.reframed == 0 {
        assert_same_outside(before, &after, &ranges, "model");
    } else {
        // Re-framed: every byte outside the payloads and the length prefixes is kept, in order.
        let out_ranges: Vec<Range<usize>> =
            targets.iter().flat_map(|&i| inline_ranges(&o, i)).collect();
        let holes_in = [ranges, length_prefixes(before)].concat();
        let holes_out = [out_ranges, length_prefixes(&after)].concat();
        assert!(
            outside(before, &holes_in) == outside(&after, &holes_out),
            "re-framed output changed bytes outside payloads and length prefixes"
        );
    }
    // Side files: same length, changes only inside the targets' ranges.
    for (i, t) in m.tensors().iter().enumerate() {
        let Storage::External(ext) = &t.storage else {
            continue;
        };
        let (path, location) = (&ext.path, &ext.location);
        let src = &side_before[path];
        let dst = fs::read(o.dir().join(location)).unwrap();
        let ranges: Vec<Range<usize>> = m
            .tensors()
            .iter()
            .enumerate()
            .filter(|(k, _)| targets.contains(k))
            .filter_map(|(_, t)| match &t.storage {
                Storage::External(e) if e.path == *path => {
                    Some(e.offset as usize..(e.offset + e.length) as usize)
                }
                _ => None,
            })
            .collect();
        assert_same_outside(src, &dst, &ranges, &format!("side file of {i}"));
    }
    // The targets hold the planned values; the others their old ones.
    for i in 0..m.tensors().len() {
        if !m.tensors()[i].dtype().is_float() {
            continue;
        }
        let got = bits(&o, i, None);
        if targets.contains(&i) {
            assert!(
                got == bits(m, i, Some(filler)),
                "tensor {:?}: written values differ from the plan",
                m.tensors()[i].name
            );
        } else {
            assert!(got == bits(m, i, None), "untouched tensor {i} changed");
        }
    }
}

/// Runs open → analysis → plan → values → rewrite on `input`, to `out_dir/out.onnx` or in place.
/// Asserts "error or success, never panic" (a panic fails the test), that every error names the
/// model file and leaves no file behind, and the fidelity of every success.
fn exercise(input: &Path, out_dir: &Path, in_place: bool) -> Reached {
    let file_name = input.file_name().unwrap().to_string_lossy().into_owned();
    let in_dir = input.parent().unwrap();
    let before = fs::read(input).unwrap();
    let in_listing = listing(in_dir);
    let out_listing = listing(out_dir);
    let unchanged = |what: &str| {
        assert_eq!(
            fs::read(input).unwrap(),
            before,
            "input changed after: {what}"
        );
        assert_eq!(
            listing(in_dir),
            in_listing,
            "input folder changed after: {what}"
        );
        assert_eq!(
            listing(out_dir),
            out_listing,
            "output folder changed after: {what}"
        );
    };
    let m = match LoadedModel::open(input) {
        Ok(m) => m,
        Err(e) => {
            // Every structural error is located (the skeleton decoder's too).
            assert!(
                !matches!(e, onnx_reinit::error::Error::Decode { .. }),
                "a decode error without a byte offset: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&file_name), "{msg:?} does not name the file");
            assert!(!msg.contains('\n'), "{msg:?} is not one line");
            unchanged(&msg);
            return Reached::Refused;
        }
    };
    let analysis = match pipeline::analyze_loaded(&m, &AnalysisOptions::default()) {
        Ok(a) => a,
        Err(e @ RunError::AnalysisMismatch { .. }) => panic!("{e}"),
        Err(e) => {
            unchanged(&e.to_string());
            return Reached::Loaded;
        }
    };
    let Ok(plan) = plan::plan(&analysis, &Rules::default(), SEED) else {
        return Reached::Loaded;
    };
    // The report must render whatever the model (the CLI prints it).
    let report = Report::new(&input.display().to_string(), &analysis, &plan, false, None);
    let _ = report.table();
    let _ = serde_json::to_string(&report).unwrap();
    let Ok(filler) = PlanFiller::new(&analysis, &plan) else {
        return Reached::Loaded;
    };
    let targets = filler.targets();
    let side_before: BTreeMap<PathBuf, Vec<u8>> = m
        .tensors()
        .iter()
        .filter_map(|t| match &t.storage {
            Storage::External(e) => Some((e.path.clone(), fs::read(&e.path).unwrap())),
            _ => None,
        })
        .collect();
    let out = if in_place {
        input.to_path_buf()
    } else {
        out_dir.join("out.onnx")
    };
    let mut opts = RewriteOptions::new(if in_place {
        OutputTarget::InPlace
    } else {
        OutputTarget::Path(out.clone())
    });
    opts.force = false;
    match rewrite::rewrite(&m, &targets, &filler, &opts) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&file_name) || msg.contains("out.onnx"),
                "{msg:?}"
            );
            unchanged(&msg);
            Reached::Planned
        }
        Ok(stats) => {
            check_fidelity(&m, &before, &side_before, &filler, &targets, &stats, &out);
            if stats.reframed > 0 {
                Reached::Reframed
            } else {
                Reached::Rewritten
            }
        }
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fixture_models()
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 14, "fixtures missing");
    v
}

/// Code-built sources that the fixtures lack: every payload form, f16/bf16 in `int32_data`
/// (re-framed) in a nested graph, external data in two side files.
fn built_sources() -> Vec<(String, Vec<u8>)> {
    let n = 4;
    let layers = vec![
        (
            "w0",
            "Relu",
            tensor("w0", &[n, n], FLOAT, &Payload::Raw(f32_bytes(&[0.5; 16]))),
            tensor("w0.bias", &[n], FLOAT, &Payload::Floats(vec![1.0; 4])),
        ),
        (
            "w1",
            "Tanh",
            tensor("w1", &[n, n], DOUBLE, &Payload::Doubles(vec![0.25; 16])),
            tensor("w1.bias", &[n], BFLOAT16, &Payload::Raw(vec![0x80; 8])),
        ),
        (
            "w2",
            "Sigmoid",
            tensor("w2", &[n, n], FLOAT16, &Payload::Int32(vec![0x3c00; 16])),
            tensor("w2.bias", &[n], FLOAT16, &Payload::Int32(vec![0; 4])),
        ),
        (
            "w3",
            "Relu",
            tensor(
                "w3",
                &[n, n],
                FLOAT,
                &Payload::external("w.bin", Some(0), Some(64)),
            ),
            tensor(
                "w3.bias",
                &[n],
                FLOAT,
                &Payload::external("sub/v.bin", Some(16), None),
            ),
        ),
    ];
    let mlp = gemm_mlp(&layers);
    // An If whose branch holds a Gemm with an int32_data f16 weight (re-framing in a subgraph).
    let branch = graph(
        &[node(
            "inner",
            "Gemm",
            &["x", "bw", "bb"],
            &["o"],
            &[attr_int("transB", 1)],
        )],
        &[
            tensor("bw", &[3, 3], BFLOAT16, &Payload::Int32(vec![0x3f80; 9])),
            tensor("bb", &[3], FLOAT, &Payload::Raw(vec![0; 12])),
        ],
        &[],
        &["o"],
    );
    let nested = model(&graph(
        &[node(
            "if",
            "If",
            &["c"],
            &["o"],
            &[
                attr_graph("then_branch", &branch),
                attr_graph("else_branch", &branch),
            ],
        )],
        &[],
        &["c", "x"],
        &["o"],
    ));
    vec![("mlp.onnx".into(), mlp), ("nested.onnx".into(), nested)]
}

/// Side files the built sources reference (written next to every mutant).
fn write_side_files(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("w.bin"), f32_bytes(&[0.75; 20])).unwrap();
    fs::write(dir.join("sub/v.bin"), f32_bytes(&[0.125; 12])).unwrap();
}

/// A scratch folder, in memory when possible (the loop writes and syncs thousands of files).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// The seeded mutation loop (deliverable: "error or success, never panic; every success passes
/// the fidelity check"). Default rounds keep it at a few seconds in debug.
#[test]
fn mutated_models_never_panic_and_successes_are_faithful() {
    let rounds: usize = std::env::var("ONNX_REINIT_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 600 } else { 3000 });
    let seed: u64 = std::env::var("ONNX_REINIT_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5e_ed0f_0bad_u64);
    let sources: Vec<(String, Vec<u8>)> = fixtures().into_iter().chain(built_sources()).collect();
    let raw: Vec<Vec<u8>> = sources.iter().map(|(_, b)| b.clone()).collect();
    let names: Vec<Vec<String>> = sources
        .iter()
        .map(|(_, b)| {
            let mut v = Vec::new();
            if let Some(items) = tree::parse(b) {
                names_of(&items, &mut v);
            }
            v
        })
        .collect();
    // Unmutated sources all rewrite faithfully (so the loop starts from good models).
    let base = scratch();
    for (name, bytes) in &sources {
        let d = base.path().join(format!("src-{name}"));
        fs::create_dir_all(&d).unwrap();
        write_side_files(&d);
        let input = d.join("model.onnx");
        fs::write(&input, bytes).unwrap();
        let out = base.path().join(format!("out-{name}"));
        fs::create_dir_all(&out).unwrap();
        let r = exercise(&input, &out, false);
        assert!(r >= Reached::Rewritten, "{name}: {r:?}");
    }
    let mut rng = Rng(seed);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let s = round % sources.len();
        let mutant = mutate(&mut rng, &sources[s].1, &raw, &names[s]);
        let dir = base.path().join(format!("r{round}"));
        let in_dir = dir.join("in");
        let out_dir = dir.join("out");
        fs::create_dir_all(&out_dir).unwrap();
        write_side_files(&in_dir);
        let input = in_dir.join("model.onnx");
        fs::write(&input, &mutant).unwrap();
        let in_place = round % 4 == 3;
        let r = std::panic::catch_unwind(|| exercise(&input, &out_dir, in_place));
        let r = match r {
            Ok(r) => r,
            Err(p) => {
                let keep = std::env::temp_dir().join(format!("onnx-reinit-crash-{round}.onnx"));
                fs::write(&keep, &mutant).unwrap();
                std::panic::resume_unwind(Box::new(format!(
                    "round {round} (source {}, seed {seed:#x}, in place {in_place}) panicked: \
                     {}; input saved to {}",
                    sources[s].0,
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_default(),
                    keep.display()
                )));
            }
        };
        *tally.entry(format!("{r:?}")).or_default() += 1;
        fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{rounds} mutants in {:.1?}: {tally:?}", started.elapsed());
    // The loop must exercise every outcome, or it tests less than it claims.
    for r in ["Refused", "Rewritten", "Reframed"] {
        assert!(
            tally.get(r).copied().unwrap_or(0) > 0,
            "no mutant reached {r}: {tally:?}"
        );
    }
}

// =============================================================================================
// Refusals through the CLI: the message names what is wrong, no file is left, the input is
// unchanged.
// =============================================================================================

/// Every file under `dir` with its bytes (symlinks as their target path).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    listing(dir)
        .into_iter()
        .filter_map(|rel| {
            let p = dir.join(&rel);
            let m = fs::symlink_metadata(&p).ok()?;
            if m.file_type().is_symlink() {
                Some((
                    rel,
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                ))
            } else if m.is_file() {
                Some((rel, fs::read(&p).unwrap()))
            } else {
                Some((rel, b"<dir>".to_vec()))
            }
        })
        .collect()
}

/// Where a built model lives: `root/m/model.onnx` (side files beside it) and an empty
/// `root/out/` for outputs.
struct Case {
    root: tempfile::TempDir,
}

impl Case {
    fn new(model_bytes: &[u8], side: &[(&str, &[u8])]) -> Case {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("m");
        fs::create_dir_all(&m).unwrap();
        fs::create_dir_all(root.path().join("out")).unwrap();
        for (name, bytes) in side {
            let p = m.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }
        fs::write(m.join("model.onnx"), model_bytes).unwrap();
        Case { root }
    }
    fn dir(&self) -> PathBuf {
        self.root.path().join("m")
    }
    fn input(&self) -> PathBuf {
        self.dir().join("model.onnx")
    }
    fn out_dir(&self) -> PathBuf {
        self.root.path().join("out")
    }
    fn out(&self) -> PathBuf {
        self.out_dir().join("out.onnx")
    }

    /// Runs the CLI with `args` (the input first); asserts exit code 1, a one-line error that
    /// contains every part of `msg`, and that nothing changed anywhere under the case's root.
    fn refused(&self, args: &[&str], msg: &[&str]) -> String {
        let before = snapshot(self.root.path());
        let o = bin()
            .arg(self.input())
            .args(args)
            .output()
            .expect("run onnx-reinit");
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with("onnx-reinit: error: "), "{err}");
        for part in msg {
            assert!(err.contains(part), "message {err:?} lacks {part:?}");
        }
        assert_eq!(
            snapshot(self.root.path()),
            before,
            "files changed (or were left behind) after: {err}"
        );
        err
    }

    /// The usual refusal: to a new output.
    fn refused_to_out(&self, msg: &[&str]) -> String {
        let out = self.out();
        let e = self.refused(&["-o", out.to_str().unwrap()], msg);
        assert!(!out.exists());
        e
    }
}

/// Offset of the `TensorProto` body `t` inside `model` (it is unique in the test models).
fn offset_of(model: &[u8], t: &[u8]) -> usize {
    model
        .windows(t.len())
        .position(|w| w == t)
        .expect("tensor body in the model")
}

/// A Gemm → Relu model around the initializers `inits` (the first one is the weight).
fn one_layer(inits: &[Vec<u8>]) -> Vec<u8> {
    model(&graph(
        &[
            node(
                "fc",
                "Gemm",
                &["x", "W", "B"],
                &["h"],
                &[attr_int("transB", 1)],
            ),
            node("act", "Relu", &["h"], &["y"], &[]),
        ],
        inits,
        &["x"],
        &["y"],
    ))
}

fn bias() -> Vec<u8> {
    tensor("B", &[2], FLOAT, &Payload::Raw(vec![0; 8]))
}

#[test]
fn cli_refuses_inconsistent_tensors_naming_tensor_and_offset() {
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (
            tensor("W", &[1 << 40, 1 << 40], FLOAT, &Payload::Raw(vec![0; 8])),
            vec!["overflows"],
        ),
        (
            tensor("W", &[2, 3], FLOAT, &Payload::Raw(vec![0; 20])),
            vec!["dims [2, 3] need 24 bytes of FLOAT but raw_data holds 20"],
        ),
        (
            tensor("W", &[2, 3], FLOAT, &Payload::Floats(vec![0.0; 5])),
            vec!["need 6 values", "float_data holds 5"],
        ),
        (
            tensor("W", &[2, -3], FLOAT, &Payload::Raw(vec![])),
            vec!["negative dimension -3"],
        ),
        (
            // Payload both inline and external.
            [
                tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
                pb::entry(13, "location", "w.bin"),
                pb::int(14, 1),
            ]
            .concat(),
            vec!["both inline and external"],
        ),
        (
            // raw_data twice.
            [
                tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
                pb::bytes(9, &[0; 16]),
            ]
            .concat(),
            vec!["raw_data appears 2 times"],
        ),
        (
            [
                tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
                pb::bytes(4, &[0; 16]),
            ]
            .concat(),
            vec!["payload in several fields: raw_data, float_data"],
        ),
    ];
    for (w, msg) in cases {
        let m = one_layer(&[w.clone(), bias()]);
        let case = Case::new(&m, &[("w.bin", &[0u8; 64])]);
        let at = format!("TensorProto at byte {}", offset_of(&m, &w));
        let mut parts = vec!["model.onnx", "tensor \"W\"", at.as_str()];
        parts.extend(msg);
        case.refused_to_out(&parts);
        // In place too: the input stays as it was.
        case.refused(&["--in-place"], &parts);
    }
}

#[test]
fn cli_refuses_duplicate_initializer_names() {
    let second = tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![1; 16]));
    let m = one_layer(&[
        tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
        second.clone(),
        bias(),
    ]);
    let case = Case::new(&m, &[]);
    // The second occurrence is the one named (by offset).
    let at = m
        .windows(second.len())
        .rposition(|w| w == second.as_slice())
        .unwrap();
    case.refused_to_out(&[
        "model.onnx",
        "tensor \"W\"",
        &format!("TensorProto at byte {at}"),
        "duplicate initializer name",
    ]);
}

#[test]
fn cli_refuses_malformed_wire_format_naming_the_offset() {
    let good = one_layer(&[
        tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
        bias(),
    ]);
    // Truncated in the middle of W's raw_data: the length runs past the end.
    let w_at = offset_of(&good, &[0x4a, 16]);
    let cases: Vec<(Vec<u8>, Vec<String>)> = vec![
        (
            good[..w_at + 6].to_vec(),
            vec![
                "malformed ONNX model at byte".into(),
                "runs past the end".into(),
            ],
        ),
        (
            {
                // ModelProto.graph whose length is an 11-byte varint.
                let mut b = vec![0x3a];
                b.extend([0xff; 10]);
                b.push(0x01);
                b
            },
            vec!["at byte 1".into(), "varint longer than 10 bytes".into()],
        ),
        (
            vec![0x38, 0x01],
            vec![
                "at byte 0".into(),
                "field 7 has unexpected wire type".into(),
            ],
        ),
        (
            b"not an onnx model at all".to_vec(),
            vec!["malformed".into()],
        ),
        (Vec::new(), vec!["the file is empty".into()]),
        (
            // A node name that is not UTF-8 (the scanner reads names, for graph paths).
            {
                let mut bad = node("n\u{e9}", "Relu", &["x"], &["y"], &[]);
                let at = offset_of(&bad, "n\u{e9}".as_bytes());
                bad[at + 1] = 0xff;
                model(&graph(&[bad], &[], &["x"], &["y"]))
            },
            vec![
                "malformed ONNX model at byte".into(),
                "(graph \"\", node #0): field 3 is not valid UTF-8".into(),
            ],
        ),
        {
            // Fields only the skeleton decoder reads: an op_type that is not UTF-8 …
            let mut bad = node("n", "R\u{e9}lu", &["x"], &["y"], &[]);
            let at = offset_of(&bad, "R\u{e9}lu".as_bytes());
            bad[at + 1] = 0xff;
            let m = model(&graph(
                &[node("m", "Relu", &["x"], &["z"], &[]), bad],
                &[],
                &["x"],
                &["y"],
            ));
            let pos = offset_of(&m, &[b'R', 0xff]) + 1;
            (
                m,
                vec![format!(
                    "malformed ONNX model at byte {pos} (ModelProto, Graph #0, Node #1): field 4 \
                     is not valid UTF-8"
                )],
            )
        },
        {
            // … and a graph input (ValueInfoProto) whose name has the wrong wire type.
            let m = model(&[graph(&[], &[], &[], &[]), pb::bytes(11, &pb::int(1, 5))].concat());
            let pos = offset_of(&m, &[0x5a, 2, 0x08, 5]) + 2; // the name's tag
            (
                m,
                vec![format!(
                    "at byte {pos} (ModelProto, Graph #0, ValueInfo #0): field 1 has unexpected \
                     wire type Varint"
                )],
            )
        },
        (
            // raw_data's length corrupted to run past the tensor (but not past the file).
            {
                let mut b = good.clone();
                b[w_at + 1] = 0x7f;
                b
            },
            vec![
                format!("at byte {}", w_at + 1),
                "(graph \"\", initializer #0 \"W\")".into(),
                "runs past the end of the enclosing message".into(),
            ],
        ),
    ];
    for (bytes, msg) in cases {
        let case = Case::new(&bytes, &[]);
        let mut parts: Vec<&str> = vec!["model.onnx"];
        parts.extend(msg.iter().map(String::as_str));
        case.refused_to_out(&parts);
    }
}

#[test]
fn cli_refuses_deep_nesting() {
    let mut g = graph(&[], &[], &[], &[]);
    for _ in 0..30 {
        g = graph(
            &[node(
                "",
                "If",
                &["c"],
                &["o"],
                &[attr_graph("then_branch", &g)],
            )],
            &[],
            &["c"],
            &["o"],
        );
    }
    Case::new(&model(&g), &[]).refused_to_out(&["model.onnx", "deeper than 24"]);
}

/// An external-data case: `m/model.onnx` with W (4 floats) at `location`, `offset`, `length`.
fn external_case(location: &str, offset: u64, length: u64) -> (Case, usize) {
    let w = tensor(
        "W",
        &[2, 2],
        FLOAT,
        &Payload::external(location, Some(offset), Some(length)),
    );
    let m = one_layer(&[w.clone(), bias()]);
    let case = Case::new(&m, &[("w.bin", &[0u8; 64])]);
    fs::write(case.root.path().join("secret.bin"), [7u8; 64]).unwrap();
    (case, offset_of(&m, &w))
}

#[test]
fn cli_refuses_bad_external_data() {
    let secret = "secret.bin";
    let cases: Vec<(String, u64, u64, Vec<&str>)> = vec![
        (
            "/etc/passwd".into(),
            0,
            16,
            vec!["absolute location \"/etc/passwd\" refused"],
        ),
        (
            format!("../{secret}"),
            0,
            16,
            vec!["`..` would leave the model's folder"],
        ),
        (
            format!("sub/../../{secret}"),
            0,
            16,
            vec!["`..` would leave the model's folder"],
        ),
        (
            "missing.bin".into(),
            0,
            16,
            vec!["side file \"missing.bin\" does not exist"],
        ),
        (
            "w.bin".into(),
            56,
            16,
            vec!["offset 56 + length 16 runs past the end of \"w.bin\" (64 bytes)"],
        ),
        (
            "w.bin".into(),
            u64::MAX - 4,
            16,
            vec!["runs past the end of \"w.bin\""],
        ),
        (
            "w.bin".into(),
            0,
            12,
            vec!["length 12 but dims [2, 2] of FLOAT need 16 bytes"],
        ),
        ("model.onnx".into(), 0, 16, vec!["the model file itself"]),
        (String::new(), 0, 16, vec!["empty location"]),
    ];
    for (loc, off, len, msg) in cases {
        let (case, at) = external_case(&loc, off, len);
        let named = format!("tensor \"W\" (TensorProto at byte {at}): external data: ");
        let mut parts = vec!["model.onnx", named.as_str()];
        parts.extend(msg);
        case.refused_to_out(&parts);
        case.refused(&["--in-place"], &parts);
    }
    // A symlink inside the folder that leads outside it.
    let (case, at) = external_case("escape.bin", 0, 16);
    std::os::unix::fs::symlink(case.root.path().join(secret), case.dir().join("escape.bin"))
        .unwrap();
    let parts = [
        "model.onnx",
        &format!("tensor \"W\" (TensorProto at byte {at})"),
        "location \"escape.bin\" resolves to",
        "outside the model's folder",
    ];
    case.refused_to_out(&parts);
    case.refused(&["--in-place"], &parts);
    // A symlinked folder, too.
    let (case, _) = external_case("linked/secret.bin", 0, 16);
    std::os::unix::fs::symlink(case.root.path(), case.dir().join("linked")).unwrap();
    case.refused_to_out(&["tensor \"W\"", "outside the model's folder"]);
}

#[test]
fn cli_refuses_existing_output_without_force() {
    let m = one_layer(&[
        tensor("W", &[2, 2], FLOAT, &Payload::Raw(vec![0; 16])),
        bias(),
    ]);
    let case = Case::new(&m, &[]);
    fs::write(case.out(), b"precious").unwrap();
    case.refused_to_out_existing();
    // With --force it is replaced.
    let o = bin()
        .arg(case.input())
        .args(["-o", case.out().to_str().unwrap(), "--force"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(fs::read(case.out()).unwrap().len(), m.len());
}

impl Case {
    fn refused_to_out_existing(&self) {
        let out = self.out();
        self.refused(
            &["-o", out.to_str().unwrap()],
            &[
                "out.onnx",
                "output already exists (add --force to overwrite it)",
            ],
        );
        assert_eq!(fs::read(&out).unwrap(), b"precious");
    }
}

// =============================================================================================
// Unwritable destinations: read-only, full disk, file-size limit.
// =============================================================================================

/// A tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `"1m"`) with extra `options` (e.g. `"ro"`), or `None`
    /// when this sandbox cannot mount (not root, no `mount`).
    fn tmpfs(size: &str, options: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let mut opts = format!("size={size}");
        if !options.is_empty() {
            opts = format!("{options},{opts}");
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Mount { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// A model with one Gemm weight of `rows × cols` f32 (raw_data), `rows` ≥ 2.
fn sized_model(rows: i64, cols: i64) -> Vec<u8> {
    let n = (rows * cols) as usize;
    let w: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 97.0).collect();
    model(&graph(
        &[
            node(
                "fc",
                "Gemm",
                &["x", "W", "B"],
                &["h"],
                &[attr_int("transB", 1)],
            ),
            node("act", "Relu", &["h"], &["y"], &[]),
        ],
        &[
            tensor("W", &[rows, cols], FLOAT, &Payload::Raw(f32_bytes(&w))),
            tensor(
                "B",
                &[rows],
                FLOAT,
                &Payload::Raw(vec![0; rows as usize * 4]),
            ),
        ],
        &["x"],
        &["y"],
    ))
}

#[test]
fn cli_refuses_read_only_destinations() {
    let m = sized_model(4, 4);
    let case = Case::new(&m, &[]);
    // A folder nothing can be created in, whoever runs the test (root ignores permissions).
    case.refused(
        &["-o", "/proc/onnx-reinit-out.onnx"],
        &["/proc", "cannot create a temporary file"],
    );
    assert!(!Path::new("/proc/onnx-reinit-out.onnx").exists());
    // A read-only file system.
    let Some(ro) = Mount::tmpfs("1m", "ro") else {
        eprintln!("SKIPPED the read-only mount: this sandbox cannot mount a tmpfs");
        return;
    };
    let out = ro.path().join("out.onnx");
    let err = case.refused(
        &["-o", out.to_str().unwrap()],
        &["cannot create a temporary file", "Read-only file system"],
    );
    assert!(err.contains(&ro.path().display().to_string()), "{err}");
    assert_eq!(listing(ro.path()), Vec::<String>::new());
    // In place on a read-only file system: the model folder is the read-only one.
    let rw = Mount::tmpfs("1m", "").unwrap();
    fs::write(rw.path().join("model.onnx"), &m).unwrap();
    assert!(rw.remount("ro"));
    let o = bin()
        .arg(rw.path().join("model.onnx"))
        .arg("--in-place")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(fs::read(rw.path().join("model.onnx")).unwrap(), m);
    assert_eq!(listing(rw.path()), ["model.onnx"]);
}

#[test]
fn cli_full_disk_is_a_clear_error_and_leaves_nothing() {
    let Some(disk) = Mount::tmpfs("1m", "") else {
        eprintln!(
            "SKIPPED: this sandbox cannot mount a tmpfs (the file-size-limit test covers it)"
        );
        return;
    };
    // 2 MB of weights do not fit on a 1 MiB file system.
    let big = sized_model(512, 1024);
    let case = Case::new(&big, &[]);
    let out = disk.path().join("out.onnx");
    let err = case.refused(
        &["-o", out.to_str().unwrap()],
        &["out.onnx", "No space left on device"],
    );
    assert!(
        err.contains(&format!("{}: cannot write the output", out.display())),
        "the message names the output, not a temporary file: {err}"
    );
    assert_eq!(
        listing(disk.path()),
        Vec::<String>::new(),
        "no partial output"
    );

    // In place: a 600 KB model on the 1 MiB disk has no room for its temporary copy.
    let m = sized_model(150, 1024);
    let input = disk.path().join("model.onnx");
    fs::write(&input, &m).unwrap();
    let o = bin().arg(&input).arg("--in-place").output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("model.onnx"), "{err}");
    assert_eq!(fs::read(&input).unwrap(), m, "input intact");
    assert_eq!(
        listing(disk.path()),
        ["model.onnx"],
        "no temporary file left"
    );
}

/// Runs the CLI under `RLIMIT_FSIZE = limit` bytes, with SIGXFSZ at its default (fatal)
/// disposition: the binary itself must ignore it.
fn run_with_fsize_limit(args: &[&std::ffi::OsStr], limit: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = bin();
    c.args(args);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &raw const lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    }
    c.output().unwrap()
}

#[test]
fn cli_file_size_limit_is_a_clear_error_and_leaves_nothing() {
    let m = sized_model(64, 1024); // 256 KB
    let case = Case::new(&m, &[]);
    let before = snapshot(case.root.path());
    let out = case.out();
    let o = run_with_fsize_limit(
        &[case.input().as_os_str(), "-o".as_ref(), out.as_os_str()],
        64 << 10,
    );
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "killed by SIGXFSZ instead of a clean error? status {:?}: {err}",
        o.status
    );
    assert!(err.contains("File too large"), "{err}");
    assert!(err.contains("out.onnx"), "{err}");
    assert_eq!(
        snapshot(case.root.path()),
        before,
        "no partial output, input intact"
    );
    // In place as well.
    let o = run_with_fsize_limit(&[case.input().as_os_str(), "--in-place".as_ref()], 64 << 10);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{:?}: {}",
        o.status,
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("File too large"));
    assert_eq!(snapshot(case.root.path()), before);
}

// =============================================================================================
// Big models, streamed to disk (never held in memory).
// =============================================================================================

/// Pseudo-random f32 values in [-1, 1), 4 MiB at a time: payload bytes that a partial or
/// misplaced write would visibly change.
fn pattern_block() -> Vec<u8> {
    let mut rng = Rng(0xb16_b10c);
    (0..(1 << 20))
        .flat_map(|_| ((rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).to_le_bytes())
        .collect()
}

/// Writes `len` pattern bytes.
fn write_pattern(w: &mut impl Write, mut len: u64, block: &[u8]) {
    while len > 0 {
        let k = len.min(block.len() as u64) as usize;
        w.write_all(&block[..k]).unwrap();
        len -= k as u64;
    }
}

/// One Gemm layer of a streamed model: weight `[rows, cols]` (transB) and bias `[rows]`.
#[derive(Clone, Debug)]
struct Layer {
    rows: u64,
    cols: u64,
    act: &'static str,
    /// `Some((location, offset))`: the weight is external; `None`: inline raw_data.
    external: Option<(String, u64)>,
}

/// Writes a Gemm MLP with big weights to `path`, streaming payloads; external weights go to
/// their side files (which must be written in offset order per file). Biases are inline.
fn write_streamed_mlp(path: &Path, layers: &[Layer]) {
    let dir = path.parent().unwrap();
    let block = pattern_block();
    let mut nodes = Vec::new();
    let mut x = "x".to_string();
    for (k, l) in layers.iter().enumerate() {
        let (w, b, h, y) = (
            format!("w{k}"),
            format!("b{k}"),
            format!("h{k}"),
            format!("y{k}"),
        );
        nodes.push(node(
            &format!("fc{k}"),
            "Gemm",
            &[&x, &w, &b],
            &[&h],
            &[attr_int("transB", 1)],
        ));
        nodes.push(node(&format!("act{k}"), l.act, &[&h], &[&y], &[]));
        x = y;
    }
    // Per initializer: the header (everything but the raw_data payload) and the payload size.
    let mut inits: Vec<(Vec<u8>, u64)> = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        let dims = [l.rows as i64, l.cols as i64];
        let bytes = l.rows * l.cols * 4;
        match &l.external {
            Some((loc, off)) => inits.push((
                tensor(
                    &format!("w{k}"),
                    &dims,
                    FLOAT,
                    &Payload::external(loc, Some(*off), Some(bytes)),
                ),
                0,
            )),
            None => inits.push((
                tensor(&format!("w{k}"), &dims, FLOAT, &Payload::None),
                bytes,
            )),
        }
        inits.push((
            tensor(&format!("b{k}"), &[l.rows as i64], FLOAT, &Payload::None),
            l.rows * 4,
        ));
    }
    let raw_field = |n: u64| 1 + pb::varint_len(n) as u64 + n;
    let tensor_len = |h: &[u8], n: u64| h.len() as u64 + if n > 0 { raw_field(n) } else { 0 };
    let tail = [
        pb::string(2, "big"),
        pb::bytes(11, &value_info("x")),
        pb::bytes(12, &value_info(&x)),
    ]
    .concat();
    let graph_len: u64 = nodes
        .iter()
        .map(|n| pb::bytes(1, n).len() as u64)
        .sum::<u64>()
        + inits
            .iter()
            .map(|(h, n)| {
                let t = tensor_len(h, *n);
                1 + pb::varint_len(t) as u64 + t
            })
            .sum::<u64>()
        + tail.len() as u64;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    f.write_all(&[pb::int(1, 9), pb::string(2, "robustness-big")].concat())
        .unwrap();
    let mut head = Vec::new();
    pb::tag(7, 2, &mut head);
    pb::varint(graph_len, &mut head);
    f.write_all(&head).unwrap();
    for n in &nodes {
        f.write_all(&pb::bytes(1, n)).unwrap();
    }
    for (h, n) in &inits {
        let mut b = Vec::new();
        pb::tag(5, 2, &mut b);
        pb::varint(tensor_len(h, *n), &mut b);
        b.extend_from_slice(h);
        if *n > 0 {
            pb::tag(9, 2, &mut b);
            pb::varint(*n, &mut b);
        }
        f.write_all(&b).unwrap();
        // Biases are zero-initialized by the rewrite: give them the pattern too.
        write_pattern(&mut f, *n, &block);
    }
    f.write_all(&tail).unwrap();
    f.write_all(&pb::entry(14, "model-meta", "kept")).unwrap();
    f.into_inner().unwrap().sync_all().ok();
    // Side files.
    let mut sides: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for l in layers {
        if let Some((loc, off)) = &l.external {
            sides
                .entry(loc.clone())
                .or_default()
                .push((*off, l.rows * l.cols * 4));
        }
    }
    for (loc, mut ranges) in sides {
        ranges.sort_unstable();
        let p = dir.join(&loc);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&p).unwrap());
        let mut pos = 0;
        for (off, len) in ranges {
            assert!(off >= pos, "side-file ranges overlap");
            write_pattern(&mut f, off - pos, &block);
            write_pattern(&mut f, len, &block);
            pos = off + len;
        }
        // A few trailing bytes nobody owns.
        write_pattern(&mut f, 4096, &block);
    }
}

/// Whether two files have the same bytes (compared in chunks).
fn same_file_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(fa), Ok(fb)) = (fs::File::open(a), fs::File::open(b)) else {
        return false;
    };
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let mut ra = std::io::BufReader::with_capacity(4 << 20, fa);
    let mut rb = std::io::BufReader::with_capacity(4 << 20, fb);
    let mut ba = vec![0u8; 4 << 20];
    let mut bb = vec![0u8; 4 << 20];
    loop {
        let n = ra.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        rb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

// =============================================================================================
// SIGINT mid-run.
// =============================================================================================

/// Files whose name marks them as temporary (`tempfile`'s `.tmpXXXXXX`).
fn temporaries(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        })
        .collect()
}

/// Whether process `pid` has an unnamed temporary output open in `dir` or a sub-folder
/// (`O_TMPFILE`, which `/proc/PID/fd` shows as `folder/#N (deleted)`), where the file system
/// allows one; otherwise the output is a named `.tmpXXXXXX` ([`temporaries`]).
fn has_file_open_in(pid: u32, dir: &Path) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(Result::ok)
            .filter_map(|e| fs::read_link(e.path()).ok())
            .any(|t| {
                t.starts_with(dir)
                    && t.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('#'))
            })
    })
}

/// What happened to one interrupted run.
enum Interrupted {
    /// The signal landed mid-run and the run stopped cleanly.
    Cancelled,
    /// The run finished before the signal could land.
    Finished,
}

/// Starts the CLI with `args`, waits for its temporary file to be open in `watch`, sends
/// `signal`, and checks the aftermath: `pristine` pairs each input file (the model first, then
/// its side files) with a pristine copy. `out` is the output file, `None` in place.
fn interrupt(
    args: &[&std::ffi::OsStr],
    watch: &Path,
    signal: i32,
    pristine: &[(&Path, &Path)],
    out: Option<&Path>,
) -> Interrupted {
    let intact = |err: &str| {
        for (file, reference) in pristine {
            assert!(
                same_file_bytes(file, reference),
                "{} changed ({err})",
                file.display()
            );
        }
    };
    let before = listing(watch);
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let t0 = std::time::Instant::now();
    let mut sent = false;
    while t0.elapsed() < std::time::Duration::from_mins(2) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if !temporaries(watch).is_empty() || has_file_open_in(pid as u32, watch) {
            // SAFETY: `pid` is our child, not yet reaped (try_wait said it is running).
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
            sent = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        temporaries(watch),
        Vec::<String>::new(),
        "temporary files left ({err})"
    );
    if o.status.success() {
        // Finished before the signal (or during the final renames): a complete output.
        if let Some(out) = out {
            intact(&err);
            assert!(
                LoadedModel::open(out).is_ok(),
                "a successful run left a bad output"
            );
            for p in listing(watch).into_iter().rev() {
                let p = watch.join(p);
                let _ = fs::remove_file(&p).or_else(|_| fs::remove_dir(&p));
            }
        } else {
            assert!(
                LoadedModel::open(pristine[0].0).is_ok(),
                "in place left a bad model"
            );
            for (file, reference) in pristine {
                fs::copy(reference, file).unwrap();
            }
        }
        return Interrupted::Finished;
    }
    intact(&err);
    assert!(sent, "the run failed on its own: {err}");
    assert_eq!(
        o.status.code(),
        Some(130),
        "not a clean cancellation exit (130): {:?} {err}",
        o.status
    );
    assert!(
        err.contains("rewrite cancelled; no output written"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(
        listing(watch),
        before,
        "files or folders left behind ({err})"
    );
    if let Some(out) = out {
        assert!(!out.exists(), "partial output left");
    }
    Interrupted::Cancelled
}

/// SIGINT (and SIGTERM) while a ~300 MB model is being rewritten, to a new output and in place:
/// a non-zero exit, a clear message, the input intact, no output and no temporary file. If a
/// run finishes before the signal lands, it is retried with a model twice as big, then reported
/// inconclusive (a finished run is still checked: a complete output, no temporary files).
#[test]
fn sigint_mid_run_leaves_the_input_intact_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut cols = 9600; // 8 layers × 1024 × 9600 × 4 B ≈ 315 MB
    for attempt in 0..3 {
        let m = dir.path().join("m");
        let _ = fs::remove_dir_all(&m);
        fs::create_dir_all(&m).unwrap();
        let input = m.join("big.onnx");
        // Odd layers in a side file in a sub-folder: an interrupted run must also remove the
        // side file's temporary copy and the folder it created for it.
        let w_bytes = 1024 * cols * 4;
        let layers: Vec<Layer> = (0..8)
            .map(|k| Layer {
                rows: 1024,
                cols,
                act: if k % 2 == 0 { "Relu" } else { "Tanh" },
                external: (k % 2 == 1)
                    .then(|| ("weights/w.bin".to_string(), (k / 2) * (w_bytes + 4096))),
            })
            .collect();
        write_streamed_mlp(&input, &layers);
        let reference = dir.path().join("reference.onnx");
        fs::copy(&input, &reference).unwrap();
        let side = m.join("weights/w.bin");
        let side_reference = dir.path().join("reference.bin");
        fs::copy(&side, &side_reference).unwrap();
        let pristine = [
            (input.as_path(), reference.as_path()),
            (side.as_path(), side_reference.as_path()),
        ];
        let out_dir = dir.path().join("out");
        let _ = fs::remove_dir_all(&out_dir);
        fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join("out.onnx");
        let mut results = Vec::new();
        for signal in [libc::SIGINT, libc::SIGTERM] {
            results.push(interrupt(
                &[input.as_os_str(), "-o".as_ref(), out.as_os_str()],
                &out_dir,
                signal,
                &pristine,
                Some(&out),
            ));
        }
        results.push(interrupt(
            &[input.as_os_str(), "--in-place".as_ref()],
            &m,
            libc::SIGINT,
            &pristine,
            None,
        ));
        let cancelled = results
            .iter()
            .filter(|r| matches!(r, Interrupted::Cancelled))
            .count();
        if cancelled == results.len() {
            return;
        }
        eprintln!(
            "attempt {attempt}: {cancelled}/{} runs were interrupted mid-run; retrying bigger",
            results.len()
        );
        cols *= 2;
        if attempt == 2 {
            eprintln!("INCONCLUSIVE: the runs finished before the signal landed");
        }
    }
}

// =============================================================================================
// Determinism: 1 vs 2 threads, and across runs.
// =============================================================================================

/// Runs the whole pipeline (as the CLI does) in a rayon pool of `threads`.
fn run_in_pool(threads: usize, input: &Path, out: &Path) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let config = pipeline::RewriteConfig {
        model: input.to_path_buf(),
        destination: pipeline::Destination::Path(out.to_path_buf()),
        force: false,
        rules: Rules::default(),
        seed: 42,
        analysis: AnalysisOptions::default(),
        cancel: None,
        progress: None,
    };
    pool.install(|| pipeline::run(&config)).unwrap();
}

/// Every file under `dir`, for comparing whole outputs (model and side files).
fn tree_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir)
}

/// Several pieces per tensor (a piece is 2^18 elements) in every storage: f32 raw, f16
/// `int32_data` (re-framed), f64 `double_data`, bf16 raw, f32 external.
fn multi_piece_model(dir: &Path) -> PathBuf {
    let f32s = |n: usize| f32_bytes(&(0..n).map(|i| (i % 13) as f32).collect::<Vec<_>>());
    let layers = vec![
        (
            "w0",
            "Relu",
            tensor("w0", &[640, 1024], FLOAT, &Payload::Raw(f32s(640 * 1024))),
            tensor("w0.bias", &[640], FLOAT, &Payload::Floats(vec![1.0; 640])),
        ),
        (
            "w1",
            "Tanh",
            tensor(
                "w1",
                &[512, 1100],
                FLOAT16,
                &Payload::Int32(vec![0x3c00; 512 * 1100]),
            ),
            tensor(
                "w1.bias",
                &[512],
                FLOAT16,
                &Payload::Int32(vec![0x3c00; 512]),
            ),
        ),
        (
            "w2",
            "Sigmoid",
            tensor(
                "w2",
                &[300, 1000],
                DOUBLE,
                &Payload::Doubles(vec![0.5; 300_000]),
            ),
            tensor("w2.bias", &[300], DOUBLE, &Payload::Raw(vec![1; 2400])),
        ),
        (
            "w3",
            "Relu",
            tensor(
                "w3",
                &[600, 600],
                BFLOAT16,
                &Payload::Raw(vec![0x3f; 720_000]),
            ),
            tensor("w3.bias", &[600], BFLOAT16, &Payload::Raw(vec![0x3f; 1200])),
        ),
        (
            "w4",
            "Relu",
            tensor(
                "w4",
                &[700, 700],
                FLOAT,
                &Payload::external("side.bin", Some(64), Some(700 * 700 * 4)),
            ),
            tensor("w4.bias", &[700], FLOAT, &Payload::Raw(vec![0; 2800])),
        ),
    ];
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("side.bin"),
        [vec![9u8; 64], f32s(700 * 700), vec![9u8; 64]].concat(),
    )
    .unwrap();
    let p = dir.join("model.onnx");
    fs::write(&p, gemm_mlp(&layers)).unwrap();
    p
}

#[test]
fn output_is_identical_for_1_and_2_threads_and_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = multi_piece_model(&dir.path().join("m"));
    let m = LoadedModel::open(&input).unwrap();
    let piece_elems = rewrite::DEFAULT_PIECE_ELEMS as u64;
    assert!(
        m.tensors()
            .iter()
            .filter(|t| t.numel() > piece_elems)
            .count()
            >= 5,
        "several pieces each"
    );
    let mut outputs = Vec::new();
    for (run, threads) in [1, 2, 2, 1].into_iter().enumerate() {
        let out_dir = dir.path().join(format!("out{run}"));
        fs::create_dir_all(&out_dir).unwrap();
        run_in_pool(threads, &input, &out_dir.join("model.onnx"));
        outputs.push(tree_bytes(&out_dir));
    }
    assert_eq!(
        outputs[0].keys().collect::<Vec<_>>(),
        ["model.onnx", "side.bin"]
    );
    for (k, o) in outputs.iter().enumerate().skip(1) {
        for (name, bytes) in o {
            assert!(
                bytes == &outputs[0][name],
                "run {k}: {name} differs from run 0"
            );
        }
    }
    // Something was written, int32_data was re-framed, and the side file's foreign bytes kept.
    assert_ne!(outputs[0]["model.onnx"].len(), m.bytes().len());
    let side = &outputs[0]["side.bin"];
    assert_eq!(&side[..64], &[9u8; 64]);
    assert_eq!(&side[side.len() - 64..], &[9u8; 64]);
    assert_ne!(side, &fs::read(dir.path().join("m/side.bin")).unwrap());
}

/// The same on ≥ 100 MB through the CLI with `RAYON_NUM_THREADS` (slow in debug).
#[test]
#[ignore = "writes ~130 MB three times; run with --ignored (ideally --release)"]
fn large_output_is_identical_for_1_and_2_threads_and_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    fs::create_dir_all(&m).unwrap();
    let input = m.join("model.onnx");
    let layers: Vec<Layer> = (0..4)
        .map(|k| Layer {
            rows: 1024,
            cols: 8000,
            act: ["Relu", "Tanh", "Sigmoid", "Relu"][k],
            external: (k % 2 == 1).then(|| ("weights.bin".to_string(), k as u64 * (1 << 25))),
        })
        .collect();
    write_streamed_mlp(&input, &layers);
    let mut first: Option<PathBuf> = None;
    for (run, threads) in ["1", "2", "2"].into_iter().enumerate() {
        let out_dir = dir.path().join(format!("out{run}"));
        fs::create_dir_all(&out_dir).unwrap();
        let t0 = std::time::Instant::now();
        let o = bin()
            .env("RAYON_NUM_THREADS", threads)
            .arg(&input)
            .args(["-o".as_ref(), out_dir.join("model.onnx").as_os_str()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        eprintln!("run {run} ({threads} threads): {:.2?}", t0.elapsed());
        match &first {
            None => first = Some(out_dir),
            Some(f) => {
                for name in ["model.onnx", "weights.bin"] {
                    assert!(
                        same_file_bytes(&f.join(name), &out_dir.join(name)),
                        "run {run}: {name}"
                    );
                }
            }
        }
    }
}

// =============================================================================================
// External data through the CLI.
// =============================================================================================

/// All values of f32 tensor `name` (main graph).
fn f32_values(m: &LoadedModel, name: &str) -> Vec<f32> {
    let i = m
        .find_tensor("", name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    let mut v = vec![0f32; m.tensors()[i].numel() as usize];
    m.read_values(i, 0, ValuesMut::F32(&mut v)).unwrap();
    v
}

/// Checks that `v` fills the uniform bound `bound` (all inside, and spread to near its edge).
fn assert_uniform_within(v: &[f32], bound: f64, what: &str) {
    let max = v.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())));
    assert!(
        max <= bound * (1.0 + 1e-6),
        "{what}: max {max} > bound {bound}"
    );
    // P(every |x| < q·bound) = q^n: q = 1e-6^(1/n) fails a correct fill once in a million.
    let n = v.len() as f64;
    let q = 1e-6f64.powf(1.0 / n);
    assert!(max > q * bound, "{what}: max {max} far below bound {bound}");
    // The mean of n uniform values has std bound/√(3n); allow 5 of them.
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    assert!(
        mean.abs() < 5.0 * bound / (3.0 * n).sqrt(),
        "{what}: mean {mean}"
    );
}

/// A small model with weights in three side files (two in one file, one in a sub-folder, one
/// in a sub-sub-folder), an inline `float_data` weight, and inline biases.
fn small_external_model(dir: &Path) -> (PathBuf, Vec<(&'static str, u64, u64, &'static str)>) {
    // (name, rows, cols, activation); weights are [rows, cols] with transB, so fan_in = cols.
    let shapes = vec![
        ("w0", 16, 8, "Relu"),
        ("w1", 12, 16, "Tanh"),
        ("w2", 10, 12, "Relu"),
        ("w3", 6, 10, "Tanh"),
        ("w4", 4, 6, "Relu"),
    ];
    let locs: [Option<(&str, u64)>; 5] = [
        Some(("a.bin", 0)),
        Some(("a.bin", 16 * 8 * 4 + 100)),
        Some(("weights/b.bin", 32)),
        None,
        Some(("weights/deep/c.bin", 0)),
    ];
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut layers = Vec::new();
    for ((name, rows, cols, act), loc) in shapes.iter().zip(locs) {
        let n = (rows * cols) as usize;
        let vals: Vec<f32> = (0..n).map(|i| 3.0 + i as f32).collect();
        let w = match loc {
            Some((file, off)) => {
                let f = files.entry(file).or_default();
                f.resize(off as usize, 0xee);
                f.extend(f32_bytes(&vals));
                tensor(
                    name,
                    &[*rows as i64, *cols as i64],
                    FLOAT,
                    &Payload::external(file, Some(off), Some(n as u64 * 4)),
                )
            }
            None => tensor(
                name,
                &[*rows as i64, *cols as i64],
                FLOAT,
                &Payload::Floats(vals),
            ),
        };
        let b = tensor(
            &format!("{name}.bias"),
            &[*rows as i64],
            FLOAT,
            &Payload::Raw(f32_bytes(&vec![5.0; *rows as usize])),
        );
        layers.push((*name, *act, w, b));
    }
    fs::create_dir_all(dir).unwrap();
    for (file, mut bytes) in files {
        bytes.extend([0xee; 40]); // trailing bytes nobody owns
        let p = dir.join(file);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    let p = dir.join("model.onnx");
    fs::write(&p, gemm_mlp(&layers)).unwrap();
    (p, shapes)
}

/// Checks the values of a rewritten small external model: He/Glorot uniform bounds from the
/// fans, zero biases.
fn check_small_external(m: &LoadedModel, shapes: &[(&str, u64, u64, &str)]) {
    for &(name, rows, cols, act) in shapes {
        let (fan_in, fan_out) = (cols as f64, rows as f64);
        let bound = match act {
            "Relu" => (6.0 / fan_in).sqrt(),
            _ => (6.0 / (fan_in + fan_out)).sqrt(),
        };
        assert_uniform_within(&f32_values(m, name), bound, name);
        let b = f32_values(m, &format!("{name}.bias"));
        assert!(b.iter().all(|&x| x == 0.0), "{name}.bias not zeroed");
    }
}

#[test]
fn cli_small_external_model_to_new_output_and_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let m_dir = dir.path().join("m");
    let (input, shapes) = small_external_model(&m_dir);
    let original = snapshot(&m_dir);
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("model.onnx");
    let o = bin().arg(&input).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        snapshot(&m_dir),
        original,
        "the input and its side files are unchanged"
    );
    assert_eq!(
        listing(&out_dir),
        [
            "a.bin",
            "model.onnx",
            "weights",
            "weights/b.bin",
            "weights/deep",
            "weights/deep/c.bin"
        ]
    );
    let written = LoadedModel::open(&out).unwrap();
    check_small_external(&written, &shapes);
    // Side files: same length, the unowned bytes kept.
    let src = LoadedModel::open(&input).unwrap();
    for (rel, bytes) in snapshot(&out_dir) {
        let Some(orig) = original.get(&rel) else {
            continue;
        };
        if rel == "model.onnx" || bytes == b"<dir>" {
            continue;
        }
        assert_eq!(bytes.len(), orig.len(), "{rel}");
        let owned: Vec<Range<usize>> = src
            .tensors()
            .iter()
            .filter_map(|t| match &t.storage {
                Storage::External(e) if e.location == rel => {
                    Some(e.offset as usize..(e.offset + e.length) as usize)
                }
                _ => None,
            })
            .collect();
        assert_same_outside(orig, &bytes, &owned, &rel);
    }
    // In place: the same values land in the input's own side files.
    let o = bin().arg(&input).arg("--in-place").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let in_place = LoadedModel::open(&input).unwrap();
    check_small_external(&in_place, &shapes);
    for &(name, ..) in &shapes {
        assert_eq!(
            f32_values(&in_place, name),
            f32_values(&written, name),
            "{name}"
        );
    }
    assert_eq!(
        listing(&m_dir),
        original.keys().cloned().collect::<Vec<_>>(),
        "no temporaries"
    );
}

// =============================================================================================
// A > 2 GB external-data model (ignored: ~2.2 GB written four times).
// =============================================================================================

/// `(wall seconds, peak RSS in KiB)` of a command run under `/usr/bin/time -v`, or through
/// `getrusage` when GNU time is missing.
fn measured(args: &[&std::ffi::OsStr]) -> (f64, u64, Output) {
    let exe = env!("CARGO_BIN_EXE_onnx-reinit");
    if Path::new("/usr/bin/time").exists() {
        let o = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(exe)
            .args(args)
            .output()
            .unwrap();
        let err = text(&o.stderr);
        let field = |key: &str| {
            err.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {key} in {err}"))
        };
        let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
        let secs = wall
            .split(':')
            .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap());
        let rss = field("Maximum resident set size (kbytes):")
            .parse()
            .unwrap();
        (secs, rss, o)
    } else {
        let t0 = std::time::Instant::now();
        let o = Command::new(exe).args(args).output().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        // SAFETY: getrusage fills the struct it is given.
        let rss = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut ru);
            ru.ru_maxrss as u64
        };
        (secs, rss, o)
    }
}

/// Samples `n` values at the start, middle and end of f32 tensor `name`.
fn f32_samples(m: &LoadedModel, name: &str, n: usize) -> Vec<f32> {
    let i = m.find_tensor("", name).unwrap();
    let total = m.tensors()[i].numel();
    let mut out = Vec::new();
    for start in [0, total / 2, total - n as u64] {
        let mut v = vec![0f32; n];
        m.read_values(i, start, ValuesMut::F32(&mut v)).unwrap();
        out.extend(v);
    }
    out
}

#[test]
#[ignore = "writes ~2.2 GB four times; run with --release --ignored --nocapture"]
fn huge_external_model_through_the_cli() {
    let base =
        std::env::var_os("ONNX_REINIT_HUGE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(base).unwrap();
    let m_dir = dir.path().join("m");
    fs::create_dir_all(&m_dir).unwrap();
    let input = m_dir.join("huge.onnx");
    // 9 layers of 4096 × 15000 f32 (245.8 MB each, 2.21 GB in all) in three side files.
    let (rows, cols) = (4096u64, 15000u64);
    let w_bytes = rows * cols * 4;
    let layers: Vec<Layer> = (0..9)
        .map(|k| {
            let (file, slot) = match k {
                0..=3 => ("weights/part0.bin", k),
                4..=7 => ("weights/part1.bin", k - 4),
                _ => ("last.bin", 0),
            };
            Layer {
                rows,
                cols,
                act: if k % 2 == 0 { "Relu" } else { "Tanh" },
                external: Some((file.to_string(), slot as u64 * (w_bytes + 4096))),
            }
        })
        .collect();
    let t0 = std::time::Instant::now();
    write_streamed_mlp(&input, &layers);
    let total: u64 = listing(&m_dir)
        .iter()
        .filter_map(|p| {
            fs::metadata(m_dir.join(p))
                .ok()
                .filter(fs::Metadata::is_file)
                .as_ref()
                .map(fs::Metadata::len)
        })
        .sum();
    assert!(
        total > 2 << 30,
        "the model must exceed 2 GB ({total} bytes)"
    );
    eprintln!(
        "generated {:.2} GB in {:.1?}",
        total as f64 / 1e9,
        t0.elapsed()
    );
    let reference: BTreeMap<String, u64> = listing(&m_dir)
        .into_iter()
        .filter(|p| m_dir.join(p).is_file())
        .map(|p| {
            let len = fs::metadata(m_dir.join(&p)).unwrap().len();
            (p, len)
        })
        .collect();

    // A plain copy of the same files, for scale.
    let t0 = std::time::Instant::now();
    let st = Command::new("cp")
        .arg("-r")
        .arg(&m_dir)
        .arg(dir.path().join("copy"))
        .status()
        .unwrap();
    assert!(st.success());
    Command::new("sync").status().ok();
    let copy_secs = t0.elapsed().as_secs_f64();
    fs::remove_dir_all(dir.path().join("copy")).unwrap();

    // To a new output.
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("huge.onnx");
    let (secs, rss, o) = measured(&[input.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!(
        "new output: {secs:.2} s, peak RSS {:.1} MB ({:.2} GB/s); plain `cp -r` + sync: {copy_secs:.2} s",
        rss as f64 / 1024.0,
        total as f64 / 1e9 / secs
    );
    let written = LoadedModel::open(&out).unwrap();
    for (k, l) in layers.iter().enumerate() {
        let bound = if l.act == "Relu" {
            (6.0 / cols as f64).sqrt()
        } else {
            (6.0 / (rows + cols) as f64).sqrt()
        };
        assert_uniform_within(
            &f32_samples(&written, &format!("w{k}"), 1 << 16),
            bound,
            "w",
        );
        assert!(
            f32_values(&written, &format!("b{k}"))
                .iter()
                .all(|&x| x == 0.0)
        );
    }
    for (p, len) in &reference {
        assert_eq!(fs::metadata(out_dir.join(p)).unwrap().len(), *len, "{p}");
    }
    // The input's side files are untouched (spot-check: the pattern at the start of each).
    let input_model = LoadedModel::open(&input).unwrap();
    let block = pattern_block();
    let first = f32_samples(&input_model, "w0", 16);
    assert_eq!(f32_bytes(&first[..16]), block[..64]);

    // In place.
    let (secs, rss, o) = measured(&[input.as_os_str(), "--in-place".as_ref()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!(
        "in place: {secs:.2} s, peak RSS {:.1} MB",
        rss as f64 / 1024.0
    );
    let in_place = LoadedModel::open(&input).unwrap();
    for k in [0, 4, 8] {
        let name = format!("w{k}");
        assert_eq!(
            f32_samples(&in_place, &name, 1 << 12),
            f32_samples(&written, &name, 1 << 12),
            "{name}"
        );
    }
    for (p, len) in &reference {
        assert_eq!(fs::metadata(m_dir.join(p)).unwrap().len(), *len, "{p}");
    }
    assert!(temporaries(&m_dir).is_empty());
}

// =============================================================================================
// Hostile graphs: valid wire format, adversarial structure and attributes.
// =============================================================================================

/// A float tensor with `dims` and a matching raw payload.
fn dense(name: &str, dims: &[i64]) -> Vec<u8> {
    let n: i64 = dims.iter().product();
    tensor(
        name,
        dims,
        FLOAT,
        &Payload::Raw(vec![0x3f; n.max(0) as usize * 4]),
    )
}

/// Every op with a parameter slot × weight ranks × hostile attributes × slots: each model goes
/// through open → analysis → plan → rewrite (in-process) without a panic, in bounded time.
#[test]
fn hostile_attributes_and_shapes_never_panic() {
    let ops = [
        "LSTM",
        "GRU",
        "RNN",
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Gather",
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "InstanceNormalization",
        "PRelu",
        "Add",
    ];
    let shapes: [&[i64]; 8] = [
        &[],
        &[0],
        &[3],
        &[2, 3],
        &[4, 0],
        &[2, 3, 4],
        &[1, 8, 2],
        &[2, 3, 1, 1],
    ];
    let attrs: Vec<Vec<Vec<u8>>> = vec![
        vec![],
        vec![attr_int("group", 0)],
        vec![attr_int("group", -1)],
        vec![attr_int("group", i64::MAX)],
        vec![attr_int("hidden_size", 1 << 62)],
        vec![attr_int("hidden_size", -5)],
        vec![
            attr_int("hidden_size", 0),
            attr_str("direction", "bidirectional"),
        ],
        vec![
            attr_str("direction", "sideways"),
            attr_int("hidden_size", 2),
        ],
        vec![attr_int("transA", 1), attr_int("transB", 7)],
        vec![
            attr_ints("kernel_shape", &[i64::MAX, 2]),
            attr_ints("strides", &[0]),
        ],
        vec![attr_int("axis", i64::MIN), attr_int("num_groups", 0)],
        vec![attr_int("axis", 3), attr_int("num_groups", i64::MAX)],
    ];
    let dir = scratch();
    let mut rng = Rng(7);
    let started = std::time::Instant::now();
    let mut count = 0;
    for op in ops {
        for shape in shapes {
            for a in &attrs {
                // The weight in a random parameter slot, with a second initializer beside it.
                let slot = 1 + rng.below(3);
                let mut inputs = vec!["x", "", "", ""];
                inputs[slot] = "W";
                inputs[(slot % 3) + 1] = "R";
                let nodes = vec![
                    node("op", op, &inputs, &["h"], a),
                    node(
                        "act",
                        rng.pick(&["Relu", "Tanh", "Sigmoid", "LeakyRelu"]),
                        &["h"],
                        &["y"],
                        &[attr_float("alpha", f32::NAN)],
                    ),
                ];
                let r_shape: &[i64] = rng.pick(&shapes);
                let m = model(&graph(
                    &nodes,
                    &[dense("W", shape), dense("R", r_shape)],
                    &["x"],
                    &["y"],
                ));
                let d = dir.path().join(format!("{count}"));
                fs::create_dir_all(d.join("out")).unwrap();
                let input = d.join("model.onnx");
                fs::write(&input, &m).unwrap();
                let t0 = std::time::Instant::now();
                let r = std::panic::catch_unwind(|| exercise(&input, &d.join("out"), false));
                assert!(
                    r.is_ok(),
                    "{op} W{shape:?} R{r_shape:?} slot {slot}: panicked (model saved as {})",
                    input.display()
                );
                assert!(t0.elapsed().as_secs() < 10, "{op} W{shape:?}: too slow");
                fs::remove_dir_all(&d).unwrap();
                count += 1;
            }
        }
    }
    eprintln!("{count} hostile models in {:.1?}", started.elapsed());
}

/// Cycles, self-loops, long chains, wide fan-out, deep nesting, empty names: bounded time, no
/// panic.
#[test]
fn hostile_graph_structures_never_panic_or_hang() {
    let w = || dense("W", &[4, 4]);
    let b = || dense("B", &[4]);
    let gemm =
        |x: &str, out: &str| node("", "Gemm", &[x, "W", "B"], &[out], &[attr_int("transB", 1)]);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "cycle through the weight's consumer",
            model(&graph(
                &[gemm("y", "h"), node("", "Relu", &["h"], &["y"], &[])],
                &[w(), b()],
                &[],
                &["y"],
            )),
        ),
        (
            "self-loop after the layer",
            model(&graph(
                &[gemm("x", "h"), node("", "Add", &["h", "z"], &["z"], &[])],
                &[w(), b()],
                &["x"],
                &["z"],
            )),
        ),
        (
            "a value defined twice",
            model(&graph(
                &[
                    gemm("x", "h"),
                    node("", "Relu", &["x"], &["h"], &[]),
                    node("", "Tanh", &["h"], &["y"], &[]),
                ],
                &[w(), b()],
                &["x"],
                &["y"],
            )),
        ),
        (
            "an initializer that is also a node output",
            model(&graph(
                &[gemm("x", "h"), node("", "Relu", &["h"], &["W"], &[])],
                &[w(), b()],
                &["x"],
                &["W"],
            )),
        ),
        (
            "empty names everywhere",
            model(&graph(
                &[
                    node("", "Gemm", &["", "", ""], &[""], &[]),
                    node("", "Relu", &[""], &[""], &[]),
                ],
                &[dense("", &[2, 2])],
                &[""],
                &[""],
            )),
        ),
    ];
    // 20 000 Identity nodes between the layer and its activation.
    let mut chain = vec![gemm("x", "c0")];
    for k in 0..20_000 {
        chain.push(node(
            "",
            "Identity",
            &[&format!("c{k}")],
            &[&format!("c{}", k + 1)],
            &[],
        ));
    }
    chain.push(node("", "Relu", &["c20000"], &["y"], &[]));
    cases.push((
        "a 20 000-node chain",
        model(&graph(&chain, &[w(), b()], &["x"], &["y"])),
    ));
    // One weight shared by 5 000 layers, each followed by Add of all previous outputs.
    let mut wide = Vec::new();
    for k in 0..5_000 {
        wide.push(gemm("x", &format!("h{k}")));
        wide.push(node(
            "",
            if k % 2 == 0 { "Relu" } else { "Tanh" },
            &[&format!("h{k}")],
            &[&format!("y{k}")],
            &[],
        ));
    }
    let ys: Vec<String> = (0..5_000).map(|k| format!("y{k}")).collect();
    let ys: Vec<&str> = ys.iter().map(String::as_str).collect();
    wide.push(node("", "Sum", &ys, &["s"], &[]));
    cases.push((
        "a weight shared by 5 000 layers",
        model(&graph(&wide, &[w(), b()], &["x"], &["s"])),
    ));
    // A residual ladder: every Add reads the previous two values (a walk without a cache would
    // take exponential time).
    let mut ladder = vec![gemm("x", "v0"), node("", "Identity", &["v0"], &["v1"], &[])];
    for k in 2..400 {
        ladder.push(node(
            "",
            "Add",
            &[&format!("v{}", k - 1), &format!("v{}", k - 2)],
            &[&format!("v{k}")],
            &[],
        ));
    }
    ladder.push(node("", "Relu", &["v399"], &["y"], &[]));
    cases.push((
        "a residual ladder",
        model(&graph(&ladder, &[w(), b()], &["x"], &["y"])),
    ));
    // If nested 24 deep (the limit), a Gemm and outer-scope weight at every level.
    let mut g = graph(
        &[gemm("x", "o"), node("", "Relu", &["o"], &["r"], &[])],
        &[],
        &[],
        &["r"],
    );
    for _ in 0..24 {
        g = graph(
            &[
                node("", "If", &["c"], &["r"], &[attr_graph("then_branch", &g)]),
                gemm("r", "o2"),
            ],
            &[w(), b()],
            &["c", "x"],
            &["o2"],
        );
    }
    cases.push(("24 nested Ifs with outer-scope weights", model(&g)));

    let dir = scratch();
    for (k, (what, m)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("{k}"));
        fs::create_dir_all(d.join("out")).unwrap();
        let input = d.join("model.onnx");
        fs::write(&input, m).unwrap();
        let t0 = std::time::Instant::now();
        let r = std::panic::catch_unwind(|| exercise(&input, &d.join("out"), false));
        assert!(r.is_ok(), "{what}: panicked");
        eprintln!("{what}: {:?} in {:.2?}", r.unwrap(), t0.elapsed());
        assert!(t0.elapsed().as_secs() < 20, "{what}: too slow");
    }
}

/// Regression: `gates × hidden_size` overflowed in the analysis for a hostile hidden_size: a
/// panic in debug builds; in release, 4 × (2^62 + 2) wrapped to 8, W [1, 8, 2] was taken as a
/// recurrent weight with H = 2^62 + 2, and the plan's block arithmetic overflowed in turn.
#[test]
fn lstm_with_an_overflowing_hidden_size_is_left_untouched() {
    let hidden = (1i64 << 62) + 2;
    let m = model(&graph(
        &[node(
            "lstm",
            "LSTM",
            &["x", "W", "R"],
            &["y"],
            &[attr_int("hidden_size", hidden)],
        )],
        &[dense("W", &[1, 8, 2]), dense("R", &[1, 8, 2])],
        &["x"],
        &["y"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.onnx");
    fs::write(&input, &m).unwrap();
    let loaded = LoadedModel::open(&input).unwrap();
    let a = pipeline::analyze_loaded(&loaded, &AnalysisOptions::default()).unwrap();
    let w = a.find("", "W").unwrap();
    assert_eq!(w.role, None, "{w:?}");
    assert!(
        w.why_untouched().contains("rows per direction"),
        "{}",
        w.why_untouched()
    );
    fs::create_dir_all(dir.path().join("out")).unwrap();
    exercise(&input, &dir.path().join("out"), false);
}

/// Writes the code-built sources of the mutation loop as fuzz seeds into `ONNX_REINIT_SEED_DIR`
/// (the fuzz harness writes the same side files beside each input).
#[test]
#[ignore = "writes the fuzz corpus seeds: ONNX_REINIT_SEED_DIR=… cargo test … -- --ignored"]
fn write_fuzz_seeds() {
    let dir =
        PathBuf::from(std::env::var_os("ONNX_REINIT_SEED_DIR").expect("ONNX_REINIT_SEED_DIR"));
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in built_sources() {
        fs::write(dir.join(format!("built-{name}")), bytes).unwrap();
    }
}

/// Every input the fuzzer crashed on (`fuzz/regressions/`), through the whole pipeline; those
/// listed here must also be refused with the given message.
#[test]
fn fuzz_regressions() {
    let expected: BTreeMap<&str, &str> = [
        // prost refused an end-group tag in fields the scanner does not walk, and the error had
        // no byte offset (the harness requires one).
        (
            "end-group-in-opset-import.onnx",
            "malformed ONNX model at byte 21 (ModelProto, OperatorSetId #0): end-group tag of \
             field 11 without a start",
        ),
        (
            "end-group-in-value-info.onnx",
            "malformed ONNX model at byte 396 (ModelProto, Graph #0, ValueInfo #0): end-group \
             tag of field 2 without a start",
        ),
    ]
    .into_iter()
    .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut seen = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let input = work.path().join("in/model.onnx");
        write_side_files(input.parent().unwrap());
        fs::write(&input, fs::read(&p).unwrap()).unwrap();
        fs::create_dir_all(work.path().join("out")).unwrap();
        let r = exercise(&input, &work.path().join("out"), false);
        if let Some(msg) = expected.get(name.as_str()) {
            assert_eq!(r, Reached::Refused, "{name}");
            let e = LoadedModel::open(&input).unwrap_err().to_string();
            assert!(e.contains(msg), "{name}: {e}");
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        expected.len(),
        "regression inputs missing from {}",
        dir.display()
    );
}

/// Errors of the skeleton decoder (prost) in fields the scanner does not walk carry the byte
/// offset too; a well-formed group in an unknown field, which prost skips, still loads.
#[test]
fn skeleton_decode_errors_are_located() {
    // A graph input (ValueInfoProto) with `extra` appended to its body.
    let with_value_info = |extra: &[u8]| {
        let vi = [value_info("x"), extra.to_vec()].concat();
        let m = model(&[graph(&[], &[], &[], &[]), pb::bytes(11, &vi)].concat());
        let at = offset_of(&m, &vi) + 3; // past the name field
        (m, at)
    };
    let dir = tempfile::tempdir().unwrap();
    let open = |m: &[u8]| {
        let p = dir.path().join("model.onnx");
        fs::write(&p, m).unwrap();
        LoadedModel::open(&p).map(|_| ()).map_err(|e| e.to_string())
    };
    // Field 7 as a group holding a varint, properly closed: skipped, as prost does.
    let (m, _) = with_value_info(&[0x3b, 0x08, 0x01, 0x3c]);
    assert_eq!(open(&m), Ok(()));
    // Nested groups, closed.
    let (m, _) = with_value_info(&[0x3b, 0x43, 0x44, 0x3c]);
    assert_eq!(open(&m), Ok(()));
    let cases: [(&[u8], usize, &str); 5] = [
        (
            &[0x3b, 0x08, 0x01, 0x44],
            3,
            "end-group tag of field 8 inside the group of field 7",
        ),
        (&[0x3b, 0x08, 0x01], 3, "group of field 7 not closed"),
        (&[0x3c], 0, "end-group tag of field 7 without a start"),
        (&[0x0b, 0x0c], 0, "field 1 has unexpected wire type group"),
        (&[0x3b, 0x0f], 1, "invalid wire type 7"),
    ];
    for (extra, off, what) in cases {
        let (m, at) = with_value_info(extra);
        let e = open(&m).unwrap_err();
        let want = format!(
            "malformed ONNX model at byte {} (ModelProto, Graph #0, ValueInfo #0): {what}",
            at + off
        );
        assert!(e.contains(&want), "{extra:x?}: {e}\nwanted {want}");
    }
}

// =============================================================================================
// Resident memory while opening a model of many tensors.

/// Peak resident set (VmHWM, KiB) of a fresh process that opens and analyses `model`: this test
/// binary re-run for [`rss_probe`] alone. (A child's `ru_maxrss` would count the pages it
/// shared with this big test process between fork and exec; VmHWM starts afresh at exec.)
fn probe_peak_rss_kib(model: &Path, with_stats: bool) -> u64 {
    let stats: &std::ffi::OsStr = if with_stats { "1" } else { "0" }.as_ref();
    let out = run_probe(
        "robustness::rss_probe",
        &[
            ("ONNX_REINIT_RSS_PROBE", model.as_os_str()),
            ("ONNX_REINIT_RSS_PROBE_STATS", stats),
        ],
    );
    probe_number(&out, "VMHWM_KIB=")
}

/// Not a test on its own: with `ONNX_REINIT_RSS_PROBE=MODEL` (set by
/// [`probe_peak_rss_kib`]), opens and analyses MODEL as a dry run does (and with
/// `ONNX_REINIT_RSS_PROBE_STATS=1` reads every value as `inspect` does) and prints this
/// process's peak resident set.
#[test]
fn rss_probe() {
    let Some(path) = std::env::var_os("ONNX_REINIT_RSS_PROBE") else {
        return;
    };
    let m = LoadedModel::open(&path).unwrap();
    let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).unwrap();
    std::hint::black_box(&a);
    if std::env::var_os("ONNX_REINIT_RSS_PROBE_STATS").is_some_and(|v| v == "1") {
        let all: Vec<usize> = (0..m.tensors().len()).collect();
        let stats = onnx_reinit::inspect::stats::tensor_stats(&m, &all).unwrap();
        assert!(stats.iter().all(Option::is_some));
    }
    println!("VMHWM_KIB={}", proc_status("VmHWM:"));
}

/// Opening a model maps the file; reading each initializer's header faults in the page cache
/// around it (64 KiB by default, a whole 2 MiB folio after a large read). The loader drops
/// what the scan and the skeleton decode have moved past, and `inspect` the pages of each
/// piece it has summarised, so the resident set grows neither with the number of tensors nor
/// with the model's size. 400 layers of 64 KiB: without the dropping the mapped headers
/// alone add about the file's size (26 MB) to the peak.
#[test]
fn opening_many_tensors_keeps_the_resident_set_small() {
    let layers = 400;
    let (rows, cols) = (64i64, 256i64);
    let nodes: Vec<Vec<u8>> = (0..layers)
        .map(|l| {
            let x = if l == 0 {
                "x".to_owned()
            } else {
                format!("h{}", l - 1)
            };
            let y = if l + 1 == layers {
                "y".to_owned()
            } else {
                format!("h{l}")
            };
            node(
                &format!("fc{l}"),
                "Gemm",
                &[&x, &format!("W{l}")],
                &[&y],
                &[attr_int("transB", 1)],
            )
        })
        .collect();
    let zeros = Payload::Raw(vec![0; (rows * cols * 4) as usize]);
    let inits: Vec<Vec<u8>> = (0..layers)
        .map(|l| tensor(&format!("W{l}"), &[rows, cols], FLOAT, &zeros))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("many.onnx");
    fs::write(&big, model(&graph(&nodes, &inits, &["x"], &["y"]))).unwrap();
    let small = dir.path().join("small.onnx");
    fs::write(&small, sized_model(4, 4)).unwrap();

    let file_kib = fs::metadata(&big).unwrap().len() / 1024;
    // Opening, and reading every value once (inspect's statistics).
    for (what, stats) in [
        ("open + analyse", false),
        ("+ statistics of every value", true),
    ] {
        let base = probe_peak_rss_kib(&small, stats);
        let many = probe_peak_rss_kib(&big, stats);
        eprintln!(
            "{what}: peak RSS {base} KiB for one tensor, {many} KiB for {layers} \
             ({file_kib} KiB file)"
        );
        assert!(
            many < base + 12 * 1024,
            "{what}: {layers} tensors ({file_kib} KiB) peaked at {many} KiB, {base} KiB for one"
        );
    }
}
