//! Analysis: for every initializer of a model, its role, its fans and the activation that follows
//! the layer it belongs to.
//!
//! The stage reads the payload-free [`crate::onnx::skeleton`] model and never looks at weight
//! values, except for a few scalars (Clip bounds, Gelu constants) that it asks for through
//! [`ConstValues`]. Its output, [`Analysis`], has one [`TensorInfo`] per initializer in the order
//! the wire scanner enumerates them (see [`analyze`]), so the two can be zipped.
//!
//! Submodules, each one concern:
//! - `graph`: producer/consumer index across the main graph and nested If/Loop/Scan bodies, with
//!   outer-scope references resolved, and a little constant evaluation (static values, scalars);
//! - `ops`: the op registry, one file per op family: each op's parameter slots (its role
//!   handler), how the walk passes it, whether its output is a constant source; and the
//!   multi-node patterns (composite activations such as SiLU, Gelu decompositions, Mish,
//!   HardSwish; decomposed normalizations);
//! - `roles`: role and fans of one (op, input slot) use of an initializer, dispatched to the
//!   op's handler;
//! - `fans`: the fan formulas of ARCHITECTURE.md's table, in true-connectivity and PyTorch modes;
//! - `activation`: the forward walk from a layer's output to the nonlinearity that follows it,
//!   asking the registry's patterns and op specs at each step.
//!
//! # Activation walk
//! From a value, every consumer is one branch:
//! - **Activation ops** end the branch with their activation: Relu (and ThresholdedRelu),
//!   LeakyRelu(α, default 0.01), PRelu, Elu(α), Selu, Celu, Tanh, Sigmoid, HardSigmoid,
//!   HardSwish, Gelu (and the `com.microsoft` FastGelu/BiasGelu/QuickGelu), Softplus, Softsign,
//!   Mish, Softmax/LogSoftmax → softmax. `Clip` is relu6 for bounds (0, 6), relu for (0, ∞) or
//!   (0, unknown), and linear otherwise; `Max(x, 0)` is relu. Bounds come from Constant nodes,
//!   from [`ConstValues`] for initializers, or from opset < 11 attributes.
//! - **Transparent ops** continue the walk from their data output, because they do not change
//!   which nonlinearity is applied next: Add/Sub/Sum (a bias or a residual), Mul/Div by a
//!   static value (a scale; static = computed from constants and shapes only), every
//!   normalization, Reshape/Transpose/Flatten/Squeeze/Unsqueeze/Identity/Dropout/Cast/Expand/
//!   Tile/Pad/Resize/DepthToSpace/SpaceToDepth, pooling (Max/Average/Global*/Lp, ReduceMean/Max/
//!   Min/Sum), and the routing ops Concat, Split (every output), Slice, Gather (as data) and
//!   Where. Routing ops pass through because they move elements without changing them: the
//!   moved elements still meet the same nonlinearity.
//! - **Composite activations** are recognised before looking at single consumers: when the
//!   value `x` (or `x` times a constant) is multiplied by a function of `x` alone, the
//!   function's ops name the activation: Sigmoid → SiLU (σ(1.702x) → Gelu), Erf → Gelu (erf
//!   form, argument scale 1/√2 checked when known), Tanh or Sigmoid with a cube → Gelu (tanh
//!   form, 0.044715/√(2/π) checked when known), Tanh∘Softplus → Mish, HardSigmoid or a clipped
//!   `x+3` → HardSwish; `x / (1 + |x|)` → Softsign. A function containing a reduction
//!   (`x − mean(x)`, `x / sqrt(mean(x²))`) is a decomposed normalization: the walk continues
//!   after it. Any other self-gating is reported as linear with the reason.
//! - **Everything else ends the branch as linear**: a graph output, a weight layer (Conv,
//!   ConvTranspose, Gemm, MatMul — including the activation × activation MatMul of attention —,
//!   LSTM/GRU/RNN, Einsum), multiplication by another activation (gating: the gate branch
//!   carries its own nonlinearity), and unknown ops or domains. Shape/Size consumers are
//!   ignored: they read no values. A value returned by an If/Loop/Scan body continues from the
//!   matching output of that node.
//!
//! ## Branches
//! All branches agreeing gives that activation. When they disagree, the first non-linear branch
//! (in consumer order) wins and the disagreement is reported: a linear branch is typically the
//! pre-activation value also exported or reused (a graph output, a residual), which does not
//! change what the main path applies.
//!
//! ## Attention
//! An MHA in-projection reaches Softmax only through `Q·Kᵀ`, a MatMul of two activations, so
//! its walk ends there: linear. That is deliberate: softmax acts on a bilinear form of the
//! projections, not element-wise on them, and PyTorch initialises `in_proj_weight` with
//! `xavier_uniform_` (gain 1), the linear rule.
//!
//! # Shared tensors
//! A tensor read by several nodes (the TorchScript exporter merges identical initializers and
//! routes the copies through Identity) gets one decision. Role: the highest in the precedence
//! weight, recurrent_weight, embedding, bias, norm_scale, norm_shift, norm_stat, prelu_slope (a
//! tensor that is a weight anywhere must be treated as one). Fans: those of the first consumer
//! in file order with that role. Activation: as for branches, the first non-linear one among
//! those consumers, else linear. [`TensorDetail::note`] lists the consumers and says which won.
//! Consumers that only read the shape (Shape, Size) are ignored; other non-parameter consumers
//! are mentioned in the note without vetoing the role.

