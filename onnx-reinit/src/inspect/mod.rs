//! `onnx-reinit inspect`: diagnose a model's initialization, weight by weight, and (with the
//! `forward` feature) show how a random input's signal propagates layer by layer.
//!
//! The weight diagnosis turns the seed's "what not to do" into verdicts ([`Verdict`]):
//! all-zero weights (nothing trains), a non-zero constant (every unit updates alike: symmetry),
//! random weights far smaller or larger than the recommended scheme for the activation that
//! follows (vanishing signal, or saturation and explosion). Each tensor with a role (see
//! [`crate::analysis`]) gets one [`TensorRow`]: its statistics, computed from the payload in
//! bounded pieces ([`stats`]), the scheme the default [`Rules`] would give it and that scheme's
//! standard deviation, their ratio, and the verdict:
//!
//! | role | check |
//! |---|---|
//! | weight, recurrent weight | `non_finite` if any NaN/inf; `zero` if all zero; `constant` if all equal; else `too_small` / `too_large` when std / recommended std is below / above the thresholds (0.1 and 10 by default) |
//! | embedding | as a weight against normal(0, 1), except that std down to 1/√D (Flax's N(0, 1/D), D the embedding width) counts as 1 for `too_small` |
//! | bias | zero or constant is fine; `too_large` when the RMS exceeds the large threshold (10) |
//! | norm scale | `zero` if all zero (the layer outputs only its shift); `too_small` / `too_large` when the RMS is below / above the thresholds (the recommended value is 1) |
//! | BatchNorm running variance | `zero` if all zero, `too_small` if any is ≤ 0 (the layer divides by √(var + ε)) |
//! | norm shift, running mean, PReLU slope | only `non_finite` |
//!
//! The [`Summary`] counts the verdicts and suggests an `onnx-reinit` command line that
//! re-initializes exactly the flagged tensors with their recommended schemes and keeps the rest.
//!
//! The stages, for the binary and other callers: [`inspect`] opens and analyses a model, then
//! [`diagnose`]s it (the statistics come from [`stats`]) and, when [`InspectOptions::forward`]
//! asks for it, adds [`run_forward`]'s pass. The result is one [`InspectReport`]: the `--json`
//! document, with [`InspectReport::table`] as the human form and [`plot::write_svg`] as the
//! picture. Parsing flags, printing and exit codes are the binary's.

#[cfg(feature = "forward")]
pub mod forward;
#[cfg(feature = "forward")]
pub mod lsuv;
#[cfg(feature = "forward")]
pub mod npz;
pub mod plot;
pub mod stats;

use std::fmt::Write as _;
use std::str::FromStr;

use init_core::SchemeExt as _;
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, AnalysisOptions, FanCompat, NormStatKind, Role, TensorInfo};
use crate::onnx::model::LoadedModel;
use crate::pipeline::{self, RunError};
use crate::plan::{self, Fill, Rules};
use crate::report::{dtype_name, fans_text, footer, role_label, shape_text};
use crate::table::{Column, Table, elide_middle, wrap};

pub use stats::Stats;

/// The diagnosis of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing wrong.
    Ok,
    /// All values zero: the layer's units stay identical (nothing trains), or a norm scale that
    /// removes the signal.
    Zero,
    /// All values equal and non-zero: every unit updates alike (symmetry).
    Constant,
    /// Random, but the std is below `too_small` × the recommended std: the signal vanishes.
    TooSmall,
    /// Random, but the std is above `too_large` × the recommended std: saturation, explosion.
    TooLarge,
    /// Some values are NaN or infinite.
    NonFinite,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 6] = [
        Verdict::Ok,
        Verdict::Zero,
        Verdict::Constant,
        Verdict::TooSmall,
        Verdict::TooLarge,
        Verdict::NonFinite,
    ];

    /// The name used in tables, JSON and `--fail-on`: `ok`, `zero`, `constant`, `too_small`,
    /// `too_large`, `non_finite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Zero => "zero",
            Verdict::Constant => "constant",
            Verdict::TooSmall => "too_small",
            Verdict::TooLarge => "too_large",
            Verdict::NonFinite => "non_finite",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;

    /// Parses [`Verdict::as_str`] names (also with `-` for `_`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().replace('-', "_");
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "unknown verdict `{s}` (expected one of: {})",
                    Verdict::ALL.map(Verdict::as_str).join(", ")
                )
            })
    }
}

