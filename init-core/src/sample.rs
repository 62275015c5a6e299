//! Concrete distributions and the deterministic, chunked fill.
//!
//! A [`Sampler`] is a fully resolved distribution (a scheme with its fans applied). Its values
//! for a tensor are a pure function of `(seed, key, sampler, element type, element index)`:
//! see [`crate::rng`] for how each chunk of [`CHUNK`] elements gets its eight Xoshiro256++
//! lanes. Within a chunk, "step s" is the s-th call of [`Lanes::step`] (eight 64-bit words,
//! lane 0 to 7). Element `i` of the chunk is:
//!
//! | sampler | f32, f16, bf16 (computed in f32) | f64 |
//! |---|---|---|
//! | uniform | step ⌊i/16⌋, lane ⌊(i mod 16)/2⌋, low (i even) or high 32 bits h: u = (h ≫ 8)·2⁻²⁴ | step ⌊i/8⌋, lane i mod 8, word w: u = (w ≫ 11)·2⁻⁵³ |
//! | normal | word w = lane ⌊(i mod 16)/2⌋ of step ⌊i/16⌋: u₁ = ((lo32(w) ≫ 1) \| 1)·2⁻³¹ rounded to f32, θ = 2π·(hi32(w) ≫ 8)·2⁻²⁴; r·cos θ for even i, r·sin θ for odd i | steps 2⌊i/16⌋ (u₁ = ((w ≫ 11) \| 1)·2⁻⁵³ from lane i mod 8) and 2⌊i/16⌋ + 1 (θ = 2π·(w ≫ 11)·2⁻⁵³ from the same lane); r·cos θ for i mod 16 < 8, else r·sin θ |
//! | truncated normal, mass ≥ 0.3 | the i-th of the standard normals z above (in order) with a ≤ z ≤ b | the same with the f64 normals |
//! | truncated normal, mass < 0.3 | the i-th accepted proposal of [`Sampler::TruncatedNormal`]'s tail samplers; the chunk's words in order (step by step, lane 0 to 7), one word per proposal: u₁ = (hi32 + ½)·2⁻³², u₂ = (lo32 + ½)·2⁻³², computed in f64 and rounded to f32 | two words per proposal, u = (w ≫ 11)·2⁻⁵³ each |
//!
//! with r = √(−2 ln u₁); a uniform value is `clamp(mid + half·(2u − 1), lo, hi)` (mid, half,
//! lo, hi rounded to the working type); a normal value is `mean + std·z`; a truncated value is
//! `clamp(mean + std·z, lo, hi)` (the clamp only guards rounding). f16 and bf16 hold the f32
//! value rounded to nearest, ties to even. A tensor shorter than its last chunk holds that
//! chunk's prefix.
//!
//! `ln`, `sin`, `cos` are fixed polynomials in plain IEEE arithmetic (in the private `kernel`
//! module: relative error < 2·10⁻⁷ in f32, ≤ 2 ulp in f64), so the bits depend on neither the
//! platform's libm nor the instruction set: the kernels are compiled for the baseline target
//! and, on x86-64 with `std`, for AVX2 and AVX-512 behind run-time detection ([`Isa`]), and all
//! give identical bits. [`force_portable`] (or `INIT_CORE_PORTABLE=1`) selects the fallback.

use crate::element::{DType, Element};
use crate::kernel::{self, KernelParams, big_phi, normal_mass, phi};
use crate::rng::{CHUNK, Lanes};

pub use crate::kernel::{Isa, active_isa, force_portable};

/// Where a tensor's stream comes from: the run's seed and the tensor's key
/// ([`crate::rng::key_of`] of its name or path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    /// The user's seed.
    pub seed: u64,
    /// The tensor's key.
    pub key: u64,
}

