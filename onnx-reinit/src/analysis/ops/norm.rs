//! Normalizations: scale, shift and running-statistic slots; the walk passes every norm, the
//! norm ops and the decomposed ones (a pattern).

use super::pattern::{Match, PatternCtx, PatternSpec, Treatment};
use super::{OpSpec, Outputs, Slots, Walk};
use crate::analysis::graph::{GraphIndex, NodeId, Scalars, ValueId, numel};
use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{NormStatKind, Role};

/// Norm ops whose output is normalized data (before or without their own affine part).
const NORM_OPS: &[&str] = &[
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "SimplifiedLayerNormalization",
    "RMSNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "MeanVarianceNormalization",
];

/// Longest chain of views (Cast, Reshape, …) looked through between a normalization and the
/// Mul/Add applying its affine parameters; exports put one or two there.
const MAX_VIEWS: usize = 8;

/// A norm does not change which nonlinearity comes next.
const DATA: Walk = Walk::Transparent {
    slots: Slots::Data,
    outputs: Outputs::First,
};

/// The normalization specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(
        &[
            "BatchNormalization",
            "InstanceNormalization",
            "LayerNormalization",
            "GroupNormalization",
            "SimplifiedLayerNormalization",
            "RMSNormalization",
        ],
        DATA,
    )
    .params(normalization),
    // Skip norms add the skip input: either data operand continues.
    OpSpec::new(
        &["SkipLayerNormalization", "SkipSimplifiedLayerNormalization"],
        Walk::Transparent {
            slots: Slots::UpTo(1),
            outputs: Outputs::First,
        },
    )
    .params(normalization),
    // Parameter-free normalizations.
    OpSpec::new(
        &["LpNormalization", "MeanVarianceNormalization", "LRN"],
        DATA,
    ),
];

/// Decomposed normalizations, tried before the composite activations: a self-gating site whose
/// function contains a reduction (`x − mean(x)`, `x / sqrt(mean(x²))`) normalizes, so the walk
/// continues after it.
pub(crate) static PATTERNS: &[PatternSpec] = &[PatternSpec {
    name: "decomposed normalization",
    anchor_ops: &["Mul", "Add", "Sub", "Div"],
    matcher: decomposed,
}];

fn decomposed(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    site.cone_has_prefix(ctx, "Reduce")
        .then(|| site.matched(ctx, Treatment::Transparent))
}

/// How `v` was normalized, if it is the output of a normalization seen through views (Cast,
/// Reshape, Identity, Squeeze, Unsqueeze): a norm op, or a decomposed one, i.e. the combining
/// node of a self-gating site `x ∘ f(x)` whose `f` contains a reduction — `x − mean(x)`,
/// `d / sqrt(mean(d²) + ε)`, `x · rsqrt(mean(x²) + ε)` — as the exporters write RMSNorm before
/// opset 23 and LayerNorm before opset 17. Returns the form for reports.
pub(crate) fn normalized(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    mut v: ValueId,
) -> Option<String> {
    for _ in 0..MAX_VIEWS {
        let (node, slot) = index.producer(v)?;
        let op = index.op(node);
        match op {
            "Cast" | "Reshape" | "Identity" | "Squeeze" | "Unsqueeze" if slot == 0 => {
                v = index.input(node, 0)?;
            }
            _ if slot == 0 && NORM_OPS.contains(&op) => return Some(op.to_owned()),
            "Mul" | "Div" | "Sub" if slot == 0 => {
                let decomposed = index.node(node).inputs.iter().flatten().any(|&x| {
                    !scalars.is_static(x)
                        && PatternCtx::new(index, scalars, x)
                            .self_gating(node)
                            .is_some_and(|site| site.cone_has_prefix_in(index, "Reduce"))
                });
                return decomposed.then(|| format!("a decomposed normalization ending at {op}"));
            }
            _ => return None,
        }
    }
    None
}

