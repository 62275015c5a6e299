//! Fan formulas per op and slot (the table in ARCHITECTURE.md, "Fan conventions").
//!
//! Every function takes the tensor's shape as its consumer sees it and returns the fans or a
//! reason why the shape does not fit the op (which leaves the tensor untouched). Products
//! saturate instead of overflowing: a shape that large is reported, not trusted.

use super::{FanCompat, Fans};

/// Non-negative dimension as u64 (callers reject negative dims beforehand).
fn dim(d: i64) -> u64 {
    u64::try_from(d).unwrap_or(0)
}

/// Product of the kernel dims (the receptive field), 1 for none.
fn receptive_field(kernel: &[i64]) -> u64 {
    kernel.iter().map(|&d| dim(d)).fold(1, u64::saturating_mul)
}

fn group_count(group: i64) -> Result<u64, String> {
    u64::try_from(group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| format!("invalid group {group}"))
}

/// Conv W (M, C/g, k…). True: in = C/g·∏k, out = M/g·∏k. PyTorch: out = M·∏k (PyTorch ignores
/// groups on the output side, pytorch#23854).
pub(crate) fn conv(dims: &[i64], group: i64, compat: FanCompat) -> Result<Fans, String> {
    if dims.len() < 3 {
        return Err(format!("Conv weight of rank {} (expected ≥ 3)", dims.len()));
    }
    let g = group_count(group)?;
    let m = dim(dims[0]);
    if !m.is_multiple_of(g) {
        return Err(format!(
            "Conv group {g} does not divide {m} output channels"
        ));
    }
    let rf = receptive_field(&dims[2..]);
    let fan_in = dim(dims[1]).saturating_mul(rf);
    let fan_out = match compat {
        FanCompat::True => (m / g).saturating_mul(rf),
        FanCompat::PyTorch => m.saturating_mul(rf),
    };
    Ok(Fans { fan_in, fan_out })
}

/// ConvTranspose W (C, M/g, k…). True: in = C/g·∏k, out = M/g·∏k (the true-connectivity convention:
/// kernel taps per channel group; with stride s an output position actually sums about ∏k/∏s
/// taps). PyTorch reads the weight as if it were a Conv weight: fan_in = `shape[1]·∏k`,
/// fan_out = `shape[0]·∏k` (pytorch#7865).
pub(crate) fn conv_transpose(dims: &[i64], group: i64, compat: FanCompat) -> Result<Fans, String> {
    if dims.len() < 3 {
        return Err(format!(
            "ConvTranspose weight of rank {} (expected ≥ 3)",
            dims.len()
        ));
    }
    let g = group_count(group)?;
    let c = dim(dims[0]);
    if !c.is_multiple_of(g) {
        return Err(format!(
            "ConvTranspose group {g} does not divide {c} input channels"
        ));
    }
    let rf = receptive_field(&dims[2..]);
    let per_group_out = dim(dims[1]).saturating_mul(rf);
    Ok(match compat {
        FanCompat::True => Fans {
            fan_in: (c / g).saturating_mul(rf),
            fan_out: per_group_out,
        },
        FanCompat::PyTorch => Fans {
            fan_in: per_group_out,
            fan_out: c.saturating_mul(rf),
        },
    })
}

/// Gemm: `Y = op(A)·op(B)`. B is (K, N), or (N, K) with transB; A is (M, K), or (K, M) with
/// transA. As B: in = K, out = N. As A (the weight on the left): in = K, out = M. The same in
/// both modes: PyTorch's Linear weight (out, in) gives the same numbers.
pub(crate) fn gemm(dims: &[i64], slot: usize, transposed: bool) -> Result<Fans, String> {
    if dims.len() != 2 {
        return Err(format!("Gemm operand of rank {} (expected 2)", dims.len()));
    }
    let (rows, cols) = (dim(dims[0]), dim(dims[1]));
    // B (slot 1) is (K, N), or (N, K) when transposed; A (slot 0) is (M, K), or (K, M). K comes
    // first exactly when "is B" and "is transposed" differ.
    let k_first = (slot == 1) != transposed;
    let (fan_in, fan_out) = if k_first { (rows, cols) } else { (cols, rows) };
    Ok(Fans { fan_in, fan_out })
}

/// MatMul (numpy semantics): B (…, K, N): in = K, out = N; A (…, M, K): in = K, out = M. Leading
/// batch axes hold independent matrices and do not count. Same in both modes.
pub(crate) fn matmul(dims: &[i64], slot: usize) -> Result<Fans, String> {
    let r = dims.len();
    if r < 2 {
        return Err(format!(
            "MatMul operand of rank {r}: a vector, not a weight matrix"
        ));
    }
    let (a, b) = (dim(dims[r - 2]), dim(dims[r - 1]));
    Ok(if slot == 1 {
        Fans {
            fan_in: a,
            fan_out: b,
        }
    } else {
        Fans {
            fan_in: b,
            fan_out: a,
        }
    })
}

/// Embedding table (V, D). True: each lookup reads one row, so in = 1, out = D. PyTorch's
/// `_calculate_fan_in_and_fan_out` on the (V, D) weight gives in = D, out = V.
pub(crate) fn embedding(dims: &[i64], compat: FanCompat) -> Fans {
    let (v, d) = (dim(dims[0]), dim(dims[1]));
    match compat {
        FanCompat::True => Fans {
            fan_in: 1,
            fan_out: d,
        },
        FanCompat::PyTorch => Fans {
            fan_in: d,
            fan_out: v,
        },
    }
}

/// LSTM/GRU/RNN W or R: `per_gate` holds the true fans of one gate block (in = input size or
/// H, out = H). PyTorch mode reports what `_calculate_fan_in_and_fan_out` gives for the
/// per-direction parameter (G·H, in): fan_out = G·H.
pub(crate) fn recurrent(per_gate: Fans, gates: u64, compat: FanCompat) -> Fans {
    match compat {
        FanCompat::True => per_gate,
        FanCompat::PyTorch => Fans {
            fan_in: per_gate.fan_in,
            fan_out: per_gate.fan_out.saturating_mul(gates),
        },
    }
}
