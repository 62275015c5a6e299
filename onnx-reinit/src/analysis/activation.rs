//! The activation that follows a layer: a forward walk from the layer's output.
//!
//! The rules are documented on the parent module (`analysis`), where users see them.

use std::collections::{HashMap, HashSet};

use super::Activation;
use super::graph::{GraphIndex, NodeId, Scalars, ValueId};
use super::ops::activation::{Const, close};
use super::ops::{self, OpSpec, Outputs, Step, Walk, WalkSite};

/// Deepest forward walk (in transparent ops) before reporting linear: real models need a few
/// dozen at most; the bound keeps the recursion's stack use small on adversarial graphs.
const MAX_DEPTH: usize = 200;
/// Largest sub-graph accepted as "a function of x" in a composite activation.
const MAX_CONE: usize = 24;

/// Result of a walk from one value.
#[derive(Debug, Clone)]
pub(crate) struct WalkResult {
    /// The activation reached.
    pub activation: Activation,
    /// Where the walk ended, for reports: `Relu '/Relu'`, `graph output 'y'`, ….
    pub at: String,
    /// Branches that disagreed, if any, and which one won.
    pub conflict: Option<String>,
}

/// A merged decision over several branches or consumers.
#[derive(Debug, Clone)]
pub(crate) struct Merged {
    /// The winner.
    pub activation: Activation,
    /// Index of the winning item.
    pub winner: usize,
    /// The disagreement, when there was one.
    pub conflict: Option<String>,
}

/// `relu`, `leaky_relu(0.1)`, …: the name plus parameters, for messages.
pub(crate) fn describe(a: Activation) -> String {
    match a {
        Activation::LeakyRelu(alpha) | Activation::Elu(alpha) => {
            format!("{}({alpha})", a.as_str())
        }
        _ => a.as_str().to_owned(),
    }
}

/// One decision from several `(activation, where)` items: unanimous, or else the first
/// non-linear item, with the disagreement spelled out.
pub(crate) fn merge_activations(items: &[(Activation, String)]) -> Merged {
    let Some((first, _)) = items.first() else {
        return Merged {
            activation: Activation::Linear,
            winner: 0,
            conflict: None,
        };
    };
    if items.iter().all(|(a, _)| a == first) {
        return Merged {
            activation: *first,
            winner: 0,
            conflict: None,
        };
    }
    let winner = items
        .iter()
        .position(|(a, _)| *a != Activation::Linear)
        .unwrap_or(0);
    let listing = items
        .iter()
        .map(|(a, at)| format!("{at} → {}", describe(*a)))
        .collect::<Vec<_>>()
        .join(", ");
    Merged {
        activation: items[winner].0,
        winner,
        conflict: Some(format!(
            "{listing}; chose {} from {} (the first non-linear one)",
            describe(items[winner].0),
            items[winner].1
        )),
    }
}

/// One branch's outcome.
type Branch = (Activation, String, Option<String>);

/// A candidate composite: `combine(x, f(x))` where `f` is the cone.
struct Composite {
    /// The combining node (Mul, Div, Add, Sub).
    combine: NodeId,
    /// The value among `x` and its scaled copies that enters `combine` directly.
    x: ValueId,
    /// Nodes computing `f(x)` from `x` (and its scaled copies) and constants.
    cone: Vec<NodeId>,
}

/// The walker: memoised per value, so shared downstream paths are walked once per model.
pub(crate) struct Walker<'c, 'm> {
    index: &'c GraphIndex<'m>,
    scalars: &'c Scalars<'c, 'm>,
    memo: HashMap<ValueId, WalkResult>,
    active: HashSet<ValueId>,
    depth: usize,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Walker<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walker")
            .field("memo", &self.memo.len())
            .finish_non_exhaustive()
    }
}

impl<'c, 'm> Walker<'c, 'm> {
    /// A walker over `index`.
    pub fn new(index: &'c GraphIndex<'m>, scalars: &'c Scalars<'c, 'm>) -> Self {
        Walker {
            index,
            scalars,
            memo: HashMap::new(),
            active: HashSet::new(),
            depth: 0,
            warnings: Vec::new(),
        }
    }

