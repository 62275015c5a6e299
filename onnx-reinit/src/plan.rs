//! Plan: which scheme each initializer gets, from the analysis and the user's rules.
//!
//! Precedence, highest first: a `--rule GLOB=SCHEME` whose glob matches the initializer's name
//! or one of its consumers' node names (first matching rule wins); then the rule for the
//! tensor's role (bias, norm, embedding, recurrent, PReLU slope); for weights, the rule for the
//! activation that follows. Tensors without a role are never touched.
//!
//! A `--preset` ([`crate::preset`]) decides between the two: below `--rule` and below the rule
//! flags given explicitly, above every default.
//!
//! Gain adaptation: a He/Kaiming scheme whose text does not name a nonlinearity takes the gain
//! of the activation it is applied before — leaky_relu(α) with the graph's α, PReLU as
//! leaky_relu(0.25) (its initial slope, as in He et al. 2015), and GELU/SiLU/ELU/Mish by the
//! second-moment gains documented on [`init_core::Nonlinearity`]. Writing the nonlinearity
//! (`he_uniform(nonlinearity=relu)`) turns this off.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use globset::{Glob, GlobMatcher};
use init_core::{Family, Fans, Nonlinearity, RankRequirement, Scheme, SchemeExt as _, SchemeKind};

use crate::analysis::{Activation, Analysis, NormStatKind, RecurrentPart, Role, TensorInfo};
use crate::onnx::shared::{Interner, SharedStr};
use crate::preset::{Preset, PresetPlan};

/// What to do with a class of tensors.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Leave the bytes as they are.
    Keep,
    /// Re-initialize with this scheme; `adapt_gain` is set when a He-family scheme left its
    /// nonlinearity implicit (see the module docs).
    Init {
        /// The scheme.
        scheme: Scheme,
        /// Whether the gain may follow the activation.
        adapt_gain: bool,
    },
}

impl Rule {
    /// Parse `keep` or a scheme name of init-core's grammar.
    pub fn parse(text: &str) -> Result<Rule, init_core::SchemeError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("keep") {
            return Ok(Rule::Keep);
        }
        let scheme: Scheme = t.parse()?;
        let adapt_gain = matches!(
            scheme.kind(),
            SchemeKind::Scaled {
                family: Family::He { .. },
                ..
            }
        ) && !t.to_ascii_lowercase().contains("nonlinearity");
        Ok(Rule::Init { scheme, adapt_gain })
    }

    fn scheme(scheme: Scheme) -> Rule {
        Rule::Init {
            scheme,
            adapt_gain: matches!(
                scheme.kind(),
                SchemeKind::Scaled {
                    family: Family::He { .. },
                    ..
                }
            ),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Keep => f.write_str("keep"),
            Rule::Init { scheme, .. } => write!(f, "{scheme}"),
        }
    }
}

/// The activation classes that have a rule of their own (one CLI flag each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivationClass {
    /// relu, relu6, softplus (`--relu`).
    Relu,
    /// leaky_relu (`--leaky-relu`).
    LeakyRelu,
    /// prelu (`--prelu`).
    Prelu,
    /// elu, celu (`--elu`).
    Elu,
    /// selu (`--selu`).
    Selu,
    /// gelu (`--gelu`).
    Gelu,
    /// silu/swish, hard_swish, mish (`--silu`).
    Silu,
    /// tanh, softsign (`--tanh`).
    Tanh,
    /// sigmoid, hard_sigmoid (`--sigmoid`).
    Sigmoid,
    /// softmax, log_softmax (`--softmax`).
    Softmax,
    /// no nonlinearity (`--linear`).
    Linear,
}

impl ActivationClass {
    /// Every class, in flag order.
    pub const ALL: [ActivationClass; 11] = [
        ActivationClass::Relu,
        ActivationClass::LeakyRelu,
        ActivationClass::Prelu,
        ActivationClass::Elu,
        ActivationClass::Selu,
        ActivationClass::Gelu,
        ActivationClass::Silu,
        ActivationClass::Tanh,
        ActivationClass::Sigmoid,
        ActivationClass::Softmax,
        ActivationClass::Linear,
    ];

