//! Role and fans of one use of an initializer: the [`Candidate`] a use gives, dispatched to the
//! role handler of the op's [`ops::OpSpec`], each handler deciding by input slot.
//!
//! A handler sees one (node, slot) use and returns a [`Candidate`]; `analyze` merges the
//! candidates of all uses of a tensor. Ops without a handler, and slots a handler does not list,
//! leave the tensor untouched with a reason naming the slot.

use super::graph::{GraphIndex, NodeId, RealUse, Scalars, ValueId, numel};
use super::ops;
use super::{Activation, FanCompat, Fans, RecurrentLayout, Role};
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
    pub(crate) fn none(why: impl Into<String>) -> Self {
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

    pub(crate) fn role(role: Role, walk_from: Option<ValueId>) -> Self {
        Candidate {
            role: Some(role),
            walk_from,
            ..Candidate::none("")
        }
    }

    pub(crate) fn with_fans(mut self, fans: Fans) -> Self {
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
    pub(crate) fn out0(&self) -> Option<ValueId> {
        self.index.output(self.node, 0)
    }
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
    let domain = n.domain.as_deref();
    if !ops::known_domain(domain) {
        return Candidate::none(format!(
            "{op} from domain '{}' has no parameter rule",
            domain.unwrap_or("")
        ));
    }
    let spec = ops::spec(domain, op);
    if spec.is_some_and(|s| !s.reads_values()) {
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
    match spec.and_then(|s| s.params) {
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
pub(crate) fn not_a_parameter(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
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