    /// Problems met while walking (cycles).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The activation that follows value `v`.
    pub fn walk(&mut self, v: ValueId) -> WalkResult {
        if let Some(r) = self.memo.get(&v) {
            return r.clone();
        }
        if self.active.contains(&v) {
            self.warnings.push(format!(
                "cycle through value '{}'",
                self.index.value(v).name
            ));
            return linear("a cycle in the graph");
        }
        if self.depth >= MAX_DEPTH {
            return linear("the walk's depth limit");
        }
        self.active.insert(v);
        self.depth += 1;
        let r = self.walk_uncached(v);
        self.depth -= 1;
        self.active.remove(&v);
        self.memo.insert(v, r.clone());
        r
    }

    fn walk_uncached(&mut self, v: ValueId) -> WalkResult {
        let index = self.index;
        let mut branches: Vec<Branch> = Vec::new();

        for &(scope, position) in &index.value(v).outputs_of {
            branches.push(self.leave_scope(v, scope, position));
        }

        let (composites, consumed) = self.composites(v);
        branches.extend(composites);

        for &(node, slot) in &index.value(v).uses {
            if consumed.contains(&node) {
                continue;
            }
            if let Some(b) = self.step(node, slot) {
                branches.push(b);
            }
        }

        if branches.is_empty() {
            return linear("nothing (no consumer)");
        }
        let items: Vec<(Activation, String)> =
            branches.iter().map(|(a, at, _)| (*a, at.clone())).collect();
        let merged = merge_activations(&items);
        let (activation, at, sub_conflict) = branches.swap_remove(merged.winner);
        let conflict = match (merged.conflict, sub_conflict) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        WalkResult {
            activation,
            at,
            conflict,
        }
    }

    /// A value that is an output of graph `scope`: the main graph's output ends the walk; a
    /// body's output continues from the matching output of its If/Loop/Scan node.
    fn leave_scope(&mut self, v: ValueId, scope: usize, position: usize) -> Branch {
        let index = self.index;
        let Some(owner) = index.scope(scope).owner else {
            let name = index.value(v).name;
            return (Activation::Linear, format!("graph output '{name}'"), None);
        };
        // Loop bodies output the condition first; If and Scan map one to one.
        let mapped = match index.op(owner) {
            "If" | "Scan" => Some(position),
            "Loop" => position.checked_sub(1),
            _ => None,
        };
        match mapped.and_then(|p| index.output(owner, p)) {
            Some(out) => {
                let r = self.walk(out);
                (r.activation, r.at, r.conflict)
            }
            None => (
                Activation::Linear,
                format!("an output of the body of {}", index.node_label(owner)),
                None,
            ),
        }
    }

    /// One consumer of the walked value; `None` when it does not read values (Shape, Size).
    fn step(&mut self, node: NodeId, slot: usize) -> Option<Branch> {
        let index = self.index;
        let n = index.node(node).node;
        let op = n.op();
        let label = index.node_label(node);
        let domain = n.domain.as_deref();
        if !ops::known_domain(domain) {
            let domain = domain.unwrap_or("");
            return Some((
                Activation::Linear,
                format!("{label} from domain '{domain}' (unknown)"),
                None,
            ));
        }
        let walk = ops::spec(domain, op).map_or(Walk::Opaque, |s| s.walk);
        let step = match walk {
            Walk::ShapeOnly => return None,
            Walk::WeightLayer => {
                return Some((Activation::Linear, format!("weight layer {label}"), None));
            }
            Walk::Transparent { slots, outputs } if slots.contains(slot) => Step::Continue(outputs),
            Walk::Activation(f) => f(n, slot).map_or(Step::NoRule, |a| Step::End(a, label.clone())),
            Walk::Rule(rule) => rule(&WalkSite {
                index,
                scalars: self.scalars,
                node,
                n,
                op,
                slot,
                label: &label,
            }),
            Walk::Transparent { .. } | Walk::Opaque => Step::NoRule,
        };
        Some(match step {
            Step::End(a, at) => (a, at, None),
            Step::Continue(outputs) => self.continue_from(node, outputs),
            Step::NoRule => (Activation::Linear, format!("{label} (no walk rule)"), None),
        })
    }

    /// Continue from a transparent node's output(s).
    fn continue_from(&mut self, node: NodeId, outputs: Outputs) -> Branch {
        let index = self.index;
        let outs: Vec<ValueId> = match outputs {
            Outputs::First => index.output(node, 0).into_iter().collect(),
            Outputs::All => index.node(node).outputs.iter().flatten().copied().collect(),
        };
        let mut results: Vec<WalkResult> = outs.into_iter().map(|o| self.walk(o)).collect();
        if results.is_empty() {
            return (
                Activation::Linear,
                format!("{} (no output)", index.node_label(node)),
                None,
            );
        }
        let items: Vec<(Activation, String)> = results
            .iter()
            .map(|r| (r.activation, r.at.clone()))
            .collect();
        let merged = merge_activations(&items);
        let r = results.swap_remove(merged.winner);
        (r.activation, r.at, merged.conflict.or(r.conflict))
    }

