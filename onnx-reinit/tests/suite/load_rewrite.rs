//! Loading and rewriting: real fixtures, models built in code, and every refusal.
//!
//! Models are built with the test-only protobuf encoder in `common` (the library never encodes),
//! with metadata around every message: it must survive a rewrite byte for byte.

use std::collections::HashSet;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use half::{bf16, f16};
use onnx_reinit::error::Error;
use onnx_reinit::onnx::model::{DType, LoadedModel, Storage};
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::onnx::{scan, wire};
use onnx_reinit::rewrite::{Filler, OutputTarget, RewriteOptions, rewrite};

// The metadata variants under the short names: every message built here carries metadata.
use crate::common::onnx::{
    self, BFLOAT16, DOUBLE, FLOAT, FLOAT16, INT64, Payload, attr_graph, attr_graphs, f32_bytes,
    named_graph as graph, node_with_metadata as node, tensor_with_metadata as tensor,
};
use crate::common::{fixture_models, fixtures_dir, pb};

/// This file's models: by `initforge-test`, with a doc string.
fn model(graph_body: &[u8]) -> Vec<u8> {
    onnx::model("initforge-test", Some("model doc"), graph_body)
}

// ---------------------------------------------------------------------------------------------
// Fillers and checks.
// ---------------------------------------------------------------------------------------------

/// The test's value for element `i` of tensor `t`.
fn value(t: usize, i: u64) -> f64 {
    (t as u64 * 1000 + i) as f64
}

/// The filler the tests use: `value(tensor, index)`, recording every call.
#[derive(Default)]
struct TestFiller {
    calls: Mutex<Vec<(usize, u64, usize)>>,
}

impl Filler for TestFiller {
    fn fill(&self, tensor: usize, start: u64, out: ValuesMut<'_>) {
        self.calls.lock().unwrap().push((tensor, start, out.len()));
        let v = |i: usize| value(tensor, start + i as u64);
        match out {
            ValuesMut::F32(o) => o.iter_mut().enumerate().for_each(|(i, x)| *x = v(i) as f32),
            ValuesMut::F64(o) => o.iter_mut().enumerate().for_each(|(i, x)| *x = v(i)),
            ValuesMut::F16(o) => o
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = f16::from_f64(v(i))),
            ValuesMut::BF16(o) => o
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = bf16::from_f64(v(i))),
        }
    }
}

/// A filler writing zeros (shrinks `int32_data`).
struct Zeros;
impl Filler for Zeros {
    fn fill(&self, _: usize, _: u64, out: ValuesMut<'_>) {
        match out {
            ValuesMut::F32(o) => o.fill(0.0),
            ValuesMut::F64(o) => o.fill(0.0),
            ValuesMut::F16(o) => o.fill(f16::ZERO),
            ValuesMut::BF16(o) => o.fill(bf16::ZERO),
        }
    }
}

/// `value` rounded to `dtype`, as f64.
fn expected(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F32 => f64::from(v as f32),
        DType::F64 => v,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        DType::Other(_) => unreachable!(),
    }
}

/// Every value of tensor `i`, as f64, through `read_values`.
fn read_all(m: &LoadedModel, i: usize) -> Vec<f64> {
    let t = &m.tensors()[i];
    let n = t.numel() as usize;
    match t.dtype() {
        DType::F32 => {
            let mut b = vec![0f32; n];
            m.read_values(i, 0, ValuesMut::F32(&mut b)).unwrap();
            b.iter().map(|&x| f64::from(x)).collect()
        }
        DType::F64 => {
            let mut b = vec![0f64; n];
            m.read_values(i, 0, ValuesMut::F64(&mut b)).unwrap();
            b
        }
        DType::F16 => {
            let mut b = vec![f16::ZERO; n];
            m.read_values(i, 0, ValuesMut::F16(&mut b)).unwrap();
            b.iter().map(|x| x.to_f64()).collect()
        }
        DType::BF16 => {
            let mut b = vec![bf16::ZERO; n];
            m.read_values(i, 0, ValuesMut::BF16(&mut b)).unwrap();
            b.iter().map(|x| x.to_f64()).collect()
        }
        DType::Other(c) => panic!("tensor {} has non-float type {c}", t.name),
    }
}

/// Asserts that tensor `i` of `m` holds the test filler's values for tensor index `src_index`.
fn assert_filled(m: &LoadedModel, i: usize, src_index: usize) {
    let t = &m.tensors()[i];
    let got = read_all(m, i);
    assert_eq!(got.len() as u64, t.numel());
    for (k, g) in got.iter().enumerate() {
        let e = expected(t.dtype(), value(src_index, k as u64));
        assert!(
            g.to_bits() == e.to_bits(),
            "tensor {:?} element {k}: got {g}, expected {e}",
            t.name
        );
    }
}

