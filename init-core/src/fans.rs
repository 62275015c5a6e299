//! fan_in and fan_out from a tensor's shape and layout.
//!
//! | layout | shape | fan_in | fan_out |
//! |---|---|---|---|
//! | [`Layout::OutIn`] (PyTorch, ONNX Conv/Gemm transB=1) | [out, in/g, k…] | in/g·∏k | out/g·∏k |
//! | [`Layout::InOut`] (Keras, JAX, ONNX MatMul) | [k…, in/g, out] | in/g·∏k | out/g·∏k |
//! | transposed conv, OutIn (PyTorch/ONNX ConvTranspose) | [in, out/g, k…] | in/g·∏k | out/g·∏k |
//! | transposed conv, InOut (Keras Conv*Transpose) | [k…, out/g, in] | in/g·∏k | out/g·∏k |
//!
//! These are the *true* fans: the number of inputs feeding each output and of outputs each input
//! feeds. [`Convention::Framework`] reproduces what PyTorch (`_calculate_fan_in_and_fan_out`) and
//! Keras (`compute_fans`) compute instead: fan_in = `shape[1]`·∏k, fan_out = `shape[0]`·∏k for
//! OutIn and `shape[-2]`·∏k, `shape[-1]`·∏k for InOut, ignoring groups (PyTorch issue #23854) and
//! swapping in and out for transposed convolutions (PyTorch #7865, TensorFlow #31192). Below
//! rank 2, PyTorch raises and so does OutIn; Keras returns (n, n) for a vector `[n]` and (1, 1) for
//! a scalar, and so does InOut with [`Convention::Framework`]. True fans need rank ≥ 2.
//!
//! ```
//! use init_core::{Convention, FanRule, Fans};
//! // PyTorch Conv2d(4, 4, 3, groups=4): weight [4, 1, 3, 3].
//! let rule = FanRule { groups: 4, ..FanRule::default() };
//! assert_eq!(Fans::of(&[4, 1, 3, 3], rule).unwrap(), Fans { fan_in: 9, fan_out: 9 });
//! let torch = FanRule { convention: Convention::Framework, ..rule };
//! assert_eq!(Fans::of(&[4, 1, 3, 3], torch).unwrap(), Fans { fan_in: 9, fan_out: 36 });
//! ```

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

impl core::fmt::Display for Fans {
    /// `fan_in=K fan_out=N`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "fan_in={} fan_out={}", self.fan_in, self.fan_out)
    }
}

