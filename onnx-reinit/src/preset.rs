//! Initialization recipes (`--preset NAME`): the initialization a model family's own training
//! code applies, reproduced on an exported graph.
//!
//! A preset decides per tensor from the analysis (roles, fans) and the residual structure read
//! from the graph ([`crate::analysis::residual`]), never from names. Its decisions sit below
//! `--rule` and below the rule flags given explicitly (`--bias`, `--norm`, `--relu`, …), above
//! the defaults. Tensors a preset has no recipe for (recurrent weights, PReLU slopes, norm
//! shifts and statistics) keep the ordinary rules.
//!
//! | preset | weights | embeddings | biases, norms | residual |
//! |---|---|---|---|---|
//! | `bert`, `llama` | N(0, r) | N(0, r); the token embedding's row `pad_token_id` 0 | 0; 1/0 | — |
//! | `gpt2` | N(0, r) | N(0, r) | 0; 1/0 | output projections N(0, r/√(2·n_layer)) |
//! | `t5` | N(0, f·fan_in^−½); a query projection N(0, f·(d_model·d_kv)^−½); the lm_head N(0, f) | the widest N(0, f), others (relative bias) N(0, f·d_model^−½) | 0; scale f | — |
//! | `resnet` | Conv: he_normal(fan_out, relu); Gemm/MatMul: U(±1/√fan_in) | — | Conv/BN: 0, 1/0; Gemm bias U(±1/√fan_in) | with `zero_init_residual`, each branch's last norm scale 0 |
//! | `vit` | truncated normal(0, r) on [−2, 2] | same; class token and position embeddings too | 0; 1/0 | — |
//!
//! These are transformers' `_init_weights` (PreTrainedModel's, and GPT-2's and T5's overrides),
//! torchvision's `ResNet.__init__` and timm's `init_weights_vit_timm`. Knobs: `r` =
//! `initializer_range` (0.02), `f` = `initializer_factor` (1.0), `n_layer` (the graph's depth:
//! the number of repeated residual blocks), `d_kv` (the query projection's output width divided
//! by the number of heads, the relative-position bias's width), `zero_init_residual` (0 or 1),
//! `pad_token_id` (a row index or `none`; BertConfig's default 0, LlamaConfig's `None`).
//!
//! Found from the graph, not from names:
//! - the **padding row**: transformers zeroes row `padding_idx` of an `nn.Embedding` built with
//!   one, which in BERT and LLaMA is the word embedding only (`padding_idx=pad_token_id`; not
//!   BERT's position or token-type tables; GPT-2's and T5's embeddings have none). The graph
//!   does not hold the id (the knob does); the table is the widest one gathered with run-time
//!   token ids ([`residual::token_embeddings`]);
//! - T5's **lm_head**, the weight layer whose output is a graph output
//!   ([`residual::output_layers`]) with one output per row of the token embedding (a
//!   classification or question-answering head keeps the fan rule, as T5 draws it): N(0, f)
//!   (T5's `_init_weights` for an untied head; tied, it is the shared table's draw, the same
//!   distribution); a table both gathered and used as a weight (tied in one initializer) is the
//!   shared embedding, N(0, f);
//! - ViT's **class token** and **position embeddings** ([`residual::learned_tokens`]), which
//!   exporters store as initializers concatenated with or added to the patch sequence and which
//!   the analysis alone leaves untouched: the preset gives them the role embedding
//!   ([`PresetPlan::give_roles`]) and transformers' trunc_normal(0, r) on [−2, 2] (timm draws
//!   the class token from N(0, 10⁻⁶); set it with `--rule` if you follow timm).
//!
//! What the preset finds missing (no token embedding for a padding id, no class token) it says
//! in [`PresetPlan::notes`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use init_core::{Distribution, FanMode, Nonlinearity, Scheme};

use crate::analysis::residual::{self, Residuals};
use crate::analysis::{Analysis, Role, TensorInfo};
use crate::onnx::skeleton::Model;
use crate::plan::Rule;

/// The recipes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetKind {
    /// BERT-style (transformers' PreTrainedModel `_init_weights`).
    Bert,
    /// GPT-2: BERT-style plus depth-scaled residual output projections.
    Gpt2,
    /// LLaMA-style (the same rules as BERT's: N(0, r), norms 1).
    Llama,
    /// T5: factor-scaled normals per projection.
    T5,
    /// torchvision ResNet.
    Resnet,
    /// timm ViT: truncated normal.
    Vit,
}

