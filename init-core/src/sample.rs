//! Concrete distributions and the deterministic, chunked fill.
//!
//! A [`Sampler`] is a fully resolved distribution (a scheme with its fans applied). Its values
//! for a tensor are a pure function of `(seed, key, sampler, element type, element index)`:
//! see [`crate::rng`] for the stream contract. Within a chunk, element `i` comes from:
//! - f32/f16/bf16 — step `i / 16`, lane `(i % 16) / 2`, the low (`i` even) or high (`i` odd)
//!   32 bits of that lane's output; f64 — step `i / 8`, lane `i % 8` (uniform), or for normals the
//!   block of 16 built from two steps (see [`Sampler::Normal`]).
//! - The uniform is `u = (bits >> 8)·2⁻²⁴` (f32) or `(bits >> 11)·2⁻⁵³` (f64), in [0, 1).
//!
//! The transcendental functions used by the f32 path (`ln`, `sin`, `cos`) are written here as
//! fixed polynomials in plain IEEE arithmetic, so the bits do not depend on the platform's libm,
//! and so loops over the eight lanes vectorise.

use crate::element::Element;
use crate::rng::{CHUNK, LANES, Lanes, Words};

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
    /// N(mean, std²) by the Box–Muller transform: a pair of uniforms (u₁ ∈ (0, 1), u₂ ∈ [0, 1))
    /// gives `r·cos(2πu₂)` and `r·sin(2πu₂)` with `r = √(−2 ln u₁)`. In f32, u₁ and u₂ are the
    /// low and high halves of one 64-bit output, so |z| ≤ 5.9 (the mass beyond is 4·10⁻⁹); in f64
    /// they are two 53-bit draws of the same lane, |z| ≤ 8.6.
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
                let t1 = (a * pa - b * pb) / z;
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

    /// Fill a whole tensor (element 0 is the tensor's first element). With the `std` feature,
    /// tensors of several chunks are filled on rayon's pool; the bits do not depend on it.
    pub fn fill<T: Element>(&self, out: &mut [T], stream: Stream) {
        self.fill_at(out, stream, 0);
    }

    /// Fill `out` with the tensor's elements `start .. start + out.len()`; `start` must be a
    /// multiple of [`CHUNK`] (checked: panics otherwise, as it is a caller bug).
    pub fn fill_at<T: Element>(&self, out: &mut [T], stream: Stream, start: u64) {
        assert!(
            start % CHUNK as u64 == 0,
            "fill_at: start {start} is not a multiple of the chunk size {CHUNK}"
        );
        let first = start / CHUNK as u64;
        #[cfg(feature = "std")]
        {
            use rayon::prelude::*;
            if out.len() > 2 * CHUNK {
                out.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(i, c)| self.fill_chunk(c, stream, first + i as u64));
                return;
            }
        }
        for (i, c) in out.chunks_mut(CHUNK).enumerate() {
            self.fill_chunk(c, stream, first + i as u64);
        }
    }

    /// Fill on the calling thread only (same bits as [`Sampler::fill_at`]).
    pub fn fill_serial_at<T: Element>(&self, out: &mut [T], stream: Stream, start: u64) {
        assert!(
            start % CHUNK as u64 == 0,
            "fill_serial_at: start not chunk-aligned"
        );
        let first = start / CHUNK as u64;
        for (i, c) in out.chunks_mut(CHUNK).enumerate() {
            self.fill_chunk(c, stream, first + i as u64);
        }
    }

    /// Fill one chunk (at most [`CHUNK`] elements) from chunk `chunk`'s generator.
    pub fn fill_chunk<T: Element>(&self, out: &mut [T], stream: Stream, chunk: u64) {
        debug_assert!(out.len() <= CHUNK);
        if let Sampler::Constant(v) = *self {
            out.fill(T::from_f64(v));
            return;
        }
        let lanes = Lanes::for_chunk(stream.seed, stream.key, chunk);
        if T::DTYPE == crate::DType::F64 {
            self.chunk_f64(out, lanes);
        } else {
            self.chunk_f32(out, lanes);
        }
    }

    fn chunk_f32<T: Element>(&self, out: &mut [T], mut lanes: Lanes) {
        match *self {
            Sampler::Constant(_) => unreachable!("handled by fill_chunk"),
            Sampler::Uniform { lo, hi } => {
                let (mid, half) = ((0.5 * (lo + hi)) as f32, (0.5 * (hi - lo)) as f32);
                let (lo32, hi32) = (lo as f32, hi as f32);
                for block in out.chunks_mut(2 * LANES) {
                    let bits = lanes.next();
                    let mut v = [0f32; 2 * LANES];
                    for j in 0..LANES {
                        let (a, b) = split_u01_f32(bits[j]);
                        v[2 * j] = (mid + half * (2.0 * a - 1.0)).clamp(lo32, hi32);
                        v[2 * j + 1] = (mid + half * (2.0 * b - 1.0)).clamp(lo32, hi32);
                    }
                    store(block, &v);
                }
            }
            Sampler::Normal { mean, std } => {
                let (mean, std) = (mean as f32, std as f32);
                for block in out.chunks_mut(2 * LANES) {
                    let z = normal_block_f32(lanes.next());
                    let mut v = [0f32; 2 * LANES];
                    for k in 0..2 * LANES {
                        v[k] = mean + std * z[k];
                    }
                    store(block, &v);
                }
            }
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                if normal_mass(a, b) >= 0.3 {
                    let (a32, b32) = (a as f32, b as f32);
                    let (mean32, std32) = (mean as f32, std as f32);
                    let (lo32, hi32) = (lo as f32, hi as f32);
                    let mut n = 0;
                    while n < out.len() {
                        let z = normal_block_f32(lanes.next());
                        for zk in z {
                            if zk >= a32 && zk <= b32 && n < out.len() {
                                out[n] = T::from_f32((mean32 + std32 * zk).clamp(lo32, hi32));
                                n += 1;
                            }
                        }
                    }
                } else {
                    let mut words = Words::new(lanes);
                    let tail = TailSampler::new(a, b);
                    for o in out.iter_mut() {
                        let z = tail.sample(&mut || word_u01_pair(words.next_u64()));
                        *o = T::from_f64((mean + std * z).clamp(lo, hi));
                    }
                }
            }
        }
    }

    fn chunk_f64<T: Element>(&self, out: &mut [T], mut lanes: Lanes) {
        match *self {
            Sampler::Constant(_) => unreachable!("handled by fill_chunk"),
            Sampler::Uniform { lo, hi } => {
                let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
                for block in out.chunks_mut(LANES) {
                    let bits = lanes.next();
                    for (o, w) in block.iter_mut().zip(bits) {
                        *o = T::from_f64((mid + half * (2.0 * u01_f64(w) - 1.0)).clamp(lo, hi));
                    }
                }
            }
            Sampler::Normal { mean, std } => {
                for block in out.chunks_mut(2 * LANES) {
                    let z = normal_block_f64(&mut lanes);
                    for (o, zk) in block.iter_mut().zip(z) {
                        *o = T::from_f64(mean + std * zk);
                    }
                }
            }
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                if normal_mass(a, b) >= 0.3 {
                    let mut n = 0;
                    while n < out.len() {
                        for zk in normal_block_f64(&mut lanes) {
                            if zk >= a && zk <= b && n < out.len() {
                                out[n] = T::from_f64((mean + std * zk).clamp(lo, hi));
                                n += 1;
                            }
                        }
                    }
                } else {
                    let mut words = Words::new(lanes);
                    let tail = TailSampler::new(a, b);
                    for o in out.iter_mut() {
                        let z = tail
                            .sample(&mut || (u01_f64(words.next_u64()), u01_f64(words.next_u64())));
                        *o = T::from_f64((mean + std * z).clamp(lo, hi));
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn store<T: Element>(block: &mut [T], v: &[f32; 2 * LANES]) {
    for (o, x) in block.iter_mut().zip(v) {
        *o = T::from_f32(*x);
    }
}

/// The two 24-bit uniforms in [0, 1) of a 64-bit word: (low half, high half).
#[inline(always)]
fn split_u01_f32(w: u64) -> (f32, f32) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    (
        ((w as u32) >> 8) as f32 * SCALE,
        ((w >> 40) as u32) as f32 * SCALE,
    )
}

/// A 53-bit uniform in [0, 1).
#[inline(always)]
fn u01_f64(w: u64) -> f64 {
    (w >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Two uniforms in (0, 1) from one word, for the scalar tail samplers of the f32 path.
#[inline]
fn word_u01_pair(w: u64) -> (f64, f64) {
    const SCALE: f64 = 1.0 / (1u64 << 32) as f64;
    (
        ((w >> 32) as f64 + 0.5) * SCALE,
        ((w & 0xFFFF_FFFF) as f64 + 0.5) * SCALE,
    )
}

/// Sixteen standard normals from one step of the eight lanes (Box–Muller, f32).
#[inline(always)]
fn normal_block_f32(bits: [u64; LANES]) -> [f32; 2 * LANES] {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let mut z = [0f32; 2 * LANES];
    for j in 0..LANES {
        let w = bits[j];
        // u1 ∈ (0, 1): the half-step offset keeps ln finite.
        let u1 = (((w as u32) >> 8) as f32 + 0.5) * SCALE;
        let m = (w >> 40) as u32;
        let r = sqrt_f32(-2.0 * ln_f32(u1));
        let (s, c) = sincos_turn_f32(m);
        z[2 * j] = r * c;
        z[2 * j + 1] = r * s;
    }
    z
}

/// Sixteen standard normals from two steps of the eight lanes (Box–Muller, f64): element `j`
/// is `r_j·cos θ_j`, element `8 + j` is `r_j·sin θ_j`.
#[inline]
fn normal_block_f64(lanes: &mut Lanes) -> [f64; 2 * LANES] {
    let a = lanes.next();
    let b = lanes.next();
    let mut z = [0f64; 2 * LANES];
    for j in 0..LANES {
        let u1 = ((a[j] >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = core::f64::consts::TAU * u01_f64(b[j]);
        let (s, c) = libm::sincos(theta);
        z[j] = r * c;
        z[LANES + j] = r * s;
    }
    z
}

#[inline(always)]
fn sqrt_f32(x: f32) -> f32 {
    // Both are the correctly rounded IEEE square root; std's lowers to the vector instruction.
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::sqrtf(x)
    }
}

/// Natural logarithm for x in (0, 1], |error| < 2·10⁻⁷ relative, as a fixed polynomial.
#[inline(always)]
pub(crate) fn ln_f32(x: f32) -> f32 {
    const LN2: f32 = core::f32::consts::LN_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xFF) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000); // [1, 2)
    // Centre the mantissa on 1 so the series argument stays below 0.172.
    let big = m > core::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += i32::from(big);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // ln m = 2·atanh(s) = 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9).
    let p = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f32 * LN2 + 2.0 * s * p
}

/// (sin, cos) of 2π·m/2²⁴ for a 24-bit integer m: the quadrant comes from the top two bits,
/// the remaining angle θ ∈ [0, π/2) from the rest, by Taylor polynomials (error < 6·10⁻⁸).
#[inline(always)]
pub(crate) fn sincos_turn_f32(m: u32) -> (f32, f32) {
    const FRAC_SCALE: f32 = core::f32::consts::FRAC_PI_2 / (1u32 << 22) as f32;
    let q = (m >> 22) & 3;
    let t = (m & 0x3F_FFFF) as f32 * FRAC_SCALE;
    let t2 = t * t;
    let sin = t
        * (1.0
            + t2 * (-1.0 / 6.0
                + t2 * (1.0 / 120.0
                    + t2 * (-1.0 / 5040.0 + t2 * (1.0 / 362_880.0 + t2 * (-1.0 / 39_916_800.0))))));
    let cos = 1.0
        + t2 * (-0.5
            + t2 * (1.0 / 24.0
                + t2 * (-1.0 / 720.0
                    + t2 * (1.0 / 40320.0
                        + t2 * (-1.0 / 3_628_800.0 + t2 * (1.0 / 479_001_600.0))))));
    // Rotate by q quarter turns.
    let swap = q & 1 == 1;
    let (x, y) = if swap { (sin, cos) } else { (cos, sin) };
    let neg_c = q == 1 || q == 2;
    let neg_s = q >= 2;
    (if neg_s { -y } else { y }, if neg_c { -x } else { x })
}

/// The standard normal density.
pub(crate) fn phi(x: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    libm::exp(-0.5 * x * x) / libm::sqrt(core::f64::consts::TAU)
}

/// The standard normal CDF.
pub(crate) fn big_phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// P(a ≤ Z ≤ b) for a standard normal Z, accurate in both tails.
pub(crate) fn normal_mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        big_phi(-a) - big_phi(-b)
    } else if b <= 0.0 {
        big_phi(b) - big_phi(a)
    } else {
        1.0 - big_phi(a) - big_phi(-b)
    }
}

/// Exact samplers of a standard normal on [a, b] for intervals with little mass.
#[derive(Clone, Copy, Debug)]
struct TailSampler {
    /// Interval mirrored to lie at or right of its point nearest 0 when one-sided.
    lo: f64,
    hi: f64,
    flip: bool,
    method: TailMethod,
}

#[derive(Clone, Copy, Debug)]
enum TailMethod {
    /// Uniform proposal on [lo, hi], accepted with exp((m² − z²)/2), m = min |z|.
    Uniform { m2: f64 },
    /// Robert (1995): z = lo + E/λ, accepted with exp(−(z − λ)²/2), rejected above hi.
    Exponential { lambda: f64 },
}

impl TailSampler {
    fn new(a: f64, b: f64) -> TailSampler {
        // Mirror intervals on the negative side so the tail is on the right.
        let (lo, hi, flip) = if b <= 0.0 {
            (-b, -a, true)
        } else {
            (a, b, false)
        };
        let method = if lo > 0.0 && (hi - lo) * lo > 1.0 {
            TailMethod::Exponential {
                lambda: 0.5 * (lo + libm::sqrt(lo * lo + 4.0)),
            }
        } else {
            let m = if lo > 0.0 { lo } else { 0.0 };
            TailMethod::Uniform { m2: m * m }
        };
        TailSampler {
            lo,
            hi,
            flip,
            method,
        }
    }

    #[inline]
    fn sample(&self, next: &mut dyn FnMut() -> (f64, f64)) -> f64 {
        loop {
            let (u1, u2) = next();
            let z = match self.method {
                TailMethod::Uniform { m2 } => {
                    let z = self.lo + (self.hi - self.lo) * u1;
                    if libm::log(u2) <= 0.5 * (m2 - z * z) {
                        Some(z)
                    } else {
                        None
                    }
                }
                TailMethod::Exponential { lambda } => {
                    let z = self.lo - libm::log(u1) / lambda;
                    let d = z - lambda;
                    if z <= self.hi && libm::log(u2) <= -0.5 * d * d {
                        Some(z)
                    } else {
                        None
                    }
                }
            };
            if let Some(z) = z {
                return if self.flip { -z } else { z };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_f32_is_accurate() {
        let mut worst = 0f64;
        for i in 1..=100_000u32 {
            let x = i as f32 / 100_000.0;
            let got = f64::from(ln_f32(x));
            let want = libm::log(f64::from(x));
            let err = (got - want).abs() / want.abs().max(1e-3);
            worst = worst.max(err);
        }
        let tiny = 0.5f32 / (1u32 << 24) as f32;
        assert!((f64::from(ln_f32(tiny)) - libm::log(f64::from(tiny))).abs() < 1e-5);
        assert!(worst < 2e-6, "worst relative error {worst}");
    }

    #[test]
    fn sincos_is_accurate_in_every_quadrant() {
        for m in (0..(1u32 << 24)).step_by(997) {
            let (s, c) = sincos_turn_f32(m);
            let t = core::f64::consts::TAU * f64::from(m) / f64::from(1u32 << 24);
            assert!((f64::from(s) - libm::sin(t)).abs() < 3e-7, "sin at {m}");
            assert!((f64::from(c) - libm::cos(t)).abs() < 3e-7, "cos at {m}");
        }
    }

    #[test]
    fn normal_mass_matches_known_values() {
        assert!((normal_mass(-2.0, 2.0) - 0.954_499_736_103_642).abs() < 1e-14);
        assert!((normal_mass(5.0, f64::INFINITY) - 2.866_515_718_791_939e-7).abs() < 1e-20);
    }
}
