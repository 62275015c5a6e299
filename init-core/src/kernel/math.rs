//! Fixed-polynomial elementary functions.

use super::block::{MANT52, ONE_F64};

#[inline(always)]
pub(super) fn sqrt_f32(x: f32) -> f32 {
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
pub(super) fn sqrt_f64(x: f64) -> f64 {
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
