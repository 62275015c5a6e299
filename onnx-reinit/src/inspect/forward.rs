//! `inspect --forward`: run the model with tract-onnx on seeded random inputs and record the
//! output of every weight layer, normalization and activation, in graph order.
//!
//! How: the file is decoded with tract's own protobuf types (from the mapped bytes), parsed into
//! a tract `InferenceModel`, and the outlets of the recorded ONNX values (tract labels every
//! node output with its ONNX name) are made the model's outputs before the model is typed and
//! optimized — outputs survive optimization, so the recorded values are exactly the graph's
//! values. Inputs get the shape the model declares, symbolic dimensions 1 unless given with
//! `--input-shape`; float inputs are N(0, 1), integer inputs uniform in [0, V) where V is the
//! smallest embedding table's row count (token ids that a Gather accepts), from init-core's
//! portable generator, so a run is reproducible from its seed.
//!
//! `--compare`: the same pass after an in-memory re-initialization: the plan of the given rules
//! is turned into values by [`PlanFiller`] and written into the decoded initializers (as
//! `raw_data`) before tract parses them; the file is not touched. Main-graph initializers only.
//!
//! A model tract cannot load or run produces an error naming the op (unimplemented ops are
//! listed before any analysis; for other failures the node named in tract's message is looked
//! up in the graph).

use std::collections::{HashMap, HashSet};

use init_core::rng::key_of;
use init_core::{Sampler, Stream};
use prost::Message as _;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{ForwardOptions, ForwardReport, ForwardRun, InputRow, LayerRow, Stats};
use crate::analysis::{Analysis, Role};
use crate::apply::PlanFiller;
use crate::onnx::dtype::DType;
use crate::onnx::model::LoadedModel;
use crate::onnx::skeleton;
use crate::onnx::values::{ValuesBuf, encode_le};
use crate::plan::{self, Rules};
use crate::rewrite::Filler;

/// Ops whose output is recorded as an activation.
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Tanh",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Gelu",
    "FastGelu",
    "Softplus",
    "Softsign",
    "Mish",
    "Clip",
    "ThresholdedRelu",
    "Softmax",
    "LogSoftmax",
];

/// One value to record.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    pub(super) node: String,
    pub(super) op: String,
    pub(super) output: String,
    pub(super) kind: &'static str,
}

/// The recorded values, in graph order.
pub(super) fn probes(model: &LoadedModel, analysis: &Analysis) -> Vec<Probe> {
    let Some(graph) = model.skeleton().graph.as_ref() else {
        return Vec::new();
    };
    let mut layers: HashMap<&str, &'static str> = HashMap::new();
    for t in &analysis.tensors {
        let kind = match t.role {
            Some(Role::Weight | Role::RecurrentWeight | Role::Embedding) => "weight",
            Some(Role::NormScale) => "norm",
            _ => continue,
        };
        for c in t.consumers.iter().filter(|c| c.graph.is_empty()) {
            let e = layers.entry(c.node.as_str()).or_insert(kind);
            if kind == "weight" {
                *e = kind;
            }
        }
    }
    let mut out = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        let label = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => format!("#{i}"),
        };
        let kind = match layers.get(label.as_str()) {
            Some(k) => *k,
            None if ACTIVATIONS.contains(&n.op()) => "activation",
            None => continue,
        };
        let Some(output) = n.output.iter().find(|o| !o.is_empty()) else {
            continue;
        };
        out.push(Probe {
            node: label,
            op: n.op().to_owned(),
            output: output.clone(),
            kind,
        });
    }
    out
}

/// A model input: name, ONNX element type, concrete shape.
#[derive(Clone, Debug)]
pub(super) struct InputSpec {
    name: String,
    elem: i32,
    shape: Vec<usize>,
}