/// The ratio bounds of the `too_small` and `too_large` verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A std below this multiple of the recommended std is `too_small` (default 0.1).
    pub too_small: f64,
    /// A std above this multiple of the recommended std is `too_large` (default 10).
    pub too_large: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            too_small: 0.1,
            too_large: 10.0,
        }
    }
}

/// Options of [`inspect`] (and of [`diagnose`], which reads `analysis` and `thresholds`).
#[derive(Clone, Debug, Default)]
pub struct InspectOptions {
    /// Fan convention of the analysis (and of the recommended std).
    pub analysis: AnalysisOptions,
    /// Verdict thresholds.
    pub thresholds: Thresholds,
    /// Run the forward pass too ([`run_forward`]) and put it in [`InspectReport::forward`];
    /// `None`: the weight diagnosis only.
    pub forward: Option<ForwardOptions>,
}

/// One tensor with a role, as printed and as serialised in `--json`'s `tensors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorRow {
    /// Initializer name.
    pub name: String,
    /// Graph path (`""` for the main graph).
    pub graph: String,
    /// Role (`weight`, `recurrent_weight`, `bias`, `norm_scale`, `norm_shift`, `norm_stat`,
    /// `embedding`, `prelu_slope`), as in the rewrite's report.
    pub role: String,
    /// The op of the first consumer (the layer).
    pub op: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Element type (`float32`, `float16`, …).
    pub dtype: String,
    /// fan_in, for roles with fans (per gate block for recurrent weights).
    pub fan_in: Option<u64>,
    /// fan_out, for roles with fans (per gate block for recurrent weights).
    pub fan_out: Option<u64>,
    /// The activation after the layer (`relu`, `tanh`, …, `linear`, `recurrent`).
    pub activation: Option<String>,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// Population std of the finite values.
    pub std: Option<f64>,
    /// Smallest finite value.
    pub min: Option<f64>,
    /// Largest finite value.
    pub max: Option<f64>,
    /// The scheme the default rules give this tensor (`he_uniform`, `zeros`, …), if any.
    pub recommended: Option<String>,
    /// The std of that scheme for this tensor's shape and fans.
    pub recommended_std: Option<f64>,
    /// `std / recommended_std` (for weights, recurrent weights and embeddings).
    pub ratio: Option<f64>,
    /// The diagnosis.
    pub verdict: Verdict,
    /// Why, when it is not `ok` or needs explaining (which check, which values).
    pub note: Option<String>,
    /// The layer: the first node that reads the tensor (as in the rewrite's report).
    #[serde(default)]
    pub node: Option<String>,
    /// For LSTM/GRU/RNN parameters: `W`, `R` or `B` (as in the rewrite's report).
    #[serde(default)]
    pub recurrent: Option<String>,
}

/// Verdict counts and the suggested fix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Initializers in the model.
    pub initializers: usize,
    /// Rows (tensors with a role).
    pub tensors: usize,
    /// Initializers without a role (not inspected).
    pub untouched: usize,
    /// Rows with verdict `ok`.
    pub ok: usize,
    /// Rows with verdict `zero`.
    pub zero: usize,
    /// Rows with verdict `constant`.
    pub constant: usize,
    /// Rows with verdict `too_small`.
    pub too_small: usize,
    /// Rows with verdict `too_large`.
    pub too_large: usize,
    /// Rows with verdict `non_finite`.
    pub non_finite: usize,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// An `onnx-reinit` command line that re-initializes the flagged tensors (and keeps the
    /// rest), or `None` when nothing is flagged.
    pub suggested_command: Option<String>,
    /// The same command as an argument list (program name first), for callers that run it
    /// without a shell.
    #[serde(default)]
    pub suggested_argv: Option<Vec<String>>,
}

impl Summary {
    /// The count of one verdict.
    pub fn count(&self, v: Verdict) -> usize {
        match v {
            Verdict::Ok => self.ok,
            Verdict::Zero => self.zero,
            Verdict::Constant => self.constant,
            Verdict::TooSmall => self.too_small,
            Verdict::TooLarge => self.too_large,
            Verdict::NonFinite => self.non_finite,
        }
    }

    fn bump(&mut self, v: Verdict) {
        let slot = match v {
            Verdict::Ok => &mut self.ok,
            Verdict::Zero => &mut self.zero,
            Verdict::Constant => &mut self.constant,
            Verdict::TooSmall => &mut self.too_small,
            Verdict::TooLarge => &mut self.too_large,
            Verdict::NonFinite => &mut self.non_finite,
        };
        *slot += 1;
    }

