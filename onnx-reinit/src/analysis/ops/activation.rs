//! Activation ops: the nonlinearity each applies (attributes such as LeakyRelu's alpha, Clip's
//! bounds), PRelu's learned slope, and the composite activations (SiLU, Gelu decompositions,
//! Mish, HardSwish, Softsign) as patterns.

use super::pattern::{Match, PatternCtx, PatternSpec, SelfGating, Treatment};
use super::{OpSpec, Step, Walk, WalkSite};
use crate::analysis::graph::{NodeId, ValueId};
use crate::analysis::roles::{Candidate, SlotCtx};
use crate::analysis::{Activation, Role};
use crate::onnx::skeleton::Node;

/// An op that applies activation `f(node, slot)`.
const fn act(ops: &'static [&'static str], f: fn(&Node, usize) -> Option<Activation>) -> OpSpec {
    OpSpec::new(ops, Walk::Activation(f))
}

/// The activation-op specs.
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
    act(&["Gelu", "QuickGelu"], |_, _| Some(Activation::Gelu)),
    // FastGelu(X, bias) and BiasGelu(A, B) add their bias before the Gelu.
    act(&["FastGelu", "BiasGelu"], |_, _| Some(Activation::Gelu)).params(gelu_bias),
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

/// Name of the pattern that claims every self-gating site no other pattern names.
pub(crate) const NOT_AN_ACTIVATION: &str = "self-gating that is not a known activation";

/// Composite activations: `x` (or `x` times a constant) combined with a function of `x` alone,
/// named by the function's ops. Tried in this order; the last one claims any remaining site.
pub(crate) static PATTERNS: &[PatternSpec] = &[
    PatternSpec {
        name: "Gelu (erf form)",
        anchor_ops: &["Mul"],
        matcher: gelu_erf,
    },
    PatternSpec {
        name: "Mish",
        anchor_ops: &["Mul"],
        matcher: mish,
    },
    PatternSpec {
        name: "Gelu (tanh form)",
        anchor_ops: &["Mul"],
        matcher: gelu_tanh,
    },
    PatternSpec {
        name: "SiLU, or Gelu as x·σ(1.702x)",
        anchor_ops: &["Mul"],
        matcher: silu,
    },
    PatternSpec {
        name: "HardSwish",
        anchor_ops: &["Mul"],
        matcher: hard_swish,
    },
    PatternSpec {
        name: "Softsign",
        anchor_ops: &["Div"],
        matcher: softsign,
    },
    PatternSpec {
        name: NOT_AN_ACTIVATION,
        anchor_ops: &["Mul", "Add", "Sub", "Div"],
        matcher: not_an_activation,
    },
];

/// The site's match as `activation` in `form`.
fn found<'m>(
    ctx: &PatternCtx<'_, '_, 'm>,
    site: &SelfGating<'m>,
    activation: Activation,
    form: &'static str,
) -> Match {
    site.matched(ctx, Treatment::Activation { activation, form })
}

/// The site's match as a self-combination that is not a known activation.
fn unknown<'m>(ctx: &PatternCtx<'_, '_, 'm>, site: &SelfGating<'m>) -> Match {
    let mut sorted = site.form(ctx).ops.clone();
    sorted.sort_unstable();
    sorted.dedup();
    site.matched(
        ctx,
        Treatment::NotAnActivation {
            reason: format!(
                "combined with a function of itself ({}) that is not a known activation",
                sorted.join(", ")
            ),
        },
    )
}

/// The scale between the walked value and the input of the cone's first `op` node.
fn scale_into<'m>(ctx: &PatternCtx<'_, '_, 'm>, site: &SelfGating<'m>, op: &str) -> Option<Const> {
    let index = ctx.index;
    let node = site.cone.iter().copied().find(|&n| index.op(n) == op)?;
    scale_from_x(ctx, index.input(node, 0)?)
}

/// `x·0.5·(1+erf(x/√2))`; another argument scale (when known) is not Gelu.
fn gelu_erf(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    if !site.form(ctx).has("Erf") {
        return None;
    }
    Some(match scale_into(ctx, site, "Erf") {
        Some(Const::Known(s)) if !close(s, std::f64::consts::FRAC_1_SQRT_2) => unknown(ctx, site),
        _ => found(ctx, site, Activation::Gelu, "Gelu (erf form)"),
    })
}

/// `x·tanh(softplus(x))`, softplus as the op or as `log(1+exp(x))`.
fn mish(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    let f = site.form(ctx);
    (f.has("Tanh") && (f.has("Softplus") || (f.has("Exp") && f.has("Log"))))
        .then(|| found(ctx, site, Activation::Mish, "Mish (x·tanh(softplus(x)))"))
}

/// `0.5x(1+tanh(√(2/π)(x+0.044715x³)))`, or its sigmoid rewriting; other known constants are
/// not Gelu.
fn gelu_tanh(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    let f = site.form(ctx);
    if !((f.has("Tanh") || f.has("Sigmoid")) && f.cube) {
        return None;
    }
    Some(if gelu_tanh_constants_ok(ctx, &site.cone) {
        found(ctx, site, Activation::Gelu, "Gelu (tanh form)")
    } else {
        unknown(ctx, site)
    })
}

