//! What differs between instruction sets: only exact operations.

use super::block::convert32;
use super::{B32, B64};
use crate::element::Element;
use crate::rng::{LANES, Lanes};

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
