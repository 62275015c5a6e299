//! Tests of the analysis stage: role, fans and following activation of every initializer.
//!
//! Two kinds: the 14 real PyTorch exports in `tests/fixtures` checked initializer by
//! initializer against their ground truth (`*.gt.json`, written from the PyTorch module
//! definitions, not from the graphs), and small models built here in code for every op, slot
//! and activation pattern the analysis claims to handle.

use std::collections::HashMap;

use onnx_reinit::analysis::{
    Activation, Analysis, AnalysisOptions, ConstValues, FanCompat, Fans, NoConstValues,
    NormStatKind, RecurrentOp, RecurrentPart, Role, TensorInfo, analyze,
};
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::skeleton::{
    Attribute, ConstTensor, Graph, Model, Node, OperatorSetId, TensorHeader, ValueInfo,
};
use onnx_reinit::pipeline;
use prost::Message;
use serde_json::Value as Json;

use crate::common::fixtures_dir;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn load_fixture(stem: &str) -> (Model, Json) {
    let dir = fixtures_dir();
    let bytes = std::fs::read(dir.join(format!("{stem}.onnx"))).expect("read fixture");
    let model = Model::decode(&bytes[..]).expect("decode fixture");
    let gt = std::fs::read_to_string(dir.join(format!("{stem}.gt.json"))).expect("read gt");
    (model, serde_json::from_str(&gt).expect("parse gt"))
}

fn fixture_stems() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".onnx").map(str::to_owned)
        })
        .collect();
    stems.sort();
    stems
}

/// `gt_activation` free text → the activation analysis must report. Explicit, so that a phrase
/// not seen before fails instead of being guessed.
fn gt_activation(text: &str) -> Activation {
    match text {
        "Relu"
        | "Relu (via bn1)"
        | "Relu (via bn2); depthwise groups=16"
        | "Relu (via bn3); pointwise 1x1"
        | "Relu; ConvTranspose2d stride 2" => Activation::Relu,
        "Sigmoid" => Activation::Sigmoid,
        "Tanh" => Activation::Tanh,
        "LeakyRelu(0.1)" => Activation::LeakyRelu(0.1),
        "Selu" => Activation::Selu,
        "Elu" => Activation::Elu(1.0),
        "Gelu" => Activation::Gelu,
        "none (logits)"
        | "none (embedding lookup, Gather)"
        | "none (residual Add + LayerNorm)"
        | "none (LayerNorm affine)" => Activation::Linear,
        // Softmax is applied to Q·Kᵀ, a product of two projections, not element-wise to the
        // projection; the walk stops at that MatMul. PyTorch itself initialises in_proj with
        // xavier_uniform (the linear rule). See analysis::activation's module docs.
        "in_proj: Q,K -> scaled dot product -> Softmax; V -> none (weighted sum)" => {
            Activation::Linear
        }
        "GRU gates: sigmoid(r,z) + tanh(n); bidirectional"
        | "LSTM gates: sigmoid(i,f,o) + tanh(g, cell); 2 layers" => Activation::Recurrent,
        other => panic!("gt_activation {other:?} has no entry in the test's table"),
    }
}

/// The role the PyTorch parameter implies, by module kind in these fixtures' definitions.
/// `None` for exporter-made constants (shapes, indices, the attention scale, zero initial
/// states of the recurrent layers, which the gt marks as `lstm.*`/`gru.*`/`enc.*`).
fn gt_role(torch_param: Option<&str>) -> Option<Role> {
    let param = torch_param?;
    if param.ends_with(".*") {
        return None;
    }
    let (module, leaf) = param.split_once('.').expect("module.leaf");
    let role = match (module, leaf) {
        ("lstm" | "gru", l) if l.starts_with("weight_") => Role::RecurrentWeight,
        ("lstm" | "gru", l) if l.starts_with("bias_") => Role::Bias,
        ("bn1" | "bn2" | "bn3", "weight") | ("enc", "norm1.weight" | "norm2.weight") => {
            Role::NormScale
        }
        ("bn1" | "bn2" | "bn3", "bias") | ("enc", "norm1.bias" | "norm2.bias") => Role::NormShift,
        ("bn1" | "bn2" | "bn3", "running_mean") => Role::NormStat(NormStatKind::Mean),
        ("bn1" | "bn2" | "bn3", "running_var") => Role::NormStat(NormStatKind::Var),
        ("emb", "weight") => Role::Embedding,
        (_, l) => match l.rsplit('.').next() {
            Some("weight" | "in_proj_weight") => Role::Weight,
            Some("bias" | "in_proj_bias") => Role::Bias,
            _ => panic!("torch param {param:?} has no entry in the test's role table"),
        },
    };
    Some(role)
}

/// True-connectivity fans where they differ from PyTorch's, by PyTorch parameter.
const TRUE_FANS: &[(&str, u64, u64)] = &[
    // depthwise Conv (16, 1, 3, 3), group 16: out = M/g·∏k = 9, not 16·9
    ("dw.weight", 9, 9),
    // ConvTranspose (32, 8, 2, 2): in = C·∏k = 128, out = M·∏k = 32 (PyTorch swaps them)
    ("up.weight", 128, 32),
    // Embedding (100, 32): one row per lookup
    ("emb.weight", 1, 32),
    // MultiheadAttention's packed in_proj [96, 32] = Q, K, V of 32 → 32 each: the export's
    // MatMul output is cut by Gather(0), Gather(1), Gather(2) (pytorch#166378 keeps 96)
    ("enc.self_attn.in_proj_weight", 32, 32),
];

fn analyse(model: &Model, compat: FanCompat) -> Analysis {
    analyze(model, &NoConstValues, &AnalysisOptions { compat })
}

/// The analysis the CLI makes of a fixture: with the file's constant values (the dynamo
/// exports keep Gather indices and Clip bounds as initializers, not Constant nodes).
fn analyse_file(stem: &str, compat: FanCompat) -> Analysis {
    let m = LoadedModel::open(fixtures_dir().join(format!("{stem}.onnx"))).expect("open fixture");
    pipeline::analyze_loaded(&m, &AnalysisOptions { compat }).expect("analyse fixture")
}

