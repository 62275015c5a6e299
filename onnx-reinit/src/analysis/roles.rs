//! Role and fans of one use of an initializer: a registry from op type to the handler of its
//! op family (one function per family), each deciding by input slot.
//!
//! A handler sees one (node, slot) use and returns a [`Candidate`]; `analyze` merges the
//! candidates of all uses of a tensor. Ops without a handler, and slots a handler does not list,
//! leave the tensor untouched with a reason naming the slot.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::graph::{GraphIndex, NodeId, RealUse, Scalars, ValueId, numel};
use super::{
    Activation, FanCompat, Fans, NormStatKind, RecurrentLayout, RecurrentOp, RecurrentPart, Role,
    fans,
};
use crate::onnx::dtype::DType;
use crate::onnx::skeleton::Node;

/// What one use of a tensor says about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// The role this use implies, `None` if it is not a parameter slot.
    pub role: Option<Role>,
    /// Why `role` is `None`.
    pub why: String,
    /// A use that does not read the values (Shape, Size): never worth a note.
    pub ignorable: bool,
    /// Fans per the requested convention.
    pub fans: Option<Fans>,
    /// Gate layout for recurrent parameters.
    pub recurrent: Option<RecurrentLayout>,
    /// Where the activation walk starts (the layer's output).
    pub walk_from: Option<ValueId>,
    /// An activation known without walking (recurrent ops).
    pub fixed_activation: Option<Activation>,
    /// A remark for the report (e.g. a packed projection's per-part fans).
    pub note: Option<String>,
}

impl Candidate {
    fn none(why: impl Into<String>) -> Self {
        Candidate {
            role: None,
            why: why.into(),
            ignorable: false,
            fans: None,
            recurrent: None,
            walk_from: None,
            fixed_activation: None,
            note: None,
        }
    }

    fn role(role: Role, walk_from: Option<ValueId>) -> Self {
        Candidate {
            role: Some(role),
            walk_from,
            ..Candidate::none("")
        }
    }

    fn with_fans(mut self, fans: Fans) -> Self {
        self.fans = Some(fans);
        self
    }
}

/// Everything a handler may look at.
pub(crate) struct SlotCtx<'c, 'a, 'm> {
    pub index: &'c GraphIndex<'m>,
    pub scalars: &'c Scalars<'a, 'm>,
    pub node: NodeId,
    pub n: &'m Node,
    pub op: &'m str,
    pub slot: usize,
    /// The tensor's shape as this consumer sees it.
    pub dims: &'c [i64],
    pub compat: FanCompat,
}

impl SlotCtx<'_, '_, '_> {
    /// The layer output the activation walk starts from.
    fn out0(&self) -> Option<ValueId> {
        self.index.output(self.node, 0)
    }
}

