//! What a faithful rewrite is checked with: tensor values as exact bits, the byte ranges a
//! rewrite may change, and the bytes outside them.
//!
//! Self-contained (only `onnx_reinit` and `half`), so the fuzz targets include this same file
//! (`fuzz/src/lib.rs`, through `#[path]`) instead of a copy.

use std::ops::Range;

use half::{bf16, f16};
use onnx_reinit::apply::PlanFiller;
use onnx_reinit::onnx::model::{DType, LoadedModel, Storage};
use onnx_reinit::onnx::scan;
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::rewrite::Filler;

/// The values of float tensor `i` as f64 bit patterns (exact for all four types): read from
/// the model, or, with `filler`, the values the plan gives it (one call over the whole tensor).
///
/// # Panics
/// If tensor `i` is not of a float type (callers skip those).
pub fn bits(m: &LoadedModel, i: usize, filler: Option<&PlanFiller>) -> Vec<u64> {
    let t = &m.tensors()[i];
    let n = usize::try_from(t.numel()).expect("tensor fits in memory");
    let fill = |out: ValuesMut<'_>| match filler {
        Some(f) => f.fill(i, 0, out),
        None => m.read_values(i, 0, out).expect("read the tensor's values"),
    };
    match t.dtype() {
        DType::F32 => {
            let mut b = vec![0f32; n];
            fill(ValuesMut::F32(&mut b));
            b.iter().map(|&x| f64::from(x).to_bits()).collect()
        }
        DType::F64 => {
            let mut b = vec![0f64; n];
            fill(ValuesMut::F64(&mut b));
            b.iter().map(|x| x.to_bits()).collect()
        }
        DType::F16 => {
            let mut b = vec![f16::ZERO; n];
            fill(ValuesMut::F16(&mut b));
            b.iter().map(|x| x.to_f64().to_bits()).collect()
        }
        DType::BF16 => {
            let mut b = vec![bf16::ZERO; n];
            fill(ValuesMut::BF16(&mut b));
            b.iter().map(|x| x.to_f64().to_bits()).collect()
        }
        DType::Other(c) => panic!("tensor {} has non-float type {c}", t.name),
    }
}

/// Byte ranges of the model file that a rewrite of tensor `i` may change: its inline payload
/// (with the length prefix of packed fields, which re-framing may rewrite).
pub fn inline_ranges(m: &LoadedModel, i: usize) -> Vec<Range<usize>> {
    match &m.tensors()[i].storage {
        Storage::Raw { bytes } => vec![bytes.clone()],
        Storage::FloatData { segments }
        | Storage::DoubleData { segments }
        | Storage::Int32Data { segments } => segments
            .iter()
            .map(|s| s.prefix.start.min(s.bytes.start)..s.bytes.end)
            .collect(),
        _ => Vec::new(),
    }
}

/// The bytes of `buf` outside `holes`, concatenated.
pub fn outside(buf: &[u8], holes: &[Range<usize>]) -> Vec<u8> {
    let mut sorted = holes.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut out = Vec::with_capacity(buf.len());
    let mut pos = 0;
    for r in sorted {
        if r.start > pos {
            out.extend_from_slice(&buf[pos..r.start]);
        }
        pos = pos.max(r.end);
    }
    if pos < buf.len() {
        out.extend_from_slice(&buf[pos..]);
    }
    out
}

/// Every length prefix of the model `bytes`: of the messages that enclose initializers and of
/// the initializers themselves, the bytes a re-framed rewrite may change besides the payloads.
///
/// # Panics
/// If `bytes` does not scan.
pub fn length_prefixes(bytes: &[u8]) -> Vec<Range<usize>> {
    let s = scan::scan(bytes).expect("the model scans");
    let tensors = s.tensors.iter().map(|t| t.prefix.clone());
    s.frames
        .iter()
        .map(|f| f.prefix.clone())
        .chain(tensors)
        .collect()
}