    /// Number of rows whose verdict is not `ok`.
    pub fn flagged(&self) -> usize {
        self.tensors - self.ok
    }
}

/// One recorded layer output of a forward pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    /// Position in graph order among the recorded outputs (0-based).
    pub index: usize,
    /// The ONNX node's name (or `#<index>` when it has none).
    pub node: String,
    /// Its op type.
    pub op: String,
    /// The recorded output's name.
    pub output: String,
    /// `weight` (a layer with a weight: Conv, Gemm, MatMul, LSTM, Gather, …), `norm` (a
    /// normalization with a scale) or `activation`.
    pub kind: String,
    /// The output's shape.
    pub shape: Vec<usize>,
    /// Mean of the output.
    pub mean: f64,
    /// Std of the output (population, over every element of the batch).
    pub std: f64,
    /// Fraction of exact zeros, after a ReLU-like activation (Relu, Clip, ThresholdedRelu).
    pub zero_fraction: Option<f64>,
    /// Fraction of saturated outputs after Tanh/Softsign (|y| > 0.99) or
    /// Sigmoid/HardSigmoid (y < 0.01 or y > 0.99).
    pub saturated_fraction: Option<f64>,
    /// The distribution of the output's finite values: its 5th, 25th, 50th, 75th and 95th
    /// percentiles (nearest rank), for the plot's per-layer boxes.
    #[serde(default)]
    pub quantiles: Option<[f64; 5]>,
}

/// The 5th, 25th, 50th, 75th and 95th percentiles (nearest rank: the value at index
/// ⌊q·(n−1)⌉ of the sorted finite values), `None` without finite values.
pub fn quantiles(values: &[f32]) -> Option<[f64; 5]> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| f64::from(v[(q * (v.len() - 1) as f64).round() as usize]);
    Some([at(0.05), at(0.25), at(0.5), at(0.75), at(0.95)])
}

/// One forward pass: the model as it is, or re-initialized in memory with `--compare` rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardRun {
    /// `current`, or `reinit` for the re-initialized model.
    pub label: String,
    /// The rules of a re-initialized run, as given.
    pub rules: Option<String>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// The recorded outputs in graph order.
    pub layers: Vec<LayerRow>,
}

/// A model input of the forward pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRow {
    /// Input name.
    pub name: String,
    /// The concrete shape used.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: String,
    /// How the values were drawn (`normal(0,1)`, `integers in [0, 100)`, …).
    pub values: String,
}

/// The forward-pass part of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardReport {
    /// The seed of the random inputs.
    pub seed: u64,
    /// The inputs fed.
    pub inputs: Vec<InputRow>,
    /// Passes: the current model first, then the re-initialized one with `--compare`.
    pub runs: Vec<ForwardRun>,
    /// Why no pass could run at all (tract cannot load the model, the `forward` feature is
    /// off, …). The weight statistics are still reported.
    pub error: Option<String>,
}

/// The whole `inspect` report (the `--json` document; its schema is
/// `schema/inspect.schema.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    /// [`crate::report::SCHEMA_VERSION`].
    #[serde(default)]
    pub schema_version: u32,
    /// [`crate::report::TOOL_VERSION`].
    #[serde(default)]
    pub tool_version: String,
    /// The model path.
    pub model: String,
    /// The seed of the forward pass's inputs and of `--compare`'s re-initialization (also
    /// without a forward pass: the seed a later `--forward` with the same flags would use).
    #[serde(default)]
    pub seed: u64,
    /// One row per tensor with a role, in graph order (as the rewrite's report).
    pub tensors: Vec<TensorRow>,
    /// Initializers without a role, with the reason (as the rewrite's report).
    #[serde(default)]
    pub untouched: Vec<crate::report::UntouchedReport>,
    /// Counts and the suggested fix.
    pub summary: Summary,
    /// Analysis warnings about the graph.
    pub warnings: Vec<String>,
    /// The forward pass, when [`InspectOptions::forward`] asks for one (`--forward`).
    pub forward: Option<ForwardReport>,
}

/// Options of the forward pass ([`run_forward`]).
#[derive(Clone, Debug, Default)]
pub struct ForwardOptions {
    /// Seed of the random inputs (and of the `--compare` re-initialization).
    pub seed: u64,
    /// Concrete input shapes: `(Some(name), dims)`, or `(None, dims)` for the first input.
    pub input_shapes: Vec<(Option<String>, Vec<usize>)>,
    /// A second pass after re-initializing with these rules; the string is the rules as the
    /// user wrote them, for the report.
    pub compare: Option<(String, Rules)>,
}