type Handler = fn(&SlotCtx<'_, '_, '_>) -> Candidate;

/// Op type → handler. Domain is checked before lookup (default ONNX domain and
/// `com.microsoft`, whose contrib ops share these names and semantics).
static REGISTRY: LazyLock<HashMap<&'static str, Handler>> = LazyLock::new(|| {
    let families: &[(&[&'static str], Handler)] = &[
        (&["Conv", "ConvTranspose"], conv_family),
        (&["Gemm"], gemm),
        (&["MatMul"], matmul),
        (&["LSTM", "GRU", "RNN"], recurrent),
        (&["Gather"], gather),
        (
            &[
                "BatchNormalization",
                "InstanceNormalization",
                "LayerNormalization",
                "GroupNormalization",
                "SimplifiedLayerNormalization",
                "RMSNormalization",
                "SkipLayerNormalization",
                "SkipSimplifiedLayerNormalization",
            ],
            normalization,
        ),
        (&["PRelu"], prelu),
        (&["Add"], add_bias),
    ];
    let mut map = HashMap::new();
    for (ops, handler) in families {
        for op in *ops {
            map.insert(*op, *handler);
        }
    }
    map
});

/// Whether ops of this domain follow ONNX (or ONNX Runtime contrib) semantics.
pub(crate) fn known_domain(node: &Node) -> bool {
    matches!(
        node.domain.as_deref(),
        None | Some("" | "ai.onnx" | "com.microsoft")
    )
}

/// The candidate for one real use of an initializer.
pub(crate) fn candidate(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    u: &RealUse,
    compat: FanCompat,
) -> Candidate {
    let n = index.node(u.node).node;
    let op = n.op();
    if !known_domain(n) {
        return Candidate::none(format!(
            "{op} from domain '{}' has no parameter rule",
            n.domain.as_deref().unwrap_or("")
        ));
    }
    if matches!(op, "Shape" | "Size") {
        return Candidate {
            ignorable: true,
            ..Candidate::none(format!("{op} reads only its shape"))
        };
    }
    let ctx = SlotCtx {
        index,
        scalars,
        node: u.node,
        n,
        op,
        slot: u.slot,
        dims: &u.view_dims,
        compat,
    };
    match REGISTRY.get(op) {
        Some(handler) => handler(&ctx),
        None => not_a_parameter(&ctx),
    }
}

/// f32, f16, f64, bf16: the types a rewrite can fill.
pub(crate) fn is_float_type(data_type: i32) -> bool {
    DType::from_onnx(data_type).is_float()
}

/// `TensorProto.DataType` name, for messages: the lower-case name, else the type's family.
pub(crate) fn dtype_name(data_type: i32) -> &'static str {
    let dtype = DType::from_onnx(data_type);
    dtype.short_name().unwrap_or(match dtype {
        // FLOAT4E2M1 is a 4-bit float, named with the 8-bit ones here.
        DType::FLOAT8E4M3FN
        | DType::FLOAT8E4M3FNUZ
        | DType::FLOAT8E5M2
        | DType::FLOAT8E5M2FNUZ
        | DType::FLOAT4E2M1 => "float8",
        DType::UINT4 | DType::INT4 => "4-bit integer",
        _ => "unknown-dtype",
    })
}

/// The reason for a slot no handler claims, naming the slot's formal input when it is one of
/// the usual suspects (shape, axes, bounds, exponents).
fn not_a_parameter(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let formal = match (ctx.op, ctx.slot) {
        ("Clip", 1) => "min bound",
        ("Clip", 2) => "max bound",
        ("Pow", 1) => "exponent",
        ("Reshape" | "Expand", 1) | ("ConstantOfShape", 0) => "shape",
        ("Tile", 1) => "repeats",
        ("Pad", 1) => "pads",
        ("Pad", 2) => "pad value",
        ("Slice", 1) => "starts",
        ("Slice", 2) => "ends",
        ("Slice", 3) | ("Squeeze" | "Unsqueeze", 1) => "axes",
        ("Slice", 4) => "steps",
        (op, 1) if op.starts_with("Reduce") => "axes",
        ("Resize" | "Upsample", 1) => "roi or scales",
        ("Resize", 2) => "scales",
        ("Resize", 3) => "sizes",
        ("Split", 1) => "split sizes",
        ("TopK", 1) => "k",
        ("Where", 0) => "condition",
        (
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Sum" | "Equal" | "Less" | "Greater",
            _,
        ) => "elementwise operand",
        _ => "",
    };
    let scalar = if numel(ctx.dims) <= 1 { "scalar " } else { "" };
    if formal.is_empty() {
        Candidate::none(format!(
            "{scalar}input {} of {}: no parameter rule for this op and slot",
            ctx.slot, ctx.op
        ))
    } else {
        Candidate::none(format!(
            "{scalar}input {} ({formal}) of {}: not a parameter",
            ctx.slot, ctx.op
        ))
    }
}

/// Conv and ConvTranspose: W (slot 1) is a weight, B (slot 2) a bias.
fn conv_family(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        1 => {
            let group = ctx.n.attr_i("group", 1);
            let f = if ctx.op == "Conv" {
                fans::conv(ctx.dims, group, ctx.compat)
            } else {
                fans::conv_transpose(ctx.dims, group, ctx.compat)
            };
            match f {
                Ok(f) => Candidate::role(Role::Weight, ctx.out0()).with_fans(f),
                Err(e) => Candidate::none(e),
            }
        }
        2 => Candidate::role(Role::Bias, ctx.out0()),
        _ => Candidate::none(format!(
            "input {} (data X) of {}: an input, not a parameter",
            ctx.slot, ctx.op
        )),
    }
}

