//! Quantization: QuantizeLinear/DequantizeLinear (the walk passes them: they round, they do not
//! change which nonlinearity comes next) and the quantized layers. Quantized weights are never
//! re-initialized: a fill writes floats, and the integer payload with its own scale and zero
//! point is left as it is, so every slot of these ops is untouched with the reason.

use super::{OpSpec, Outputs, Slots, Walk};
use crate::analysis::roles::{Candidate, SlotCtx};

/// Q/DQ pass the walk along their data input.
const DATA: Walk = Walk::Transparent {
    slots: Slots::Data,
    outputs: Outputs::First,
};

/// The quantization specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(
        &[
            "QuantizeLinear",
            "DequantizeLinear",
            "DynamicQuantizeLinear",
        ],
        DATA,
    )
    .params(quantized),
    OpSpec::new(
        &[
            "ConvInteger",
            "QLinearConv",
            "MatMulInteger",
            "QLinearMatMul",
            "MatMulNBits",
            "DynamicQuantizeMatMul",
            "MatMulIntegerToFloat",
        ],
        Walk::WeightLayer,
    )
    .params(quantized),
];

/// Every slot of a quantization op: the quantized weight itself, or its scale and zero point,
/// or an activation's quantization parameters.
pub(crate) fn quantized(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let of_activation = matches!(ctx.op, "QuantizeLinear" | "DequantizeLinear")
        && ctx
            .index
            .input(ctx.node, 0)
            .is_none_or(|x| ctx.index.initializer_behind(x).is_none());
    if of_activation {
        return Candidate::none(format!(
            "input {} of {} quantizes an activation (a scale or zero point fixed by \
             calibration): not a parameter",
            ctx.slot, ctx.op
        ));
    }
    let what = match (ctx.op, ctx.slot) {
        ("DequantizeLinear", 0) => "the quantized values",
        ("DequantizeLinear" | "QuantizeLinear", 1) => "a quantization scale",
        ("DequantizeLinear" | "QuantizeLinear", 2) => "a quantization zero point",
        ("QuantizeLinear", 0) => "a float tensor quantized at run time",
        _ => "an operand of a quantized layer",
    };
    Candidate::none(format!(
        "quantized weight: input {} of {} is {what}; quantized tensors are not re-initialized",
        ctx.slot, ctx.op
    ))
}
