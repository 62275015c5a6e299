//! Producer/consumer index across the main graph and every nested subgraph.
//!
//! ONNX subgraphs (If branches, Loop and Scan bodies) may read values of enclosing graphs by
//! name, without listing them as inputs. The index therefore resolves every node input to the
//! value it names in the nearest enclosing scope that defines it, so that the uses of an
//! initializer include the nodes of nested bodies that read it. Values are identified by
//! (defining scope, name); nodes by a global index.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::ops::{self, Source};
use super::{ConstValues, Consumer};
use crate::onnx::dtype::DType;
use crate::onnx::shared::SharedStr;
use crate::onnx::skeleton::{Attribute, ConstTensor, Graph, Node, TensorHeader};

/// Index of a graph (scope) in [`GraphIndex::scopes`]; 0 is the main graph.
pub(crate) type ScopeId = usize;
/// Index of a node in [`GraphIndex::nodes`].
pub(crate) type NodeId = usize;
/// Index of a value in [`GraphIndex::values`].
pub(crate) type ValueId = usize;

/// The slot of an initializer in [`GraphIndex::initializers`] that has no value.
const NO_VALUE: u32 = u32::MAX;

/// Deepest chain of Identity/Cast/Transpose (or of constant folding) followed before giving up:
/// real exports have one or two; the bound only protects against cyclic or adversarial files.
const MAX_CHAIN: usize = 64;

/// One graph: the main graph or a body held by a node attribute.
#[derive(Debug)]
pub(crate) struct Scope<'m> {
    /// Path string per the scanner contract (`""` for the main graph); shared by the
    /// scope's tensors' entries.
    pub path: SharedStr,
    /// The graph itself.
    pub graph: &'m Graph,
    /// The enclosing scope, `None` for the main graph.
    pub parent: Option<ScopeId>,
    /// The node whose attribute holds this graph.
    pub owner: Option<NodeId>,
}

/// A node with its inputs and outputs resolved to values.
#[derive(Debug)]
pub(crate) struct NodeEntry<'m> {
    /// The scope the node belongs to.
    pub scope: ScopeId,
    /// Position in its graph's node list.
    pub index: usize,
    /// The node.
    pub node: &'m Node,
    /// One entry per input slot; `None` for an omitted optional input (`""`).
    pub inputs: Vec<Option<ValueId>>,
    /// One entry per output slot; `None` for an omitted optional output.
    pub outputs: Vec<Option<ValueId>>,
}

/// How a value comes into being. Ids are `u32` (a graph of 2^32 nodes or initializers would
/// not fit in memory) so that a [`Value`] is 56 bytes, not 72.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Def {
    /// Initializer number `i` of its scope's graph ([`GraphIndex::header`]).
    Initializer(u32),
    /// A graph input (of the main graph or a body).
    Input,
    /// Output `slot` of node `node`.
    Node { node: u32, slot: u32 },
    /// Referenced but defined nowhere (a malformed graph).
    Undefined,
}

/// A value (tensor name in a scope).
#[derive(Debug)]
pub(crate) struct Value<'m> {
    /// Its name.
    pub name: &'m str,
    /// Every (node, input slot) reading it, in this and nested scopes, in node order.
    pub uses: Vec<(NodeId, usize)>,
    /// Defining scope (a [`ScopeId`]: see [`Value::scope`]).
    scope: u32,
    /// Where it comes from.
    pub def: Def,
}

impl Value<'_> {
    /// The defining scope.
    pub(crate) fn scope(&self) -> ScopeId {
        self.scope as ScopeId
    }
}

/// `x` as a `u32` id: 2^32 nodes, values or initializers would take hundreds of gigabytes
/// before this could fail.
fn id32(x: usize) -> u32 {
    u32::try_from(x).expect("fewer than 2^32 graph items")
}

/// A use of an initializer by a node that is not a pure view of it.
#[derive(Debug, Clone)]
pub(crate) struct RealUse {
    /// The consuming node.
    pub node: NodeId,
    /// Its input slot.
    pub slot: usize,
    /// Identity/Cast/Transpose nodes passed through, in order.
    pub via: Vec<NodeId>,
    /// The tensor's shape as the consumer sees it (permuted by the Transposes on the way).
    pub view_dims: Vec<i64>,
}