#[test]
fn fixtures_match_ground_truth() {
    let stems = fixture_stems();
    assert_eq!(
        stems.len(),
        14,
        "expected the 14 exported fixtures: {stems:?}"
    );
    let mut failures: Vec<String> = Vec::new();
    for stem in &stems {
        let (model, gt) = load_fixture(stem);
        let true_mode = analyse_file(stem, FanCompat::True);
        let torch_mode = analyse_file(stem, FanCompat::PyTorch);
        // The skeleton alone (no constant values) decides the same except where a constant
        // matters (here: the dynamo export's Gather indices behind the packed in_proj).
        let skeleton_only = analyse(&model, FanCompat::True);
        for (a, b) in skeleton_only.tensors.iter().zip(&true_mode.tensors) {
            if a.role != b.role || a.activation != b.activation {
                failures.push(format!(
                    "{stem}: {}: constant values changed role or activation",
                    a.name
                ));
            }
        }
        let gt_inits = gt["initializers"].as_array().expect("initializers");
        let mut fail = |msg: String| failures.push(format!("{stem}: {msg}"));

        // One entry per initializer, in file order, all in the main graph.
        let names: Vec<&str> = true_mode.tensors.iter().map(|t| t.name.as_str()).collect();
        let gt_names: Vec<&str> = gt_inits
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        if names != gt_names {
            fail(format!("initializer order {names:?} != {gt_names:?}"));
            continue;
        }
        if !true_mode.warnings.is_empty() {
            fail(format!("warnings: {:?}", true_mode.warnings));
        }

        let (mut roles, mut acts, mut fans) = (0, 0, 0);
        for (i, g) in gt_inits.iter().enumerate() {
            let t = &true_mode.tensors[i];
            let p = &torch_mode.tensors[i];
            let name = &t.name;
            assert_eq!(t.graph, "");
            let dims: Vec<i64> = g["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            if t.dims != dims {
                fail(format!("{name}: dims {:?} != {dims:?}", t.dims));
            }
            check_consumers(t, g, &mut fail);

            let param = g["torch_param"].as_str();
            let want_role = gt_role(param);
            roles += 1;
            if t.role != want_role {
                fail(format!(
                    "{name}: role {:?} != {want_role:?} ({}; note {:?})",
                    t.role,
                    t.why_untouched(),
                    t.note
                ));
                continue;
            }
            if t.role.is_none() {
                if t.activation.is_some() || t.why_untouched().is_empty() {
                    fail(format!(
                        "{name}: untouched without a reason or with activation"
                    ));
                }
                continue;
            }
            let want_act = match &g["gt_activation"] {
                Json::String(s) => gt_activation(s),
                Json::Array(items) => {
                    let all: Vec<Activation> = items
                        .iter()
                        .map(|s| gt_activation(s.as_str().unwrap()))
                        .collect();
                    assert!(
                        all.windows(2).all(|w| w[0] == w[1]),
                        "{stem} {name}: {all:?}"
                    );
                    all[0]
                }
                other => panic!("{stem} {name}: gt_activation {other}"),
            };
            acts += 1;
            if t.activation != Some(want_act) {
                fail(format!(
                    "{name}: activation {:?} != {want_act:?} (note {:?})",
                    t.activation, t.note
                ));
            }
            if p.role != t.role || p.activation != t.activation {
                fail(format!("{name}: compat mode changed role or activation"));
            }

            // Fans: PyTorch mode reproduces torch; true mode equals it except the table.
            if let (Some(fi), Some(fo)) = (g["torch_fan_in"].as_u64(), g["torch_fan_out"].as_u64())
            {
                fans += 1;
                let torch = Fans {
                    fan_in: fi,
                    fan_out: fo,
                };
                if p.fans != Some(torch) {
                    fail(format!("{name}: PyTorch fans {:?} != {torch:?}", p.fans));
                }
                let want_true = TRUE_FANS
                    .iter()
                    .find(|(tp, _, _)| Some(*tp) == param)
                    .map_or(torch, |&(_, i, o)| Fans {
                        fan_in: i,
                        fan_out: o,
                    });
                if t.fans != Some(want_true) {
                    fail(format!("{name}: true fans {:?} != {want_true:?}", t.fans));
                }
            }
            if t.role == Some(Role::RecurrentWeight) {
                fans += 1;
                check_recurrent_fixture(t, p, &mut fail);
            }
        }
        println!(
            "{stem}: {} initializers; role checked {roles}, activation {acts}, fans {fans}",
            gt_inits.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every non-Identity consumer of the ground truth is among ours; every Identity in the ground
/// truth shows up as a `via` of one of ours (we resolve through it to the real consumer).
fn check_consumers(t: &TensorInfo, g: &Json, fail: &mut impl FnMut(String)) {
    for c in g["consumers"].as_array().unwrap() {
        let (op, node) = (c["op"].as_str().unwrap(), c["node"].as_str().unwrap());
        let slot = c["input_index"].as_u64().unwrap() as usize;
        let ok = if op == "Identity" {
            t.consumers
                .iter()
                .any(|m| m.via.iter().any(|v| v.contains(&format!("'{node}'"))))
        } else {
            t.consumers
                .iter()
                .any(|m| m.op == op && m.node == node && m.slot == slot && m.via.is_empty())
        };
        if !ok {
            fail(format!(
                "{}: consumer {op} '{node}' slot {slot} missing from {:?}",
                t.name, t.consumers
            ));
        }
    }
}

/// Recurrent W/R of the fixtures: fans per gate block (true) or over all gates (PyTorch).
fn check_recurrent_fixture(t: &TensorInfo, p: &TensorInfo, fail: &mut impl FnMut(String)) {
    let Some(layout) = &t.recurrent else {
        fail(format!("{}: recurrent weight without layout", t.name));
        return;
    };
    let gates = match t.consumers[0].op.as_str() {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    };
    let d: Vec<u64> = t.dims.iter().map(|&x| x as u64).collect();
    let hidden = d[1] / gates;
    let want = Fans {
        fan_in: d[2],
        fan_out: hidden,
    };
    if layout.gates != gates as u32 || layout.hidden != hidden || layout.directions != d[0] as u32 {
        fail(format!("{}: layout {layout:?}", t.name));
    }
    if t.fans != Some(want) || layout.gate_fans != Some(want) {
        fail(format!("{}: true fans {:?} != {want:?}", t.name, t.fans));
    }
    let torch = Fans {
        fan_in: d[2],
        fan_out: d[1],
    };
    if p.fans != Some(torch) {
        fail(format!(
            "{}: PyTorch fans {:?} != {torch:?}",
            t.name, p.fans
        ));
    }
}

#[test]
fn fixture_details() {
    // The TorchScript exporter merged conv1's folded bias with dw's: one tensor, two Convs
    // (the second through Identity), both followed by Relu.
    let (model, _) = load_fixture("cnn");
    let a = analyse(&model, FanCompat::True);
    let shared = a.find("", "onnx::Conv_41").unwrap();
    assert_eq!(shared.consumers.len(), 2, "{:?}", shared.consumers);
    assert!(shared.note.as_deref().unwrap().contains("shared by 2"));
    assert_eq!(shared.activation, Some(Activation::Relu));

    // Legacy transformer: out_proj.bias also feeds both LayerNorm biases through Identity.
    // Bias wins over norm_shift, and the note says so.
    let (model, _) = load_fixture("transformer");
    let a = analyse(&model, FanCompat::True);
    let t = a.find("", "enc.self_attn.out_proj.bias").unwrap();
    assert_eq!(t.role, Some(Role::Bias));
    assert_eq!(t.consumers.len(), 3);
    let note = t.note.as_deref().unwrap();
    assert!(
        note.contains("read it as norm_shift, but bias wins"),
        "{note}"
    );

    // LSTM layers: W, R, B carry the layout; the zero initial state is not a parameter.
    let (model, _) = load_fixture("lstm_dynamo");
    let a = analyse(&model, FanCompat::True);
    let w = a.find("", "val_40").unwrap();
    let l = w.recurrent.as_ref().unwrap();
    assert_eq!(
        (l.op, l.which, l.gates, l.hidden, l.input_size, l.gate_order),
        (RecurrentOp::Lstm, RecurrentPart::W, 4, 20, Some(10), "iofc")
    );
    let b = a.find("", "val_63").unwrap();
    assert_eq!(b.role, Some(Role::Bias));
    assert_eq!(b.recurrent.as_ref().unwrap().which, RecurrentPart::B);
    assert_eq!(b.recurrent.as_ref().unwrap().input_size, Some(10));
    let h0 = a.find("", "val_15").unwrap();
    assert_eq!(h0.role, None);
    assert!(
        h0.why_untouched().contains("initial_h"),
        "{}",
        h0.why_untouched()
    );
    assert_eq!(h0.consumers.len(), 4);

    // Integer shape tensors are never touched.
    let (model, _) = load_fixture("transformer_dynamo");
    let a = analyse(&model, FanCompat::True);
    let shape = a.find("", "val_7").unwrap();
    assert_eq!(shape.role, None);
    assert!(
        shape.why_untouched().contains("int64"),
        "{}",
        shape.why_untouched()
    );
    let scale = a.find("", "val_68").unwrap();
    assert_eq!(scale.role, None);
    assert!(
        scale.why_untouched().contains("scalar"),
        "{}",
        scale.why_untouched()
    );
}

// ---------------------------------------------------------------------------------------------
// Models built in code

/// A graph under construction. Nodes are named after their first output.
#[derive(Default)]
struct B {
    g: Graph,
}

fn vi(name: &str) -> ValueInfo {
    ValueInfo {
        name: Some(name.to_owned()),
        r#type: None,
    }
}

fn attr(name: &str) -> Attribute {
    Attribute {
        name: Some(name.to_owned()),
        ..Attribute::default()
    }
}

/// A one-element f32 tensor.
fn scalar_tensor(v: f32) -> ConstTensor {
    ConstTensor {
        dims: vec![],
        data_type: Some(1),
        raw_data: Some(v.to_le_bytes().to_vec()),
        ..ConstTensor::default()
    }
}

/// Attribute setters on a node under construction.
trait NodeExt {
    fn i(&mut self, name: &str, v: i64) -> &mut Self;
    fn f(&mut self, name: &str, v: f32) -> &mut Self;
    fn ints(&mut self, name: &str, v: &[i64]) -> &mut Self;
    fn s(&mut self, name: &str, v: &str) -> &mut Self;
    fn g(&mut self, name: &str, g: Graph) -> &mut Self;
    fn domain(&mut self, d: &str) -> &mut Self;
    fn unnamed(&mut self) -> &mut Self;
}

impl NodeExt for Node {
    fn i(&mut self, name: &str, v: i64) -> &mut Self {
        self.attribute.push(Attribute {
            i: Some(v),
            r#type: Some(2),
            ..attr(name)
        });
        self
    }
    fn f(&mut self, name: &str, v: f32) -> &mut Self {
        self.attribute.push(Attribute {
            f: Some(v),
            r#type: Some(1),
            ..attr(name)
        });
        self
    }
    fn ints(&mut self, name: &str, v: &[i64]) -> &mut Self {
        self.attribute.push(Attribute {
            ints: v.to_vec(),
            r#type: Some(7),
            ..attr(name)
        });
        self
    }
    fn s(&mut self, name: &str, v: &str) -> &mut Self {
        self.attribute.push(Attribute {
            s: Some(v.as_bytes().to_vec()),
            r#type: Some(3),
            ..attr(name)
        });
        self
    }
    fn g(&mut self, name: &str, g: Graph) -> &mut Self {
        self.attribute.push(Attribute {
            g: Some(g),
            r#type: Some(5),
            ..attr(name)
        });
        self
    }
    fn domain(&mut self, d: &str) -> &mut Self {
        self.domain = Some(d.to_owned());
        self
    }
    fn unnamed(&mut self) -> &mut Self {
        self.name = None;
        self
    }
}

impl B {
    fn new(inputs: &[&str], outputs: &[&str]) -> Self {
        let mut b = B::default();
        b.g.input = inputs.iter().map(|n| vi(n)).collect();
        b.g.output = outputs.iter().map(|n| vi(n)).collect();
        b
    }
    /// An f32 initializer.
    fn w(&mut self, name: &str, dims: &[i64]) -> &mut Self {
        self.wt(name, dims, 1)
    }
    /// An initializer of `dtype`.
    fn wt(&mut self, name: &str, dims: &[i64], dtype: i32) -> &mut Self {
        self.g.initializer.push(TensorHeader {
            dims: dims.into(),
            data_type: Some(dtype),
            name: name.into(),
        });
        self
    }
    fn n(&mut self, op: &str, inputs: &[&str], outputs: &[&str]) -> &mut Node {
        self.g.node.push(Node {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: outputs.iter().map(|s| (*s).to_owned()).collect(),
            name: Some(outputs.first().copied().unwrap_or(op).to_owned()),
            op_type: Some(op.to_owned()),
            ..Node::default()
        });
        self.g.node.last_mut().unwrap()
    }
    /// A `Constant` node holding one f32.
    fn konst(&mut self, out: &str, v: f32) -> &mut Self {
        self.n("Constant", &[], &[out]).attribute.push(Attribute {
            t: Some(scalar_tensor(v)),
            r#type: Some(4),
            ..attr("value")
        });
        self
    }
    fn graph(&self) -> Graph {
        self.g.clone()
    }
    fn model(&self) -> Model {
        Model {
            ir_version: Some(9),
            opset_import: vec![OperatorSetId {
                domain: Some(String::new()),
                version: Some(20),
            }],
            producer_name: Some("analysis-test".to_owned()),
            graph: Some(self.graph()),
        }
    }
}

/// Initializer values by (graph, name), as the loader would provide them.
#[derive(Default)]
struct Consts(HashMap<(String, String), Vec<f64>>);

impl Consts {
    fn with(mut self, name: &str, v: f64) -> Self {
        self.0.insert((String::new(), name.to_owned()), vec![v]);
        self
    }
}

impl ConstValues for Consts {
    fn small_values(&self, graph: &str, name: &str, max_len: usize) -> Option<Vec<f64>> {
        self.0
            .get(&(graph.to_owned(), name.to_owned()))
            .filter(|v| v.len() <= max_len)
            .cloned()
    }
}

/// Encode, decode (as the real pipeline does) and analyse.
fn run(b: &B, consts: &dyn ConstValues, compat: FanCompat) -> Analysis {
    let bytes = b.model().encode_to_vec();
    let model = Model::decode(&bytes[..]).expect("decode built model");
    analyze(&model, consts, &AnalysisOptions { compat })
}

/// Each tensor's (graph path, name), in the analysis's order.
fn graph_and_name(a: &Analysis) -> Vec<(&str, &str)> {
    a.tensors
        .iter()
        .map(|t| (t.graph.as_str(), t.name.as_str()))
        .collect()
}

fn run_true(b: &B) -> Analysis {
    run(b, &NoConstValues, FanCompat::True)
}

fn get<'a>(a: &'a Analysis, name: &str) -> &'a TensorInfo {
    a.tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name} in {:?}", a.tensors))
}

fn fans(fan_in: u64, fan_out: u64) -> Fans {
    Fans { fan_in, fan_out }
}

#[track_caller]
fn expect(a: &Analysis, name: &str, role: Option<Role>, act: Option<Activation>) {
    let t = get(a, name);
    assert_eq!(t.role, role, "{name}: {t:?}");
    assert_eq!(t.activation, act, "{name}: {t:?}");
}

#[test]
fn conv_grouped_and_depthwise() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("w1", &[8, 2, 3, 3])
        .w("b1", &[8])
        .w("dw", &[8, 1, 3, 3]);
    b.n("Conv", &["x", "w1", "b1"], &["c1"]).i("group", 2);
    b.n("Relu", &["c1"], &["r1"]);
    b.n("Conv", &["r1", "dw"], &["c2"]).i("group", 8);
    b.n("Tanh", &["c2"], &["y"]);
    let a = run_true(&b);
    let p = run(&b, &NoConstValues, FanCompat::PyTorch);
    expect(&a, "w1", Some(Role::Weight), Some(Activation::Relu));
    expect(&a, "b1", Some(Role::Bias), Some(Activation::Relu));
    expect(&a, "dw", Some(Role::Weight), Some(Activation::Tanh));
    // Grouped: in = C/g·k = 2·9, out = M/g·k = 4·9; PyTorch's out ignores groups: 8·9.
    assert_eq!(get(&a, "w1").fans, Some(fans(18, 36)));
    assert_eq!(get(&p, "w1").fans, Some(fans(18, 72)));
    // Depthwise: 9 in, 9 out; PyTorch 9, 72.
    assert_eq!(get(&a, "dw").fans, Some(fans(9, 9)));
    assert_eq!(get(&p, "dw").fans, Some(fans(9, 72)));
    assert_eq!(get(&a, "b1").fans, None);
}

#[test]
fn conv_with_bad_group_is_untouched() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("w", &[6, 1, 3, 3]);
    b.n("Conv", &["x", "w"], &["y"]).i("group", 4);
    let a = run_true(&b);
    let t = get(&a, "w");
    assert_eq!(t.role, None);
    assert!(
        t.why_untouched().contains("group 4"),
        "{}",
        t.why_untouched()
    );
}

#[test]
fn conv_transpose_with_groups() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("wt", &[8, 3, 2, 2]).w("bt", &[6]);
    b.n("ConvTranspose", &["x", "wt", "bt"], &["c"])
        .i("group", 2)
        .ints("strides", &[2, 2]);
    b.n("LeakyRelu", &["c"], &["y"]).f("alpha", 0.2);
    let a = run_true(&b);
    let p = run(&b, &NoConstValues, FanCompat::PyTorch);
    expect(
        &a,
        "wt",
        Some(Role::Weight),
        Some(Activation::LeakyRelu(0.2)),
    );
    expect(&a, "bt", Some(Role::Bias), Some(Activation::LeakyRelu(0.2)));
    // W (C=8, M/g=3, 2, 2), g=2: in = C/g·4 = 16, out = 3·4 = 12.
    assert_eq!(get(&a, "wt").fans, Some(fans(16, 12)));
    // PyTorch: fan_in = shape[1]·4 = 12, fan_out = shape[0]·4 = 32.
    assert_eq!(get(&p, "wt").fans, Some(fans(12, 32)));
}

