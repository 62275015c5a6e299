//! The op registry: one [`OpSpec`] per op family, saying which slots are parameters, how the
//! activation walk passes the op, and whether its output is a constant source; and the
//! [`PatternSpec`]s that recognise what several nodes compute together.
//!
//! Every question the analysis asks about an op type goes through [`spec`] (role and walk
//! decisions, which also apply the domain rule) or [`by_name`] (the structural questions that
//! have always been answered by op name alone). Adding an op means adding its spec to the file
//! of its family and, for a new family, listing that file's `SPECS` in [`FAMILIES`]; adding a
//! multi-node pattern means adding a [`PatternSpec`] to its family's `PATTERNS`, in the order
//! it must be tried, and for a new family listing them in [`PATTERNS`].

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod fused;
pub(crate) mod layout;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod pattern;
pub(crate) mod quant;
pub(crate) mod recurrent;
pub(crate) mod source;

use std::collections::HashMap;
use std::sync::LazyLock;

use super::Activation;
use super::graph::{GraphIndex, NodeId, Scalars};
use super::roles::{Candidate, SlotCtx};
use crate::onnx::skeleton::Node;
pub(crate) use pattern::PatternSpec;

/// Decides role and fans of one (node, slot) use of an initializer; slots it does not claim get
/// [`Candidate::none`] with the reason.
pub(crate) type Handler = fn(&SlotCtx<'_, '_, '_>) -> Candidate;

/// Everything known about one op family.
#[derive(Debug)]
pub(crate) struct OpSpec {
    /// Op types (ONNX names; `com.microsoft` contrib ops share the namespace).
    pub ops: &'static [&'static str],
    /// Role handler for initializers the op reads; `None`: no slot is a parameter.
    pub params: Option<Handler>,
    /// How the activation walk treats a consumer of this op.
    pub walk: Walk,
    /// Whether the op's output is fixed for every run.
    pub source: Source,
}

impl OpSpec {
    /// A spec without parameter slots whose output is computed from its inputs.
    pub(crate) const fn new(ops: &'static [&'static str], walk: Walk) -> Self {
        OpSpec {
            ops,
            params: None,
            walk,
            source: Source::Computed,
        }
    }

    /// The same spec with role handler `handler`.
    pub(crate) const fn params(mut self, handler: Handler) -> Self {
        self.params = Some(handler);
        self
    }

    /// The same spec with source `source`.
    pub(crate) const fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// Whether the op reads its inputs' values (Shape and Size read only their shapes: such a
    /// use is neither a parameter use nor a branch of the walk).
    pub(crate) fn reads_values(&self) -> bool {
        !matches!(self.walk, Walk::ShapeOnly)
    }

    /// Whether the op carries weights of its own or multiplies two activations (the walk ends
    /// there, and a composite activation cannot contain it).
    pub(crate) fn is_weight_layer(&self) -> bool {
        matches!(self.walk, Walk::WeightLayer)
    }
}

/// How the activation walk treats a node that consumes the walked value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Walk {
    /// Reads only the shape: the consumer is ignored.
    ShapeOnly,
    /// Does not change which nonlinearity comes next when the walked value enters one of
    /// `slots`: the walk continues from `outputs`. Other slots have no walk rule.
    Transparent {
        /// The data slots that pass.
        slots: Slots,
        /// The outputs carrying the data.
        outputs: Outputs,
    },
    /// A layer with weights of its own (or a product of two activations): the branch ends
    /// linear.
    WeightLayer,
    /// An activation op: the activation it applies when the walked value enters the slot
    /// (parameters read from attributes), `None` for a slot without a walk rule.
    Activation(fn(&Node, usize) -> Option<Activation>),
    /// A rule that needs the node's other operands (constant bounds, a static scale).
    Rule(fn(&WalkSite<'_, '_, '_>) -> Step),
    /// No walk rule: the branch ends linear.
    Opaque,
}

/// Input slots of a transparent op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slots {
    /// The data input, slot 0.
    Data,
    /// Every slot (a bias, a residual, a concatenation).
    Any,
    /// Slots `0..=n` (skip normalizations add the skip input).
    UpTo(usize),
    /// Slots `n..` (Where selects among slots 1 and 2; slot 0 is the condition).
    From(usize),
}