pub(super) fn input_specs(
    graph: &skeleton::Graph,
    overrides: &[(Option<String>, Vec<usize>)],
) -> Result<Vec<InputSpec>, String> {
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut specs = Vec::new();
    for vi in &graph.input {
        let name = vi.name.clone().unwrap_or_default();
        if inits.contains(name.as_str()) {
            continue;
        }
        let tt = vi.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        let elem = tt
            .and_then(|t| t.elem_type)
            .unwrap_or(DType::FLOAT.onnx_code());
        let shape = tt.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match d.dim_value {
                    Some(v) if v > 0 => v as usize,
                    _ => 1,
                })
                .collect::<Vec<usize>>()
        });
        specs.push((name, elem, shape));
    }
    let mut used = vec![false; overrides.len()];
    let mut out = Vec::new();
    for (k, (name, elem, shape)) in specs.into_iter().enumerate() {
        let given = overrides.iter().enumerate().find(|(_, (n, _))| match n {
            Some(n) => *n == name,
            None => k == 0,
        });
        let shape = match given {
            Some((j, (_, dims))) => {
                used[j] = true;
                dims.clone()
            }
            None => shape.ok_or_else(|| {
                format!(
                    "input `{name}` declares no shape; give one with --input-shape {name}=D1,D2,…"
                )
            })?,
        };
        out.push(InputSpec { name, elem, shape });
    }
    if let Some(j) = used.iter().position(|u| !u) {
        let (n, _) = &overrides[j];
        return Err(format!(
            "--input-shape: the model has no input `{}` (inputs: {})",
            n.as_deref().unwrap_or("?"),
            out.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// The tensors fed to the model, and their description for the report.
pub(super) fn make_inputs(
    specs: &[InputSpec],
    analysis: &Analysis,
    seed: u64,
) -> Result<(TVec<TValue>, Vec<InputRow>), String> {
    // Integer inputs are token ids: stay below the smallest embedding table's row count.
    let vocab = analysis
        .tensors
        .iter()
        .filter(|t| t.role == Some(Role::Embedding))
        .filter_map(|t| t.dims.first().copied())
        .filter(|&v| v > 0)
        .min()
        .unwrap_or(2) as usize;
    let mut values = TVec::new();
    let mut rows = Vec::new();
    for s in specs {
        let n: usize = s.shape.iter().product();
        let stream = Stream {
            seed,
            key: key_of(&format!("inspect input {}", s.name)),
        };
        let mut f = vec![0f32; n];
        let elem = DType::from_onnx(s.elem);
        let (tensor, dtype, desc) = match elem {
            DType::FLOAT | DType::FLOAT16 | DType::DOUBLE | DType::BFLOAT16 => {
                Sampler::Normal {
                    mean: 0.0,
                    std: 1.0,
                }
                .fill(&mut f, stream);
                let t = Tensor::from_shape(&s.shape, &f).map_err(|e| format!("{e:#}"))?;
                // The type generated (bf16 inputs get f32 values).
                let (t, generated) = match elem {
                    DType::F16 => (
                        t.cast_to::<f16>().map(std::borrow::Cow::into_owned),
                        DType::F16,
                    ),
                    DType::F64 => (
                        t.cast_to::<f64>().map(std::borrow::Cow::into_owned),
                        DType::F64,
                    ),
                    _ => (Ok(t), DType::F32),
                };
                (
                    t.map_err(|e| format!("{e:#}"))?,
                    generated.short_name().unwrap_or_default(),
                    "normal(0,1)".to_owned(),
                )
            }
            DType::UINT8
            | DType::INT8
            | DType::UINT16
            | DType::INT16
            | DType::INT32
            | DType::INT64
            | DType::UINT32
            | DType::UINT64 => {
                Sampler::Uniform {
                    lo: 0.0,
                    hi: vocab as f64,
                }
                .fill(&mut f, stream);
                let ids: Vec<i64> = f
                    .iter()
                    .map(|&x| (x.floor() as i64).clamp(0, vocab as i64 - 1))
                    .collect();
                let t = Tensor::from_shape(&s.shape, &ids).map_err(|e| format!("{e:#}"))?;
                let dt = match elem {
                    DType::UINT8 => u8::datum_type(),
                    DType::INT8 => i8::datum_type(),
                    DType::UINT16 => u16::datum_type(),
                    DType::INT16 => i16::datum_type(),
                    DType::INT32 => i32::datum_type(),
                    DType::UINT32 => u32::datum_type(),
                    DType::UINT64 => u64::datum_type(),
                    _ => i64::datum_type(),
                };
                let t = t.cast_to_dt(dt).map_err(|e| format!("{e:#}"))?.into_owned();
                (t, "integer", format!("integers in [0, {vocab})"))
            }
            DType::BOOL => (
                Tensor::from_shape(&s.shape, &vec![false; n]).map_err(|e| format!("{e:#}"))?,
                DType::BOOL.short_name().unwrap_or_default(),
                "false".to_owned(),
            ),
            other => {
                return Err(format!(
                    "input `{}` has element type {} which the forward pass cannot generate",
                    s.name,
                    other.onnx_name()
                ));
            }
        };
        values.push(tensor.into_tvalue());
        rows.push(InputRow {
            name: s.name.clone(),
            shape: s.shape.clone(),
            dtype: dtype.to_owned(),
            values: desc,
        });
    }
    Ok((values, rows))
}

/// The graph's inputs (not initializers) from the arrays of the `.npz` file `path`, by input
/// name: each array must have the input's element type (float32, float64, int64 or int32) and
/// rank, and every static dimension the graph declares; symbolic dimensions take the array's.
/// Errors name the file and the input (or the array no input takes).
pub(super) fn file_inputs(
    graph: &skeleton::Graph,
    path: &std::path::Path,
) -> Result<(Vec<InputSpec>, TVec<TValue>), String> {
    use super::npz::{NpyData, read_npz};
    let file = path.display();
    let arrays = read_npz(path)?;
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&skeleton::ValueInfo> = graph
        .input
        .iter()
        .filter(|vi| !inits.contains(vi.name.as_deref().unwrap_or("")))
        .collect();
    let names: Vec<&str> = inputs
        .iter()
        .map(|vi| vi.name.as_deref().unwrap_or(""))
        .collect();
    let mut values = TVec::new();
    let mut specs = Vec::new();
    for (vi, name) in inputs.iter().zip(&names) {
        let Some((_, a)) = arrays.iter().find(|(n, _)| n == name) else {
            let have: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "{file}: no array for the graph input `{name}` (the file has: {})",
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ));
        };
        let tt = vi.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        let elem = DType::from_onnx(
            tt.and_then(|t| t.elem_type)
                .unwrap_or(DType::FLOAT.onnx_code()),
        );
        let want = match elem {
            DType::FLOAT => "float32",
            DType::DOUBLE => "float64",
            DType::INT64 => "int64",
            DType::INT32 => "int32",
            other => {
                return Err(format!(
                    "{file}: the graph input `{name}` is {}; --inputs gives float32, float64, \
                     int64 and int32 inputs",
                    other.onnx_name()
                ));
            }
        };
        if a.data.dtype_name() != want {
            return Err(format!(
                "{file}: array `{name}` is {}, the graph input is {want}",
                a.data.dtype_name()
            ));
        }
        if let Some(dims) = tt.and_then(|t| t.shape.as_ref()).map(|s| &s.dim) {
            let bad = dims.len() != a.shape.len()
                || dims.iter().zip(&a.shape).any(|(d, &n)| match d.dim_value {
                    Some(v) if v > 0 => v as usize != n,
                    _ => false,
                });
            if bad {
                let declared: Vec<String> = dims
                    .iter()
                    .map(|d| match (d.dim_value, d.dim_param.as_deref()) {
                        (Some(v), _) if v > 0 => v.to_string(),
                        (_, Some(p)) if !p.is_empty() => p.to_owned(),
                        _ => "?".to_owned(),
                    })
                    .collect();
                return Err(format!(
                    "{file}: array `{name}` has shape {:?}, the graph input is [{}]",
                    a.shape,
                    declared.join(", ")
                ));
            }
        }
        let t = match &a.data {
            NpyData::F32(v) => Tensor::from_shape(&a.shape, v),
            NpyData::F64(v) => Tensor::from_shape(&a.shape, v),
            NpyData::I64(v) => Tensor::from_shape(&a.shape, v),
            NpyData::I32(v) => Tensor::from_shape(&a.shape, v),
        }
        .map_err(|e| format!("{file}: array `{name}`: {e:#}"))?;
        values.push(t.into_tvalue());
        specs.push(InputSpec {
            name: (*name).to_owned(),
            elem: elem.onnx_code(),
            shape: a.shape.clone(),
        });
    }
    if let Some((extra, _)) = arrays.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        return Err(format!(
            "{file}: array `{extra}` is not an input of the graph (inputs: {})",
            names.join(", ")
        ));
    }
    Ok((specs, values))
}

