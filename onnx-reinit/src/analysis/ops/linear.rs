//! Linear layers: Gemm and MatMul (weight and bias slots, fans, packed projections), and the
//! other products the walk stops at (Einsum weights; FusedMatMul).

use super::{OpSpec, Walk, by_name};
use crate::analysis::graph::{GraphIndex, NodeId, Scalars, ValueId};
use crate::analysis::roles::{Candidate, SlotCtx, not_a_parameter};
use crate::analysis::{FanCompat, Fans, Role, fans};

/// The linear-layer and product specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Gemm"], Walk::WeightLayer).params(gemm),
    OpSpec::new(&["MatMul"], Walk::WeightLayer).params(matmul),
    OpSpec::new(&["Einsum"], Walk::WeightLayer).params(einsum),
    // A contrib fusion whose operands are not re-initialized.
    OpSpec::new(&["FusedMatMul"], Walk::WeightLayer),
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

/// Einsum of two operands, one of them the initializer `W`: the axes of `W` that the other
/// operand shares and the output drops are contracted (fan_in = their product), the axes of `W`
/// that only the output has are its output features (fan_out = their product); axes shared by
/// all three are batch axes (per-head weights) and count in neither. E.g. `bd,hde->bhe`:
/// fan_in = d, fan_out = h·e. Other forms (one operand, three or more, an ellipsis, a repeated
/// letter, a static other operand) are not a projection. Both fan conventions give these fans:
/// a bare `nn.Parameter` used in `torch.einsum` has no layer whose PyTorch formula to reproduce.
pub(crate) fn einsum(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match einsum_fans(ctx) {
        Ok(f) => Candidate::role(Role::Weight, ctx.out0()).with_fans(f),
        Err(why) => Candidate::none(format!("input {} of Einsum: {why}", ctx.slot)),
    }
}

fn einsum_fans(ctx: &SlotCtx<'_, '_, '_>) -> Result<Fans, String> {
    let eq = ctx
        .n
        .attr("equation")
        .and_then(|a| a.s.as_deref())
        .and_then(|s| std::str::from_utf8(s).ok())
        .ok_or("no equation")?;
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, out) = eq
        .split_once("->")
        .ok_or("an implicit-output equation: not a projection by rule")?;
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != 2 || ctx.slot > 1 || ctx.n.input.len() != 2 {
        return Err(format!(
            "{} operands: not a two-operand projection",
            terms.len()
        ));
    }
    if eq.contains('.') {
        return Err("an ellipsis equation: not a projection by rule".to_owned());
    }
    let other = ctx
        .index
        .input(ctx.node, 1 - ctx.slot)
        .ok_or("missing operand")?;
    if ctx.scalars.is_static(other) {
        return Err("both operands are constant: not a projection of an activation".to_owned());
    }
    let w = terms[ctx.slot];
    let x = terms[1 - ctx.slot];
    let unique = |t: &str| t.chars().all(|c| t.matches(c).count() == 1);
    if w.chars().count() != ctx.dims.len() || !unique(w) || !unique(x) || !unique(out) {
        return Err(format!(
            "equation '{eq}' does not fit the tensor's rank {} by rule",
            ctx.dims.len()
        ));
    }
    let (mut fan_in, mut fan_out) = (1u64, 1u64);
    for (c, &d) in w.chars().zip(ctx.dims) {
        let d = u64::try_from(d).map_err(|_| "negative dimension")?;
        match (x.contains(c), out.contains(c)) {
            (true, true) => {}
            (false, true) => fan_out *= d,
            _ => fan_in *= d,
        }
    }
    Ok(Fans { fan_in, fan_out })
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

/// Largest number of nodes followed from each cut part when looking for a Concat that puts
/// the parts back together: a rotation of the rotary part takes a dozen.
const MAX_REJOIN: usize = 48;

/// A Concat that every part reaches before any weight layer: the cut was a rearrangement of
/// one output (Swin's shifted-window `torch.roll`: two Slices of the token axis and a Concat;
/// partial rotary: the head dimension cut into a rotated and a passed-through part), not a
/// packed projection whose parts feed different consumers.
fn rejoined(index: &GraphIndex<'_>, parts: &[ValueId]) -> Option<NodeId> {
    let mut common: Option<Vec<NodeId>> = None;
    for &part in parts {
        let mut concats: Vec<NodeId> = Vec::new();
        let mut seen: Vec<NodeId> = Vec::new();
        let mut frontier = vec![part];
        while let Some(v) = frontier.pop() {
            for &(n, _) in &index.value(v).uses {
                if seen.contains(&n) || seen.len() >= MAX_REJOIN {
                    continue;
                }
                seen.push(n);
                let op = index.op(n);
                if by_name(op).is_some_and(super::OpSpec::is_weight_layer) {
                    continue;
                }
                if op == "Concat" {
                    concats.push(n);
                }
                frontier.extend(index.node(n).outputs.iter().flatten().copied());
            }
        }
        common = Some(match common {
            None => concats,
            Some(c) => c.into_iter().filter(|n| concats.contains(n)).collect(),
        });
    }
    common.and_then(|c| c.first().copied())
}

/// Whether a layer output is cut into k ≥ 2 parts that go their own ways: after an optional
/// bias (an `Add` of a static value) and views (Reshape, Unsqueeze, Squeeze, Transpose,
/// Identity, Cast), either one `Split` with k outputs, or only `Gather`s at the constant
/// indices 0..k−1 of one axis (PyTorch's export of `nn.MultiheadAttention`'s packed in_proj),
/// or only k `Slice`s. Returns k and how the cut was seen.
///
/// Parts that a Concat puts back together (see [`rejoined`]) are no packed projection. Shapes
/// are not inferred, so the cut axis is not proven to be the packed output axis; the patterns
/// above only arise from cutting a packed projection in practice, and the caller also requires
/// k to divide fan_out.
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
                        let parts: Vec<ValueId> =
                            index.node(n).outputs.iter().flatten().copied().collect();
                        let k = index.node(n).outputs.len() as u64;
                        return (k >= 2 && rejoined(index, &parts).is_none())
                            .then(|| (k, format!("Split{}", through())));
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
                let parts: Vec<ValueId> = many
                    .iter()
                    .filter_map(|&(n, _)| index.output(n, 0))
                    .collect();
                if rejoined(index, &parts).is_some() {
                    return None;
                }
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