/// A fully resolved distribution.
///
/// Build samplers through [`crate::SchemeExt::sampler`], which validates every parameter. A sampler
/// written by hand with invalid parameters (see [`Sampler::is_valid`]) fills NaN: never a panic
/// or an endless rejection loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Every element this value.
    Constant(f64),
    /// U(lo, hi): `lo + (hi − lo)·u`, computed as `mid + half·(2u − 1)` and clamped to the
    /// element type's rounding of [lo, hi], so bounds are never exceeded.
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// N(mean, std²) by the Box–Muller transform: a pair of uniforms (u₁ ∈ (0, 1], u₂ ∈ [0, 1))
    /// gives `r·cos(2πu₂)` and `r·sin(2πu₂)` with `r = √(−2 ln u₁)`. In f32, u₁ (31 bits) and u₂
    /// (24 bits) are the low and high halves of one 64-bit output, so |z| ≤ √(62 ln 2) = 6.56
    /// (the normal's mass beyond is 5·10⁻¹¹); in f64 they are 53-bit draws from the same lane of
    /// two steps, |z| ≤ 8.57. See the module documentation for the exact element mapping.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation (> 0).
        std: f64,
    },
    /// N(mean, std²) conditioned on [lo, hi] (absolute bounds, `std` the parent std). Sampled by
    /// rejection from the normal above when the interval holds at least 30% of the mass (as
    /// PyTorch since PR #174997), else from a uniform proposal on the interval, or Robert's
    /// (1995) exponential proposal for wide one-sided tails — all exact, never clamped.
    TruncatedNormal {
        /// Parent mean.
        mean: f64,
        /// Parent std (> 0).
        std: f64,
        /// Absolute lower bound.
        lo: f64,
        /// Absolute upper bound.
        hi: f64,
    },
}