#[test]
fn gemm_trans_a_and_b() {
    let mut b = B::new(&["x", "x2", "x3"], &["y1", "y2", "y3"]);
    b.w("bt", &[5, 3])
        .w("c", &[5])
        .w("at", &[4, 6])
        .w("bn", &[3, 5])
        .w("nb", &[5]);
    // B (N=5, K=3) with transB: in 3, out 5.
    b.n("Gemm", &["x", "bt", "c"], &["g1"]).i("transB", 1);
    b.n("Sigmoid", &["g1"], &["y1"]);
    // A as the weight, transA: stored (K=4, M=6): in 4, out 6.
    b.n("Gemm", &["at", "x2"], &["g2"]).i("transA", 1);
    b.n("Softmax", &["g2"], &["y2"]);
    // Plain B (K=3, N=5) without C; the Add after it carries the bias.
    b.n("Gemm", &["x3", "bn"], &["g3"]);
    b.n("Add", &["g3", "nb"], &["a3"]);
    b.n("Relu", &["a3"], &["y3"]);
    let a = run_true(&b);
    expect(&a, "bt", Some(Role::Weight), Some(Activation::Sigmoid));
    expect(&a, "c", Some(Role::Bias), Some(Activation::Sigmoid));
    expect(&a, "at", Some(Role::Weight), Some(Activation::Softmax));
    expect(&a, "bn", Some(Role::Weight), Some(Activation::Relu));
    expect(&a, "nb", Some(Role::Bias), Some(Activation::Relu));
    assert_eq!(get(&a, "bt").fans, Some(fans(3, 5)));
    assert_eq!(get(&a, "at").fans, Some(fans(4, 6)));
    assert_eq!(get(&a, "bn").fans, Some(fans(3, 5)));
}

#[test]
fn packed_projections_get_per_part_fans() {
    let mut b = B::new(
        &["x"],
        &[
            "q", "k", "v", "s0", "s1", "g", "u", "r0", "r1", "n0", "n1", "o", "t0", "t1", "t2",
        ],
    );
    // PyTorch's MHA export: MatMul → Add(bias) → Reshape → Unsqueeze → Transpose → Squeeze →
    // Gather(0), Gather(1), Gather(2) on axis 0.
    b.w("qkv", &[32, 96])
        .w("qkv_b", &[96])
        .w("shape", &[4])
        .w("ax", &[1]);
    b.n("MatMul", &["x", "qkv"], &["m"]);
    b.n("Add", &["qkv_b", "m"], &["a"]);
    b.n("Reshape", &["a", "shape"], &["r"]);
    b.n("Unsqueeze", &["r", "ax"], &["un"]);
    b.n("Transpose", &["un"], &["tr"])
        .ints("perm", &[3, 1, 2, 0, 4]);
    b.n("Squeeze", &["tr", "ax"], &["sq"]);
    b.n("Shape", &["sq"], &["shp"]);
    b.konst("i0", 0.0).konst("i1", 1.0).konst("i2", 2.0);
    b.n("Gather", &["sq", "i2"], &["v"]);
    b.n("Gather", &["sq", "i0"], &["q"]);
    b.n("Gather", &["sq", "i1"], &["k"]);
    // GPT-2 style: Gemm (transB) → Split into 2 (gate and up halves).
    b.w("gu", &[128, 32]);
    b.n("Gemm", &["x", "gu"], &["h"]).i("transB", 1);
    b.n("Split", &["h"], &["s0", "s1"]).i("axis", -1);
    // Three Slices of one output.
    b.w("sl", &[32, 48]);
    b.n("MatMul", &["x", "sl"], &["hs"]);
    b.konst("z", 0.0);
    for t in ["t0", "t1", "t2"] {
        b.n("Slice", &["hs", "z", "z"], &[t]);
    }
    // Not packed: two Gathers of the same index; a residual (dynamic) Add before the cut; a
    // cut that does not divide fan_out; a plain layer with one consumer.
    b.w("dup", &[32, 64]);
    b.n("MatMul", &["x", "dup"], &["hd"]);
    b.n("Gather", &["hd", "i0"], &["g"]);
    b.n("Gather", &["hd", "i0"], &["u"]);
    b.w("res", &[32, 64]);
    b.n("MatMul", &["x", "res"], &["hr"]);
    b.n("Add", &["hr", "x"], &["hra"]);
    b.n("Split", &["hra"], &["r0", "r1"]);
    b.w("odd", &[32, 63]);
    b.n("MatMul", &["x", "odd"], &["ho"]);
    b.n("Split", &["ho"], &["n0", "n1"]);
    b.w("plain", &[32, 64]);
    b.n("MatMul", &["x", "plain"], &["hp"]);
    b.n("Relu", &["hp"], &["o"]);

    let a = run_true(&b);
    let qkv = get(&a, "qkv");
    assert_eq!(qkv.fans, Some(fans(32, 32)), "{qkv:?}");
    let note = qkv.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("packed projection") && note.contains("3 parts"),
        "{note}"
    );
    assert!(
        note.contains("Gather of indices 0..2 on axis 0 after Add → Reshape"),
        "{note}"
    );
    assert_eq!(get(&a, "qkv_b").role, Some(Role::Bias));
    assert_eq!(get(&a, "gu").fans, Some(fans(32, 64)));
    assert_eq!(get(&a, "sl").fans, Some(fans(32, 16)));
    for (name, out) in [("dup", 64), ("res", 64), ("odd", 63), ("plain", 64)] {
        let t = get(&a, name);
        assert_eq!(t.fans, Some(fans(32, out)), "{name}: {t:?}");
        assert!(t.note.is_none(), "{name}: {:?}", t.note);
    }
    // PyTorch's convention keeps the packed matrix's fans (pytorch#166378).
    let p = run(&b, &NoConstValues, FanCompat::PyTorch);
    assert_eq!(get(&p, "qkv").fans, Some(fans(32, 96)));
    assert_eq!(get(&p, "gu").fans, Some(fans(32, 128)));
    assert!(get(&p, "qkv").note.is_none());
}

#[test]
fn matmul_as_a_as_b_and_batched() {
    let mut b = B::new(&["x", "q", "k"], &["y1", "y2", "y3", "y4", "y5"]);
    b.w("wb", &[3, 5])
        .w("bias", &[5])
        .w("wa", &[7, 3])
        .w("w3", &[2, 3, 5]);
    b.w("vec", &[3]).w("mask", &[4, 4]).w("wrong", &[4]);
    b.n("MatMul", &["x", "wb"], &["m1"]);
    b.n("Add", &["bias", "m1"], &["a1"]);
    b.n("Gelu", &["a1"], &["y1"]);
    b.n("MatMul", &["wa", "x"], &["m2"]);
    b.n("Relu", &["m2"], &["y2"]);
    b.n("MatMul", &["x", "w3"], &["y3"]);
    b.n("MatMul", &["x", "vec"], &["y4"]);
    // Attention scores plus a mask: a MatMul of two activations has no weight, so no bias.
    b.n("MatMul", &["q", "k"], &["s"]);
    b.n("Add", &["s", "mask"], &["sm"]);
    b.n("Softmax", &["sm"], &["y5"]);
    // An Add operand whose size is not the layer's output width is not its bias.
    b.n("MatMul", &["x", "wa"], &["m6"]);
    b.n("Add", &["m6", "wrong"], &["y6"]);
    let a = run_true(&b);
    expect(&a, "wb", Some(Role::Weight), Some(Activation::Gelu));
    expect(&a, "bias", Some(Role::Bias), Some(Activation::Gelu));
    assert_eq!(get(&a, "wb").fans, Some(fans(3, 5)));
    // A (M=7, K=3): in 3, out 7. Also read as B by m6 → the first consumer's fans are used.
    let wa = get(&a, "wa");
    assert_eq!(wa.role, Some(Role::Weight));
    assert_eq!(wa.fans, Some(fans(3, 7)));
    assert_eq!(wa.activation, Some(Activation::Relu));
    assert!(
        wa.note.as_deref().unwrap().contains("implies fans"),
        "{wa:?}"
    );
    // Batched B (2, K=3, N=5): batch axes do not count.
    expect(&a, "w3", Some(Role::Weight), Some(Activation::Linear));
    assert_eq!(get(&a, "w3").fans, Some(fans(3, 5)));
    assert_eq!(get(&a, "vec").role, None);
    let mask = get(&a, "mask");
    assert_eq!(mask.role, None);
    assert!(
        mask.why_untouched().contains("not weights"),
        "{}",
        mask.why_untouched()
    );
    let wrong = get(&a, "wrong");
    assert_eq!(wrong.role, None);
    assert!(
        wrong.why_untouched().contains("not a per-feature bias"),
        "{wrong:?}"
    );
}

#[test]
fn transposed_and_cast_weights_resolve_to_their_consumer() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("wt", &[5, 3]).wt("w16", &[5, 4], 10);
    b.n("Transpose", &["wt"], &["wtt"]).ints("perm", &[1, 0]);
    b.n("MatMul", &["x", "wtt"], &["m"]);
    b.n("Cast", &["w16"], &["w32"]).i("to", 1);
    b.n("MatMul", &["m", "w32"], &["m2"]);
    b.n("Tanh", &["m2"], &["y"]);
    let a = run_true(&b);
    let t = get(&a, "wt");
    // The MatMul sees (3, 5): in 3, out 5.
    assert_eq!((t.role, t.fans), (Some(Role::Weight), Some(fans(3, 5))));
    assert_eq!(t.consumers[0].via, vec!["Transpose 'wtt'".to_owned()]);
    assert_eq!(t.activation, Some(Activation::Linear));
    let h = get(&a, "w16");
    assert_eq!((h.role, h.fans), (Some(Role::Weight), Some(fans(5, 4))));
    assert_eq!(h.activation, Some(Activation::Tanh));
}

#[test]
fn recurrent_bidirectional_lstm_gru_rnn() {
    let (h, i) = (6i64, 5i64);
    let mut b = B::new(&["x"], &["y1", "y2", "y3"]);
    b.w("lw", &[2, 4 * h, i])
        .w("lr", &[2, 4 * h, h])
        .w("lb", &[2, 8 * h]);
    b.w("h0", &[2, 1, h]).w("peep", &[2, 3 * h]);
    b.w("gw", &[2, 3 * h, i])
        .w("gr", &[2, 3 * h, h])
        .w("gb", &[2, 6 * h]);
    b.w("rw", &[2, h, i])
        .w("rr", &[2, h, h])
        .w("rb", &[2, 2 * h]);
    b.w("bad", &[1, 4 * h, i]);
    b.n(
        "LSTM",
        &["x", "lw", "lr", "lb", "", "h0", "", "peep"],
        &["y1"],
    )
    .i("hidden_size", h)
    .s("direction", "bidirectional");
    b.n("GRU", &["x", "gw", "gr", "gb"], &["y2"])
        .i("hidden_size", h)
        .s("direction", "bidirectional")
        .i("linear_before_reset", 1);
    b.n("RNN", &["x", "rw", "rr", "rb"], &["y3"])
        .i("hidden_size", h)
        .s("direction", "bidirectional");
    // W of one direction fed to a bidirectional LSTM: the shape contradicts the node.
    b.n("LSTM", &["x", "bad"], &["y4"])
        .i("hidden_size", h)
        .s("direction", "bidirectional");
    let a = run_true(&b);
    let p = run(&b, &NoConstValues, FanCompat::PyTorch);
    let cases = [
        (
            "lw",
            RecurrentOp::Lstm,
            4u32,
            RecurrentPart::W,
            Some(fans(5, 6)),
            "iofc",
        ),
        (
            "lr",
            RecurrentOp::Lstm,
            4,
            RecurrentPart::R,
            Some(fans(6, 6)),
            "iofc",
        ),
        ("lb", RecurrentOp::Lstm, 4, RecurrentPart::B, None, "iofc"),
        (
            "gw",
            RecurrentOp::Gru,
            3,
            RecurrentPart::W,
            Some(fans(5, 6)),
            "zrh",
        ),
        (
            "gr",
            RecurrentOp::Gru,
            3,
            RecurrentPart::R,
            Some(fans(6, 6)),
            "zrh",
        ),
        ("gb", RecurrentOp::Gru, 3, RecurrentPart::B, None, "zrh"),
        (
            "rw",
            RecurrentOp::Rnn,
            1,
            RecurrentPart::W,
            Some(fans(5, 6)),
            "h",
        ),
        (
            "rr",
            RecurrentOp::Rnn,
            1,
            RecurrentPart::R,
            Some(fans(6, 6)),
            "h",
        ),
        ("rb", RecurrentOp::Rnn, 1, RecurrentPart::B, None, "h"),
    ];
    for (name, op, gates, which, gate_fans, order) in cases {
        let t = get(&a, name);
        let role = if which == RecurrentPart::B {
            Role::Bias
        } else {
            Role::RecurrentWeight
        };
        assert_eq!(t.role, Some(role), "{name}");
        assert_eq!(t.activation, Some(Activation::Recurrent), "{name}");
        let l = t.recurrent.as_ref().unwrap();
        assert_eq!(
            (l.op, l.gates, l.which, l.directions, l.hidden, l.input_size),
            (op, gates, which, 2, 6, Some(5)),
            "{name}"
        );
        assert_eq!((l.gate_fans, l.gate_order), (gate_fans, order), "{name}");
        assert_eq!(t.fans, gate_fans, "{name}");
        // PyTorch mode: fan_out over all gates of a direction (G·H rows).
        let torch = gate_fans.map(|f| Fans {
            fan_in: f.fan_in,
            fan_out: f.fan_out * u64::from(gates),
        });
        assert_eq!(get(&p, name).fans, torch, "{name}");
    }
    assert!(get(&a, "h0").why_untouched().contains("initial_h"));
    assert!(get(&a, "peep").why_untouched().contains("peephole"));
    assert!(get(&a, "bad").why_untouched().contains("directions"));
}

