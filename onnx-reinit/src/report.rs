//! Reports: the table printed for people and the `--json` document, from one typed value.
//!
//! The JSON shape is a contract for pipelines, written down in `schema/rewrite.schema.json`
//! (checked against real output by the test suite) and versioned by
//! [`SCHEMA_VERSION`]: a field is only ever added within a version. Roles and activations are
//! lower snake case (`weight`, `recurrent_weight`, `bias`, `norm_scale`, `norm_shift`,
//! `norm_offset`, `norm_stat`, `embedding`, `prelu_slope`; `relu`, `tanh`, …). Tensors are listed in graph
//! order (the order of the first node that reads them; see [`Report::order_by_graph`]).
//!
//! The table fits a terminal width ([`Report::table_for`]) and ends with a footer of everything
//! the table does not show: notes (a tensor shared by several layers, which use won), every
//! tensor left untouched with its reason, and the analysis warnings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use init_core::{Family, Fans, Sampler, Scheme, SchemeExt as _, SchemeKind};
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, RecurrentPart};
use crate::onnx::dtype::DType;
use crate::onnx::shared::{SharedDims, SharedStr};
use crate::onnx::skeleton;
use crate::plan::{Fill, Plan};
use crate::table::{Column, Table, elide_middle, wrap};

/// The version of the `--json` documents' shape (the rewrite's and `inspect`'s): raised when a
/// field changes meaning or disappears, not when one is added.
pub const SCHEMA_VERSION: u32 = 1;

/// The version of this tool, as `--version` prints it.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

fn tool_version() -> String {
    TOOL_VERSION.to_owned()
}

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
    /// The layer: the name of the first node that reads the tensor (`#<index>` for an unnamed
    /// node), so that folded names such as `onnx::MatMul_173` can be told apart.
    #[serde(default)]
    pub node: Option<String>,
    /// For LSTM/GRU/RNN parameters, which one: `W` (input weights), `R` (recurrent weights) or
    /// `B` (biases).
    #[serde(default)]
    pub recurrent: Option<String>,
    /// The standard deviation of the values written (per gate block for recurrent weights),
    /// when the scheme is applied; `None` when kept.
    #[serde(default)]
    pub target_std: Option<f64>,
    /// The largest magnitude a value can take: `bound` of U(−bound, bound), the cut of a
    /// truncated normal, the value of a constant; `None` for an unbounded normal, structured
    /// schemes and kept tensors.
    #[serde(default)]
    pub bound: Option<f64>,
    /// The gain: `he`'s nonlinearity gain (√2 for ReLU), `glorot(gain=G)`'s and
    /// `orthogonal(gain=G)`'s and `eye(gain=G)`'s G, 1 for `lecun`, √scale for
    /// `variance_scaling`; `None` for schemes without one (constants, fixed distributions,
    /// `uniform`'s ±1/√fan_in, dirac) and kept tensors.
    #[serde(default)]
    pub gain: Option<f64>,
}

/// A tensor left untouched because it has no role: its name and shape, and what it shares
/// with other such tensors (its graph, its element type, the reason, whether the footer lists
/// it) as one reference-counted value. Rows built together ([`untouched_rows`]) share one such
/// value per distinct (graph, element type, reason, listed): a model of millions of untouched
/// tensors holds 24 bytes a row. Serialized (and deserialized) as the flat object of the
/// `--json` schema: `name`, `graph`, `shape`, `dtype`, `reason`, `listed`.
#[derive(Clone, PartialEq)]
pub struct UntouchedReport {
    /// Initializer name (shared with the analysis: see [`crate::onnx::shared`]).
    pub name: SharedStr,
    /// Shape.
    pub shape: SharedDims,
    /// Graph path, element type, reason and `listed`.
    class: Arc<UntouchedClass>,
}

/// What untouched tensors have in common: see [`UntouchedReport`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UntouchedClass {
    graph: SharedStr,
    dtype: Cow<'static, str>,
    reason: Cow<'static, str>,
    listed: bool,
}

