//! onnxruntime's fused transformer ops (`com.microsoft`), as its transformer optimizer writes
//! them: Attention with a packed QKV weight, MultiHeadAttention, EmbedLayerNormalization,
//! GemmFastGelu. (FastGelu/BiasGelu bias slots are in the activation family; the fused norms in
//! the norm family.)

use super::{OpSpec, Walk};
use crate::analysis::roles::{Candidate, SlotCtx, not_a_parameter};
use crate::analysis::{Activation, Fans, Role, fans};

/// The fused-op specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Attention", "MultiHeadAttention"], Walk::WeightLayer).params(attention),
    OpSpec::new(&["GemmFastGelu"], Walk::WeightLayer).params(gemm_fast_gelu),
    OpSpec::new(&["EmbedLayerNormalization"], Walk::WeightLayer).params(embed_layer_norm),
];

/// Attention(input, weights (D, Q+K+V), bias (Q+K+V), …): the packed weight of the Q, K and V
/// projections, each part its own map D → part, so fans are one part's: fan_in D, fan_out the
/// Q part (`qkv_hidden_sizes[0]`, else a third). The optimizer fuses separate q, k, v Linear
/// modules, so `--compat pytorch` gives the same. Softmax acts on the bilinear form Q·Kᵀ, not
/// element-wise on a projection: linear (see the analysis module's docs on attention).
/// MultiHeadAttention(query, key, value, bias, …): only the bias is a parameter.
pub(crate) fn attention(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let linear = |mut c: Candidate| {
        c.fixed_activation = Some(Activation::Linear);
        c
    };
    match (ctx.op, ctx.slot) {
        ("Attention", 1) if ctx.dims.len() == 2 => {
            let sizes = ctx.n.attr("qkv_hidden_sizes").map(|a| a.ints.clone());
            let total = u64::try_from(ctx.dims[1]).unwrap_or(0);
            let q = match sizes.as_deref() {
                Some([q, _, _]) => u64::try_from(*q).unwrap_or(0),
                _ => total / 3,
            };
            let fan_in = u64::try_from(ctx.dims[0]).unwrap_or(0);
            if q == 0 || fan_in == 0 || q > total {
                return Candidate::none(format!(
                    "Attention weights {:?} with qkv_hidden_sizes {sizes:?}: no Q part to take \
                     fans from",
                    ctx.dims
                ));
            }
            let mut c = linear(Candidate::role(Role::Weight, ctx.out0()))
                .with_fans(Fans { fan_in, fan_out: q });
            c.note = Some(format!(
                "packed Q, K, V weight of a fused Attention: each part's fans are used \
                 (fan_out {q} of {total})"
            ));
            c
        }
        ("Attention", 2) | ("MultiHeadAttention", 3) => {
            linear(Candidate::role(Role::Bias, ctx.out0()))
        }
        _ => Candidate::none(format!(
            "input {} of {}: an activation, mask or cache, not a parameter",
            ctx.slot, ctx.op
        )),
    }
}

/// GemmFastGelu(X, W (K, N), bias (N)): a MatMul followed by Gelu in one op.
pub(crate) fn gemm_fast_gelu(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let gelu = |mut c: Candidate| {
        c.fixed_activation = Some(Activation::Gelu);
        c
    };
    match ctx.slot {
        1 => match fans::matmul(ctx.dims, 1) {
            Ok(f) => gelu(Candidate::role(Role::Weight, ctx.out0()).with_fans(f)),
            Err(e) => Candidate::none(e),
        },
        2 => gelu(Candidate::role(Role::Bias, ctx.out0())),
        _ => not_a_parameter(ctx),
    }
}

/// EmbedLayerNormalization(input_ids, segment_ids, word, position, segment embeddings, γ, β,
/// mask, position_ids): BERT's embeddings summed and layer-normalized in one op.
pub(crate) fn embed_layer_norm(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let out = ctx.out0();
    match ctx.slot {
        2..=4 if ctx.dims.len() == 2 => {
            let mut c = Candidate::role(Role::Embedding, out)
                .with_fans(fans::embedding(ctx.dims, ctx.compat));
            c.fixed_activation = Some(Activation::Linear);
            c
        }
        5 => Candidate::role(Role::NormScale, out),
        6 => Candidate::role(Role::NormShift, out),
        _ => not_a_parameter(ctx),
    }
}