mod activation;
mod fans;
mod graph;
mod ops;
pub mod residual;
mod roles;

use std::borrow::Cow;
use std::fmt;

use crate::onnx::shared::{SharedDims, SharedStr};
use crate::onnx::skeleton;

use activation::{Walker, merge_activations};
use graph::{GraphIndex, Scalars};
use roles::Candidate;

/// Source of the values of small initializers, which analysis needs for a handful of scalars
/// (Clip bounds, constants inside Gelu decompositions).
///
/// The analysis never reads payloads itself; the loader that owns the bytes implements this.
pub trait ConstValues {
    /// The values of initializer `name` of the graph at path `graph` (same path strings as
    /// [`TensorInfo::graph`]) converted to f64, if it has at most `max_len` elements and its
    /// values are known (a float or integer payload that the implementor can read).
    /// `None` when unknown, too big, or not an initializer.
    fn small_values(&self, graph: &str, name: &str, max_len: usize) -> Option<Vec<f64>>;
}

/// A [`ConstValues`] that knows no values: detection then relies on graph structure and on
/// `Constant` nodes (whose values are part of the skeleton).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConstValues;

impl ConstValues for NoConstValues {
    fn small_values(&self, _graph: &str, _name: &str, _max_len: usize) -> Option<Vec<f64>> {
        None
    }
}

/// Which fan convention to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FanCompat {
    /// True connectivity (the default): fans count the inputs that feed one output and the
    /// outputs one input feeds, so grouped convolutions divide by `group` on both sides and
    /// transposed convolutions read their weight as (in, out/g, k…).
    #[default]
    True,
    /// Reproduce `torch.nn.init._calculate_fan_in_and_fan_out` on the PyTorch parameter the
    /// tensor came from: Conv fan_out ignores groups (`shape[0]·∏k`), ConvTranspose takes
    /// `shape[1]·∏k` as fan_in and `shape[0]·∏k` as fan_out, an embedding table (V, D) has fan_in
    /// D and fan_out V, and recurrent W/R have fan_out G·H (all gates stacked). Linear-like layers
    /// (Gemm, MatMul) are the same in both modes.
    PyTorch,
}

/// Options of [`analyze`].
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Fan convention; [`FanCompat::True`] by default.
    pub compat: FanCompat,
}

/// Fans of a weight: how many inputs feed one output unit (`fan_in`) and how many outputs one
/// input unit feeds (`fan_out`); init-core's type, so plans hand them to the schemes unchanged.
pub use init_core::Fans;

/// Which running statistic of a BatchNormalization a tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormStatKind {
    /// `input_mean` (slot 3): reset value 0.
    Mean,
    /// `input_var` (slot 4): reset value 1.
    Var,
}

/// What an initializer is, decided from the op and input slot that consume it (the table in ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A layer's weight matrix or kernel (Conv, ConvTranspose, Gemm, MatMul).
    Weight,
    /// W (input weights) or R (recurrent weights) of LSTM/GRU/RNN; [`TensorDetail::recurrent`]
    /// says which, with the gate layout.
    RecurrentWeight,
    /// A bias: Conv/ConvTranspose B, Gemm C, the initializer operand of an Add directly after a
    /// MatMul/Gemm/Conv that has none, or LSTM/GRU/RNN B.
    Bias,
    /// Scale (gamma) of a normalization: of a norm op, or the initializer a decomposed norm's
    /// output (RMSNorm, LayerNorm, GroupNorm via InstanceNormalization) is multiplied by.
    NormScale,
    /// Shift (beta) of a normalization: of a norm op, or the initializer added to a
    /// decomposed norm's scaled output.
    NormShift,
    /// Offset `w` of a normalization scale applied as `x·(1 + w)` (Gemma-style RMSNorm): its
    /// neutral value is 0, not 1.
    NormOffset,
    /// A BatchNormalization running statistic.
    NormStat(NormStatKind),
    /// An embedding table: data (V, D) of a Gather with run-time integer indices, or with
    /// constant indices (folded position or token-type ids) when the rows are added into an
    /// activation; an EmbedLayerNormalization table.
    Embedding,
    /// The slope of PRelu.
    PreluSlope,
}

