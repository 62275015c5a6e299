//! The fill kernels, the fixed-polynomial transcendental functions they use, and run-time
//! instruction-set dispatch.
//!
//! Every kernel is one `#[inline(always)]` generic function ([`run`]); the dispatch wrappers
//! (`run_avx2`, `run_avx512`, `run_avx512_bf16`) only compile that same source with more
//! instruction sets enabled. The arithmetic is plain IEEE-754 binary32/binary64 (`+ − × ÷ √`,
//! correctly rounded integer → float conversions, comparisons and selects); Rust never
//! contracts `a·b + c` into a fused multiply-add, and no kernel calls a platform math library,
//! so every instruction set — and every platform whose floats are IEEE binary32/64 with
//! round-to-nearest, i.e. every Rust target except x87-only ones such as i586 — computes the
//! same bits. What the [`Target`] implementations do differently is exact by construction: the
//! Xoshiro256++ integer steps, the f32 → f16/bf16 rounding (a correctly rounded conversion
//! however it is computed), and the packing of accepted values. The value-stability tests
//! compare the dispatched kernels against the portable build bit for bit.

use crate::element::{DType, Element};
use crate::rng::{LANES, Lanes, Words};

/// f32 values per kernel block: two steps of the eight lanes.
const B32: usize = 4 * LANES;
/// f64 values per kernel block: two steps of the eight lanes.
const B64: usize = 2 * LANES;

// ---------------------------------------------------------------------------------------------
// Instruction-set dispatch.

/// The instruction sets the fill kernels are compiled for. All produce identical bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The build's baseline target features (SSE2 on x86-64): the portable fallback, and the
    /// only choice without the `std` feature or off x86-64.
    Portable,
    /// AVX2 and F16C (x86-64, run-time detected).
    Avx2,
    /// AVX-512 F/DQ/VL/BW (x86-64, run-time detected); bf16 fills also use AVX512-BF16 when
    /// the CPU has it.
    Avx512,
}

impl Isa {
    /// Whether this CPU can run the kernels compiled for `self` (and this build has them).
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// The most capable available instruction set.
    pub fn best() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }

    fn from_u8(v: u8) -> Isa {
        match v {
            2 => Isa::Avx2,
            3 => Isa::Avx512,
            _ => Isa::Portable,
        }
    }
}

mod state {
    use core::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};

    /// 0: not detected yet; else 1 + the detected instruction set.
    static DETECTED: AtomicU8 = AtomicU8::new(0);
    static FORCE_PORTABLE: AtomicBool = AtomicBool::new(false);

    pub(super) fn force_portable(on: bool) {
        FORCE_PORTABLE.store(on, Relaxed);
    }

    pub(super) fn active() -> super::Isa {
        use super::Isa;
        if FORCE_PORTABLE.load(Relaxed) {
            return Isa::Portable;
        }
        match DETECTED.load(Relaxed) {
            0 => {
                let isa = if env_forces_portable() {
                    Isa::Portable
                } else {
                    Isa::best()
                };
                DETECTED.store(
                    match isa {
                        Isa::Portable => 1,
                        Isa::Avx2 => 2,
                        Isa::Avx512 => 3,
                    },
                    Relaxed,
                );
                isa
            }
            v => Isa::from_u8(v),
        }
    }

    #[cfg(feature = "std")]
    fn env_forces_portable() -> bool {
        std::env::var_os("INIT_CORE_PORTABLE").is_some_and(|v| !v.is_empty() && v != "0")
    }

    #[cfg(not(feature = "std"))]
    fn env_forces_portable() -> bool {
        false
    }
}

/// Make every later fill use (`true`) or stop forcing (`false`) the portable kernels.
/// The bits written do not change — that is the point of the determinism contract; this exists
/// to test it and to measure the fallback. The environment variable `INIT_CORE_PORTABLE=1`,
/// read once at the first fill, does the same for a whole process.
pub fn force_portable(on: bool) {
    state::force_portable(on);
}

/// The instruction set fills use now (see [`force_portable`]).
pub fn active_isa() -> Isa {
    state::active()
}