impl UntouchedReport {
    /// A row from its fields; `dtype` and `reason` are those of the JSON document (see the
    /// accessors). Rows made one by one share nothing: [`untouched_rows`] shares.
    pub fn new(
        name: SharedStr,
        graph: SharedStr,
        shape: SharedDims,
        dtype: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
        listed: bool,
    ) -> UntouchedReport {
        UntouchedReport {
            name,
            shape,
            class: Arc::new(UntouchedClass {
                graph,
                dtype: dtype.into(),
                reason: reason.into(),
                listed,
            }),
        }
    }

    /// The row of a tensor without a role, for the rewrite's report and `inspect`'s alike
    /// (alone: [`untouched_rows`] builds the rows of an analysis with their classes shared).
    pub fn of(t: &crate::analysis::TensorInfo) -> UntouchedReport {
        UntouchedReport::with_class(t, Arc::new(UntouchedClass::of(t)))
    }

    fn with_class(t: &crate::analysis::TensorInfo, class: Arc<UntouchedClass>) -> UntouchedReport {
        UntouchedReport {
            name: t.name.clone(),
            shape: t.dims.clone(),
            class,
        }
    }

    /// Graph path.
    pub fn graph(&self) -> &str {
        &self.class.graph
    }

    /// Element type name ([`dtype_name`]: `float32`, `int64`, `type 42`).
    pub fn dtype(&self) -> &str {
        &self.class.dtype
    }

    /// Why it is not a parameter to re-initialize
    /// ([`crate::analysis::TensorInfo::why_untouched`]).
    pub fn reason(&self) -> &str {
        &self.class.reason
    }

    /// Whether the table's footer lists it: a float tensor of rank ≥ 1, or a quantized weight —
    /// the tensors that could be learned parameters, so that a user sees at a glance what was
    /// left alone (integer shapes and indices and float scalars are only counted).
    pub fn listed(&self) -> bool {
        self.class.listed
    }
}

impl UntouchedClass {
    fn of(t: &crate::analysis::TensorInfo) -> UntouchedClass {
        UntouchedClass {
            graph: t.graph.clone(),
            dtype: dtype_label(t.data_type),
            reason: t.why_untouched_cow(),
            listed: UntouchedClass::is_listed(t),
        }
    }

    fn is_listed(t: &crate::analysis::TensorInfo) -> bool {
        (DType::from_onnx(t.data_type).is_float() && !t.dims.is_empty())
            || t.why_untouched().starts_with("quantized weight")
    }
}

/// The rows of every tensor of `tensors` (an analysis's) without a role, in their order,
/// sharing one graph path, element type, reason and `listed` per distinct combination of them.
pub fn untouched_rows(tensors: &[crate::analysis::TensorInfo]) -> Vec<UntouchedReport> {
    // Sized up front: grown by doubling, the rows of millions of untouched tensors would hold
    // up to twice their size.
    let untouched = tensors.iter().filter(|t| t.role.is_none());
    let mut rows = Vec::with_capacity(untouched.clone().count());
    // Keyed by what the class is made of, borrowed from the analysis: a hit allocates nothing.
    let mut classes: HashMap<(&str, i32, &str, bool), Arc<UntouchedClass>> = HashMap::new();
    for t in untouched {
        let key = (
            t.graph.as_str(),
            t.data_type,
            t.why_untouched(),
            UntouchedClass::is_listed(t),
        );
        let class = classes
            .entry(key)
            .or_insert_with(|| Arc::new(UntouchedClass::of(t)));
        rows.push(UntouchedReport::with_class(t, Arc::clone(class)));
    }
    rows
}

/// The `--json` object of an [`UntouchedReport`], field by field.
#[derive(Serialize)]
struct UntouchedJson<'a> {
    name: &'a SharedStr,
    graph: &'a str,
    shape: &'a SharedDims,
    dtype: &'a str,
    reason: &'a str,
    listed: bool,
}

/// [`UntouchedJson`], read back.
#[derive(Deserialize)]
struct UntouchedJsonOwned {
    name: SharedStr,
    graph: SharedStr,
    shape: SharedDims,
    dtype: String,
    reason: String,
    listed: bool,
}