/// Byte ranges of a tensor's inline payload.
fn payload_ranges(m: &LoadedModel, i: usize) -> Vec<Range<usize>> {
    match &m.tensors()[i].storage {
        Storage::Raw { bytes } => vec![bytes.clone()],
        Storage::FloatData { segments }
        | Storage::DoubleData { segments }
        | Storage::Int32Data { segments } => segments.iter().map(|s| s.bytes.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Asserts `a` and `b` have equal length and differ only inside `ranges`; returns how many bytes
/// differ.
fn diff_only_in(a: &[u8], b: &[u8], ranges: &[Range<usize>]) -> usize {
    assert_eq!(a.len(), b.len(), "output length differs from input length");
    let mut differing = 0;
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            differing += 1;
            assert!(
                ranges.iter().any(|r| r.contains(&k)),
                "byte {k} differs outside every payload range"
            );
        }
    }
    differing
}

fn one(r: Range<usize>) -> Vec<Range<usize>> {
    vec![r]
}

fn float_targets(m: &LoadedModel) -> Vec<usize> {
    (0..m.tensors().len())
        .filter(|&i| m.tensors()[i].dtype().is_float())
        .collect()
}

fn opts(out: &Path) -> RewriteOptions {
    RewriteOptions::new(OutputTarget::Path(out.to_path_buf()))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn fixtures() -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let v = fixture_models();
    assert!(v.len() >= 14, "fixtures missing in {}", dir.display());
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Real fixtures.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_loads_and_matches_ground_truth() {
    for path in fixtures() {
        let m = LoadedModel::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let gt_path = path.with_extension("gt.json");
        let gt: serde_json::Value = serde_json::from_slice(&fs::read(&gt_path).unwrap()).unwrap();
        let inits = gt["initializers"].as_array().unwrap();
        let main: Vec<_> = m
            .tensors()
            .iter()
            .filter(|t| m.graph_of(t).is_empty())
            .collect();
        assert_eq!(main.len(), inits.len(), "{}", path.display());
        for (t, g) in main.iter().zip(inits) {
            assert_eq!(t.name, g["name"].as_str().unwrap(), "{}", path.display());
            let dims: Vec<i64> = g["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            assert_eq!(t.dims, dims, "{} {}", path.display(), t.name);
            assert_eq!(
                t.storage.kind(),
                g["storage"].as_str().unwrap(),
                "{}",
                t.name
            );
            assert_eq!(
                t.dtype().onnx_name(),
                g["dtype"].as_str().unwrap(),
                "{}",
                t.name
            );
        }
    }
}

#[test]
fn scanner_and_skeleton_agree_on_fixtures() {
    for path in fixtures() {
        let bytes = fs::read(&path).unwrap();
        let s = scan::scan(&bytes).unwrap();
        let sk =
            <onnx_reinit::onnx::skeleton::Model as prost::Message>::decode(&bytes[..]).unwrap();
        let g = sk.graph.unwrap();
        let from_skeleton: Vec<(String, Vec<i64>)> = g
            .initializer
            .iter()
            .map(|t| (t.name.to_string(), t.dims.to_vec()))
            .collect();
        let from_scan: Vec<(String, Vec<i64>)> = s
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect();
        assert!(!from_scan.is_empty());
        assert_eq!(from_scan, from_skeleton, "{}", path.display());
        // Every payload range lies inside its tensor's frame, inside the file.
        for t in &s.tensors {
            assert_eq!(t.prefix.end, t.body.start);
            for r in &t.raw_data {
                assert!(t.body.start <= r.start && r.end <= t.body.end);
            }
        }
    }
}

#[test]
fn fixture_rewrite_touches_only_payload_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for path in fixtures() {
        let m = LoadedModel::open(&path).unwrap();
        let targets = float_targets(&m);
        assert!(!targets.is_empty());
        let out = dir.path().join(path.file_name().unwrap());
        let filler = TestFiller::default();
        let stats = rewrite(&m, &targets, &filler, &opts(&out)).unwrap();
        assert_eq!(stats.tensors, targets.len());
        assert_eq!(stats.output_len, m.bytes().len() as u64);
        let new = fs::read(&out).unwrap();
        let ranges: Vec<_> = targets
            .iter()
            .flat_map(|&i| payload_ranges(&m, i))
            .collect();
        let differing = diff_only_in(m.bytes(), &new, &ranges);
        assert!(differing > 0, "{}: nothing changed", path.display());
        let m2 = LoadedModel::open(&out).unwrap();
        for &i in &targets {
            assert_filled(&m2, i, i);
        }
        // Tensors not targeted (integers) are untouched.
        for i in (0..m.tensors().len()).filter(|i| !targets.contains(i)) {
            for r in payload_ranges(&m, i) {
                assert_eq!(m.bytes()[r.clone()], new[r]);
            }
        }
    }
}

/// Counts `NodeProto.metadata_props` entries in the main graph, with the library's wire reader.
fn node_metadata_entries(bytes: &[u8]) -> usize {
    let mut count = 0;
    let mut r = wire::Reader::new(bytes);
    while let Some(f) = r.next_field().unwrap() {
        if f.number != 7 {
            continue;
        }
        let mut g = wire::Reader::sub(bytes, f.len_body().unwrap());
        while let Some(nf) = g.next_field().unwrap() {
            if nf.number != 1 {
                continue;
            }
            let mut n = wire::Reader::sub(bytes, nf.len_body().unwrap());
            while let Some(x) = n.next_field().unwrap() {
                count += usize::from(x.number == 9);
            }
        }
    }
    count
}

#[test]
fn dynamo_fixture_keeps_metadata_props_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures()
        .into_iter()
        .find(|p| p.ends_with("transformer_dynamo.onnx"))
        .unwrap();
    let m = LoadedModel::open(&path).unwrap();
    let before = node_metadata_entries(m.bytes());
    assert!(
        before > 0,
        "the dynamo export should carry node metadata_props"
    );
    let out = dir.path().join("t.onnx");
    let targets = float_targets(&m);
    rewrite(&m, &targets, &TestFiller::default(), &opts(&out)).unwrap();
    let new = fs::read(&out).unwrap();
    assert_eq!(node_metadata_entries(&new), before);
    // Everything outside the payloads, metadata included, is identical.
    let ranges: Vec<_> = targets
        .iter()
        .flat_map(|&i| payload_ranges(&m, i))
        .collect();
    let mut outside_equal = 0usize;
    for (k, (a, b)) in m.bytes().iter().zip(&new).enumerate() {
        if !ranges.iter().any(|r| r.contains(&k)) {
            assert_eq!(a, b, "byte {k}");
            outside_equal += 1;
        }
    }
    assert!(outside_equal > m.bytes().len() / 4);
}

// ---------------------------------------------------------------------------------------------
// Models built in code.
// ---------------------------------------------------------------------------------------------

#[test]
fn typed_payload_fields_and_f64_raw() {
    let dir = tempfile::tempdir().unwrap();
    let body = graph(
        "g",
        &[node("mm", "MatMul", &["x", "w"], &["y"], &[])],
        &[
            tensor(
                "w_float_data",
                &[2, 3],
                FLOAT,
                &Payload::Floats(vec![0.5; 6]),
            ),
            tensor(
                "w_unpacked",
                &[4],
                FLOAT,
                &Payload::FloatsUnpacked(vec![1.0, 2.0, 3.0, 4.0]),
            ),
            tensor("w_double", &[3], DOUBLE, &Payload::Doubles(vec![0.25; 3])),
            tensor("w_f64_raw", &[2, 2], DOUBLE, &Payload::Raw(vec![0x11; 32])),
            tensor("shape", &[2], INT64, &Payload::Raw(vec![1; 16])),
            tensor("empty", &[0, 5], FLOAT, &Payload::None),
        ],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let kinds: Vec<&str> = m.tensors().iter().map(|t| t.storage.kind()).collect();
    assert_eq!(
        kinds,
        [
            "float_data",
            "float_data",
            "double_data",
            "raw_data",
            "raw_data",
            "empty"
        ]
    );
    assert_eq!(read_all(&m, 1), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(read_all(&m, 2), [0.25; 3]);
    assert_eq!(
        m.small_values_f64("shape", 8),
        Some(vec![0x0101_0101_0101_0101_i64 as f64; 2])
    );
    assert_eq!(
        m.small_values_f64("w_float_data", 3),
        None,
        "larger than max_len"
    );
    let targets = float_targets(&m);
    assert_eq!(targets, [0, 1, 2, 3, 5]);
    let out = dir.path().join("out.onnx");
    rewrite(&m, &targets, &TestFiller::default(), &opts(&out)).unwrap();
    let new = fs::read(&out).unwrap();
    let ranges: Vec<_> = targets
        .iter()
        .flat_map(|&i| payload_ranges(&m, i))
        .collect();
    diff_only_in(m.bytes(), &new, &ranges);
    let m2 = LoadedModel::open(&out).unwrap();
    for &i in &targets {
        assert_filled(&m2, i, i);
    }
    assert_eq!(
        m2.small_values_f64(3usize, 4),
        Some(vec![3000.0, 3001.0, 3002.0, 3003.0])
    );
}

/// A model whose f16/bf16 tensors are in `int32_data`, in the main graph and in an `If`'s
/// branches; `bits(name, n)` gives each tensor's varint values. Graph paths and enumeration
/// order are part of the contract under test.
fn int32_model(bits: &dyn Fn(&str, usize) -> Vec<u64>) -> Vec<u8> {
    let t = |name: &str, n: usize, dtype: i32| {
        tensor(name, &[n as i64], dtype, &Payload::Int32(bits(name, n)))
    };
    let then_g = graph(
        "then",
        &[node("", "Identity", &["w_then"], &["o"], &[])],
        &[t("w_then", 70, FLOAT16)],
    );
    // A nested `If` inside the else branch: depth 2.
    let inner = graph("inner", &[], &[t("w_inner", 3, BFLOAT16)]);
    let else_g = graph(
        "else",
        &[node(
            "if_inner",
            "If",
            &["c"],
            &["o"],
            &[
                attr_graph("then_branch", &inner),
                attr_graph("else_branch", &graph("inner_else", &[], &[])),
            ],
        )],
        &[t("w_else", 5, BFLOAT16)],
    );
    let loop_bodies = [
        graph("b0", &[], &[t("w_b0", 2, FLOAT16)]),
        graph("b1", &[], &[t("w_b1", 200, FLOAT16)]),
    ];
    let main = graph(
        "main",
        &[
            node(
                "if0",
                "If",
                &["c"],
                &["y"],
                &[
                    attr_graph("then_branch", &then_g),
                    attr_graph("else_branch", &else_g),
                ],
            ),
            node(
                "",
                "Custom",
                &["y"],
                &["z"],
                &[attr_graphs("bodies", &loop_bodies)],
            ),
        ],
        &[
            t("w_main", 60, FLOAT16),
            tensor("w_f32", &[4], FLOAT, &Payload::Raw(f32_bytes(&[1.0; 4]))),
            t("w_main_bf16", 9, BFLOAT16),
        ],
    );
    model(&main)
}

#[test]
fn int32_data_is_reframed_in_nested_graphs() {
    let dir = tempfile::tempdir().unwrap();
    // Zeros: one byte per element, so new values (three bytes) grow every enclosing message.
    let input = write(dir.path(), "m.onnx", &int32_model(&|_, n| vec![0; n]));
    let m = LoadedModel::open(&input).unwrap();
    let order: Vec<(&str, &str)> = m
        .tensors()
        .iter()
        .map(|t| (m.graph_of(t), t.name.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("", "w_main"),
            ("", "w_f32"),
            ("", "w_main_bf16"),
            ("/if0.then_branch", "w_then"),
            ("/if0.else_branch", "w_else"),
            ("/if0.else_branch/if_inner.then_branch", "w_inner"),
            ("/#1.bodies[0]", "w_b0"),
            ("/#1.bodies[1]", "w_b1"),
        ]
    );
    let graphs: Vec<&str> = m.graphs().iter().map(|g| g.path.as_str()).collect();
    assert_eq!(
        graphs,
        [
            "",
            "/if0.then_branch",
            "/if0.else_branch",
            "/if0.else_branch/if_inner.then_branch",
            "/if0.else_branch/if_inner.else_branch",
            "/#1.bodies[0]",
            "/#1.bodies[1]",
        ]
    );
    assert!(
        m.tensors()
            .iter()
            .all(|t| t.name == "w_f32" || t.storage.kind() == "int32_data")
    );
    assert_eq!(m.find_tensor("/if0.else_branch", "w_else"), Some(4));
    let sk = m.skeleton_graphs();
    assert_eq!(sk.len(), m.graphs().len());
    for (i, t) in m.tensors().iter().enumerate() {
        let g = t.graph_index as usize;
        let h = &sk[g].initializer[i - m.graphs()[g].tensors.start];
        assert_eq!(h.name, t.name);
        assert_eq!(h.dims, t.dims);
    }
    assert_eq!(sk[3].name.as_deref(), Some("inner"));

    let targets: Vec<usize> = (0..m.tensors().len()).collect();
    let out = dir.path().join("out.onnx");
    let stats = rewrite(&m, &targets, &TestFiller::default(), &opts(&out)).unwrap();
    assert_eq!(stats.reframed, 7);
    // The output must be exactly the model an encoder would write with the new values.
    let index: Vec<String> = m.tensors().iter().map(|t| t.name.to_string()).collect();
    let want = int32_model(&|name, n| {
        let ti = index.iter().position(|x| x == name).unwrap();
        let dt = m.tensors()[ti].dtype();
        (0..n as u64)
            .map(|k| {
                let v = value(ti, k);
                u64::from(if dt == DType::F16 {
                    f16::from_f64(v).to_bits()
                } else {
                    bf16::from_f64(v).to_bits()
                })
            })
            .collect()
    });
    // w_f32 is raw_data; patch its expected bytes the same way.
    let m_want_path = write(dir.path(), "want.onnx", &want);
    let mw = LoadedModel::open(&m_want_path).unwrap();
    let Storage::Raw { bytes } = &mw.tensors()[1].storage else {
        panic!()
    };
    let mut want = want.clone();
    want[bytes.clone()].copy_from_slice(&f32_bytes(&[1000.0, 1001.0, 1002.0, 1003.0]));
    let got = fs::read(&out).unwrap();
    assert!(got.len() > m.bytes().len());
    assert_eq!(got, want);
    assert_eq!(stats.output_len, got.len() as u64);
    let m2 = LoadedModel::open(&out).unwrap();
    for &i in &targets {
        assert_filled(&m2, i, i);
    }

    // And shrinking back (zeros: three bytes → one) restores the original bytes exactly.
    let back = dir.path().join("back.onnx");
    rewrite(&m2, &targets[..1], &Zeros, &opts(&back)).unwrap();
    let m3 = LoadedModel::open(&back).unwrap();
    assert_eq!(read_all(&m3, 0), vec![0.0; 60]);
    let all_zero = dir.path().join("zero.onnx");
    let targets_no_f32: Vec<usize> = targets.iter().copied().filter(|&i| i != 1).collect();
    rewrite(&m2, &targets_no_f32, &Zeros, &opts(&all_zero)).unwrap();
    let z = fs::read(&all_zero).unwrap();
    let mut original_with_f32 = m.bytes().to_vec();
    let Storage::Raw { bytes } = &m.tensors()[1].storage else {
        panic!()
    };
    original_with_f32[bytes.clone()].copy_from_slice(&f32_bytes(&[1000.0, 1001.0, 1002.0, 1003.0]));
    assert_eq!(z, original_with_f32);
}

#[test]
fn pieces_cover_large_tensors_at_aligned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let n = 140_000usize; // three pieces of 65536
    let body = graph(
        "g",
        &[],
        &[
            tensor("raw", &[n as i64], FLOAT, &Payload::Raw(vec![0; n * 4])),
            tensor("fd", &[n as i64], FLOAT, &Payload::Floats(vec![0.0; n])),
            tensor("h", &[n as i64], FLOAT16, &Payload::Int32(vec![0; n])),
        ],
    );
    let input = write(dir.path(), "big.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let filler = TestFiller::default();
    let out = dir.path().join("out.onnx");
    let mut o = opts(&out);
    o.piece_elems = 1 << 16;
    let done = Arc::new(Mutex::new(0u64));
    let done2 = Arc::clone(&done);
    o.progress = Some(Arc::new(move |d, _total| *done2.lock().unwrap() += d));
    let stats = rewrite(&m, &[0, 1, 2], &filler, &o).unwrap();
    assert_eq!(*done.lock().unwrap(), stats.bytes_written);
    let calls = filler.calls.lock().unwrap().clone();
    for &(t, start, len) in &calls {
        assert_eq!(start % (1 << 16), 0);
        assert_eq!(len as u64, (n as u64 - start).min(1 << 16), "tensor {t}");
    }
    // The int32_data tensor is filled twice (measure, then write).
    assert_eq!(calls.len(), 3 + 3 + 6);
    let m2 = LoadedModel::open(&out).unwrap();
    for i in 0..3 {
        assert_filled(&m2, i, i);
    }
    // Partial reads at an offset.
    let mut b = vec![f16::ZERO; 5];
    m2.read_values(2, 70_000, ValuesMut::F16(&mut b)).unwrap();
    assert_eq!(b[0], f16::from_f64(value(2, 70_000)));
    // Piece sizes must be a positive multiple of 65536.
    let mut bad = opts(&dir.path().join("bad.onnx"));
    bad.piece_elems = 1000;
    let e = rewrite(&m, &[0], &filler, &bad).unwrap_err();
    assert!(e.to_string().contains("multiple of 65536"), "{e}");
    assert!(!dir.path().join("bad.onnx").exists());
}

/// A model with tensors in two side files (one in a sub-folder) plus a small inline tensor.
fn external_model(dir: &Path) -> PathBuf {
    // a.bin: 8 bytes of padding, tensor A (6 f32), 4 bytes of padding, tensor C (3 f16).
    let mut a = vec![0xAAu8; 8];
    a.extend(f32_bytes(&[1.0; 6]));
    a.extend([0xBB; 4]);
    let c_off = a.len();
    a.extend([0u8; 6]);
    a.extend([0xCC; 3]);
    let ints_off = a.len();
    a.extend(7i64.to_le_bytes().repeat(2));
    write(dir, "a.bin", &a);
    let mut b = vec![0xDDu8; 16];
    b.extend(2.5f64.to_le_bytes().repeat(4));
    write(dir, "sub/b.bin", &b);
    let ext = |loc: &str, off: usize, len: usize| {
        Payload::External(vec![
            ("location".into(), loc.into()),
            ("offset".into(), off.to_string()),
            ("length".into(), len.to_string()),
        ])
    };
    let body = graph(
        "g",
        &[node("gemm", "Gemm", &["x", "A", "B"], &["y"], &[])],
        &[
            tensor("A", &[2, 3], FLOAT, &ext("a.bin", 8, 24)),
            tensor("B", &[4], DOUBLE, &ext("sub/b.bin", 16, 32)),
            tensor("C", &[3], FLOAT16, &ext("a.bin", c_off, 6)),
            tensor("small", &[2], FLOAT, &Payload::Raw(f32_bytes(&[7.0, 8.0]))),
            tensor("ints", &[2], INT64, &ext("a.bin", ints_off, 16)),
        ],
    );
    write(dir, "model.onnx", &model(&body))
}

#[test]
fn external_data_copied_next_to_output_and_patched() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let input = external_model(src.path());
    let a_before = fs::read(src.path().join("a.bin")).unwrap();
    let b_before = fs::read(src.path().join("sub/b.bin")).unwrap();
    let m = LoadedModel::open(&input).unwrap();
    let kinds: Vec<&str> = m.tensors().iter().map(|t| t.storage.kind()).collect();
    assert_eq!(
        kinds,
        ["external", "external", "external", "raw_data", "external"]
    );
    assert_eq!(read_all(&m, 1), [2.5; 4]);
    assert_eq!(m.small_values_f64("ints", 2), Some(vec![7.0, 7.0]));
    let out = dst.path().join("out.onnx");
    let targets = [0, 1, 2, 3];
    let stats = rewrite(&m, &targets, &TestFiller::default(), &opts(&out)).unwrap();
    assert_eq!(stats.side_files.len(), 2);
    // The header changes only in the inline tensor's payload.
    let header = fs::read(&out).unwrap();
    diff_only_in(m.bytes(), &header, &payload_ranges(&m, 3));
    // Side files: same length, only the tensors' ranges differ.
    let a_after = fs::read(dst.path().join("a.bin")).unwrap();
    diff_only_in(&a_before, &a_after, &[8..32, 36..42]);
    let b_after = fs::read(dst.path().join("sub/b.bin")).unwrap();
    diff_only_in(&b_before, &b_after, &one(16..48));
    // The input is untouched.
    assert_eq!(fs::read(src.path().join("a.bin")).unwrap(), a_before);
    assert_eq!(fs::read(src.path().join("sub/b.bin")).unwrap(), b_before);
    assert_eq!(fs::read(&input).unwrap(), m.bytes());
    let m2 = LoadedModel::open(&out).unwrap();
    for &i in &targets {
        assert_filled(&m2, i, i);
    }
    assert_eq!(listing(dst.path()), ["a.bin", "out.onnx", "sub/b.bin"]);
}

#[test]
fn in_place_inline_and_external() {
    let dir = tempfile::tempdir().unwrap();
    let input = external_model(dir.path());
    let a_before = fs::read(dir.path().join("a.bin")).unwrap();
    let b_before = fs::read(dir.path().join("sub/b.bin")).unwrap();
    let m = LoadedModel::open(&input).unwrap();
    let header_before = m.bytes().to_vec();
    let small_range = payload_ranges(&m, 3);
    let before = listing(dir.path());
    // Only A (a.bin) and the inline tensor: sub/b.bin must not even be rewritten.
    let stats = rewrite(
        &m,
        &[0, 3],
        &TestFiller::default(),
        &RewriteOptions::new(OutputTarget::InPlace),
    )
    .unwrap();
    drop(m);
    assert_eq!(stats.side_files.len(), 1);
    assert_eq!(listing(dir.path()), before, "no temporary file left");
    diff_only_in(&header_before, &fs::read(&input).unwrap(), &small_range);
    diff_only_in(
        &a_before,
        &fs::read(dir.path().join("a.bin")).unwrap(),
        &one(8..32),
    );
    assert_eq!(fs::read(dir.path().join("sub/b.bin")).unwrap(), b_before);
    let m2 = LoadedModel::open(&input).unwrap();
    assert_filled(&m2, 0, 0);
    assert_filled(&m2, 3, 3);
    assert_eq!(read_all(&m2, 1), [2.5; 4]);

    // In place with only external targets leaves the header file alone.
    let header_now = fs::read(&input).unwrap();
    rewrite(
        &m2,
        &[1],
        &TestFiller::default(),
        &RewriteOptions::new(OutputTarget::InPlace),
    )
    .unwrap();
    assert_eq!(fs::read(&input).unwrap(), header_now);
    assert_filled(&LoadedModel::open(&input).unwrap(), 1, 1);
}

// ---------------------------------------------------------------------------------------------
// Refusals: each names the problem, and no output file is left.
// ---------------------------------------------------------------------------------------------

/// Opens and (if that succeeds) rewrites `input` to `out_dir/out.onnx`; returns the error and
/// asserts the output folder is unchanged.
fn refused(input: &Path, out_dir: &Path) -> Error {
    let before = listing(out_dir);
    let out = out_dir.join("out.onnx");
    let e = match LoadedModel::open(input) {
        Err(e) => e,
        Ok(m) => {
            let t = float_targets(&m);
            rewrite(&m, &t, &TestFiller::default(), &opts(&out)).expect_err("should be refused")
        }
    };
    assert_eq!(listing(out_dir), before, "output folder changed after: {e}");
    assert!(!out.exists());
    e
}

fn assert_msg(e: &Error, parts: &[&str]) {
    let s = e.to_string();
    for p in parts {
        assert!(s.contains(p), "message {s:?} lacks {p:?}");
    }
}

#[test]
fn refuses_existing_output_without_force_and_the_input_itself() {
    let dir = tempfile::tempdir().unwrap();
    let body = graph(
        "g",
        &[],
        &[tensor("w", &[2], FLOAT, &Payload::Raw(vec![0; 8]))],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let out = write(dir.path(), "out.onnx", b"precious");
    let m = LoadedModel::open(&input).unwrap();
    let e = rewrite(&m, &[0], &TestFiller::default(), &opts(&out)).unwrap_err();
    assert!(matches!(e, Error::OutputExists { .. }));
    assert_msg(&e, &["out.onnx", "already exists"]);
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    assert_eq!(listing(dir.path()), ["m.onnx", "out.onnx"]);
    // With force it is replaced.
    let mut o = opts(&out);
    o.force = true;
    rewrite(&m, &[0], &TestFiller::default(), &o).unwrap();
    assert_filled(&LoadedModel::open(&out).unwrap(), 0, 0);

    // The input itself, even with force, even through a symlink.
    let mut o = opts(&input);
    o.force = true;
    let e = rewrite(&m, &[0], &TestFiller::default(), &o).unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
    assert_msg(&e, &["m.onnx", "in-place"]);
    std::os::unix::fs::symlink(&input, dir.path().join("link.onnx")).unwrap();
    let e = rewrite(&m, &[0], &TestFiller::default(), &{
        let mut o = opts(&dir.path().join("link.onnx"));
        o.force = true;
        o
    })
    .unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
    assert_eq!(fs::read(&input).unwrap(), m.bytes());
    assert_eq!(listing(dir.path()), ["link.onnx", "m.onnx", "out.onnx"]);
}

#[test]
fn refuses_output_beside_input_that_would_overwrite_side_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = external_model(dir.path());
    let e = refused(&input, dir.path());
    assert!(
        matches!(&e, Error::SideFileIsInput { location, .. } if location == "a.bin"),
        "{e}"
    );
    assert_msg(&e, &["a.bin", "external data", "model.onnx"]);
}

fn external_case(location: &str, offset: u64, length: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("m"), "w.bin", &[0u8; 64]);
    let body = graph(
        "g",
        &[],
        &[tensor(
            "W",
            &[4],
            FLOAT,
            &Payload::External(vec![
                ("location".into(), location.into()),
                ("offset".into(), offset.to_string()),
                ("length".into(), length.to_string()),
            ]),
        )],
    );
    let input = write(&dir.path().join("m"), "m.onnx", &model(&body));
    (dir, input)
}

#[test]
fn refuses_bad_external_locations() {
    let cases: [(&str, u64, u64, &[&str]); 8] = [
        ("/etc/passwd", 0, 16, &["\"W\"", "absolute"]),
        // Regression: the model file itself as its own side file was accepted, and the rewrite
        // then wrote "payload" over the model's structure (and wrote the model twice).
        (
            "m.onnx",
            0,
            16,
            &["\"W\"", "\"m.onnx\" is the model file itself"],
        ),
        ("./m.onnx", 0, 16, &["\"W\"", "is the model file itself"]),
        ("../m/w.bin", 0, 16, &["\"W\"", ".."]),
        ("sub/../w.bin", 0, 16, &["\"W\"", ".."]),
        ("missing.bin", 0, 16, &["\"W\"", "does not exist"]),
        ("w.bin", 56, 16, &["\"W\"", "runs past the end"]),
        ("w.bin", 0, 12, &["\"W\"", "length 12", "16 bytes"]),
    ];
    for (loc, off, len, msg) in cases {
        let (dir, input) = external_case(loc, off, len);
        let e = refused(&input, dir.path());
        assert!(matches!(e, Error::External { .. }), "{loc}: {e}");
        assert_msg(&e, msg);
        assert_msg(&e, &["m.onnx"]);
    }
    // A symlink inside the folder that points outside it.
    let (dir, input) = external_case("escape.bin", 0, 16);
    write(dir.path(), "outside.bin", &[0u8; 64]);
    std::os::unix::fs::symlink(
        dir.path().join("outside.bin"),
        dir.path().join("m/escape.bin"),
    )
    .unwrap();
    let e = refused(&input, dir.path());
    assert_msg(&e, &["\"W\"", "outside the model's folder"]);
    // A symlink that stays inside is fine.
    let (dir, input) = external_case("inside.bin", 0, 16);
    std::os::unix::fs::symlink("w.bin", dir.path().join("m/inside.bin")).unwrap();
    LoadedModel::open(&input).unwrap();
    // A symlink inside the folder to the model itself.
    let (dir, input) = external_case("self.bin", 0, 16);
    std::os::unix::fs::symlink("m.onnx", dir.path().join("m/self.bin")).unwrap();
    let e = refused(&input, dir.path());
    assert_msg(&e, &["\"W\"", "\"self.bin\" is the model file itself"]);
}

/// Regression: when numel × element size overflowed 64 bits, an external tensor's `length` was
/// accepted unchecked (16 bytes standing for 2^62 floats), and the rewrite then planned 2^44
/// pieces.
#[test]
fn refuses_external_tensors_whose_byte_size_overflows() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("m"), "w.bin", &[0u8; 64]);
    for (dims, dtype, msg) in [
        (&[1i64 << 61, 2][..], FLOAT, "overflow"),
        (&[1i64 << 62, 2][..], FLOAT16, "overflow"),
    ] {
        let body = graph(
            "g",
            &[],
            &[tensor(
                "W",
                dims,
                dtype,
                &Payload::External(vec![
                    ("location".into(), "w.bin".into()),
                    ("length".into(), "16".into()),
                ]),
            )],
        );
        let input = write(&dir.path().join("m"), "m.onnx", &model(&body));
        let out_dir = tempfile::tempdir().unwrap();
        let e = refused(&input, out_dir.path());
        assert_msg(&e, &["m.onnx", "\"W\"", msg]);
    }
}