    /// The class an activation belongs to (`None` for recurrent ops, which have their own rule).
    pub fn of(a: Activation) -> Option<ActivationClass> {
        Some(match a {
            Activation::Relu | Activation::Relu6 | Activation::Softplus => ActivationClass::Relu,
            Activation::LeakyRelu(_) => ActivationClass::LeakyRelu,
            Activation::PRelu => ActivationClass::Prelu,
            Activation::Elu(_) | Activation::Celu => ActivationClass::Elu,
            Activation::Selu => ActivationClass::Selu,
            Activation::Gelu => ActivationClass::Gelu,
            Activation::Silu | Activation::HardSwish | Activation::Mish => ActivationClass::Silu,
            Activation::Tanh | Activation::Softsign => ActivationClass::Tanh,
            Activation::Sigmoid | Activation::HardSigmoid => ActivationClass::Sigmoid,
            Activation::Softmax => ActivationClass::Softmax,
            Activation::Linear => ActivationClass::Linear,
            Activation::Recurrent => return None,
        })
    }

    /// The seed's default: relu family He (uniform), tanh Glorot, sigmoid ±1/√fan_in,
    /// selu LeCun normal, linear and softmax Glorot.
    pub fn default_scheme(self) -> Scheme {
        match self {
            ActivationClass::Relu
            | ActivationClass::LeakyRelu
            | ActivationClass::Prelu
            | ActivationClass::Elu
            | ActivationClass::Gelu
            | ActivationClass::Silu => Scheme::HE_UNIFORM,
            ActivationClass::Selu => Scheme::LECUN_NORMAL,
            ActivationClass::Sigmoid => Scheme::FAN_IN_UNIFORM,
            ActivationClass::Tanh | ActivationClass::Softmax | ActivationClass::Linear => {
                Scheme::GLOROT_UNIFORM
            }
        }
    }

    /// The CLI flag (`relu`, `leaky-relu`, …).
    pub fn flag(self) -> &'static str {
        match self {
            ActivationClass::Relu => "relu",
            ActivationClass::LeakyRelu => "leaky-relu",
            ActivationClass::Prelu => "prelu",
            ActivationClass::Elu => "elu",
            ActivationClass::Selu => "selu",
            ActivationClass::Gelu => "gelu",
            ActivationClass::Silu => "silu",
            ActivationClass::Tanh => "tanh",
            ActivationClass::Sigmoid => "sigmoid",
            ActivationClass::Softmax => "softmax",
            ActivationClass::Linear => "linear",
        }
    }
}

/// A `--rule GLOB=SCHEME` override.
#[derive(Clone, Debug)]
pub struct NameRule {
    /// The glob as written.
    pub pattern: String,
    matcher: GlobMatcher,
    /// What matching tensors get.
    pub rule: Rule,
}

impl NameRule {
    /// Parse `GLOB=SCHEME` (the last `=` outside parentheses separates them, so schemes with
    /// keyword arguments work: `fc*=he_normal(mode=fan_out)`).
    pub fn parse(text: &str) -> Result<NameRule, String> {
        let split = split_rule(text)
            .ok_or_else(|| format!("`{text}`: expected GLOB=SCHEME (e.g. 'fc1.*=he_normal')"))?;
        let (pattern, scheme) = (text[..split].trim(), text[split + 1..].trim());
        if pattern.is_empty() {
            return Err(format!("`{text}`: the glob before `=` is empty"));
        }
        let matcher = Glob::new(pattern)
            .map_err(|e| format!("`{pattern}` is not a valid glob: {e}"))?
            .compile_matcher();
        let rule = Rule::parse(scheme).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(NameRule {
            pattern: pattern.to_owned(),
            matcher,
            rule,
        })
    }

    /// Whether the glob matches the tensor's name or the name of a node that reads it.
    pub fn matches(&self, t: &TensorInfo) -> bool {
        self.matcher.is_match(t.name.as_str())
            || t.consumers.iter().any(|c| self.matcher.is_match(&c.node))
    }
}