/// Which axes hold the output and input features.
///
/// The weight layouts of the frameworks a Rust model is written for (every framework stores an
/// embedding table as `[V, D]`; see [`Fans::embedding`]). The `candle` and `burn` features'
/// adapters (`init_core::candle`, `init_core::burn`) apply these: burn's Linear takes
/// `init_core::burn::LINEAR` (InOut), everything else the default OutIn rule with its groups:
///
/// | framework | Linear | Conv | ConvTranspose (with `transposed`) |
/// |---|---|---|---|
/// | PyTorch, tch-rs | `[out, in]` OutIn | `[out, in/g, k…]` OutIn | `[in, out/g, k…]` OutIn |
/// | candle (`candle-nn`) | `[out, in]` OutIn | `[out, in/g, k…]` OutIn | `[in, out, k…]` OutIn |
/// | burn (`burn-nn`) | **`[in, out]` InOut** (`LinearLayout::Row`, the default) | `[out, in/g, k…]` OutIn | `[in, out/g, k…]` OutIn |
/// | Keras | `[in, out]` InOut | `[k…, in/g, out]` InOut | `[k…, out, in]` InOut |
/// | JAX/Flax | `[in, out]` InOut | `[k…, in/g, out]` InOut | `[k…, in, out]` InOut, not transposed (`transpose_kernel = False`) |
/// | ONNX | Gemm transB = 1 OutIn; MatMul, Gemm transB = 0 InOut | `[out, in/g, k…]` OutIn | `[in, out/g, k…]` OutIn |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// `[out, in, k…]`: PyTorch, candle, burn's Conv, ONNX Conv and Gemm with transB = 1.
    #[default]
    OutIn,
    /// `[k…, in, out]`: Keras, JAX/Flax, burn's Linear, ONNX MatMul and Gemm with transB = 0.
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

    /// Fans of a dense or conv weight of `shape` (rank ≥ 2; see the module docs for Keras's
    /// rank 0 and 1) under `rule`.
    pub fn of(shape: &[usize], rule: FanRule) -> Result<Fans, InitError> {
        if rule.groups == 0 {
            return Err(InitError::BadShape("groups must be >= 1, got 0".into()));
        }
        if shape.len() < 2
            && rule.convention == Convention::Framework
            && rule.layout == Layout::InOut
        {
            // Keras compute_fans: a scalar is (1, 1), a vector [n] is (n, n).
            let n = shape.first().map_or(1, |&n| n as u64);
            return Ok(Fans {
                fan_in: n,
                fan_out: n,
            });
        }
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
        let mul = |x: u64, y: u64| {
            x.checked_mul(y)
                .ok_or_else(|| InitError::BadShape(format!("fan {x}·{y} overflows")))
        };
        let (fan_in, fan_out) = match rule.convention {
            Convention::Framework => (mul(a1, rf)?, mul(a0, rf)?),
            Convention::True => {
                // a0 is the axis holding all channels of its side; a1 holds per-group channels.
                if !a0.is_multiple_of(g) {
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

    /// Fans of an embedding table `[V, D]` (rows are looked up, one per token; the same in
    /// every framework). [`Convention::True`]: each output reads one row, so fan_in = 1 and
    /// fan_out = D (onnx-reinit's fans for a `Gather` table). [`Convention::Framework`]: what
    /// the framework's formula gives for the weight's shape, PyTorch's `(D, V)` for
    /// [`Layout::OutIn`], Keras's `(V, D)` for [`Layout::InOut`].
    ///
    /// ```
    /// use init_core::{Convention, Fans, Layout};
    /// // torch nn.Embedding(100, 32): weight [100, 32].
    /// assert_eq!(Fans::embedding(&[100, 32], Layout::OutIn, Convention::True).unwrap(),
    ///            Fans { fan_in: 1, fan_out: 32 });
    /// assert_eq!(Fans::embedding(&[100, 32], Layout::OutIn, Convention::Framework).unwrap(),
    ///            Fans { fan_in: 32, fan_out: 100 });
    /// ```
    pub fn embedding(
        shape: &[usize],
        layout: Layout,
        convention: Convention,
    ) -> Result<Fans, InitError> {
        let &[_, d] = shape else {
            return Err(InitError::BadShape(format!(
                "an embedding table is [V, D] (rank 2), got {shape:?}"
            )));
        };
        match convention {
            Convention::True => Fans::new(1, d as u64),
            Convention::Framework => Fans::of(
                shape,
                FanRule {
                    layout,
                    convention,
                    ..FanRule::default()
                },
            ),
        }
    }

    /// Fans from explicit axes, as JAX's `_compute_fans(shape, in_axis, out_axis, batch_axis)`:
    /// with rf = numel / (∏in·∏out·∏batch) (the receptive field: every axis not named),
    /// fan_in = ∏in·rf = numel / (∏out·∏batch) and fan_out = ∏out·rf = numel / (∏in·∏batch).
    /// Negative axes count from the end. An axis may appear in both `in_axes` and `out_axes`
    /// (Flax's `Embed` initializer does), but not twice in one list. The fans must be whole
    /// numbers. Keras's `input_axes`/`output_axes` give the same fans when the named axes cover
    /// the whole shape; otherwise Keras leaves the receptive field out (fan_in = ∏in).
    ///
    /// ```
    /// use init_core::Fans;
    /// // A Keras/JAX conv kernel [3, 3, in = 8, out = 16].
    /// assert_eq!(Fans::of_axes(&[3, 3, 8, 16], &[-2], &[-1], &[]).unwrap(),
    ///            Fans { fan_in: 72, fan_out: 144 });
    /// ```
    pub fn of_axes(
        shape: &[usize],
        in_axes: &[isize],
        out_axes: &[isize],
        batch_axes: &[isize],
    ) -> Result<Fans, InitError> {
        let r = shape.len() as isize;
        let prod = |axes: &[isize]| -> Result<u64, InitError> {
            let mut seen = 0u64;
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
                    .ok_or_else(|| InitError::BadShape("axes product overflows".into()))?;
            }
            Ok(p)
        };
        let fi = prod(in_axes)?;
        let fo = prod(out_axes)?;
        let fb = prod(batch_axes)?;
        let numel = checked_product(shape)? as u64;
        let part = |a: u64, b: u64| -> Result<u64, InitError> {
            let d = a
                .checked_mul(b)
                .ok_or_else(|| InitError::BadShape("axes product overflows".into()))?;
            match numel.checked_div(d) {
                Some(q) if q * d == numel => Ok(q),
                // A zero-sized axis among the named ones: no connections.
                None => Ok(0),
                Some(_) => Err(InitError::BadShape(format!(
                    "shape {shape:?}: the fans for these axes are not whole numbers"
                ))),
            }
        };
        Ok(Fans {
            fan_in: part(fo, fb)?,
            fan_out: part(fi, fb)?,
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