/// Names the node and op of a tract error when its message quotes a node of the graph.
fn explain(err: &anyhow::Error, graph: &skeleton::Graph) -> String {
    let msg = format!("{err:#}");
    for n in &graph.node {
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => match n.output.first() {
                Some(o) if !o.is_empty() => o.clone(),
                _ => continue,
            },
        };
        if msg.contains(&format!("\"{name}\"")) || msg.contains(&format!("node {name} (")) {
            return format!("node `{name}` (op {}): {msg}", n.op());
        }
    }
    msg
}

/// Writes the planned values of main-graph initializers into the decoded model.
fn reinit_proto(
    proto: &mut pb::ModelProto,
    analysis: &Analysis,
    rules: &Rules,
    seed: u64,
) -> Result<usize, String> {
    let plan = plan::plan(analysis, rules, seed).map_err(|e| e.to_string())?;
    let filler = PlanFiller::new(analysis, &plan).map_err(|e| e.to_string())?;
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(0);
    };
    let by_name: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut buf = ValuesBuf::default();
    let mut changed = 0;
    for index in filler.targets() {
        let t = &analysis.tensors[index];
        if !t.graph.is_empty() {
            continue;
        }
        let Some(&k) = by_name.get(t.name.as_str()) else {
            continue;
        };
        let dtype = DType::from_onnx(t.data_type);
        let n = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product::<usize>();
        let mut view = buf.view(dtype, n);
        filler.fill(index, 0, view.reborrow_prefix(n));
        let mut raw = Vec::with_capacity(n * dtype.size().unwrap_or(4));
        encode_le(&view, &mut raw);
        let p = &mut graph.initializer[k];
        p.raw_data = raw;
        p.float_data.clear();
        p.double_data.clear();
        p.int32_data.clear();
        p.int64_data.clear();
        p.external_data.clear();
        p.data_location = None;
        changed += 1;
    }
    Ok(changed)
}