/// Run the forward pass with tract-onnx (see the `forward` module). Never fails: what goes
/// wrong is in [`ForwardReport::error`] or a run's [`ForwardRun::error`].
#[cfg(feature = "forward")]
pub fn run_forward(
    model: &LoadedModel,
    analysis: &Analysis,
    opts: &ForwardOptions,
) -> ForwardReport {
    forward::forward(model, analysis, opts)
}

/// Without the `forward` feature: a report saying so.
#[cfg(not(feature = "forward"))]
pub fn run_forward(
    _model: &LoadedModel,
    _analysis: &Analysis,
    opts: &ForwardOptions,
) -> ForwardReport {
    ForwardReport {
        seed: opts.seed,
        inputs: Vec::new(),
        runs: Vec::new(),
        error: Some(
            "this onnx-reinit was built without the `forward` feature (tract-onnx); rebuild with \
             `--features forward`"
                .to_owned(),
        ),
    }
}

/// Open, analyse and diagnose the model at `path`, then run the forward pass if
/// [`InspectOptions::forward`] is set. The model and its analysis are returned with the report
/// for further stages (another [`run_forward`], [`plot`]).
pub fn inspect(
    path: &std::path::Path,
    opts: &InspectOptions,
) -> Result<(LoadedModel, Analysis, InspectReport), RunError> {
    inspect_with_progress(path, opts, None)
}

/// [`inspect`], calling `progress` with (bytes just read, total bytes) while the statistics
/// read the payloads (for a progress bar on large models).
pub fn inspect_with_progress(
    path: &std::path::Path,
    opts: &InspectOptions,
    progress: Option<&crate::rewrite::ProgressFn>,
) -> Result<(LoadedModel, Analysis, InspectReport), RunError> {
    let model = LoadedModel::open(path)?;
    let analysis = pipeline::analyze_loaded(&model, &opts.analysis)?;
    let mut report = diagnose_with_progress(&model, &analysis, opts, progress)?;
    if let Some(fopts) = &opts.forward {
        report.forward = Some(run_forward(&model, &analysis, fopts));
    }
    // Statistics of a model that changed while being read describe neither version.
    model.check_unchanged()?;
    Ok((model, analysis, report))
}

/// The recommended scheme of tensor `t` under `rules`, and its std.
fn recommendation(t: &TensorInfo, rules: &Rules) -> Result<Option<(String, f64)>, String> {
    let entry = plan::plan_tensor(t, rules).map_err(|e| e.to_string())?;
    let Some(fill) = entry.fill.map(|f| *f) else {
        return Ok(None);
    };
    let (scheme, std) = match fill {
        Fill::Whole { scheme, fans } => {
            let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            (scheme, scheme.expected_std(&shape, fans))
        }
        Fill::GateBlocks {
            scheme, rows, cols, ..
        } => {
            let fans = init_core::Fans {
                fan_in: cols as u64,
                fan_out: rows as u64,
            };
            (scheme, scheme.expected_std(&[rows, cols], Some(fans)))
        }
    };
    let std = std.map_err(|e| format!("{scheme}: {e}"))?;
    // The exact text (not `report::scheme_text`): the suggested command feeds it back.
    Ok(Some((scheme.to_string(), std)))
}

/// Diagnose every tensor with a role of an analysed model (the report's `forward` is `None`).
pub fn diagnose(
    model: &LoadedModel,
    analysis: &Analysis,
    opts: &InspectOptions,
) -> Result<InspectReport, RunError> {
    diagnose_with_progress(model, analysis, opts, None)
}

