//! Sharded fills: any contiguous element range, or any box of index ranges, of a tensor, with
//! exactly the bits the whole-tensor fill has there.
//!
//! Tensor- and data-parallel training initializes a tensor shard by shard: each process holds
//! one block of it and never the whole. The determinism contract ([`crate::rng`],
//! [`crate::sample`]) makes element `i`'s value a function of (seed, key, chunk ⌊i/CHUNK⌋, the
//! chunk's prefix up to `i`) only, so a shard is filled by running the generator of every chunk
//! it touches from the chunk's start (the truncated normal's rejection makes a chunk's values
//! depend on its earlier draws) and keeping the positions the shard holds. The cost is the
//! shard's elements plus, for each touched chunk that the shard enters in its middle, the
//! chunk's prefix before it: at most one chunk per contiguous run, and for a column block whose
//! rows are shorter than a chunk, the chunks its rows cross.
//!
//! A box is one index range per dimension of the row-major tensor; the usual shards are boxes:
//!
//! | shard | box of shape `[rows, cols]` (any tensor viewed as rows × cols) |
//! |---|---|
//! | row block `r0..r1` (PyTorch `Shard(0)`) | `[r0..r1, 0..cols]` |
//! | column block `c0..c1` | `[0..rows, c0..c1]` |
//! | `Shard(d)` of an N-d tensor, rows `a..b` of dim `d` | that range on dim `d`, full ranges elsewhere |
//!
//! The whole-matrix schemes cannot be cut this way: orthogonal is a QR of the full matrix
//! ([`InitError::WholeTensorOnly`]); eye and dirac are functions of the position and are sharded
//! exactly (see [`crate::init_shard`]).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::element::{DType, Element};
use crate::error::InitError;
use crate::kernel::KernelParams;
use crate::rng::CHUNK;
use crate::sample::{Isa, Sampler, Stream, active_isa, fill_one};

/// How a sharded fill runs: which kernels, and whether it may use rayon's current pool. The
/// bits are the same for every choice.
#[derive(Clone, Copy)]
struct Exec {
    isa: Isa,
    parallel: bool,
}

impl Sampler {
    /// Fill `out` with the tensor's elements `start .. start + out.len()`, for any `start`: the
    /// same bits as that range of [`Sampler::fill`] on the whole tensor. Unlike
    /// [`Sampler::fill_at`], `start` need not be a multiple of [`CHUNK`]; a range entering a
    /// chunk in its middle costs the chunk's prefix before `start` (< [`CHUNK`] elements).
    pub fn fill_range<T: Element>(&self, out: &mut [T], stream: Stream, start: u64) {
        let exec = Exec {
            isa: active_isa(),
            parallel: true,
        };
        range(self, exec, out, stream, start);
    }

    /// Fill the box `ranges` (one index range per dimension) of a row-major tensor of `shape`:
    /// `out` receives the box's elements in row-major order of the box, each with exactly the
    /// bits [`Sampler::fill`] writes there for the whole tensor. Uses rayon's current pool
    /// (with `std`); the bits do not depend on it.
    ///
    /// Errors when `ranges` has not one range per dimension, a range is reversed or exceeds its
    /// dimension, the shape's element count overflows, or `out.len()` is not the box's
    /// element count (∏ (end − start)).
    pub fn fill_box<T: Element>(
        &self,
        out: &mut [T],
        stream: Stream,
        shape: &[usize],
        ranges: &[Range<usize>],
    ) -> Result<(), InitError> {
        let exec = Exec {
            isa: active_isa(),
            parallel: true,
        };
        fill_box(self, exec, out, stream, shape, ranges)
    }

