//! The fill kernels, the fixed-polynomial transcendental functions they use, and run-time
//! instruction-set dispatch.
//!
//! Every kernel is one `#[inline(always)]` generic function ([`block::run`]); the dispatch wrappers
//! (`run_avx2`, `run_avx512`, `run_avx512_bf16`) only compile that same source with more
//! instruction sets enabled. The arithmetic is plain IEEE-754 binary32/binary64 (`+ − × ÷ √`,
//! correctly rounded integer → float conversions, comparisons and selects); Rust never contracts
//! `a·b + c` into a fused multiply-add, and no kernel calls a platform math library, so every
//! instruction set — and every platform whose floats are IEEE binary32/64 with round-to-nearest,
//! i.e. every Rust target except x87-only ones such as i586 — computes the same bits. What the
//! [`target::Target`] implementations do differently is exact by construction: the Xoshiro256++
//! integer steps, the f32 → f16/bf16 rounding (a correctly rounded conversion however it is
//! computed), and the packing of accepted values. The value-stability tests compare the dispatched
//! kernels against the portable build bit for bit.

use crate::rng::LANES;

/// f32 values per kernel block: two steps of the eight lanes.
const B32: usize = 4 * LANES;
/// f64 values per kernel block: two steps of the eight lanes.
const B64: usize = 2 * LANES;

mod block;
mod dispatch;
mod math;
mod params;
mod tail;
mod target;
#[cfg(test)]
mod tests;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

pub(crate) use dispatch::run_on;
pub use dispatch::{Isa, active_isa, force_portable};
pub(crate) use params::KernelParams;
pub(crate) use tail::{big_phi, normal_mass, phi};
