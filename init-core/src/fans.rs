//! fan_in and fan_out from a tensor's shape and layout.
//!
//! | layout | shape | fan_in | fan_out |
//! |---|---|---|---|
//! | [`Layout::OutIn`] (PyTorch, ONNX Conv/Gemm transB=1) | [out, in/g, k…] | in/g·∏k | out/g·∏k |
//! | [`Layout::InOut`] (Keras, JAX, ONNX MatMul) | [k…, in/g, out] | in/g·∏k | out/g·∏k |
//! | transposed conv, OutIn (PyTorch/ONNX ConvTranspose) | [in, out/g, k…] | in/g·∏k | out/g·∏k |
//!
//! These are the *true* fans: the number of inputs feeding each output and of outputs each input
//! feeds. [`Convention::Framework`] reproduces what PyTorch (`_calculate_fan_in_and_fan_out`) and
//! Keras (`compute_fans`) compute instead: fan_in = shape[1]·∏k, fan_out = shape[0]·∏k for OutIn
//! and shape[-2]·∏k, shape[-1]·∏k for InOut, ignoring groups (PyTorch issue #23854) and
//! swapping in and out for transposed convolutions (PyTorch #7865, TensorFlow #31192).

use crate::error::InitError;
use alloc::format;

/// The number of inputs that feed each output unit (fan_in) and of outputs each input feeds
/// (fan_out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fans {
    /// Inputs per output unit.
    pub fan_in: u64,
    /// Outputs per input unit.
    pub fan_out: u64,
}

/// Which axes hold the output and input features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// `[out, in, k…]`: PyTorch, candle, ONNX Conv and Gemm with transB = 1.
    #[default]
    OutIn,
    /// `[k…, in, out]`: Keras, JAX/Flax, ONNX MatMul and Gemm with transB = 0.
    InOut,
}

/// True connectivity, or the framework's formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Convention {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k, for any layout and for transposed convolutions.
    #[default]
    True,
    /// PyTorch's (OutIn) or Keras's (InOut) formula: groups ignored, transposed axes swapped.
    Framework,
}

/// How to read fans from a weight's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FanRule {
    /// Axis order.
    pub layout: Layout,
    /// Convolution groups (1 for dense layers).
    pub groups: u64,
    /// A transposed convolution (`[in, out/g, k…]` in OutIn; `[k…, out, in]` in InOut).
    pub transposed: bool,
    /// True fans or the framework's.
    pub convention: Convention,
}

impl Default for FanRule {
    fn default() -> Self {
        FanRule {
            layout: Layout::OutIn,
            groups: 1,
            transposed: false,
            convention: Convention::True,
        }
    }
}

impl FanRule {
    /// A dense or ungrouped conv weight in `layout`.
    pub const fn dense(layout: Layout) -> FanRule {
        FanRule {
            layout,
            groups: 1,
            transposed: false,
            convention: Convention::True,
        }
    }
}

impl Fans {
    /// Fans given directly; both must be > 0.
    pub fn new(fan_in: u64, fan_out: u64) -> Result<Fans, InitError> {
        if fan_in == 0 || fan_out == 0 {
            return Err(InitError::ZeroFan {
                scheme: "fans",
                fan_in,
                fan_out,
            });
        }
        Ok(Fans { fan_in, fan_out })
    }

    /// Fans of a dense or conv weight of `shape` (rank ≥ 2) under `rule`.
    pub fn of(shape: &[usize], rule: FanRule) -> Result<Fans, InitError> {
        if shape.len() < 2 {
            return Err(InitError::RankTooLow {
                what: "fan computation",
                min: 2,
                rank: shape.len(),
            });
        }
        let r = shape.len();
        let (a0, a1, rf) = match rule.layout {
            Layout::OutIn => (shape[0], shape[1], checked_product(&shape[2..])?),
            // InOut [k…, p, q]: read (q, p) so the transposition logic below is shared.
            Layout::InOut => (
                shape[r - 1],
                shape[r - 2],
                checked_product(&shape[..r - 2])?,
            ),
        };
        let (a0, a1, rf, g) = (a0 as u64, a1 as u64, rf as u64, rule.groups);
        if g == 0 {
            return Err(InitError::BadShape(format!("groups must be >= 1, got 0")));
        }
        let mul = |x: u64, y: u64| {
            x.checked_mul(y)
                .ok_or_else(|| InitError::BadShape(format!("fan {x}·{y} overflows")))
        };
        let (fan_in, fan_out) = match rule.convention {
            Convention::Framework => (mul(a1, rf)?, mul(a0, rf)?),
            Convention::True => {
                // a0 is the axis holding all channels of its side; a1 holds per-group channels.
                if a0 % g != 0 {
                    return Err(InitError::BadShape(format!(
                        "dimension {a0} is not divisible by groups = {g}"
                    )));
                }
                if rule.transposed {
                    // a0 = in (all), a1 = out/g.
                    (mul(a0 / g, rf)?, mul(a1, rf)?)
                } else {
                    // a0 = out (all), a1 = in/g.
                    (mul(a1, rf)?, mul(a0 / g, rf)?)
                }
            }
        };
        Ok(Fans { fan_in, fan_out })
    }

    /// Fans from explicit axes (JAX's `in_axis`/`out_axis`/`batch_axis`, Keras's
    /// `input_axes`/`output_axes`): fan_in = ∏in·rf, fan_out = ∏out·rf with
    /// rf = numel / (∏in·∏out·∏batch). Negative axes count from the end.
    pub fn of_axes(
        shape: &[usize],
        in_axes: &[isize],
        out_axes: &[isize],
        batch_axes: &[isize],
    ) -> Result<Fans, InitError> {
        let r = shape.len() as isize;
        let mut seen = 0u64;
        let mut prod = |axes: &[isize]| -> Result<u64, InitError> {
            let mut p = 1u64;
            for &a in axes {
                let i = if a < 0 { a + r } else { a };
                if i < 0 || i >= r || i >= 64 {
                    return Err(InitError::BadShape(format!(
                        "axis {a} is out of range for rank {r}"
                    )));
                }
                if seen & (1 << i) != 0 {
                    return Err(InitError::BadShape(format!("axis {a} is named twice")));
                }
                seen |= 1 << i;
                p = p
                    .checked_mul(shape[i as usize] as u64)
                    .ok_or_else(|| InitError::BadShape(format!("axes product overflows")))?;
            }
            Ok(p)
        };
        let fi = prod(in_axes)?;
        let fo = prod(out_axes)?;
        let fb = prod(batch_axes)?;
        let numel = checked_product(shape)? as u64;
        let denom = fi * fo * fb;
        let rf = if denom == 0 { 0 } else { numel / denom };
        Ok(Fans {
            fan_in: fi * rf,
            fan_out: fo * rf,
        })
    }
}

/// ∏ dims, or an error if it overflows `usize`.
pub fn checked_product(dims: &[usize]) -> Result<usize, InitError> {
    dims.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d).ok_or_else(|| {
            InitError::BadShape(format!("the product of dimensions {dims:?} overflows"))
        })
    })
}