/// Gemm: B (slot 1) is the weight; A (slot 0) too when it is the initializer; C is the bias.
fn gemm(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        0 | 1 => {
            let trans = if ctx.slot == 1 { "transB" } else { "transA" };
            match fans::gemm(ctx.dims, ctx.slot, ctx.n.attr_i(trans, 0) != 0) {
                Ok(f) => projection_weight(ctx, f),
                Err(e) => Candidate::none(e),
            }
        }
        2 => Candidate::role(Role::Bias, ctx.out0()),
        _ => not_a_parameter(ctx),
    }
}

/// MatMul: an initializer operand is a weight, on either side, batched or not.
fn matmul(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    match ctx.slot {
        0 | 1 => match fans::matmul(ctx.dims, ctx.slot) {
            Ok(f) => projection_weight(ctx, f),
            Err(e) => Candidate::none(e),
        },
        _ => not_a_parameter(ctx),
    }
}

/// The weight of a Gemm/MatMul with fans `f`; with true connectivity, a packed projection
/// (see [`packed_parts`]) gets the fans of one part: fan_out / k.
///
/// Attention's fused QKV is one [E, 3E] matrix whose output is cut into Q, K and V, three
/// E → E maps; PyTorch initializes it as one matrix (`xavier_uniform_` on `in_proj_weight`
/// with fan_out 3E, pytorch#166378), which gives it 2/3 of the variance of separate Q, K, V
/// projections. `--compat pytorch` keeps that.
fn projection_weight(ctx: &SlotCtx<'_, '_, '_>, f: Fans) -> Candidate {
    let c = Candidate::role(Role::Weight, ctx.out0());
    if ctx.compat == FanCompat::True
        && let Some(out) = ctx.out0()
        && let Some((k, how)) = packed_parts(ctx.index, ctx.scalars, out)
        && f.fan_out.is_multiple_of(k)
    {
        let mut c = c.with_fans(Fans {
            fan_in: f.fan_in,
            fan_out: f.fan_out / k,
        });
        c.note = Some(format!(
            "packed projection: the output is cut into {k} parts ({how}), so each part's fans \
             are used: fan_out {} / {k} (--compat pytorch keeps {})",
            f.fan_out, f.fan_out
        ));
        return c;
    }
    c.with_fans(f)
}

/// Whether a layer output is cut into k ≥ 2 parts that go their own ways: after an optional
/// bias (an `Add` of a static value) and views (Reshape, Unsqueeze, Squeeze, Transpose,
/// Identity, Cast), either one `Split` with k outputs, or only `Gather`s at the constant
/// indices 0..k−1 of one axis (PyTorch's export of `nn.MultiheadAttention`'s packed in_proj),
/// or only k `Slice`s. Returns k and how the cut was seen.
///
/// Shapes are not inferred, so the cut axis is not proven to be the packed output axis; the
/// patterns above only arise from cutting a packed projection in practice, and the caller
/// also requires k to divide fan_out.
fn packed_parts(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    out: ValueId,
) -> Option<(u64, String)> {
    let mut v = out;
    let mut path: Vec<&str> = Vec::new();
    for _ in 0..8 {
        let uses: Vec<(NodeId, usize)> = index
            .value(v)
            .uses
            .iter()
            .copied()
            .filter(|&(n, _)| !matches!(index.op(n), "Shape" | "Size"))
            .collect();
        let through = || {
            if path.is_empty() {
                String::new()
            } else {
                format!(" after {}", path.join(" → "))
            }
        };
        match uses.as_slice() {
            [] => return None,
            &[(n, slot)] => {
                let op = index.op(n);
                match op {
                    "Split" if slot == 0 => {
                        let k = index.node(n).outputs.len() as u64;
                        return (k >= 2).then(|| (k, format!("Split{}", through())));
                    }
                    "Add" => {
                        let other = index.input(n, 1 - slot.min(1))?;
                        if !scalars.is_static(other) {
                            return None;
                        }
                    }
                    "Reshape" | "Unsqueeze" | "Squeeze" | "Transpose" | "Identity" | "Cast"
                        if slot == 0 => {}
                    _ => return None,
                }
                path.push(op);
                v = index.output(n, 0)?;
            }
            many => {
                let k = many.len() as u64;
                if many.iter().all(|&(n, s)| s == 0 && index.op(n) == "Slice") {
                    return Some((k, format!("{k} Slices{}", through())));
                }
                if !many.iter().all(|&(n, s)| s == 0 && index.op(n) == "Gather") {
                    return None;
                }
                let axis = index.node(many[0].0).node.attr_i("axis", 0);
                let mut seen = vec![false; many.len()];
                for &(n, _) in many {
                    if index.node(n).node.attr_i("axis", 0) != axis {
                        return None;
                    }
                    let i = scalars.scalar(index.input(n, 1)?)?;
                    if i.fract() != 0.0 || i < 0.0 || i >= many.len() as f64 {
                        return None;
                    }
                    let slot = &mut seen[i as usize];
                    if std::mem::replace(slot, true) {
                        return None;
                    }
                }
                return Some((
                    k,
                    format!("Gather of indices 0..{} on axis {axis}{}", k - 1, through()),
                ));
            }
        }
    }
    None
}