impl PresetKind {
    /// Every preset, in help order.
    pub const ALL: [PresetKind; 6] = [
        PresetKind::Bert,
        PresetKind::Gpt2,
        PresetKind::Llama,
        PresetKind::T5,
        PresetKind::Resnet,
        PresetKind::Vit,
    ];

    /// The name `--preset` takes.
    pub fn name(self) -> &'static str {
        match self {
            PresetKind::Bert => "bert",
            PresetKind::Gpt2 => "gpt2",
            PresetKind::Llama => "llama",
            PresetKind::T5 => "t5",
            PresetKind::Resnet => "resnet",
            PresetKind::Vit => "vit",
        }
    }

    /// The knobs this preset takes, with their defaults (`None`: read from the graph;
    /// [`NO_PAD`] for `pad_token_id`: no padding row). `pad_token_id`'s defaults are the
    /// families' config defaults: BertConfig's 0, LlamaConfig's `None`.
    pub fn knobs(self) -> &'static [(&'static str, Option<f64>)] {
        match self {
            PresetKind::Bert => &[
                ("initializer_range", Some(0.02)),
                ("pad_token_id", Some(0.0)),
            ],
            PresetKind::Llama => &[
                ("initializer_range", Some(0.02)),
                ("pad_token_id", Some(NO_PAD)),
            ],
            PresetKind::Vit => &[("initializer_range", Some(0.02))],
            PresetKind::Gpt2 => &[("initializer_range", Some(0.02)), ("n_layer", None)],
            PresetKind::T5 => &[("initializer_factor", Some(1.0)), ("d_kv", None)],
            PresetKind::Resnet => &[("zero_init_residual", Some(0.0))],
        }
    }
}

/// `pad_token_id`'s value for "no padding row" (`pad_token_id=none`).
pub const NO_PAD: f64 = -1.0;

/// A knob's value as text: `none` for a `pad_token_id` without a padding row.
fn knob_text(name: &str, value: f64) -> String {
    if name == "pad_token_id" && value < 0.0 {
        "none".to_owned()
    } else {
        value.to_string()
    }
}

/// A preset with the knobs given explicitly: `gpt2`, `gpt2(initializer_range=0.02,n_layer=12)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// Which recipe.
    pub kind: PresetKind,
    /// Knobs set explicitly, in the order given (a later one wins).
    pub args: Vec<(String, f64)>,
}

impl Preset {
    /// Set a knob from `NAME=VALUE` (`--preset-arg`), checked against the preset's knobs.
    pub fn set_arg(&mut self, text: &str) -> Result<(), String> {
        let (k, v) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected NAME=VALUE (e.g. initializer_range=0.02)")
        })?;
        let k = k.trim();
        let known = self.kind.knobs();
        if !known.iter().any(|(n, _)| *n == k) {
            let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "preset {} has no knob `{k}`; it takes {}",
                self.kind.name(),
                names.join(", ")
            ));
        }
        let v = v.trim();
        if k == "pad_token_id" {
            let value = match v {
                "none" | "None" | "null" => NO_PAD,
                _ => match v.parse::<u32>() {
                    Ok(id) => f64::from(id),
                    Err(_) => {
                        return Err(format!("`{k}={v}`: expected a row index (0, 1, …) or none"));
                    }
                },
            };
            self.args.push((k.to_owned(), value));
            return Ok(());
        }
        let value = match v {
            "true" | "True" => 1.0,
            "false" | "False" => 0.0,
            _ => v
                .parse::<f64>()
                .map_err(|_| format!("`{k}={v}`: the value is not a number"))?,
        };
        if !value.is_finite() || value < 0.0 || (k != "zero_init_residual" && value == 0.0) {
            return Err(format!("`{k}={v}`: expected a finite positive number"));
        }
        self.args.push((k.to_owned(), value));
        Ok(())
    }

    fn arg(&self, name: &str) -> Option<f64> {
        self.args.iter().rev().find(|(k, _)| k == name).map(|a| a.1)
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(text: &str) -> Result<Preset, String> {
        let t = text.trim();
        let (name, rest) = match t.find('(') {
            Some(i) => {
                let inner = t[i + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| format!("`{t}`: missing `)`"))?;
                (t[..i].trim(), Some(inner))
            }
            None => (t, None),
        };
        let lower = name.to_ascii_lowercase().replace(['-', '_'], "");
        let kind = PresetKind::ALL
            .into_iter()
            .find(|k| k.name().replace('_', "") == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = PresetKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown preset `{name}`; presets: {}", names.join(", "))
            })?;
        let mut p = Preset {
            kind,
            args: Vec::new(),
        };
        for a in rest.into_iter().flat_map(|r| r.split(',')) {
            if !a.trim().is_empty() {
                p.set_arg(a)?;
            }
        }
        Ok(p)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if !self.args.is_empty() {
            let a: Vec<String> = self
                .args
                .iter()
                .map(|(k, v)| format!("{k}={}", knob_text(k, *v)))
                .collect();
            write!(f, "({})", a.join(","))?;
        }
        Ok(())
    }
}

