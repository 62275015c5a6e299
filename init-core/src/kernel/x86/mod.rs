//! The x86-64 implementations of [`Target`]: F16C / AVX-512 `vcvtps2ph` for the f16
//! conversion (round to nearest even, the same result as the portable code), and AVX-512
//! `vcompressps`/`vcompresspd` for packing. Only `run_avx2`/`run_avx512` instantiate these,
//! and only after the CPU features were detected.

mod avx2;
mod avx512;

pub(crate) use avx2::Avx2;
pub(crate) use avx512::Avx512;
#[cfg(test)]
pub(crate) use avx512::{bf16x32_avx512, bf16x32_hw};