/// Run the kernel compiled for `isa`; `isa` must be available (checked by every caller).
#[inline]
pub(crate) fn run_on<T: Element>(isa: Isa, plan: &Plan, out: &mut [T], lanes: Lanes) {
    match isa {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Isa::Avx512 => {
            debug_assert!(isa.is_available());
            if T::DTYPE == DType::BF16 && std::arch::is_x86_feature_detected!("avx512bf16") {
                // SAFETY: AVX-512 F/DQ/VL/BW (callers only pass an available instruction set)
                // and AVX512-BF16 (just detected).
                return unsafe { run_avx512_bf16(plan, out, lanes) };
            }
            // SAFETY: callers only pass an instruction set whose `is_available()` is true.
            unsafe { run_avx512(plan, out, lanes) }
        }
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Isa::Avx2 => {
            debug_assert!(isa.is_available());
            // SAFETY: as above.
            unsafe { run_avx2(plan, out, lanes) }
        }
        _ => run::<T, Portable>(plan, out, lanes),
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,f16c")]
fn run_avx2<T: Element>(plan: &Plan, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx2>(plan, out, lanes);
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn run_avx512<T: Element>(plan: &Plan, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx512<false>>(plan, out, lanes);
}

/// The AVX-512 kernels for bf16 on CPUs with AVX512-BF16 (`vcvtne2ps2bf16` rounds 32 values
/// in one instruction; blocks holding an f32 subnormal, which it flushes to zero, take the
/// integer rounding instead).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx512bf16")]
fn run_avx512_bf16<T: Element>(plan: &Plan, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx512<true>>(plan, out, lanes);
}

// ---------------------------------------------------------------------------------------------
// Per-fill constants.

/// A sampler resolved for one element width: the constants every chunk's kernel uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    Constant(f64),
    Uniform32 {
        mid: f32,
        half: f32,
        lo: f32,
        hi: f32,
    },
    Uniform64 {
        mid: f64,
        half: f64,
        lo: f64,
        hi: f64,
    },
    Normal32 {
        mean: f32,
        std: f32,
    },
    Normal64 {
        mean: f64,
        std: f64,
    },
    /// Truncated normal by rejection from the block normals: z kept when a ≤ z ≤ b.
    Reject32 {
        a: f32,
        b: f32,
        mean: f32,
        std: f32,
        lo: f32,
        hi: f32,
    },
    Reject64 {
        a: f64,
        b: f64,
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    },
    /// Truncated normal with little mass in [lo, hi]: the scalar tail samplers.
    Tail {
        wide: bool,
        tail: TailSampler,
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    },
}

/// The rejection sampler is used when the interval holds at least this much of the normal's
/// mass (PyTorch's threshold since PR #174997); below it, the tail samplers.
pub(crate) const REJECTION_MIN_MASS: f64 = 0.3;

impl Plan {
    pub(crate) fn new(s: &crate::Sampler, wide: bool) -> Plan {
        use crate::Sampler;
        if !s.is_valid() {
            return Plan::Constant(f64::NAN);
        }
        match *s {
            Sampler::Constant(v) => Plan::Constant(v),
            Sampler::Uniform { lo, hi } => {
                let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
                if wide {
                    Plan::Uniform64 { mid, half, lo, hi }
                } else {
                    Plan::Uniform32 {
                        mid: mid as f32,
                        half: half as f32,
                        lo: lo as f32,
                        hi: hi as f32,
                    }
                }
            }
            Sampler::Normal { mean, std } => {
                if wide {
                    Plan::Normal64 { mean, std }
                } else {
                    Plan::Normal32 {
                        mean: mean as f32,
                        std: std as f32,
                    }
                }
            }
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                if normal_mass(a, b) >= REJECTION_MIN_MASS {
                    if wide {
                        Plan::Reject64 {
                            a,
                            b,
                            mean,
                            std,
                            lo,
                            hi,
                        }
                    } else {
                        Plan::Reject32 {
                            a: a as f32,
                            b: b as f32,
                            mean: mean as f32,
                            std: std as f32,
                            lo: lo as f32,
                            hi: hi as f32,
                        }
                    }
                } else {
                    Plan::Tail {
                        wide,
                        tail: TailSampler::new(a, b),
                        mean,
                        std,
                        lo,
                        hi,
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel.

/// Fill `out` (at most one chunk) from the chunk generator `lanes`.
#[inline(always)]
pub(crate) fn run<T: Element, I: Target>(plan: &Plan, out: &mut [T], lanes: Lanes) {
    let mut g = Steps(I::Gen::from_lanes(lanes));
    match *plan {
        Plan::Constant(v) => out.fill(T::from_f64(v)),
        Plan::Uniform32 { mid, half, lo, hi } => {
            write32::<T, I, _, _>(out, &mut g, &Uniform32 { mid, half, lo, hi });
        }
        Plan::Normal32 { mean, std } => write_normal32::<T, I, _>(out, &mut g, mean, std),
        Plan::Uniform64 { mid, half, lo, hi } => {
            write64(out, &mut g, &Uniform64 { mid, half, lo, hi });
        }
        Plan::Normal64 { mean, std } => write64(out, &mut g, &Normal64 { mean, std }),
        Plan::Reject32 {
            a,
            b,
            mean,
            std,
            lo,
            hi,
        } => reject32::<T, I, _>(out, &mut g, [a, b, mean, std, lo, hi]),
        Plan::Reject64 {
            a,
            b,
            mean,
            std,
            lo,
            hi,
        } => reject64::<T, I, _>(out, &mut g, [a, b, mean, std, lo, hi]),
        Plan::Tail {
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
fn convert32<T: Element, I: Target>(v: &[f32; B32]) -> [T; B32] {
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
fn uniform32(w: u32, mid: f32, half: f32, lo: f32, hi: f32) -> f32 {
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
fn signed_u01_f64(w: u64) -> f64 {
    let f = f64::from_bits(ONE_F64 | ((w >> 11) & MANT52)) - 1.0;
    if w >> 63 == 0 { f - 1.0 } else { f }
}

const ONE_F64: u64 = 0x3FF0_0000_0000_0000;
const MANT52: u64 = (1 << 52) - 1;

/// u₁ ∈ (0, 1) of the f64 Box–Muller: `((w >> 11) | 1)·2⁻⁵³` (exact), so |z| ≤ √(106 ln 2) = 8.57.
#[inline(always)]
fn u1_f64(w: u64) -> f64 {
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

// ---------------------------------------------------------------------------------------------
// What differs between instruction sets: only exact operations.

/// The operations whose implementation differs between instruction sets. None is arithmetic in
/// the rounding sense: the f32 → f16 conversion is the correctly rounded IEEE conversion
/// whichever way it is computed, and packing only moves values.
pub(crate) trait Target {
    /// The chunk generator in this instruction set's registers.
    type Gen: Gen;

    /// f16 bits of 16 f32 values (nearest, ties to even).
    fn f16x16(v: &[f32; 16]) -> [u16; 16];

    /// `[a₀, b₀, a₁, b₁, …]` rounded to `T`.
    #[inline(always)]
    fn zip_convert<T: Element>(a: &[f32; 16], b: &[f32; 16]) -> [T; B32]
    where
        Self: Sized,
    {
        let mut v = [0f32; B32];
        for k in 0..16 {
            v[2 * k] = a[k];
            v[2 * k + 1] = b[k];
        }
        convert32::<T, Self>(&v)
    }

    /// bfloat16 bits of 32 f32 values (nearest, ties to even).
    #[inline(always)]
    fn bf16x32(v: &[f32; B32]) -> [u16; B32] {
        let mut h = [0u16; B32];
        for k in 0..B32 {
            h[k] = crate::element::f32_to_bf16_bits(v[k]);
        }
        h
    }

    /// Write, in order, `v[k]` rounded to `T` for every k with `a ≤ z[k] ≤ b` to `dst[0..m]` and
    /// return m. `dst[m..]` may be overwritten with values the caller overwrites later.
    fn pack32<T: Element>(
        v: &[f32; B32],
        z: &[f32; B32],
        a: f32,
        b: f32,
        dst: &mut [T; B32],
    ) -> usize;

    /// As [`Target::pack32`] for sixteen f64 values.
    fn pack16_f64<T: Element>(
        v: &[f64; B64],
        z: &[f64; B64],
        a: f64,
        b: f64,
        dst: &mut [T; B64],
    ) -> usize;
}

/// The eight Xoshiro256++ lanes of [`Lanes`], held however the instruction set likes (the
/// integer operations are exact, so every representation steps to the same words).
pub(crate) trait Gen {
    fn from_lanes(l: Lanes) -> Self;
    fn into_lanes(self) -> Lanes;
    /// [`Lanes::step`].
    fn step(&mut self) -> [u64; LANES];
}

impl Gen for Lanes {
    #[inline(always)]
    fn from_lanes(l: Lanes) -> Self {
        l
    }
    #[inline(always)]
    fn into_lanes(self) -> Lanes {
        self
    }
    #[inline(always)]
    fn step(&mut self) -> [u64; LANES] {
        Lanes::step(self)
    }
}

/// The baseline build: everything in plain Rust.
pub(crate) struct Portable;

impl Target for Portable {
    type Gen = Lanes;

    #[inline(always)]
    fn f16x16(v: &[f32; 16]) -> [u16; 16] {
        let mut h = [0u16; 16];
        for k in 0..16 {
            h[k] = crate::element::f32_to_f16_bits(v[k]);
        }
        h
    }

    #[inline(always)]
    fn pack32<T: Element>(
        v: &[f32; B32],
        z: &[f32; B32],
        a: f32,
        b: f32,
        dst: &mut [T; B32],
    ) -> usize {
        let t = convert32::<T, Self>(v);
        let mut m = 0;
        for k in 0..B32 {
            // m ≤ k < B32: the mask only tells the compiler so.
            dst[m % B32] = t[k];
            m += usize::from(z[k] >= a && z[k] <= b);
        }
        m
    }

    #[inline(always)]
    fn pack16_f64<T: Element>(
        v: &[f64; B64],
        z: &[f64; B64],
        a: f64,
        b: f64,
        dst: &mut [T; B64],
    ) -> usize {
        let mut m = 0;
        for k in 0..B64 {
            dst[m % B64] = T::from_f64(v[k]);
            m += usize::from(z[k] >= a && z[k] <= b);
        }
        m
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) mod x86 {
    //! The x86-64 implementations of [`Target`]: F16C / AVX-512 `vcvtps2ph` for the f16
    //! conversion (round to nearest even, the same result as the portable code), and AVX-512
    //! `vcompressps`/`vcompresspd` for packing. Only `run_avx2`/`run_avx512` instantiate these,
    //! and only after the CPU features were detected.

    use super::{B32, B64, Gen, LANES, Lanes, Portable, Target, convert32};
    use crate::element::DType;
    use crate::element::Element;
    use core::arch::x86_64::{
        __m256i, __m512bh, __m512i, _mm256_add_epi64, _mm256_or_si256, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_xor_si256, _mm512_add_epi32, _mm512_add_epi64, _mm512_and_si512,
        _mm512_castps_si512, _mm512_cmpgt_epu32_mask, _mm512_cmplt_epu32_mask, _mm512_cvtne2ps_pbh,
        _mm512_loadu_si512, _mm512_mask_or_epi32, _mm512_permutex2var_epi16,
        _mm512_permutexvar_epi16, _mm512_rol_epi64, _mm512_set1_epi32, _mm512_slli_epi64,
        _mm512_srli_epi32, _mm512_sub_epi32, _mm512_testn_epi32_mask, _mm512_xor_si512,
    };
    use core::arch::x86_64::{
        __m512, __m512d, _CMP_GE_OQ, _CMP_LE_OQ, _MM_FROUND_NO_EXC, _MM_FROUND_TO_NEAREST_INT,
        _mm256_cvtps_ph, _mm256_loadu_ps, _mm512_cmp_pd_mask, _mm512_cmp_ps_mask, _mm512_cvtps_ph,
        _mm512_loadu_pd, _mm512_loadu_ps, _mm512_mask_compress_ps, _mm512_maskz_compress_pd,
        _mm512_set1_pd, _mm512_set1_ps, _mm512_storeu_pd, _mm512_storeu_ps,
    };

    pub(crate) struct Avx2;
    /// `BF16`: AVX512-BF16 is available (see `run_avx512_bf16`).
    pub(crate) struct Avx512<const BF16: bool>;

    /// The lanes as four 512-bit vectors (s0..s3), one lane per 64-bit element.
    pub(crate) struct Gen512([__m512i; 4]);

    /// The lanes as eight 256-bit vectors: s0..s3 for lanes 0–3, then for lanes 4–7.
    pub(crate) struct Gen256([__m256i; 8]);

    impl Gen for Gen512 {
        #[inline(always)]
        fn from_lanes(l: Lanes) -> Self {
            // SAFETY: [u64; 8] and __m512i have the same size; any bits are valid for both.
            Gen512(unsafe { core::mem::transmute::<[[u64; LANES]; 4], [__m512i; 4]>(l.state()) })
        }
        #[inline(always)]
        fn into_lanes(self) -> Lanes {
            // SAFETY: as above.
            Lanes::from_state(unsafe {
                core::mem::transmute::<[__m512i; 4], [[u64; LANES]; 4]>(self.0)
            })
        }
        #[inline(always)]
        fn step(&mut self) -> [u64; LANES] {
            // SAFETY: `Gen512` is only created by `run_avx512` (through `Avx512::Gen`), after
            // AVX-512F was detected.
            let out = unsafe { step512(&mut self.0) };
            // SAFETY: same size, plain bits.
            unsafe { core::mem::transmute::<__m512i, [u64; LANES]>(out) }
        }
    }

    /// Xoshiro256++ on eight lanes: the operations of [`Lanes::step`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn step512(s: &mut [__m512i; 4]) -> __m512i {
        let [s0, s1, s2, s3] = *s;
        let out = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
        let t = _mm512_slli_epi64::<17>(s1);
        let s2 = _mm512_xor_si512(s2, s0);
        let s3 = _mm512_xor_si512(s3, s1);
        let s1 = _mm512_xor_si512(s1, s2);
        let s0 = _mm512_xor_si512(s0, s3);
        let s2 = _mm512_xor_si512(s2, t);
        let s3 = _mm512_rol_epi64::<45>(s3);
        *s = [s0, s1, s2, s3];
        out
    }

    impl Gen for Gen256 {
        #[inline(always)]
        fn from_lanes(l: Lanes) -> Self {
            let st = l.state();
            let mut v = [[0u64; 4]; 8];
            for w in 0..4 {
                v[w].copy_from_slice(&st[w][..4]);
                v[4 + w].copy_from_slice(&st[w][4..]);
            }
            // SAFETY: [u64; 4] and __m256i have the same size; any bits are valid for both.
            Gen256(unsafe { core::mem::transmute::<[[u64; 4]; 8], [__m256i; 8]>(v) })
        }
        #[inline(always)]
        fn into_lanes(self) -> Lanes {
            // SAFETY: as above.
            let v = unsafe { core::mem::transmute::<[__m256i; 8], [[u64; 4]; 8]>(self.0) };
            let mut st = [[0u64; LANES]; 4];
            for w in 0..4 {
                st[w][..4].copy_from_slice(&v[w]);
                st[w][4..].copy_from_slice(&v[4 + w]);
            }
            Lanes::from_state(st)
        }
        #[inline(always)]
        fn step(&mut self) -> [u64; LANES] {
            let (lo, hi) = self.0.split_at_mut(4);
            // SAFETY: `Gen256` is only created by `run_avx2`, after AVX2 was detected.
            let (a, b) = unsafe {
                (
                    step256((&mut *lo).try_into().expect("4")),
                    step256((&mut *hi).try_into().expect("4")),
                )
            };
            // SAFETY: two 256-bit vectors are eight u64.
            unsafe { core::mem::transmute::<[__m256i; 2], [u64; LANES]>([a, b]) }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn rol256<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi64::<L>(x), _mm256_srli_epi64::<R>(x))
    }

    /// Xoshiro256++ on four lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn step256(s: &mut [__m256i; 4]) -> __m256i {
        let [s0, s1, s2, s3] = *s;
        let out = _mm256_add_epi64(rol256::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
        let t = _mm256_slli_epi64::<17>(s1);
        let s2 = _mm256_xor_si256(s2, s0);
        let s3 = _mm256_xor_si256(s3, s1);
        let s1 = _mm256_xor_si256(s1, s2);
        let s0 = _mm256_xor_si256(s0, s3);
        let s2 = _mm256_xor_si256(s2, t);
        let s3 = rol256::<45, 19>(s3);
        *s = [s0, s1, s2, s3];
        out
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    fn f16x16_f16c(v: &[f32; 16]) -> [u16; 16] {
        const RNE: i32 = _MM_FROUND_TO_NEAREST_INT;
        // SAFETY: the loads read 8 f32 each from inside `v`.
        let (a, b) = unsafe {
            (
                _mm256_loadu_ps(v.as_ptr()),
                _mm256_loadu_ps(v.as_ptr().add(8)),
            )
        };
        let (a, b) = (_mm256_cvtps_ph::<RNE>(a), _mm256_cvtps_ph::<RNE>(b));
        // SAFETY: two 128-bit vectors are eight u16 each.
        unsafe { core::mem::transmute([a, b]) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn f16x16_avx512(v: &[f32; 16]) -> [u16; 16] {
        // SAFETY: reads 16 f32 from `v`.
        let x = unsafe { _mm512_loadu_ps(v.as_ptr()) };
        let h: __m256i = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        // SAFETY: a 256-bit vector is sixteen u16.
        unsafe { core::mem::transmute(h) }
    }

    /// [`crate::element::f32_to_bf16_bits`] on 32 values: the same integer operations, and
    /// the high halves gathered into one vector by a permutation (rather than two narrowing
    /// stores).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn bf16x32_avx512(v: &[f32; B32]) -> [u16; B32] {
        let round = |x: __m512i| {
            let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(x), _mm512_set1_epi32(1));
            let r = _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7FFF)), lsb);
            let abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7FFF_FFFF));
            let nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
            // NaN: the quiet bit set, so the high half is (bits >> 16) | 0x40.
            _mm512_mask_or_epi32(r, nan, x, _mm512_set1_epi32(0x0040_0000))
        };
        // SAFETY: the loads read 16 f32 each from inside `v`.
        let (a, b) = unsafe {
            (
                _mm512_loadu_si512(v.as_ptr().cast()),
                _mm512_loadu_si512(v.as_ptr().add(16).cast()),
            )
        };
        // The odd 16-bit words (high halves) of a, then of b.
        const IDX: [u16; 32] = {
            let mut i = [0u16; 32];
            let mut k = 0;
            while k < 32 {
                i[k] = 2 * k as u16 + 1;
                k += 1;
            }
            i
        };
        // SAFETY: reads 32 u16 from a 32-element array.
        let idx = unsafe { _mm512_loadu_si512(IDX.as_ptr().cast()) };
        let packed = _mm512_permutex2var_epi16(round(a), idx, round(b));
        // SAFETY: a 512-bit vector is 32 u16.
        unsafe { core::mem::transmute::<__m512i, [u16; B32]>(packed) }
    }

    /// [`crate::element::f32_to_bf16_bits`] on 32 values by `vcvtne2ps2bf16` (round to nearest
    /// even, NaN quieted the same way), except that the instruction flushes f32 subnormals to
    /// zero: a block with any subnormal input is rounded by [`bf16x32_avx512`] instead.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) fn bf16x32_hw(v: &[f32; B32]) -> [u16; B32] {
        // SAFETY: the loads read 16 f32 each from inside `v`.
        let (a, b) = unsafe {
            (
                _mm512_loadu_ps(v.as_ptr()),
                _mm512_loadu_ps(v.as_ptr().add(16)),
            )
        };
        // Subnormal: 1 ≤ |bits| ≤ 0x007F_FFFF, i.e. |bits| − 1 < 0x007F_FFFF unsigned (zeros
        // wrap around and pass: the instruction gets them right).
        let sub = |x: __m512| {
            let abs = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFF_FFFF));
            _mm512_cmplt_epu32_mask(
                _mm512_sub_epi32(abs, _mm512_set1_epi32(1)),
                _mm512_set1_epi32(0x007F_FFFF),
            )
        };
        // Cheap test first: any exponent field zero (subnormal or ±0)?
        let exp = _mm512_set1_epi32(0x7F80_0000);
        let tiny = _mm512_testn_epi32_mask(_mm512_castps_si512(a), exp)
            | _mm512_testn_epi32_mask(_mm512_castps_si512(b), exp);
        if tiny != 0 && sub(a) | sub(b) != 0 {
            return bf16x32_avx512(v);
        }
        let h = _mm512_cvtne2ps_pbh(b, a);
        // SAFETY: a 512-bit vector is 32 u16.
        unsafe { core::mem::transmute::<__m512bh, [u16; B32]>(h) }
    }

    /// `[a₀, b₀, a₁, b₁, …]`: one 16-bit permutation.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn zip16(a: [u16; 16], b: [u16; 16]) -> [u16; B32] {
        const IDX: [u16; 32] = {
            let mut i = [0u16; 32];
            let mut k = 0;
            while k < 16 {
                i[2 * k] = k as u16;
                i[2 * k + 1] = 16 + k as u16;
                k += 1;
            }
            i
        };
        // SAFETY: [u16; 16] pairs and [u16; 32] have the sizes of __m256i pairs and __m512i.
        let ab = unsafe { core::mem::transmute::<[[u16; 16]; 2], __m512i>([a, b]) };
        // SAFETY: reads 32 u16 from a 32-element array.
        let idx = unsafe { _mm512_loadu_si512(IDX.as_ptr().cast()) };
        // SAFETY: as above.
        unsafe { core::mem::transmute::<__m512i, [u16; B32]>(_mm512_permutexvar_epi16(idx, ab)) }
    }

    /// The kept lanes of `v` (a ≤ z ≤ b), packed to the front; the rest 1.0 (scratch that
    /// is cheap to round).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress_ps(v: &[f32; 16], z: &[f32; 16], a: f32, b: f32) -> ([f32; 16], usize) {
        // SAFETY: each load reads 16 f32 from a 16-element array.
        let (x, zz) = unsafe { (_mm512_loadu_ps(v.as_ptr()), _mm512_loadu_ps(z.as_ptr())) };
        let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(zz, _mm512_set1_ps(a))
            & _mm512_cmp_ps_mask::<_CMP_LE_OQ>(zz, _mm512_set1_ps(b));
        let packed: __m512 = _mm512_mask_compress_ps(_mm512_set1_ps(1.0), keep, x);
        let mut out = [0f32; 16];
        // SAFETY: writes 16 f32 to a 16-element array.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), packed) };
        (out, keep.count_ones() as usize)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress_pd(v: &[f64; 8], z: &[f64; 8], a: f64, b: f64) -> ([f64; 8], usize) {
        // SAFETY: each load reads 8 f64 from an 8-element array.
        let (x, zz) = unsafe { (_mm512_loadu_pd(v.as_ptr()), _mm512_loadu_pd(z.as_ptr())) };
        let keep = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(zz, _mm512_set1_pd(a))
            & _mm512_cmp_pd_mask::<_CMP_LE_OQ>(zz, _mm512_set1_pd(b));
        let packed: __m512d = _mm512_maskz_compress_pd(keep, x);
        let mut out = [0f64; 8];
        // SAFETY: writes 8 f64 to an 8-element array.
        unsafe { _mm512_storeu_pd(out.as_mut_ptr(), packed) };
        (out, keep.count_ones() as usize)
    }

    impl Target for Avx2 {
        type Gen = Gen256;

        #[inline(always)]
        fn f16x16(v: &[f32; 16]) -> [u16; 16] {
            // SAFETY: `Avx2` is only used by `run_avx2`, which runs after AVX2 and F16C were
            // detected.
            unsafe { f16x16_f16c(v) }
        }

        #[inline(always)]
        fn pack32<T: Element>(
            v: &[f32; B32],
            z: &[f32; B32],
            a: f32,
            b: f32,
            dst: &mut [T; B32],
        ) -> usize {
            let t = convert32::<T, Self>(v);
            let mut m = 0;
            for k in 0..B32 {
                dst[m % B32] = t[k];
                m += usize::from(z[k] >= a && z[k] <= b);
            }
            m
        }

        #[inline(always)]
        fn pack16_f64<T: Element>(
            v: &[f64; B64],
            z: &[f64; B64],
            a: f64,
            b: f64,
            dst: &mut [T; B64],
        ) -> usize {
            Portable::pack16_f64(v, z, a, b, dst)
        }
    }

    impl<const BF16: bool> Target for Avx512<BF16> {
        type Gen = Gen512;

        #[inline(always)]
        fn zip_convert<T: Element>(a: &[f32; 16], b: &[f32; 16]) -> [T; B32] {
            let h = if T::DTYPE == DType::F16 {
                // SAFETY: as in `f16x16`.
                unsafe { zip16(Self::f16x16(a), Self::f16x16(b)) }
            } else if T::DTYPE == DType::BF16 {
                let mut v = [0f32; B32];
                v[..16].copy_from_slice(a);
                v[16..].copy_from_slice(b);
                let h = Self::bf16x32(&v);
                // SAFETY: as in `f16x16`.
                unsafe {
                    zip16(
                        h[..16].try_into().expect("16"),
                        h[16..].try_into().expect("16"),
                    )
                }
            } else {
                let mut v = [0f32; B32];
                for k in 0..16 {
                    v[2 * k] = a[k];
                    v[2 * k + 1] = b[k];
                }
                return convert32::<T, Self>(&v);
            };
            let mut out = [T::ZERO; B32];
            for k in 0..B32 {
                out[k] = if T::DTYPE == DType::F16 {
                    T::from_f16_bits(h[k])
                } else {
                    T::from_bf16_bits(h[k])
                };
            }
            out
        }

        #[inline(always)]
        fn bf16x32(v: &[f32; B32]) -> [u16; B32] {
            if BF16 {
                // SAFETY: `Avx512<true>` is only used by `run_avx512_bf16`, which runs after
                // AVX-512 F/DQ/VL/BW and AVX512-BF16 were detected.
                unsafe { bf16x32_hw(v) }
            } else {
                // SAFETY: as in `f16x16`.
                unsafe { bf16x32_avx512(v) }
            }
        }

        #[inline(always)]
        fn f16x16(v: &[f32; 16]) -> [u16; 16] {
            // SAFETY: `Avx512` is only used by `run_avx512`, which runs after AVX-512 F/DQ/VL/BW
            // were detected.
            unsafe { f16x16_avx512(v) }
        }

        #[inline(always)]
        fn pack32<T: Element>(
            v: &[f32; B32],
            z: &[f32; B32],
            a: f32,
            b: f32,
            dst: &mut [T; B32],
        ) -> usize {
            let (v0, v1) = v.split_at(16);
            let (z0, z1) = z.split_at(16);
            // SAFETY: as in `f16x16`.
            let ((p0, m0), (p1, m1)) = unsafe {
                (
                    compress_ps(v0.try_into().expect("16"), z0.try_into().expect("16"), a, b),
                    compress_ps(v1.try_into().expect("16"), z1.try_into().expect("16"), a, b),
                )
            };
            // Both packed halves back to back (what lies past m0 + m1 is scratch), then one
            // 32-value conversion and store.
            let mut tmp = [1f32; B32 + 16];
            tmp[..16].copy_from_slice(&p0);
            tmp[m0..m0 + 16].copy_from_slice(&p1);
            *dst = convert32::<T, Self>(tmp[..B32].try_into().expect("32"));
            m0 + m1
        }

        #[inline(always)]
        fn pack16_f64<T: Element>(
            v: &[f64; B64],
            z: &[f64; B64],
            a: f64,
            b: f64,
            dst: &mut [T; B64],
        ) -> usize {
            let mut n = 0;
            for half in 0..2 {
                let r = half * 8..half * 8 + 8;
                let vv: &[f64; 8] = v[r.clone()].try_into().expect("8");
                let zz: &[f64; 8] = z[r].try_into().expect("8");
                // SAFETY: as in `f16x16`.
                let (packed, m) = unsafe { compress_pd(vv, zz, a, b) };
                for k in 0..8 {
                    dst[n + k] = T::from_f64(packed[k]);
                }
                n += m;
            }
            n
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

// ---------------------------------------------------------------------------------------------
// Fixed-polynomial elementary functions.

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

#[inline(always)]
fn sqrt_f64(x: f64) -> f64 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::sqrt(x)
    }
}

/// Natural logarithm for normal x > 0 (the kernels use x ∈ (0, 1]), relative error < 2·10⁻⁷:
/// x = 2ᵉ·m with m ∈ [√½, √2), ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| < 0.172, by its
/// series to s⁹.
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
    let t = (m & 0x3F_FFFF) as i32 as f32 * FRAC_SCALE;
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
    rotate(q, sin, cos)
}

/// (sin, cos) of θ + q·π/2 from (sin θ, cos θ).
#[inline(always)]
fn rotate<F: core::ops::Neg<Output = F> + Copy>(q: u32, sin: F, cos: F) -> (F, F) {
    let swap = q & 1 == 1;
    let (x, y) = if swap { (sin, cos) } else { (cos, sin) };
    let neg_c = q == 1 || q == 2;
    let neg_s = q >= 2;
    (if neg_s { -y } else { y }, if neg_c { -x } else { x })
}

/// Natural logarithm for normal x > 0 (the kernels use x ∈ (0, 1)) in f64, error ≤ 2 ulp:
/// as [`ln_f32`] with the atanh series to s²¹ and ln 2 split in two parts.
#[inline(always)]
pub(crate) fn ln_f64(x: f64) -> f64 {
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 11 trailing zero bits so e·LN2_HI is exact (fdlibm).
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let bits = x.to_bits();
    let mut m = f64::from_bits((bits & MANT52) | ONE_F64); // [1, 2)
    // The biased exponent as a float, exactly, through the exponent field.
    let mut e = f64::from_bits(0x4330_0000_0000_0000 | (bits >> 52)) - (TWO52 + 1023.0);
    let big = m > core::f64::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e = if big { e + 1.0 } else { e };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = s2
        * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0
                            + s2 * (1.0 / 13.0
                                + s2 * (1.0 / 15.0
                                    + s2 * (1.0 / 17.0
                                        + s2 * (1.0 / 19.0 + s2 * (1.0 / 21.0))))))))));
    // ln m = 2s + 2s·p; the small parts first.
    e * LN2_HI + (e * LN2_LO + (2.0 * s * p + 2.0 * s))
}