impl Role {
    /// Lower snake case name used in reports: `weight`, `recurrent_weight`, `bias`,
    /// `norm_scale`, `norm_shift`, `norm_offset`, `norm_stat`, `embedding`, `prelu_slope`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Weight => "weight",
            Role::RecurrentWeight => "recurrent_weight",
            Role::Bias => "bias",
            Role::NormScale => "norm_scale",
            Role::NormShift => "norm_shift",
            Role::NormOffset => "norm_offset",
            Role::NormStat(_) => "norm_stat",
            Role::Embedding => "embedding",
            Role::PreluSlope => "prelu_slope",
        }
    }

    /// Precedence when consumers disagree: the lower wins. A tensor that is a weight somewhere
    /// must get a weight's treatment (zeroing it as a bias would break the layer), and roles
    /// with data-dependent statistics come before constant-filled ones.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Role::Weight => 0,
            Role::RecurrentWeight => 1,
            Role::Embedding => 2,
            Role::Bias => 3,
            Role::NormScale => 4,
            Role::NormShift => 5,
            Role::NormOffset => 6,
            Role::NormStat(_) => 7,
            Role::PreluSlope => 8,
        }
    }
}

impl fmt::Display for Role {
    /// Same string as [`Role::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The nonlinearity that follows a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `Relu`, `ThresholdedRelu`, `Max(x, 0)`, `Clip(x, 0)` without an upper bound.
    Relu,
    /// `LeakyRelu` with its `alpha` (ONNX default 0.01).
    LeakyRelu(f32),
    /// `PRelu` (learned slope).
    PRelu,
    /// `Elu` with its `alpha` (default 1).
    Elu(f32),
    /// `Selu`.
    Selu,
    /// `Celu`.
    Celu,
    /// `Tanh`.
    Tanh,
    /// `Sigmoid` (alone, not multiplied back with its input).
    Sigmoid,
    /// `HardSigmoid`.
    HardSigmoid,
    /// `HardSwish`, or `x·HardSigmoid(x)`, or `x·relu6(x+3)/6`.
    HardSwish,
    /// `Gelu` (the op, `com.microsoft` FastGelu/BiasGelu/QuickGelu), the erf form
    /// `x·0.5·(1+erf(x/√2))`, the tanh form `0.5x(1+tanh(√(2/π)(x+0.044715x³)))` and `x·σ(1.702x)`.
    Gelu,
    /// SiLU/Swish: `x·Sigmoid(x)` (also `x·Sigmoid(βx)`).
    Silu,
    /// `Softplus`.
    Softplus,
    /// `Softsign`, or `x / (1 + |x|)`.
    Softsign,
    /// `Mish`, or `x·tanh(softplus(x))`.
    Mish,
    /// `Clip(x, 0, 6)`.
    Relu6,
    /// `Softmax` or `LogSoftmax`.
    Softmax,
    /// No nonlinearity: a graph output, another weight layer or an op outside the walk's rules
    /// comes first.
    Linear,
    /// LSTM/GRU/RNN W and R and B: the op applies its own gate and cell activations.
    Recurrent,
}

impl Activation {
    /// Lower snake case name used in reports: `relu`, `leaky_relu`, `prelu`, `elu`, `selu`,
    /// `celu`, `tanh`, `sigmoid`, `hard_sigmoid`, `hard_swish`, `gelu`, `silu`, `softplus`,
    /// `softsign`, `mish`, `relu6`, `softmax`, `linear`, `recurrent`. Parameters (alpha) are not
    /// part of the name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::PRelu => "prelu",
            Activation::Elu(_) => "elu",
            Activation::Selu => "selu",
            Activation::Celu => "celu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::HardSwish => "hard_swish",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Softsign => "softsign",
            Activation::Mish => "mish",
            Activation::Relu6 => "relu6",
            Activation::Softmax => "softmax",
            Activation::Linear => "linear",
            Activation::Recurrent => "recurrent",
        }
    }
}

impl fmt::Display for Activation {
    /// Same string as [`Activation::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One use of an initializer by a node, after looking through the Identity, Cast and Transpose
/// nodes that exporters put between an initializer and its real consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The node's name, or `#<index in its graph>` when it has none.
    pub node: String,
    /// Its op type.
    pub op: String,
    /// The input slot the tensor (or its Identity/Cast/Transpose view) enters.
    pub slot: usize,
    /// Path of the graph holding the node (may be nested below the initializer's own graph:
    /// an outer-scope reference).
    pub graph: String,
    /// The Identity/Cast/Transpose nodes passed through on the way, as `Op 'name'`; empty for a
    /// direct use.
    pub via: Vec<String>,
}

/// Recurrent op kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrentOp {
    /// LSTM: 4 gates in ONNX order i, o, f, c.
    Lstm,
    /// GRU: 3 gates in ONNX order z, r, h.
    Gru,
    /// RNN: 1 gate.
    Rnn,
}

/// Which input of a recurrent op a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrentPart {
    /// `W` (dirs, G·H, input_size): input weights.
    W,
    /// `R` (dirs, G·H, H): recurrent weights.
    R,
    /// `B` (dirs, 2·G·H): input and recurrent biases concatenated.
    B,
}