/// A knob's value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Knob {
    /// Its name.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// `given`, `default`, or how the graph gave it.
    pub source: String,
}

/// A preset's decision for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetDecision {
    /// What the tensor gets.
    pub rule: Rule,
    /// Why (shown in the report as the tensor's rule): the preset, the recipe's line, and for a
    /// residual output projection or last norm which add it belongs to.
    pub reason: String,
    /// Elements written as 0 after the rule's fill, in row-major order: the `pad_token_id` row
    /// of the token embedding (`row·D .. (row + 1)·D` of a (V, D) table).
    pub zeroed: Option<std::ops::Range<u64>>,
}

/// A preset resolved against one model: a decision per tensor it has a recipe for.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetPlan {
    /// The preset as given.
    pub preset: Preset,
    /// The knobs' values and sources.
    pub knobs: Vec<Knob>,
    /// The residual structure the recipe used.
    pub residuals: Residuals,
    /// Per (graph, tensor name).
    pub decisions: HashMap<(String, String), PresetDecision>,
    /// What the recipe looked for and did not find (printed after the knobs).
    pub notes: Vec<String>,
    /// Main-graph tensors the analysis left without a role that the recipe recognised from the
    /// graph (ViT's class token and position embeddings); [`PresetPlan::give_roles`] makes
    /// them embeddings.
    pub recognised: Vec<String>,
}

impl PresetPlan {
    /// The decision for `t`, if the preset has one.
    pub fn decision(&self, t: &TensorInfo) -> Option<&PresetDecision> {
        self.decisions
            .get(&(t.graph.to_string(), t.name.to_string()))
    }
}

/// Why a preset cannot apply to a model.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// `pad_token_id` is not a row of the token embedding table.
    #[error(
        "preset {preset}: pad_token_id={id} is not a row of the token embedding `{tensor}` \
         ({rows} rows); set it with --preset-arg pad_token_id=ID (or none)"
    )]
    PadOutOfRange {
        /// The preset.
        preset: &'static str,
        /// The knob's value.
        id: u64,
        /// The embedding table.
        tensor: String,
        /// Its rows.
        rows: i64,
    },
    /// A knob the graph does not give and that was not set.
    #[error("preset {preset}: {why}; set it with --preset-arg {knob}=VALUE")]
    MissingKnob {
        /// The preset.
        preset: &'static str,
        /// The knob.
        knob: &'static str,
        /// Why the graph does not give it.
        why: String,
    },
}

/// N(0, std²); an std that is not finite and positive (a tensor with fan_in 0) has no recipe:
/// `None` leaves the tensor to the ordinary rules.
fn normal(std: f64) -> Option<Rule> {
    Scheme::normal(0.0, std).ok().and_then(fixed)
}

/// The scheme as a rule whose gain does not follow the activation (a recipe's stds are fixed);
/// an `Option` so that every decision is a possible one (see [`normal`]).
#[allow(clippy::unnecessary_wraps)]
fn fixed(scheme: Scheme) -> Option<Rule> {
    Some(Rule::Init {
        scheme,
        adapt_gain: false,
    })
}

fn is_op(t: &TensorInfo, ops: &[&str]) -> bool {
    t.consumers.iter().any(|c| ops.contains(&c.op.as_str()))
}