#[test]
fn gather_embedding() {
    let mut b = B::new(&["ids"], &["y", "y2", "y3"]);
    b.w("emb", &[10, 4])
        .w("table", &[5, 3])
        .wt("itable", &[5, 3], 7);
    b.n("Gather", &["emb", "ids"], &["e"]);
    b.n("Relu", &["e"], &["y"]);
    b.konst("idx", 2.0);
    b.n("Gather", &["table", "idx"], &["y2"]);
    b.n("Gather", &["itable", "ids"], &["y3"]);
    let a = run_true(&b);
    let p = run(&b, &NoConstValues, FanCompat::PyTorch);
    expect(&a, "emb", Some(Role::Embedding), Some(Activation::Relu));
    assert_eq!(get(&a, "emb").fans, Some(fans(1, 4)));
    assert_eq!(get(&p, "emb").fans, Some(fans(4, 10)));
    let t = get(&a, "table");
    assert_eq!(t.role, None);
    assert!(t.why_untouched().contains("constant indices"), "{t:?}");
    assert!(get(&a, "itable").why_untouched().contains("int64"));
}

#[test]
fn normalization_parameters_and_prelu() {
    let mut b = B::new(&["x"], &["y"]);
    for n in [
        "bs", "bb", "bm", "bv", "is", "ib", "ls", "lb", "gs", "gb", "rs",
    ] {
        b.w(n, &[4]);
    }
    for n in ["ks", "kb", "kbias", "slope"] {
        b.w(n, &[4]);
    }
    b.n(
        "BatchNormalization",
        &["x", "bs", "bb", "bm", "bv"],
        &["n1"],
    );
    b.n("InstanceNormalization", &["n1", "is", "ib"], &["n2"]);
    b.n("LayerNormalization", &["n2", "ls", "lb"], &["n3"]);
    b.n("GroupNormalization", &["n3", "gs", "gb"], &["n4"])
        .i("num_groups", 2);
    b.n("RMSNormalization", &["n4", "rs"], &["n5"]);
    b.n(
        "SkipLayerNormalization",
        &["n5", "x", "ks", "kb", "kbias"],
        &["n6"],
    )
    .domain("com.microsoft");
    b.n("PRelu", &["n6", "slope"], &["y"]);
    let a = run_true(&b);
    let prelu = Some(Activation::PRelu);
    for (name, role) in [
        ("bs", Role::NormScale),
        ("bb", Role::NormShift),
        ("bm", Role::NormStat(NormStatKind::Mean)),
        ("bv", Role::NormStat(NormStatKind::Var)),
        ("is", Role::NormScale),
        ("ib", Role::NormShift),
        ("ls", Role::NormScale),
        ("lb", Role::NormShift),
        ("gs", Role::NormScale),
        ("gb", Role::NormShift),
        ("rs", Role::NormScale),
        ("ks", Role::NormScale),
        ("kb", Role::NormShift),
        ("kbias", Role::Bias),
        ("slope", Role::PreluSlope),
    ] {
        expect(&a, name, Some(role), prelu);
        assert_eq!(get(&a, name).fans, None);
    }
}

/// `x → Gemm(W) → [activation built by `f` from "h" to "y"] → y`; the activation of W.
fn activation_after(
    f: impl FnOnce(&mut B),
    consts: &dyn ConstValues,
) -> (Option<Activation>, Analysis) {
    let mut b = B::new(&["x"], &["y"]);
    b.w("W", &[4, 4]);
    b.n("Gemm", &["x", "W"], &["h"]).i("transB", 1);
    f(&mut b);
    let a = run(&b, consts, FanCompat::True);
    (get(&a, "W").activation, a)
}

/// Sets attributes or the domain of the activation node under test.
type NodeSetup = Box<dyn Fn(&mut Node)>;
/// Builds the activation under test from "h" to "y".
type Build = Box<dyn Fn(&mut B)>;

#[test]
fn every_single_op_activation() {
    use Activation as A;
    let cases: Vec<(&str, NodeSetup, A)> = vec![
        ("Relu", Box::new(|_| {}), A::Relu),
        ("ThresholdedRelu", Box::new(|_| {}), A::Relu),
        ("LeakyRelu", Box::new(|_| {}), A::LeakyRelu(0.01)),
        (
            "LeakyRelu",
            Box::new(|n| {
                n.f("alpha", 0.3);
            }),
            A::LeakyRelu(0.3),
        ),
        ("Elu", Box::new(|_| {}), A::Elu(1.0)),
        (
            "Elu",
            Box::new(|n| {
                n.f("alpha", 0.5);
            }),
            A::Elu(0.5),
        ),
        ("Selu", Box::new(|_| {}), A::Selu),
        ("Celu", Box::new(|_| {}), A::Celu),
        ("Tanh", Box::new(|_| {}), A::Tanh),
        ("Sigmoid", Box::new(|_| {}), A::Sigmoid),
        ("HardSigmoid", Box::new(|_| {}), A::HardSigmoid),
        ("HardSwish", Box::new(|_| {}), A::HardSwish),
        ("Gelu", Box::new(|_| {}), A::Gelu),
        (
            "Gelu",
            Box::new(|n| {
                n.s("approximate", "tanh");
            }),
            A::Gelu,
        ),
        (
            "FastGelu",
            Box::new(|n| {
                n.domain("com.microsoft");
            }),
            A::Gelu,
        ),
        ("Softplus", Box::new(|_| {}), A::Softplus),
        ("Softsign", Box::new(|_| {}), A::Softsign),
        ("Mish", Box::new(|_| {}), A::Mish),
        ("Softmax", Box::new(|_| {}), A::Softmax),
        ("LogSoftmax", Box::new(|_| {}), A::Softmax),
        // Ops outside the rules, and unknown domains, end the walk as linear.
        ("Abs", Box::new(|_| {}), A::Linear),
        (
            "Relu",
            Box::new(|n| {
                n.domain("com.example");
            }),
            A::Linear,
        ),
    ];
    for (op, setup, want) in cases {
        let (got, _) = activation_after(
            |b| {
                let n = b.n(op, &["h"], &["y"]);
                setup(n);
            },
            &NoConstValues,
        );
        assert_eq!(got, Some(want), "{op}");
    }
    // PRelu, with the slope's own role.
    let (got, a) = activation_after(
        |b| {
            b.w("slope", &[4]);
            b.n("PRelu", &["h", "slope"], &["y"]);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::PRelu));
    assert_eq!(get(&a, "slope").role, Some(Role::PreluSlope));
}

#[test]
fn clip_and_max_as_rectifiers() {
    use Activation as A;
    // Bounds as initializers, known through ConstValues.
    let consts = Consts::default()
        .with("lo", 0.0)
        .with("hi", 6.0)
        .with("m1", -1.0);
    let (got, a) = activation_after(
        |b| {
            b.w("lo", &[]).w("hi", &[]);
            b.n("Clip", &["h", "lo", "hi"], &["y"]);
        },
        &consts,
    );
    assert_eq!(got, Some(A::Relu6));
    assert!(get(&a, "lo").why_untouched().contains("min bound"));
    // The same bounds with values unknown: not a recognised rectifier.
    let (got, _) = activation_after(
        |b| {
            b.w("lo", &[]).w("hi", &[]);
            b.n("Clip", &["h", "lo", "hi"], &["y"]);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::Linear));
    // Bounds as Constant nodes.
    let (got, _) = activation_after(
        |b| {
            b.konst("c0", 0.0).konst("c6", 6.0);
            b.n("Clip", &["h", "c0", "c6"], &["y"]);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::Relu6));
    // Opset < 11: bounds as attributes.
    let (got, _) = activation_after(
        |b| {
            b.n("Clip", &["h"], &["y"]).f("min", 0.0).f("max", 6.0);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::Relu6));
    // Clip(0, ∞) (max omitted) and Max(x, 0) are relu.
    let (got, _) = activation_after(
        |b| {
            b.konst("c0", 0.0);
            b.n("Clip", &["h", "c0"], &["y"]);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::Relu));
    let (got, _) = activation_after(
        |b| {
            b.konst("c0", 0.0);
            b.n("Max", &["h", "c0"], &["y"]);
        },
        &NoConstValues,
    );
    assert_eq!(got, Some(A::Relu));
    // Clip(-1, 6) is not a rectifier.
    let (got, _) = activation_after(
        |b| {
            b.w("m1", &[1]).konst("c6", 6.0);
            b.n("Clip", &["h", "m1", "c6"], &["y"]);
        },
        &consts,
    );
    assert_eq!(got, Some(A::Linear));
}