#[test]
fn refuses_in_place_on_read_only_model_and_aliased_external_bytes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let body = graph(
        "g",
        &[],
        &[tensor("w", &[2], FLOAT, &Payload::Raw(vec![0; 8]))],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    fs::set_permissions(&input, fs::Permissions::from_mode(0o444)).unwrap();
    let m = LoadedModel::open(&input).unwrap();
    let e = rewrite(
        &m,
        &[0],
        &TestFiller::default(),
        &RewriteOptions::new(OutputTarget::InPlace),
    )
    .unwrap_err();
    assert_msg(&e, &["m.onnx", "modify in place"]);
    assert_eq!(fs::read(&input).unwrap(), m.bytes());
    assert_eq!(listing(dir.path()), ["m.onnx"]);
    // A new output copies the permissions of the input.
    let out = dir.path().join("out.onnx");
    rewrite(&m, &[0], &TestFiller::default(), &opts(&out)).unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o444
    );

    // Two tensors sharing external bytes: rewriting one would change the other.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "w.bin", &[0u8; 32]);
    let ext = |off: u64| {
        Payload::External(vec![
            ("location".into(), "w.bin".into()),
            ("offset".into(), off.to_string()),
        ])
    };
    let body = graph(
        "g",
        &[],
        &[
            tensor("a", &[4], FLOAT, &ext(0)),
            tensor("b", &[2], FLOAT, &ext(8)),
            tensor("c", &[2], FLOAT, &ext(24)),
        ],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.onnx");
    for t in [0, 1] {
        let e = rewrite(&m, &[t], &TestFiller::default(), &opts(&out)).unwrap_err();
        assert_msg(&e, &["overlap"]);
        assert!(listing(out_dir.path()).is_empty());
    }
    rewrite(&m, &[2], &TestFiller::default(), &opts(&out)).unwrap();
    assert_filled(&LoadedModel::open(&out).unwrap(), 2, 2);
}