/// Whether `v` is a normalized value, or one scaled by a static factor (`γ · norm(x)`): what a
/// norm's shift β is added to.
fn normalized_or_scaled(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    mut v: ValueId,
) -> Option<String> {
    for _ in 0..MAX_VIEWS {
        if let Some(form) = normalized(index, scalars, v) {
            return Some(form);
        }
        let (node, _) = index.producer(v)?;
        match index.op(node) {
            "Cast" | "Reshape" | "Identity" | "Squeeze" | "Unsqueeze" => {
                v = index.input(node, 0)?;
            }
            "Mul" => {
                let ins: Vec<ValueId> = index.node(node).inputs.iter().flatten().copied().collect();
                let [a, b] = ins[..] else { return None };
                v = match (scalars.is_static(a), scalars.is_static(b)) {
                    (true, false) => b,
                    (false, true) => a,
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    None
}

/// The initializer operand of a Mul (either side) whose other operand is normalized data is
/// the norm's scale γ: `norm(x) · γ`, as decomposed RMSNorm/LayerNorm and GroupNorm (exported
/// as InstanceNormalization with unit scale, Reshape, Mul γ, Add β) write it.
pub(crate) fn mul_scale(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.op == "Mul"
        && ctx.slot <= 1
        && let Some(other) = ctx.index.input(ctx.node, 1 - ctx.slot)
        && let Some(form) = normalized(ctx.index, ctx.scalars, other)
    {
        let mut c = Candidate::role(Role::NormScale, ctx.out0());
        c.note = Some(format!(
            "scale of {form} (multiplied into the normalized data)"
        ));
        return c;
    }
    if ctx.op == "Mul"
        && ctx.slot <= 1
        && numel(ctx.dims) > 1
        && ctx
            .index
            .input(ctx.node, 1 - ctx.slot)
            .is_some_and(|o| !ctx.scalars.is_static(o))
    {
        return Candidate::none(
            "a constant multiplied into an activation that is not normalized data: a rotary \
             cos/sin cache, a mask or another exporter constant, not a parameter by rule",
        );
    }
    super::super::roles::not_a_parameter(ctx)
}

/// An Add operand that is a norm's shift β (`γ · norm(x) + β`) or a Gemma-style scale offset w
/// (`norm(x) · (1 + w)`, whose neutral value is 0): `None` when neither.
pub(crate) fn add_shift_or_offset(ctx: &SlotCtx<'_, '_, '_>) -> Option<Candidate> {
    let (index, scalars) = (ctx.index, ctx.scalars);
    let other = index.input(ctx.node, 1 - ctx.slot.min(1))?;
    if let Some(form) = normalized_or_scaled(index, scalars, other) {
        let mut c = Candidate::role(Role::NormShift, ctx.out0());
        c.note = Some(format!(
            "shift of {form} (added to the scaled, normalized data)"
        ));
        return Some(c);
    }
    if scalars.scalar(other) != Some(1.0) {
        return None;
    }
    let out = ctx.out0()?;
    let mut frontier = vec![out];
    for _ in 0..MAX_VIEWS {
        let v = frontier.pop()?;
        for &(n, slot) in &index.value(v).uses {
            match index.op(n) {
                "Cast" | "Reshape" | "Identity" | "Unsqueeze" | "Squeeze" if slot == 0 => {
                    frontier.extend(index.output(n, 0));
                }
                "Mul" if slot <= 1 => {
                    let data = index.input(n, 1 - slot)?;
                    if let Some(form) = normalized(index, scalars, data) {
                        let mut c = Candidate::role(Role::NormOffset, index.output(n, 0));
                        c.note = Some(format!(
                            "offset w of a scale (1 + w) of {form}: its neutral value is 0"
                        ));
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Whether the InstanceNormalization at `node` is the first half of a GroupNorm export
/// (Reshape to (N, G, −1) → InstanceNormalization with unit scale and zero shift → Reshape back →
/// Mul γ → Add β): its output, through views, is scaled by a static per-channel γ.
fn group_norm_core(index: &GraphIndex<'_>, scalars: &Scalars<'_, '_>, node: NodeId) -> bool {
    let Some(mut v) = index.output(node, 0) else {
        return false;
    };
    for _ in 0..MAX_VIEWS {
        let uses = &index.value(v).uses;
        let [(n, slot)] = uses[..] else { return false };
        match index.op(n) {
            "Reshape" | "Cast" | "Identity" if slot == 0 => match index.output(n, 0) {
                Some(o) => v = o,
                None => return false,
            },
            "Mul" if slot <= 1 => {
                return index
                    .input(n, 1 - slot)
                    .is_some_and(|g| scalars.is_static(g));
            }
            _ => return false,
        }
    }
    false
}

/// Normalization parameters by slot.
///
/// The scale and shift of an InstanceNormalization that is the core of a GroupNorm export are
/// the exporter's constants (ones and zeros, one per group), not the module's parameters: the
/// learned γ and β are the Mul and Add after it, so they are left alone with that reason.
pub(crate) fn normalization(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.op == "InstanceNormalization"
        && (ctx.slot == 1 || ctx.slot == 2)
        && group_norm_core(ctx.index, ctx.scalars, ctx.node)
    {
        return Candidate::none(format!(
            "input {} of InstanceNormalization inside a GroupNorm export: the exporter's {} \
             per group; the learned γ and β are the Mul and Add that follow",
            ctx.slot,
            if ctx.slot == 1 {
                "unit scale"
            } else {
                "zero shift"
            }
        ));
    }
    let role = match (ctx.op, ctx.slot) {
        ("BatchNormalization", 3) => Role::NormStat(NormStatKind::Mean),
        ("BatchNormalization", 4) => Role::NormStat(NormStatKind::Var),
        (
            "BatchNormalization"
            | "InstanceNormalization"
            | "LayerNormalization"
            | "GroupNormalization"
            | "SimplifiedLayerNormalization"
            | "RMSNormalization",
            1,
        )
        | ("SkipLayerNormalization" | "SkipSimplifiedLayerNormalization", 2) => Role::NormScale,
        (
            "BatchNormalization"
            | "InstanceNormalization"
            | "LayerNormalization"
            | "GroupNormalization",
            2,
        )
        | ("SkipLayerNormalization", 3) => Role::NormShift,
        ("SkipLayerNormalization", 4) | ("SkipSimplifiedLayerNormalization", 3) => Role::Bias,
        _ => {
            return Candidate::none(format!(
                "input {} of {}: the normalized data, not a parameter",
                ctx.slot, ctx.op
            ));
        }
    };
    Candidate::role(role, ctx.out0())
}
