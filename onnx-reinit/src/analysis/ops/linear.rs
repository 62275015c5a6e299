//! Linear layers: Gemm and MatMul (weight and bias slots, fans, packed projections), and the
//! other products the walk stops at (Einsum, quantized and fused MatMul, fused attention).

use super::{OpSpec, Walk, by_name};
use crate::analysis::graph::{GraphIndex, NodeId, Scalars, ValueId};
use crate::analysis::roles::{Candidate, SlotCtx, not_a_parameter};
use crate::analysis::{FanCompat, Fans, Role, fans};

/// The linear-layer and product specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Gemm"], Walk::WeightLayer).params(gemm),
    OpSpec::new(&["MatMul"], Walk::WeightLayer).params(matmul),
    // Weight layers or products of activations whose operands are not re-initialized.
    OpSpec::new(
        &[
            "MatMulInteger",
            "QLinearMatMul",
            "FusedMatMul",
            "Einsum",
            "Attention",
            "MultiHeadAttention",
        ],
        Walk::WeightLayer,
    ),
];

/// Gemm: B (slot 1) is the weight; A (slot 0) too when it is the initializer; C is the bias.
pub(crate) fn gemm(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        0 | 1 => {
            let trans = if ctx.slot == 1 { "transB" } else { "transA" };
            match fans::gemm(ctx.dims, ctx.slot, ctx.n.attr_i(trans, 0) != 0) {
                Ok(f) => projection_weight(ctx, f),
                Err(e) => Candidate::none(e),
            }
        }
        2 => Candidate::role(Role::Bias, ctx.out0()),
        _ => not_a_parameter(ctx),
    }
}

/// MatMul: an initializer operand is a weight, on either side, batched or not.
pub(crate) fn matmul(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        0 | 1 => match fans::matmul(ctx.dims, ctx.slot) {
            Ok(f) => projection_weight(ctx, f),
            Err(e) => Candidate::none(e),
        },
        _ => not_a_parameter(ctx),
    }
}

/// The weight of a Gemm/MatMul with fans `f`; with true connectivity, a packed projection
/// (see [`packed_parts`]) gets the fans of one part: fan_out / k.
///
/// Attention's fused QKV is one [E, 3E] matrix whose output is cut into Q, K and V, three
/// E → E maps; PyTorch initializes it as one matrix (`xavier_uniform_` on `in_proj_weight`
/// with fan_out 3E, pytorch#166378), which gives it 2/3 of the variance of separate Q, K, V
/// projections. `--compat pytorch` keeps that.
fn projection_weight(ctx: &SlotCtx<'_, '_, '_>, f: Fans) -> Candidate {
    let c = Candidate::role(Role::Weight, ctx.out0());
    if ctx.compat == FanCompat::True
        && let Some(out) = ctx.out0()
        && let Some((k, how)) = packed_parts(ctx.index, ctx.scalars, out)
        && f.fan_out.is_multiple_of(k)
    {
        let mut c = c.with_fans(Fans {
            fan_in: f.fan_in,
            fan_out: f.fan_out / k,
        });
        c.note = Some(format!(
            "packed projection: the output is cut into {k} parts ({how}), so each part's fans \
             are used: fan_out {} / {k} (--compat pytorch keeps {})",
            f.fan_out, f.fan_out
        ));
        return c;
    }
    c.with_fans(f)
}

/// Whether a layer output is cut into k ≥ 2 parts that go their own ways: after an optional
/// bias (an `Add` of a static value) and views (Reshape, Unsqueeze, Squeeze, Transpose,
/// Identity, Cast), either one `Split` with k outputs, or only `Gather`s at the constant
/// indices 0..k−1 of one axis (PyTorch's export of `nn.MultiheadAttention`'s packed in_proj),
/// or only k `Slice`s. Returns k and how the cut was seen.
///
/// Shapes are not inferred, so the cut axis is not proven to be the packed output axis; the
/// patterns above only arise from cutting a packed projection in practice, and the caller
/// also requires k to divide fan_out.
fn packed_parts(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    out: ValueId,
) -> Option<(u64, String)> {
    let mut v = out;
    let mut path: Vec<&str> = Vec::new();
    for _ in 0..8 {
        let uses: Vec<(NodeId, usize)> = index
            .value(v)
            .uses
            .iter()
            .copied()
            .filter(|&(n, _)| by_name(index.op(n)).is_none_or(super::OpSpec::reads_values))
            .collect();
        let through = || {
            if path.is_empty() {
                String::new()
            } else {
                format!(" after {}", path.join(" → "))
            }
        };
        match uses.as_slice() {
            [] => return None,
            &[(n, slot)] => {
                let op = index.op(n);
                match op {
                    "Split" if slot == 0 => {
                        let k = index.node(n).outputs.len() as u64;
                        return (k >= 2).then(|| (k, format!("Split{}", through())));
                    }
                    "Add" => {
                        let other = index.input(n, 1 - slot.min(1))?;
                        if !scalars.is_static(other) {
                            return None;
                        }
                    }
                    "Reshape" | "Unsqueeze" | "Squeeze" | "Transpose" | "Identity" | "Cast"
                        if slot == 0 => {}
                    _ => return None,
                }
                path.push(op);
                v = index.output(n, 0)?;
            }
            many => {
                let k = many.len() as u64;
                if many.iter().all(|&(n, s)| s == 0 && index.op(n) == "Slice") {
                    return Some((k, format!("{k} Slices{}", through())));
                }
                if !many.iter().all(|&(n, s)| s == 0 && index.op(n) == "Gather") {
                    return None;
                }
                let axis = index.node(many[0].0).node.attr_i("axis", 0);
                let mut seen = vec![false; many.len()];
                for &(n, _) in many {
                    if index.node(n).node.attr_i("axis", 0) != axis {
                        return None;
                    }
                    let i = scalars.scalar(index.input(n, 1)?)?;
                    if i.fract() != 0.0 || i < 0.0 || i >= many.len() as f64 {
                        return None;
                    }
                    let slot = &mut seen[i as usize];
                    if std::mem::replace(slot, true) {
                        return None;
                    }
                }
                return Some((
                    k,
                    format!("Gather of indices 0..{} on axis {axis}{}", k - 1, through()),
                ));
            }
        }
    }
    None
}