impl Serialize for UntouchedReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        UntouchedJson {
            name: &self.name,
            graph: self.graph(),
            shape: &self.shape,
            dtype: self.dtype(),
            reason: self.reason(),
            listed: self.listed(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UntouchedReport {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let j = UntouchedJsonOwned::deserialize(deserializer)?;
        Ok(UntouchedReport::new(
            j.name, j.graph, j.shape, j.dtype, j.reason, j.listed,
        ))
    }
}

// `class` is listed field by field, as the flat struct of the JSON document.
#[allow(clippy::missing_fields_in_debug)]
impl std::fmt::Debug for UntouchedReport {
    /// As the flat struct of the JSON document.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntouchedReport")
            .field("name", &self.name)
            .field("graph", &self.graph())
            .field("shape", &self.shape)
            .field("dtype", &self.dtype())
            .field("reason", &self.reason())
            .field("listed", &self.listed())
            .finish()
    }
}

/// The rewrite's report as `--json` prints it: exactly the pretty-printed text (with a final
/// newline) of the report's `serde_json::Value` (keys sorted at every level) with the `extra`
/// members added at the top level (`preset`), but without building that `Value` for the whole
/// document, which held about 1 KB per row (a map of six keys for each untouched tensor) on
/// top of the text: the rows of `tensors` and `untouched` are converted one at a time and
/// pretty-printed in place.
pub fn report_json(
    report: &Report,
    extra: Vec<(String, serde_json::Value)>,
) -> serde_json::Result<String> {
    use serde_json::Value;
    // Every member but the rows (listed field by field: a new member must be placed here).
    let head = Report {
        schema_version: report.schema_version,
        tool_version: report.tool_version.clone(),
        model: report.model.clone(),
        seed: report.seed,
        dry_run: report.dry_run,
        output: report.output.clone(),
        files_written: report.files_written.clone(),
        tensors: Vec::new(),
        untouched: Vec::new(),
        warnings: report.warnings.clone(),
        summary: report.summary.clone(),
    };
    let mut doc = match serde_json::to_value(&head)? {
        Value::Object(doc) => doc,
        other => return serde_json::to_string_pretty(&other).map(|s| s + "\n"),
    };
    doc.extend(extra);
    let mut out = String::from("{\n");
    let last = doc.len().saturating_sub(1);
    for (i, (key, value)) in doc.iter().enumerate() {
        out.push_str("  ");
        out.push_str(&serde_json::to_string(key)?);
        out.push_str(": ");
        let placeholder = matches!(value, Value::Array(a) if a.is_empty());
        match key.as_str() {
            "tensors" if placeholder => push_rows(&mut out, &report.tensors)?,
            "untouched" if placeholder => push_rows(&mut out, &report.untouched)?,
            _ => push_indented(&mut out, &serde_json::to_string_pretty(value)?, "  "),
        }
        out.push_str(if i < last { ",\n" } else { "\n" });
    }
    out.push_str("}\n");
    Ok(out)
}

/// `rows` as the pretty-printed array member of a top-level object: each row through its
/// `serde_json::Value` (sorted keys), one at a time.
fn push_rows<T: Serialize>(out: &mut String, rows: &[T]) -> serde_json::Result<()> {
    if rows.is_empty() {
        out.push_str("[]");
        return Ok(());
    }
    out.push_str("[\n");
    for (i, row) in rows.iter().enumerate() {
        out.push_str("    ");
        let row = serde_json::to_string_pretty(&serde_json::to_value(row)?)?;
        push_indented(out, &row, "    ");
        out.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]");
    Ok(())
}

/// `text` (pretty-printed JSON) with every line but the first indented by `indent`: a value
/// nested at that depth.
fn push_indented(out: &mut String, text: &str, indent: &str) {
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        out.push_str(line);
    }
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
    /// [`SCHEMA_VERSION`].
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// [`TOOL_VERSION`].
    #[serde(default = "tool_version")]
    pub tool_version: String,
    /// The input model path.
    pub model: String,
    /// The seed used.
    pub seed: u64,
    /// Nothing was written.
    pub dry_run: bool,
    /// Where the output went (`None` in a dry run).
    pub output: Option<String>,
    /// Every file written (or, in a dry run, that would be written), as absolute paths: the
    /// model, then its external data files; empty when nothing is to be written.
    #[serde(default)]
    pub files_written: Vec<String>,
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

