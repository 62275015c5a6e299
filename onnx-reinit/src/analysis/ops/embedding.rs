//! Embeddings: Gather of a (V, D) table by run-time indices; as a data op, Gather passes the walk.

use super::{OpSpec, Outputs, Slots, Walk};
use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{Role, fans};

/// The embedding specs.
pub(crate) static SPECS: &[OpSpec] = &[OpSpec::new(
    &["Gather"],
    Walk::Transparent {
        slots: Slots::Data,
        outputs: Outputs::First,
    },
)
.params(gather)];

/// Gather: data (V, D) looked up along axis 0 by run-time indices is an embedding table.
/// Constant indices select fixed rows of a lookup table, which is data, not a parameter.
pub(crate) fn gather(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.slot != 0 {
        return Candidate::none("input 1 (indices) of Gather: not a parameter");
    }
    if ctx.dims.len() != 2 {
        return Candidate::none(format!(
            "Gather data of rank {}: not an embedding table (V, D)",
            ctx.dims.len()
        ));
    }
    let axis = ctx.n.attr_i("axis", 0);
    if axis != 0 && axis != -2 {
        return Candidate::none(format!(
            "Gather along axis {axis}: not a row lookup (embedding)"
        ));
    }
    match ctx.index.input(ctx.node, 1) {
        Some(indices) if !ctx.scalars.is_static(indices) => {
            Candidate::role(Role::Embedding, ctx.out0())
                .with_fans(fans::embedding(ctx.dims, ctx.compat))
        }
        Some(_) => {
            Candidate::none("Gather with constant indices: a fixed lookup table, not an embedding")
        }
        None => Candidate::none("Gather without indices"),
    }
}
