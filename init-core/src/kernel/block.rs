//! The kernel: the block loop every fill runs, and the block samplers it calls.

use super::math::{ln_f32, ln_f64, sincos_turn_f32, sincos_turn_f64, sqrt_f32, sqrt_f64};
use super::params::KernelParams;
use super::target::{Gen, Target};
use super::{B32, B64};
use crate::element::{DType, Element};
use crate::rng::{LANES, Lanes, Words};

/// Fill `out` (at most one chunk) from the chunk generator `lanes`.
#[inline(always)]
pub(crate) fn run<T: Element, I: Target>(params: &KernelParams, out: &mut [T], lanes: Lanes) {
    let mut g = Steps(I::Gen::from_lanes(lanes));
    match *params {
        KernelParams::Constant(v) => out.fill(T::from_f64(v)),
        KernelParams::Uniform32 { mid, half, lo, hi } => {
            write32::<T, I, _, _>(out, &mut g, &Uniform32 { mid, half, lo, hi });
        }
        KernelParams::Normal32 { mean, std } => write_normal32::<T, I, _>(out, &mut g, mean, std),
        KernelParams::Uniform64 { mid, half, lo, hi } => {
            write64(out, &mut g, &Uniform64 { mid, half, lo, hi });
        }
        KernelParams::Normal64 { mean, std } => write64(out, &mut g, &Normal64 { mean, std }),
        KernelParams::Reject32 {
            a,
            b,
            mean,
            std,
            lo,
            hi,
        } => reject32::<T, I, _>(out, &mut g, [a, b, mean, std, lo, hi]),
        KernelParams::Reject64 {
            a,
            b,
            mean,
            std,
            lo,
            hi,
        } => reject64::<T, I, _>(out, &mut g, [a, b, mean, std, lo, hi]),
        KernelParams::Tail {
            wide,
            tail,
            mean,
            std,
            lo,
            hi,
        } => {
            let mut words = Words::new(g.0.into_lanes());
            if wide {
                for o in out.iter_mut() {
                    let z = tail.sample(|| (u01_f64(words.next_u64()), u01_f64(words.next_u64())));
                    *o = T::from_f64((mean + std * z).clamp(lo, hi));
                }
            } else {
                for o in out.iter_mut() {
                    let z = tail.sample(|| word_u01_pair(words.next_u64()));
                    *o = T::from_f32((mean + std * z).clamp(lo, hi) as f32);
                }
            }
        }
    }
}

/// The chunk generator, two steps at a time.
pub(crate) struct Steps<G>(G);

impl<G: Gen> Steps<G> {
    /// Two steps: lane `j`'s outputs at index `j` (first step) and `8 + j` (second).
    #[inline(always)]
    fn two(&mut self) -> [u64; 2 * LANES] {
        let a = self.0.step();
        let b = self.0.step();
        let mut w = [0u64; 2 * LANES];
        w[..LANES].copy_from_slice(&a);
        w[LANES..].copy_from_slice(&b);
        w
    }

    /// Two steps as 32-bit halves in stream order: element `2k` is the low and `2k + 1` the
    /// high half of word `k` of [`Steps::two`].
    #[inline(always)]
    fn halves(&mut self) -> [u32; B32] {
        let w = self.two();
        let mut h = [0u32; B32];
        for k in 0..2 * LANES {
            h[2 * k] = w[k] as u32;
            h[2 * k + 1] = (w[k] >> 32) as u32;
        }
        h
    }
}

/// A block of values from two steps. (A trait with `#[inline(always)]` methods rather than a
/// closure: closures are separate functions that do not inherit the dispatch wrapper's target
/// features unless inlined.)
trait Block<V> {
    fn block<G: Gen>(&self, g: &mut Steps<G>) -> V;
}

struct Uniform32 {
    mid: f32,
    half: f32,
    lo: f32,
    hi: f32,
}

