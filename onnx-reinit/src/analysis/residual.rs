//! Residual structure read from the graph, not from names: which `Add` puts a branch back into
//! the stream it left, which weight is that branch's output projection, which norm is its last
//! norm, and how many times the block structure repeats (the depth recipes call `n_layer`).
//!
//! # Definitions
//! Only the main graph is read. A value is *static* when it is computed from initializers,
//! Constant nodes and shapes alone (masks, folded position rows, relative-position biases); every
//! other value is an *activation*. A *weight layer* is a node one of whose inputs is (a view —
//! Transpose, Cast, Identity, Reshape, Squeeze, Unsqueeze — of) an initializer the analysis gave
//! the role [`Role::Weight`]. `depth(v)` is the largest number of weight layers on any path from
//! the graph inputs to the activation `v`.
//!
//! An `Add` (or two-input `Sum`, or the first two inputs of onnxruntime's fused
//! `SkipLayerNormalization`) of two activations `a`, `b` is **residual** when they have a
//! common ancestor activation and, with `f` the deepest common ancestor (largest `depth`), one
//! side passes strictly more weight layers since `f` than the other: that side is the *branch*,
//! the other the *stream*. This covers the identity skip (`x + F(x)`: the stream is `f` itself,
//! 0 weight layers) and the projected skip of a downsampling ResNet block
//! (`bn2(conv2(…conv1(x))) + bn(conv(x))`: 2 against 1). Sums of independent inputs (token +
//! position embeddings) have no common ancestor; sums whose sides pass as many weight layers
//! (rotary `q·cos + rot(q)·sin`, the `x + 0.044715·x³` of a tanh Gelu) are not residual; a static
//! operand (bias, mask, relative-position bias) is never a side.
//!
//! From the branch value the walk goes back through ops that do not mix features — views
//! (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Identity, Cast), Dropout, an `Add`/`Sub`/
//! `Mul`/`Div` with a static operand (a bias, a scale), and norm ops
//! (BatchNormalization, LayerNormalization, InstanceNormalization, GroupNormalization,
//! SimplifiedLayerNormalization), whose scale it records as the branch's **last norm** when it is
//! the first norm met (a decomposed norm's `Mul γ`, which the analysis tags
//! [`Role::NormScale`], counts too) — until it reaches a weight layer: that layer's weight is the
//! branch's **output projection**. Any other op (an activation, a gating product, a pooling)
//! ends the walk without a projection.
//!
//! **Depth**: each residual branch has a signature, the sorted list of (op, weight shape) of the
//! weight layers that feed the branch but not the stream; the depth is the largest number of
//! residual adds sharing one signature (GPT-2's `n_layer`: each block adds an attention branch
//! and an MLP branch, each signature once per block).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Analysis, Role};
use crate::onnx::skeleton::{Graph, Model};

/// One residual `Add`: a branch put back into the stream it left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidualAdd {
    /// The node's name (or `#index` when it has none).
    pub node: String,
    /// The stream operand's value name.
    pub stream: String,
    /// The branch operand's value name.
    pub branch: String,
    /// Weight layers on the branch since the fork, and on the stream side.
    pub branch_layers: usize,
    /// Weight layers on the stream side since the fork.
    pub stream_layers: usize,
    /// The branch's output projection: the weight initializer of the last weight layer before
    /// the add, if the walk back reaches one.
    pub projection: Option<String>,
    /// The scale initializer of the first norm met walking back from the add (the branch's
    /// last norm), if any before the projection.
    pub last_norm: Option<String>,
    /// The branch's signature (see the module docs).
    pub signature: String,
}

/// The residual structure of a model's main graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Residuals {
    /// Every residual add, in node order.
    pub adds: Vec<ResidualAdd>,
    /// The number of repeated blocks: the largest number of residual adds sharing a signature
    /// (0 without residual adds).
    pub depth: usize,
}

impl Residuals {
    /// The residual add whose branch ends in projection `name`, if any.
    pub fn projection(&self, name: &str) -> Option<&ResidualAdd> {
        self.adds
            .iter()
            .find(|a| a.projection.as_deref() == Some(name))
    }

    /// The residual add whose branch's last norm has scale `name`, if any.
    pub fn last_norm(&self, name: &str) -> Option<&ResidualAdd> {
        self.adds
            .iter()
            .find(|a| a.last_norm.as_deref() == Some(name))
    }
}

const VIEWS: &[&str] = &[
    "Transpose",
    "Cast",
    "Identity",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Dropout",
];
const NORMS: &[&str] = &[
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
];
const SHAPE_OPS: &[&str] = &["Shape", "Size", "ConstantOfShape", "EyeLike", "Range"];