/// The index. Borrowed from the skeleton: building it copies no strings.
#[derive(Debug)]
pub(crate) struct GraphIndex<'m> {
    /// Scopes in pre-order (the scanner's graph order).
    pub scopes: Vec<Scope<'m>>,
    /// All nodes.
    pub nodes: Vec<NodeEntry<'m>>,
    /// All values.
    pub values: Vec<Value<'m>>,
    /// One slot per initializer, in scanner order: its value, or [`NO_VALUE`] for an
    /// initializer whose name no node input and no graph output reads (see
    /// [`Self::initializer_slots`]). Four bytes a slot: a model of millions of unused
    /// initializers holds no [`Value`] for them.
    initializers: Vec<u32>,
    /// Structural problems found while indexing.
    pub warnings: Vec<String>,
    /// (scope, name) → value, while building only (emptied once every use is resolved).
    lookup: HashMap<(ScopeId, &'m str), ValueId>,
    /// See [`Self::outputs_of`].
    graph_outputs: HashMap<ValueId, Vec<(ScopeId, usize)>>,
}

impl<'m> GraphIndex<'m> {
    /// Index `main` and all graphs nested in node attributes.
    pub(super) fn build(main: &'m Graph) -> Self {
        let mut index = GraphIndex {
            scopes: Vec::new(),
            nodes: Vec::new(),
            values: Vec::new(),
            initializers: Vec::new(),
            warnings: Vec::new(),
            lookup: HashMap::new(),
            graph_outputs: HashMap::new(),
        };
        index.add_scope(main, String::new(), None, None);
        index.define_values();
        index.resolve_uses();
        // Names are resolved: the name table (~60 bytes per value, most of a model of many
        // initializers) is not held while every initializer is analysed.
        index.lookup = HashMap::new();
        index
    }

    /// Register `graph` and, in pre-order, every graph nested in its nodes' attributes.
    fn add_scope(
        &mut self,
        graph: &'m Graph,
        path: String,
        parent: Option<ScopeId>,
        owner: Option<NodeId>,
    ) {
        let scope = self.scopes.len();
        self.scopes.push(Scope {
            path: path.into(),
            graph,
            parent,
            owner,
        });
        let first_node = self.nodes.len();
        for (index, node) in graph.node.iter().enumerate() {
            self.nodes.push(NodeEntry {
                scope,
                index,
                node,
                inputs: Vec::new(),
                outputs: Vec::new(),
            });
        }
        for (index, node) in graph.node.iter().enumerate() {
            let node_id = first_node + index;
            let node_label = display_name(node, index);
            for attr in &node.attribute {
                let attr_name = attr.name.as_deref().unwrap_or("");
                if let Some(g) = &attr.g {
                    let p = format!("{}/{node_label}.{attr_name}", self.scopes[scope].path);
                    self.add_scope(g, p, Some(scope), Some(node_id));
                }
                for (i, g) in attr.graphs.iter().enumerate() {
                    let p = format!("{}/{node_label}.{attr_name}[{i}]", self.scopes[scope].path);
                    self.add_scope(g, p, Some(scope), Some(node_id));
                }
            }
        }
    }

    fn new_value(&mut self, scope: ScopeId, name: &'m str, def: Def) -> ValueId {
        let id = self.values.len();
        self.values.push(Value {
            scope: id32(scope),
            name,
            def,
            uses: Vec::new(),
        });
        id
    }