/// Layout of an LSTM/GRU/RNN parameter, so that a plan can initialise it per direction and
/// per gate block (each block of `hidden` rows is one gate's matrix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrentLayout {
    /// The op.
    pub op: RecurrentOp,
    /// 1, or 2 for `direction = bidirectional` (the tensor's leading axis).
    pub directions: u32,
    /// Gates G: 4 (LSTM), 3 (GRU), 1 (RNN).
    pub gates: u32,
    /// ONNX gate order, one letter per block: `"iofc"`, `"zrh"`, `"h"`.
    pub gate_order: &'static str,
    /// Hidden size H.
    pub hidden: u64,
    /// Input size (W's last axis), when W's shape is known.
    pub input_size: Option<u64>,
    /// W, R or B.
    pub which: RecurrentPart,
    /// Fans of one gate block of one direction, always true connectivity: W (in = input_size,
    /// out = H), R (in = H, out = H); `None` for B.
    pub gate_fans: Option<Fans>,
}

/// Everything analysis found out about one initializer.
///
/// What only a tensor with consumers has (its consumers, fans, activation, gate layout, notes)
/// is a [`TensorDetail`] behind one pointer, allocated only for such tensors: a model of
/// millions of unused or constant initializers holds 64 bytes per tensor here, not ~190. The
/// detail's fields read as this struct's own (`info.consumers`, `info.fans`) through `Deref`,
/// an empty [`TensorDetail`] when there is none; writing one (`DerefMut`) allocates it. The
/// reason a tensor is left untouched is read with [`TensorInfo::why_untouched`]: a one-byte
/// code for the shared static reasons, the detail's for a reason written for this tensor.
#[derive(Clone)]
pub struct TensorInfo {
    /// Path of the graph that declares it: `""` for the main graph, else
    /// `{parent}/{node name or #index}.{attribute}` (plus `[i]` for the i-th entry of a GRAPHS
    /// attribute).
    pub graph: SharedStr,
    /// Initializer name.
    pub name: SharedStr,
    /// Shape.
    pub dims: SharedDims,
    /// `TensorProto.DataType` (1 f32, 10 f16, 11 f64, 16 bf16, …); 0 if absent.
    pub data_type: i32,
    /// The role, or `None` if the tensor must be left untouched (then see
    /// [`TensorInfo::why_untouched`]).
    pub role: Option<Role>,
    /// Where [`TensorInfo::why_untouched`] is.
    why: Why,
    /// The rest, `None` when all of it is empty (see the type's documentation).
    detail: Option<Box<TensorDetail>>,
}

/// Where a [`TensorInfo`]'s reason for being left untouched is: none, one of the
/// [`STATIC_REASONS`] (shared by the many unused and integer tensors of a model, so a code
/// rather than a copy or a 24-byte `Cow` per tensor), or a sentence written for this tensor,
/// held by its detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// No reason (the tensor has a role, or none was given).
    Empty,
    /// `STATIC_REASONS[i].0`.
    Static(u8),
    /// `TensorDetail::owned_why`.
    Owned,
}

/// What analysis found out about an initializer beyond its identity and role: read through
/// [`TensorInfo`] (`info.consumers`), which holds it only when it is not empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorDetail {
    /// Every real consumer (through Identity/Cast/Transpose), in file order: the main graph's
    /// nodes, then those of nested graphs in pre-order.
    pub consumers: Vec<Consumer>,
    /// Fans per [`AnalysisOptions::compat`], for weights, recurrent weights and embeddings.
    pub fans: Option<Fans>,
    /// The activation after the layer this tensor belongs to (for a bias or a norm parameter,
    /// the one after its node's output; [`Activation::Recurrent`] for LSTM/GRU/RNN W, R and B;
    /// [`Activation::PRelu`] for a PRelu slope); `None` when `role` is `None`.
    pub activation: Option<Activation>,
    /// Gate layout, for LSTM/GRU/RNN W, R and B (boxed: few tensors have one, and inline it
    /// would add 72 bytes to every tensor's detail).
    pub recurrent: Option<Box<RecurrentLayout>>,
    /// Remarks: shared tensors, disagreeing consumers (which won and why), walk branches that
    /// disagreed.
    pub note: Option<String>,
    /// A reason for leaving the tensor untouched that is none of the [`STATIC_REASONS`] (read
    /// with [`TensorInfo::why_untouched`]).
    owned_why: Option<String>,
}

/// The detail of a tensor that has none.
static NO_DETAIL: TensorDetail = TensorDetail {
    consumers: Vec::new(),
    fans: None,
    activation: None,
    recurrent: None,
    note: None,
    owned_why: None,
};

impl TensorInfo {
    /// A tensor's entry: its identity, no role (and an empty reason), and `consumers` (the
    /// detail is allocated only when there are some).
    pub fn new(
        graph: SharedStr,
        name: SharedStr,
        dims: SharedDims,
        data_type: i32,
        consumers: Vec<Consumer>,
    ) -> TensorInfo {
        TensorInfo {
            graph,
            name,
            dims,
            data_type,
            role: None,
            why: Why::Empty,
            detail: (!consumers.is_empty()).then(|| {
                Box::new(TensorDetail {
                    consumers,
                    ..TensorDetail::default()
                })
            }),
        }
    }