#[test]
fn composite_activations() {
    use Activation as A;
    let sqrt2 = std::f32::consts::SQRT_2;
    let cases: Vec<(&str, Build, A)> = vec![
        (
            "SiLU as Sigmoid + Mul",
            Box::new(|b| {
                b.n("Sigmoid", &["h"], &["s"]);
                b.n("Mul", &["h", "s"], &["y"]);
            }),
            A::Silu,
        ),
        (
            "SiLU, operands swapped",
            Box::new(|b| {
                b.n("Sigmoid", &["h"], &["s"]);
                b.n("Mul", &["s", "h"], &["y"]);
            }),
            A::Silu,
        ),
        (
            "QuickGelu x·σ(1.702x)",
            Box::new(|b| {
                b.konst("k", 1.702);
                b.n("Mul", &["h", "k"], &["hk"]);
                b.n("Sigmoid", &["hk"], &["s"]);
                b.n("Mul", &["h", "s"], &["y"]);
            }),
            A::Gelu,
        ),
        (
            "Gelu erf form (TorchScript: Div √2, Erf, Add 1, Mul x, Mul 0.5)",
            Box::new(move |b| {
                b.konst("r2", sqrt2).konst("one", 1.0).konst("half", 0.5);
                b.n("Div", &["h", "r2"], &["d"]);
                b.n("Erf", &["d"], &["e"]);
                b.n("Add", &["e", "one"], &["e1"]);
                b.n("Mul", &["h", "e1"], &["m"]);
                b.n("Mul", &["m", "half"], &["y"]);
            }),
            A::Gelu,
        ),
        (
            "Gelu erf form (tf2onnx: Mul 1/√2, Mul x·0.5 first)",
            Box::new(move |b| {
                b.konst("ir2", 1.0 / sqrt2)
                    .konst("one", 1.0)
                    .konst("half", 0.5);
                b.n("Mul", &["h", "ir2"], &["d"]);
                b.n("Erf", &["d"], &["e"]);
                b.n("Add", &["one", "e"], &["e1"]);
                b.n("Mul", &["h", "half"], &["hh"]);
                b.n("Mul", &["hh", "e1"], &["y"]);
            }),
            A::Gelu,
        ),
        (
            "erf with a wrong scale is not Gelu",
            Box::new(|b| {
                b.konst("k", 3.0).konst("one", 1.0);
                b.n("Div", &["h", "k"], &["d"]);
                b.n("Erf", &["d"], &["e"]);
                b.n("Add", &["e", "one"], &["e1"]);
                b.n("Mul", &["h", "e1"], &["y"]);
            }),
            A::Linear,
        ),
        (
            "Gelu tanh form with Pow",
            Box::new(|b| {
                b.konst("three", 3.0)
                    .konst("c", 0.044715)
                    .konst("s", 0.797_884_6);
                b.konst("one", 1.0).konst("half", 0.5);
                b.n("Pow", &["h", "three"], &["p"]);
                b.n("Mul", &["p", "c"], &["pc"]);
                b.n("Add", &["h", "pc"], &["inner"]);
                b.n("Mul", &["inner", "s"], &["z"]);
                b.n("Tanh", &["z"], &["t"]);
                b.n("Add", &["t", "one"], &["t1"]);
                b.n("Mul", &["half", "t1"], &["ht"]);
                b.n("Mul", &["h", "ht"], &["y"]);
            }),
            A::Gelu,
        ),
        (
            "Gelu tanh form with x·x·x",
            Box::new(|b| {
                b.konst("c", 0.044715)
                    .konst("s", 0.797_884_6)
                    .konst("one", 1.0);
                b.konst("half", 0.5);
                b.n("Mul", &["h", "h"], &["sq"]);
                b.n("Mul", &["sq", "h"], &["cube"]);
                b.n("Mul", &["cube", "c"], &["pc"]);
                b.n("Add", &["h", "pc"], &["inner"]);
                b.n("Mul", &["inner", "s"], &["z"]);
                b.n("Tanh", &["z"], &["t"]);
                b.n("Add", &["t", "one"], &["t1"]);
                b.n("Mul", &["h", "half"], &["hh"]);
                b.n("Mul", &["hh", "t1"], &["y"]);
            }),
            A::Gelu,
        ),
        (
            "Mish as x·tanh(softplus(x))",
            Box::new(|b| {
                b.n("Softplus", &["h"], &["sp"]);
                b.n("Tanh", &["sp"], &["t"]);
                b.n("Mul", &["h", "t"], &["y"]);
            }),
            A::Mish,
        ),
        (
            "Mish with softplus as log(1+exp(x))",
            Box::new(|b| {
                b.konst("one", 1.0);
                b.n("Exp", &["h"], &["ex"]);
                b.n("Add", &["ex", "one"], &["ex1"]);
                b.n("Log", &["ex1"], &["sp"]);
                b.n("Tanh", &["sp"], &["t"]);
                b.n("Mul", &["t", "h"], &["y"]);
            }),
            A::Mish,
        ),
        (
            "HardSwish as x·HardSigmoid(x)",
            Box::new(|b| {
                b.n("HardSigmoid", &["h"], &["hs"])
                    .f("alpha", 1.0 / 6.0)
                    .f("beta", 0.5);
                b.n("Mul", &["h", "hs"], &["y"]);
            }),
            A::HardSwish,
        ),
        (
            "HardSwish as x·relu6(x+3)/6",
            Box::new(|b| {
                b.konst("three", 3.0).konst("zero", 0.0).konst("six", 6.0);
                b.n("Add", &["h", "three"], &["h3"]);
                b.n("Clip", &["h3", "zero", "six"], &["c"]);
                b.n("Div", &["c", "six"], &["c6"]);
                b.n("Mul", &["h", "c6"], &["y"]);
            }),
            A::HardSwish,
        ),
        (
            "Softsign as x/(1+|x|)",
            Box::new(|b| {
                b.konst("one", 1.0);
                b.n("Abs", &["h"], &["ab"]);
                b.n("Add", &["ab", "one"], &["ab1"]);
                b.n("Div", &["h", "ab1"], &["y"]);
            }),
            A::Softsign,
        ),
        (
            "unknown self-gating x·tanh(x)",
            Box::new(|b| {
                b.n("Tanh", &["h"], &["t"]);
                b.n("Mul", &["h", "t"], &["y"]);
            }),
            A::Linear,
        ),
        (
            "decomposed LayerNorm, then Relu",
            Box::new(|b| {
                b.konst("two", 2.0).konst("eps", 1e-5);
                b.w("gamma", &[4]).w("beta", &[4]);
                b.n("ReduceMean", &["h"], &["mu"]);
                b.n("Sub", &["h", "mu"], &["d"]);
                b.n("Pow", &["d", "two"], &["d2"]);
                b.n("ReduceMean", &["d2"], &["var"]);
                b.n("Add", &["var", "eps"], &["ve"]);
                b.n("Sqrt", &["ve"], &["sd"]);
                b.n("Div", &["d", "sd"], &["nrm"]);
                b.n("Mul", &["nrm", "gamma"], &["sc"]);
                b.n("Add", &["sc", "beta"], &["sh"]);
                b.n("Relu", &["sh"], &["y"]);
            }),
            A::Relu,
        ),
        (
            "decomposed RMSNorm, then SiLU",
            Box::new(|b| {
                b.konst("eps", 1e-6);
                b.n("Mul", &["h", "h"], &["sq"]);
                b.n("ReduceMean", &["sq"], &["ms"]);
                b.n("Add", &["ms", "eps"], &["mse"]);
                b.n("Sqrt", &["mse"], &["rms"]);
                b.n("Reciprocal", &["rms"], &["inv"]);
                b.n("Mul", &["h", "inv"], &["nrm"]);
                b.n("Sigmoid", &["nrm"], &["s"]);
                b.n("Mul", &["nrm", "s"], &["y"]);
            }),
            A::Silu,
        ),
    ];
    for (what, build, want) in cases {
        let (got, a) = activation_after(|b| build(b), &NoConstValues);
        assert_eq!(got, Some(want), "{what}: {:?}", get(&a, "W"));
    }
}

#[test]
fn gelu_constants_checked_through_const_values() {
    // Gelu erf with the √2 divisor as an initializer: accepted when the value is √2,
    // rejected when it is known to be something else, accepted by structure when unknown.
    let build = |b: &mut B| {
        b.w("r2", &[]);
        b.konst("one", 1.0);
        b.n("Div", &["h", "r2"], &["d"]);
        b.n("Erf", &["d"], &["e"]);
        b.n("Add", &["e", "one"], &["e1"]);
        b.n("Mul", &["h", "e1"], &["y"]);
    };
    let good = Consts::default().with("r2", std::f64::consts::SQRT_2);
    let bad = Consts::default().with("r2", 2.0);
    assert_eq!(activation_after(build, &good).0, Some(Activation::Gelu));
    assert_eq!(activation_after(build, &bad).0, Some(Activation::Linear));
    assert_eq!(
        activation_after(build, &NoConstValues).0,
        Some(Activation::Gelu)
    );
}

#[test]
fn walk_passes_through_residuals_norms_pools_and_layout_ops() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("w", &[4, 4, 3, 3]).w("scale", &[]);
    for n in ["s", "sh", "m", "v"] {
        b.w(n, &[4]);
    }
    b.wt("shape", &[2], 7).wt("axes", &[1], 7);
    b.n("Conv", &["x", "w"], &["c"]);
    b.n("Shape", &["c"], &["cs"]);
    b.n("BatchNormalization", &["c", "s", "sh", "m", "v"], &["bn"]);
    b.n("Add", &["bn", "x"], &["res"]);
    b.n("Sum", &["res", "x"], &["res2"]);
    b.n("MaxPool", &["res2"], &["mp"])
        .ints("kernel_shape", &[2, 2]);
    b.n("Mul", &["mp", "scale"], &["scaled"]);
    b.n("Dropout", &["scaled"], &["dr"]);
    b.n("Cast", &["dr"], &["ca"]).i("to", 1);
    b.n("Transpose", &["ca"], &["tr"]);
    b.n("Reshape", &["tr", "shape"], &["rs"]);
    b.n("Unsqueeze", &["rs", "axes"], &["us"]);
    b.n("Squeeze", &["us", "axes"], &["sq"]);
    b.n("Split", &["sq"], &["sp0", "sp1"]);
    b.n("Concat", &["sp0", "sp1"], &["cc"]).i("axis", 0);
    b.n("Flatten", &["cc"], &["fl"]);
    b.n("GlobalAveragePool", &["fl"], &["gp"]);
    b.n("Identity", &["gp"], &["id"]);
    b.n("Tanh", &["id"], &["y"]);
    let a = run_true(&b);
    assert_eq!(get(&a, "w").activation, Some(Activation::Tanh));
    assert_eq!(get(&a, "w").note, None);
    for n in ["shape", "axes", "scale"] {
        assert_eq!(get(&a, n).role, None, "{n}");
    }
    assert!(get(&a, "shape").why_untouched().contains("int64"));
    assert!(get(&a, "scale").why_untouched().contains("scalar"));
}

#[test]
fn walk_stops_at_outputs_layers_and_gating() {
    let mut b = B::new(&["x", "g"], &["y1", "y2", "y3"]);
    b.w("w1", &[4, 4])
        .w("w2", &[4, 4])
        .w("w3", &[4, 4])
        .w("w4", &[4, 4]);
    b.n("MatMul", &["x", "w1"], &["y1"]); // a graph output
    b.n("MatMul", &["x", "w2"], &["m2"]);
    b.n("MatMul", &["m2", "w3"], &["m3"]); // another weight layer
    b.n("Relu", &["m3"], &["y2"]);
    b.n("MatMul", &["x", "w4"], &["m4"]);
    b.n("Mul", &["m4", "g"], &["gated"]); // gated by another activation
    b.n("Sigmoid", &["gated"], &["y3"]);
    let a = run_true(&b);
    for w in ["w1", "w2", "w4"] {
        assert_eq!(get(&a, w).activation, Some(Activation::Linear), "{w}");
    }
    assert_eq!(get(&a, "w3").activation, Some(Activation::Relu));
}

#[test]
fn branches_that_disagree_are_reported() {
    let mut b = B::new(&["x"], &["h", "y", "z"]);
    b.w("w", &[4, 4]).w("v", &[4, 4]);
    // h is also a graph output: relu wins over linear, with a note.
    b.n("MatMul", &["x", "w"], &["h"]);
    b.n("Relu", &["h"], &["y"]);
    // Two different nonlinearities after one layer: the first (file order) wins.
    b.n("MatMul", &["x", "v"], &["k"]);
    b.n("Tanh", &["k"], &["t"]);
    b.n("Sigmoid", &["k"], &["s"]);
    b.n("Add", &["t", "s"], &["z"]);
    let a = run_true(&b);
    let w = get(&a, "w");
    assert_eq!(w.activation, Some(Activation::Relu));
    let note = w.note.as_deref().unwrap();
    assert!(note.contains("graph output 'h' → linear"), "{note}");
    let v = get(&a, "v");
    assert_eq!(v.activation, Some(Activation::Tanh));
    let note = v.note.as_deref().unwrap();
    assert!(note.contains("chose tanh"), "{note}");
}

#[test]
fn shared_weight_with_different_activations() {
    // The TorchScript pattern: one initializer, a second use routed through Identity.
    let mut b = B::new(&["x"], &["y1", "y2"]);
    b.w("w", &[4, 4]);
    b.n("Identity", &["w"], &["w_copy"]);
    b.n("MatMul", &["x", "w"], &["m1"]);
    b.n("Tanh", &["m1"], &["y1"]);
    b.n("MatMul", &["x", "w_copy"], &["m2"]);
    b.n("Relu", &["m2"], &["y2"]);
    let a = run_true(&b);
    let t = get(&a, "w");
    assert_eq!(t.role, Some(Role::Weight));
    assert_eq!(t.consumers.len(), 2);
    assert_eq!(t.consumers[0].node, "m1");
    assert_eq!(t.consumers[1].via, vec!["Identity 'w_copy'".to_owned()]);
    // The first consumer in file order wins; the note names both.
    assert_eq!(t.activation, Some(Activation::Tanh));
    let note = t.note.as_deref().unwrap();
    assert!(note.contains("consumers disagree"), "{note}");
    assert!(note.contains("chose tanh from MatMul 'm1'"), "{note}");
    assert!(note.contains("→ relu"), "{note}");
}

#[test]
fn role_precedence_between_consumers() {
    let mut b = B::new(&["x"], &["y1", "y2", "y3"]);
    b.w("w", &[4, 4]).w("c", &[4]);
    b.n("Gemm", &["x", "w", "c"], &["g"]);
    b.n("LayerNormalization", &["g", "w", "c"], &["y1"]);
    b.n("Mul", &["x", "w"], &["y2"]);
    b.n("Unknown", &["w"], &["y3"]);
    let a = run_true(&b);
    let w = get(&a, "w");
    assert_eq!(w.role, Some(Role::Weight));
    let note = w.note.as_deref().unwrap();
    assert!(note.contains("read"), "{note}");
    assert!(note.contains("norm_scale, but weight wins"), "{note}");
    assert!(
        note.contains("Unknown 'y3' input 0 is not a parameter slot"),
        "{note}"
    );
    let c = get(&a, "c");
    assert_eq!(c.role, Some(Role::Bias));
    assert!(
        c.note
            .as_deref()
            .unwrap()
            .contains("norm_shift, but bias wins")
    );
}