impl Block<[f32; B32]> for Uniform32 {
    #[inline(always)]
    fn block<G: Gen>(&self, g: &mut Steps<G>) -> [f32; B32] {
        let h = g.halves();
        let mut v = [0f32; B32];
        for k in 0..B32 {
            v[k] = uniform32(h[k], self.mid, self.half, self.lo, self.hi);
        }
        v
    }
}

struct Uniform64 {
    mid: f64,
    half: f64,
    lo: f64,
    hi: f64,
}

impl Block<[f64; B64]> for Uniform64 {
    #[inline(always)]
    fn block<G: Gen>(&self, g: &mut Steps<G>) -> [f64; B64] {
        // Step by step (not via `Steps::two`): the compiler then keeps each step's eight lanes
        // in one vector register.
        let mut v = [0f64; B64];
        for half in 0..2 {
            let w = g.0.step();
            for j in 0..LANES {
                v[half * LANES + j] =
                    (self.mid + self.half * signed_u01_f64(w[j])).clamp(self.lo, self.hi);
            }
        }
        v
    }
}

struct Normal64 {
    mean: f64,
    std: f64,
}

impl Block<[f64; B64]> for Normal64 {
    #[inline(always)]
    fn block<G: Gen>(&self, g: &mut Steps<G>) -> [f64; B64] {
        let z = std_normal64(g);
        let mut v = [0f64; B64];
        for k in 0..B64 {
            v[k] = self.mean + self.std * z[k];
        }
        v
    }
}