    /// Every name read in any scope: node inputs (omitted optional inputs `""` aside) and
    /// graph outputs. A body may read an enclosing scope's value, so one set serves every
    /// scope; a name read elsewhere than where it is defined only costs a value without uses.
    fn referenced_names(&self) -> HashSet<&'m str> {
        let mut names = HashSet::new();
        for e in &self.nodes {
            names.extend(
                e.node
                    .input
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !n.is_empty()),
            );
        }
        for s in &self.scopes {
            names.extend(
                s.graph
                    .output
                    .iter()
                    .map(|o| o.name.as_deref().unwrap_or("")),
            );
        }
        names
    }

    /// Define the referenced initializers and graph inputs, and the node outputs, of every
    /// scope. An initializer nothing reads gets its slot in `initializers` and no value: its
    /// analysis is that of a value without uses (see [`Self::initializer_slots`]).
    fn define_values(&mut self) {
        let initializers: usize = self.scopes.iter().map(|s| s.graph.initializer.len()).sum();
        // Dropped on return: it lives while the values are defined, not while they are
        // analysed.
        let referenced = self.referenced_names();
        let is_read = |name: &str| referenced.contains(name);
        // Node outputs nothing reads (few: dangling outputs), by scope, and the unread
        // initializers and graph inputs they redefine: without a value of their own, those
        // must still be reported as defined twice when the node output is defined.
        let unread_outputs: HashSet<(ScopeId, &'m str)> = self
            .nodes
            .iter()
            .flat_map(|e| e.node.output.iter().map(move |o| (e.scope, o.as_str())))
            .filter(|&(_, o)| !o.is_empty() && !is_read(o))
            .collect();
        let mut shadowed: HashSet<(ScopeId, &'m str)> = HashSet::new();
        // Reserved up front: grown by doubling, these tables would hold up to twice their size
        // for a model of millions of initializers.
        let defined: usize = self
            .scopes
            .iter()
            .map(|s| {
                s.graph
                    .initializer
                    .iter()
                    .filter(|h| is_read(&h.name))
                    .count()
                    + s.graph.input.len()
            })
            .chain(self.nodes.iter().map(|n| n.node.output.len()))
            .sum();
        self.values.reserve_exact(defined);
        self.initializers.reserve_exact(initializers);
        self.lookup.reserve(defined);
        for scope in 0..self.scopes.len() {
            let graph = self.scopes[scope].graph;
            for (position, header) in graph.initializer.iter().enumerate() {
                let name = header.name.as_str();
                if !is_read(name) {
                    if unread_outputs.contains(&(scope, name)) {
                        shadowed.insert((scope, name));
                    }
                    self.initializers.push(NO_VALUE);
                    continue;
                }
                let id = self.new_value(scope, name, Def::Initializer(id32(position)));
                // Every initializer gets a slot even if its name repeats, so the output stays
                // aligned with the scanner; lookups resolve to the first one. (A repeated name
                // that nothing reads changes no lookup, and the loader refuses it anyway.)
                self.initializers.push(id32(id));
                match self.lookup.entry((scope, name)) {
                    Entry::Occupied(_) => self.warnings.push(format!(
                        "graph '{}': initializer '{name}' is defined more than once",
                        self.scopes[scope].path
                    )),
                    Entry::Vacant(e) => {
                        e.insert(id);
                    }
                }
            }
            for input in &graph.input {
                let name = input.name.as_deref().unwrap_or("");
                // IR < 4 lists initializers among the inputs too: the initializer wins. An
                // input nothing reads needs no value either.
                if name.is_empty() {
                    continue;
                }
                if !is_read(name) {
                    if unread_outputs.contains(&(scope, name)) {
                        shadowed.insert((scope, name));
                    }
                } else if !self.lookup.contains_key(&(scope, name)) {
                    let id = self.new_value(scope, name, Def::Input);
                    self.lookup.insert((scope, name), id);
                }
            }
        }
        for node_id in 0..self.nodes.len() {
            let scope = self.nodes[node_id].scope;
            let node = self.nodes[node_id].node;
            let mut outputs = Vec::with_capacity(node.output.len());
            for (slot, name) in node.output.iter().enumerate() {
                if name.is_empty() {
                    outputs.push(None);
                    continue;
                }
                let id = self.new_value(
                    scope,
                    name,
                    Def::Node {
                        node: id32(node_id),
                        slot: id32(slot),
                    },
                );
                if self.lookup.contains_key(&(scope, name.as_str()))
                    || shadowed.contains(&(scope, name.as_str()))
                {
                    self.warnings.push(format!(
                        "graph '{}': value '{name}' is defined more than once",
                        self.scopes[scope].path
                    ));
                } else {
                    self.lookup.insert((scope, name), id);
                }
                outputs.push(Some(id));
            }
            self.nodes[node_id].outputs = outputs;
        }
    }

    /// The value `name` refers to when read in `scope`: the nearest enclosing definition.
    fn resolve(&self, mut scope: ScopeId, name: &str) -> Option<ValueId> {
        loop {
            if let Some(&id) = self.lookup.get(&(scope, name)) {
                return Some(id);
            }
            scope = self.scopes[scope].parent?;
        }
    }

    /// Attach every node input and graph output to the value it names.
    fn resolve_uses(&mut self) {
        for node_id in 0..self.nodes.len() {
            let scope = self.nodes[node_id].scope;
            let node = self.nodes[node_id].node;
            let mut inputs = Vec::with_capacity(node.input.len());
            for (slot, name) in node.input.iter().enumerate() {
                if name.is_empty() {
                    inputs.push(None);
                    continue;
                }
                let id = if let Some(id) = self.resolve(scope, name) {
                    id
                } else {
                    self.warnings.push(format!(
                        "graph '{}': node '{}' reads '{name}', which is defined nowhere",
                        self.scopes[scope].path,
                        display_name(node, self.nodes[node_id].index)
                    ));
                    let id = self.new_value(scope, name, Def::Undefined);
                    self.lookup.insert((scope, name), id);
                    id
                };
                self.values[id].uses.push((node_id, slot));
                inputs.push(Some(id));
            }
            self.nodes[node_id].inputs = inputs;
        }
        for scope in 0..self.scopes.len() {
            for (position, output) in self.scopes[scope].graph.output.iter().enumerate() {
                let name = output.name.as_deref().unwrap_or("");
                if let Some(id) = self.resolve(scope, name) {
                    self.graph_outputs
                        .entry(id)
                        .or_default()
                        .push((scope, position));
                }
            }
        }
    }

    /// The graph outputs value `id` is: (scope whose output list names it, position), in scope
    /// then position order. Kept apart from [`Value`]: few values are graph outputs, and an
    /// empty list in each would cost 24 bytes a value.
    pub(super) fn outputs_of(&self, id: ValueId) -> &[(ScopeId, usize)] {
        self.graph_outputs.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The value with this id.
    pub(super) fn value(&self, id: ValueId) -> &Value<'m> {
        &self.values[id]
    }

    /// The scope with this id.
    pub(super) fn scope(&self, id: ScopeId) -> &Scope<'m> {
        &self.scopes[id]
    }

    /// The node with this id.
    pub(super) fn node(&self, id: NodeId) -> &NodeEntry<'m> {
        &self.nodes[id]
    }

    /// The node's op type.
    pub(super) fn op(&self, id: NodeId) -> &'m str {
        self.nodes[id].node.op()
    }

    /// `name`, or `#index` for an unnamed node.
    pub(super) fn node_name(&self, id: NodeId) -> String {
        let e = &self.nodes[id];
        display_name(e.node, e.index)
    }

    /// `Op 'name'`, for messages.
    pub(super) fn node_label(&self, id: NodeId) -> String {
        format!("{} '{}'", self.op(id), self.node_name(id))
    }

    /// Input `slot` of `node`, if present.
    pub(super) fn input(&self, node: NodeId, slot: usize) -> Option<ValueId> {
        self.nodes[node].inputs.get(slot).copied().flatten()
    }

    /// Output `slot` of `node`, if present.
    pub(super) fn output(&self, node: NodeId, slot: usize) -> Option<ValueId> {
        self.nodes[node].outputs.get(slot).copied().flatten()
    }

    /// Every initializer in scanner order: its scope, its header and its value, `None` for
    /// one that nothing reads (no node input, no graph output names it in any scope), which
    /// has neither uses nor graph outputs.
    pub(super) fn initializer_slots(
        &self,
    ) -> impl Iterator<Item = (ScopeId, &'m TensorHeader, Option<ValueId>)> + '_ {
        self.scopes
            .iter()
            .enumerate()
            .flat_map(|(scope, s)| s.graph.initializer.iter().map(move |h| (scope, h)))
            .zip(&self.initializers)
            .map(|((scope, h), &slot)| (scope, h, (slot != NO_VALUE).then_some(slot as ValueId)))
    }

    /// Number of initializers, referenced or not.
    pub(super) fn initializer_count(&self) -> usize {
        self.initializers.len()
    }

    /// Initializer `i` of scope `scope` (a [`Def::Initializer`]).
    pub(super) fn header(&self, scope: ScopeId, i: u32) -> &'m TensorHeader {
        &self.scopes[scope].graph.initializer[i as usize]
    }

    /// The producing node and output slot of a value.
    pub(super) fn producer(&self, id: ValueId) -> Option<(NodeId, usize)> {
        match self.values[id].def {
            Def::Node { node, slot } => Some((node as NodeId, slot as usize)),
            _ => None,
        }
    }

    /// The uses of initializer `id`, looking through Identity (the TorchScript exporter routes
    /// merged initializers through it), Cast (f16 weights cast up) and Transpose (weights stored
    /// in the other layout), which change neither the tensor's role nor its values' meaning.
    pub(super) fn real_uses(&self, id: ValueId) -> Vec<RealUse> {
        let dims = match self.values[id].def {
            Def::Initializer(i) => self.header(self.values[id].scope(), i).dims.to_vec(),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.collect_uses(id, &dims, &mut Vec::new(), &mut out, &mut seen);
        // File order (scopes in pre-order), not discovery order: "the first consumer" then
        // means the first layer in the file that reads the tensor.
        out.sort_by_key(|u| (u.node, u.slot));
        out
    }

    fn collect_uses(
        &self,
        id: ValueId,
        dims: &[i64],
        via: &mut Vec<NodeId>,
        out: &mut Vec<RealUse>,
        seen: &mut HashSet<ValueId>,
    ) {
        if !seen.insert(id) || via.len() > MAX_CHAIN {
            return;
        }
        for &(node, slot) in &self.values[id].uses {
            let view = match (self.op(node), slot) {
                ("Identity" | "Cast", 0) => Some(dims.to_vec()),
                ("Transpose", 0) => Some(permute(dims, self.nodes[node].node.attr("perm"))),
                _ => None,
            };
            match (view, self.output(node, 0)) {
                (Some(view), Some(next)) => {
                    via.push(node);
                    self.collect_uses(next, &view, via, out, seen);
                    via.pop();
                }
                _ => out.push(RealUse {
                    node,
                    slot,
                    via: via.clone(),
                    view_dims: dims.to_vec(),
                }),
            }
        }
    }

    /// The initializer behind `id` (itself, or through Identity/Cast/Transpose producers), with
    /// its shape as `id` sees it.
    pub(super) fn initializer_behind(&self, mut id: ValueId) -> Option<(ValueId, Vec<i64>)> {
        let mut perms: Vec<Option<&Attribute>> = Vec::new();
        for _ in 0..MAX_CHAIN {
            match self.values[id].def {
                Def::Initializer(i) => {
                    let mut dims = self.header(self.values[id].scope(), i).dims.to_vec();
                    for perm in perms.iter().rev() {
                        dims = permute(&dims, *perm);
                    }
                    return Some((id, dims));
                }
                Def::Node { node, slot: 0 } => match self.op(node as NodeId) {
                    "Identity" | "Cast" => id = self.input(node as NodeId, 0)?,
                    "Transpose" => {
                        perms.push(self.nodes[node as NodeId].node.attr("perm"));
                        id = self.input(node as NodeId, 0)?;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        None
    }

    /// The public description of a use.
    pub(super) fn consumer(&self, u: &RealUse) -> Consumer {
        let e = &self.nodes[u.node];
        Consumer {
            node: self.node_name(u.node),
            op: e.node.op().to_owned(),
            slot: u.slot,
            graph: self.scopes[e.scope].path.to_string(),
            via: u.via.iter().map(|&n| self.node_label(n)).collect(),
        }
    }
}

/// A node's name, or `#index` when it has none (the scanner contract's path segment).
fn display_name(node: &Node, index: usize) -> String {
    match node.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => format!("#{index}"),
    }
}

/// `dims` permuted by a Transpose `perm` attribute (default: reversed). An invalid permutation
/// leaves the shape as is, which at worst misreports fans of a malformed model.
fn permute(dims: &[i64], perm: Option<&Attribute>) -> Vec<i64> {
    match perm {
        Some(a) if !a.ints.is_empty() => {
            let ok = a.ints.len() == dims.len()
                && a.ints.iter().all(|&p| p >= 0 && (p as usize) < dims.len());
            if ok {
                a.ints.iter().map(|&p| dims[p as usize]).collect()
            } else {
                dims.to_vec()
            }
        }
        _ => dims.iter().rev().copied().collect(),
    }
}

/// Number of elements of a shape (saturating; negative dims count as 0).
pub(crate) fn numel(dims: &[i64]) -> u64 {
    dims.iter()
        .map(|&d| u64::try_from(d).unwrap_or(0))
        .fold(1u64, u64::saturating_mul)
}

/// Constant evaluation light: which values do not depend on the model's data inputs, and the
/// value of scalar constants.
pub(crate) struct Scalars<'a, 'm> {
    index: &'a GraphIndex<'m>,
    consts: &'a dyn ConstValues,
    static_memo: RefCell<HashMap<ValueId, bool>>,
}

impl std::fmt::Debug for Scalars<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scalars").finish_non_exhaustive()
    }
}

impl<'a, 'm> Scalars<'a, 'm> {
    /// Evaluation over `index`, asking `consts` for initializer values.
    pub(super) fn new(index: &'a GraphIndex<'m>, consts: &'a dyn ConstValues) -> Self {
        Scalars {
            index,
            consts,
            static_memo: RefCell::new(HashMap::new()),
        }
    }

    /// Whether `id` is fixed for every run: an initializer, a Constant, a Shape/Size result
    /// (depends on shapes only), or computed from such values. Used to tell a scale or bias
    /// (`x * c`) from gating by another activation (`x * y`).
    pub(super) fn is_static(&self, id: ValueId) -> bool {
        self.is_static_depth(id, 0)
    }

    fn is_static_depth(&self, id: ValueId, depth: usize) -> bool {
        if let Some(&s) = self.static_memo.borrow().get(&id) {
            return s;
        }
        if depth > MAX_CHAIN {
            return false;
        }
        let index = self.index;
        let s = match index.value(id).def {
            Def::Initializer(_) => true,
            Def::Input | Def::Undefined => false,
            Def::Node { node, .. } => {
                let e = index.node(node as NodeId);
                let source = ops::by_name(e.node.op()).map_or(Source::Computed, |s| s.source);
                if source == Source::Static {
                    true
                } else if source == Source::Random
                    || e.node
                        .attribute
                        .iter()
                        .any(|a| a.g.is_some() || !a.graphs.is_empty())
                {
                    false
                } else {
                    e.inputs
                        .iter()
                        .flatten()
                        .all(|&i| self.is_static_depth(i, depth + 1))
                }
            }
        };
        self.static_memo.borrow_mut().insert(id, s);
        s
    }

    /// The values of initializer `id` if it has at most `max_len` elements and the loader can
    /// read them (see [`ConstValues`]).
    pub(super) fn initializer_values(&self, id: ValueId, max_len: usize) -> Option<Vec<f64>> {
        let v = self.index.value(id);
        match v.def {
            Def::Initializer(_) => {
                let path = &self.index.scope(v.scope()).path;
                self.consts.small_values(path, v.name, max_len)
            }
            _ => None,
        }
    }

    /// The value of a one-element constant: an initializer (through [`ConstValues`]), a
    /// `Constant` node, or either seen through Identity/Cast/Reshape/Squeeze/Unsqueeze.
    pub(super) fn scalar(&self, mut id: ValueId) -> Option<f64> {
        let index = self.index;
        for _ in 0..MAX_CHAIN {
            let v = index.value(id);
            match v.def {
                Def::Initializer(i) => {
                    if numel(&index.header(v.scope(), i).dims) != 1 {
                        return None;
                    }
                    let path = &index.scope(v.scope()).path;
                    return self
                        .consts
                        .small_values(path, v.name, 1)
                        .and_then(|x| x.first().copied());
                }
                Def::Node { node, slot: 0 } => match index.op(node as NodeId) {
                    "Constant" => return constant_scalar(index.node(node as NodeId).node),
                    "Identity" | "Cast" | "Reshape" | "Squeeze" | "Unsqueeze" => {
                        id = index.input(node as NodeId, 0)?;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        None
    }
}

/// The value of a one-element `Constant` node.
fn constant_scalar(node: &Node) -> Option<f64> {
    for a in &node.attribute {
        match a.name.as_deref() {
            Some("value") => return a.t.as_ref().and_then(tensor_scalar),
            Some("value_float") => return a.f.map(f64::from),
            Some("value_int") => return a.i.map(|i| i as f64),
            Some("value_floats") if a.floats.len() == 1 => return Some(f64::from(a.floats[0])),
            Some("value_ints") if a.ints.len() == 1 => return Some(a.ints[0] as f64),
            _ => {}
        }
    }
    None
}

/// The single value of a one-element tensor, from its typed field or `raw_data`
/// (little-endian, per onnx.proto).
pub(crate) fn tensor_scalar(t: &ConstTensor) -> Option<f64> {
    if numel(&t.dims) != 1 {
        return None;
    }
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let bytes = |n: usize| -> Option<&[u8]> { raw.filter(|r| r.len() == n) };
    let dtype = DType::from_onnx(t.data_type.unwrap_or(0));
    match dtype {
        DType::FLOAT => match bytes(4) {
            Some(b) => Some(f64::from(f32::from_le_bytes(b.try_into().ok()?))),
            None => t.float_data.first().map(|&x| f64::from(x)),
        },
        DType::DOUBLE => match bytes(8) {
            Some(b) => Some(f64::from_le_bytes(b.try_into().ok()?)),
            None => t.double_data.first().copied(),
        },
        DType::FLOAT16 | DType::BFLOAT16 => {
            let bits = match bytes(2) {
                Some(b) => u16::from_le_bytes(b.try_into().ok()?),
                None => *t.int32_data.first()? as u16,
            };
            Some(if dtype == DType::FLOAT16 {
                f64::from(half::f16::from_bits(bits))
            } else {
                f64::from(half::bf16::from_bits(bits))
            })
        }
        DType::INT32 => match bytes(4) {
            Some(b) => Some(f64::from(i32::from_le_bytes(b.try_into().ok()?))),
            None => t.int32_data.first().map(|&x| f64::from(x)),
        },
        DType::INT64 => match bytes(8) {
            Some(b) => Some(i64::from_le_bytes(b.try_into().ok()?) as f64),
            None => t.int64_data.first().map(|&x| x as f64),
        },
        DType::UINT8 | DType::INT8 | DType::UINT16 | DType::INT16 | DType::BOOL => {
            let x = match raw {
                Some(b) => match (dtype, b.len()) {
                    (DType::UINT8 | DType::BOOL, 1) => f64::from(b[0]),
                    (DType::INT8, 1) => f64::from(b[0] as i8),
                    (DType::UINT16, 2) => f64::from(u16::from_le_bytes([b[0], b[1]])),
                    (DType::INT16, 2) => f64::from(i16::from_le_bytes([b[0], b[1]])),
                    _ => return None,
                },
                None => f64::from(*t.int32_data.first()?),
            };
            Some(x)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::skeleton::ValueInfo;

    fn header(name: &str) -> TensorHeader {
        TensorHeader {
            dims: vec![1].into(),
            data_type: Some(1),
            name: name.into(),
        }
    }

    fn value_info(name: &str) -> ValueInfo {
        ValueInfo {
            name: Some(name.to_owned()),
            r#type: None,
        }
    }

    #[test]
    fn a_value_is_at_most_56_bytes() {
        assert!(size_of::<Value<'_>>() <= 56, "{}", size_of::<Value<'_>>());
    }

    #[test]
    fn only_initializers_something_reads_get_a_value() {
        // `w` is read by the node, `out` returned; `a` and `b` (also a graph input, as IR < 4
        // lists them) are read by nothing.
        let graph = Graph {
            initializer: ["a", "w", "b", "out"].map(header).to_vec(),
            input: vec![value_info("x"), value_info("b")],
            output: vec![value_info("y"), value_info("out")],
            node: vec![Node {
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                op_type: Some("MatMul".into()),
                ..Node::default()
            }],
            ..Graph::default()
        };
        let index = GraphIndex::build(&graph);
        // x, w, out and the node's y: no value for a, b, nor b's graph input.
        assert_eq!(index.values.len(), 4);
        let slots: Vec<(&str, bool)> = index
            .initializer_slots()
            .map(|(scope, h, v)| {
                assert_eq!(scope, 0);
                (h.name.as_str(), v.is_some())
            })
            .collect();
        assert_eq!(
            slots,
            [("a", false), ("w", true), ("b", false), ("out", true)]
        );
        assert_eq!(index.initializer_count(), 4);
        assert!(index.warnings.is_empty(), "{:?}", index.warnings);
    }
}