impl Sampler {
    /// Whether the parameters describe a distribution: finite (the bounds of a truncated normal
    /// may be infinite), std > 0, lo ≤ hi for the uniform and lo < hi for the truncated normal,
    /// whose interval must hold some mass (within 37 std of the mean).
    pub fn is_valid(&self) -> bool {
        match *self {
            Sampler::Constant(v) => v.is_finite(),
            Sampler::Uniform { lo, hi } => lo.is_finite() && hi.is_finite() && lo <= hi,
            Sampler::Normal { mean, std } => mean.is_finite() && std.is_finite() && std > 0.0,
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                mean.is_finite()
                    && std.is_finite()
                    && std > 0.0
                    && lo < hi
                    && !lo.is_nan()
                    && !hi.is_nan()
                    && a <= 37.0
                    && b >= -37.0
            }
        }
    }

    /// The distribution's mean.
    pub fn mean(&self) -> f64 {
        match *self {
            Sampler::Constant(v) => v,
            Sampler::Uniform { lo, hi } => 0.5 * (lo + hi),
            Sampler::Normal { mean, .. } => mean,
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                let z = normal_mass(a, b);
                mean + std * (phi(a) - phi(b)) / z
            }
        }
    }

    /// The distribution's standard deviation.
    pub fn std_dev(&self) -> f64 {
        match *self {
            Sampler::Constant(_) => 0.0,
            Sampler::Uniform { lo, hi } => (hi - lo) / libm::sqrt(12.0),
            Sampler::Normal { std, .. } => std,
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                let z = normal_mass(a, b);
                let (pa, pb) = (phi(a), phi(b));
                // x·φ(x) → 0 as x → ±∞ (and ∞·0 would be NaN).
                let xphi = |x: f64, p: f64| if x.is_finite() { x * p } else { 0.0 };
                let t1 = (xphi(a, pa) - xphi(b, pb)) / z;
                let t2 = (pa - pb) / z;
                std * libm::sqrt((1.0 + t1 - t2 * t2).max(0.0))
            }
        }
    }

    /// The smallest and largest value a sample can take (±∞ for the normal).
    pub fn support(&self) -> (f64, f64) {
        match *self {
            Sampler::Constant(v) => (v, v),
            Sampler::Uniform { lo, hi } | Sampler::TruncatedNormal { lo, hi, .. } => (lo, hi),
            Sampler::Normal { .. } => (f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    /// The cumulative distribution function at `x` (for goodness-of-fit tests and reports).
    pub fn cdf(&self, x: f64) -> f64 {
        match *self {
            Sampler::Constant(v) => f64::from(u8::from(x >= v)),
            Sampler::Uniform { lo, hi } => ((x - lo) / (hi - lo)).clamp(0.0, 1.0),
            Sampler::Normal { mean, std } => big_phi((x - mean) / std),
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                if x < lo {
                    0.0
                } else if x >= hi {
                    1.0
                } else {
                    let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                    normal_mass(a, (x - mean) / std) / normal_mass(a, b)
                }
            }
        }
    }

    /// Fill a whole tensor (element 0 is the tensor's first element). With the `parallel` feature,
    /// tensors of more than two chunks are filled on rayon's current pool; the bits do not
    /// depend on it.
    pub fn fill<T: Element>(&self, out: &mut [T], stream: Stream) {
        self.fill_at(out, stream, 0);
    }

    /// Fill `out` with the tensor's elements `start .. start + out.len()`; `start` must be a
    /// multiple of [`CHUNK`] (checked: panics otherwise, as it is a caller bug). The result is
    /// the same range of what [`Sampler::fill`] writes for the whole tensor.
    pub fn fill_at<T: Element>(&self, out: &mut [T], stream: Stream, start: u64) {
        let first = first_chunk(start);
        let params = KernelParams::new(self, T::DTYPE == DType::F64);
        let isa = active_isa();
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            if out.len() > 2 * CHUNK {
                out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
                    fill_one(isa, &params, c, stream, first + i as u64);
                });
                return;
            }
        }
        for (i, c) in out.chunks_mut(CHUNK).enumerate() {
            fill_one(isa, &params, c, stream, first + i as u64);
        }
    }

    /// Fill on the calling thread only (same bits as [`Sampler::fill_at`]).
    pub fn fill_serial_at<T: Element>(&self, out: &mut [T], stream: Stream, start: u64) {
        self.fill_serial_with(active_isa(), out, stream, start);
    }

    /// Fill on the calling thread with the kernels compiled for `isa` (same bits as every other
    /// instruction set: this exists to test that). Panics if `!isa.is_available()` or `start`
    /// is not chunk-aligned.
    pub fn fill_serial_with<T: Element>(
        &self,
        isa: Isa,
        out: &mut [T],
        stream: Stream,
        start: u64,
    ) {
        assert!(
            isa.is_available(),
            "{isa:?} kernels are not available on this CPU/build"
        );
        let first = first_chunk(start);
        let params = KernelParams::new(self, T::DTYPE == DType::F64);
        for (i, c) in out.chunks_mut(CHUNK).enumerate() {
            fill_one(isa, &params, c, stream, first + i as u64);
        }
    }

    /// Fill one chunk (at most [`CHUNK`] elements) from chunk `chunk`'s generator: the first
    /// `out.len()` elements of that chunk.
    pub fn fill_chunk<T: Element>(&self, out: &mut [T], stream: Stream, chunk: u64) {
        assert!(
            out.len() <= CHUNK,
            "fill_chunk: {} elements exceed a chunk",
            out.len()
        );
        let params = KernelParams::new(self, T::DTYPE == DType::F64);
        fill_one(active_isa(), &params, out, stream, chunk);
    }
}

fn first_chunk(start: u64) -> u64 {
    assert!(
        start.is_multiple_of(CHUNK as u64),
        "fill: start {start} is not a multiple of the chunk size {CHUNK}"
    );
    start / CHUNK as u64
}

#[inline]
pub(crate) fn fill_one<T: Element>(
    isa: Isa,
    params: &KernelParams,
    out: &mut [T],
    stream: Stream,
    chunk: u64,
) {
    if let KernelParams::Constant(v) = *params {
        out.fill(T::from_f64(v));
        return;
    }
    kernel::run_on(
        isa,
        params,
        out,
        Lanes::for_chunk(stream.seed, stream.key, chunk),
    );
}