/// Resolve `preset` against a model: read its knobs from the graph where they are not given, find
/// the residual structure, and decide every tensor the recipe covers.
pub fn resolve(
    preset: &Preset,
    model: &Model,
    analysis: &Analysis,
) -> Result<PresetPlan, PresetError> {
    let residuals = residual::residuals(model, analysis);
    let kind = preset.kind;
    let name = kind.name();
    let mut knobs = Vec::new();
    let mut knob = |n: &'static str, graph: Option<(f64, String)>| -> Result<f64, PresetError> {
        let default = kind.knobs().iter().find(|(k, _)| *k == n).and_then(|k| k.1);
        let (value, source) = match (preset.arg(n), graph, default) {
            (Some(v), _, _) => (v, "given".to_owned()),
            (None, Some((v, why)), _) => (v, why),
            (None, None, Some(v)) => (v, "default".to_owned()),
            (None, None, None) => {
                return Err(PresetError::MissingKnob {
                    preset: name,
                    knob: n,
                    why: format!("the graph does not give {n}"),
                });
            }
        };
        knobs.push(Knob {
            name: n,
            value,
            source,
        });
        Ok(value)
    };
    let mut decisions = HashMap::new();
    let mut notes = Vec::new();
    let mut recognised = Vec::new();
    // The padding row: transformers' `_init_weights` zeroes row `padding_idx` of an
    // nn.Embedding built with one — the word embedding (BERT's `word_embeddings`, LLaMA's
    // `embed_tokens`, padding_idx = config.pad_token_id), not BERT's position or token-type
    // tables. The graph cannot tell the id; it tells which table is gathered with the token ids.
    let mut zero_rows: HashMap<String, (std::ops::Range<u64>, String)> = HashMap::new();
    if kind.knobs().iter().any(|(k, _)| *k == "pad_token_id") {
        let id = knob("pad_token_id", None)?;
        if id >= 0.0 {
            let id = id as u64;
            let word = residual::token_embeddings(model, analysis)
                .into_iter()
                .filter_map(|(n, rows)| Some((analysis.find("", &n)?, rows)))
                .filter(|(t, _)| t.role.is_some() && t.dims.len() == 2)
                .max_by_key(|(_, rows)| *rows);
            match word {
                Some((t, rows)) if id >= rows.max(0) as u64 => {
                    return Err(PresetError::PadOutOfRange {
                        preset: name,
                        id,
                        tensor: t.name.to_string(),
                        rows,
                    });
                }
                Some((t, _)) => {
                    let d = t.dims[1].max(0) as u64;
                    zero_rows.insert(
                        t.name.to_string(),
                        (
                            id * d..(id + 1) * d,
                            format!(
                                "; row {id} (pad_token_id) zeros: the widest table gathered \
                                 with run-time token ids is the word embedding"
                            ),
                        ),
                    );
                }
                None => notes.push(format!(
                    "pad_token_id={id}: no embedding table is gathered with run-time token ids; \
                     no padding row written"
                )),
            }
        }
    }
    let mut put = |t: &TensorInfo, rule: Option<Rule>, mut reason: String| {
        let Some(rule) = rule else { return };
        let zeroed = match zero_rows.get(t.name.as_str()) {
            Some((r, why)) if t.graph.is_empty() => {
                reason.push_str(why);
                Some(r.clone())
            }
            _ => None,
        };
        decisions.insert(
            (t.graph.to_string(), t.name.to_string()),
            PresetDecision {
                rule,
                reason,
                zeroed,
            },
        );
    };
    let main = |t: &&TensorInfo| t.graph.is_empty();
    match kind {
        PresetKind::Bert | PresetKind::Llama | PresetKind::Gpt2 | PresetKind::Vit => {
            let r = knob("initializer_range", None)?;
            let scale = if kind == PresetKind::Gpt2 {
                let depth = residuals.depth;
                let graph = (depth > 0).then(|| {
                    (
                        depth as f64,
                        format!("from the graph: {depth} repeated residual blocks"),
                    )
                });
                let n = knob("n_layer", graph)?;
                Some((n, r / (2.0 * n).sqrt()))
            } else {
                None
            };
            let (dist, dname) = if kind == PresetKind::Vit {
                (
                    Scheme::truncated_normal_abs(0.0, r, -2.0, 2.0)
                        .ok()
                        .and_then(fixed),
                    format!("truncated_normal(0, {r}) on [−2, 2]"),
                )
            } else {
                (normal(r), format!("normal(0, {r})"))
            };
            for t in &analysis.tensors {
                match t.role {
                    Some(Role::Weight) => {
                        let proj = main(&t).then(|| residuals.projection(&t.name)).flatten();
                        match (proj, scale) {
                            (Some(add), Some((n, std))) => put(
                                t,
                                normal(std),
                                format!(
                                    "--preset {name}: residual output projection (the last weight \
                                     layer of the branch node `{}` adds back into the stream it \
                                     left; {} weight layers on the branch, {} on the skip): \
                                     normal(0, {r}/√(2·{n}))",
                                    add.node, add.branch_layers, add.stream_layers
                                ),
                            ),
                            _ => put(t, dist.clone(), format!("--preset {name}: {dname}")),
                        }
                    }
                    Some(Role::Embedding) => put(
                        t,
                        dist.clone(),
                        format!("--preset {name}: embedding {dname}"),
                    ),
                    Some(Role::Bias) => {
                        put(t, fixed(Scheme::ZEROS), format!("--preset {name}: bias 0"));
                    }
                    Some(Role::NormScale) => put(
                        t,
                        fixed(Scheme::ONES),
                        format!("--preset {name}: norm scale 1"),
                    ),
                    _ => {}
                }
            }
            if kind == PresetKind::Vit {
                // ViTPreTrainedModel._init_weights: trunc_normal_(mean 0, std r, a −2, b 2) for
                // both (timm: trunc_normal_(.02) for pos_embed, normal_(1e-6) for cls_token).
                let tokens = residual::learned_tokens(model, analysis);
                let found = [
                    (
                        &tokens.class_tokens,
                        "class token (an initializer concatenated with the patch sequence)",
                    ),
                    (
                        &tokens.position_embeddings,
                        "position embeddings (an initializer added to the token sequence)",
                    ),
                ];
                for (names, what) in found {
                    for n in names {
                        if let Some(t) = analysis.find("", n) {
                            put(t, dist.clone(), format!("--preset vit: {what}: {dname}"));
                            recognised.push(n.clone());
                        }
                    }
                }
                if tokens.class_tokens.is_empty() {
                    notes.push(
                        "no class token: no initializer is concatenated with the patch sequence"
                            .to_owned(),
                    );
                }
                if tokens.position_embeddings.is_empty() {
                    notes.push(
                        "no position embeddings: no initializer is added to the token sequence"
                            .to_owned(),
                    );
                }
            }
        }
        PresetKind::T5 => {
            let f = knob("initializer_factor", None)?;
            let embeddings: Vec<&TensorInfo> = analysis
                .tensors
                .iter()
                .filter(|t| t.role == Some(Role::Embedding) && t.dims.len() == 2)
                .collect();
            let d_model = embeddings.iter().map(|t| t.dims[1]).max();
            let heads = embeddings
                .iter()
                .map(|t| t.dims[1])
                .filter(|&d| Some(d) != d_model)
                .min();
            let queries = residual::attention_queries(model, analysis);
            let q_width = analysis
                .tensors
                .iter()
                .find(|t| queries.contains(t.name.as_str()))
                .and_then(|t| t.fans)
                .map(|fans| fans.fan_out);
            let graph_dkv = match (q_width, heads) {
                (Some(w), Some(h)) if h > 0 && (w as i64) % h == 0 => Some((
                    (w as i64 / h) as f64,
                    format!(
                        "from the graph: the query projection's {w} outputs over the {h} heads of \
                         the relative-position bias"
                    ),
                )),
                _ => None,
            };
            let d_kv = if queries.is_empty() {
                0.0
            } else {
                knob("d_kv", graph_dkv)?
            };
            // Tables gathered with token ids; a weight among them is the shared table tied to an
            // lm_head (its MatMul wins the role), which T5 draws as the embedding: N(0, f).
            let tables = residual::token_embeddings(model, analysis);
            let gathered: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
            let vocab = tables.iter().map(|(_, rows)| *rows).max();
            // T5ForConditionalGeneration's lm_head: N(0, f). Only a layer into the graph output
            // with one output per token of the vocabulary (the widest table gathered with token
            // ids): T5's classification and question-answering heads keep f·d_model^−½, the fan
            // rule below.
            let heads = residual::output_layers(model, analysis);
            let is_head = |t: &TensorInfo| {
                heads.iter().any(|h| h == t.name.as_str())
                    && t.fans
                        .is_some_and(|fans| Some(fans.fan_out as i64) == vocab)
            };
            for t in &analysis.tensors {
                match t.role {
                    Some(Role::Weight) => {
                        let Some(fans) = t.fans else { continue };
                        let fan_in = fans.fan_in as f64;
                        if main(&t) && gathered.contains(&t.name.as_str()) {
                            put(
                                t,
                                normal(f),
                                format!(
                                    "--preset t5: shared embedding (gathered with the token ids \
                                     and tied to the output layer) normal(0, {f})"
                                ),
                            );
                        } else if main(&t) && is_head(t) {
                            put(
                                t,
                                normal(f),
                                format!(
                                    "--preset t5: lm_head (the weight layer whose output is the \
                                     graph output, one per token of the {} embedding rows) \
                                     normal(0, {f})",
                                    fans.fan_out
                                ),
                            );
                        } else if queries.contains(t.name.as_str()) {
                            put(
                                t,
                                normal(f / (fan_in * d_kv).sqrt()),
                                format!(
                                    "--preset t5: query projection (left operand of Q·Kᵀ): \
                                     normal(0, {f}·({fan_in}·{d_kv})^−½)"
                                ),
                            );
                        } else {
                            put(
                                t,
                                normal(f / fan_in.sqrt()),
                                format!("--preset t5: normal(0, {f}·fan_in^−½), fan_in {fan_in}"),
                            );
                        }
                    }
                    Some(Role::Embedding) if t.dims.len() == 2 => {
                        if Some(t.dims[1]) == d_model {
                            put(
                                t,
                                normal(f),
                                format!("--preset t5: shared embedding normal(0, {f})"),
                            );
                        } else if let Some(d) = d_model {
                            put(
                                t,
                                normal(f / (d as f64).sqrt()),
                                format!(
                                    "--preset t5: relative attention bias normal(0, {f}·{d}^−½)"
                                ),
                            );
                        }
                    }
                    Some(Role::Bias) => put(t, fixed(Scheme::ZEROS), "--preset t5: bias 0".into()),
                    Some(Role::NormScale) => put(
                        t,
                        fixed(Scheme::constant(f).unwrap_or(Scheme::ONES)),
                        format!("--preset t5: layer norm scale {f}"),
                    ),
                    _ => {}
                }
            }
        }
        PresetKind::Resnet => {
            let zero = knob("zero_init_residual", None)? != 0.0;
            let he = Scheme::he(Distribution::Normal, FanMode::FanOut, Nonlinearity::Relu)
                .unwrap_or(Scheme::HE_UNIFORM);
            // A Gemm's bias gets nn.Linear's U(±1/√fan_in) of the weight in the same node.
            let mut fan_in_of_node: HashMap<&str, u64> = HashMap::new();
            for t in &analysis.tensors {
                if t.role == Some(Role::Weight)
                    && let Some(fans) = t.fans
                {
                    for c in &t.consumers {
                        fan_in_of_node.insert(c.node.as_str(), fans.fan_in);
                    }
                }
            }
            let linear_ops = ["Gemm", "MatMul"];
            for t in &analysis.tensors {
                match t.role {
                    Some(Role::Weight) if is_op(t, &["Conv"]) => put(
                        t,
                        fixed(he),
                        "--preset resnet: Conv kaiming_normal(mode=fan_out, nonlinearity=relu)"
                            .into(),
                    ),
                    Some(Role::Weight) if is_op(t, &linear_ops) => put(
                        t,
                        fixed(Scheme::FAN_IN_UNIFORM),
                        "--preset resnet: Linear (nn.Linear's default) U(±1/√fan_in)".into(),
                    ),
                    Some(Role::Bias) => {
                        let fan_in = t
                            .consumers
                            .iter()
                            .filter(|c| linear_ops.contains(&c.op.as_str()))
                            .find_map(|c| fan_in_of_node.get(c.node.as_str()));
                        match fan_in.and_then(|&n| {
                            let b = 1.0 / (n as f64).sqrt();
                            Scheme::uniform(-b, b).ok()
                        }) {
                            Some(s) => put(
                                t,
                                fixed(s),
                                "--preset resnet: Linear bias (nn.Linear's default) \
                                 U(±1/√fan_in of its weight)"
                                    .into(),
                            ),
                            None => put(t, fixed(Scheme::ZEROS), "--preset resnet: bias 0".into()),
                        }
                    }
                    Some(Role::NormScale) => {
                        let last = main(&t).then(|| residuals.last_norm(&t.name)).flatten();
                        match (zero, last) {
                            (true, Some(add)) => put(
                                t,
                                fixed(Scheme::ZEROS),
                                format!(
                                    "--preset resnet(zero_init_residual): the last norm of the \
                                     branch node `{}` adds back into the stream ({} weight \
                                     layers on the branch, {} on the skip): scale 0",
                                    add.node, add.branch_layers, add.stream_layers
                                ),
                            ),
                            _ => put(
                                t,
                                fixed(Scheme::ONES),
                                "--preset resnet: norm scale 1".into(),
                            ),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // In the order `knobs()` lists them (pad_token_id is read before the others).
    knobs.sort_by_key(|k| kind.knobs().iter().position(|(n, _)| *n == k.name));
    Ok(PresetPlan {
        preset: preset.clone(),
        knobs,
        residuals,
        decisions,
        notes,
        recognised,
    })
}

impl PresetPlan {
    /// Give the tensors the recipe recognised ([`PresetPlan::recognised`]) the role
    /// [`Role::Embedding`] (a learned vector per token or position: in = 1, out = the last
    /// dim), so that the plan and the report treat them as the recipe's: the analysis alone
    /// leaves them untouched, with its reason. Run on the analysis the plan reads.
    pub fn give_roles(&self, analysis: &mut Analysis) {
        for t in &mut analysis.tensors {
            if t.graph.is_empty()
                && t.role.is_none()
                && self.recognised.iter().any(|r| r == t.name.as_str())
            {
                let d = t.dims.last().copied().unwrap_or(1).max(0) as u64;
                t.role = Some(Role::Embedding);
                t.fans = Some(init_core::Fans {
                    fan_in: 1,
                    fan_out: d,
                });
                t.activation = Some(crate::analysis::Activation::Linear);
                t.note = Some(format!(
                    "--preset {}: recognised from the graph ({})",
                    self.preset.kind.name(),
                    t.take_why_untouched().trim_end()
                ));
            }
        }
    }

    /// The `"preset"` member `--json` adds: the preset, its knobs with their sources, and every
    /// residual add with its output projection and last norm.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "preset": self.preset.to_string(),
            "knobs": self.knobs.iter().map(|k| serde_json::json!({
                "name": k.name,
                "value": if k.name == "pad_token_id" && k.value < 0.0 {
                    serde_json::Value::Null
                } else {
                    serde_json::json!(k.value)
                },
                "source": k.source,
            })).collect::<Vec<_>>(),
            "depth": self.residuals.depth,
            "notes": self.notes,
            "residual_adds": self.residuals.adds.iter().map(|a| serde_json::json!({
                "node": a.node, "stream": a.stream, "branch": a.branch,
                "branch_layers": a.branch_layers, "stream_layers": a.stream_layers,
                "output_projection": a.projection, "last_norm": a.last_norm,
            })).collect::<Vec<_>>(),
        })
    }

    /// The lines the table prints after the report: the knobs with their sources, then each
    /// residual add the recipe used (its output projection, its last norm, and why it is one).
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let knobs: Vec<String> = self
            .knobs
            .iter()
            .map(|k| format!("{}={} ({})", k.name, knob_text(k.name, k.value), k.source))
            .collect();
        let _ = writeln!(
            out,
            "preset {}: {}",
            self.preset.kind.name(),
            knobs.join(", ")
        );
        for n in &self.notes {
            let _ = writeln!(out, "  {n}");
        }
        if self.residuals.adds.is_empty() {
            let _ = writeln!(out, "  no residual adds in the graph");
        }
        for a in &self.residuals.adds {
            let _ = writeln!(
                out,
                "  residual add `{}`: branch `{}` ({} weight layers since the fork) into stream `{}` ({}); output projection {}, last norm {}",
                a.node,
                a.branch,
                a.branch_layers,
                a.stream,
                a.stream_layers,
                a.projection.as_deref().unwrap_or("none"),
                a.last_norm.as_deref().unwrap_or("none"),
            );
        }
        out
    }
}