/// Read the residual structure of `model`'s main graph, using `analysis` (of the same model) for
/// the initializers' roles. Never fails: a graph it cannot read has no residual adds.
pub fn residuals(model: &Model, analysis: &Analysis) -> Residuals {
    let Some(graph) = model.graph.as_ref() else {
        return Residuals::default();
    };
    Finder::new(graph, analysis).run()
}

/// The weights whose layer output reaches, through views and static scalings only, the left
/// operand of a MatMul of two activations: the query projections of attention (`Q` in `Q·Kᵀ`;
/// keys reach the right operand, values the right operand of `P·V`, whose left is a Softmax).
pub fn attention_queries(model: &Model, analysis: &Analysis) -> HashSet<String> {
    let Some(graph) = model.graph.as_ref() else {
        return HashSet::new();
    };
    Finder::new(graph, analysis).queries()
}

/// Learned tokens of a vision transformer, read from the graph (see [`learned_tokens`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnedTokens {
    /// Class tokens: initializers (or an `Expand`, `Tile` or view of one) concatenated with an
    /// activation computed by a weight layer — the token put before the patch sequence.
    pub class_tokens: Vec<String>,
    /// Position embeddings: initializers of rank ≥ 2 with more than one row, added (through
    /// views) to the token sequence — a Concat with a class token, or a weight layer's output.
    pub position_embeddings: Vec<String>,
}

/// The class tokens and position embeddings of `model`'s main graph: float initializers the
/// analysis left without a role (they are no layer's parameter slot), found by how the graph
/// uses them, not by name. A mask or a relative-position bias is added to attention scores (a
/// MatMul of two activations), not to a Concat or a weight layer's output, and is not one.
pub fn learned_tokens(model: &Model, analysis: &Analysis) -> LearnedTokens {
    let Some(graph) = model.graph.as_ref() else {
        return LearnedTokens::default();
    };
    Finder::new(graph, analysis).tokens(analysis)
}

/// The embedding tables gathered with run-time indices (token ids: a Gather whose indices are
/// an activation, not a folded position or token-type row; the word embedding of onnxruntime's
/// EmbedLayerNormalization), with their row counts, in node order.
pub fn token_embeddings(model: &Model, analysis: &Analysis) -> Vec<(String, i64)> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    let f = Finder::new(graph, analysis);
    let mut out: Vec<(String, i64)> = Vec::new();
    for n in &graph.node {
        // onnxruntime's fused EmbedLayerNormalization: input_ids, segment_ids, word_embedding.
        if n.op_type.as_deref() == Some("EmbedLayerNormalization") && n.input.len() > 2 {
            if let Some(name) = f.ids.get(n.input[2].as_str()).and_then(|&v| f.init_view[v])
                && !out.iter().any(|(o, _)| o == name)
                && let Some(rows) = f.dims(name).first()
            {
                out.push((name.to_owned(), *rows));
            }
            continue;
        }
        if n.op_type.as_deref() != Some("Gather") || n.input.len() < 2 {
            continue;
        }
        let (Some(&data), Some(&idx)) = (
            f.ids.get(n.input[0].as_str()),
            f.ids.get(n.input[1].as_str()),
        ) else {
            continue;
        };
        let Some(name) = f.init_view[data] else {
            continue;
        };
        if f.is_static[idx] || out.iter().any(|(o, _)| o == name) {
            continue;
        }
        if let Some(rows) = f.dims(name).first() {
            out.push((name.to_owned(), *rows));
        }
    }
    out
}

/// The weights of the layers whose output is a graph output through views and static biases or
/// scalings only (a language model's head into the logits), in node order.
pub fn output_layers(model: &Model, analysis: &Analysis) -> Vec<String> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    Finder::new(graph, analysis).output_layers()
}

struct Finder<'m> {
    graph: &'m Graph,
    /// Value name → id.
    ids: HashMap<&'m str, usize>,
    /// Producer node of each value.
    producer: Vec<Option<usize>>,
    is_static: Vec<bool>,
    /// The initializer (and its role) a static value is a view of.
    param: Vec<Option<(&'m str, Role)>>,
    depth: Vec<usize>,
    /// Per node: the weight initializer that makes it a weight layer.
    weight_of_node: Vec<Option<&'m str>>,
    /// The initializer a static value is (a view, `Expand` or `Tile` of), whatever its role.
    init_view: Vec<Option<&'m str>>,
}