/// [`dtype_name`], borrowed from a static table for the types that have a name.
pub fn dtype_label(data_type: i32) -> Cow<'static, str> {
    DType::from_onnx(data_type)
        .short_name()
        .map_or_else(|| format!("type {data_type}").into(), Cow::Borrowed)
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
        // One row per tensor the plan decides (it decides them all, in order).
        let decided = analysis.tensors.len().min(plan.entries.len());
        let untouched = untouched_rows(&analysis.tensors[..decided]);
        let mut summary = Summary {
            initializers: analysis.tensors.len(),
            untouched: untouched.len(),
            ..Summary::default()
        };
        for (t, e) in analysis.tensors.iter().zip(&plan.entries) {
            let Some(role) = t.role else {
                continue;
            };
            let changed = e.fill.is_some();
            if changed {
                summary.changed += 1;
                summary.elements_changed += crate::onnx::model::numel(&t.dims).unwrap_or(0);
            } else {
                summary.kept += 1;
            }
            let (fan_in, fan_out) = match e.fill.as_deref() {
                Some(Fill::GateBlocks { rows, cols, .. }) => {
                    (Some(*cols as u64), Some(*rows as u64))
                }
                _ => (t.fans.map(|f| f.fan_in), t.fans.map(|f| f.fan_out)),
            };
            let target = e.fill.as_deref().map(|f| Target::of(f, &t.dims));
            tensors.push(TensorReport {
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
                scheme: e
                    .scheme()
                    .map_or_else(|| "keep".to_owned(), |s| scheme_text(&s)),
                changed,
                reason: e.reason.to_string(),
                consumers: t
                    .consumers
                    .iter()
                    .map(|c| format!("{} {}", c.op, c.node))
                    .collect(),
                note: t.note.clone(),
                node: t.consumers.first().map(|c| c.node.clone()),
                recurrent: t
                    .recurrent
                    .as_ref()
                    .map(|r| recurrent_part(r.which).to_owned()),
                target_std: target.and_then(|t| t.std),
                bound: target.and_then(|t| t.bound),
                gain: target.and_then(|t| t.gain),
            });
        }
        Report {
            schema_version: SCHEMA_VERSION,
            tool_version: TOOL_VERSION.to_owned(),
            model: model.to_owned(),
            seed: plan.seed,
            dry_run,
            output,
            files_written: Vec::new(),
            tensors,
            untouched,
            warnings: analysis.warnings.clone(),
            summary,
        }
    }

    /// Sorts [`Report::tensors`] in graph order: by the position of the first node that reads
    /// each tensor, nested graphs' nodes right after the node that owns them ([`node_order`]);
    /// tensors without a known reader keep their initializer order, after the others.
    pub fn order_by_graph(&mut self, order: &NodeOrder) {
        self.tensors.sort_by_key(|t| order.rank(t));
    }

    /// The human table at its natural width (see [`Report::table_for`]).
    pub fn table(&self) -> String {
        self.table_for(None)
    }

    /// The human report: one line per tensor with a role, fitted to `width` columns (`None`:
    /// the full table), then the footer (notes, the tensors left untouched with their reason,
    /// warnings) and the summary line. Never panics: every cell and name is elided to a bounded
    /// length (see [`crate::table`]).
    pub fn table_for(&self, width: Option<usize>) -> String {
        let elidable = |title: &str, drop| Column::new(title, drop, true);
        let droppable = |title: &str, drop| Column::new(title, drop, false);
        let mut table = Table::new(vec![
            elidable("tensor", 0),
            elidable("layer", 3),
            droppable("op", 5),
            droppable("role", 2),
            droppable("shape", 4),
            droppable("fans", 6),
            droppable("activation", 1),
            elidable("scheme", 0),
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
                t.scheme.clone(),
            ]);
        }
        let mut out = table.render(width);
        let line = width.unwrap_or(usize::MAX);
        footer(
            &mut out,
            &self.tensors,
            &self.untouched,
            &self.warnings,
            line,
        );
        let s = &self.summary;
        let verb = if self.dry_run {
            "would change"
        } else {
            "changed"
        };
        out.push_str(&wrap(
            &format!(
                "{} initializers: {verb} {} ({} elements), kept {}, untouched {} (no role); \
                 seed {}",
                s.initializers, s.changed, s.elements_changed, s.kept, s.untouched, self.seed
            ),
            width,
        ));
        out
    }
}

/// Names a footer line always lists before it may be cut with "… and N more".
const FOOTER_NAMES: usize = 3;

