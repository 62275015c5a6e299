//! Reports: the table printed on stdout and the `--json` document, from one typed value.
//!
//! The JSON shape is a contract for pipelines:
//! `{"model", "seed", "dry_run", "output", "tensors": [{"name", "graph", "role", "op", "shape",
//! "dtype", "fan_in", "fan_out", "activation", "scheme", "changed", "reason", "consumers",
//! "note"}], "untouched": [{"name", "graph", "shape", "dtype", "reason", "listed"}], "summary"}`;
//! `listed` marks the untouched tensors the table's footer lists (float tensors of rank ≥ 1 and
//! quantized weights: what could be a learned parameter).
//! Roles and activations are lower snake case (`weight`, `recurrent_weight`, `bias`,
//! `norm_scale`, `norm_shift`, `norm_offset`, `norm_stat`, `embedding`, `prelu_slope`; `relu`,
//! `tanh`, …).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::onnx::dtype::DType;
use crate::plan::{Fill, Plan};

/// One tensor with a role (changed or kept by a rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorReport {
    /// Initializer name.
    pub name: String,
    /// Graph path (`""` for the main graph).
    pub graph: String,
    /// Role.
    pub role: String,
    /// The op of the first consumer (the layer).
    pub op: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Element type name (`float32`, `float16`, …).
    pub dtype: String,
    /// fan_in, if the role has fans.
    pub fan_in: Option<u64>,
    /// fan_out, if the role has fans.
    pub fan_out: Option<u64>,
    /// The activation following the layer.
    pub activation: Option<String>,
    /// The effective scheme (`keep` when kept).
    pub scheme: String,
    /// Whether the payload was (or, in a dry run, would be) rewritten.
    pub changed: bool,
    /// Which rule decided.
    pub reason: String,
    /// Consumer nodes, as `Op name`.
    pub consumers: Vec<String>,
    /// Analysis remarks (shared tensors, disagreeing consumers).
    pub note: Option<String>,
}

/// A tensor left untouched because it has no role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UntouchedReport {
    /// Initializer name.
    pub name: String,
    /// Graph path.
    pub graph: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Element type name.
    pub dtype: String,
    /// Why it is not a parameter to re-initialize.
    pub reason: String,
    /// Whether the table's footer lists it: a float tensor of rank ≥ 1, or a quantized weight —
    /// the tensors that could be learned parameters, so that a user sees at a glance what was
    /// left alone (integer shapes and indices and float scalars are only counted).
    pub listed: bool,
}

/// Counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Initializers in the model.
    pub initializers: usize,
    /// Rewritten (or to be rewritten).
    pub changed: usize,
    /// With a role, kept by a `keep` rule.
    pub kept: usize,
    /// Without a role.
    pub untouched: usize,
    /// Elements rewritten.
    pub elements_changed: u64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The input model path.
    pub model: String,
    /// The seed used.
    pub seed: u64,
    /// Nothing was written.
    pub dry_run: bool,
    /// Where the output went (`None` in a dry run).
    pub output: Option<String>,
    /// Tensors with a role.
    pub tensors: Vec<TensorReport>,
    /// Tensors without a role.
    pub untouched: Vec<UntouchedReport>,
    /// Analysis warnings about the graph.
    pub warnings: Vec<String>,
    /// Counts.
    pub summary: Summary,
}

/// The lower-case name of a `TensorProto.DataType` (`float32`, `int64`, …), `type <code>` for
/// the codes that have none.
pub fn dtype_name(data_type: i32) -> String {
    DType::from_onnx(data_type)
        .short_name()
        .map_or_else(|| format!("type {data_type}"), str::to_owned)
}