/// LSTM/GRU/RNN: W and R are recurrent weights with a gate layout, B a bias; initial states,
/// sequence lengths and LSTM peepholes are left alone.
fn recurrent(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let (op, gates, gate_order) = match ctx.op {
        "LSTM" => (RecurrentOp::Lstm, 4u32, "iofc"),
        "GRU" => (RecurrentOp::Gru, 3, "zrh"),
        _ => (RecurrentOp::Rnn, 1, "h"),
    };
    let which = match (ctx.slot, op) {
        (1, _) => RecurrentPart::W,
        (2, _) => RecurrentPart::R,
        (3, _) => RecurrentPart::B,
        (4, _) => return Candidate::none(format!("input 4 (sequence_lens) of {}", ctx.op)),
        (5, _) => {
            return Candidate::none(format!(
                "input 5 (initial_h) of {}: a recurrent state, not a parameter",
                ctx.op
            ));
        }
        (6, RecurrentOp::Lstm) => {
            return Candidate::none("input 6 (initial_c) of LSTM: a cell state, not a parameter");
        }
        (7, RecurrentOp::Lstm) => {
            return Candidate::none(
                "input 7 (P, peephole weights) of LSTM: no re-initialization rule",
            );
        }
        _ => return not_a_parameter(ctx),
    };
    let g = u64::from(gates);
    let directions: u32 = match ctx.n.attr("direction").and_then(|a| a.s.as_deref()) {
        Some(b"bidirectional") => 2,
        _ => 1,
    };
    let dims: Vec<u64> = ctx
        .dims
        .iter()
        .map(|&d| u64::try_from(d).unwrap_or(0))
        .collect();
    let want_rank = if which == RecurrentPart::B { 2 } else { 3 };
    if dims.len() != want_rank {
        return Candidate::none(format!(
            "{} {which:?} of rank {} (expected {want_rank})",
            ctx.op,
            dims.len()
        ));
    }
    if dims[0] != u64::from(directions) {
        return Candidate::none(format!(
            "{} {which:?} has {} directions but the node says {directions}",
            ctx.op, dims[0]
        ));
    }
    // Rows per direction: G·H for W and R, 2·G·H for B.
    let row_blocks = if which == RecurrentPart::B { 2 * g } else { g };
    let hidden = match u64::try_from(ctx.n.attr_i("hidden_size", 0)) {
        Ok(h) if h > 0 => h,
        _ => dims[1] / row_blocks,
    };
    // Checked: a hostile hidden_size (up to 2^63) must not overflow the product.
    if hidden == 0 || row_blocks.checked_mul(hidden) != Some(dims[1]) {
        return Candidate::none(format!(
            "{} {which:?} has {} rows per direction, expected {row_blocks}·{hidden}",
            ctx.op, dims[1]
        ));
    }
    if which == RecurrentPart::R && dims[2] != hidden {
        return Candidate::none(format!(
            "{} R has {} columns, expected hidden_size {hidden}",
            ctx.op, dims[2]
        ));
    }
    let input_size = match which {
        RecurrentPart::W => Some(dims[2]),
        _ => ctx
            .index
            .input(ctx.node, 1)
            .and_then(|w| ctx.index.initializer_behind(w))
            .and_then(|(_, d)| d.get(2).and_then(|&x| u64::try_from(x).ok())),
    };
    let gate_fans = match which {
        RecurrentPart::W => Some(Fans {
            fan_in: dims[2],
            fan_out: hidden,
        }),
        RecurrentPart::R => Some(Fans {
            fan_in: hidden,
            fan_out: hidden,
        }),
        RecurrentPart::B => None,
    };
    let role = if which == RecurrentPart::B {
        Role::Bias
    } else {
        Role::RecurrentWeight
    };
    Candidate {
        fans: gate_fans.map(|f| fans::recurrent(f, g, ctx.compat)),
        recurrent: Some(RecurrentLayout {
            op,
            directions,
            gates,
            gate_order,
            hidden,
            input_size,
            which,
            gate_fans,
        }),
        fixed_activation: Some(Activation::Recurrent),
        ..Candidate::role(role, ctx.out0())
    }
}