    /// Why `role` is `None`: a sentence naming the cause (`no consumers (unused
    /// initializer)`, `int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized`, what a
    /// consumer's slot is not); empty when the tensor has a role.
    pub fn why_untouched(&self) -> &str {
        match self.why {
            Why::Empty => "",
            Why::Static(i) => STATIC_REASONS[usize::from(i)].0,
            Why::Owned => self.owned_why.as_deref().unwrap_or(""),
        }
    }

    /// Sets [`TensorInfo::why_untouched`]. One of the shared static reasons (however it is
    /// passed) is held as a code; any other sentence in the detail, which it allocates if the
    /// tensor has none.
    pub fn set_why_untouched(&mut self, why: impl Into<Cow<'static, str>>) {
        let why = why.into();
        if self.why == Why::Owned {
            self.owned_why = None;
        }
        self.why = if why.is_empty() {
            Why::Empty
        } else if let Some(i) = static_reason_index(&why) {
            Why::Static(i)
        } else {
            self.owned_why = Some(why.into_owned());
            Why::Owned
        };
    }

    /// [`TensorInfo::why_untouched`], leaving it empty: borrowed from the static table for
    /// the shared reasons.
    pub fn take_why_untouched(&mut self) -> Cow<'static, str> {
        let why = match self.why {
            Why::Empty => Cow::Borrowed(""),
            Why::Static(i) => Cow::Borrowed(STATIC_REASONS[usize::from(i)].0),
            Why::Owned => self
                .detail
                .as_mut()
                .and_then(|d| d.owned_why.take())
                .map_or(Cow::Borrowed(""), Cow::Owned),
        };
        self.why = Why::Empty;
        why
    }

    /// [`TensorInfo::why_untouched`] as a `Cow`: borrowed from the static table for the
    /// shared reasons (no allocation), an owned copy otherwise.
    pub fn why_untouched_cow(&self) -> Cow<'static, str> {
        match self.why {
            Why::Empty => Cow::Borrowed(""),
            Why::Static(i) => Cow::Borrowed(STATIC_REASONS[usize::from(i)].0),
            Why::Owned => Cow::Owned(self.why_untouched().to_owned()),
        }
    }

    /// The plan's `untouched: {why}` form of [`TensorInfo::why_untouched`]: a shared static
    /// string for the static reasons, formatted otherwise.
    pub(crate) fn untouched_reason(&self) -> Cow<'static, str> {
        match self.why {
            Why::Static(i) => Cow::Borrowed(STATIC_REASONS[usize::from(i)].1),
            _ => Cow::Owned(format!("untouched: {}", self.why_untouched())),
        }
    }
}

/// The position of `why` in [`STATIC_REASONS`], if it is one of them.
fn static_reason_index(why: &str) -> Option<u8> {
    STATIC_REASONS
        .iter()
        .position(|(reason, _)| *reason == why)
        .and_then(|i| u8::try_from(i).ok())
}

impl std::ops::Deref for TensorInfo {
    type Target = TensorDetail;
    fn deref(&self) -> &TensorDetail {
        self.detail.as_deref().unwrap_or(&NO_DETAIL)
    }
}

impl std::ops::DerefMut for TensorInfo {
    fn deref_mut(&mut self) -> &mut TensorDetail {
        self.detail.get_or_insert_with(Box::default)
    }
}

impl PartialEq for TensorInfo {
    /// Equal when every field is, an absent detail being an empty one.
    fn eq(&self, other: &TensorInfo) -> bool {
        self.graph == other.graph
            && self.name == other.name
            && self.dims == other.dims
            && self.data_type == other.data_type
            && self.role == other.role
            && self.why_untouched() == other.why_untouched()
            && **self == **other
    }
}

// `detail` is listed field by field (through `Deref`), not as the box it is.
#[allow(clippy::missing_fields_in_debug)]
impl fmt::Debug for TensorInfo {
    /// As the flat struct it reads as: the detail's fields after the others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorInfo")
            .field("graph", &self.graph)
            .field("name", &self.name)
            .field("dims", &self.dims)
            .field("data_type", &self.data_type)
            .field("role", &self.role)
            .field("why_untouched", &self.why_untouched())
            .field("consumers", &self.consumers)
            .field("fans", &self.fans)
            .field("activation", &self.activation)
            .field("recurrent", &self.recurrent)
            .field("note", &self.note)
            .finish()
    }
}

/// The result of [`analyze`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// One entry per initializer, in the wire scanner's order (see [`analyze`]).
    pub tensors: Vec<TensorInfo>,
    /// Problems with the graph itself (undefined names, duplicate definitions, cycles).
    pub warnings: Vec<String>,
}

impl Analysis {
    /// The entry for initializer `name` of graph `graph`, if any.
    pub fn find(&self, graph: &str, name: &str) -> Option<&TensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.graph == graph && t.name == name)
    }
}