/// Regression: folders created for side files in sub-folders of the output were left behind
/// when the rewrite then failed or was cancelled.
#[test]
fn a_failed_rewrite_leaves_no_side_file_folders() {
    let src = tempfile::tempdir().unwrap();
    let input = external_model(src.path());
    let m = LoadedModel::open(&input).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("deeper/still/out.onnx");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut o = opts(&out);
    o.cancel = Some(Arc::new(AtomicBool::new(true)));
    let e = rewrite(&m, &[0, 1, 3], &TestFiller::default(), &o).unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    // `sub/` (for sub/b.bin) is gone; the folders that existed before are kept.
    assert!(
        !out.parent().unwrap().join("sub").exists(),
        "a side-file folder was left"
    );
    assert_eq!(fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
    assert!(listing(out_dir.path()).is_empty());
    // A successful run creates it.
    rewrite(&m, &[0, 1, 3], &TestFiller::default(), &opts(&out)).unwrap();
    assert!(out.parent().unwrap().join("sub/b.bin").is_file());
}

/// Regression: a cancel that arrived while the outputs were being flushed was ignored, and the
/// run renamed its outputs into place anyway.
#[test]
fn a_cancel_during_the_final_flush_still_writes_nothing() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let body = graph(
        "g",
        &[],
        &[tensor("w", &[3], FLOAT, &Payload::Raw(vec![0; 12]))],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let out = dir.path().join("out.onnx");
    let cancel = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut o = opts(&out);
    o.cancel = Some(Arc::clone(&cancel));
    // Cancel as the last piece of work completes: only the flush and renames remain.
    let (c, d) = (Arc::clone(&cancel), Arc::clone(&done));
    o.progress = Some(Arc::new(move |bytes, total| {
        if d.fetch_add(bytes, Ordering::SeqCst) + bytes >= total {
            c.store(true, Ordering::SeqCst);
        }
    }));
    let e = rewrite(&m, &[0], &TestFiller::default(), &o).unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert_eq!(listing(dir.path()), ["m.onnx"]);
}

/// In place keeps the model's owner and group (when run by root on someone else's model; the
/// replacement file would otherwise belong to root).
#[test]
fn in_place_keeps_the_owner() {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to give the model to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = external_model(dir.path());
    for f in ["model.onnx", "a.bin", "sub/b.bin"] {
        std::os::unix::fs::chown(dir.path().join(f), Some(4242), Some(4343)).unwrap();
    }
    let m = LoadedModel::open(&input).unwrap();
    rewrite(
        &m,
        &[0, 1, 3],
        &TestFiller::default(),
        &RewriteOptions::new(OutputTarget::InPlace),
    )
    .unwrap();
    assert_filled(&LoadedModel::open(&input).unwrap(), 0, 0);
    for f in ["model.onnx", "a.bin", "sub/b.bin"] {
        let meta = fs::metadata(dir.path().join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{f}");
    }
}

/// A small valid model for the corruption tests.
fn small_model() -> Vec<u8> {
    model(&graph(
        "g",
        &[node("n", "Relu", &["x"], &["y"], &[])],
        &[tensor(
            "w",
            &[3],
            FLOAT,
            &Payload::Raw(f32_bytes(&[1.0, 2.0, 3.0])),
        )],
    ))
}

#[test]
fn refuses_truncated_and_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_model();
    for cut in [0, 1, 5, good.len() / 2, good.len() - 1] {
        let p = write(dir.path(), "t.onnx", &good[..cut]);
        let e = refused(&p, dir.path());
        assert!(matches!(e, Error::Malformed { .. }), "cut {cut}: {e}");
        assert_msg(&e, &["t.onnx", "malformed", "at byte"]);
    }
    // Seeded random bytes: always an error, never a panic.
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for k in 0..64 {
        let len = (next() % 4096) as usize + 1;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let p = write(dir.path(), "r.onnx", &bytes);
        let e = refused(&p, dir.path());
        assert_msg(&e, &["r.onnx"]);
        let _ = k;
    }
}

#[test]
fn refuses_wire_format_violations() {
    let dir = tempfile::tempdir().unwrap();
    // ModelProto.graph whose length is an 11-byte varint.
    let mut long = vec![0x3a];
    long.extend([0xff; 10]);
    long.push(0x01);
    let e = refused(&write(dir.path(), "v.onnx", &long), dir.path());
    assert_msg(&e, &["at byte 1", "varint longer than 10 bytes"]);
    // A group wire type.
    let e = refused(&write(dir.path(), "g.onnx", &[0x0b, 0x0c]), dir.path());
    assert_msg(&e, &["at byte 0", "group"]);
    // A graph field with the wrong wire type.
    let e = refused(&write(dir.path(), "w.onnx", &[0x38, 0x01]), dir.path());
    assert_msg(&e, &["at byte 0", "field 7", "wire type"]);
    // A nested length running past its enclosing message (but not past the file).
    let g = graph(
        "g",
        &[],
        &[tensor("w", &[1], FLOAT, &Payload::Raw(vec![0; 4]))],
    );
    let mut bytes = model(&g);
    let pos = bytes.windows(2).position(|w| w == [0x4a, 0x04]).unwrap(); // raw_data len 4
    bytes[pos + 1] = 0x7f;
    let e = refused(&write(dir.path(), "l.onnx", &bytes), dir.path());
    assert_msg(&e, &["runs past the end of the enclosing message", "\"w\""]);
    // No graph at all.
    let e = refused(&write(dir.path(), "n.onnx", &pb::int(1, 9)), dir.path());
    assert_msg(&e, &["no graph"]);
}

#[test]
fn refuses_deep_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = graph("leaf", &[], &[]);
    for _ in 0..40 {
        g = graph(
            "g",
            &[node(
                "",
                "If",
                &["c"],
                &["o"],
                &[attr_graph("then_branch", &g)],
            )],
            &[],
        );
    }
    let e = refused(&write(dir.path(), "deep.onnx", &model(&g)), dir.path());
    assert_msg(&e, &["deeper than 24"]);
    // 20 levels are fine.
    let mut g = graph(
        "leaf",
        &[],
        &[tensor("w", &[1], FLOAT, &Payload::Raw(vec![0; 4]))],
    );
    for _ in 0..20 {
        g = graph(
            "g",
            &[node(
                "",
                "If",
                &["c"],
                &["o"],
                &[attr_graph("then_branch", &g)],
            )],
            &[],
        );
    }
    let m = LoadedModel::open(write(dir.path(), "ok.onnx", &model(&g))).unwrap();
    assert_eq!(m.graphs().len(), 21);
    assert_eq!(
        m.graph_of(&m.tensors()[0]).matches(".then_branch").count(),
        20
    );
}