impl Report {
    /// Build the report of a plan.
    pub fn new(
        model: &str,
        analysis: &Analysis,
        plan: &Plan,
        dry_run: bool,
        output: Option<String>,
    ) -> Report {
        let mut tensors = Vec::new();
        let mut untouched = Vec::new();
        let mut summary = Summary {
            initializers: analysis.tensors.len(),
            ..Summary::default()
        };
        for (t, e) in analysis.tensors.iter().zip(&plan.entries) {
            let Some(role) = t.role else {
                summary.untouched += 1;
                untouched.push(UntouchedReport {
                    name: t.name.clone(),
                    graph: t.graph.clone(),
                    shape: t.dims.clone(),
                    dtype: dtype_name(t.data_type),
                    reason: t.why_untouched.to_string(),
                    listed: (DType::from_onnx(t.data_type).is_float() && !t.dims.is_empty())
                        || t.why_untouched.starts_with("quantized weight"),
                });
                continue;
            };
            let changed = e.fill.is_some();
            if changed {
                summary.changed += 1;
                summary.elements_changed += crate::onnx::model::numel(&t.dims).unwrap_or(0);
            } else {
                summary.kept += 1;
            }
            let (fan_in, fan_out) = match &e.fill {
                Some(Fill::GateBlocks { rows, cols, .. }) => {
                    (Some(*cols as u64), Some(*rows as u64))
                }
                _ => (t.fans.map(|f| f.fan_in), t.fans.map(|f| f.fan_out)),
            };
            tensors.push(TensorReport {
                name: t.name.clone(),
                graph: t.graph.clone(),
                role: role.as_str().to_owned(),
                op: t
                    .consumers
                    .first()
                    .map(|c| c.op.clone())
                    .unwrap_or_default(),
                shape: t.dims.clone(),
                dtype: dtype_name(t.data_type),
                fan_in,
                fan_out,
                activation: t.activation.map(|a| a.as_str().to_owned()),
                scheme: e
                    .scheme()
                    .map_or_else(|| "keep".to_owned(), |s| s.to_string()),
                changed,
                reason: e.reason.to_string(),
                consumers: t
                    .consumers
                    .iter()
                    .map(|c| format!("{} {}", c.op, c.node))
                    .collect(),
                note: t.note.clone(),
            });
        }
        Report {
            model: model.to_owned(),
            seed: plan.seed,
            dry_run,
            output,
            tensors,
            untouched,
            warnings: analysis.warnings.clone(),
            summary,
        }
    }

    /// The human table: one line per tensor with a role, then a footer listing the untouched
    /// tensors that could be parameters ([`UntouchedReport::listed`]) with their reasons, then
    /// a summary line.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 8]> = vec![[
            "tensor".into(),
            "op".into(),
            "role".into(),
            "shape".into(),
            "fan_in".into(),
            "fan_out".into(),
            "activation".into(),
            "scheme".into(),
        ]];
        for t in &self.tensors {
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |x| x.to_string());
            rows.push([
                t.name.clone(),
                t.op.clone(),
                t.role.clone(),
                format!("{:?}", t.shape),
                opt(t.fan_in),
                opt(t.fan_out),
                t.activation.clone().unwrap_or_else(|| "-".into()),
                t.scheme.clone(),
            ]);
        }
        let mut widths = [0usize; 8];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let listed: Vec<&UntouchedReport> = self.untouched.iter().filter(|u| u.listed).collect();
        if !listed.is_empty() {
            let _ = writeln!(out, "left alone ({}):", listed.len());
            for u in listed {
                let name = if u.graph.is_empty() {
                    u.name.clone()
                } else {
                    format!("{}/{}", u.graph, u.name)
                };
                let _ = writeln!(out, "  {name} {:?} {}: {}", u.shape, u.dtype, u.reason);
            }
        }
        let s = &self.summary;
        let verb = if self.dry_run {
            "would change"
        } else {
            "changed"
        };
        let _ = writeln!(
            out,
            "{} initializers: {verb} {} ({} elements), kept {}, untouched {} (no role); seed {}",
            s.initializers, s.changed, s.elements_changed, s.kept, s.untouched, self.seed
        );
        if let Some(o) = &self.output {
            let _ = writeln!(out, "wrote {o}");
        }
        out
    }
}
