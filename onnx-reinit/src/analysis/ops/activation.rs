//! Activation ops: the nonlinearity each applies (attributes such as LeakyRelu's alpha, Clip's
//! bounds) and PRelu's learned slope.

use super::{OpSpec, Step, Walk, WalkSite};
use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{Activation, Role};
use crate::onnx::skeleton::Node;

/// An op that applies activation `f(node, slot)`.
const fn act(ops: &'static [&'static str], f: fn(&Node, usize) -> Option<Activation>) -> OpSpec {
    OpSpec::new(ops, Walk::Activation(f))
}

pub(crate) static SPECS: &[OpSpec] = &[
    act(&["Relu", "ThresholdedRelu"], |_, _| Some(Activation::Relu)),
    act(&["LeakyRelu"], |n, _| {
        Some(Activation::LeakyRelu(n.attr_f("alpha", 0.01)))
    }),
    // Slot 1 is the slope: a parameter, not the walked data.
    act(&["PRelu"], |_, slot| {
        (slot == 0).then_some(Activation::PRelu)
    })
    .params(prelu),
    act(&["Elu"], |n, _| {
        Some(Activation::Elu(n.attr_f("alpha", 1.0)))
    }),
    act(&["Selu"], |_, _| Some(Activation::Selu)),
    act(&["Celu"], |_, _| Some(Activation::Celu)),
    act(&["Tanh"], |_, _| Some(Activation::Tanh)),
    act(&["Sigmoid"], |_, _| Some(Activation::Sigmoid)),
    act(&["HardSigmoid"], |_, _| Some(Activation::HardSigmoid)),
    act(&["HardSwish"], |_, _| Some(Activation::HardSwish)),
    act(&["Gelu", "FastGelu", "BiasGelu", "QuickGelu"], |_, _| {
        Some(Activation::Gelu)
    }),
    act(&["Swish"], |_, _| Some(Activation::Silu)),
    act(&["Softplus"], |_, _| Some(Activation::Softplus)),
    act(&["Softsign"], |_, _| Some(Activation::Softsign)),
    act(&["Mish"], |_, _| Some(Activation::Mish)),
    act(&["Softmax", "LogSoftmax"], |_, _| Some(Activation::Softmax)),
    // Rectifiers only for some constant operands.
    OpSpec::new(&["Clip"], Walk::Rule(clip)),
    OpSpec::new(&["Max"], Walk::Rule(max_with_zero)),
];

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

/// Relative closeness for constants printed with 4–8 digits by exporters.
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * b.abs().max(1e-6)
}

/// A constant operand whose value may be unknown (an initializer the loader did not provide).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Const {
    Known(f64),
    Unknown,
}

/// `Max(x, 0)` is relu; a Max of another arity has no walk rule.
fn max_with_zero(site: &WalkSite<'_, '_, '_>) -> Step {
    if site.n.input.len() != 2 {
        return Step::NoRule;
    }
    let other = site.index.input(site.node, 1 - site.slot.min(1));
    let zero = other.and_then(|o| site.scalars.scalar(o)) == Some(0.0);
    if zero {
        Step::End(Activation::Relu, site.label.to_owned())
    } else {
        Step::End(
            Activation::Linear,
            format!("{} (not max with 0)", site.label),
        )
    }
}

/// Clip as an activation: (0, 6) relu6, (0, ∞) or (0, unknown) relu, else linear.
fn clip(site: &WalkSite<'_, '_, '_>) -> Step {
    if site.slot != 0 {
        return Step::NoRule;
    }
    let (index, node, n) = (site.index, site.node, site.n);
    let label = site.label.to_owned();
    // `None` when absent (±∞); opset < 11 has the bounds as attributes.
    let bound = |slot: usize, attr: &str| -> Option<Const> {
        if let Some(v) = index.input(node, slot) {
            return Some(site.scalars.scalar(v).map_or(Const::Unknown, Const::Known));
        }
        n.attr(attr)
            .and_then(|a| a.f)
            .map(|f| Const::Known(f64::from(f)))
    };
    match (bound(1, "min"), bound(2, "max")) {
        (Some(Const::Known(0.0)), Some(Const::Known(h))) if close(h, 6.0) => {
            Step::End(Activation::Relu6, label)
        }
        (Some(Const::Known(0.0)), None | Some(Const::Unknown)) => {
            Step::End(Activation::Relu, label)
        }
        (Some(Const::Known(0.0)), Some(Const::Known(h))) if h == f64::INFINITY => {
            Step::End(Activation::Relu, label)
        }
        (Some(Const::Known(l)), Some(Const::Known(h))) => Step::End(
            Activation::Linear,
            format!("{label} with bounds ({l}, {h}): not a rectifier"),
        ),
        _ => Step::End(
            Activation::Linear,
            format!("{label} with a lower bound that is unknown or not 0"),
        ),
    }
}
