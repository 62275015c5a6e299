//! Patterns: recognisers of what several nodes compute together (composite activations,
//! decomposed normalizations), and the self-gating sites `combine(x, f(x))` they classify.
//!
//! The walk asks the patterns first, at every value it reaches: each consumer of the value (or
//! of a copy of it scaled by a constant) is a candidate anchor, and the patterns whose
//! `anchor_ops` name its op are tried in registry order ([`super::PATTERNS`]); the first match
//! wins. A match covers its nodes, so the walk does not step into them one by one.

use std::cell::OnceCell;
use std::fmt;

use super::{OpSpec, by_name};
use crate::analysis::Activation;
use crate::analysis::graph::{GraphIndex, NodeId, Scalars, ValueId};

/// Largest sub-graph accepted as "a function of x" in a self-gating site.
const MAX_CONE: usize = 24;

/// One multi-node recogniser.
pub(crate) struct PatternSpec {
    /// What it recognises, for tests and reports.
    pub name: &'static str,
    /// Op types of the node a match is anchored at (where the pattern's output comes from).
    pub anchor_ops: &'static [&'static str],
    /// The match anchored at the node, if the pattern is there.
    pub matcher: fn(&PatternCtx<'_, '_, '_>, NodeId) -> Option<Match>,
}

impl fmt::Debug for PatternSpec {
    /// The name and anchors (the matcher is a function pointer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSpec")
            .field("name", &self.name)
            .field("anchor_ops", &self.anchor_ops)
            .finish_non_exhaustive()
    }
}

/// What a pattern found.
#[derive(Debug, Clone)]
pub(crate) struct Match {
    /// The node the pattern ends at.
    pub anchor: NodeId,
    /// The other nodes it accounts for.
    pub covers: Vec<NodeId>,
    /// The value the pattern computes, where the walk continues for
    /// [`Treatment::Transparent`].
    pub output: Option<ValueId>,
    /// How the walk treats it.
    pub treatment: Treatment,
}

/// How the walk treats a match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Treatment {
    /// The nodes compute this activation; `form` names the form for reports.
    Activation {
        /// The activation.
        activation: Activation,
        /// E.g. `Gelu (erf form)`.
        form: &'static str,
    },
    /// The nodes do not change which nonlinearity comes next (a decomposed normalization): the
    /// walk continues from the output.
    Transparent,
    /// Claimed, but not a known activation: the branch ends linear for `reason`.
    NotAnActivation {
        /// Why, after the anchor's label.
        reason: String,
    },
}

/// What matchers may look at: the graph, constants, and the walked value with its
/// self-gating sites.
#[derive(Debug)]
pub(crate) struct PatternCtx<'c, 'a, 'm> {
    pub index: &'c GraphIndex<'m>,
    pub scalars: &'c Scalars<'a, 'm>,
    /// The walked value `x`.
    pub value: ValueId,
    /// `x` and its constant-scaled copies (x·0.5, x/√2, …), with the scaling node.
    xs: Vec<(ValueId, Option<NodeId>)>,
    /// The outermost self-gating sites rooted at `x`.
    sites: Vec<SelfGating<'m>>,
}

/// A site `combine(x, f(x))`: a Mul, Add, Sub or Div (x as numerator) of `x` (or a scaled copy)
/// with a parameter-free function of `x` alone.
#[derive(Debug)]
pub(crate) struct SelfGating<'m> {
    /// The combining node.
    pub combine: NodeId,
    /// The value among `x` and its scaled copies that enters `combine` directly.
    pub x: ValueId,
    /// Nodes computing `f(x)` from `x` (and its scaled copies) and constants.
    pub cone: Vec<NodeId>,
    form: OnceCell<Form<'m>>,
}

/// The structure of a site's cone, as activation matchers read it.
#[derive(Debug)]
pub(crate) struct Form<'m> {
    /// Op types of the cone's nodes.
    pub ops: Vec<&'m str>,
    /// Whether the cone multiplies two non-static values (a power of x: Gelu's cube).
    pub cube: bool,
}

impl Form<'_> {
    /// Whether the cone contains an `op` node.
    pub(crate) fn has(&self, op: &str) -> bool {
        self.ops.contains(&op)
    }
}