#[test]
fn refuses_inconsistent_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let ext = Payload::External(vec![("location".into(), "w.bin".into())]);
    write(dir.path(), "w.bin", &[0u8; 16]);
    let cases: Vec<(Vec<Vec<u8>>, &[&str])> = vec![
        (
            vec![tensor("neg", &[2, -3], FLOAT, &Payload::Raw(vec![]))],
            &["\"neg\"", "negative dimension -3"],
        ),
        (
            vec![tensor(
                "huge",
                &[1 << 40, 1 << 40],
                FLOAT,
                &Payload::Raw(vec![]),
            )],
            &["\"huge\"", "overflows"],
        ),
        (
            vec![tensor("short", &[3], FLOAT, &Payload::Raw(vec![0; 8]))],
            &["\"short\"", "need 12 bytes", "holds 8"],
        ),
        (
            vec![tensor("fd", &[3], FLOAT, &Payload::Floats(vec![0.0; 2]))],
            &["\"fd\"", "need 3 values"],
        ),
        (
            vec![
                tensor("dup", &[1], FLOAT, &Payload::Raw(vec![0; 4])),
                tensor("dup", &[1], FLOAT, &Payload::Raw(vec![0; 4])),
            ],
            &["\"dup\"", "duplicate initializer name"],
        ),
        (
            vec![
                [
                    tensor("both", &[4], FLOAT, &Payload::Raw(vec![0; 16])),
                    pb::entry(13, "location", "w.bin"),
                    pb::int(14, 1),
                ]
                .concat(),
            ],
            &["\"both\"", "both inline and external"],
        ),
        (
            vec![tensor("two", &[1], FLOAT, &Payload::Raw(vec![0; 4])), {
                let mut t = tensor("two_fields", &[1], FLOAT, &Payload::Raw(vec![0; 4]));
                t.extend(pb::bytes(4, &[0; 4]));
                t
            }],
            &["\"two_fields\"", "several fields"],
        ),
        (
            vec![tensor("nodata", &[2], FLOAT, &Payload::None)],
            &["\"nodata\"", "no payload"],
        ),
        (
            vec![tensor(
                "f32_in_int32",
                &[1],
                FLOAT,
                &Payload::Int32(vec![1]),
            )],
            &["\"f32_in_int32\"", "cannot hold"],
        ),
    ];
    // External tensor referencing data fine, to make sure the file itself is accepted.
    let ok = tensor("ext_ok", &[4], FLOAT, &ext);
    LoadedModel::open(write(
        dir.path(),
        "ok.onnx",
        &model(&graph("g", &[], &[ok])),
    ))
    .unwrap();
    for (k, (inits, msg)) in cases.into_iter().enumerate() {
        let p = write(
            dir.path(),
            &format!("c{k}.onnx"),
            &model(&graph("g", &[], &inits)),
        );
        let out_dir = tempfile::tempdir().unwrap();
        let e = refused(&p, out_dir.path());
        assert_msg(&e, msg);
        assert_msg(&e, &[&format!("c{k}.onnx")]);
    }
}