    /// Composite activations rooted at `v`, and the nodes they account for.
    fn composites(&mut self, v: ValueId) -> (Vec<Branch>, HashSet<NodeId>) {
        let index = self.index;
        // x and its constant-scaled copies (x·0.5, x/√2, …), with the scaling node.
        let mut xs: Vec<(ValueId, Option<NodeId>)> = vec![(v, None)];
        for &(node, slot) in &index.value(v).uses {
            let op = index.op(node);
            if (op == "Mul" || (op == "Div" && slot == 0)) && index.node(node).inputs.len() == 2 {
                let other = index.input(node, 1 - slot.min(1));
                if other.is_some_and(|o| o != v && self.scalars.is_static(o))
                    && let Some(out) = index.output(node, 0)
                {
                    xs.push((out, Some(node)));
                }
            }
        }
        let x_values: Vec<ValueId> = xs.iter().map(|&(x, _)| x).collect();

        let mut found: Vec<Composite> = Vec::new();
        for &x in &x_values {
            for &(node, slot) in &index.value(x).uses {
                let op = index.op(node);
                let binary = matches!(op, "Mul" | "Add" | "Sub") || (op == "Div" && slot == 0);
                if !binary || index.node(node).inputs.len() != 2 {
                    continue;
                }
                let Some(other) = index.input(node, 1 - slot.min(1)) else {
                    continue;
                };
                if x_values.contains(&other) || self.scalars.is_static(other) {
                    continue;
                }
                if let Some(cone) = self.cone(other, &x_values) {
                    found.push(Composite {
                        combine: node,
                        x,
                        cone,
                    });
                }
            }
        }
        if found.is_empty() {
            return (Vec::new(), HashSet::new());
        }

        let mut consumed: HashSet<NodeId> = HashSet::new();
        let mut branches = Vec::new();
        let outer: Vec<usize> = (0..found.len())
            .filter(|&i| !found.iter().any(|f| f.cone.contains(&found[i].combine)))
            .collect();
        for i in outer {
            let c = &found[i];
            consumed.insert(c.combine);
            consumed.extend(c.cone.iter().copied());
            // The scaling nodes this composite reads x through belong to it too.
            for &(x, scaler) in &xs {
                let read = x == c.x
                    || c.cone
                        .iter()
                        .any(|&n| index.node(n).inputs.contains(&Some(x)));
                if let Some(s) = scaler.filter(|_| read) {
                    consumed.insert(s);
                }
            }
            branches.push(self.classify(c, v));
        }
        (branches, consumed)
    }

    /// The nodes computing `value` from the `xs` and static values only, or `None` if it
    /// depends on anything else or is too big to be an activation.
    fn cone(&self, value: ValueId, xs: &[ValueId]) -> Option<Vec<NodeId>> {
        let index = self.index;
        let mut nodes: Vec<NodeId> = Vec::new();
        let mut stack = vec![value];
        while let Some(val) = stack.pop() {
            if xs.contains(&val) || self.scalars.is_static(val) {
                continue;
            }
            let (node, _) = index.producer(val)?;
            if nodes.contains(&node) {
                continue;
            }
            let n = index.node(node).node;
            // An activation is parameter-free: a weight layer inside means `x + f(x)` is a
            // residual block, not an activation; bodies are beyond this local analysis.
            if ops::by_name(n.op()).is_some_and(OpSpec::is_weight_layer)
                || n.attribute
                    .iter()
                    .any(|a| a.g.is_some() || !a.graphs.is_empty())
            {
                return None;
            }
            nodes.push(node);
            if nodes.len() > MAX_CONE {
                return None;
            }
            stack.extend(index.node(node).inputs.iter().flatten().copied());
        }
        if nodes.is_empty() { None } else { Some(nodes) }
    }

