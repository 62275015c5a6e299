//! Elementwise arithmetic: Add as the bias of a layer without one; the walk passes a bias, a
//! residual or a static scale.

use super::{OpSpec, Outputs, Slots, Step, Walk, WalkSite};
use crate::analysis::Activation;
use crate::analysis::Role;
use crate::analysis::graph::numel;
use crate::analysis::roles::{Candidate, SlotCtx};

/// A bias or a residual: any operand continues.
const ANY: Walk = Walk::Transparent {
    slots: Slots::Any,
    outputs: Outputs::First,
};

/// The elementwise specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Add"], ANY).params(add_bias),
    OpSpec::new(&["Sub", "Sum"], ANY),
    OpSpec::new(&["Mul"], Walk::Rule(static_scale)).params(super::norm::mul_scale),
    OpSpec::new(&["Div"], Walk::Rule(static_scale)),
];

/// Mul or Div by a static value is a scale and continues the walk; multiplying by another
/// activation is gating (the gate branch carries its own nonlinearity), and dividing by the
/// walked value is no scale: both end the branch as linear.
fn static_scale(site: &WalkSite<'_, '_, '_>) -> Step {
    let other = site.index.input(site.node, 1 - site.slot.min(1));
    let scale = other.is_some_and(|o| site.scalars.is_static(o));
    if scale && (site.op == "Mul" || site.slot == 0) {
        return Step::Continue(Outputs::First);
    }
    let why = if site.op == "Div" && site.slot == 1 {
        "divides by the walked value"
    } else {
        "combined with another activation"
    };
    Step::End(Activation::Linear, format!("{} ({why})", site.label))
}

/// Add: the initializer operand is a bias when the other operand comes straight from a layer
/// that has no bias of its own (MatMul, Gemm without C, Conv/ConvTranspose without B) and it has
/// exactly one value per output feature of that layer. A MatMul of two activations (attention
/// scores) has no weight, so a tensor added there (a mask) is not a bias.
///
/// An operand added to normalized data (`γ·norm(x) + β`) is the norm's shift, and one added to
/// the constant 1 before scaling normalized data (`norm(x)·(1 + w)`) is a scale offset: see
/// [`super::norm::add_shift_or_offset`].
pub(crate) fn add_bias(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if let Some(c) = super::norm::add_shift_or_offset(ctx) {
        return c;
    }
    let index = ctx.index;
    let other = usize::from(ctx.slot == 0);
    let producer = index.input(ctx.node, other).and_then(|v| index.producer(v));
    let Some((layer, _)) = producer else {
        return Candidate::none("Add operand not after a MatMul/Gemm/Conv: not a bias by rule");
    };
    let lop = index.op(layer);
    let weight = |slot: usize| {
        index
            .input(layer, slot)
            .and_then(|w| index.initializer_behind(w))
            .map(|(_, d)| d)
    };
    let has_input = |slot: usize| index.input(layer, slot).is_some();
    let dim = |d: &[i64], i: usize| d.get(i).and_then(|&x| u64::try_from(x).ok());
    let n = index.node(layer).node;
    let out_features: Option<u64> = match lop {
        "MatMul" => match (weight(1), weight(0)) {
            (Some(b), _) if !b.is_empty() => dim(&b, b.len() - 1),
            (_, Some(a)) if a.len() >= 2 => dim(&a, a.len() - 2),
            _ => None,
        },
        "Gemm" if !has_input(2) => match (weight(1), weight(0)) {
            (Some(b), _) => dim(&b, usize::from(n.attr_i("transB", 0) == 0)),
            (_, Some(a)) => dim(&a, usize::from(n.attr_i("transA", 0) != 0)),
            _ => None,
        },
        "Conv" if !has_input(2) => weight(1).and_then(|w| dim(&w, 0)),
        "ConvTranspose" if !has_input(2) => weight(1)
            .and_then(|w| dim(&w, 1))
            .and_then(|m| u64::try_from(n.attr_i("group", 1)).ok().map(|g| m * g)),
        "Gemm" | "Conv" | "ConvTranspose" => {
            return Candidate::none(format!(
                "Add operand after {} '{}', which has a bias input of its own",
                lop,
                index.node_name(layer)
            ));
        }
        _ if numel(ctx.dims) > 1 => {
            return Candidate::none(format!(
                "a constant added into an activation (after {lop}): a folded exporter constant \
                 such as position or token-type rows already looked up, a mask or an \
                 encoding; not a bias by rule"
            ));
        }
        _ => {
            return Candidate::none(format!(
                "Add operand after {lop}, not after a MatMul/Gemm/Conv: not a bias by rule"
            ));
        }
    };
    let Some(features) = out_features else {
        return Candidate::none(format!(
            "Add operand after {lop} '{}' whose operands are not weights (e.g. an attention mask)",
            index.node_name(layer)
        ));
    };
    let count = numel(ctx.dims);
    if count != features {
        return Candidate::none(format!(
            "Add operand of {count} elements after {lop} '{}' with {features} output features: \
             not a per-feature bias",
            index.node_name(layer)
        ));
    }
    Candidate::role(Role::Bias, ctx.out0())
}