/// The position of the `=` separating glob and scheme: the first `=` outside parentheses
/// (scheme keyword arguments such as `mode=fan_out` sit inside them; globs rarely hold `=`).
fn split_rule(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '=' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The user's rules.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Per activation class; classes not present use [`ActivationClass::default_scheme`].
    pub activation: Vec<(ActivationClass, Rule)>,
    /// Biases (default zeros).
    pub bias: Rule,
    /// Normalization scale (default ones); shifts get zeros and running statistics 0/1 unless
    /// this is `keep`.
    pub norm: Rule,
    /// Embeddings (default normal(0,1), PyTorch's `nn.Embedding`).
    pub embedding: Rule,
    /// Recurrent input weights W, per direction and gate block (default glorot_uniform).
    pub recurrent_w: Rule,
    /// Recurrent hidden weights R, per direction and gate block (default orthogonal).
    pub recurrent_r: Rule,
    /// PReLU slopes (default constant(0.25), PyTorch's `nn.PReLU`).
    pub prelu_slope: Rule,
    /// `--rule` overrides, first match wins.
    pub overrides: Vec<NameRule>,
    /// `--preset`: a recipe below `--rule` and the explicitly given flags, above the defaults.
    /// [`crate::pipeline::run`] resolves it against the model into [`Rules::preset_plan`].
    pub preset: Option<Preset>,
    /// The resolved preset ([`crate::preset::resolve`]) that [`plan`] consults.
    pub preset_plan: Option<Arc<PresetPlan>>,
    /// The rule flags given explicitly (`bias`, `norm`, `embedding`, `recurrent-w`,
    /// `recurrent-r`, `prelu-slope`; activation classes are explicit when listed in
    /// [`Rules::activation`]): they keep precedence over a preset.
    pub explicit: Vec<&'static str>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            activation: Vec::new(),
            bias: Rule::scheme(Scheme::ZEROS),
            norm: Rule::scheme(Scheme::ONES),
            embedding: Rule::scheme(Scheme::normal(0.0, 1.0).expect("valid")),
            recurrent_w: Rule::scheme(Scheme::GLOROT_UNIFORM),
            recurrent_r: Rule::scheme(Scheme::orthogonal(1.0).expect("valid")),
            prelu_slope: Rule::scheme(Scheme::constant(0.25).expect("valid")),
            overrides: Vec::new(),
            preset: None,
            preset_plan: None,
            explicit: Vec::new(),
        }
    }
}

impl Rules {
    /// The rule flags [`Rules::from_flags`] takes, in the CLI's order: its rule flags without
    /// `--`.
    pub const FLAGS: [&'static str; 18] = [
        "relu",
        "leaky-relu",
        "prelu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "tanh",
        "sigmoid",
        "softmax",
        "linear",
        "bias",
        "norm",
        "embedding",
        "recurrent",
        "recurrent-w",
        "recurrent-r",
        "prelu-slope",
    ];