/// (sin, cos) of 2π·m/2⁵³ for a 53-bit integer m: quadrant from the top two bits, θ ∈ [0, π/2)
/// from the other 51, Taylor polynomials to θ²¹ and θ²² (truncation error < 2·10⁻¹⁸).
#[inline(always)]
pub(crate) fn sincos_turn_f64(m: u64) -> (f64, f64) {
    let q = ((m >> 51) & 3) as u32;
    // (m mod 2⁵¹)·2⁻⁵¹ exactly, through the exponent field; then × π/2.
    let frac = f64::from_bits(ONE_F64 | ((m << 1) & MANT52)) - 1.0;
    let t = frac * core::f64::consts::FRAC_PI_2;
    let t2 = t * t;
    // Coefficients 1/n! with alternating signs.
    const S: [f64; 10] = [
        -1.0 / 6.0,
        1.0 / 120.0,
        -1.0 / 5040.0,
        1.0 / 362_880.0,
        -1.0 / 39_916_800.0,
        1.0 / 6_227_020_800.0,
        -1.0 / 1_307_674_368_000.0,
        1.0 / 355_687_428_096_000.0,
        -1.0 / 121_645_100_408_832_000.0,
        1.0 / 51_090_942_171_709_440_000.0,
    ];
    const C: [f64; 11] = [
        -0.5,
        1.0 / 24.0,
        -1.0 / 720.0,
        1.0 / 40_320.0,
        -1.0 / 3_628_800.0,
        1.0 / 479_001_600.0,
        -1.0 / 87_178_291_200.0,
        1.0 / 20_922_789_888_000.0,
        -1.0 / 6_402_373_705_728_000.0,
        1.0 / 2_432_902_008_176_640_000.0,
        -1.0 / 1_124_000_727_777_607_680_000.0,
    ];
    let mut ps = S[9];
    for k in (0..9).rev() {
        ps = S[k] + t2 * ps;
    }
    let mut pc = C[10];
    for k in (0..10).rev() {
        pc = C[k] + t2 * pc;
    }
    let sin = t + t * (t2 * ps);
    let cos = 1.0 + t2 * pc;
    rotate(q, sin, cos)
}