impl Slots {
    /// Whether `slot` is one of these.
    pub(crate) fn contains(self, slot: usize) -> bool {
        match self {
            Slots::Data => slot == 0,
            Slots::Any => true,
            Slots::UpTo(n) => slot <= n,
            Slots::From(n) => slot >= n,
        }
    }
}

/// The outputs of a transparent op that carry the walked data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outputs {
    /// Output 0 only (other outputs are statistics, masks or indices).
    First,
    /// Every output (Split).
    All,
}

/// Whether an op's output is fixed for every run (constant evaluation in `graph::Scalars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Always fixed: a Constant, or a Shape/Size result (depends on shapes only).
    Static,
    /// Random even from constant inputs.
    Random,
    /// Fixed exactly when every input is (and the node holds no subgraph).
    Computed,
}

/// The consumer a [`Walk::Rule`] decides about.
#[derive(Debug)]
pub(crate) struct WalkSite<'c, 'a, 'm> {
    pub index: &'c GraphIndex<'m>,
    pub scalars: &'c Scalars<'a, 'm>,
    pub node: NodeId,
    pub n: &'m Node,
    pub op: &'m str,
    /// The slot the walked value enters.
    pub slot: usize,
    /// `Op 'name'` of the node, for reports.
    pub label: &'c str,
}

/// What a [`Walk::Rule`] decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// The branch ends with this activation, reached at the given place (for reports).
    End(Activation, String),
    /// The walk continues from these outputs of the node.
    Continue(Outputs),
    /// No rule for this use: linear.
    NoRule,
}

/// Every family's specs. Each op appears once.
pub(crate) static FAMILIES: &[&[OpSpec]] = &[
    conv::SPECS,
    linear::SPECS,
    recurrent::SPECS,
    embedding::SPECS,
    norm::SPECS,
    activation::SPECS,
    elementwise::SPECS,
    layout::SPECS,
    source::SPECS,
    quant::SPECS,
    fused::SPECS,
];

/// Every family's patterns, in the order they are tried at an anchor (the first match wins):
/// decomposed normalizations before composite activations, whose last pattern claims any
/// remaining self-gating site.
pub(crate) static PATTERNS: &[&[PatternSpec]] = &[norm::PATTERNS, activation::PATTERNS];

/// The patterns anchored at an `op` node, in the order they are tried.
pub(crate) fn patterns_at(op: &str) -> impl Iterator<Item = &'static PatternSpec> {
    PATTERNS
        .iter()
        .flat_map(|family| family.iter())
        .filter(move |p| p.anchor_ops.contains(&op))
}

static TABLE: LazyLock<HashMap<&'static str, &'static OpSpec>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for family in FAMILIES {
        for spec in *family {
            for op in spec.ops {
                // The first listing wins; the registry test rejects duplicates.
                map.entry(*op).or_insert(spec);
            }
        }
    }
    map
});

/// Whether ops of this domain follow ONNX (or ONNX Runtime contrib) semantics: the default
/// domain (absent, `""` or `ai.onnx`) and `com.microsoft`, whose contrib ops share these names
/// and semantics.
pub(crate) fn known_domain(domain: Option<&str>) -> bool {
    matches!(domain, None | Some("" | "ai.onnx" | "com.microsoft"))
}

/// The spec of `op` from `domain`; `None` for an unknown domain or an op without a spec.
pub(crate) fn spec(domain: Option<&str>, op: &str) -> Option<&'static OpSpec> {
    if known_domain(domain) {
        by_name(op)
    } else {
        None
    }
}