/// Parse, wire the probes as outputs, optimize, run, and summarise each probe.
pub(super) fn run_once(
    proto: &pb::ModelProto,
    dir: Option<&str>,
    graph: &skeleton::Graph,
    probes: &[Probe],
    specs: &[InputSpec],
    inputs: TVec<TValue>,
) -> Result<Vec<LayerRow>, String> {
    let onnx = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true);
    let parsed = onnx
        .parse(proto, dir)
        .map_err(|e| format!("tract-onnx cannot load the model: {}", explain(&e, graph)))?;
    let mut model = parsed.model;
    let unimplemented: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| {
            let op = n.op.name();
            op.strip_prefix("Unimplemented(")
                .and_then(|s| s.strip_suffix(')'))
                .map(|o| format!("{o} (node `{}`)", n.name))
        })
        .collect();
    if !unimplemented.is_empty() {
        return Err(format!(
            "tract-onnx does not implement op {}",
            unimplemented.join(", ")
        ));
    }
    if !parsed.unresolved_inputs.is_empty() {
        return Err(format!(
            "tract-onnx cannot resolve the inputs {:?}",
            parsed.unresolved_inputs
        ));
    }
    // Inputs: tract's sources are the non-initializer graph inputs, in order.
    let by_name: HashMap<&str, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let sources: Vec<OutletId> = model
        .input_outlets()
        .map_err(|e| format!("{e:#}"))?
        .to_vec();
    let mut fed = TVec::new();
    let mut inputs: Vec<Option<TValue>> = inputs.into_iter().map(Some).collect();
    for (ix, o) in sources.iter().enumerate() {
        let name = model.node(o.node).name.clone();
        let Some(&k) = by_name.get(name.as_str()) else {
            return Err(format!(
                "tract sees an input `{name}` the graph does not declare"
            ));
        };
        let Some(v) = inputs[k].take() else {
            return Err(format!("input `{name}` is fed twice"));
        };
        let fact = InferenceFact::dt_shape(v.datum_type(), v.shape());
        model
            .set_input_fact(ix, fact)
            .map_err(|e| format!("{e:#}"))?;
        fed.push(v);
    }
    // Outputs: the probes' outlets (tract labels every node output with its ONNX name).
    let mut kept = Vec::new();
    let mut outlets = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        if let Some(&o) = parsed.outlets_by_name.get(&p.output)
            && !outlets.contains(&o)
        {
            outlets.push(o);
            kept.push(i);
        }
    }
    if outlets.is_empty() {
        return Ok(Vec::new());
    }
    model
        .select_output_outlets(&outlets)
        .map_err(|e| format!("{e:#}"))?;
    // Optimized if tract can; some models only get through typing and decluttering.
    let typed = match model.clone().into_optimized() {
        Ok(m) => m,
        Err(first) => model
            .into_typed()
            .and_then(TypedModel::into_decluttered)
            .map_err(|_| {
                format!(
                    "tract-onnx cannot analyse the model: {}",
                    explain(&first, graph)
                )
            })?,
    };
    let plan = typed
        .into_runnable()
        .map_err(|e| format!("tract-onnx cannot plan the model: {}", explain(&e, graph)))?;
    let outputs = plan
        .run(fed)
        .map_err(|e| format!("tract-onnx failed to run the model: {}", explain(&e, graph)))?;
    let mut rows = Vec::new();
    for (&i, v) in kept.iter().zip(outputs.iter()) {
        let p = &probes[i];
        let Ok(f) = v.cast_to::<f32>() else {
            continue;
        };
        let Ok(view) = f.try_as_plain_ram() else {
            continue;
        };
        let owned: Vec<f32>;
        let data: &[f32] = if let Ok(s) = view.as_slice::<f32>() {
            s
        } else if let Ok(a) = view.to_array_view::<f32>() {
            owned = a.iter().copied().collect();
            &owned
        } else {
            continue;
        };
        let st = Stats::of_slice(data);
        let n = data.len().max(1) as f64;
        let zero_fraction = matches!(p.op.as_str(), "Relu" | "Clip" | "ThresholdedRelu")
            .then(|| data.iter().filter(|&&x| x == 0.0).count() as f64 / n);
        let saturated_fraction = match p.op.as_str() {
            "Tanh" | "Softsign" => Some(data.iter().filter(|x| x.abs() > 0.99).count() as f64 / n),
            "Sigmoid" | "HardSigmoid" => Some(
                data.iter()
                    .filter(|&&x| !(0.01..=0.99).contains(&x))
                    .count() as f64
                    / n,
            ),
            _ => None,
        };
        rows.push(LayerRow {
            index: rows.len(),
            node: p.node.clone(),
            op: p.op.clone(),
            output: p.output.clone(),
            kind: p.kind.to_owned(),
            shape: v.shape().to_vec(),
            mean: st.mean.unwrap_or(f64::NAN),
            std: st.std.unwrap_or(f64::NAN),
            zero_fraction,
            saturated_fraction,
            quantiles: super::quantiles(data),
        });
    }
    Ok(rows)
}

