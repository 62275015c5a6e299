//! Value statistics of initializers, read from the payload in bounded pieces, in parallel.
//!
//! Every tensor is cut into pieces of [`PIECE`] elements; all pieces of all requested tensors
//! are read into per-thread buffers, their pages then dropped from the model's mapping (so
//! memory is a few pieces per thread whatever the model size), and summarised on the rayon
//! pool; the per-piece summaries are merged exactly (Chan et al.'s pairwise update for the mean
//! and the sum of squared deviations). f32, f64, f16 and bf16 are read in their own type and widened to f64.

use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::onnx::model::LoadedModel;
use crate::onnx::values::{ValuesBuf, ValuesMut};

/// Elements read at once per piece (256 KiB of f32).
pub const PIECE: u64 = 1 << 16;

/// Summary statistics of a tensor's values.
///
/// Non-finite values (NaN, ±inf) are counted in `non_finite` and left out of every other field,
/// so the moments stay meaningful (and serialisable) when a few values are broken.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of elements.
    pub count: u64,
    /// Number of finite elements (the population of the moments below).
    pub finite: u64,
    /// NaN or infinite elements.
    pub non_finite: u64,
    /// Elements exactly zero (either sign).
    pub zeros: u64,
    /// Elements below zero.
    pub negatives: u64,
    /// Mean of the finite elements (`None` when there are none).
    pub mean: Option<f64>,
    /// Population standard deviation of the finite elements.
    pub std: Option<f64>,
    /// Root mean square of the finite elements.
    pub rms: Option<f64>,
    /// Smallest finite element.
    pub min: Option<f64>,
    /// Largest finite element.
    pub max: Option<f64>,
}

impl Stats {
    /// Statistics of a slice of values (serial; for small in-memory data such as layer outputs).
    pub fn of_slice(values: &[f32]) -> Stats {
        let mut p = Partial::default();
        p.add_iter(values.iter().map(|&x| f64::from(x)), values.len() as u64);
        p.finish()
    }

    /// Whether every finite element is zero (and there is at least one element).
    pub fn all_zero(&self) -> bool {
        self.count > 0 && self.zeros == self.count
    }

    /// Whether all elements are finite and equal (and there are at least two).
    pub fn is_constant(&self) -> bool {
        self.non_finite == 0 && self.count > 1 && self.min == self.max
    }
}