/// The spec of `op` whatever the node's domain. Only for the structural questions that have
/// always been answered by op name alone: whether a value is static (constant evaluation),
/// whether a composite activation's cone may contain the node, and whether a use reads only a
/// shape in the packed-projection search.
pub(crate) fn by_name(op: &str) -> Option<&'static OpSpec> {
    TABLE.get(op).copied()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn all_specs() -> impl Iterator<Item = &'static OpSpec> {
        FAMILIES.iter().flat_map(|f| f.iter())
    }

    #[test]
    fn no_op_is_listed_twice() {
        let mut seen = HashSet::new();
        for spec in all_specs() {
            assert!(!spec.ops.is_empty(), "a spec without ops: {spec:?}");
            for op in spec.ops {
                assert!(seen.insert(*op), "{op} is listed twice");
            }
        }
        assert_eq!(TABLE.len(), seen.len());
    }

    #[test]
    fn op_names_look_like_onnx_op_types() {
        for op in all_specs().flat_map(|s| s.ops) {
            assert!(
                op.starts_with(|c: char| c.is_ascii_uppercase())
                    && op.chars().all(|c| c.is_ascii_alphanumeric()),
                "{op:?} is not an ONNX op type"
            );
        }
    }

    #[test]
    fn every_family_with_parameters_has_a_walk_behaviour() {
        // A parameter's activation is found by walking from its node's output, so the walk
        // must know what the node itself does to the value.
        for spec in all_specs().filter(|s| s.params.is_some()) {
            assert!(
                !matches!(spec.walk, Walk::Opaque | Walk::ShapeOnly),
                "{:?} has parameter slots but no walk behaviour",
                spec.ops
            );
        }
    }

    #[test]
    fn sources_have_no_parameters_and_no_walk() {
        for spec in all_specs().filter(|s| s.source != Source::Computed) {
            assert!(spec.params.is_none(), "{:?}", spec.ops);
            assert!(
                matches!(spec.walk, Walk::Opaque | Walk::ShapeOnly),
                "{:?}",
                spec.ops
            );
        }
    }

    #[test]
    fn activation_ops_name_an_activation_for_their_data_input() {
        let node = Node::default();
        for spec in all_specs() {
            if let Walk::Activation(f) = spec.walk {
                assert!(f(&node, 0).is_some(), "{:?}", spec.ops);
            }
        }
    }

    #[test]
    fn transparent_ops_pass_their_data_input() {
        // Where passes slots 1 and 2 only: its slot 0 is the condition.
        for spec in all_specs() {
            if let Walk::Transparent { slots, .. } = spec.walk {
                assert!(
                    slots.contains(0) || spec.ops == ["Where"],
                    "{:?} does not pass slot 0",
                    spec.ops
                );
            }
        }
    }

    fn all_patterns() -> impl Iterator<Item = &'static PatternSpec> {
        PATTERNS.iter().flat_map(|f| f.iter())
    }

    #[test]
    fn pattern_names_are_unique() {
        let mut seen = HashSet::new();
        for p in all_patterns() {
            assert!(seen.insert(p.name), "pattern {:?} is listed twice", p.name);
        }
    }

    #[test]
    fn pattern_anchors_have_a_walk_rule_of_their_own() {
        // Where no pattern matches, the walk steps into the anchor as a single op.
        for p in all_patterns() {
            assert!(!p.anchor_ops.is_empty(), "{:?} has no anchor", p.name);
            for op in p.anchor_ops {
                let spec = by_name(op).unwrap_or_else(|| panic!("{:?}: {op} has no spec", p.name));
                assert!(!matches!(spec.walk, Walk::Opaque), "{:?}: {op}", p.name);
            }
        }
    }

    #[test]
    fn the_catch_all_is_tried_last_at_each_of_its_anchors() {
        let catch_all = all_patterns()
            .find(|p| p.name == activation::NOT_AN_ACTIVATION)
            .expect("the catch-all pattern is registered");
        for op in catch_all.anchor_ops {
            let last = patterns_at(op).last().map(|p| p.name);
            assert_eq!(
                last,
                Some(catch_all.name),
                "a pattern after the catch-all at {op}"
            );
        }
    }

    #[test]
    fn normalizations_are_tried_before_activations() {
        // A reduction inside a self-gating site is a norm even if the site also looks like
        // an activation.
        let first = patterns_at("Mul").next().map(|p| p.name);
        assert_eq!(first, Some("decomposed normalization"));
    }

    #[test]
    fn domains() {
        for d in [None, Some(""), Some("ai.onnx"), Some("com.microsoft")] {
            assert!(spec(d, "Conv").is_some(), "{d:?}");
        }
        assert!(spec(Some("com.example"), "Conv").is_none());
        assert!(by_name("Conv").is_some());
        assert!(spec(None, "NoSuchOp").is_none());
    }
}