/// Analyse every initializer of `model`.
///
/// The entries of [`Analysis::tensors`] follow the scanner's enumeration: graphs in pre-order
/// (the main graph, then for each node in file order, each attribute in file order, its `g` then
/// each of its `graphs`, recursively), and within a graph the initializers in file order.
///
/// Never fails: a malformed graph yields warnings and untouched tensors.
pub fn analyze(
    model: &skeleton::Model,
    consts: &dyn ConstValues,
    opts: &AnalysisOptions,
) -> Analysis {
    analyze_sharing(model, consts, opts, &[])
}

/// [`analyze`], whose entries share the names, graph paths and dims of `entries` (the loader's
/// table of the same model, see [`crate::onnx::shared`]) instead of copying them from the
/// skeleton: the one allocation per name and shape is then the loader's. An entry is shared
/// only where it names the same tensor (graph, name, dims); elsewhere, as with no `entries`,
/// the analysis holds its own copy, so that a disagreement stays visible to the caller.
pub(crate) fn analyze_sharing(
    model: &skeleton::Model,
    consts: &dyn ConstValues,
    opts: &AnalysisOptions,
    entries: &[crate::onnx::model::TensorEntry],
) -> Analysis {
    let Some(main) = model.graph.as_ref() else {
        return Analysis {
            tensors: Vec::new(),
            warnings: vec!["model has no graph".to_owned()],
        };
    };
    let index = GraphIndex::build(main);
    let scalars = Scalars::new(&index, consts);
    let mut walker = Walker::new(&index, &scalars);
    let mut tensors = Vec::with_capacity(index.initializer_count());
    for (k, (scope, header, value)) in index.initializer_slots().enumerate() {
        tensors.push(analyse_one(
            &index,
            &scalars,
            &mut walker,
            (scope, header, value),
            opts,
            entries.get(k),
        ));
    }
    let mut warnings = index.warnings.clone();
    warnings.extend(walker.take_warnings());
    Analysis { tensors, warnings }
}

/// Role, fans and activation of one initializer (its scope, header and value, `None` when
/// nothing reads it): gather one [`Candidate`] per real consumer, then decide.
fn analyse_one(
    index: &GraphIndex<'_>,
    scalars: &Scalars<'_, '_>,
    walker: &mut Walker<'_, '_>,
    (scope, header, value): (
        graph::ScopeId,
        &skeleton::TensorHeader,
        Option<graph::ValueId>,
    ),
    opts: &AnalysisOptions,
    shared: Option<&crate::onnx::model::TensorEntry>,
) -> TensorInfo {
    // The scope's path is shared by its tensors; the name and dims are the loader's where
    // the entry names the same tensor.
    let graph = index.scope(scope).path.clone();
    let v_name = header.name.as_str();
    let (name, dims) = match shared {
        Some(e) if e.graph_index as usize == scope && e.name == v_name && e.dims == header.dims => {
            (e.name.clone(), e.dims.clone())
        }
        _ => (v_name.into(), header.dims.clone()),
    };
    let data_type = header.data_type.unwrap_or(0);
    let uses = value.map_or_else(Vec::new, |value| index.real_uses(value));
    let consumers: Vec<Consumer> = uses.iter().map(|u| index.consumer(u)).collect();

    let mut info = TensorInfo::new(graph, name, dims, data_type, consumers);

    if !roles::is_float_type(data_type) {
        // An integer weight read by a quantization op says so: the user asked for a fresh
        // model and must see that its quantized layers are not.
        let quantized = uses.iter().find_map(|u| {
            let c = roles::candidate(index, scalars, u, opts.compat);
            c.why.starts_with("quantized weight").then_some(c.why)
        });
        info.set_why_untouched(quantized.map_or_else(|| non_float_reason(data_type), Cow::Owned));
        return info;
    }
    if info.dims.iter().any(|&d| d < 0) {
        let why = format!("invalid shape {:?}", info.dims);
        info.set_why_untouched(why);
        return info;
    }
    if uses.is_empty() {
        // Uses that are all views (Identity/Cast/Transpose) lead only to graph outputs.
        info.set_why_untouched(match value {
            Some(value)
                if !index.outputs_of(value).is_empty() || !index.value(value).uses.is_empty() =>
            {
                ONLY_RETURNED
            }
            _ => UNUSED,
        });
        return info;
    }

    let candidates: Vec<Candidate> = uses
        .iter()
        .map(|u| roles::candidate(index, scalars, u, opts.compat))
        .collect();
    decide(&mut info, walker, &uses, &candidates);
    info
}

