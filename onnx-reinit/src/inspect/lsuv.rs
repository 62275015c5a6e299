//! `--lsuv`: layer-sequential unit-variance initialization (Mishkin & Matas 2016), on the
//! forward pass of [`super::forward`].
//!
//! The plan's values come first (the CLI plans weights orthogonal unless a weight rule is
//! given). Then, for each weight layer of the main graph in graph order (the first node that
//! consumes an f32 [`Role::Weight`]), the model with the values so far runs in tract on seeded
//! N(0, 1) inputs (or the arrays of an `.npz` file, [`LsuvOptions::inputs`], read by
//! [`super::npz`]); the std `s` of the layer's output is measured, the weight is multiplied by
//! `1/s`, and this repeats until `|s − 1| ≤ tolerance` or `max_iterations` scalings. Earlier
//! layers keep their final scale while later ones are measured, so each layer sees the input its
//! predecessors will give it. A weight layer's output is read before any bias Add that follows
//! it (the plan's biases are zeros unless a rule says otherwise).
//!
//! Deterministic for a seed: the inputs are init-core's seeded normals, tract's arithmetic is
//! deterministic, and the written values are the plan's values times each layer's scale.
//! A model tract cannot load or run is an error and nothing is written.

use std::collections::HashMap;

use prost::Message as _;
use tract_onnx::pb;

use super::forward::{self, Probe};
use crate::analysis::{Analysis, Role};
use crate::apply::PlanFiller;
use crate::onnx::dtype::DType;
use crate::onnx::model::LoadedModel;
use crate::onnx::values::ValuesMut;
use crate::rewrite::Filler;

/// LSUV's options.
#[derive(Clone, Debug)]
pub struct LsuvOptions {
    /// Seed of the random inputs.
    pub seed: u64,
    /// Concrete input shapes (as `inspect --input-shape`): `(Some(name), dims)` or
    /// `(None, dims)` for the first input. Symbolic dimensions are 1 otherwise.
    pub input_shapes: Vec<(Option<String>, Vec<usize>)>,
    /// `--inputs FILE.npz`: the sample inputs, one array per graph input by name, instead of
    /// seeded N(0, 1) ones (`input_shapes` and `seed` then do not apply to the inputs).
    pub inputs: Option<std::path::PathBuf>,
    /// Stop scaling a layer when its output std is within this of 1.
    pub tolerance: f64,
    /// At most this many scalings per layer.
    pub max_iterations: usize,
}

impl Default for LsuvOptions {
    fn default() -> Self {
        LsuvOptions {
            seed: 0,
            input_shapes: Vec::new(),
            inputs: None,
            tolerance: 0.01,
            max_iterations: 10,
        }
    }
}

/// One layer's LSUV result.
#[derive(Clone, Debug, PartialEq)]
pub struct LsuvLayer {
    /// The weight initializer.
    pub tensor: String,
    /// The layer's node.
    pub node: String,
    /// Its output std with the plan's values (earlier layers already scaled).
    pub std_before: f64,
    /// Its output std after scaling.
    pub std_after: f64,
    /// The factor the plan's values were multiplied by.
    pub scale: f64,
    /// Forward passes measured for this layer.
    pub iterations: usize,
}

/// What LSUV did: the layers it scaled, the planned weights it left at the plan's values (with
/// the reason), and the per-tensor scales for [`crate::apply::ScaledFiller`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LsuvResult {
    /// Each scaled layer, in graph order.
    pub layers: Vec<LsuvLayer>,
    /// Planned weights not scaled: (tensor, reason).
    pub skipped: Vec<(String, String)>,
    /// Tensor index → scale.
    pub scales: HashMap<usize, f32>,
}