    /// [`Sampler::fill_box`] on the calling thread with the kernels compiled for `isa` (same
    /// bits as every other instruction set: this exists to test that). Panics if
    /// `!isa.is_available()`.
    pub fn fill_box_with<T: Element>(
        &self,
        isa: Isa,
        out: &mut [T],
        stream: Stream,
        shape: &[usize],
        ranges: &[Range<usize>],
    ) -> Result<(), InitError> {
        assert!(
            isa.is_available(),
            "{isa:?} kernels are not available on this CPU/build"
        );
        let exec = Exec {
            isa,
            parallel: false,
        };
        fill_box(self, exec, out, stream, shape, ranges)
    }
}

/// The box's contiguous runs in the row-major tensor: every dimension after `dims` is taken in
/// full (or is the last partial one, folded into `run`), so the box is `count` runs of `run`
/// elements, run `j` starting at [`Runs::start`]`(j)`.
struct Runs {
    /// (range start, range length, stride) of the enumerated outer dimensions.
    dims: Vec<(usize, usize, u64)>,
    base: u64,
    run: usize,
    count: usize,
}

impl Runs {
    fn new(shape: &[usize], ranges: &[Range<usize>]) -> Result<Runs, InitError> {
        if shape.len() != ranges.len() {
            return Err(InitError::BadShape(alloc::format!(
                "shard: {} index ranges for a tensor of rank {} (shape {shape:?})",
                ranges.len(),
                shape.len()
            )));
        }
        for (d, (r, &n)) in ranges.iter().zip(shape).enumerate() {
            if r.start > r.end || r.end > n {
                return Err(InitError::BadShape(alloc::format!(
                    "shard: range {}..{} of dimension {d} is outside 0..{n} (shape {shape:?})",
                    r.start,
                    r.end
                )));
            }
        }
        crate::fans::checked_product(shape)?;
        let mut strides = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1] as u64;
        }
        // The last dimension not taken in full: it and everything after it form one run.
        let Some(last) = (0..shape.len()).rev().find(|&d| ranges[d] != (0..shape[d])) else {
            return Ok(Runs {
                dims: Vec::new(),
                base: 0,
                run: shape.iter().product(),
                count: usize::from(!shape.contains(&0)),
            });
        };
        let run = ranges[last].len() * strides[last] as usize;
        let dims: Vec<_> = (0..last)
            .map(|d| (ranges[d].start, ranges[d].len(), strides[d]))
            .collect();
        let count = dims.iter().map(|&(_, n, _)| n).product::<usize>();
        Ok(Runs {
            dims,
            base: ranges[last].start as u64 * strides[last],
            run,
            count: if run == 0 { 0 } else { count },
        })
    }

    fn len(&self) -> usize {
        self.run * self.count
    }

    /// The tensor position of run `j`'s first element.
    fn start(&self, mut j: usize) -> u64 {
        let mut at = self.base;
        for &(start, n, stride) in self.dims.iter().rev() {
            at += (start + j % n) as u64 * stride;
            j /= n;
        }
        at
    }
}

fn fill_box<T: Element>(
    s: &Sampler,
    exec: Exec,
    out: &mut [T],
    stream: Stream,
    shape: &[usize],
    ranges: &[Range<usize>],
) -> Result<(), InitError> {
    let runs = Runs::new(shape, ranges)?;
    if out.len() != runs.len() {
        return Err(InitError::LengthMismatch {
            expected: runs.len(),
            got: out.len(),
        });
    }
    if runs.count == 0 {
        return Ok(());
    }
    if runs.count == 1 || runs.run >= 2 * CHUNK {
        // Long runs: each is a range fill, parallel over its chunks.
        for (j, o) in out.chunks_mut(runs.run).enumerate() {
            range(s, exec, o, stream, runs.start(j));
        }
        return Ok(());
    }
    let params = KernelParams::new(s, T::DTYPE == DType::F64);
    #[cfg(feature = "parallel")]
    if exec.parallel && out.len() > 2 * CHUNK {
        use rayon::prelude::*;
        // Groups of runs spanning about eight chunks: a chunk shared by two groups is computed
        // by both, so this bounds the repeated work to about an eighth.
        let per = (8 * CHUNK).div_ceil(runs.run);
        out.par_chunks_mut(per * runs.run)
            .enumerate()
            .for_each(|(g, o)| short_runs(exec.isa, &params, o, stream, &runs, g * per));
        return Ok(());
    }
    short_runs(exec.isa, &params, out, stream, &runs, 0);
    Ok(())
}