/// Gather: data (V, D) looked up along axis 0 by run-time indices is an embedding table.
/// Constant indices select fixed rows of a lookup table, which is data, not a parameter.
fn gather(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.slot != 0 {
        return Candidate::none("input 1 (indices) of Gather: not a parameter");
    }
    if ctx.dims.len() != 2 {
        return Candidate::none(format!(
            "Gather data of rank {}: not an embedding table (V, D)",
            ctx.dims.len()
        ));
    }
    let axis = ctx.n.attr_i("axis", 0);
    if axis != 0 && axis != -2 {
        return Candidate::none(format!(
            "Gather along axis {axis}: not a row lookup (embedding)"
        ));
    }
    match ctx.index.input(ctx.node, 1) {
        Some(indices) if !ctx.scalars.is_static(indices) => {
            Candidate::role(Role::Embedding, ctx.out0())
                .with_fans(fans::embedding(ctx.dims, ctx.compat))
        }
        Some(_) => {
            Candidate::none("Gather with constant indices: a fixed lookup table, not an embedding")
        }
        None => Candidate::none("Gather without indices"),
    }
}

/// Normalization parameters by slot.
fn normalization(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let role = match (ctx.op, ctx.slot) {
        ("BatchNormalization", 3) => Role::NormStat(NormStatKind::Mean),
        ("BatchNormalization", 4) => Role::NormStat(NormStatKind::Var),
        (
            "BatchNormalization"
            | "InstanceNormalization"
            | "LayerNormalization"
            | "GroupNormalization"
            | "SimplifiedLayerNormalization"
            | "RMSNormalization",
            1,
        )
        | ("SkipLayerNormalization" | "SkipSimplifiedLayerNormalization", 2) => Role::NormScale,
        (
            "BatchNormalization"
            | "InstanceNormalization"
            | "LayerNormalization"
            | "GroupNormalization",
            2,
        )
        | ("SkipLayerNormalization", 3) => Role::NormShift,
        ("SkipLayerNormalization", 4) | ("SkipSimplifiedLayerNormalization", 3) => Role::Bias,
        _ => {
            return Candidate::none(format!(
                "input {} of {}: the normalized data, not a parameter",
                ctx.slot, ctx.op
            ));
        }
    };
    Candidate::role(role, ctx.out0())
}

/// PRelu: slot 1 is the learned slope. Its activation is PRelu itself: the slope is a
/// parameter of that nonlinearity, whatever follows the PRelu's output.
fn prelu(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    if ctx.slot == 1 {
        Candidate {
            fixed_activation: Some(Activation::PRelu),
            ..Candidate::role(Role::PreluSlope, ctx.out0())
        }
    } else {
        Candidate::none("input 0 of PRelu: data, not a parameter")
    }
}

/// Add: the initializer operand is a bias when the other operand comes straight from a layer
/// that has no bias of its own (MatMul, Gemm without C, Conv/ConvTranspose without B) and it has
/// exactly one value per output feature of that layer. A MatMul of two activations (attention
/// scores) has no weight, so a tensor added there (a mask) is not a bias.
fn add_bias(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
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