    /// The rules that rule flags give, as the CLI builds them from its flags (and the Python
    /// wheel from `rules={...}`): [`Rules::default`] with each flag given replacing its entry,
    /// a later flag for the same entry winning; `recurrent` sets W and R, and `recurrent-w` /
    /// `recurrent-r` then override it whatever the order; activation classes in
    /// [`ActivationClass::ALL`]'s order; the flags given (other than activation classes)
    /// listed in [`Rules::explicit`], so they beat a preset; `overrides` are the `--rule`s.
    /// A flag is one of [`Rules::FLAGS`], `_` standing for `-` as well; the error is the first
    /// flag that is not, as given.
    pub fn from_flags<S: AsRef<str>>(
        flags: impl IntoIterator<Item = (S, Rule)>,
        overrides: Vec<NameRule>,
    ) -> Result<Rules, String> {
        let mut r = Rules::default();
        let mut recurrent = None;
        let mut w_r = (None, None);
        let mut given: Vec<&'static str> = Vec::new();
        for (flag, rule) in flags {
            let k = flag.as_ref().replace('_', "-");
            if let Some(&c) = ActivationClass::ALL.iter().find(|c| c.flag() == k) {
                r.activation.retain(|(have, _)| *have != c);
                r.activation.push((c, rule));
                continue;
            }
            let Some(&name) = Rules::FLAGS.iter().find(|f| **f == k) else {
                return Err(flag.as_ref().to_owned());
            };
            match name {
                "bias" => r.bias = rule,
                "norm" => r.norm = rule,
                "embedding" => r.embedding = rule,
                "recurrent" => recurrent = Some(rule),
                "recurrent-w" => w_r.0 = Some(rule),
                "recurrent-r" => w_r.1 = Some(rule),
                _ => r.prelu_slope = rule,
            }
            given.push(name);
        }
        let was_given = |f: &str| given.contains(&f);
        let both = was_given("recurrent");
        r.explicit = [
            ("bias", was_given("bias")),
            ("norm", was_given("norm")),
            ("embedding", was_given("embedding")),
            ("recurrent-w", both || was_given("recurrent-w")),
            ("recurrent-r", both || was_given("recurrent-r")),
            ("prelu-slope", was_given("prelu-slope")),
        ]
        .iter()
        .filter(|g| g.1)
        .map(|g| g.0)
        .collect();
        r.activation
            .sort_by_key(|(c, _)| ActivationClass::ALL.iter().position(|a| a == c));
        if let Some(x) = recurrent {
            r.recurrent_w = x.clone();
            r.recurrent_r = x;
        }
        if let Some(x) = w_r.0 {
            r.recurrent_w = x;
        }
        if let Some(x) = w_r.1 {
            r.recurrent_r = x;
        }
        r.overrides = overrides;
        Ok(r)
    }

    /// The rule for an activation class.
    pub fn for_class(&self, class: ActivationClass) -> Rule {
        self.activation
            .iter()
            .rev()
            .find(|(c, _)| *c == class)
            .map_or_else(|| Rule::scheme(class.default_scheme()), |(_, r)| r.clone())
    }
}

/// How a planned tensor is filled.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    /// One scheme over the whole tensor.
    Whole {
        /// The effective scheme (after gain adaptation).
        scheme: Scheme,
        /// Fans the scheme uses (`None` for schemes that need none).
        fans: Option<Fans>,
    },
    /// Recurrent W/R: the scheme per (direction, gate) block of `rows` × `cols`, each block its
    /// own stream and its own (in = cols, out = rows) fans.
    GateBlocks {
        /// The scheme.
        scheme: Scheme,
        /// Number of blocks (directions × gates).
        blocks: usize,
        /// Rows per block (H).
        rows: usize,
        /// Columns per block (input size or H).
        cols: usize,
    },
}

/// The decision for one initializer.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanEntry {
    /// What to write, or `None` to keep the bytes. Boxed: most entries of a big model keep
    /// their bytes, and a `Fill` inline would add 64 bytes to each of them.
    pub fill: Option<Box<Fill>>,
    /// Which rule decided (`--relu`, `--rule fc*`, `default for bias`, …). [`plan`] gives the
    /// entries with the same reason one shared string (`untouched: no consumers (unused
    /// initializer)`, `--bias`), so that millions of entries do not each hold a copy.
    pub reason: SharedStr,
    /// Elements written as 0 after the fill (in row-major order): a preset's padding row of a
    /// token embedding ([`crate::preset::PresetDecision::zeroed`]); `None` for every other
    /// entry (boxed: an entry is held per tensor, and almost none has one).
    pub zeroed: Option<Box<std::ops::Range<u64>>>,
}

impl PlanEntry {
    /// The effective scheme, if the tensor changes.
    pub fn scheme(&self) -> Option<Scheme> {
        match self.fill.as_deref() {
            Some(Fill::Whole { scheme, .. } | Fill::GateBlocks { scheme, .. }) => Some(*scheme),
            None => None,
        }
    }
}

/// The plan: one entry per initializer, in analysis order (`entries[i]` decides the model's
/// and the analysis's tensor `i`).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Entries.
    pub entries: Vec<PlanEntry>,
    /// The seed.
    pub seed: u64,
}