/// Declares the static reasons of [`TensorInfo::why_untouched`] and, in [`STATIC_REASONS`],
/// each with the plan's `untouched: …` form, so that neither is formatted per tensor.
macro_rules! static_reasons {
    (
        $($(#[$doc:meta])* const $name:ident = $text:literal;)*
        non_float: [$($dtype:literal),*]
    ) => {
        $($(#[$doc])* pub(crate) const $name: &str = $text;)*

        /// Every static reason: (reason, `untouched: ` reason).
        pub(crate) const STATIC_REASONS: &[(&str, &str)] = &[
            $(($text, concat!("untouched: ", $text)),)*
            $((
                concat!($dtype, " tensor: only f32/f64/f16/bf16 tensors are re-initialized"),
                concat!(
                    "untouched: ", $dtype,
                    " tensor: only f32/f64/f16/bf16 tensors are re-initialized"
                ),
            ),)*
        ];

        /// `{dtype} tensor: only f32/f64/f16/bf16 tensors are re-initialized`: static for the
        /// named dtypes (a model's int64 shape constants can be many), formatted otherwise.
        fn non_float_reason(data_type: i32) -> Cow<'static, str> {
            match roles::dtype_name(data_type) {
                $($dtype => Cow::Borrowed(concat!(
                    $dtype, " tensor: only f32/f64/f16/bf16 tensors are re-initialized"
                )),)*
                other => Cow::Owned(format!(
                    "{other} tensor: only f32/f64/f16/bf16 tensors are re-initialized"
                )),
            }
        }
    };
}

static_reasons! {
    /// An initializer nothing reads.
    const UNUSED = "no consumers (unused initializer)";
    /// An initializer whose only uses (through views) are graph outputs.
    const ONLY_RETURNED = "only returned as a graph output";
    /// No consumer gives a role and none says why.
    const NO_PARAMETER_SLOT = "no consumer reads it as a parameter";
    non_float: ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool",
        "string", "complex64", "complex128", "float8", "4-bit integer", "unknown-dtype"]
}

/// `norm_stat (mean)` and friends: the role name with the statistic, for notes.
fn role_label(role: Role) -> String {
    match role {
        Role::NormStat(NormStatKind::Mean) => "norm_stat (mean)".to_owned(),
        Role::NormStat(NormStatKind::Var) => "norm_stat (var)".to_owned(),
        r => r.as_str().to_owned(),
    }
}

/// Merge the per-consumer candidates into one decision, explaining disagreements in `note`.
fn decide(
    info: &mut TensorInfo,
    walker: &mut Walker<'_, '_>,
    uses: &[graph::RealUse],
    candidates: &[Candidate],
) {
    let best = candidates
        .iter()
        .filter_map(|c| c.role)
        .min_by_key(|r| r.precedence());
    let Some(best) = best else {
        // No consumer gives a role: report each distinct reason once.
        let mut reasons: Vec<&str> = Vec::new();
        for c in candidates {
            if !c.why.is_empty() && !reasons.contains(&c.why.as_str()) {
                reasons.push(&c.why);
            }
        }
        info.set_why_untouched(if reasons.is_empty() {
            Cow::Borrowed(NO_PARAMETER_SLOT)
        } else {
            Cow::Owned(reasons.join("; "))
        });
        return;
    };
    // Split into the role and the detail (the tensor has consumers, so it has one), so that
    // the labels can borrow the consumers while the rest is written.
    let TensorInfo { role, detail, .. } = info;
    let info: &mut TensorDetail = detail.get_or_insert_with(Box::default);
    let mut notes: Vec<String> = Vec::new();
    let label = |i: usize| {
        let c = &info.consumers[i];
        format!("{} '{}' input {}", c.op, c.node, c.slot)
    };

    // Winners: consumers giving exactly the best role (a running mean read elsewhere as a
    // running variance is overruled, first consumer first).
    let winners: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].role == Some(best))
        .collect();
    let first = winners[0];
    *role = Some(best);
    info.fans = candidates[first].fans;
    info.recurrent = candidates[first].recurrent.clone().map(Box::new);
    if let Some(note) = &candidates[first].note {
        notes.push(note.clone());
    }

    let distinct_nodes = {
        let mut n: Vec<graph::NodeId> = uses.iter().map(|u| u.node).collect();
        n.sort_unstable();
        n.dedup();
        n.len()
    };
    if distinct_nodes > 1 {
        notes.push(format!(
            "shared by {} consumers: {}",
            info.consumers.len(),
            (0..info.consumers.len())
                .map(label)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Consumers overruled by precedence, grouped by the role they imply.
    let mut overruled: Vec<(Role, Vec<String>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match c.role {
            Some(r) if r != best => match overruled.iter_mut().find(|(role, _)| *role == r) {
                Some((_, who)) => who.push(label(i)),
                None => overruled.push((r, vec![label(i)])),
            },
            None if !c.ignorable => notes.push(format!(
                "{} is not a parameter slot ({}); the {} role from {} is kept",
                label(i),
                c.why,
                best.as_str(),
                label(first)
            )),
            _ => {}
        }
    }
    for (role, who) in overruled {
        notes.push(format!(
            "{} read{} it as {}, but {} wins (precedence: weight, recurrent_weight, embedding, \
             bias, norm_scale, norm_shift, norm_offset, norm_stat, prelu_slope; first consumer \
             among equals)",
            who.join(" and "),
            if who.len() == 1 { "s" } else { "" },
            role_label(role),
            role_label(best)
        ));
    }
    for &i in &winners[1..] {
        if candidates[i].fans != info.fans {
            let show = |f: Option<Fans>| f.map_or_else(|| "none".to_owned(), |f| f.to_string());
            notes.push(format!(
                "{} implies fans {} but the first consumer {} gives {}; the first is used",
                label(i),
                show(candidates[i].fans),
                label(first),
                show(info.fans)
            ));
        }
    }

    // Activation: one per winning consumer, merged (first non-linear wins).
    let mut acts = Vec::with_capacity(winners.len());
    for &i in &winners {
        let c = &candidates[i];
        let (act, at, conflict) = if let Some(a) = c.fixed_activation {
            (a, "the op's own nonlinearity".to_owned(), None)
        } else if let Some(from) = c.walk_from {
            let r = walker.walk(from);
            (r.activation, r.at.clone(), r.conflict.clone())
        } else {
            (Activation::Linear, "no output to follow".to_owned(), None)
        };
        if let Some(conflict) = conflict {
            notes.push(format!("after {}: {conflict}", label(i)));
        }
        acts.push((act, format!("{} (reaches {at})", label(i))));
    }
    let merged = merge_activations(&acts);
    info.activation = Some(merged.activation);
    if let Some(conflict) = merged.conflict {
        notes.push(format!("consumers disagree on the activation: {conflict}"));
    }
    if !notes.is_empty() {
        info.note = Some(notes.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_entry_is_at_most_40_bytes() {
        // Three shared (thin) pointers, the dtype, role and reason code, the detail pointer.
        assert!(
            std::mem::size_of::<TensorInfo>() <= 40,
            "{}",
            std::mem::size_of::<TensorInfo>()
        );
    }

    #[test]
    fn static_reasons_are_codes_and_others_live_in_the_detail() {
        let mut t = TensorInfo::new("".into(), "w".into(), vec![2].into(), 1, Vec::new());
        assert_eq!(t.why_untouched(), "");
        assert_eq!(t.untouched_reason(), "untouched: ");

        // A static reason, borrowed or owned, is a code: no detail is allocated.
        t.set_why_untouched(UNUSED);
        assert_eq!((t.why_untouched(), t.why), (UNUSED, Why::Static(0)));
        t.set_why_untouched(String::from(ONLY_RETURNED));
        assert_eq!(t.why_untouched(), ONLY_RETURNED);
        assert!(t.detail.is_none());
        assert!(matches!(
            t.why_untouched_cow(),
            Cow::Borrowed(ONLY_RETURNED)
        ));
        let int64 = "int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized";
        t.set_why_untouched(non_float_reason(7));
        assert_eq!(t.why_untouched(), int64);
        assert!(
            matches!(t.untouched_reason(), Cow::Borrowed(r) if r == format!("untouched: {int64}"))
        );
        assert!(t.detail.is_none());

        // Any other sentence is the detail's; replacing it with a static one drops it.
        t.set_why_untouched(String::from("invalid shape [-1]"));
        assert_eq!(t.why_untouched(), "invalid shape [-1]");
        assert_eq!(t.untouched_reason(), "untouched: invalid shape [-1]");
        assert_eq!(
            t.detail.as_ref().unwrap().owned_why.as_deref(),
            Some("invalid shape [-1]")
        );
        assert!(format!("{t:?}").contains("why_untouched: \"invalid shape [-1]\""));
        let mut u = t.clone();
        assert_eq!(t, u);
        u.set_why_untouched(NO_PARAMETER_SLOT);
        assert_ne!(t, u);
        assert_eq!(u.detail.as_ref().unwrap().owned_why, None);

        // Taking leaves it empty, whichever way it was held.
        assert_eq!(t.take_why_untouched(), "invalid shape [-1]");
        assert_eq!(u.take_why_untouched(), NO_PARAMETER_SLOT);
        assert_eq!((t.why_untouched(), u.why_untouched()), ("", ""));
        assert_eq!(t, u);
    }

    #[test]
    fn a_tensor_without_consumers_holds_no_detail_and_reads_as_an_empty_one() {
        let t = TensorInfo::new("".into(), "w".into(), vec![2].into(), 1, Vec::new());
        assert!(t.detail.is_none());
        assert!(t.consumers.is_empty() && t.fans.is_none() && t.note.is_none());

        // Writing a detail field allocates it; an empty detail equals an absent one.
        let mut u = t.clone();
        u.fans = None;
        assert!(u.detail.is_some());
        assert_eq!(t, u);
        u.note = Some("shared".into());
        assert_ne!(t, u);
        assert!(format!("{u:?}").contains("note: Some(\"shared\")"));

        let consumer = Consumer {
            node: "fc".into(),
            op: "Gemm".into(),
            slot: 1,
            graph: String::new(),
            via: Vec::new(),
        };
        let c = TensorInfo::new("".into(), "w".into(), vec![2].into(), 1, vec![consumer]);
        assert_eq!(c.consumers.len(), 1);
    }
}