/// Appends the footer under a table: each tensor's note, the untouched tensors grouped by
/// reason, the warnings. A group's names are cut to fit `width` after the first
/// [`FOOTER_NAMES`] ("… and N more"), unless `width` is `usize::MAX` (`--wide`: all of them).
pub(crate) fn footer(
    out: &mut String,
    tensors: &[TensorReport],
    untouched: &[UntouchedReport],
    warnings: &[String],
    width: usize,
) {
    let full = width == usize::MAX;
    let w = (!full).then_some(width);
    // Reasons and warnings are wrapped, not cut, unless a name inside them is huge.
    let cell = |s: &str| {
        elide_middle(
            s,
            if full {
                8 * crate::table::MAX_CELL
            } else {
                crate::table::MAX_CELL
            },
        )
    };
    let name = |s: &str| elide_middle(s, if full { crate::table::MAX_CELL } else { 40 });
    for t in tensors {
        if let Some(n) = &t.note {
            out.push_str(&wrap(&format!("note: {}: {n}", name(&t.name)), w));
        }
    }
    // Group by reason, in order of first appearance; what could be a learned parameter
    // ([`UntouchedReport::listed`]) first, then integer tensors and scalars. Two passes in that
    // order (count the groups, then write each group's line), so that nothing is held per
    // tensor: a model of millions of untouched tensors prints a few lines.
    let in_order = || {
        let listed = untouched.iter().filter(|u| u.listed());
        listed.chain(untouched.iter().filter(|u| !u.listed()))
    };
    let mut groups: Vec<FooterGroup<'_>> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for u in in_order() {
        let k = *group_of.entry(u.reason()).or_insert_with(|| {
            groups.push(FooterGroup {
                reason: u.reason(),
                count: 0,
                line: String::new(),
                chars: 0,
                written: 0,
                cut: false,
            });
            groups.len() - 1
        });
        groups[k].count += 1;
    }
    for g in &mut groups {
        g.line = format!("untouched {}: {}: ", g.count, cell(g.reason));
        g.chars = g.line.chars().count();
    }
    for u in in_order() {
        let g = &mut groups[group_of[u.reason()]];
        if g.cut {
            continue;
        }
        let k = g.written;
        let sep = if k == 0 { "" } else { ", " };
        let n = name(&u.name);
        let n_chars = n.chars().count();
        let rest = g.count - k;
        // Keep room for the "… and N more" tail unless this is the last name.
        if !full && k >= FOOTER_NAMES && rest > 1 {
            let more = format!("{sep}… and {rest} more");
            if g.chars + sep.len() + n_chars + more.chars().count() > width {
                g.line.push_str(&more);
                g.cut = true;
                continue;
            }
        }
        g.line.push_str(sep);
        g.line.push_str(&n);
        g.chars += sep.len() + n_chars;
        g.written += 1;
    }
    for g in &groups {
        out.push_str(&wrap(&g.line, w));
    }
    for warning in warnings {
        out.push_str(&wrap(&format!("warning: {}", cell(warning)), w));
    }
}

/// One reason's line of the footer, while it is written.
struct FooterGroup<'a> {
    /// The reason.
    reason: &'a str,
    /// Its tensors.
    count: usize,
    /// `untouched N: reason: ` and the names written so far.
    line: String,
    /// `line`'s length in characters (counted as it grows: a `--wide` line can hold
    /// millions of names).
    chars: usize,
    /// Names written.
    written: usize,
    /// The line ends with "… and N more": no more names.
    cut: bool,
}

/// A scheme as the user would write it: its text, except that a leaky ReLU slope read from the
/// graph (an f32 attribute, held as f64) prints as the f32 the exporter wrote (`0.1`), not as
/// its f64 expansion (`0.10000000149011612`). Display only: the values use the exact slope.
pub fn scheme_text(scheme: &Scheme) -> String {
    let text = scheme.to_string();
    if let SchemeKind::Scaled {
        family:
            Family::He {
                nonlinearity: init_core::Nonlinearity::LeakyRelu(a),
                ..
            },
        ..
    } = scheme.kind()
    {
        let short = a as f32;
        if f64::from(short) == a {
            return text.replace(&format!("leaky_relu({a})"), &format!("leaky_relu({short})"));
        }
    }
    text
}