/// Why a chosen scheme cannot apply to a tensor: the tensor, the rule that chose the scheme, and
/// what is wrong. [`crate::pipeline::RunError::Plan`] adds the model file.
#[derive(Debug, thiserror::Error)]
#[error("tensor `{tensor}` ({rule}): {refusal}")]
pub struct PlanError {
    /// The tensor name.
    pub tensor: String,
    /// The rule that chose the scheme (a [`PlanEntry::reason`]).
    pub rule: String,
    /// What is wrong (boxed: the error path need not make every `Result` large).
    pub refusal: Box<Refusal>,
}

/// What keeps a scheme from applying to a tensor (see [`PlanError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The tensor has a negative dimension.
    #[error("negative dimension {0}")]
    NegativeDimension(i64),
    /// A recurrent tensor's hidden size does not fit in this machine's `usize`.
    #[error("hidden size {0} does not fit in this machine's address space")]
    HiddenSizeTooLarge(u64),
    /// A fan-based scheme on a tensor whose role defines no fans.
    #[error(
        "{0} needs fan_in/fan_out, which this tensor's role does not define; use a scheme \
         without fans (e.g. normal(0,0.02)) or keep"
    )]
    NeedsFans(Scheme),
    /// A scheme on a tensor whose rank it does not admit (orthogonal or eye below rank 2,
    /// dirac outside rank 3..=5): [`Scheme::rank_requirement`].
    #[error("{scheme} {}, got {shape:?}", requirement.message())]
    Rank {
        /// The scheme.
        scheme: Scheme,
        /// What it needs of the rank.
        requirement: RankRequirement,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// init-core refuses the scheme for this shape and these fans.
    #[error("{scheme}: {error}")]
    Scheme {
        /// The scheme.
        scheme: Scheme,
        /// init-core's reason.
        error: init_core::InitError,
    },
    /// The scheme's values are not finite in the tensor's element type (they overflow it, e.g.
    /// `constant(1e39)` on float, `constant(70000)` on float16), or its scale is zero there (a
    /// fan-based scheme whose gain or variance underflowed, values that all round to 0): the
    /// output would be all `inf` or all zeros.
    #[error("{scheme} on {dtype}: {what}")]
    NotRepresentable {
        /// The scheme.
        scheme: Scheme,
        /// The tensor's element type (ONNX name).
        dtype: String,
        /// What goes wrong.
        what: String,
    },
    /// A recurrent fill's gate blocks do not make up the tensor.
    #[error("{blocks} gate blocks of {rows}×{cols} do not make its {numel} elements")]
    GateBlocks {
        /// Number of blocks.
        blocks: usize,
        /// Rows per block.
        rows: usize,
        /// Columns per block.
        cols: usize,
        /// The tensor's element count.
        numel: u64,
    },
}

/// Decide every initializer's fill (each as [`plan_tensor`] does). Fails only when a chosen
/// scheme cannot apply to a tensor (a fan-based scheme on a tensor without fans, orthogonal on
/// rank 1, …), naming the tensor.
pub fn plan(analysis: &Analysis, rules: &Rules, seed: u64) -> Result<Plan, PlanError> {
    // Sized up front: collecting through `Result` cannot know the length and would grow the
    // table by doubling, up to twice its size for millions of tensors.
    let mut entries = Vec::with_capacity(analysis.tensors.len());
    let mut reasons = Reasons::default();
    for t in &analysis.tensors {
        entries.push(plan_one(t, rules, &mut reasons)?);
    }
    Ok(Plan { entries, seed })
}

/// The reasons given so far, so that entries with the same reason share one string.
type Reasons = Interner<SharedStr>;

/// Decide one initializer's fill: the entry [`plan`] makes for tensor `t` (the rule that
/// applies to it, and the effective scheme with its fans or gate blocks).
pub fn plan_tensor(t: &TensorInfo, rules: &Rules) -> Result<PlanEntry, PlanError> {
    plan_one(t, rules, &mut Reasons::default())
}