/// The summary of one piece, mergeable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Partial {
    count: u64,
    finite: u64,
    non_finite: u64,
    zeros: u64,
    negatives: u64,
    mean: f64,
    /// Sum of squared deviations from `mean`.
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            count: 0,
            finite: 0,
            non_finite: 0,
            zeros: 0,
            negatives: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Partial {
    /// Adds `count` values (two passes over a cloneable iterator: sum, then squared deviations,
    /// which is exact enough for pieces of [`PIECE`] elements).
    pub(crate) fn add_iter<I>(&mut self, values: I, count: u64)
    where
        I: Iterator<Item = f64> + Clone,
    {
        let mut piece = Partial {
            count,
            ..Partial::default()
        };
        let mut sum = 0.0f64;
        for x in values.clone() {
            if !x.is_finite() {
                piece.non_finite += 1;
                continue;
            }
            piece.finite += 1;
            sum += x;
            if x == 0.0 {
                piece.zeros += 1;
            } else if x < 0.0 {
                piece.negatives += 1;
            }
            piece.min = piece.min.min(x);
            piece.max = piece.max.max(x);
        }
        if piece.finite > 0 {
            piece.mean = sum / piece.finite as f64;
            let mean = piece.mean;
            piece.m2 = values
                .filter(|x| x.is_finite())
                .map(|x| (x - mean) * (x - mean))
                .sum();
        }
        self.merge(&piece);
    }

    /// Merges another summary into this one.
    pub(crate) fn merge(&mut self, o: &Partial) {
        let n = self.finite + o.finite;
        if o.finite > 0 {
            if self.finite == 0 {
                self.mean = o.mean;
                self.m2 = o.m2;
            } else {
                let (na, nb, nf) = (self.finite as f64, o.finite as f64, n as f64);
                let delta = o.mean - self.mean;
                self.mean += delta * nb / nf;
                self.m2 += o.m2 + delta * delta * na * nb / nf;
            }
        }
        self.count += o.count;
        self.finite = n;
        self.non_finite += o.non_finite;
        self.zeros += o.zeros;
        self.negatives += o.negatives;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The final statistics.
    pub(crate) fn finish(&self) -> Stats {
        let some = |x: f64| (self.finite > 0).then_some(x);
        let var = if self.finite > 0 {
            (self.m2 / self.finite as f64).max(0.0)
        } else {
            0.0
        };
        Stats {
            count: self.count,
            finite: self.finite,
            non_finite: self.non_finite,
            zeros: self.zeros,
            negatives: self.negatives,
            mean: some(self.mean),
            std: some(var.sqrt()),
            rms: some((var + self.mean * self.mean).sqrt()),
            min: some(self.min),
            max: some(self.max),
        }
    }
}

/// Lanes of the f32 kernel: independent accumulators the compiler keeps in vector registers.
const LANES: usize = 8;

/// The summary of f32 values at memory speed: two branch-free passes over [`LANES`]
/// accumulators each (counts, sum in f64, min, max; then the squared deviations from the mean
/// in f64), which the compiler vectorises; the piece is in cache for the second pass. The same
/// statistics as [`Partial::add_iter`] up to the rounding of the sums' order.
fn partial_f32(v: &[f32]) -> Partial {
    // Exponent all ones: NaN or ±inf.
    let finite = |x: f32| x.to_bits() & 0x7f80_0000 != 0x7f80_0000;
    let mut sum = [0f64; LANES];
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut bad = [0u32; LANES];
    let mut zeros = [0u32; LANES];
    let mut neg = [0u32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut lane = |k: usize, x: f32| {
        let ok = finite(x);
        bad[k] += u32::from(!ok);
        zeros[k] += u32::from(x == 0.0);
        neg[k] += u32::from(ok && x < 0.0);
        sum[k] += f64::from(if ok { x } else { 0.0 });
        lo[k] = lo[k].min(if ok { x } else { f32::INFINITY });
        hi[k] = hi[k].max(if ok { x } else { f32::NEG_INFINITY });
    };
    for c in chunks {
        for (k, &x) in c.iter().enumerate() {
            lane(k, x);
        }
    }
    for (k, &x) in tail.iter().enumerate() {
        lane(k, x);
    }
    let non_finite: u64 = bad.iter().map(|&b| u64::from(b)).sum();
    let count = v.len() as u64;
    let mut p = Partial {
        count,
        finite: count - non_finite,
        non_finite,
        zeros: zeros.iter().map(|&z| u64::from(z)).sum(),
        negatives: neg.iter().map(|&z| u64::from(z)).sum(),
        min: f64::from(lo.iter().copied().fold(f32::INFINITY, f32::min)),
        max: f64::from(hi.iter().copied().fold(f32::NEG_INFINITY, f32::max)),
        ..Partial::default()
    };
    if p.finite > 0 {
        p.mean = sum.iter().sum::<f64>() / p.finite as f64;
        let mean = p.mean;
        let mut m2 = [0f64; LANES];
        let mut dev = |k: usize, x: f32| {
            let d = if finite(x) { f64::from(x) - mean } else { 0.0 };
            m2[k] += d * d;
        };
        for c in v.chunks_exact(LANES) {
            for (k, &x) in c.iter().enumerate() {
                dev(k, x);
            }
        }
        for (k, &x) in tail.iter().enumerate() {
            dev(k, x);
        }
        p.m2 = m2.iter().sum();
    }
    p
}

fn partial_of(values: &ValuesMut<'_>) -> Partial {
    let mut p = Partial::default();
    let n = values.len() as u64;
    match values {
        ValuesMut::F32(v) => return partial_f32(v),
        ValuesMut::F64(v) => p.add_iter(v.iter().copied(), n),
        // f16 and bf16 widen exactly to f32.
        ValuesMut::F16(v) => {
            return partial_f32(&v.iter().map(|x: &f16| x.to_f32()).collect::<Vec<_>>());
        }
        ValuesMut::BF16(v) => {
            return partial_f32(&v.iter().map(|x: &bf16| x.to_f32()).collect::<Vec<_>>());
        }
    }
    p
}

/// The summary of elements `start .. start + len` of tensor `i` read in place from the mapping,
/// when they are f32 `raw_data` at a 4-byte-aligned address on a little-endian machine (the
/// common case: no copy into a buffer); `None` otherwise (the caller reads a copy). The pages
/// are dropped from the mapping afterwards, as `read_values_once` does.
fn mapped_f32(model: &LoadedModel, i: usize, start: u64, len: usize) -> Option<Partial> {
    let t = &model.tensors()[i];
    if !cfg!(target_endian = "little") || t.dtype() != crate::onnx::dtype::DType::F32 {
        return None;
    }
    let crate::onnx::model::Storage::Raw { bytes } = &t.storage else {
        return None;
    };
    let from = bytes
        .start
        .checked_add(usize::try_from(start).ok()?.checked_mul(4)?)?;
    let to = from.checked_add(len.checked_mul(4)?)?;
    if to > bytes.end {
        return None;
    }
    let values: &[f32] = bytemuck::try_cast_slice(model.bytes().get(from..to)?).ok()?;
    let p = partial_f32(values);
    model.unmap_pages(from..to);
    Some(p)
}

/// Statistics of the tensors `indices` (into [`LoadedModel::tensors`]), in that order.
///
/// Tensors of a non-float type get `None`. Pieces of all tensors are read and summarised in
/// parallel; the result does not depend on the thread count beyond floating-point rounding of
/// the merge order, which is fixed (pieces are merged in element order).
pub fn tensor_stats(model: &LoadedModel, indices: &[usize]) -> Result<Vec<Option<Stats>>, Error> {
    tensor_stats_with_progress(model, indices, None)
}

/// [`tensor_stats`], calling `progress` with (bytes just read, total bytes) after each piece.
pub fn tensor_stats_with_progress(
    model: &LoadedModel,
    indices: &[usize],
    progress: Option<&crate::rewrite::ProgressFn>,
) -> Result<Vec<Option<Stats>>, Error> {
    let tensors = model.tensors();
    // (slot in `indices`, tensor index, start, len)
    let mut pieces: Vec<(usize, usize, u64, usize)> = Vec::new();
    for (slot, &i) in indices.iter().enumerate() {
        let t = &tensors[i];
        if !t.dtype().is_float() {
            continue;
        }
        let n = t.numel();
        let mut start = 0;
        while start < n {
            let len = PIECE.min(n - start);
            pieces.push((slot, i, start, len as usize));
            start += len;
        }
    }
    let width = |i: usize| tensors[i].dtype().size().unwrap_or(4) as u64;
    let total: u64 = pieces
        .iter()
        .map(|&(_, i, _, len)| len as u64 * width(i))
        .sum();
    let partials: Vec<Partial> = pieces
        .par_iter()
        .map_init(ValuesBuf::default, |buf, &(_, i, start, len)| {
            if let Some(p) = mapped_f32(model, i, start, len) {
                if let Some(f) = progress {
                    f(len as u64 * 4, total);
                }
                return Ok(p);
            }
            let mut view = buf.view(tensors[i].dtype(), len);
            model.read_values_once(i, start, view.reborrow_prefix(len))?;
            let p = partial_of(&view);
            if let Some(f) = progress {
                f(len as u64 * width(i), total);
            }
            Ok(p)
        })
        .collect::<Result<_, Error>>()?;
    let mut merged: Vec<Option<Partial>> = indices
        .iter()
        .map(|&i| tensors[i].dtype().is_float().then(Partial::default))
        .collect();
    for (&(slot, ..), p) in pieces.iter().zip(&partials) {
        if let Some(m) = &mut merged[slot] {
            m.merge(p);
        }
    }
    Ok(merged.iter().map(|m| m.map(|p| p.finish())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_pieces_matches_one_pass() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.3)
            .collect();
        let whole = Stats::of_slice(&values);
        let mut p = Partial::default();
        for c in values.chunks(77) {
            p.add_iter(c.iter().map(|&x| f64::from(x)), c.len() as u64);
        }
        let merged = p.finish();
        assert_eq!(merged.count, whole.count);
        assert!((merged.mean.unwrap() - whole.mean.unwrap()).abs() < 1e-12);
        assert!((merged.std.unwrap() - whole.std.unwrap()).abs() < 1e-12);
        assert_eq!(merged.min, whole.min);
        assert_eq!(merged.max, whole.max);
    }

    #[test]
    fn the_f32_kernel_agrees_with_the_reference_pass() {
        // Lengths around the lane count, non-finite values, signed zeros, an offset mean.
        for n in [0usize, 1, 7, 8, 9, 1000, 65_536] {
            let mut v: Vec<f32> = (0..n)
                .map(|i| 1000.0 + ((i * 7919) % 997) as f32 * 0.001 - 0.4)
                .collect();
            if n > 9 {
                v[3] = f32::NAN;
                v[5] = f32::NEG_INFINITY;
                v[8] = -0.0;
                v[9] = -5.0;
            }
            let fast = partial_f32(&v).finish();
            let mut r = Partial::default();
            r.add_iter(v.iter().map(|&x| f64::from(x)), n as u64);
            let slow = r.finish();
            let tuple = |s: &Stats| (s.count, s.finite, s.non_finite, s.zeros, s.negatives);
            assert_eq!(tuple(&fast), tuple(&slow), "{n}");
            assert_eq!((fast.min, fast.max), (slow.min, slow.max), "{n}");
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                (a, b) => a == b,
            };
            assert!(close(fast.mean, slow.mean), "{n}: {fast:?} {slow:?}");
            assert!(close(fast.std, slow.std), "{n}: {fast:?} {slow:?}");
        }
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let s = Stats::of_slice(&[1.0, f32::NAN, 3.0, f32::INFINITY, 0.0, -2.0]);
        assert_eq!((s.count, s.finite, s.non_finite), (6, 4, 2));
        assert_eq!((s.zeros, s.negatives), (1, 1));
        assert_eq!(s.mean, Some(0.5));
        assert_eq!((s.min, s.max), (Some(-2.0), Some(3.0)));
        let c = Stats::of_slice(&[0.25; 5]);
        assert!(c.is_constant() && !c.all_zero());
        assert_eq!(c.std, Some(0.0));
        assert!(Stats::of_slice(&[0.0, -0.0]).all_zero());
    }
}
