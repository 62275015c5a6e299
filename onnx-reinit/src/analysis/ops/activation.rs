//! Activation ops: PRelu's learned slope.

use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{Activation, Role};

/// PRelu: slot 1 is the learned slope. Its activation is PRelu itself: the slope is a
/// parameter of that nonlinearity, whatever follows the PRelu's output.
pub(crate) fn prelu(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.slot == 1 {
        Candidate {
            fixed_activation: Some(Activation::PRelu),
            ..Candidate::role(Role::PreluSlope, ctx.out0())
        }
    } else {
        Candidate::none("input 0 of PRelu: data, not a parameter")
    }
}