/// [`diagnose`], with a progress callback for the statistics (see [`inspect_with_progress`]).
pub fn diagnose_with_progress(
    model: &LoadedModel,
    analysis: &Analysis,
    opts: &InspectOptions,
    progress: Option<&crate::rewrite::ProgressFn>,
) -> Result<InspectReport, RunError> {
    let rows_of: Vec<usize> = analysis
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role.is_some())
        .map(|(i, _)| i)
        .collect();
    let stats = stats::tensor_stats_with_progress(model, &rows_of, progress)?;
    let rules = Rules::default();
    let th = opts.thresholds;
    let mut summary = Summary {
        initializers: analysis.tensors.len(),
        untouched: analysis.tensors.len() - rows_of.len(),
        thresholds: th,
        ..Summary::default()
    };
    let mut rows = Vec::with_capacity(rows_of.len());
    for (&i, st) in rows_of.iter().zip(&stats) {
        let t = &analysis.tensors[i];
        let role = t.role.expect("filtered on role");
        let (recommended, recommended_std, plan_note) = match recommendation(t, &rules) {
            Ok(Some((s, std))) => (Some(s), Some(std), None),
            Ok(None) => (None, None, None),
            Err(e) => (None, None, Some(format!("no recommendation: {e}"))),
        };
        let (verdict, ratio, note) = match st {
            Some(st) => judge(role, t, st, recommended_std, th),
            None => (Verdict::Ok, None, Some("not a float tensor".to_owned())),
        };
        let note = match (note, plan_note) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        summary.bump(verdict);
        let (fan_in, fan_out) = match t.recurrent.as_ref().and_then(|r| r.gate_fans) {
            Some(f) => (Some(f.fan_in), Some(f.fan_out)),
            None => (t.fans.map(|f| f.fan_in), t.fans.map(|f| f.fan_out)),
        };
        rows.push(TensorRow {
            name: t.name.to_string(),
            graph: t.graph.to_string(),
            role: role.as_str().to_owned(),
            op: t
                .consumers
                .first()
                .map(|c| c.op.clone())
                .unwrap_or_default(),
            shape: t.dims.to_vec(),
            dtype: dtype_name(t.data_type),
            fan_in,
            fan_out,
            activation: t.activation.map(|a| a.as_str().to_owned()),
            mean: st.and_then(|s| s.mean),
            std: st.and_then(|s| s.std),
            min: st.and_then(|s| s.min),
            max: st.and_then(|s| s.max),
            recommended,
            recommended_std,
            ratio,
            verdict,
            note,
            node: t.consumers.first().map(|c| c.node.clone()),
            recurrent: t.recurrent.as_ref().map(|r| {
                match r.which {
                    crate::analysis::RecurrentPart::W => "W",
                    crate::analysis::RecurrentPart::R => "R",
                    crate::analysis::RecurrentPart::B => "B",
                }
                .to_owned()
            }),
        });
    }
    let order = crate::report::node_order(model.skeleton());
    rows.sort_by_key(|r| order.rank_of(&r.graph, r.node.as_deref()));
    let untouched = crate::report::untouched_rows(&analysis.tensors);
    summary.tensors = rows.len();
    let compat = match opts.analysis.compat {
        FanCompat::True => "",
        FanCompat::PyTorch => " --compat pytorch",
    };
    summary.suggested_argv = suggest_argv(&model.path().display().to_string(), compat, &rows);
    summary.suggested_command = summary.suggested_argv.as_ref().map(|argv| {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    });
    Ok(InspectReport {
        schema_version: crate::report::SCHEMA_VERSION,
        tool_version: crate::report::TOOL_VERSION.to_owned(),
        model: model.path().display().to_string(),
        seed: opts
            .forward
            .as_ref()
            .map_or(pipeline::DEFAULT_SEED, |f| f.seed),
        tensors: rows,
        untouched,
        summary,
        warnings: analysis.warnings.clone(),
        forward: None,
    })
}