/// The role as the tables show it: `recurrent W` / `recurrent R` for LSTM/GRU/RNN weights (input
/// and recurrent weights get different schemes), else the role's name.
pub(crate) fn role_label(role: &str, recurrent: Option<&str>) -> String {
    match recurrent {
        Some(p) if role == "recurrent_weight" => format!("recurrent {p}"),
        _ => role.to_owned(),
    }
}

/// A shape as `[2, 3]` (`[]` for a scalar).
pub(crate) fn shape_text(shape: &[i64]) -> String {
    format!("{shape:?}")
}

/// `fan_in/fan_out`, or `-`.
pub(crate) fn fans_text(fan_in: Option<u64>, fan_out: Option<u64>) -> String {
    match (fan_in, fan_out) {
        (Some(i), Some(o)) => format!("{i}/{o}"),
        _ => "-".to_owned(),
    }
}

fn recurrent_part(p: RecurrentPart) -> &'static str {
    match p {
        RecurrentPart::W => "W",
        RecurrentPart::R => "R",
        RecurrentPart::B => "B",
    }
}

/// What a fill writes: its std, bound and gain (see [`TensorReport`]).
#[derive(Clone, Copy, Debug)]
struct Target {
    std: Option<f64>,
    bound: Option<f64>,
    gain: Option<f64>,
}

impl Target {
    fn of(fill: &Fill, dims: &[i64]) -> Target {
        let (scheme, fans, shape): (Scheme, Option<Fans>, Vec<usize>) = match *fill {
            Fill::Whole { scheme, fans } => (
                scheme,
                fans,
                dims.iter()
                    .map(|&d| usize::try_from(d).unwrap_or(0))
                    .collect(),
            ),
            Fill::GateBlocks {
                scheme, rows, cols, ..
            } => (
                scheme,
                Some(Fans {
                    fan_in: cols as u64,
                    fan_out: rows as u64,
                }),
                vec![rows, cols],
            ),
        };
        let sampler = scheme.sampler(fans).ok().flatten();
        let bound = match sampler {
            Some(Sampler::Constant(v)) => Some(v.abs()),
            Some(Sampler::Uniform { lo, hi } | Sampler::TruncatedNormal { lo, hi, .. }) => {
                Some(lo.abs().max(hi.abs()))
            }
            _ => None,
        };
        let std = scheme.expected_std(&shape, fans).ok();
        let gain = match scheme.kind() {
            SchemeKind::Scaled { family, .. } => match family {
                Family::Glorot { gain } => Some(gain),
                Family::He { nonlinearity, .. } => Some(nonlinearity.gain()),
                Family::Lecun => Some(1.0),
                Family::VarianceScaling { scale, .. } => Some(scale.sqrt()),
                Family::FanInUniform => None,
            },
            SchemeKind::Orthogonal { gain } | SchemeKind::Eye { gain } => Some(gain),
            _ => None,
        };
        Target { std, bound, gain }
    }
}

/// The position of every node in graph order, keyed by (graph path, node label) as the
/// analysis names them ([`crate::analysis::Consumer`]): the main graph's nodes in file order,
/// each node followed by the nodes of the graphs in its attributes, recursively.
#[derive(Clone, Debug, Default)]
pub struct NodeOrder(HashMap<(String, String), usize>);

impl NodeOrder {
    fn rank(&self, t: &TensorReport) -> usize {
        self.rank_of(&t.graph, t.node.as_deref())
    }

    /// The rank of node `node` of graph `graph`; `usize::MAX` (last) when unknown. The first
    /// consumer is looked up in the tensor's own graph: one in a nested graph (an outer-scope
    /// reference) has no rank there and sorts last.
    pub fn rank_of(&self, graph: &str, node: Option<&str>) -> usize {
        node.and_then(|n| self.0.get(&(graph.to_owned(), n.to_owned())))
            .copied()
            .unwrap_or(usize::MAX)
    }
}