#[test]
fn refuses_unsupported_targets_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let body = graph(
        "g",
        &[],
        &[
            tensor("ints", &[2], INT64, &Payload::Raw(vec![0; 16])),
            tensor("w", &[2], FLOAT, &Payload::Raw(vec![0; 8])),
            {
                // f16 in two int32_data runs: valid, but not re-framed.
                let mut t = tensor("split", &[2], FLOAT16, &Payload::Int32(vec![0]));
                t.extend(pb::bytes(5, &[0]));
                t
            },
        ],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    assert_eq!(read_all(&m, 2), [0.0, 0.0]);
    let out = dir.path().join("out.onnx");
    let before = listing(dir.path());
    for (targets, msg) in [
        (vec![0usize], &["\"ints\"", "never modified"][..]),
        (vec![1, 2], &["\"split\"", "segment"][..]),
        (vec![1, 1], &["listed twice"][..]),
        (vec![7], &["no tensor #7"][..]),
    ] {
        let e = rewrite(&m, &targets, &TestFiller::default(), &opts(&out)).unwrap_err();
        assert_msg(&e, msg);
        assert_eq!(listing(dir.path()), before);
    }
    let mut o = opts(&out);
    o.cancel = Some(Arc::new(AtomicBool::new(true)));
    let e = rewrite(&m, &[1], &TestFiller::default(), &o).unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert_eq!(listing(dir.path()), before);
}