/// [`plan_tensor`], with the reason shared through `reasons`.
fn plan_one(t: &TensorInfo, rules: &Rules, reasons: &mut Reasons) -> Result<PlanEntry, PlanError> {
    let (rule, reason, zeroed) = choose(t, rules);
    let fill = match (&rule, t.role) {
        (Rule::Keep, _) | (_, None) => None,
        (Rule::Init { scheme, adapt_gain }, Some(_)) => Some(Box::new(
            fill_for(t, *scheme, *adapt_gain).map_err(|refusal| PlanError {
                tensor: t.name.to_string(),
                rule: reason.to_string(),
                refusal: Box::new(refusal),
            })?,
        )),
    };
    let zeroed = zeroed.filter(|_| fill.is_some()).map(Box::new);
    Ok(PlanEntry {
        fill,
        reason: reasons.share(&*reason),
        zeroed,
    })
}

type Choice = (Rule, Cow<'static, str>, Option<std::ops::Range<u64>>);

/// The rule for `t` with its reason, and the elements a preset zeroes after it.
fn choose(t: &TensorInfo, rules: &Rules) -> Choice {
    let preset = rules.preset_plan.as_ref().and_then(|p| p.decision(t));
    let Some(role) = t.role else {
        return (Rule::Keep, t.untouched_reason(), None);
    };
    if let Some(o) = rules.overrides.iter().find(|o| o.matches(t)) {
        return (o.rule.clone(), format!("--rule {}", o.pattern).into(), None);
    }
    if let Some(d) = preset
        && !explicit_flag(t, role, rules)
    {
        return (d.rule.clone(), d.reason.clone().into(), d.zeroed.clone());
    }
    let (rule, reason) = default_rule(t, role, rules);
    (rule, reason, None)
}

fn default_rule(t: &TensorInfo, role: Role, rules: &Rules) -> (Rule, Cow<'static, str>) {
    match role {
        Role::Bias => (rules.bias.clone(), "--bias".into()),
        Role::NormScale => (rules.norm.clone(), "--norm".into()),
        Role::NormShift | Role::NormStat(_) => match rules.norm {
            Rule::Keep => (Rule::Keep, "--norm".into()),
            Rule::Init { .. } => {
                let v = matches!(role, Role::NormStat(NormStatKind::Var));
                let s = if v { Scheme::ONES } else { Scheme::ZEROS };
                (Rule::scheme(s), "--norm (shift 0, mean 0, var 1)".into())
            }
        },
        Role::NormOffset => match &rules.norm {
            Rule::Keep => (Rule::Keep, "--norm".into()),
            // The layer scales by 1 + w: a constant scale c is the offset c − 1 (ones → zeros).
            Rule::Init { scheme, .. } => match scheme.kind() {
                SchemeKind::Constant(c) => match Scheme::constant(c - 1.0) {
                    Ok(s) => (
                        Rule::scheme(s),
                        "--norm (offset w of a scale 1 + w: the scale minus 1)".into(),
                    ),
                    Err(_) => (Rule::Keep, "--norm: no finite offset".into()),
                },
                _ => (
                    Rule::Keep,
                    "kept: an offset w of a scale 1 + w takes only a constant --norm (c − 1)"
                        .into(),
                ),
            },
        },
        Role::Embedding => (rules.embedding.clone(), "--embedding".into()),
        Role::PreluSlope => (rules.prelu_slope.clone(), "default for prelu slope".into()),
        Role::RecurrentWeight => match t.recurrent.as_ref().map(|r| r.which) {
            Some(RecurrentPart::R) => (rules.recurrent_r.clone(), "--recurrent-r".into()),
            _ => (rules.recurrent_w.clone(), "--recurrent-w".into()),
        },
        Role::Weight => {
            let act = t.activation.unwrap_or(Activation::Linear);
            let class = ActivationClass::of(act).unwrap_or(ActivationClass::Linear);
            let explicit = rules.activation.iter().any(|(c, _)| *c == class);
            let why = if explicit {
                format!("--{}", class.flag())
            } else {
                format!("default for {}", act.as_str())
            };
            (rules.for_class(class), why.into())
        }
    }
}

/// Whether the rule flag that covers `t` was given explicitly (it then beats a preset).
fn explicit_flag(t: &TensorInfo, role: Role, rules: &Rules) -> bool {
    let flag = match role {
        Role::Bias => "bias",
        Role::NormScale | Role::NormShift | Role::NormStat(_) | Role::NormOffset => "norm",
        Role::Embedding => "embedding",
        Role::PreluSlope => "prelu-slope",
        Role::RecurrentWeight => match t.recurrent.as_ref().map(|r| r.which) {
            Some(RecurrentPart::R) => "recurrent-r",
            _ => "recurrent-w",
        },
        Role::Weight => {
            let act = t.activation.unwrap_or(Activation::Linear);
            let class = ActivationClass::of(act).unwrap_or(ActivationClass::Linear);
            return rules.activation.iter().any(|(c, _)| *c == class);
        }
    };
    rules.explicit.contains(&flag)
}

fn adapt(scheme: Scheme, act: Option<Activation>) -> Scheme {
    let SchemeKind::Scaled {
        family: Family::He { mode, .. },
        distribution,
    } = scheme.kind()
    else {
        return scheme;
    };
    let nl = match act {
        Some(Activation::LeakyRelu(a)) => Nonlinearity::LeakyRelu(f64::from(a)),
        Some(Activation::PRelu) => Nonlinearity::LeakyRelu(0.25),
        Some(Activation::Gelu) => Nonlinearity::Gelu,
        Some(Activation::Silu) => Nonlinearity::Silu,
        Some(Activation::Elu(_) | Activation::Celu) => Nonlinearity::Elu,
        Some(Activation::Mish) => Nonlinearity::Mish,
        _ => return scheme,
    };
    Scheme::he(distribution, mode, nl).unwrap_or(scheme)
}

fn dims_usize(t: &TensorInfo) -> Result<Vec<usize>, Refusal> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Refusal::NegativeDimension(d)))
        .collect()
}