/// Run LSUV: each layer's result, the weights left unscaled and the per-tensor scales. Fails
/// (naming the op tract rejects, or the layer) when the model cannot run or a layer's output is
/// constant.
pub fn lsuv(
    model: &LoadedModel,
    analysis: &Analysis,
    filler: &PlanFiller,
    opts: &LsuvOptions,
) -> Result<LsuvResult, String> {
    let graph = model
        .skeleton()
        .graph
        .as_ref()
        .ok_or_else(|| "the model has no graph".to_owned())?;
    let (specs, inputs) = if let Some(path) = &opts.inputs {
        forward::file_inputs(graph, path)?
    } else {
        let specs = forward::input_specs(graph, &opts.input_shapes)?;
        let inputs = forward::make_inputs(&specs, analysis, opts.seed)?.0;
        (specs, inputs)
    };
    let mut proto = pb::ModelProto::decode(model.bytes())
        .map_err(|e| format!("tract-onnx cannot decode the model: {e}"))?;
    let dir = model.dir().to_str().map(str::to_owned);
    let probes = forward::probes(model, analysis);
    let targets = filler.targets();
    // The plan's values of every planned f32 main-graph tensor, written into the proto.
    let pg = proto
        .graph
        .as_mut()
        .ok_or_else(|| "the model has no graph".to_owned())?;
    let slot: HashMap<String, usize> = pg
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut base: HashMap<usize, (usize, Vec<f32>)> = HashMap::new();
    for &index in &targets {
        let t = &analysis.tensors[index];
        if !t.graph.is_empty() || DType::from_onnx(t.data_type) != DType::FLOAT {
            continue;
        }
        let Some(&k) = slot.get(t.name.as_str()) else {
            continue;
        };
        let n = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product::<usize>();
        let mut v = vec![0f32; n];
        filler.fill(index, 0, ValuesMut::F32(&mut v));
        set_raw(&mut pg.initializer[k], &v, 1.0);
        base.insert(index, (k, v));
    }
    // Weight layers in graph order: the probe of the first node consuming each weight.
    let mut layers: Vec<(usize, usize)> = Vec::new(); // (probe index, tensor index)
    for (pi, p) in probes.iter().enumerate() {
        if p.kind != "weight" {
            continue;
        }
        let w = analysis.tensors.iter().position(|t| {
            t.role == Some(Role::Weight)
                && t.graph.is_empty()
                && t.consumers.first().is_some_and(|c| c.node == p.node)
        });
        if let Some(w) = w
            && base.contains_key(&w)
            && !layers.iter().any(|l| l.1 == w)
        {
            layers.push((pi, w));
        }
    }
    let mut skipped: Vec<(String, String)> = Vec::new();
    for &index in &targets {
        let t = &analysis.tensors[index];
        if t.role != Some(Role::Weight) || layers.iter().any(|l| l.1 == index) {
            continue;
        }
        let why = if !t.graph.is_empty() {
            "in a subgraph: the forward pass measures main-graph layers only"
        } else if !base.contains_key(&index) {
            "not f32: LSUV scales f32 weights only"
        } else {
            "its layer's output is not one the forward pass records"
        };
        skipped.push((t.name.to_string(), why.to_owned()));
    }
    let mut results = Vec::new();
    let mut scales = HashMap::new();
    for (pi, w) in layers {
        let probe: Vec<Probe> = vec![probes[pi].clone()];
        let (k, values) = &base[&w];
        let mut scale = 1.0f64;
        let mut before = None;
        let mut iterations = 0;
        let mut last;
        loop {
            iterations += 1;
            let pg = proto.graph.as_mut().expect("checked above");
            set_raw(&mut pg.initializer[*k], values, scale as f32);
            let rows = forward::guarded(|| {
                forward::run_once(
                    &proto,
                    dir.as_deref(),
                    graph,
                    &probe,
                    &specs,
                    inputs.clone(),
                )
            })?;
            let s = rows.first().map(|r| r.std).ok_or_else(|| {
                format!(
                    "tract does not expose the output of node `{}`",
                    probes[pi].node
                )
            })?;
            before.get_or_insert(s);
            last = s;
            if !(s.is_finite() && s > 0.0) {
                return Err(format!(
                    "layer `{}` ({}): its output std is {s}; LSUV cannot scale it to 1",
                    probes[pi].node, analysis.tensors[w].name
                ));
            }
            if (s - 1.0).abs() <= opts.tolerance || iterations > opts.max_iterations {
                break;
            }
            scale /= s;
        }
        scales.insert(w, scale as f32);
        results.push(LsuvLayer {
            tensor: analysis.tensors[w].name.to_string(),
            node: probes[pi].node.clone(),
            std_before: before.unwrap_or(f64::NAN),
            std_after: last,
            scale,
            iterations,
        });
    }
    Ok(LsuvResult {
        layers: results,
        skipped,
        scales,
    })
}