/// The verdict of one tensor, the std ratio when the role has one, and a note.
fn judge(
    role: Role,
    t: &TensorInfo,
    st: &Stats,
    recommended_std: Option<f64>,
    th: Thresholds,
) -> (Verdict, Option<f64>, Option<String>) {
    if st.non_finite > 0 {
        return (
            Verdict::NonFinite,
            None,
            Some(format!(
                "{} of {} values are NaN or infinite",
                st.non_finite, st.count
            )),
        );
    }
    if st.count == 0 {
        return (Verdict::Ok, None, Some("empty tensor".to_owned()));
    }
    let std = st.std.unwrap_or(0.0);
    let rms = st.rms.unwrap_or(0.0);
    match role {
        Role::Weight | Role::RecurrentWeight | Role::Embedding => {
            let ratio = recommended_std.filter(|&r| r > 0.0).map(|r| std / r);
            if st.all_zero() {
                return (Verdict::Zero, ratio, Some("all values are zero".to_owned()));
            }
            if st.is_constant() {
                let v = st.min.unwrap_or(0.0);
                return (
                    Verdict::Constant,
                    ratio,
                    Some(format!(
                        "all values are {v} (symmetry: every unit updates alike)"
                    )),
                );
            }
            let Some(ratio) = ratio else {
                return (Verdict::Ok, None, None);
            };
            // Embeddings: Flax's N(0, 1/D) is as legitimate as PyTorch's N(0, 1).
            let floor = if role == Role::Embedding {
                let d = t.dims.last().copied().unwrap_or(1).max(1) as f64;
                (1.0 / d.sqrt()).min(1.0)
            } else {
                1.0
            };
            if ratio < th.too_small * floor {
                let why = if floor < 1.0 {
                    format!(
                        "std {} < {}× the recommended {} (embedding floor 1/√D = {})",
                        num(std),
                        th.too_small,
                        num(recommended_std.unwrap_or(0.0)),
                        num(floor)
                    )
                } else {
                    format!(
                        "std {} < {}× the recommended {}: the signal vanishes",
                        num(std),
                        th.too_small,
                        num(recommended_std.unwrap_or(0.0))
                    )
                };
                (Verdict::TooSmall, Some(ratio), Some(why))
            } else if ratio > th.too_large {
                (
                    Verdict::TooLarge,
                    Some(ratio),
                    Some(format!(
                        "std {} > {}× the recommended {}: saturation or explosion",
                        num(std),
                        th.too_large,
                        num(recommended_std.unwrap_or(0.0))
                    )),
                )
            } else {
                (Verdict::Ok, Some(ratio), None)
            }
        }
        Role::Bias => {
            if rms > th.too_large {
                (
                    Verdict::TooLarge,
                    None,
                    Some(format!("bias RMS {} > {}", num(rms), th.too_large)),
                )
            } else {
                (Verdict::Ok, None, None)
            }
        }
        Role::NormScale => {
            if st.all_zero() {
                (
                    Verdict::Zero,
                    None,
                    Some("norm scale all zero: the layer outputs only its shift".to_owned()),
                )
            } else if rms < th.too_small {
                (
                    Verdict::TooSmall,
                    None,
                    Some(format!(
                        "norm scale RMS {} < {} (recommended 1)",
                        num(rms),
                        th.too_small
                    )),
                )
            } else if rms > th.too_large {
                (
                    Verdict::TooLarge,
                    None,
                    Some(format!(
                        "norm scale RMS {} > {} (recommended 1)",
                        num(rms),
                        th.too_large
                    )),
                )
            } else {
                (Verdict::Ok, None, None)
            }
        }
        Role::NormStat(NormStatKind::Var) => {
            let bad = st.zeros + st.negatives;
            if st.all_zero() {
                (
                    Verdict::Zero,
                    None,
                    Some("running variance all zero: the layer divides by √ε".to_owned()),
                )
            } else if bad > 0 {
                (
                    Verdict::TooSmall,
                    None,
                    Some(format!(
                        "{bad} of {} running variances are ≤ 0 (the layer divides by √(var + ε))",
                        st.count
                    )),
                )
            } else {
                (Verdict::Ok, None, None)
            }
        }
        Role::NormShift
        | Role::NormOffset
        | Role::NormStat(NormStatKind::Mean)
        | Role::PreluSlope => (Verdict::Ok, None, None),
    }
}

/// Quote a word for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A glob (for `--rule GLOB=SCHEME`) that matches `name` literally: glob metacharacters are
/// escaped with a backslash or a one-character class, and the characters `--rule`'s own
/// parser splits on (`=`, parentheses) become `?`.
pub fn literal_glob(name: &str) -> String {
    let mut g = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' | '?' | '{' | '}' | ']' | '\\' => {
                g.push('\\');
                g.push(c);
            }
            '[' => g.push_str("[[]"),
            '=' | '(' | ')' => g.push('?'),
            c => g.push(c),
        }
    }
    g
}