impl<'c, 'a, 'm> PatternCtx<'c, 'a, 'm> {
    /// The context at walked value `v`, with its self-gating sites found.
    pub(crate) fn new(index: &'c GraphIndex<'m>, scalars: &'c Scalars<'a, 'm>, v: ValueId) -> Self {
        let mut xs: Vec<(ValueId, Option<NodeId>)> = vec![(v, None)];
        for &(node, slot) in &index.value(v).uses {
            let op = index.op(node);
            if (op == "Mul" || (op == "Div" && slot == 0)) && index.node(node).inputs.len() == 2 {
                let other = index.input(node, 1 - slot.min(1));
                if other.is_some_and(|o| o != v && scalars.is_static(o))
                    && let Some(out) = index.output(node, 0)
                {
                    xs.push((out, Some(node)));
                }
            }
        }
        let mut ctx = PatternCtx {
            index,
            scalars,
            value: v,
            xs,
            sites: Vec::new(),
        };
        let x_values = ctx.x_values();
        let mut found: Vec<SelfGating<'m>> = Vec::new();
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
                if x_values.contains(&other) || scalars.is_static(other) {
                    continue;
                }
                if let Some(cone) = ctx.cone(other, &x_values) {
                    found.push(SelfGating {
                        combine: node,
                        x,
                        cone,
                        form: OnceCell::new(),
                    });
                }
            }
        }
        // A site inside another's cone is part of that one's function.
        let outer: Vec<bool> = (0..found.len())
            .map(|i| !found.iter().any(|f| f.cone.contains(&found[i].combine)))
            .collect();
        ctx.sites = found
            .into_iter()
            .zip(outer)
            .filter_map(|(site, outer)| outer.then_some(site))
            .collect();
        ctx
    }

    fn x_values(&self) -> Vec<ValueId> {
        self.xs.iter().map(|&(x, _)| x).collect()
    }

    /// Candidate anchors: the consumers of `x` and of its scaled copies, in that order, each
    /// once.
    pub(crate) fn anchors(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        for &(x, _) in &self.xs {
            for &(node, _) in &self.index.value(x).uses {
                if !out.contains(&node) {
                    out.push(node);
                }
            }
        }
        out
    }

    /// The self-gating site whose combining node is `anchor`, if it is an outermost one.
    pub(crate) fn self_gating(&self, anchor: NodeId) -> Option<&SelfGating<'m>> {
        self.sites.iter().find(|s| s.combine == anchor)
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
            if by_name(n.op()).is_some_and(OpSpec::is_weight_layer)
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
}

impl<'m> SelfGating<'m> {
    /// Whether some node of the cone has an op type starting with `prefix`.
    pub(crate) fn cone_has_prefix(&self, ctx: &PatternCtx<'_, '_, 'm>, prefix: &str) -> bool {
        self.cone
            .iter()
            .any(|&n| ctx.index.op(n).starts_with(prefix))
    }

    /// [`Self::cone_has_prefix`] with the index alone.
    pub(crate) fn cone_has_prefix_in(&self, index: &GraphIndex<'_>, prefix: &str) -> bool {
        self.cone.iter().any(|&n| index.op(n).starts_with(prefix))
    }

    /// The cone's structure, computed on first use (activation matchers, in registry order).
    pub(crate) fn form(&self, ctx: &PatternCtx<'_, '_, 'm>) -> &Form<'m> {
        self.form.get_or_init(|| {
            let index = ctx.index;
            let ops: Vec<&str> = self.cone.iter().map(|&n| index.op(n)).collect();
            let cube = ops.contains(&"Pow")
                || self.cone.iter().any(|&n| {
                    index.op(n) == "Mul"
                        && index
                            .node(n)
                            .inputs
                            .iter()
                            .flatten()
                            .all(|&i| !ctx.scalars.is_static(i))
                });
            Form { ops, cube }
        })
    }

    /// The match of this site with `treatment`: it covers the cone and the scaling nodes
    /// through which it reads `x`, and its output is the combining node's.
    pub(crate) fn matched(&self, ctx: &PatternCtx<'_, '_, 'm>, treatment: Treatment) -> Match {
        let index = ctx.index;
        let mut covers = self.cone.clone();
        for &(x, scaler) in &ctx.xs {
            let read = x == self.x
                || self
                    .cone
                    .iter()
                    .any(|&n| index.node(n).inputs.contains(&Some(x)));
            if let Some(s) = scaler.filter(|_| read) {
                covers.push(s);
            }
        }
        Match {
            anchor: self.combine,
            covers,
            output: index.output(self.combine, 0),
            treatment,
        }
    }
}