#[test]
fn untouched_tensors_say_why() {
    let mut b = B::new(&["x"], &["y", "k"]);
    b.w("unused", &[3])
        .w("exp", &[])
        .w("odd", &[4])
        .w("k", &[2]);
    b.wt("bools", &[4], 9);
    b.n("Pow", &["x", "exp"], &["p"]);
    b.n("Custom", &["p", "odd"], &["c"]).domain("com.example");
    b.n("Where", &["bools", "c", "x"], &["y"]);
    let a = run_true(&b);
    let why = |n: &str| get(&a, n).why_untouched().to_owned();
    assert!(why("unused").contains("no consumers"), "{}", why("unused"));
    assert!(why("exp").contains("exponent"), "{}", why("exp"));
    assert!(why("odd").contains("com.example"), "{}", why("odd"));
    assert!(why("bools").contains("bool"), "{}", why("bools"));
    assert!(why("k").contains("graph output"), "{}", why("k"));
    assert!(
        a.tensors
            .iter()
            .all(|t| t.role.is_none() && t.activation.is_none())
    );
}

#[test]
fn subgraphs_outer_scope_weights_and_paths() {
    // then: an outer weight and a local one; else: a local weight. Both outputs continue
    // after the If into the main graph's Sigmoid.
    let mut then_b = B::new(&[], &["t_out"]);
    then_b.w("t_local", &[4]);
    then_b.n("MatMul", &["x", "w_outer"], &["tm"]);
    then_b.n("Add", &["tm", "t_local"], &["ta"]);
    then_b.n("Relu", &["ta"], &["t_out"]);
    let mut else_b = B::new(&[], &["e_out"]);
    else_b.w("e_w", &[4, 4]);
    else_b.n("MatMul", &["x", "e_w"], &["e_out"]);

    // A nested If inside the else branch of a second, unnamed If.
    let mut inner = B::new(&[], &["i_out"]);
    inner.w("deep", &[4, 4]);
    inner.n("MatMul", &["x", "deep"], &["i_out"]);
    let mut outer_else = B::new(&[], &["o_out"]);
    outer_else.w("mid", &[4]);
    outer_else
        .n("If", &["cond"], &["o_out"])
        .g("then_branch", inner.graph())
        .g("else_branch", inner.graph());
    let mut outer_then = B::new(&[], &["p_out"]);
    outer_then.n("Identity", &["x"], &["p_out"]);

    let mut b = B::new(&["cond", "x"], &["y", "y2"]);
    b.w("w_outer", &[4, 4]);
    b.n("If", &["cond"], &["if_out"])
        .g("then_branch", then_b.graph())
        .g("else_branch", else_b.graph());
    b.n("Sigmoid", &["if_out"], &["y"]);
    b.w("after", &[4]);
    b.n("If", &["cond"], &["if2"])
        .unnamed()
        .g("then_branch", outer_then.graph())
        .g("else_branch", outer_else.graph());
    b.n("Add", &["if2", "after"], &["y2"]);
    let a = run_true(&b);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // Scanner order: main graph's initializers, then bodies in pre-order.
    let order = graph_and_name(&a);
    assert_eq!(
        order,
        vec![
            ("", "w_outer"),
            ("", "after"),
            ("/if_out.then_branch", "t_local"),
            ("/if_out.else_branch", "e_w"),
            ("/#2.else_branch", "mid"),
            ("/#2.else_branch/o_out.then_branch", "deep"),
            ("/#2.else_branch/o_out.else_branch", "deep"),
        ]
    );

    let w = get(&a, "w_outer");
    assert_eq!(w.role, Some(Role::Weight));
    assert_eq!(w.consumers[0].graph, "/if_out.then_branch");
    assert_eq!(w.activation, Some(Activation::Relu));
    // The local Add after the outer-scope MatMul is its bias.
    assert_eq!(get(&a, "t_local").role, Some(Role::Bias));
    // else: the MatMul output leaves the body and meets the main graph's Sigmoid.
    let e = get(&a, "e_w");
    assert_eq!(
        (e.role, e.activation),
        (Some(Role::Weight), Some(Activation::Sigmoid))
    );
    // Unused body initializer.
    assert_eq!(get(&a, "mid").role, None);
}

#[test]
fn graphs_attribute_paths_use_indices() {
    let mut body0 = B::new(&[], &["o"]);
    body0.w("b0", &[2, 2]);
    body0.n("MatMul", &["x", "b0"], &["o"]);
    let mut body1 = body0.graph();
    body1.initializer[0].name = "b1".into();
    body1.node[0].input[1] = "b1".to_owned();
    let mut b = B::new(&["x"], &["y"]);
    b.n("Multi", &["x"], &["y"]).attribute.push(Attribute {
        graphs: vec![body0.graph(), body1],
        r#type: Some(10),
        ..attr("bodies")
    });
    let a = run_true(&b);
    let order = graph_and_name(&a);
    assert_eq!(order, vec![("/y.bodies[0]", "b0"), ("/y.bodies[1]", "b1")]);
    assert_eq!(get(&a, "b1").role, Some(Role::Weight));
}

#[test]
fn malformed_graphs_warn_instead_of_failing() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("w", &[4, 4]);
    b.n("MatMul", &["missing", "w"], &["m"]);
    // A cycle: a → b → a.
    b.n("Add", &["m", "bb"], &["aa"]);
    b.n("Identity", &["aa"], &["bb"]);
    b.n("Relu", &["aa"], &["y"]);
    let a = run_true(&b);
    assert!(
        a.warnings.iter().any(|w| w.contains("'missing'")),
        "{:?}",
        a.warnings
    );
    assert_eq!(get(&a, "w").role, Some(Role::Weight));
    // IR < 4 lists initializers among the graph inputs: the initializer is what nodes read.
    let mut b = B::new(&["x", "w2"], &["y"]);
    b.w("w2", &[4, 4]);
    b.n("MatMul", &["x", "w2"], &["y"]);
    let a = run_true(&b);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(get(&a, "w2").role, Some(Role::Weight));
    // A repeated initializer name keeps one entry per initializer (aligned with the scanner)
    // and warns.
    let mut b = B::new(&["x"], &["y"]);
    b.w("dup", &[4, 4]).w("dup", &[4, 4]);
    b.n("MatMul", &["x", "dup"], &["y"]);
    let a = run_true(&b);
    assert_eq!(a.tensors.len(), 2);
    assert!(
        a.warnings.iter().any(|w| w.contains("more than once")),
        "{:?}",
        a.warnings
    );
    // No model graph at all.
    let empty = analyze(
        &Model::default(),
        &NoConstValues,
        &AnalysisOptions::default(),
    );
    assert!(empty.tensors.is_empty() && !empty.warnings.is_empty());
}

#[test]
fn names_are_lower_snake_case() {
    let roles = [
        (Role::Weight, "weight"),
        (Role::RecurrentWeight, "recurrent_weight"),
        (Role::Bias, "bias"),
        (Role::NormScale, "norm_scale"),
        (Role::NormShift, "norm_shift"),
        (Role::NormStat(NormStatKind::Mean), "norm_stat"),
        (Role::NormStat(NormStatKind::Var), "norm_stat"),
        (Role::Embedding, "embedding"),
        (Role::PreluSlope, "prelu_slope"),
    ];
    for (r, s) in roles {
        assert_eq!((r.as_str(), r.to_string()), (s, s.to_owned()));
    }
    use Activation as A;
    let acts = [
        (A::Relu, "relu"),
        (A::LeakyRelu(0.1), "leaky_relu"),
        (A::PRelu, "prelu"),
        (A::Elu(1.0), "elu"),
        (A::Selu, "selu"),
        (A::Celu, "celu"),
        (A::Tanh, "tanh"),
        (A::Sigmoid, "sigmoid"),
        (A::HardSigmoid, "hard_sigmoid"),
        (A::HardSwish, "hard_swish"),
        (A::Gelu, "gelu"),
        (A::Silu, "silu"),
        (A::Softplus, "softplus"),
        (A::Softsign, "softsign"),
        (A::Mish, "mish"),
        (A::Relu6, "relu6"),
        (A::Softmax, "softmax"),
        (A::Linear, "linear"),
        (A::Recurrent, "recurrent"),
    ];
    for (a, s) in acts {
        assert_eq!((a.as_str(), a.to_string()), (s, s.to_owned()));
    }
}

// ---------------------------------------------------------------------------------------------
// Pattern fixtures: real architectures whose parameters exporters write as multi-node patterns
// (tests/fixtures/make_patterns.py; ground truth from the PyTorch module definitions).

/// `gt_role` of the pattern fixtures → the role analysis must report.
fn pattern_gt_role(text: Option<&str>) -> Option<Role> {
    Some(match text? {
        "weight" => Role::Weight,
        "bias" => Role::Bias,
        "embedding" => Role::Embedding,
        "norm_scale" => Role::NormScale,
        "norm_shift" => Role::NormShift,
        "norm_offset" => Role::NormOffset,
        other => panic!("gt_role {other:?} has no entry in the test's table"),
    })
}

/// `gt_activation` phrases of the pattern fixtures' ACT tables.
fn pattern_gt_activation(text: &str) -> Activation {
    match text {
        "Relu" => Activation::Relu,
        "Gelu" => Activation::Gelu,
        "SiLU" => Activation::Silu,
        t if t.starts_with("Softmax (") => Activation::Softmax,
        t if t.starts_with("none (") => Activation::Linear,
        other => panic!("gt_activation {other:?} has no entry in the test's table"),
    }
}

fn pattern_stems() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(fixtures_dir().join("patterns"))
        .expect("pattern fixtures dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".onnx").map(str::to_owned)
        })
        .collect();
    stems.sort();
    stems
}

