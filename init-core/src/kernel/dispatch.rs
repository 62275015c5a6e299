//! Instruction-set dispatch.

use super::block::run;
use super::params::KernelParams;
use super::target::Portable;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::x86;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use crate::element::DType;
use crate::element::Element;
use crate::rng::Lanes;

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
pub(crate) fn run_on<T: Element>(isa: Isa, params: &KernelParams, out: &mut [T], lanes: Lanes) {
    match isa {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Isa::Avx512 => {
            debug_assert!(isa.is_available());
            if T::DTYPE == DType::BF16 && std::arch::is_x86_feature_detected!("avx512bf16") {
                // SAFETY: AVX-512 F/DQ/VL/BW (callers only pass an available instruction set)
                // and AVX512-BF16 (just detected).
                return unsafe { run_avx512_bf16(params, out, lanes) };
            }
            // SAFETY: callers only pass an instruction set whose `is_available()` is true.
            unsafe { run_avx512(params, out, lanes) }
        }
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Isa::Avx2 => {
            debug_assert!(isa.is_available());
            // SAFETY: as above.
            unsafe { run_avx2(params, out, lanes) }
        }
        _ => run::<T, Portable>(params, out, lanes),
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,f16c")]
fn run_avx2<T: Element>(params: &KernelParams, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx2>(params, out, lanes);
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn run_avx512<T: Element>(params: &KernelParams, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx512<false>>(params, out, lanes);
}

/// The AVX-512 kernels for bf16 on CPUs with AVX512-BF16 (`vcvtne2ps2bf16` rounds 32 values
/// in one instruction; blocks holding an f32 subnormal, which it flushes to zero, take the
/// integer rounding instead).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx512bf16")]
fn run_avx512_bf16<T: Element>(params: &KernelParams, out: &mut [T], lanes: Lanes) {
    run::<T, x86::Avx512<true>>(params, out, lanes);
}
