//! Normalizations: scale, shift and running-statistic slots; the walk passes every norm, the
//! norm ops and the decomposed ones (a pattern).

use super::pattern::{Match, PatternCtx, PatternSpec, Treatment};
use super::{OpSpec, Outputs, Slots, Walk};
use crate::analysis::graph::NodeId;
use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{NormStatKind, Role};

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

/// Normalization parameters by slot.
pub(crate) fn normalization(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
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
