//! Element types a fill writes: f32, f64, and the 16-bit f16 and bf16 of the `half` crate.

use half::{bf16, f16};

/// The element types of a tensor that can be initialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the top 16 bits of a binary32).
    BF16,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The lower-case name (`f32`, `f64`, `f16`, `bf16`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A floating-point element a scheme can fill.
///
/// f32, f16 and bf16 are sampled in f32 and rounded to nearest (ties to even); f64 is sampled
/// in f64. The set is closed (sealed) because the determinism contract pins each type's stream.
///
/// The f32 → f16 and f32 → bf16 roundings are written here in plain integer and IEEE arithmetic
/// ([`f32_to_f16_bits`], [`f32_to_bf16_bits`]) rather than calling the `half` crate per element,
/// so fill loops vectorise; they give the same bits as `half::f16::from_f32` and
/// `half::bf16::from_f32` for every input (tested exhaustively in release builds).
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialOrd + core::fmt::Debug + 'static
{
    /// The run-time tag.
    const DTYPE: DType;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Round an f32 to this type (nearest, ties to even).
    fn from_f32(x: f32) -> Self;
    /// Round an f64 to this type (nearest, ties to even).
    fn from_f64(x: f64) -> Self;
    /// Widen to f64 (exact).
    fn to_f64(self) -> f64;
    /// The value of IEEE binary16 bits `h` (exact for f16, f32 and f64; rounded for bf16). The
    /// fill kernels use it to store f16 bits they converted in bulk.
    #[doc(hidden)]
    #[inline(always)]
    fn from_f16_bits(h: u16) -> Self {
        Self::from_f32(f16::from_bits(h).to_f32())
    }
    /// The value of bfloat16 bits `h` (exact for bf16, f32 and f64; rounded for f16).
    #[doc(hidden)]
    #[inline(always)]
    fn from_bf16_bits(h: u16) -> Self {
        Self::from_f32(bf16::from_bits(h).to_f32())
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f64::from(x)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    const ONE: Self = f16::ONE;
    const ZERO: Self = f16::ZERO;
    #[inline(always)]
    fn from_f16_bits(h: u16) -> Self {
        f16::from_bits(h)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_bits(f32_to_f16_bits(x))
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        f16::from_f64(x)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    const ONE: Self = bf16::ONE;
    const ZERO: Self = bf16::ZERO;
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_bits(f32_to_bf16_bits(x))
    }
    #[inline(always)]
    fn from_bf16_bits(h: u16) -> Self {
        bf16::from_bits(h)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        bf16::from_f64(x)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
}

/// IEEE binary16 bits of `x` rounded to nearest, ties to even (overflow to ±∞, subnormals
/// rounded correctly, NaN kept quiet with the top payload bits — as `half::f16::from_f32` and
/// the F16C instruction `vcvtps2ph`). Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    const F32_INF: u32 = 0x7F80_0000;
    // |x| at or above this rounds to infinity in f16: 65520 = (2 − 2⁻¹¹)·2¹⁵.
    const F16_OVERFLOW: u32 = 0x477F_F000;
    // The smallest f32 whose f16 is normal: 2⁻¹⁴.
    const F16_MIN_NORMAL: u32 = 113 << 23;
    // Adding 0.5 (exponent −1 = 126) aligns 2⁻²⁴ (the f16 subnormal step) with the f32 ulp, so
    // the IEEE addition itself rounds to nearest even.
    const DENORM_MAGIC: u32 = 126 << 23;
    let bits = x.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let abs = bits & 0x7FFF_FFFF;
    // Normal range: rebias the exponent and round the 13 dropped bits to nearest even.
    let odd = (abs >> 13) & 1;
    let normal = abs
        .wrapping_sub((127 - 15) << 23)
        .wrapping_add(0x0FFF + odd)
        >> 13;
    // Subnormal range (and zero): let the FPU round |x| + 0.5, then take the low bits.
    let sub = (f32::from_bits(abs) + f32::from_bits(DENORM_MAGIC)).to_bits() - DENORM_MAGIC;
    let nan = 0x7E00 | ((abs >> 13) & 0x03FF);
    let h = if abs > F32_INF {
        nan
    } else if abs >= F16_OVERFLOW {
        0x7C00
    } else if abs < F16_MIN_NORMAL {
        sub
    } else {
        normal
    };
    (h | sign) as u16
}

/// bfloat16 bits of `x` rounded to nearest, ties to even (NaN kept quiet), as
/// `half::bf16::from_f32`. Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
    let nan = (bits >> 16) | 0x0040;
    (if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        nan
    } else {
        rounded
    }) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 2^k-th f32 bit pattern plus the edges; the exhaustive check is in the release-mode
    /// statistical tests.
    fn patterns() -> impl Iterator<Item = u32> {
        let edges = [
            0u32,
            1,
            0x3380_0000,
            0x3380_0001,
            0x337F_FFFF,
            0x3880_0000,
            0x387F_FFFF,
            0x477F_EFFF,
            0x477F_F000,
            0x477F_E000,
            0x7F7F_FFFF,
            0x7F80_0000,
            0x7F80_0001,
            0x7FC0_0000,
            0x7FFF_FFFF,
            0x3F80_1000,
            0x3F80_3000,
            0x3F80_8000,
            0x3F81_8000,
        ];
        (0..=u32::MAX)
            .step_by(4093)
            .chain(edges)
            .flat_map(|b| [b, b | 0x8000_0000])
    }

    #[test]
    fn f16_rounding_matches_half() {
        for b in patterns() {
            let x = f32::from_bits(b);
            assert_eq!(f32_to_f16_bits(x), f16::from_f32(x).to_bits(), "{b:#010x}");
        }
    }

    #[test]
    fn bf16_rounding_matches_half() {
        for b in patterns() {
            let x = f32::from_bits(b);
            assert_eq!(
                f32_to_bf16_bits(x),
                bf16::from_f32(x).to_bits(),
                "{b:#010x}"
            );
        }
    }
}
