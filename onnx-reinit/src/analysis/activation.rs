//! The activation that follows a layer: a forward walk from the layer's output.
//!
//! The rules are documented on the parent module (`analysis`), where users see them.

use std::collections::{HashMap, HashSet};

use super::Activation;
use super::graph::{GraphIndex, NodeId, Scalars, ValueId};
use super::ops::pattern::{Match, PatternCtx, Treatment};
use super::ops::{self, Outputs, Step, Walk, WalkSite};

/// Deepest forward walk (in transparent ops) before reporting linear: real models need a few
/// dozen at most; the bound keeps the recursion's stack use small on adversarial graphs.
const MAX_DEPTH: usize = 200;

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
    pub(super) fn new(index: &'c GraphIndex<'m>, scalars: &'c Scalars<'c, 'm>) -> Self {
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
    pub(super) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The activation that follows value `v`.
    pub(super) fn walk(&mut self, v: ValueId) -> WalkResult {
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

        for &(scope, position) in index.outputs_of(v) {
            branches.push(self.leave_scope(v, scope, position));
        }

        let (matched, consumed) = self.patterns(v);
        branches.extend(matched);

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

    /// The patterns matched at `v` (composite activations, decomposed norms), one branch per
    /// match, and the nodes they account for.
    fn patterns(&mut self, v: ValueId) -> (Vec<Branch>, HashSet<NodeId>) {
        let index = self.index;
        let ctx = PatternCtx::new(index, self.scalars, v);
        let mut consumed: HashSet<NodeId> = HashSet::new();
        let mut branches = Vec::new();
        for anchor in ctx.anchors() {
            let found = ops::patterns_at(index.op(anchor)).find_map(|p| (p.matcher)(&ctx, anchor));
            let Some(m) = found else {
                continue;
            };
            consumed.insert(m.anchor);
            consumed.extend(m.covers.iter().copied());
            branches.push(self.pattern_branch(m));
        }
        (branches, consumed)
    }

    /// The branch of a pattern match.
    fn pattern_branch(&mut self, m: Match) -> Branch {
        let label = self.index.node_label(m.anchor);
        match m.treatment {
            Treatment::Activation { activation, form } => {
                (activation, format!("{form} ending at {label}"), None)
            }
            Treatment::NotAnActivation { reason } => {
                (Activation::Linear, format!("{label}: {reason}"), None)
            }
            Treatment::Transparent => match m.output {
                Some(out) => {
                    let r = self.walk(out);
                    (r.activation, r.at, r.conflict)
                }
                None => (Activation::Linear, format!("{label} (no output)"), None),
            },
        }
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