/// Run the forward pass (and the `--compare` pass). Never fails: what goes wrong is reported in
/// [`ForwardReport::error`] or the run's [`ForwardRun::error`].
pub fn forward(model: &LoadedModel, analysis: &Analysis, opts: &ForwardOptions) -> ForwardReport {
    let mut report = ForwardReport {
        seed: opts.seed,
        inputs: Vec::new(),
        runs: Vec::new(),
        error: None,
    };
    let Some(graph) = model.skeleton().graph.as_ref() else {
        report.error = Some("the model has no graph".to_owned());
        return report;
    };
    let specs = match input_specs(graph, &opts.input_shapes) {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let inputs = match make_inputs(&specs, analysis, opts.seed) {
        Ok((values, rows)) => {
            report.inputs = rows;
            values
        }
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let proto = match pb::ModelProto::decode(model.bytes()) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(format!("tract-onnx cannot decode the model: {e}"));
            return report;
        }
    };
    let dir = model.dir().to_str();
    let probes = probes(model, analysis);
    let current = guarded(|| run_once(&proto, dir, graph, &probes, &specs, inputs.clone()));
    if let Err(e) = &current
        && opts.compare.is_none()
    {
        report.error = Some(e.clone());
        return report;
    }
    report.runs.push(to_run("current", None, current));
    if let Some((label, rules)) = &opts.compare {
        let mut proto = proto;
        let result = reinit_proto(&mut proto, analysis, rules, opts.seed)
            .and_then(|_| guarded(|| run_once(&proto, dir, graph, &probes, &specs, inputs)));
        report
            .runs
            .push(to_run("reinit", Some(label.clone()), result));
    }
    report
}

/// Runs `f`, turning a panic inside tract into an error so the rest of the report survives.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(format!("tract-onnx panicked: {what}"))
    })
}

fn to_run(label: &str, rules: Option<String>, r: Result<Vec<LayerRow>, String>) -> ForwardRun {
    let (layers, error) = match r {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    ForwardRun {
        label: label.to_owned(),
        rules,
        error,
        layers,
    }
}