/// Write blocks of [`B32`] f32 values (two steps each), rounded to `T`; a short last block is
/// cut (the prefix property).
#[inline(always)]
fn write32<T: Element, I: Target, B: Block<[f32; B32]>, G: Gen>(
    out: &mut [T],
    g: &mut Steps<G>,
    b: &B,
) {
    let mut it = out.chunks_exact_mut(B32);
    for dst in &mut it {
        let dst: &mut [T; B32] = dst.try_into().expect("exact chunk");
        *dst = convert32::<T, I>(&b.block(g));
    }
    let rest = it.into_remainder();
    if !rest.is_empty() {
        let v = convert32::<T, I>(&b.block(g));
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

/// Write blocks of [`B64`] f64 values (two steps each).
#[inline(always)]
fn write64<T: Element, B: Block<[f64; B64]>, G: Gen>(out: &mut [T], g: &mut Steps<G>, b: &B) {
    let mut it = out.chunks_exact_mut(B64);
    for dst in &mut it {
        let dst: &mut [T; B64] = dst.try_into().expect("exact chunk");
        let v = b.block(g);
        for k in 0..B64 {
            dst[k] = T::from_f64(v[k]);
        }
    }
    let rest = it.into_remainder();
    if !rest.is_empty() {
        let v = b.block(g);
        for (o, x) in rest.iter_mut().zip(v) {
            *o = T::from_f64(x);
        }
    }
}

/// f32 values rounded to `T` (nearest, ties to even).
#[inline(always)]
pub(super) fn convert32<T: Element, I: Target>(v: &[f32; B32]) -> [T; B32] {
    let mut out = [T::ZERO; B32];
    if T::DTYPE == DType::F16 {
        let (a, b) = v.split_at(B32 / 2);
        let a = I::f16x16(a.try_into().expect("half block"));
        let b = I::f16x16(b.try_into().expect("half block"));
        for k in 0..B32 / 2 {
            out[k] = T::from_f16_bits(a[k]);
            out[B32 / 2 + k] = T::from_f16_bits(b[k]);
        }
    } else if T::DTYPE == DType::BF16 {
        let h = I::bf16x32(v);
        for k in 0..B32 {
            out[k] = T::from_bf16_bits(h[k]);
        }
    } else {
        for k in 0..B32 {
            out[k] = T::from_f32(v[k]);
        }
    }
    out
}

/// U(lo, hi) from a 32-bit half: `mid + half·(2u − 1)` with u = (w >> 8)·2⁻²⁴, clamped.
/// `2u − 1 = ((w >> 8) − 2²³)·2⁻²³` exactly.
#[inline(always)]
pub(super) fn uniform32(w: u32, mid: f32, half: f32, lo: f32, hi: f32) -> f32 {
    const SCALE: f32 = 1.0 / (1u32 << 23) as f32;
    let s = ((w >> 8) as i32 - (1 << 23)) as f32 * SCALE;
    (mid + half * s).clamp(lo, hi)
}

/// Sixteen Box–Muller pairs from two steps: element `2k` is `r_k·cos θ_k`, `2k + 1` is
/// `r_k·sin θ_k`, where word `k` gives u₁ (low half) and θ (high half).
#[inline(always)]
fn std_normal32<G: Gen>(g: &mut Steps<G>) -> [f32; B32] {
    let (zc, zs) = std_normal32_planes(g);
    let mut z = [0f32; B32];
    for k in 0..2 * LANES {
        z[2 * k] = zc[k];
        z[2 * k + 1] = zs[k];
    }
    z
}

/// [`std_normal32`] before interleaving: (`r_k·cos θ_k`, `r_k·sin θ_k`) for k < 16.
#[inline(always)]
fn std_normal32_planes<G: Gen>(g: &mut Steps<G>) -> ([f32; 2 * LANES], [f32; 2 * LANES]) {
    let h = g.halves();
    let mut zc = [0f32; 2 * LANES];
    let mut zs = [0f32; 2 * LANES];
    for k in 0..2 * LANES {
        let r = sqrt_f32(-2.0 * ln_f32(u1_f32(h[2 * k])));
        let (s, c) = sincos_turn_f32(h[2 * k + 1] >> 8);
        zc[k] = r * c;
        zs[k] = r * s;
    }
    (zc, zs)
}

/// N(mean, std²) in f32: `mean + std·z` for the [`std_normal32`] order, computed on the cos and
/// sin planes and interleaved by [`Target::zip_convert`] (after rounding, for f16 and bf16,
/// where interleaving 16-bit values is cheaper).
#[inline(always)]
fn write_normal32<T: Element, I: Target, G: Gen>(
    out: &mut [T],
    g: &mut Steps<G>,
    mean: f32,
    std: f32,
) {
    let mut it = out.chunks_exact_mut(B32);
    for dst in &mut it {
        let dst: &mut [T; B32] = dst.try_into().expect("exact chunk");
        *dst = normal32_block::<T, I, G>(g, mean, std);
    }
    let rest = it.into_remainder();
    if !rest.is_empty() {
        let v = normal32_block::<T, I, G>(g, mean, std);
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

#[inline(always)]
fn normal32_block<T: Element, I: Target, G: Gen>(
    g: &mut Steps<G>,
    mean: f32,
    std: f32,
) -> [T; B32] {
    let (zc, zs) = std_normal32_planes(g);
    let mut a = [0f32; 2 * LANES];
    let mut b = [0f32; 2 * LANES];
    for k in 0..2 * LANES {
        a[k] = mean + std * zc[k];
        b[k] = mean + std * zs[k];
    }
    I::zip_convert::<T>(&a, &b)
}

/// u₁ ∈ (0, 1] of the f32 Box–Muller: `((w >> 1) | 1)·2⁻³¹`, the odd 31-bit integer rounded to
/// f32 (nearest), so the smallest u₁ is 2⁻³¹ and |z| ≤ √(62 ln 2) = 6.56.
#[inline(always)]
fn u1_f32(w: u32) -> f32 {
    const SCALE: f32 = 1.0 / 2_147_483_648.0;
    (((w >> 1) | 1) as i32) as f32 * SCALE
}

/// Truncated normal by rejection: the block normals z with a ≤ z ≤ b, in stream order, as
/// `clamp(mean + std·z, lo, hi)`.
#[inline(always)]
fn reject32<T: Element, I: Target, G: Gen>(out: &mut [T], g: &mut Steps<G>, p: [f32; 6]) {
    let [a, b, mean, std, lo, hi] = p;
    let len = out.len();
    let mut n = 0;
    // Whole blocks while a block's worth of room is left: packing writes only inside it.
    while len - n >= B32 {
        let z = std_normal32(g);
        let mut v = [0f32; B32];
        for k in 0..B32 {
            v[k] = (mean + std * z[k]).clamp(lo, hi);
        }
        let dst: &mut [T; B32] = (&mut out[n..n + B32]).try_into().expect("block");
        n += I::pack32(&v, &z, a, b, dst);
    }
    while n < len {
        let z = std_normal32(g);
        for zk in z {
            if zk >= a && zk <= b && n < len {
                out[n] = T::from_f32((mean + std * zk).clamp(lo, hi));
                n += 1;
            }
        }
    }
}

/// Sixteen f64 Box–Muller values from two steps: u₁ from the first step's lane `j`, θ from the
/// second's; element `j` is `r_j·cos θ_j`, element `8 + j` is `r_j·sin θ_j`.
#[inline(always)]
fn std_normal64<G: Gen>(g: &mut Steps<G>) -> [f64; B64] {
    let a = g.0.step();
    let b = g.0.step();
    let mut z = [0f64; B64];
    let mut r = [0f64; LANES];
    let mut s = [0f64; LANES];
    let mut c = [0f64; LANES];
    for j in 0..LANES {
        r[j] = sqrt_f64(-2.0 * ln_f64(u1_f64(a[j])));
        (s[j], c[j]) = sincos_turn_f64(b[j] >> 11);
    }
    for j in 0..LANES {
        z[j] = r[j] * c[j];
        z[LANES + j] = r[j] * s[j];
    }
    z
}

/// `2u − 1` for u = (w >> 11)·2⁻⁵³, exactly, without a 64-bit integer conversion: the low 52
/// bits of `w >> 11` give f ∈ [0, 1) through the exponent field, and the top bit (bit 63 of `w`)
/// decides between f and f − 1.
#[inline(always)]
pub(super) fn signed_u01_f64(w: u64) -> f64 {
    let f = f64::from_bits(ONE_F64 | ((w >> 11) & MANT52)) - 1.0;
    if w >> 63 == 0 { f - 1.0 } else { f }
}

pub(super) const ONE_F64: u64 = 0x3FF0_0000_0000_0000;
pub(super) const MANT52: u64 = (1 << 52) - 1;

/// u₁ ∈ (0, 1) of the f64 Box–Muller: `((w >> 11) | 1)·2⁻⁵³` (exact), so |z| ≤ √(106 ln 2) = 8.57.
#[inline(always)]
pub(super) fn u1_f64(w: u64) -> f64 {
    // (w >> 12)·2⁻⁵² through the exponent field, plus 2⁻⁵³: exactly ((w >> 11) | 1)·2⁻⁵³.
    (f64::from_bits(ONE_F64 | (w >> 12)) - 1.0) + 1.0 / (1u64 << 53) as f64
}

#[inline(always)]
fn reject64<T: Element, I: Target, G: Gen>(out: &mut [T], g: &mut Steps<G>, p: [f64; 6]) {
    let [a, b, mean, std, lo, hi] = p;
    let len = out.len();
    let mut n = 0;
    while len - n >= B64 {
        let z = std_normal64(g);
        let mut v = [0f64; B64];
        for k in 0..B64 {
            v[k] = (mean + std * z[k]).clamp(lo, hi);
        }
        let dst: &mut [T; B64] = (&mut out[n..n + B64]).try_into().expect("block");
        n += I::pack16_f64(&v, &z, a, b, dst);
    }
    while n < len {
        for zk in std_normal64(g) {
            if zk >= a && zk <= b && n < len {
                out[n] = T::from_f64((mean + std * zk).clamp(lo, hi));
                n += 1;
            }
        }
    }
}

/// A 53-bit uniform in [0, 1).
#[inline(always)]
pub(crate) fn u01_f64(w: u64) -> f64 {
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