/// The `onnx-reinit` command line (as an argument list) that fixes the flagged rows: a
/// `--rule` per flagged tensor with its recommended scheme, then `--rule '*=keep'` so nothing
/// else changes — or the plain command when every tensor is flagged (the defaults then
/// re-initialize exactly those).
fn suggest_argv(model: &str, flags: &str, rows: &[TensorRow]) -> Option<Vec<String>> {
    let flagged: Vec<&TensorRow> = rows.iter().filter(|r| r.verdict != Verdict::Ok).collect();
    if flagged.is_empty() {
        return None;
    }
    let mut argv = vec!["onnx-reinit".to_owned(), model.to_owned()];
    argv.extend(flags.split_whitespace().map(str::to_owned));
    let all = flagged.len() == rows.len() && rows.iter().all(|r| r.graph.is_empty());
    if !all {
        for r in &flagged {
            let Some(scheme) = &r.recommended else {
                continue;
            };
            // Nested-graph tensors are matched by name too (the graph path is not part of it).
            argv.push("--rule".to_owned());
            argv.push(format!("{}={scheme}", literal_glob(&r.name)));
        }
        // `*=keep` only when it keeps something: a rule that decides nothing is an error.
        if flagged.len() < rows.len() {
            argv.push("--rule".to_owned());
            argv.push("*=keep".to_owned());
        }
    }
    Some(argv)
}

/// A number in at most 4 significant digits, switching to exponent notation outside
/// [1e-3, 1e5).
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if (1e-3..1e5).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    } else {
        format!("{x:.2e}")
    }
}

fn opt_num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), num)
}

impl InspectReport {
    /// The human report at its natural width (see [`InspectReport::table_for`]).
    pub fn table(&self) -> String {
        self.table_for(None)
    }

    /// The human report: the weight table fitted to `width` columns (`None`: the full table),
    /// the notes of flagged tensors, the tensors not inspected with their reason, the summary
    /// with the suggested command, then the forward pass if any. Never panics.
    pub fn table_for(&self, width: Option<usize>) -> String {
        let col = |title: &str, drop, elide| Column::new(title, drop, elide);
        let mut table = Table::new(vec![
            col("tensor", 0, true),
            col("layer", 3, true),
            col("op", 7, false),
            col("role", 2, false),
            col("shape", 6, false),
            col("fans", 8, false),
            col("activation", 4, false),
            col("mean", 9, false),
            col("std", 0, false),
            col("min", 10, false),
            col("max", 10, false),
            col("rec_std", 5, false),
            col("ratio", 0, false),
            col("verdict", 0, false),
        ]);
        for t in &self.tensors {
            table.push(vec![
                t.name.clone(),
                t.node.clone().unwrap_or_else(|| "-".into()),
                t.op.clone(),
                role_label(&t.role, t.recurrent.as_deref()),
                shape_text(&t.shape),
                fans_text(t.fan_in, t.fan_out),
                t.activation.clone().unwrap_or_else(|| "-".into()),
                opt_num(t.mean),
                opt_num(t.std),
                opt_num(t.min),
                opt_num(t.max),
                opt_num(t.recommended_std),
                opt_num(t.ratio),
                t.verdict.to_string(),
            ]);
        }
        let mut out = table.render(width);
        for t in self.tensors.iter().filter(|t| t.verdict != Verdict::Ok) {
            if let Some(n) = &t.note {
                out.push_str(&wrap(
                    &format!(
                        "{} {}: {n}",
                        t.verdict,
                        elide_middle(&t.name, crate::table::MAX_CELL)
                    ),
                    width,
                ));
            }
        }
        footer(
            &mut out,
            &[],
            &self.untouched,
            &self.warnings,
            width.unwrap_or(usize::MAX),
        );
        let s = &self.summary;
        let counts: Vec<String> = Verdict::ALL
            .iter()
            .filter(|&&v| v == Verdict::Ok || s.count(v) > 0)
            .map(|&v| format!("{v} {}", s.count(v)))
            .collect();
        out.push_str(&wrap(
            &format!(
                "{} tensors inspected: {}; {} initializers without a role not inspected \
                 (thresholds: std < {}× or > {}× the recommended)",
                s.tensors,
                counts.join(", "),
                s.untouched,
                s.thresholds.too_small,
                s.thresholds.too_large
            ),
            width,
        ));
        match &s.suggested_command {
            Some(c) => {
                let _ = writeln!(out, "fix: {c}");
            }
            None => out.push_str("nothing flagged\n"),
        }
        if let Some(f) = &self.forward {
            out.push('\n');
            out.push_str(&f.table_for(width));
        }
        out
    }
}

impl ForwardReport {
    /// The forward-pass table at its natural width (see [`ForwardReport::table_for`]).
    pub fn table(&self) -> String {
        self.table_for(None)
    }