    /// Name the activation of a composite.
    fn classify(&mut self, c: &Composite, v: ValueId) -> Branch {
        let index = self.index;
        let ops: Vec<&str> = c.cone.iter().map(|&n| index.op(n)).collect();
        let has = |op: &str| ops.contains(&op);
        let combine_op = index.op(c.combine);
        let label = index.node_label(c.combine);
        let found = |a: Activation, what: &str| -> Branch {
            (a, format!("{what} ending at {label}"), None)
        };

        if ops.iter().any(|o| o.starts_with("Reduce")) {
            // A decomposed normalization: continue after it.
            return self.continue_from(c.combine, Outputs::First);
        }
        let cube = has("Pow")
            || c.cone.iter().any(|&n| {
                index.op(n) == "Mul"
                    && index
                        .node(n)
                        .inputs
                        .iter()
                        .flatten()
                        .all(|&i| !self.scalars.is_static(i))
            });
        let unknown = || -> Branch {
            let mut sorted = ops.clone();
            sorted.sort_unstable();
            sorted.dedup();
            (
                Activation::Linear,
                format!(
                    "{label}: combined with a function of itself ({}) that is not a known \
                     activation",
                    sorted.join(", ")
                ),
                None,
            )
        };
        match combine_op {
            "Mul" => {
                if has("Erf") {
                    let erf = c.cone.iter().copied().find(|&n| index.op(n) == "Erf");
                    let scale = erf.and_then(|e| self.scale_from_x(index.input(e, 0)?, v));
                    return match scale {
                        Some(Const::Known(s)) if !close(s, std::f64::consts::FRAC_1_SQRT_2) => {
                            unknown()
                        }
                        _ => found(Activation::Gelu, "Gelu (erf form)"),
                    };
                }
                if has("Tanh") && (has("Softplus") || (has("Exp") && has("Log"))) {
                    return found(Activation::Mish, "Mish (x·tanh(softplus(x)))");
                }
                if (has("Tanh") || has("Sigmoid")) && cube {
                    return if self.gelu_tanh_constants_ok(&c.cone) {
                        found(Activation::Gelu, "Gelu (tanh form)")
                    } else {
                        unknown()
                    };
                }
                if has("Sigmoid") && !has("Tanh") {
                    let sig = c.cone.iter().copied().find(|&n| index.op(n) == "Sigmoid");
                    let scale = sig.and_then(|s| self.scale_from_x(index.input(s, 0)?, v));
                    return match scale {
                        Some(Const::Known(s)) if close(s, 1.702) => {
                            found(Activation::Gelu, "Gelu (x·σ(1.702x))")
                        }
                        _ => found(Activation::Silu, "SiLU (x·σ(x))"),
                    };
                }
                if has("HardSigmoid") {
                    return found(Activation::HardSwish, "HardSwish (x·hardsigmoid(x))");
                }
                if has("Clip") || has("Relu") || (has("Min") && has("Max")) {
                    return found(Activation::HardSwish, "HardSwish (x·relu6(x+3)/6)");
                }
                unknown()
            }
            "Div" if has("Abs") && ops.iter().all(|o| matches!(*o, "Abs" | "Add")) => {
                found(Activation::Softsign, "Softsign (x/(1+|x|))")
            }
            _ => unknown(),
        }
    }

    /// The factor between `v` and `value` when `value` is `v` scaled by static Mul/Div nodes
    /// (`Unknown` if some factor's value is not known), or `None` if it is not such a scaling.
    fn scale_from_x(&self, mut value: ValueId, v: ValueId) -> Option<Const> {
        let index = self.index;
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
                "Mul" if self.scalars.is_static(b) => (a, b, false),
                "Mul" if self.scalars.is_static(a) => (b, a, false),
                "Div" if self.scalars.is_static(b) => (a, b, true),
                _ => return None,
            };
            factor = match (factor, self.scalars.scalar(konst)) {
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
    fn gelu_tanh_constants_ok(&self, cone: &[NodeId]) -> bool {
        const EXPECTED: [f64; 6] = [
            0.044715,
            0.797_884_560_802_865_4,
            0.035_677_408_136_300_125,
            1.595_769_121_605_730_8,
            0.071_354_816_272_600_25,
            0.089_43,
        ];
        let index = self.index;
        let mut telling = Vec::new();
        for &n in cone {
            for &i in index.node(n).inputs.iter().flatten() {
                if let Some(k) = self.scalars.scalar(i) {
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
}

/// A linear end with a reason.
fn linear(at: &str) -> WalkResult {
    WalkResult {
        activation: Activation::Linear,
        at: at.to_owned(),
        conflict: None,
    }
}