/// A seeded mutation loop over small fixtures: flip, truncate, splice. Never a panic; whatever
/// loads must rewrite with only payload bytes changed.
#[test]
fn mutated_fixtures_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<Vec<u8>> = fixtures()
        .iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n == "cnn.onnx" || n == "gru_dynamo.onnx"
        })
        .map(|p| fs::read(p).unwrap())
        .chain([small_model(), int32_model(&|_, n| vec![0; n])])
        .collect();
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut loaded = 0;
    let mut seen = HashSet::new();
    for round in 0..240 {
        let src = &sources[round % sources.len()];
        let mut b = src.clone();
        match next() % 3 {
            0 => {
                for _ in 0..=next() % 4 {
                    let i = (next() as usize) % b.len();
                    b[i] ^= 1 << (next() % 8);
                }
            }
            1 => b.truncate((next() as usize) % b.len()),
            _ => {
                let from = (next() as usize) % b.len();
                let len = (next() as usize) % 64;
                let chunk: Vec<u8> = b[from..(from + len).min(b.len())].to_vec();
                let at = (next() as usize) % b.len();
                b.splice(at..at, chunk);
            }
        }
        let p = write(dir.path(), "mut.onnx", &b);
        match LoadedModel::open(&p) {
            Err(e) => {
                assert!(e.to_string().contains("mut.onnx"), "{e}");
                seen.insert(std::mem::discriminant(&e));
            }
            Ok(m) => {
                loaded += 1;
                let targets = float_targets(&m);
                let out = dir.path().join("mut.out.onnx");
                let mut o = opts(&out);
                o.force = true;
                match rewrite(&m, &targets, &TestFiller::default(), &o) {
                    Ok(stats) => {
                        let m2 = LoadedModel::open(&out).unwrap();
                        assert_eq!(m2.tensors().len(), m.tensors().len());
                        if stats.reframed == 0 {
                            let ranges: Vec<_> = targets
                                .iter()
                                .flat_map(|&i| payload_ranges(&m, i))
                                .collect();
                            diff_only_in(m.bytes(), &fs::read(&out).unwrap(), &ranges);
                        }
                    }
                    Err(e) => assert!(e.to_string().contains("mut.onnx"), "{e}"),
                }
            }
        }
    }
    assert!(
        loaded > 0 && seen.len() > 1,
        "the loop should exercise both outcomes"
    );
}

