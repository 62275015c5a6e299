//! AVX-512 F/DQ/VL/BW, and AVX512-BF16 where the CPU has it.

use crate::element::{DType, Element};
use crate::kernel::block::convert32;
use crate::kernel::target::{Gen, Target};
use crate::kernel::{B32, B64};
use crate::rng::{LANES, Lanes};
use core::arch::x86_64::{
    __m256i, __m512, __m512bh, __m512d, __m512i, _CMP_GE_OQ, _CMP_LE_OQ, _MM_FROUND_NO_EXC,
    _MM_FROUND_TO_NEAREST_INT, _mm512_add_epi32, _mm512_add_epi64, _mm512_and_si512,
    _mm512_castps_si512, _mm512_cmp_pd_mask, _mm512_cmp_ps_mask, _mm512_cmpgt_epu32_mask,
    _mm512_cmplt_epu32_mask, _mm512_cvtne2ps_pbh, _mm512_cvtps_ph, _mm512_loadu_pd,
    _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_compress_ps, _mm512_mask_or_epi32,
    _mm512_maskz_compress_pd, _mm512_permutex2var_epi16, _mm512_permutexvar_epi16,
    _mm512_rol_epi64, _mm512_set1_epi32, _mm512_set1_pd, _mm512_set1_ps, _mm512_slli_epi64,
    _mm512_srli_epi32, _mm512_storeu_pd, _mm512_storeu_ps, _mm512_sub_epi32,
    _mm512_testn_epi32_mask, _mm512_xor_si512,
};

/// `BF16`: AVX512-BF16 is available (see `run_avx512_bf16`).
pub(crate) struct Avx512<const BF16: bool>;

/// The lanes as four 512-bit vectors (s0..s3), one lane per 64-bit element.
pub(crate) struct Gen512([__m512i; 4]);

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
pub(crate) fn bf16x32_avx512(v: &[f32; B32]) -> [u16; B32] {
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
pub(crate) fn bf16x32_hw(v: &[f32; B32]) -> [u16; B32] {
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