/// [`NodeOrder`] of a model.
pub fn node_order(model: &skeleton::Model) -> NodeOrder {
    fn walk(g: &skeleton::Graph, path: &str, map: &mut HashMap<(String, String), usize>) {
        for (index, node) in g.node.iter().enumerate() {
            let label = match node.name.as_deref() {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => format!("#{index}"),
            };
            let rank = map.len();
            map.entry((path.to_owned(), label.clone())).or_insert(rank);
            for attr in &node.attribute {
                let a = attr.name.as_deref().unwrap_or("");
                if let Some(sub) = &attr.g {
                    walk(sub, &format!("{path}/{label}.{a}"), map);
                }
                for (i, sub) in attr.graphs.iter().enumerate() {
                    walk(sub, &format!("{path}/{label}.{a}[{i}]"), map);
                }
            }
        }
    }
    let mut map = HashMap::new();
    if let Some(g) = &model.graph {
        walk(g, "", &mut map);
    }
    NodeOrder(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::TensorInfo;

    /// An initializer nothing reads, as the analysis leaves it.
    fn unused(name: &str, dims: &[i64], data_type: i32) -> TensorInfo {
        let mut t = TensorInfo::new("".into(), name.into(), dims.into(), data_type, Vec::new());
        t.set_why_untouched(if data_type == 7 {
            "int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized"
        } else {
            "no consumers (unused initializer)"
        });
        t
    }

    /// In analysis order: a float scalar (counted, not listed) first, then vectors (listed)
    /// and an int64 vector (not listed).
    fn rows() -> Vec<UntouchedReport> {
        let mut tensors = vec![
            unused("s0", &[], 1),
            unused("a", &[2], 1),
            unused("i", &[2], 7),
        ];
        tensors.extend(["b", "c", "d", "e", "f"].map(|n| unused(n, &[2], 1)));
        untouched_rows(&tensors)
    }

    #[test]
    fn an_untouched_row_is_three_words_and_rows_share_their_class() {
        assert!(
            std::mem::size_of::<UntouchedReport>() <= 24,
            "{}",
            std::mem::size_of::<UntouchedReport>()
        );
        let rows = rows();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["s0", "a", "i", "b", "c", "d", "e", "f"]);
        // Same (dtype, reason, listed): one class; the scalar and the int64 row each their own.
        assert!(
            rows[3..]
                .iter()
                .all(|r| Arc::ptr_eq(&r.class, &rows[1].class))
        );
        assert!(!Arc::ptr_eq(&rows[0].class, &rows[1].class));
        assert!(!Arc::ptr_eq(&rows[2].class, &rows[1].class));
        assert_eq!(
            (rows[0].dtype(), rows[0].reason(), rows[0].listed()),
            ("float32", "no consumers (unused initializer)", false)
        );
        assert_eq!((rows[1].dtype(), rows[1].listed()), ("float32", true));
        assert_eq!((rows[2].dtype(), rows[2].listed()), ("int64", false));
        // Built alone, a row equals its shared twin.
        assert_eq!(rows[1], UntouchedReport::of(&unused("a", &[2], 1)));
    }

    #[test]
    fn an_untouched_row_serializes_as_the_flat_schema_object() {
        let rows = rows();
        let json = serde_json::to_string(&rows[1]).unwrap();
        assert_eq!(
            json,
            r#"{"name":"a","graph":"","shape":[2],"dtype":"float32","reason":"no consumers (unused initializer)","listed":true}"#
        );
        let back: UntouchedReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rows[1]);
        assert_eq!(
            format!("{back:?}"),
            r#"UntouchedReport { name: "a", graph: "", shape: [2], dtype: "float32", reason: "no consumers (unused initializer)", listed: true }"#
        );
    }

    #[test]
    fn the_footer_groups_listed_rows_first_and_cuts_long_groups() {
        let rows = rows();
        let mut wide = String::new();
        footer(&mut wide, &[], &rows, &[], usize::MAX);
        assert_eq!(
            wide,
            "untouched 7: no consumers (unused initializer): a, b, c, d, e, f, s0\n\
             untouched 1: int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized: i\n"
        );
        // At 70 columns the first group keeps three names and the tail; the second wraps.
        let mut fitted = String::new();
        footer(&mut fitted, &[], &rows, &["w".into()], 70);
        assert_eq!(
            fitted,
            "untouched 7: no consumers (unused initializer): a, b, c, … and 4 more\n\
             untouched 1: int64 tensor: only f32/f64/f16/bf16 tensors are\n  \
             re-initialized: i\n\
             warning: w\n"
        );
    }
}
