//! Normalizations: scale, shift and running-statistic slots.

use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{NormStatKind, Role};

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