/// A filler like a whole-tensor fill (an orthogonal matrix's QR): every piece waits for one
/// computation, here one that ends only when the progress callback has been called with 0
/// bytes. Without the rewrite's pulse nobody would call it while all workers wait, and the
/// fill would give up after a minute (a hang guard, not a timing).
struct WaitsForPulse {
    pulsed: Mutex<bool>,
    woken: std::sync::Condvar,
}

impl Filler for WaitsForPulse {
    fn fill(&self, tensor: usize, start: u64, out: ValuesMut<'_>) {
        let guard = self.pulsed.lock().unwrap();
        let (guard, timeout) = self
            .woken
            .wait_timeout_while(guard, std::time::Duration::from_mins(1), |p| !*p)
            .unwrap();
        assert!(
            *guard && !timeout.timed_out(),
            "no pulse while the fill waited"
        );
        drop(guard);
        TestFiller::default().fill(tensor, start, out);
    }
}

#[test]
fn progress_pulses_while_a_whole_tensor_fill_holds_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200_000usize; // four pieces of 65536
    let body = graph(
        "g",
        &[],
        &[tensor(
            "w",
            &[n as i64],
            FLOAT,
            &Payload::Raw(vec![0; n * 4]),
        )],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let filler = Arc::new(WaitsForPulse {
        pulsed: Mutex::new(false),
        woken: std::sync::Condvar::new(),
    });
    let out = dir.path().join("out.onnx");
    let mut o = opts(&out);
    o.piece_elems = 1 << 16;
    // (bytes, total) of every call, in order.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (f, c) = (Arc::clone(&filler), Arc::clone(&calls));
    o.progress = Some(Arc::new(move |bytes, total| {
        c.lock().unwrap().push((bytes, total));
        if bytes == 0 {
            *f.pulsed.lock().unwrap() = true;
            f.woken.notify_all();
        }
    }));
    let stats = rewrite(&m, &[0], &*filler, &o).unwrap();
    let calls = calls.lock().unwrap().clone();
    // Pulses came while the pieces waited, before the tensor's bytes, which all arrived.
    let first_pulse = calls.iter().position(|c| c.0 == 0).expect("a pulse");
    let payload = (n * 4) as u64;
    let before: u64 = calls[..first_pulse].iter().map(|c| c.0).sum();
    assert!(
        before < payload,
        "the pulse came before the tensor's pieces"
    );
    assert_eq!(calls.iter().map(|c| c.0).sum::<u64>(), stats.bytes_written);
    assert!(calls.iter().all(|c| c.1 == stats.bytes_written));
    assert_filled(&LoadedModel::open(&out).unwrap(), 0, 0);
}

/// `data_name` with an `int32_data` target in the same graph: the location entries' splices and
/// the varint re-framing change the same enclosing lengths; the output must load with every
/// tensor's values, the external ones from the renamed file at their offsets.
#[test]
fn data_name_relocates_alongside_reframed_int32_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = vec![0xAAu8; 8];
    a.extend(f32_bytes(&[1.0; 6]));
    write(dir.path(), "a.bin", &a);
    let ext = Payload::External(vec![
        ("location".into(), "a.bin".into()),
        ("offset".into(), "8".into()),
        ("length".into(), "24".into()),
    ]);
    let body = graph(
        "g",
        &[],
        &[
            tensor("h", &[300], FLOAT16, &Payload::Int32(vec![0; 300])),
            tensor("A", &[2, 3], FLOAT, &ext),
            tensor("r", &[4], FLOAT, &Payload::Raw(f32_bytes(&[0.0; 4]))),
        ],
    );
    let input = write(dir.path(), "m.onnx", &model(&body));
    let m = LoadedModel::open(&input).unwrap();
    let out = dir.path().join("out.onnx");
    let mut o = opts(&out);
    o.data_name = Some("data/out-weights.bin".into());
    let stats = rewrite(&m, &[0, 1, 2], &TestFiller::default(), &o).unwrap();
    assert_eq!(stats.reframed, 1);
    let m2 = LoadedModel::open(&out).unwrap();
    for i in 0..3 {
        assert_filled(&m2, i, i);
    }
    match &m2.tensors()[1].storage {
        Storage::External(ext) => {
            assert_eq!(ext.location, "data/out-weights.bin");
            assert_eq!((ext.offset, ext.length), (8, 24));
        }
        other => panic!("{other:?}"),
    }
    // The copy keeps the bytes around the tensor; the input's file is untouched.
    let copy = fs::read(dir.path().join("data/out-weights.bin")).unwrap();
    assert_eq!(&copy[..8], &[0xAA; 8]);
    assert_eq!(fs::read(dir.path().join("a.bin")).unwrap(), a);
}