// ---------------------------------------------------------------------------------------------
// Normal distribution helpers and the tail samplers.

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
pub(crate) struct TailSampler {
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
    pub(crate) fn new(a: f64, b: f64) -> TailSampler {
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

    /// Whether this is the exponential (far one-sided tail) method.
    #[cfg(test)]
    pub(crate) fn is_exponential(&self) -> bool {
        matches!(self.method, TailMethod::Exponential { .. })
    }

    /// One draw; `next` gives a pair of uniforms in (0, 1) per proposal.
    #[inline]
    pub(crate) fn sample(&self, mut next: impl FnMut() -> (f64, f64)) -> f64 {
        loop {
            let (u1, u2) = next();
            let z = match self.method {
                TailMethod::Uniform { m2 } => {
                    let z = self.lo + (self.hi - self.lo) * u1;
                    (libm::log(u2) <= 0.5 * (m2 - z * z)).then_some(z)
                }
                TailMethod::Exponential { lambda } => {
                    let z = self.lo - libm::log(u1) / lambda;
                    let d = z - lambda;
                    (z <= self.hi && libm::log(u2) <= -0.5 * d * d).then_some(z)
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
        let tiny = 1.0f32 / 2_147_483_648.0;
        assert!((f64::from(ln_f32(tiny)) - libm::log(f64::from(tiny))).abs() < 1e-5);
        assert!(worst < 2e-6, "worst relative error {worst}");
    }

    #[test]
    fn ln_f64_is_accurate() {
        let mut worst = 0f64;
        let mut x = 1.0f64 / (1u64 << 53) as f64;
        while x <= 1.0 {
            for k in 0..64 {
                let y = x * (1.0 + f64::from(k) / 64.0);
                if y > 1.0 {
                    break;
                }
                let (got, want) = (ln_f64(y), libm::log(y));
                let ulp = f64::EPSILON * want.abs().max(f64::MIN_POSITIVE);
                worst = worst.max((got - want).abs() / ulp);
            }
            x *= 2.0;
        }
        assert_eq!(ln_f64(1.0), 0.0);
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn sincos_f32_is_accurate_in_every_quadrant() {
        for m in (0..(1u32 << 24)).step_by(997) {
            let (s, c) = sincos_turn_f32(m);
            let t = core::f64::consts::TAU * f64::from(m) / f64::from(1u32 << 24);
            assert!((f64::from(s) - libm::sin(t)).abs() < 3e-7, "sin at {m}");
            assert!((f64::from(c) - libm::cos(t)).abs() < 3e-7, "cos at {m}");
        }
    }

    #[test]
    fn sincos_f64_is_accurate_in_every_quadrant() {
        let mut worst = 0f64;
        for i in 0..200_000u64 {
            let m = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            let (s, c) = sincos_turn_f64(m);
            let t = core::f64::consts::TAU * (m as f64 / (1u64 << 53) as f64);
            worst = worst
                .max((s - libm::sin(t)).abs())
                .max((c - libm::cos(t)).abs());
        }
        assert!(worst < 1e-15, "worst absolute error {worst}");
        assert_eq!(sincos_turn_f64(0), (0.0, 1.0));
    }

    #[test]
    fn signed_u01_is_exact() {
        for w in [
            0u64,
            1 << 11,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            0x1234_5678_9ABC_DEF0,
        ] {
            let want = 2.0 * u01_f64(w) - 1.0;
            assert_eq!(signed_u01_f64(w), want, "{w:#x}");
            let odd = ((w >> 11) | 1) as f64 / (1u64 << 53) as f64;
            assert_eq!(u1_f64(w), odd, "{w:#x}");
        }
    }

    #[test]
    fn uniform32_matches_its_definition() {
        for w in [0u32, 255, 256, 0x8000_0000, u32::MAX, 0x1234_5678] {
            let u = (w >> 8) as f32 / (1u32 << 24) as f32;
            let want = (0.25 + 1.5 * (2.0 * u - 1.0)).clamp(-1.25, 1.75);
            assert_eq!(uniform32(w, 0.25, 1.5, -1.25, 1.75), want);
        }
    }

    #[test]
    fn normal_mass_matches_known_values() {
        assert!((normal_mass(-2.0, 2.0) - 0.954_499_736_103_642).abs() < 1e-14);
        assert!((normal_mass(5.0, f64::INFINITY) - 2.866_515_718_791_939e-7).abs() < 1e-20);
        assert!((normal_mass(f64::NEG_INFINITY, -5.0) - 2.866_515_718_791_939e-7).abs() < 1e-20);
    }

    #[test]
    fn invalid_samplers_fill_nan_without_panicking_or_hanging() {
        use crate::Sampler;
        let lanes = || Lanes::for_chunk(1, 2, 0);
        for s in [
            Sampler::Uniform { lo: 1.0, hi: 0.0 },
            Sampler::Uniform {
                lo: f64::NAN,
                hi: 0.0,
            },
            Sampler::Normal {
                mean: 0.0,
                std: -1.0,
            },
            Sampler::Normal {
                mean: f64::NAN,
                std: 1.0,
            },
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: f64::NAN,
                lo: -1.0,
                hi: 1.0,
            },
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: 1.0,
                hi: -1.0,
            },
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: 50.0,
                hi: 60.0,
            },
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 0.0,
                lo: -1.0,
                hi: 1.0,
            },
        ] {
            assert!(!s.is_valid(), "{s:?}");
            let mut v = [0f32; 40];
            run::<f32, Portable>(&Plan::new(&s, false), &mut v, lanes());
            assert!(v.iter().all(|x| x.is_nan()), "{s:?}");
        }
        // Degenerate but valid: a point interval.
        let point = Sampler::Uniform { lo: 0.5, hi: 0.5 };
        assert!(point.is_valid());
        let mut v = [0f64; 20];
        run::<f64, Portable>(&Plan::new(&point, true), &mut v, lanes());
        assert!(v.iter().all(|&x| x == 0.5));
    }

    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[test]
    fn bf16_vector_rounding_matches_the_scalar_rounding() {
        use crate::element::f32_to_bf16_bits;
        let has = |f| match f {
            "bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            _ => std::arch::is_x86_feature_detected!("avx512bf16"),
        };
        if !has("bw") {
            eprintln!("note: no AVX-512BW here; bf16 vector rounding not tested");
            return;
        }
        let edges = [
            0u32,
            1,
            0x8000,
            0x0001_8000,
            0x007F_FFFF,
            0x0080_0000,
            0x3F80_8000,
            0x3F81_8000,
            0x3F80_7FFF,
            0x3F80_8001,
            0x7F7F_FFFF,
            0x7F80_0000,
            0x7F80_0001,
            0x7FC0_0000,
            0x7FFF_FFFF,
            0x4049_0FDB,
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..20_000 {
            let mut v = [0f32; B32];
            for (k, o) in v.iter_mut().enumerate() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = if round % 4 == 0 {
                    edges[(x as usize + k) % edges.len()]
                } else {
                    x as u32
                };
                // Mostly normal numbers, so whole blocks take the instruction.
                let b = if round % 4 == 1 {
                    (b & 0x807F_FFFF) | 0x3F00_0000
                } else {
                    b
                };
                *o = f32::from_bits(b | (u32::from(k % 2 == 1) << 31));
            }
            let want: [u16; B32] = core::array::from_fn(|k| f32_to_bf16_bits(v[k]));
            // SAFETY: AVX-512F/BW detected above.
            assert_eq!(unsafe { x86::bf16x32_avx512(&v) }, want, "{v:?}");
            if has("bf16") {
                // SAFETY: AVX512-BF16 detected.
                assert_eq!(unsafe { x86::bf16x32_hw(&v) }, want, "{v:?}");
            }
        }
    }

    /// The first values of tests/core.rs's pins, from the portable kernels: run by
    /// `cargo test --no-default-features --lib` too, so the no_std build (libm's square roots)
    /// is held to the same bits.
    #[test]
    fn portable_kernels_match_the_pins() {
        use crate::Sampler;
        let lanes = || Lanes::for_chunk(42, crate::rng::key_of("pin"), 0);
        let f32s = |s: Sampler| {
            let mut v = [0f32; 4];
            run::<f32, Portable>(&Plan::new(&s, false), &mut v, lanes());
            v.map(f32::to_bits)
        };
        let f64s = |s: Sampler| {
            let mut v = [0f64; 4];
            run::<f64, Portable>(&Plan::new(&s, true), &mut v, lanes());
            v.map(f64::to_bits)
        };
        let u = Sampler::Uniform { lo: -0.5, hi: 1.5 };
        let n = Sampler::Normal {
            mean: 0.25,
            std: 2.0,
        };
        let t = Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: -2.0,
            hi: 2.0,
        };
        assert_eq!(f32s(u), [0x3f8c1bb7, 0x3f4ca7a0, 0x3e1fab98, 0x3e91b368]);
        assert_eq!(f32s(n), [0xbf0b0fa5, 0xbf5671e0, 0xc005011f, 0x4007b452]);
        assert_eq!(f32s(t), [0xbecb0fa5, 0xbf0b38f0, 0xbf95011f, 0x3f6f68a5]);
        assert_eq!(
            f64s(u),
            [
                0x3fe994f414f306ec,
                0x3fd2366d0229fab8,
                0xbfb5d2f72c48c790,
                0x3fe6c032b2f60e2c
            ]
        );
        assert_eq!(
            f64s(n),
            [
                0x3fd3166837c8ddd1,
                0xbf809d82b61a8e20,
                0x400e1587c187b607,
                0xbff685bc9105c45a
            ]
        );
        assert_eq!(
            f64s(t),
            [
                0x3f98b341be46ee85,
                0xbfc084ec15b0d471,
                0x3ffc1587c187b607,
                0xbfea85bc9105c45a
            ]
        );
    }

    #[test]
    fn tail_methods_are_chosen_by_shape() {
        assert!(TailSampler::new(3.0, f64::INFINITY).is_exponential());
        assert!(TailSampler::new(f64::NEG_INFINITY, -3.0).is_exponential());
        assert!(!TailSampler::new(0.1, 0.3).is_exponential());
        assert!(!TailSampler::new(3.0, 3.2).is_exponential());
    }
}