fn fill_for(t: &TensorInfo, scheme: Scheme, adapt_gain: bool) -> Result<Fill, Refusal> {
    let scheme = if adapt_gain {
        adapt(scheme, t.activation)
    } else {
        scheme
    };
    let dims = dims_usize(t)?;
    if let (Some(rec), Some(Role::RecurrentWeight)) = (&t.recurrent, t.role)
        && let Some(gate_fans) = rec.gate_fans
    {
        let blocks = (rec.directions * rec.gates) as usize;
        let rows =
            usize::try_from(rec.hidden).map_err(|_| Refusal::HiddenSizeTooLarge(rec.hidden))?;
        let numel: usize = dims.iter().product();
        if blocks > 0 && rows > 0 && numel.is_multiple_of(blocks * rows) {
            let cols = numel / (blocks * rows);
            check_scheme(scheme, &[rows, cols], Some(gate_fans))?;
            return Ok(Fill::GateBlocks {
                scheme,
                blocks,
                rows,
                cols,
            });
        }
    }
    check_scheme(scheme, &dims, t.fans)?;
    Ok(Fill::Whole {
        scheme,
        fans: if scheme.needs_fans() { t.fans } else { None },
    })
}

/// Reject a scheme that cannot apply before anything is written.
fn check_scheme(scheme: Scheme, shape: &[usize], fans: Option<Fans>) -> Result<(), Refusal> {
    if scheme.needs_fans() && fans.is_none() {
        return Err(Refusal::NeedsFans(scheme));
    }
    scheme
        .expected_std(shape, fans)
        .map_err(|error| Refusal::Scheme { scheme, error })?;
    let requirement = scheme.rank_requirement();
    if !requirement.admits(shape.len(), fans.is_some()) {
        return Err(Refusal::Rank {
            scheme,
            requirement,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan holds an entry per initializer, untouched or not.
    #[test]
    fn an_entry_is_three_words_and_equal_reasons_share_one_string() {
        assert_eq!(std::mem::size_of::<PlanEntry>(), 24);
        let mut reasons = Reasons::default();
        let (a, b) = (reasons.share("--bias"), reasons.share("--bias"));
        assert_eq!(a, "--bias");
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
    }
}
