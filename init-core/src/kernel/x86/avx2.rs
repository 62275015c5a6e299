//! AVX2 + F16C.

use crate::element::Element;
use crate::kernel::block::convert32;
use crate::kernel::target::{Gen, Portable, Target};
use crate::kernel::{B32, B64};
use crate::rng::{LANES, Lanes};
use core::arch::x86_64::{
    __m256i, _MM_FROUND_TO_NEAREST_INT, _mm256_add_epi64, _mm256_cvtps_ph, _mm256_loadu_ps,
    _mm256_or_si256, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_xor_si256,
};

pub(crate) struct Avx2;

/// The lanes as eight 256-bit vectors: s0..s3 for lanes 0–3, then for lanes 4–7.
pub(crate) struct Gen256([__m256i; 8]);

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