#[test]
fn pattern_fixtures_match_ground_truth() {
    let stems = pattern_stems();
    assert!(stems.len() >= 17, "pattern fixtures: {stems:?}");
    let mut failures: Vec<String> = Vec::new();
    for stem in &stems {
        let path = fixtures_dir().join("patterns").join(format!("{stem}.onnx"));
        let m = LoadedModel::open(&path).expect("open fixture");
        let gt: Json = serde_json::from_str(
            &std::fs::read_to_string(path.with_extension("gt.json")).expect("read gt"),
        )
        .expect("parse gt");
        let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).expect("analyse");
        let p = pipeline::analyze_loaded(
            &m,
            &AnalysisOptions {
                compat: FanCompat::PyTorch,
            },
        )
        .expect("analyse");
        let gt_inits = gt["initializers"].as_array().expect("initializers");
        assert_eq!(a.tensors.len(), gt_inits.len(), "{stem}");
        let mut fail = |msg: String| failures.push(format!("{stem}: {msg}"));
        let (mut params, mut found) = (0, 0);
        for (g, t) in gt_inits.iter().zip(&a.tensors) {
            let name = &t.name;
            assert_eq!(g["name"].as_str(), Some(name.as_str()));
            let want = pattern_gt_role(g["gt_role"].as_str());
            if want.is_some() {
                params += 1;
            }
            if t.role != want {
                fail(format!(
                    "{name} ({}): role {:?} != {want:?} ({}; note {:?})",
                    g["torch_param"],
                    t.role,
                    t.why_untouched(),
                    t.note
                ));
                continue;
            }
            let Some(role) = t.role else {
                // Untouched: with a reason, and listed if it is a float tensor a layer reads.
                if t.why_untouched().is_empty() {
                    fail(format!("{name}: untouched without a reason"));
                }
                continue;
            };
            found += 1;
            if let Some(act) = g["gt_activation"].as_str() {
                let want = pattern_gt_activation(act);
                if t.activation != Some(want) {
                    fail(format!(
                        "{name}: activation {:?} != {want:?} (note {:?})",
                        t.activation, t.note
                    ));
                }
            } else {
                fail(format!("{name}: gt has no activation for role {role:?}"));
            }
            if let (Some(fi), Some(fo)) = (g["gt_fan_in"].as_u64(), g["gt_fan_out"].as_u64()) {
                let want = fans(fi, fo);
                if t.fans != Some(want) {
                    fail(format!("{name}: true fans {:?} != {want:?}", t.fans));
                }
            }
            if p.tensors[a.tensors.iter().position(|x| x.name == *name).unwrap()].role != t.role {
                fail(format!("{name}: compat mode changed the role"));
            }
        }
        // Nothing is skipped silently: every float tensor of rank ≥ 1 is planned or listed in
        // the table's footer with its reason, and so is every quantized weight.
        let plan =
            onnx_reinit::plan::plan(&a, &onnx_reinit::plan::Rules::default(), 1).expect("plan");
        let report = onnx_reinit::report::Report::new(stem, &a, &plan, true, None);
        // The full table (no width): every name and reason whole. Its footer groups the
        // untouched tensors by reason: `untouched N: REASON: name, name, …`.
        let table = report.table_for(None);
        let footer: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("untouched "))
            .collect();
        let mut listed_n = 0;
        for (t, e) in a.tensors.iter().zip(&plan.entries) {
            let float = matches!(t.data_type, 1 | 10 | 11 | 16);
            let quantized = t.why_untouched().starts_with("quantized weight");
            if e.fill.is_none() && ((float && !t.dims.is_empty()) || quantized) {
                let listed = footer.iter().any(|l| {
                    l.split_once(&format!(": {}: ", t.why_untouched()))
                        .is_some_and(|(_, names)| names.split(", ").any(|n| n == t.name))
                });
                // Kept tensors with a role are rows of the table, with scheme `keep`.
                let kept_row =
                    t.role.is_some() && table.lines().any(|l| l.starts_with(t.name.as_str()));
                if !listed && !kept_row {
                    fail(format!(
                        "{}: neither rewritten nor listed in the footer",
                        t.name
                    ));
                }
                listed_n += usize::from(listed);
            }
        }
        if stem == "qdq_mlp" {
            let q = a
                .tensors
                .iter()
                .filter(|t| t.why_untouched().starts_with("quantized weight"))
                .count();
            // fc1, fc2: weight, bias, and each one's scale and zero point (ORT's QDQ format).
            assert!(q >= 8, "{stem}: {q} quantized tensors reported");
        }
        println!(
            "{stem}: {} initializers, {params} parameters, {found} found, {listed_n} listed \
             in the footer",
            a.tensors.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Parameters written as multi-node patterns, built in code for the variants the exporters of
// the pattern fixtures do not produce.

/// RMSNorm as exporters write it, every combination of: the square as Pow or Mul(x, x); the
/// inverse root as Div(x, Sqrt) or Mul(x, Reciprocal(Sqrt)); ReduceMean's axes as attribute or
/// as input; the weight left or right of the Mul; with or without a Cast to f32 and back. The
/// weight is the norm's scale, and the walk passes the whole pattern as it passes a norm op.
#[test]
fn rms_norm_variants_bind_their_weight() {
    for variant in 0..32u32 {
        let bit = |i: u32| variant & (1 << i) != 0;
        let (pow, div, axes_input, left, cast) = (bit(0), bit(1), bit(2), bit(3), bit(4));
        let mut b = B::new(&["x"], &["y"]);
        b.w("W", &[8, 8]).w("g", &[8]);
        b.wt("axes", &[1], 7);
        b.n("MatMul", &["x", "W"], &["h"]);
        let x = if cast {
            b.n("Cast", &["h"], &["hc"]).i("to", 1);
            "hc"
        } else {
            "h"
        };
        if pow {
            b.konst("two", 2.0);
            b.n("Pow", &[x, "two"], &["sq"]);
        } else {
            b.n("Mul", &[x, x], &["sq"]);
        }
        if axes_input {
            b.n("ReduceMean", &["sq", "axes"], &["ms"]);
        } else {
            b.n("ReduceMean", &["sq"], &["ms"]).ints("axes", &[-1]);
        }
        b.konst("eps", 1e-6);
        b.n("Add", &["ms", "eps"], &["mse"]);
        b.n("Sqrt", &["mse"], &["rms"]);
        if div {
            b.n("Div", &[x, "rms"], &["nx"]);
        } else {
            b.n("Reciprocal", &["rms"], &["inv"]);
            b.n("Mul", &[x, "inv"], &["nx"]);
        }
        let n = if cast {
            b.n("Cast", &["nx"], &["nc"]).i("to", 1);
            "nc"
        } else {
            "nx"
        };
        let ins = if left { ["g", n] } else { [n, "g"] };
        b.n("Mul", &ins, &["scaled"]);
        b.n("Relu", &["scaled"], &["y"]);
        let a = run_true(&b);
        let what = format!("pow {pow} div {div} axes-input {axes_input} left {left} cast {cast}");
        let g = get(&a, "g");
        assert_eq!(g.role, Some(Role::NormScale), "{what}: {g:?}");
        assert!(
            g.note.as_deref().unwrap_or("").contains("decomposed"),
            "{what}: {g:?}"
        );
        let w = get(&a, "W");
        assert_eq!(w.role, Some(Role::Weight), "{what}");
        assert_eq!(w.activation, Some(Activation::Relu), "{what}: {w:?}");
    }
}

/// A Mul of an initializer with data that is not normalized is no norm scale; a β added to the
/// scaled, normalized data of a decomposed LayerNorm is the shift.
#[test]
fn norm_scale_needs_normalized_data_and_shift_follows_it() {
    let mut b = B::new(&["x"], &["y", "z"]);
    b.w("g", &[8]).w("beta", &[8]).w("c", &[8]);
    // LayerNorm: d = x − mean(x); d / sqrt(mean(d²) + ε) · g + beta.
    b.n("ReduceMean", &["x"], &["mu"]).ints("axes", &[-1]);
    b.n("Sub", &["x", "mu"], &["d"]);
    b.n("Mul", &["d", "d"], &["d2"]);
    b.n("ReduceMean", &["d2"], &["var"]).ints("axes", &[-1]);
    b.konst("eps", 1e-5);
    b.n("Add", &["var", "eps"], &["ve"]);
    b.n("Sqrt", &["ve"], &["sd"]);
    b.n("Div", &["d", "sd"], &["nx"]);
    b.n("Mul", &["nx", "g"], &["gx"]);
    b.n("Add", &["gx", "beta"], &["y"]);
    // Not normalized: an input times a constant vector.
    b.n("Mul", &["x", "c"], &["z"]);
    let a = run_true(&b);
    expect(&a, "g", Some(Role::NormScale), Some(Activation::Linear));
    expect(&a, "beta", Some(Role::NormShift), Some(Activation::Linear));
    let c = get(&a, "c");
    assert_eq!(c.role, None);
    assert!(c.why_untouched().contains("not normalized"), "{c:?}");
}

/// Gemma's RMSNorm scales by (1 + w): w is an offset, planned as 0 by default and as c − 1 for
/// `--norm constant(c)`.
#[test]
fn gemma_scale_offset_is_planned_as_its_neutral_value() {
    use onnx_reinit::plan::{Rule, Rules, plan_tensor};
    let mut b = B::new(&["x"], &["y"]);
    b.w("w", &[8]);
    b.n("Mul", &["x", "x"], &["sq"]);
    b.n("ReduceMean", &["sq"], &["ms"]).ints("axes", &[-1]);
    b.konst("eps", 1e-6);
    b.n("Add", &["ms", "eps"], &["mse"]);
    b.n("Sqrt", &["mse"], &["rms"]);
    b.n("Div", &["x", "rms"], &["nx"]);
    b.konst("one", 1.0);
    b.n("Add", &["one", "w"], &["scale"]);
    b.n("Mul", &["nx", "scale"], &["y"]);
    let a = run_true(&b);
    let w = get(&a, "w");
    assert_eq!(w.role, Some(Role::NormOffset), "{w:?}");
    assert_eq!(Role::NormOffset.as_str(), "norm_offset");
    let e = plan_tensor(w, &Rules::default()).unwrap();
    assert_eq!(e.scheme().unwrap().to_string(), "zeros");
    let rules = Rules {
        norm: Rule::parse("constant(2.5)").unwrap(),
        ..Rules::default()
    };
    let e = plan_tensor(w, &rules).unwrap();
    assert_eq!(e.scheme().unwrap().to_string(), "constant(1.5)");
    let rules = Rules {
        norm: Rule::parse("normal(1, 0.1)").unwrap(),
        ..Rules::default()
    };
    let e = plan_tensor(w, &rules).unwrap();
    assert!(e.fill.is_none() && e.reason.contains("offset"), "{e:?}");
}

/// Constant-index Gathers: rows added into an activation are an embedding (position,
/// token-type, relative attention bias), rows multiplied into one (a rotary cos/sin cache) or
/// going nowhere near one are not.
#[test]
fn constant_gather_tables_are_decided_by_their_use() {
    let mut b = B::new(&["ids", "q"], &["y", "r", "t"]);
    b.w("tok", &[10, 4])
        .w("pos", &[16, 4])
        .w("typ", &[2, 4])
        .w("rel", &[8, 2])
        .w("cos", &[16, 4])
        .w("fixed", &[16, 4]);
    b.konst("pidx", 3.0).konst("tidx", 0.0).konst("ridx", 1.0);
    b.n("Gather", &["tok", "ids"], &["e"]);
    b.n("Gather", &["pos", "pidx"], &["pe"]);
    b.n("Gather", &["typ", "tidx"], &["te"]);
    // Two constant lookups summed before they meet the hidden stream.
    b.n("Add", &["pe", "te"], &["pte"]);
    b.n("Add", &["e", "pte"], &["y"]);
    // Relative attention bias: transposed, added to attention scores.
    b.n("Gather", &["rel", "ridx"], &["rb"]);
    b.n("Transpose", &["rb"], &["rbt"]);
    b.n("MatMul", &["q", "q"], &["scores"]);
    b.n("Add", &["scores", "rbt"], &["sb"]);
    b.n("Softmax", &["sb"], &["r0"]);
    // Rotary cache: multiplied into q.
    b.n("Gather", &["cos", "pidx"], &["c"]);
    b.n("Unsqueeze", &["c"], &["cu"]);
    b.n("Mul", &["r0", "cu"], &["r"]);
    // A lookup returned as is.
    b.n("Gather", &["fixed", "pidx"], &["t"]);
    let a = run_true(&b);
    for name in ["tok", "pos", "typ", "rel"] {
        let t = get(&a, name);
        assert_eq!(t.role, Some(Role::Embedding), "{name}: {t:?}");
        assert_eq!(t.fans.map(|f| f.fan_in), Some(1), "{name}");
    }
    for name in ["pos", "typ", "rel"] {
        let note = get(&a, name).note.clone().unwrap_or_default();
        assert!(note.contains("constant indices"), "{name}: {note}");
    }
    let cos = get(&a, "cos");
    assert_eq!(cos.role, None);
    assert!(cos.why_untouched().contains("rotary"), "{cos:?}");
    let fixed = get(&a, "fixed");
    assert_eq!(fixed.role, None);
    assert!(fixed.why_untouched().contains("not added"), "{fixed:?}");
}

/// Einsum projections: fans from the equation, the walk continues after it; other Einsum
/// operands are not weights.
#[test]
fn einsum_weights_get_fans_from_the_equation() {
    let mut b = B::new(&["x", "x3"], &["y", "z", "u", "v"]);
    b.w("w1", &[4, 16, 8])
        .w("w2", &[4, 8, 6])
        .w("w3", &[16, 5])
        .w("w4", &[16, 5])
        .w("k1", &[16, 5]);
    // y[b,h,e] = Σ_d x[b,d] w1[h,d,e]: contracted d, free h·e.
    b.n("Einsum", &["x", "w1"], &["p1"])
        .s("equation", "bd,hde->bhe");
    b.n("Relu", &["p1"], &["r1"]);
    // Per-head weights: h is a batch axis (in x, w2 and the output).
    b.n("Einsum", &["r1", "w2"], &["p2"])
        .s("equation", "bhd, hde -> bhe");
    b.n("Tanh", &["p2"], &["y"]);
    // Weight on the left.
    b.n("Einsum", &["w3", "x"], &["z"])
        .s("equation", "de,bd->be");
    // Three operands: not a projection by rule.
    b.n("Einsum", &["x", "w4", "x3"], &["u"])
        .s("equation", "bd,de,be->b");
    // Both operands constant.
    b.n("Einsum", &["k1", "k1"], &["v"])
        .s("equation", "de,de->e");
    let a = run_true(&b);
    expect(&a, "w1", Some(Role::Weight), Some(Activation::Relu));
    assert_eq!(get(&a, "w1").fans, Some(fans(16, 32)));
    expect(&a, "w2", Some(Role::Weight), Some(Activation::Tanh));
    assert_eq!(get(&a, "w2").fans, Some(fans(8, 6)));
    assert_eq!(get(&a, "w3").fans, Some(fans(16, 5)));
    for name in ["w4", "k1"] {
        let t = get(&a, name);
        assert_eq!(t.role, None, "{name}");
        assert!(t.why_untouched().contains("Einsum"), "{t:?}");
    }
}

/// A cut whose parts are concatenated again (a roll, a partial rotary) keeps the whole fans; a
/// Split into parts that go their own ways is a packed projection.
#[test]
fn cuts_that_are_put_back_together_are_not_packed() {
    let mut b = B::new(&["x"], &["y", "z"]);
    b.w("roll", &[4, 8]).w("packed", &[4, 8]);
    b.wt("s0", &[1], 7).wt("s1", &[1], 7).wt("ax", &[1], 7);
    b.n("MatMul", &["x", "roll"], &["h"]);
    b.n("Slice", &["h", "s0", "s1", "ax"], &["a"]);
    b.n("Slice", &["h", "s1", "s0", "ax"], &["c"]);
    b.n("Neg", &["a"], &["an"]);
    b.n("Concat", &["c", "an"], &["rolled"]).i("axis", 1);
    b.n("Relu", &["rolled"], &["y"]);
    b.n("MatMul", &["x", "packed"], &["k"]);
    b.n("Split", &["k"], &["k0", "k1"]).i("axis", -1);
    b.n("MatMul", &["k0", "k1"], &["z"]);
    let a = run_true(&b);
    expect(&a, "roll", Some(Role::Weight), Some(Activation::Relu));
    assert_eq!(get(&a, "roll").fans, Some(fans(4, 8)));
    assert_eq!(get(&a, "packed").fans, Some(fans(4, 4)));
}

/// onnxruntime's fused ops: packed QKV Attention, MultiHeadAttention's bias, FastGelu and
/// BiasGelu biases, GemmFastGelu, EmbedLayerNormalization.
#[test]
fn onnxruntime_fused_ops() {
    let mut b = B::new(&["x", "ids", "seg"], &["y", "m", "g", "e"]);
    b.w("qkv", &[8, 24])
        .w("qkv_b", &[24])
        .w("mha_b", &[24])
        .w("fg_b", &[8])
        .w("bg_b", &[8])
        .w("gfg_w", &[8, 16])
        .w("gfg_b", &[16])
        .w("we", &[10, 8])
        .w("pe", &[16, 8])
        .w("se", &[2, 8])
        .w("eg", &[8])
        .w("eb", &[8]);
    b.n("Attention", &["x", "qkv", "qkv_b"], &["att"])
        .domain("com.microsoft")
        .i("num_heads", 2);
    b.n("FastGelu", &["att", "fg_b"], &["f"])
        .domain("com.microsoft");
    b.n("BiasGelu", &["f", "bg_b"], &["y"])
        .domain("com.microsoft");
    b.n("MultiHeadAttention", &["x", "x", "x", "mha_b"], &["m"])
        .domain("com.microsoft");
    b.n("GemmFastGelu", &["x", "gfg_w", "gfg_b"], &["g"])
        .domain("com.microsoft");
    b.n(
        "EmbedLayerNormalization",
        &["ids", "seg", "we", "pe", "se", "eg", "eb"],
        &["e"],
    )
    .domain("com.microsoft");
    let a = run_true(&b);
    let linear = Some(Activation::Linear);
    let gelu = Some(Activation::Gelu);
    expect(&a, "qkv", Some(Role::Weight), linear);
    assert_eq!(get(&a, "qkv").fans, Some(fans(8, 8)));
    expect(&a, "qkv_b", Some(Role::Bias), linear);
    expect(&a, "mha_b", Some(Role::Bias), linear);
    expect(&a, "fg_b", Some(Role::Bias), gelu);
    expect(&a, "bg_b", Some(Role::Bias), gelu);
    expect(&a, "gfg_w", Some(Role::Weight), gelu);
    assert_eq!(get(&a, "gfg_w").fans, Some(fans(8, 16)));
    expect(&a, "gfg_b", Some(Role::Bias), gelu);
    for name in ["we", "pe", "se"] {
        expect(&a, name, Some(Role::Embedding), linear);
        assert_eq!(get(&a, name).fans, Some(fans(1, 8)));
    }
    assert_eq!(get(&a, "eg").role, Some(Role::NormScale));
    assert_eq!(get(&a, "eb").role, Some(Role::NormShift));

    // qkv_hidden_sizes: the Q part's size is fan_out; the op's other inputs are not parameters.
    let mut b = B::new(&["x", "mask"], &["y"]);
    b.w("qkv", &[8, 20]).w("bias", &[20]);
    b.n("Attention", &["x", "qkv", "bias", "mask"], &["y"])
        .domain("com.microsoft")
        .i("num_heads", 2)
        .ints("qkv_hidden_sizes", &[6, 6, 8]);
    let a = run_true(&b);
    assert_eq!(get(&a, "qkv").fans, Some(fans(8, 6)));
    assert_eq!(get(&a, "bias").role, Some(Role::Bias));

    // Packed weights too narrow for three parts are no weight to fill.
    let mut b = B::new(&["x"], &["y"]);
    b.w("qkv", &[8, 2]);
    b.n("Attention", &["x", "qkv"], &["y"])
        .domain("com.microsoft");
    let t = get(&run_true(&b), "qkv").clone();
    assert_eq!(t.role, None);
    assert!(t.why_untouched().contains("no Q part"), "{t:?}");
}

/// Quantized weights and their scales are left alone as "quantized weight", whatever the op.
#[test]
fn quantized_weights_say_so() {
    let mut b = B::new(&["x"], &["y", "z", "u"]);
    b.wt("wq", &[4, 4], 3).w("ws", &[4]).wt("wz", &[4], 3);
    b.wt("bq", &[4, 4], 3).w("bs", &[1]).wt("bz", &[1], 3);
    b.wt("nb", &[4, 1, 16], 2).w("nbs", &[4]);
    b.n("DequantizeLinear", &["wq", "ws", "wz"], &["w"])
        .i("axis", 1);
    b.n("MatMul", &["x", "w"], &["y"]);
    b.n(
        "QLinearMatMul",
        &["x", "bs", "bz", "bq", "bs", "bz", "bs", "bz"],
        &["z"],
    );
    b.n("MatMulNBits", &["x", "nb", "nbs"], &["u"])
        .domain("com.microsoft");
    let a = run_true(&b);
    for name in ["wq", "ws", "wz", "bq", "bs", "bz", "nb", "nbs"] {
        let t = get(&a, name);
        assert_eq!(t.role, None, "{name}");
        assert!(
            t.why_untouched().starts_with("quantized weight"),
            "{name}: {}",
            t.why_untouched()
        );
    }
}

/// A sinusoidal encoding stored as an initializer and added into the hidden stream through a
/// constant-index Gather is used like a learned position table; its values tell it apart (row 0
/// is sin 0 = 0, cos 0 = 1). Without readable values it is taken by its use.
#[test]
fn a_sinusoidal_table_added_like_an_embedding_is_left_alone() {
    let (v, d) = (6usize, 4usize);
    let mut table = Vec::new();
    let mut learned = Vec::new();
    for p in 0..v {
        for i in 0..d / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            table.push(angle.sin());
            table.push(angle.cos());
            learned.push(0.01 * (p * d + i) as f64 - 0.1);
            learned.push(0.02 * (p * d + i) as f64 + 0.3);
        }
    }
    let mut b = B::new(&["ids"], &["y"]);
    b.w("tok", &[10, 4]).w("sin", &[6, 4]).w("pos", &[6, 4]);
    b.konst("idx", 2.0);
    b.n("Gather", &["tok", "ids"], &["e"]);
    b.n("Gather", &["sin", "idx"], &["s"]);
    b.n("Gather", &["pos", "idx"], &["p"]);
    b.n("Add", &["e", "s"], &["es"]);
    b.n("Add", &["es", "p"], &["y"]);
    let mut consts = Consts::default();
    consts
        .0
        .insert((String::new(), "sin".to_owned()), table.clone());
    consts.0.insert((String::new(), "pos".to_owned()), learned);
    let a = run(&b, &consts, FanCompat::True);
    let s = get(&a, "sin");
    assert_eq!(s.role, None, "{s:?}");
    assert!(s.why_untouched().contains("sinusoidal"), "{s:?}");
    assert_eq!(get(&a, "pos").role, Some(Role::Embedding));
    assert_eq!(get(&run_true(&b), "sin").role, Some(Role::Embedding));
}