fn set_raw(t: &mut pb::TensorProto, v: &[f32], scale: f32) {
    let mut raw = Vec::with_capacity(v.len() * 4);
    for &x in v {
        raw.extend_from_slice(&(x * scale).to_le_bytes());
    }
    t.raw_data = raw;
    t.float_data.clear();
    t.double_data.clear();
    t.int32_data.clear();
    t.int64_data.clear();
    t.external_data.clear();
    t.data_location = None;
}

/// The whole rewrite with LSUV between the plan and the write ([`stage`] in
/// [`crate::pipeline::run_staged`]): the outcome, and what LSUV did.
pub fn run(
    config: &crate::pipeline::RewriteConfig,
    opts: &LsuvOptions,
) -> Result<(crate::pipeline::Outcome, LsuvResult), crate::pipeline::RunError> {
    let (outcome, result, ()) =
        crate::pipeline::run_staged(config, true, stage(config, opts), |_, _, _| ())?;
    Ok((outcome, result))
}

/// The `--lsuv` stage of [`crate::pipeline::run_staged`] (which must keep the skeleton: the
/// model is run in tract): LSUV on the planned model, its scales for the write, and its
/// result. A failure names the model file.
pub fn stage<'a>(
    config: &'a crate::pipeline::RewriteConfig,
    opts: &'a LsuvOptions,
) -> impl FnOnce(
    &LoadedModel,
    &Analysis,
    &PlanFiller,
) -> Result<(crate::pipeline::Scales, LsuvResult), crate::pipeline::RunError>
+ 'a {
    move |model, analysis, filler| {
        let mut result = lsuv(model, analysis, filler, opts).map_err(|message| {
            crate::pipeline::RunError::Lsuv {
                file: config.model.clone(),
                message,
            }
        })?;
        let scales = std::mem::take(&mut result.scales);
        Ok((scales, result))
    }
}

/// The lines the table prints after the report: each layer's std before and after.
pub fn summary(result: &LsuvResult, opts: &LsuvOptions) -> String {
    let layers = &result.layers;
    use std::fmt::Write as _;
    let inputs = match &opts.inputs {
        Some(p) => format!("inputs {}", p.display()),
        None => format!("seed {}", opts.seed),
    };
    let mut out = format!(
        "lsuv ({inputs}, tolerance {}, at most {} scalings per layer): {} layers\n",
        opts.tolerance,
        opts.max_iterations,
        layers.len()
    );
    for l in layers {
        let _ = writeln!(
            out,
            "  {} ({}): output std {:.4} -> {:.4}, scale {:.6}, {} passes",
            l.node, l.tensor, l.std_before, l.std_after, l.scale, l.iterations
        );
    }
    for (t, why) in &result.skipped {
        let _ = writeln!(out, "  not scaled: {t}: {why}");
    }
    out
}

/// The `"lsuv"` member `--json` adds: the options, each layer's std before and after, and the
/// weights not scaled with the reason.
pub fn to_json(result: &LsuvResult, opts: &LsuvOptions) -> serde_json::Value {
    serde_json::json!({
        "seed": opts.seed,
        "inputs": opts.inputs.as_ref().map(|p| p.display().to_string()),
        "tolerance": opts.tolerance,
        "max_iterations": opts.max_iterations,
        "layers": result.layers.iter().map(|l| serde_json::json!({
            "node": l.node, "tensor": l.tensor, "std_before": l.std_before,
            "std_after": l.std_after, "scale": l.scale, "passes": l.iterations,
        })).collect::<Vec<_>>(),
        "not_scaled": result.skipped.iter().map(|(t, why)| serde_json::json!({
            "tensor": t, "reason": why,
        })).collect::<Vec<_>>(),
    })
}