impl<'m> Finder<'m> {
    fn new(graph: &'m Graph, analysis: &'m Analysis) -> Self {
        let mut ids: HashMap<&'m str, usize> = HashMap::new();
        let mut intern = |s: &'m str| {
            let n = ids.len();
            *ids.entry(s).or_insert(n)
        };
        for i in &graph.initializer {
            intern(i.name.as_str());
        }
        for i in &graph.input {
            intern(i.name.as_deref().unwrap_or(""));
        }
        for n in &graph.node {
            for v in n.input.iter().chain(&n.output) {
                intern(v);
            }
        }
        let count = ids.len();
        let mut me = Finder {
            graph,
            ids,
            producer: vec![None; count],
            is_static: vec![false; count],
            param: vec![None; count],
            depth: vec![0; count],
            weight_of_node: vec![None; graph.node.len()],
            init_view: vec![None; count],
        };
        let roles: HashMap<&str, Role> = analysis
            .tensors
            .iter()
            .filter(|t| t.graph.is_empty())
            .filter_map(|t| Some((t.name.as_str(), t.role?)))
            .collect();
        for i in &graph.initializer {
            let name = i.name.as_str();
            let id = me.ids[name];
            me.is_static[id] = true;
            me.param[id] = roles.get(name).map(|&r| (name, r));
            me.init_view[id] = Some(name);
        }
        // An input with an initializer of the same name is still a run-time input.
        for i in &graph.input {
            let id = me.ids[i.name.as_deref().unwrap_or("")];
            me.is_static[id] = false;
            me.param[id] = None;
            me.init_view[id] = None;
        }
        for (k, n) in graph.node.iter().enumerate() {
            let op = n.op_type.as_deref().unwrap_or("");
            let ins: Vec<usize> = n
                .input
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| me.ids[s.as_str()])
                .collect();
            let stat =
                op == "Constant" || SHAPE_OPS.contains(&op) || ins.iter().all(|&v| me.is_static[v]);
            let weight = ins.iter().find_map(|&v| match me.param[v] {
                Some((name, Role::Weight)) => Some(name),
                _ => None,
            });
            me.weight_of_node[k] = weight;
            let view_param = if VIEWS.contains(&op) {
                ins.first().and_then(|&v| me.param[v])
            } else {
                None
            };
            let view_init = if VIEWS.contains(&op) || matches!(op, "Expand" | "Tile") {
                ins.first().and_then(|&v| me.init_view[v])
            } else {
                None
            };
            let d = ins
                .iter()
                .filter(|&&v| !me.is_static[v])
                .map(|&v| me.depth[v])
                .max()
                .unwrap_or(0)
                + usize::from(weight.is_some());
            for o in n.output.iter().filter(|s| !s.is_empty()) {
                let id = me.ids[o.as_str()];
                me.producer[id] = Some(k);
                me.is_static[id] = stat;
                me.param[id] = if stat { view_param } else { None };
                me.init_view[id] = if stat { view_init } else { None };
                me.depth[id] = d;
            }
        }
        me
    }

    /// The activation inputs of node `k`.
    fn act_inputs(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.node[k]
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| self.ids[s.as_str()])
            .filter(|&v| !self.is_static[v])
    }

    /// Every activation `v` depends on (itself included), by value id.
    fn ancestors(&self, v: usize) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        let mut stack = vec![v];
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            if let Some(k) = self.producer[x] {
                stack.extend(self.act_inputs(k).filter(|&i| !seen[i]));
            }
        }
        seen
    }

    fn run(&self) -> Residuals {
        let mut names = vec![""; self.ids.len()];
        for (&n, &id) in &self.ids {
            names[id] = n;
        }
        let mut adds = Vec::new();
        for (k, n) in self.graph.node.iter().enumerate() {
            let op = n.op_type.as_deref().unwrap_or("");
            // onnxruntime's fused SkipLayerNormalization adds its inputs 0 and 1 before the norm.
            let skip = matches!(
                op,
                "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization"
            );
            if !(skip && n.input.len() >= 2 || matches!(op, "Add" | "Sum") && n.input.len() == 2) {
                continue;
            }
            let (Some(&a), Some(&b)) = (
                self.ids.get(n.input[0].as_str()),
                self.ids.get(n.input[1].as_str()),
            ) else {
                continue;
            };
            if self.is_static[a] || self.is_static[b] {
                continue;
            }
            let (anc_a, anc_b) = (self.ancestors(a), self.ancestors(b));
            let Some(fork) = (0..self.ids.len())
                .filter(|&v| anc_a[v] && anc_b[v])
                .max_by_key(|&v| self.depth[v])
            else {
                continue;
            };
            let (la, lb) = (
                self.depth[a] - self.depth[fork],
                self.depth[b] - self.depth[fork],
            );
            if la == lb {
                continue;
            }
            let (branch, stream, bl, sl, anc_br, anc_st) = if la > lb {
                (a, b, la, lb, &anc_a, &anc_b)
            } else {
                (b, a, lb, la, &anc_b, &anc_a)
            };
            let (projection, last_norm) = self.walk_back(branch);
            let mut sig: Vec<String> = (0..self.ids.len())
                .filter(|&v| anc_br[v] && !anc_st[v])
                .filter_map(|v| {
                    let p = self.producer[v]?;
                    let w = self.weight_of_node[p]?;
                    let dims = self
                        .graph
                        .initializer
                        .iter()
                        .find(|i| i.name == *w)
                        .map(|i| i.dims.clone())
                        .unwrap_or_default();
                    Some(format!(
                        "{}{:?}",
                        self.graph.node[p].op_type.as_deref().unwrap_or(""),
                        dims
                    ))
                })
                .collect();
            sig.sort();
            adds.push(ResidualAdd {
                node: n
                    .name
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("#{k}")),
                stream: names[stream].to_owned(),
                branch: names[branch].to_owned(),
                branch_layers: bl,
                stream_layers: sl,
                projection: projection.map(str::to_owned),
                last_norm: last_norm.map(str::to_owned),
                signature: sig.join(" "),
            });
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &adds {
            *counts.entry(a.signature.as_str()).or_default() += 1;
        }
        let depth = counts.values().copied().max().unwrap_or(0);
        Residuals { adds, depth }
    }

    fn queries(&self) -> HashSet<String> {
        let consumers = self.consumers();
        let mut out = HashSet::new();
        for (k, _) in self.graph.node.iter().enumerate() {
            let Some(w) = self.weight_of_node[k] else {
                continue;
            };
            self.walk_forward(
                k,
                &consumers,
                |_| false,
                |c, slot| {
                    let op = self.graph.node[c].op_type.as_deref().unwrap_or("");
                    let product = op == "MatMul"
                        && self.weight_of_node[c].is_none()
                        && self.act_inputs(c).count() == 2;
                    if product && slot == 0 {
                        out.insert(w.to_owned());
                    }
                    product
                },
            );
        }
        out
    }

    /// Each value's consumers: (node, input slot).
    fn consumers(&self) -> Vec<Vec<(usize, usize)>> {
        let mut consumers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.ids.len()];
        for (k, n) in self.graph.node.iter().enumerate() {
            for (slot, s) in n.input.iter().enumerate() {
                if let Some(&v) = self.ids.get(s.as_str()) {
                    consumers[v].push((k, slot));
                }
            }
        }
        consumers
    }

    /// Walk forward from node `k`'s outputs through what keeps a layer's output the same
    /// values (views, and element-wise ops with one activation operand), never into another
    /// weight layer, over at most 64 values. `at_value(v)` sees each value reached and ends the
    /// walk by returning true; `at_consumer(node, slot)` sees each consumer of a value and
    /// returns true to stop there (the walk does not pass through it).
    fn walk_forward(
        &self,
        k: usize,
        consumers: &[Vec<(usize, usize)>],
        mut at_value: impl FnMut(usize) -> bool,
        mut at_consumer: impl FnMut(usize, usize) -> bool,
    ) {
        let mut stack: Vec<usize> = self.graph.node[k]
            .output
            .iter()
            .filter_map(|s| self.ids.get(s.as_str()).copied())
            .collect();
        let mut steps = 0;
        while let Some(v) = stack.pop() {
            steps += 1;
            if steps > 64 || at_value(v) {
                return;
            }
            for &(c, slot) in &consumers[v] {
                if at_consumer(c, slot) {
                    continue;
                }
                let op = self.graph.node[c].op_type.as_deref().unwrap_or("");
                let through = VIEWS.contains(&op)
                    || (matches!(op, "Add" | "Sub" | "Mul" | "Div")
                        && self.act_inputs(c).count() == 1);
                if through && self.weight_of_node[c].is_none() {
                    stack.extend(
                        self.graph.node[c]
                            .output
                            .iter()
                            .filter_map(|s| self.ids.get(s.as_str()).copied()),
                    );
                }
            }
        }
    }

    /// The dims of initializer `name`.
    fn dims(&self, name: &str) -> &'m [i64] {
        self.graph
            .initializer
            .iter()
            .find(|i| i.name == *name)
            .map_or(&[], |i| i.dims.as_slice())
    }

    /// The initializer operand of node `k` that the analysis left without a role, if one.
    fn unroled_inits(&self, k: usize, analysis: &Analysis) -> Vec<&'m str> {
        self.graph.node[k]
            .input
            .iter()
            .filter_map(|s| self.ids.get(s.as_str()))
            .filter(|&&v| self.is_static[v])
            .filter_map(|&v| self.init_view[v])
            .filter(|name| {
                analysis
                    .find("", name)
                    .is_some_and(|t| t.role.is_none() && matches!(t.data_type, 1 | 10 | 11 | 16))
            })
            .collect()
    }

    fn tokens(&self, analysis: &Analysis) -> LearnedTokens {
        let mut out = LearnedTokens::default();
        let mut concat_with_token = HashSet::new();
        for (k, n) in self.graph.node.iter().enumerate() {
            if n.op_type.as_deref() != Some("Concat")
                || !self.act_inputs(k).any(|v| self.depth[v] >= 1)
            {
                continue;
            }
            for name in self.unroled_inits(k, analysis) {
                concat_with_token.insert(k);
                if !out.class_tokens.iter().any(|c| c == name) {
                    out.class_tokens.push(name.to_owned());
                }
            }
        }
        for (k, n) in self.graph.node.iter().enumerate() {
            if n.op_type.as_deref() != Some("Add") || self.act_inputs(k).count() != 1 {
                continue;
            }
            let Some(mut v) = self.act_inputs(k).next() else {
                continue;
            };
            // Back through views to what made the token sequence.
            let mut sequence = false;
            for _ in 0..16 {
                let Some(p) = self.producer[v] else { break };
                let op = self.graph.node[p].op_type.as_deref().unwrap_or("");
                if concat_with_token.contains(&p) || self.weight_of_node[p].is_some() {
                    sequence = true;
                    break;
                }
                if !VIEWS.contains(&op) {
                    break;
                }
                match self.act_inputs(p).next() {
                    Some(next) => v = next,
                    None => break,
                }
            }
            if !sequence {
                continue;
            }
            for name in self.unroled_inits(k, analysis) {
                let dims = self.dims(name);
                let rows: i64 = dims[..dims.len().saturating_sub(1)].iter().product();
                if dims.len() >= 2 && rows > 1 && !out.position_embeddings.iter().any(|c| c == name)
                {
                    out.position_embeddings.push(name.to_owned());
                }
            }
        }
        out
    }

    fn output_layers(&self) -> Vec<String> {
        let outputs: HashSet<&str> = self
            .graph
            .output
            .iter()
            .filter_map(|o| o.name.as_deref())
            .collect();
        let consumers = self.consumers();
        let mut names = vec![""; self.ids.len()];
        for (&n, &id) in &self.ids {
            names[id] = n;
        }
        let mut out = Vec::new();
        for (k, _) in self.graph.node.iter().enumerate() {
            let Some(w) = self.weight_of_node[k] else {
                continue;
            };
            let mut reaches = false;
            self.walk_forward(
                k,
                &consumers,
                |v| {
                    reaches = outputs.contains(names[v]);
                    reaches
                },
                |_, _| false,
            );
            if reaches && !out.iter().any(|o| o == w) {
                out.push(w.to_owned());
            }
        }
        out
    }

    /// From the branch value back to its output projection, noting the first norm met.
    fn walk_back(&self, mut v: usize) -> (Option<&'m str>, Option<&'m str>) {
        let mut last_norm = None;
        for _ in 0..64 {
            let Some(k) = self.producer[v] else {
                break;
            };
            if let Some(w) = self.weight_of_node[k] {
                return (Some(w), last_norm);
            }
            let n = &self.graph.node[k];
            let op = n.op_type.as_deref().unwrap_or("");
            let params: Vec<(&str, Role)> = n
                .input
                .iter()
                .filter_map(|s| self.ids.get(s.as_str()))
                .filter_map(|&i| self.param[i])
                .collect();
            let scale = params
                .iter()
                .find(|(_, r)| matches!(r, Role::NormScale | Role::NormOffset))
                .map(|(p, _)| *p);
            let through = if NORMS.contains(&op) {
                if last_norm.is_none() {
                    last_norm = scale;
                }
                true
            } else if matches!(op, "Add" | "Sub" | "Mul" | "Div") {
                if op == "Mul" && last_norm.is_none() && scale.is_some() {
                    last_norm = scale;
                }
                self.act_inputs(k).count() == 1
            } else {
                VIEWS.contains(&op)
            };
            if !through {
                break;
            }
            match self.act_inputs(k).next() {
                Some(next) => v = next,
                None => break,
            }
        }
        (None, last_norm)
    }
}