/// Fill `out` with the runs `first ..` of `runs` (each shorter than two chunks), computing each
/// chunk they touch once: a chunk entered at its start is written in place (a cut-short chunk
/// is the prefix of the full one), a chunk entered in its middle is computed into a scratch
/// buffer, up to the last position this call needs, and copied from.
fn short_runs<T: Element>(
    isa: Isa,
    params: &KernelParams,
    out: &mut [T],
    stream: Stream,
    runs: &Runs,
    first: usize,
) {
    let chunk = CHUNK as u64;
    let n_runs = out.len() / runs.run;
    let end = runs.start(first + n_runs - 1) + runs.run as u64;
    let mut scratch: Vec<T> = Vec::new();
    let mut cached: Option<u64> = None;
    for (k, o) in out.chunks_mut(runs.run).enumerate() {
        let mut at = runs.start(first + k);
        let mut o = o;
        while !o.is_empty() {
            let c = at / chunk;
            let off = (at % chunk) as usize;
            let n = o.len().min(CHUNK - off);
            let (piece, rest) = o.split_at_mut(n);
            if off == 0 {
                fill_one(isa, params, piece, stream, c);
            } else {
                if cached != Some(c) {
                    let valid = (end - c * chunk).min(chunk) as usize;
                    scratch.resize(valid, T::ZERO);
                    fill_one(isa, params, &mut scratch, stream, c);
                    cached = Some(c);
                }
                piece.copy_from_slice(&scratch[off..off + n]);
            }
            at += n as u64;
            o = rest;
        }
    }
}

/// The range fill: an unaligned head from the prefix of its chunk, then aligned chunks.
fn range<T: Element>(s: &Sampler, exec: Exec, out: &mut [T], stream: Stream, start: u64) {
    let off = (start % CHUNK as u64) as usize;
    let head = if off == 0 {
        0
    } else {
        out.len().min(CHUNK - off)
    };
    if head > 0 {
        let params = KernelParams::new(s, T::DTYPE == DType::F64);
        let mut scratch = vec![T::ZERO; off + head];
        fill_one(
            exec.isa,
            &params,
            &mut scratch,
            stream,
            start / CHUNK as u64,
        );
        out[..head].copy_from_slice(&scratch[off..]);
    }
    let (rest, at) = (&mut out[head..], start + head as u64);
    if rest.is_empty() {
        return;
    }
    if exec.parallel {
        s.fill_at(rest, stream, at);
    } else {
        s.fill_serial_with(exec.isa, rest, stream, at);
    }
}

/// Whether the row-major position `p` of `shape` lies in the box `ranges`, and where in the
/// box's own row-major order.
pub(crate) fn box_offset(shape: &[usize], ranges: &[Range<usize>], mut p: usize) -> Option<usize> {
    let mut local = 0;
    let mut stride = 1;
    for (&n, r) in shape.iter().zip(ranges).rev() {
        let i = p % n;
        p /= n;
        if !r.contains(&i) {
            return None;
        }
        local += (i - r.start) * stride;
        stride *= r.len();
    }
    Some(local)
}

/// Check `ranges` against `shape` and `out` (as [`Sampler::fill_box`] does).
pub(crate) fn check_box(
    shape: &[usize],
    ranges: &[Range<usize>],
    len: usize,
) -> Result<(), InitError> {
    let runs = Runs::new(shape, ranges)?;
    if len != runs.len() {
        return Err(InitError::LengthMismatch {
            expected: runs.len(),
            got: len,
        });
    }
    Ok(())
}
