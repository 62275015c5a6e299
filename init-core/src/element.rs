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
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
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
        bf16::from_f32(x)
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
