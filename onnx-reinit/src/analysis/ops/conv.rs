//! Convolutions: Conv and ConvTranspose (weight and bias slots and fans), and the quantized and
//! fused convolution the walk stops at.

use super::{OpSpec, Walk};
use crate::analysis::Role;
use crate::analysis::fans;
use crate::analysis::roles::{Candidate, SlotCtx};

/// The convolution specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Conv", "ConvTranspose"], Walk::WeightLayer).params(conv_family),
    // A contrib fusion whose weights are not re-initialized (quantized ones: `quant`).
    OpSpec::new(&["FusedConv"], Walk::WeightLayer),
];

/// Conv and ConvTranspose: W (slot 1) is a weight, B (slot 2) a bias.
pub(crate) fn conv_family(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        1 => {
            let group = ctx.n.attr_i("group", 1);
            let f = if ctx.op == "Conv" {
                fans::conv(ctx.dims, group, ctx.compat)
            } else {
                fans::conv_transpose(ctx.dims, group, ctx.compat)
            };
            match f {
                Ok(f) => Candidate::role(Role::Weight, ctx.out0()).with_fans(f),
                Err(e) => Candidate::none(e),
            }
        }
        2 => Candidate::role(Role::Bias, ctx.out0()),
        _ => Candidate::none(format!(
            "input {} (data X) of {}: an input, not a parameter",
            ctx.slot, ctx.op
        )),
    }
}