/// `x·σ(x)` (also `x·σ(βx)`); `x·σ(1.702x)` is the sigmoid approximation of Gelu.
fn silu(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    let f = site.form(ctx);
    if !f.has("Sigmoid") || f.has("Tanh") {
        return None;
    }
    Some(match scale_into(ctx, site, "Sigmoid") {
        Some(Const::Known(s)) if close(s, 1.702) => {
            found(ctx, site, Activation::Gelu, "Gelu (x·σ(1.702x))")
        }
        _ => found(ctx, site, Activation::Silu, "SiLU (x·σ(x))"),
    })
}

/// `x·hardsigmoid(x)`, or `x·relu6(x+3)/6` with the rectifier as Clip, Relu or Min∘Max.
fn hard_swish(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    let f = site.form(ctx);
    if f.has("HardSigmoid") {
        return Some(found(
            ctx,
            site,
            Activation::HardSwish,
            "HardSwish (x·hardsigmoid(x))",
        ));
    }
    (f.has("Clip") || f.has("Relu") || (f.has("Min") && f.has("Max"))).then(|| {
        found(
            ctx,
            site,
            Activation::HardSwish,
            "HardSwish (x·relu6(x+3)/6)",
        )
    })
}

/// `x / (1 + |x|)`.
fn softsign(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    let f = site.form(ctx);
    (f.has("Abs") && f.ops.iter().all(|o| matches!(*o, "Abs" | "Add")))
        .then(|| found(ctx, site, Activation::Softsign, "Softsign (x/(1+|x|))"))
}

/// Any other self-gating: linear, with the cone's ops in the reason.
fn not_an_activation(ctx: &PatternCtx<'_, '_, '_>, anchor: NodeId) -> Option<Match> {
    let site = ctx.self_gating(anchor)?;
    Some(unknown(ctx, site))
}

/// The factor between the walked value and `value` when `value` is the walked value scaled by
/// static Mul/Div nodes (`Unknown` if some factor's value is not known), or `None` if it is not
/// such a scaling.
fn scale_from_x(ctx: &PatternCtx<'_, '_, '_>, mut value: ValueId) -> Option<Const> {
    let (index, scalars, v) = (ctx.index, ctx.scalars, ctx.value);
    let mut factor = Const::Known(1.0);
    for _ in 0..8 {
        if value == v {
            return Some(factor);
        }
        let (node, _) = index.producer(value)?;
        let op = index.op(node);
        let a = index.input(node, 0)?;
        let b = index.input(node, 1)?;
        let (data, konst, divide) = match op {
            "Mul" if scalars.is_static(b) => (a, b, false),
            "Mul" if scalars.is_static(a) => (b, a, false),
            "Div" if scalars.is_static(b) => (a, b, true),
            _ => return None,
        };
        factor = match (factor, scalars.scalar(konst)) {
            (Const::Known(f), Some(k)) if divide => Const::Known(f / k),
            (Const::Known(f), Some(k)) => Const::Known(f * k),
            _ => Const::Unknown,
        };
        value = data;
    }
    None
}

/// The tanh-form Gelu constants: accept when no telling constant is known, else require
/// 0.044715 or √(2/π) (or their folded products, or the doubled sigmoid-form values).
fn gelu_tanh_constants_ok(ctx: &PatternCtx<'_, '_, '_>, cone: &[NodeId]) -> bool {
    const EXPECTED: [f64; 6] = [
        0.044715,
        0.797_884_560_802_865_4,
        0.035_677_408_136_300_125,
        1.595_769_121_605_730_8,
        0.071_354_816_272_600_25,
        0.089_43,
    ];
    let index = ctx.index;
    let mut telling = Vec::new();
    for &n in cone {
        for &i in index.node(n).inputs.iter().flatten() {
            if let Some(k) = ctx.scalars.scalar(i) {
                // Structural constants (exponent 3, 1 + tanh, halves) say nothing.
                if ![0.5, 1.0, 2.0, 3.0].iter().any(|&s| close(k, s)) {
                    telling.push(k);
                }
            }
        }
    }
    telling.is_empty()
        || telling
            .iter()
            .any(|&k| EXPECTED.iter().any(|&e| close(k, e)))
}

/// FastGelu's and BiasGelu's input 1: the bias of the layer before, added inside the op just
/// before its Gelu.
fn gelu_bias(
    ctx: &crate::analysis::roles::SlotCtx<'_, '_, '_>,
) -> crate::analysis::roles::Candidate {
    use crate::analysis::roles::Candidate;
    if ctx.slot == 1 {
        let mut c = Candidate::role(crate::analysis::Role::Bias, ctx.out0());
        c.fixed_activation = Some(Activation::Gelu);
        c
    } else {
        crate::analysis::roles::not_a_parameter(ctx)
    }
}
