//! Embeddings: Gather of a (V, D) table by run-time indices, or by constant indices when the
//! rows are added into an activation; as a data op, Gather passes the walk.

use super::{OpSpec, Outputs, Slots, Walk};
use crate::analysis::graph::{GraphIndex, Scalars, ValueId};
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

/// Gather: data (V, D) looked up along axis 0 is an embedding table when the indices are
/// read at run time, or — with constant indices, as static-shape exports fold `position_ids` and
/// `token_type_ids` — when the looked-up rows are added into an activation (the hidden stream,
/// or attention scores as a relative-position bias): see [`constant_lookup_use`]. Rows that are
/// multiplied into activations (rotary cos/sin caches) or used otherwise stay untouched.
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
    let embedding = || {
        Candidate::role(Role::Embedding, ctx.out0())
            .with_fans(fans::embedding(ctx.dims, ctx.compat))
    };
    match ctx.index.input(ctx.node, 1) {
        Some(indices) if !ctx.scalars.is_static(indices) => embedding(),
        Some(_) => match ctx
            .out0()
            .map(|out| constant_lookup_use(ctx.index, ctx.scalars, out))
        {
            Some(Ok(_))
                if ctx
                    .index
                    .input(ctx.node, 0)
                    .and_then(|data| ctx.index.initializer_behind(data))
                    .and_then(|(t, _)| ctx.scalars.initializer_values(t, MAX_TABLE_READ))
                    .is_some_and(|v| sinusoidal(&v, ctx.dims)) =>
            {
                Candidate::none(
                    "Gather with constant indices of a sinusoidal encoding (row 0 is sin 0 = 0 \
                     and cos 0 = 1, every value in [−1, 1]): a fixed table, not a parameter",
                )
            }
            Some(Ok(how)) => {
                let mut c = embedding();
                c.note = Some(format!(
                    "embedding read with constant indices (folded position or token-type ids): \
                     {how}"
                ));
                c
            }
            Some(Err(why)) => Candidate::none(format!(
                "Gather with constant indices: a fixed lookup table, not an embedding ({why})"
            )),
            None => Candidate::none("Gather without an output"),
        },
        None => Candidate::none("Gather without indices"),
    }
}

/// Ops that move a looked-up row without changing what it is.
const VIEWS: &[&str] = &[
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Transpose",
    "Cast",
    "Identity",
    "Expand",
    "Tile",
];

/// How the rows a constant-index Gather reads are used: `Ok(how)` when they are added into an
/// activation (a learned table: position, token-type embeddings, relative attention bias),
/// `Err(why)` otherwise (multiplied into activations like a rotary cos/sin cache, or never
/// meeting an activation). Views are looked through, and so are sums with other constants
/// (two constant lookups added before they meet the hidden stream).
fn constant_lookup_use(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    out: ValueId,
) -> Result<String, String> {
    let mut frontier = vec![out];
    let mut seen = 0;
    let mut multiplied: Option<String> = None;
    while let Some(v) = frontier.pop() {
        seen += 1;
        if seen > 32 {
            break;
        }
        for &(n, slot) in &index.value(v).uses {
            let op = index.op(n);
            if VIEWS.contains(&op) && slot == 0 {
                frontier.extend(index.output(n, 0));
                continue;
            }
            let others: Vec<ValueId> = index
                .node(n)
                .inputs
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != slot)
                .filter_map(|(_, x)| *x)
                .collect();
            let dynamic = others.iter().any(|&o| !scalars.is_static(o));
            match op {
                "Add" | "Sum" if dynamic => {
                    return Ok(format!(
                        "its rows are added into an activation at {}",
                        index.node_label(n)
                    ));
                }
                "Add" | "Sum" => frontier.extend(index.output(n, 0)),
                "Mul" | "Div" if dynamic => {
                    multiplied.get_or_insert_with(|| {
                        format!(
                            "its rows multiply an activation at {} (a rotary cos/sin cache or a \
                             mask)",
                            index.node_label(n)
                        )
                    });
                }
                _ => {}
            }
        }
    }
    Err(multiplied.unwrap_or_else(|| "its rows are not added into an activation".to_owned()))
}

/// Largest table whose values are read to tell a fixed sinusoidal encoding from a learned one
/// (8 MiB as f64; a constant-index lookup table is read once).
const MAX_TABLE_READ: usize = 1 << 20;

/// Whether a (V, D) table is a sinusoidal position encoding: its row 0 (position 0) holds only
/// sin 0 = 0 and cos 0 = 1, both present, and every value lies in [−1, 1]. A learned table's
/// row is never exactly that.
fn sinusoidal(values: &[f64], dims: &[i64]) -> bool {
    let Some(d) = dims.get(1).and_then(|&d| usize::try_from(d).ok()) else {
        return false;
    };
    if d == 0 || values.len() < d {
        return false;
    }
    let row0 = &values[..d];
    row0.iter().all(|&x| x == 0.0 || x == 1.0)
        && row0.contains(&0.0)
        && row0.contains(&1.0)
        && values.iter().all(|x| x.abs() <= 1.0)
}