/// The index gives no value to an initializer that nothing reads (to hold nothing per unused
/// tensor of a model of millions); its entry must stay what the value without uses gave:
/// pinned here field by field, with the enclosing-scope reads that make a tensor referenced.
#[test]
fn initializers_nothing_reads_are_reported_as_before() {
    let mut body = B::new(&[], &["b_out"]);
    body.w("b_unused", &[2]);
    // A body reads an enclosing scope's initializer by name.
    body.n("MatMul", &["x", "outer_w"], &["b_out"]);
    // IR < 4: `listed` is a graph input too; `ret` is returned, `viewed` only passes a view.
    let mut b = B::new(&["x", "cond", "listed"], &["y", "ret"]);
    b.w("unused", &[3])
        .w("listed", &[4])
        .w("neg", &[-1, 2])
        .w("ret", &[2])
        .w("outer_w", &[4, 4])
        .w("viewed", &[2]);
    b.wt("ids", &[5], 7);
    b.n("If", &["cond"], &["y"])
        .g("then_branch", body.graph())
        .g("else_branch", body.graph());
    b.n("Identity", &["viewed"], &["v_out"]);
    let a = run_true(&b);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let order = graph_and_name(&a);
    assert_eq!(
        order,
        [
            ("", "unused"),
            ("", "listed"),
            ("", "neg"),
            ("", "ret"),
            ("", "outer_w"),
            ("", "viewed"),
            ("", "ids"),
            ("/y.then_branch", "b_unused"),
            ("/y.else_branch", "b_unused"),
        ]
    );
    let unused = "no consumers (unused initializer)";
    let returned = "only returned as a graph output";
    for (k, why) in [
        (0, unused),
        (1, unused),
        (2, "invalid shape [-1, 2]"),
        (3, returned),
        (5, returned),
        (
            6,
            "int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized",
        ),
        (7, unused),
        (8, unused),
    ] {
        let t = &a.tensors[k];
        assert_eq!(t.role, None, "{t:?}");
        assert_eq!(t.why_untouched(), why, "{t:?}");
        assert!(t.consumers.is_empty(), "{t:?}");
        assert!(t.fans.is_none() && t.activation.is_none() && t.note.is_none());
        assert!(t.recurrent.is_none(), "{t:?}");
    }
    let w = &a.tensors[4];
    assert_eq!(w.role, Some(Role::Weight), "{w:?}");
    let graphs: Vec<&str> = w.consumers.iter().map(|c| c.graph.as_str()).collect();
    assert_eq!(graphs, ["/y.then_branch", "/y.else_branch"]);
}

/// A node output named like an initializer of its graph is a second definition, reported even
/// when nothing reads the name (and the initializer then has no value in the index).
#[test]
fn a_node_output_shadowing_an_unread_initializer_still_warns() {
    let mut b = B::new(&["x"], &["y"]);
    b.w("w", &[4, 4]).w("dup", &[2]);
    b.n("MatMul", &["x", "w"], &["y"]);
    b.n("Relu", &["x"], &["dup"]);
    let a = run_true(&b);
    assert_eq!(
        a.warnings,
        ["graph '': value 'dup' is defined more than once"]
    );
    let dup = get(&a, "dup");
    assert_eq!(dup.role, None);
    assert_eq!(dup.why_untouched(), "no consumers (unused initializer)");
    // A graph input redefined by a node output, neither read.
    let mut b = B::new(&["x", "in2"], &["y"]);
    b.n("Relu", &["x"], &["y"]);
    b.n("Relu", &["x"], &["in2"]);
    let a = run_true(&b);
    assert_eq!(
        a.warnings,
        ["graph '': value 'in2' is defined more than once"]
    );
}