    /// The forward-pass table: one line per recorded output, one std column per run, fitted to
    /// `width` columns (`None`: in full; the output names, shapes, means and op go first).
    pub fn table_for(&self, width: Option<usize>) -> String {
        let mut out = String::new();
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| format!("{} {:?} {} ~ {}", i.name, i.shape, i.dtype, i.values))
            .collect();
        let _ = writeln!(
            out,
            "forward pass (tract-onnx, seed {}): {}",
            self.seed,
            if inputs.is_empty() {
                "no inputs".to_owned()
            } else {
                inputs.join(", ")
            }
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "forward pass skipped: {e}");
            return out;
        }
        let Some(first) = self.runs.iter().find(|r| r.error.is_none()) else {
            for r in &self.runs {
                let _ = writeln!(
                    out,
                    "{} run failed: {}",
                    r.label,
                    r.error.as_deref().unwrap_or("?")
                );
            }
            return out;
        };
        let ok_runs: Vec<&ForwardRun> = self.runs.iter().filter(|r| r.error.is_none()).collect();
        let many = ok_runs.len() > 1;
        let suffix = |r: &ForwardRun| {
            if many {
                format!(" ({})", r.label)
            } else {
                String::new()
            }
        };
        // Zero / saturated fractions share one column per run, shown only when some row has one.
        let flagged = |r: &ForwardRun| {
            r.layers
                .iter()
                .any(|l| l.zero_fraction.is_some() || l.saturated_fraction.is_some())
        };
        let mut columns_of = vec![
            Column::fixed("#"),
            Column::new("node", 0, true),
            Column::new("op", 3, false),
            Column::new("output", 6, true),
            Column::new("shape", 5, false),
            Column::new("mean", 4, false),
        ];
        for r in &ok_runs {
            columns_of.push(Column::fixed(format!("std{}", suffix(r))));
        }
        // The later passes' fractions give way first: the current model's stay longest.
        for (k, r) in ok_runs.iter().filter(|r| flagged(r)).enumerate() {
            let drop = u8::try_from(k + 1).unwrap_or(u8::MAX).min(2);
            columns_of.push(Column::new(
                format!("zeros/saturated{}", suffix(r)),
                drop,
                false,
            ));
        }
        let mut rows = Table::new(columns_of);
        for (k, l) in first.layers.iter().enumerate() {
            let mut row = vec![
                (l.index + 1).to_string(),
                l.node.clone(),
                l.op.clone(),
                l.output.clone(),
                format!("{:?}", l.shape),
                num(l.mean),
            ];
            let other = |r: &ForwardRun| r.layers.get(k).filter(|o| o.output == l.output).cloned();
            for r in &ok_runs {
                row.push(other(r).map_or_else(|| "-".to_owned(), |o| num(o.std)));
            }
            for r in ok_runs.iter().filter(|r| flagged(r)) {
                let o = other(r);
                let cell = match o.as_ref().map(|o| (o.zero_fraction, o.saturated_fraction)) {
                    Some((Some(z), _)) => format!("{:.1}% zeros", z * 100.0),
                    Some((None, Some(s))) => format!("{:.1}% saturated", s * 100.0),
                    _ => String::new(),
                };
                row.push(cell);
            }
            rows.push(row);
        }
        out.push_str(&rows.render(width));
        for r in &self.runs {
            if let Some(rules) = &r.rules {
                let _ = writeln!(out, "{}: re-initialized in memory with {rules}", r.label);
            }
            if let Some(e) = &r.error {
                let _ = writeln!(out, "{} run failed: {e}", r.label);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(1e-5), "1.00e-5");
        assert_eq!(num(-2.0e6), "-2.00e6");
    }

    #[test]
    fn literal_globs_match_only_their_name() {
        for name in [
            "fc1.weight",
            "onnx::Conv_40",
            "a[0]*b",
            "x=y(1)",
            "w{1,2}?",
            "a\\b",
        ] {
            let rule = crate::plan::NameRule::parse(&format!("{}=zeros", literal_glob(name)))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rule.pattern, literal_glob(name));
            let m = globset::Glob::new(&rule.pattern).unwrap().compile_matcher();
            assert!(m.is_match(name), "{name} vs {}", rule.pattern);
        }
        let m = globset::Glob::new(&literal_glob("a*"))
            .unwrap()
            .compile_matcher();
        assert!(!m.is_match("ab"));
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!("too-large".parse::<Verdict>(), Ok(Verdict::TooLarge));
        assert!("bad".parse::<Verdict>().is_err());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("model.onnx"), "model.onnx");
        assert_eq!(shell_quote("my model.onnx"), "'my model.onnx'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
