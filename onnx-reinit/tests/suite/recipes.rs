//! Initialization recipes (`--preset`): residual structure read from the graph, checked against
//! the PyTorch module definitions of the pattern fixtures and of `tests/fixtures/recipes/`, and
//! each preset's output against the distributions the training library's own initialization
//! produced on the same model (`tests/fixtures/make_recipes.py`).

use std::path::Path;

use onnx_reinit::analysis::residual::{self, Residuals};
use onnx_reinit::analysis::{AnalysisOptions, NoConstValues};
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::skeleton::{Graph, Model as Skeleton, Node, TensorHeader, ValueInfo};
use onnx_reinit::pipeline::{self, Destination, RewriteConfig};
use onnx_reinit::plan::Rules;
use onnx_reinit::preset::Preset;

use crate::common::fixtures_dir;

fn residuals_of(path: &Path) -> Residuals {
    let m = LoadedModel::open(path).expect("fixture loads");
    let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).expect("analysis");
    residual::residuals(m.skeleton(), &a)
}

/// A graph built in code: `nodes` as (op, inputs, output), f32 initializers with their dims.
fn built(inputs: &[&str], inits: &[(&str, &[i64])], nodes: &[(&str, &[&str], &str)]) -> Residuals {
    let (m, a) = built_model(inputs, inits, nodes);
    residual::residuals(&m, &a)
}

/// The model of [`built`] and its analysis.
fn built_model(
    inputs: &[&str],
    inits: &[(&str, &[i64])],
    nodes: &[(&str, &[&str], &str)],
) -> (Skeleton, onnx_reinit::analysis::Analysis) {
    let vi = |n: &str| ValueInfo {
        name: Some(n.to_owned()),
        ..ValueInfo::default()
    };
    let g = Graph {
        input: inputs.iter().map(|n| vi(n)).collect(),
        output: vec![vi(nodes.last().expect("nodes").2)],
        initializer: inits
            .iter()
            .map(|(n, d)| TensorHeader {
                name: (*n).into(),
                dims: (*d).into(),
                data_type: Some(1),
            })
            .collect(),
        node: nodes
            .iter()
            .map(|(op, ins, out)| Node {
                op_type: Some((*op).to_owned()),
                name: Some((*out).to_owned()),
                input: ins.iter().map(|s| (*s).to_owned()).collect(),
                output: vec![(*out).to_owned()],
                ..Node::default()
            })
            .collect(),
        ..Graph::default()
    };
    let m = Skeleton {
        ir_version: Some(9),
        opset_import: vec![onnx_reinit::onnx::skeleton::OperatorSetId {
            domain: Some(String::new()),
            version: Some(20),
        }],
        graph: Some(g),
        ..Skeleton::default()
    };
    let a = onnx_reinit::analysis::analyze(&m, &NoConstValues, &AnalysisOptions::default());
    (m, a)
}

/// Learned tokens are found by use, not by name: an initializer expanded and concatenated with
/// a weight layer's output is a class token, one added to that sequence position embeddings;
/// an initializer concatenated with a raw input (no weight layer before it) is not a class
/// token, and a mask added to attention scores (a MatMul of two activations) is not a position
/// embedding. A table both gathered with the input ids and used as the logits' weight (tied) is
/// a token embedding, and the layer into the graph output is the output layer.
#[test]
fn learned_tokens_token_tables_and_output_layers_of_code_built_graphs() {
    let (m, a) = built_model(
        &["x", "ids"],
        &[
            ("cls", &[1, 1, 8]),
            ("pad", &[1, 1, 4]),
            ("pos", &[1, 5, 8]),
            ("mask", &[1, 5, 5]),
            ("w", &[4, 8]),
            ("wq", &[8, 8]),
            ("emb", &[16, 8]),
            ("shape", &[3]),
        ],
        &[
            ("Concat", &["pad", "x"], "xp"),
            ("MatMul", &["xp", "w"], "patches"),
            ("Expand", &["cls", "shape"], "cls_b"),
            ("Concat", &["cls_b", "patches"], "seq"),
            ("Add", &["seq", "pos"], "h"),
            ("MatMul", &["h", "wq"], "q"),
            ("Transpose", &["h"], "kt"),
            ("MatMul", &["q", "kt"], "scores"),
            ("Add", &["scores", "mask"], "masked"),
            ("Gather", &["emb", "ids"], "tok"),
            ("Transpose", &["emb"], "emb_t"),
            ("MatMul", &["tok", "emb_t"], "logits"),
        ],
    );
    let t = residual::learned_tokens(&m, &a);
    assert_eq!(t.class_tokens, ["cls"], "{t:#?}");
    assert_eq!(t.position_embeddings, ["pos"], "{t:#?}");
    assert_eq!(residual::token_embeddings(&m, &a), [("emb".to_owned(), 16)]);
    assert_eq!(residual::output_layers(&m, &a), ["emb"]);
    // The t5 recipe draws the tied table as the shared embedding, N(0, f), not by its fans;
    // vit's gives the two tokens its truncated normal.
    let p = onnx_reinit::preset::resolve(&"t5(d_kv=8)".parse().unwrap(), &m, &a).unwrap();
    let d = &p.decisions[&(String::new(), "emb".to_owned())];
    assert!(d.reason.contains("shared embedding"), "{}", d.reason);
    assert_eq!(
        d.rule,
        onnx_reinit::plan::Rule::parse("normal(0,1)").unwrap()
    );
    let p = onnx_reinit::preset::resolve(&"vit".parse().unwrap(), &m, &a).unwrap();
    assert_eq!(p.recognised, ["cls", "pos"]);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

/// A head into the graph output that is not one logit per token (T5's classification head:
/// 3 classes from a 16-token vocabulary) keeps T5's f·d_model^−½, not the lm_head's N(0, f).
#[test]
fn t5_classification_head_is_not_an_lm_head() {
    let (m, a) = built_model(
        &["ids"],
        &[("emb", &[16, 8]), ("wc", &[8, 3])],
        &[
            ("Gather", &["emb", "ids"], "tok"),
            ("MatMul", &["tok", "wc"], "logits"),
        ],
    );
    assert_eq!(residual::output_layers(&m, &a), ["wc"]);
    let p = onnx_reinit::preset::resolve(&"t5".parse().unwrap(), &m, &a).unwrap();
    let d = &p.decisions[&(String::new(), "wc".to_owned())];
    assert!(!d.reason.contains("lm_head"), "{}", d.reason);
    assert_eq!(
        d.rule,
        onnx_reinit::plan::Rule::parse(&format!("normal(0,{})", 1.0 / 8f64.sqrt())).unwrap()
    );
}

/// Two pre-norm blocks `x + W2·relu(W1·LN(x))`: two residual adds, projections W2 and W4, depth 2
/// (same signature twice). Inside, a rotary-style `q·c + (−q)·s` (both sides 0 weight layers
/// since q), a mask added as an initializer, and the sum of two independent inputs are not
/// residual.
#[test]
fn residuals_of_code_built_blocks() {
    let r = built(
        &["x", "y"],
        &[
            ("g1", &[8]),
            ("b1", &[8]),
            ("w1", &[8, 16]),
            ("w2", &[16, 8]),
            ("g2", &[8]),
            ("b2", &[8]),
            ("w3", &[8, 16]),
            ("w4", &[16, 8]),
            ("wq", &[8, 8]),
            ("c", &[8]),
            ("s", &[8]),
            ("mask", &[8]),
        ],
        &[
            ("LayerNormalization", &["x", "g1", "b1"], "n1"),
            ("MatMul", &["n1", "w1"], "h1"),
            ("Relu", &["h1"], "a1"),
            ("MatMul", &["a1", "w2"], "o1"),
            ("Add", &["x", "o1"], "x1"),
            ("LayerNormalization", &["x1", "g2", "b2"], "n2"),
            ("MatMul", &["n2", "w3"], "h2"),
            ("Relu", &["h2"], "a2"),
            ("MatMul", &["a2", "w4"], "o2"),
            ("Reshape", &["o2", "shape"], "o2r"),
            ("Add", &["o2r", "x1"], "x2"),
            ("MatMul", &["x2", "wq"], "q"),
            ("Mul", &["q", "c"], "qc"),
            ("Neg", &["q"], "nq"),
            ("Mul", &["nq", "s"], "qs"),
            ("Add", &["qc", "qs"], "rot"),
            ("Add", &["rot", "mask"], "masked"),
            ("Add", &["masked", "y"], "out"),
        ],
    );
    let got: Vec<(&str, &str, Option<&str>)> = r
        .adds
        .iter()
        .map(|a| (a.node.as_str(), a.stream.as_str(), a.projection.as_deref()))
        .collect();
    assert_eq!(
        got,
        [("x1", "x", Some("w2")), ("x2", "x1", Some("w4"))],
        "{r:#?}"
    );
    assert_eq!(r.depth, 2);
    assert!(
        r.adds
            .iter()
            .all(|a| a.branch_layers == 2 && a.stream_layers == 0 && a.last_norm.is_none())
    );
}

/// A torchvision-style downsampling block: the skip is conv + BN (1 weight layer), the branch
/// conv → BN → relu → conv → BN (2): the branch is the longer side, its output projection is
/// the second conv and its last norm is bn2's scale, not the skip's BN.
#[test]
fn residuals_of_code_built_downsampling_block() {
    let bn = |p: &str| -> [(String, Vec<i64>); 4] {
        ["scale", "bias", "mean", "var"].map(|k| (format!("{p}.{k}"), vec![4]))
    };
    let mut inits: Vec<(String, Vec<i64>)> = vec![
        ("c1".into(), vec![4, 2, 3, 3]),
        ("c2".into(), vec![4, 4, 3, 3]),
        ("cd".into(), vec![4, 2, 1, 1]),
    ];
    for p in ["bn1", "bn2", "bnd"] {
        inits.extend(bn(p));
    }
    let inits: Vec<(&str, &[i64])> = inits
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let r = built(
        &["x"],
        &inits,
        &[
            ("Conv", &["x", "c1"], "h1"),
            (
                "BatchNormalization",
                &["h1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
                "n1",
            ),
            ("Relu", &["n1"], "a1"),
            ("Conv", &["a1", "c2"], "h2"),
            (
                "BatchNormalization",
                &["h2", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"],
                "n2",
            ),
            ("Conv", &["x", "cd"], "hd"),
            (
                "BatchNormalization",
                &["hd", "bnd.scale", "bnd.bias", "bnd.mean", "bnd.var"],
                "nd",
            ),
            ("Add", &["n2", "nd"], "sum"),
            ("Relu", &["sum"], "out"),
        ],
    );
    assert_eq!(r.adds.len(), 1, "{r:#?}");
    let a = &r.adds[0];
    assert_eq!((a.branch.as_str(), a.stream.as_str()), ("n2", "nd"));
    assert_eq!((a.branch_layers, a.stream_layers), (2, 1));
    assert_eq!(a.projection.as_deref(), Some("c2"));
    assert_eq!(a.last_norm.as_deref(), Some("bn2.scale"));
}

/// The command line: `--preset` prints the knobs and the residual adds after the table, an
/// unknown knob is a usage error naming the knobs, and `--zero-init-residual` needs a preset.
#[test]
fn preset_on_the_command_line() {
    let m = fixtures_dir().join("recipes").join("resnet.onnx");
    let m = m.to_str().unwrap();
    let o = crate::common::run(&[m, "--dry-run", "--preset", "resnet", "--zero-init-residual"]);
    let out = crate::common::text(&o.stdout);
    assert!(o.status.success(), "{}", crate::common::text(&o.stderr));
    assert!(
        out.contains("preset resnet: zero_init_residual=1 (given)"),
        "{out}"
    );
    assert!(out.contains("last norm layer2.0.bn2.weight"), "{out}");
    let o = crate::common::run(&[
        m,
        "--dry-run",
        "--preset",
        "resnet",
        "--preset-arg",
        "depth=3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        crate::common::text(&o.stderr).contains("has no knob `depth`; it takes zero_init_residual")
    );
    let o = crate::common::run(&[m, "--dry-run", "--zero-init-residual"]);
    assert_eq!(o.status.code(), Some(2));
    // --json carries the same: the knobs with their sources and every residual add.
    let o = crate::common::run(&[
        m,
        "--dry-run",
        "--json",
        "--preset",
        "resnet(zero_init_residual=1)",
    ]);
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["preset"]["knobs"][0]["source"], "given");
    let norms: Vec<&str> = j["preset"]["residual_adds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["last_norm"].as_str().unwrap())
        .collect();
    assert_eq!(
        norms,
        [
            "layer1.0.bn2.weight",
            "layer1.1.bn2.weight",
            "layer2.0.bn2.weight"
        ]
    );
    assert!(j["tensors"].as_array().unwrap().len() > 10);
}

/// `--lsuv --json` reports each layer's std before and after.
#[cfg(feature = "forward")]
#[test]
fn lsuv_on_the_command_line() {
    let m = fixtures_dir().join("recipes").join("lsuv_tanh_mlp.onnx");
    let o = crate::common::run(&[
        m.to_str().unwrap(),
        "--dry-run",
        "--json",
        "--lsuv",
        "--input-shape",
        "64,32",
    ]);
    assert!(o.status.success(), "{}", crate::common::text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let layers = j["lsuv"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 9);
    for l in layers {
        assert!(
            (l["std_after"].as_f64().unwrap() - 1.0).abs() <= 0.01,
            "{l}"
        );
        assert!(l["std_before"].as_f64().unwrap() > 0.0);
    }
}

/// `--lsuv` runs the rewrite's own steps around LSUV: a `--rule` that decides nothing is
/// refused before anything is written, and the report (in graph order, with the files
/// written) is the one the same run without `--lsuv` prints.
#[cfg(feature = "forward")]
#[test]
fn lsuv_runs_the_steps_of_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixtures_dir().join("recipes").join("lsuv_tanh_mlp.onnx");
    let out = dir.path().join("out.onnx");
    let run = |extra: &[&str]| {
        let mut args = vec![m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force"];
        args.extend_from_slice(extra);
        crate::common::run(&args)
    };
    let o = run(&[
        "--lsuv",
        "--input-shape",
        "64,32",
        "--rule",
        "nothing*=zeros",
    ]);
    assert!(!o.status.success());
    let err = crate::common::text(&o.stderr);
    assert!(
        err.contains("--rule 'nothing*' matches no initializer"),
        "{err}"
    );
    assert!(!out.exists(), "a refused run wrote its output");

    let names = |o: &std::process::Output| -> (Vec<String>, serde_json::Value) {
        assert!(o.status.success(), "{}", crate::common::text(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let names = j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        (names, j["files_written"].clone())
    };
    let with = run(&["--json", "--lsuv", "--input-shape", "64,32"]);
    let (lsuv_order, lsuv_files) = names(&with);
    let (plain_order, plain_files) = names(&run(&["--json"]));
    assert_eq!(lsuv_order, plain_order);
    assert_eq!(lsuv_files, plain_files);
    let written = lsuv_files.as_array().expect("files_written");
    assert_eq!(written.len(), 1);
    assert!(written[0].as_str().unwrap().ends_with("out.onnx"));
}

/// Torch parameter name of each ONNX initializer, from the fixture's ground truth.
fn torch_names(path: &Path) -> std::collections::HashMap<String, String> {
    let gt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path.with_extension("gt.json")).expect("read gt"),
    )
    .expect("parse gt");
    gt["initializers"]
        .as_array()
        .expect("initializers")
        .iter()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_owned(),
                i["torch_param"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The residual branches of the pattern fixtures end in the projections their PyTorch modules
/// add back into the stream (`hidden + o_proj(attn)`, `hidden + down_proj(mlp)`; GPT-2's
/// `c_proj`s; BERT's `attention.output.dense` and `output.dense` before the post-LN; T5's `o`
/// and `wo`), found from the graph alone (most of these exports name the weights `val_N` or
/// `onnx::MatMul_N`). Each has one block, so depth 1.
#[test]
fn residual_projections_of_transformer_fixtures() {
    let cases: &[(&str, &[&str])] = &[
        (
            "llama_dynamo",
            &[
                "m.layers.0.self_attn.o_proj.weight",
                "m.layers.0.mlp.down_proj.weight",
            ],
        ),
        (
            "gpt2_dynamo",
            &["m.h.0.attn.c_proj.weight", "m.h.0.mlp.c_proj.weight"],
        ),
        (
            "bert",
            &[
                "m.encoder.layer.0.attention.output.dense.weight",
                "m.encoder.layer.0.output.dense.weight",
            ],
        ),
        (
            "bert_dynamo",
            &[
                "m.encoder.layer.0.attention.output.dense.weight",
                "m.encoder.layer.0.output.dense.weight",
            ],
        ),
        (
            "bert_ort",
            &[
                "m.encoder.layer.0.attention.output.dense.weight",
                "m.encoder.layer.0.output.dense.weight",
            ],
        ),
        (
            "t5",
            &[
                "m.encoder.block.0.layer.0.SelfAttention.o.weight",
                "m.encoder.block.0.layer.1.DenseReluDense.wo.weight",
            ],
        ),
    ];
    for (stem, want) in cases {
        let path = fixtures_dir().join("patterns").join(format!("{stem}.onnx"));
        let names = torch_names(&path);
        let r = residuals_of(&path);
        let got: Vec<&str> = r
            .adds
            .iter()
            .map(|a| {
                let p = a
                    .projection
                    .as_deref()
                    .expect("every branch has a projection");
                names.get(p).map_or(p, String::as_str)
            })
            .collect();
        assert_eq!(&got, want, "{stem}: {r:#?}");
        assert_eq!(r.depth, 1, "{stem}");
        assert!(
            r.adds
                .iter()
                .all(|a| a.stream_layers == 0 && a.branch_layers == 2 && a.last_norm.is_none()),
            "{stem}: {r:#?}"
        );
    }
}

/// A network without skip connections has no residual adds, and no depth.
#[test]
fn no_residuals_without_skips() {
    for stem in ["cnn_train", "mlp_relu_tanh", "mlp_relu_tanh_dynamo", "lstm"] {
        let r = residuals_of(&fixtures_dir().join(format!("{stem}.onnx")));
        assert_eq!(r, Residuals::default(), "{stem}");
    }
}

/// Rewrite `tests/fixtures/recipes/{stem}.onnx` with `preset` into a temporary file and return
/// the loaded output with the run's outcome.
fn rewrite_with(
    stem: &str,
    preset: &str,
    rules: Rules,
) -> (LoadedModel, pipeline::Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(format!("{stem}.onnx"));
    let model = fixtures_dir().join("recipes").join(format!("{stem}.onnx"));
    let outcome = pipeline::run(&preset_config(model, &out, preset, rules)).expect("rewrite");
    (LoadedModel::open(&out).expect("output loads"), outcome, dir)
}

/// A rewrite of `model` into `out` with `preset` over `rules`, seed 17.
fn preset_config(
    model: std::path::PathBuf,
    out: &std::path::Path,
    preset: &str,
    rules: Rules,
) -> RewriteConfig {
    let rules = Rules {
        preset: Some(preset.parse::<Preset>().expect("preset parses")),
        ..rules
    };
    config_to(model, out, rules, 17)
}

/// A rewrite of `model` into the new file `out` under `rules` with `seed`.
fn config_to(
    model: std::path::PathBuf,
    out: &std::path::Path,
    rules: Rules,
    seed: u64,
) -> RewriteConfig {
    RewriteConfig {
        model,
        destination: Destination::Path(out.to_path_buf()),
        force: false,
        rules,
        seed,
        analysis: AnalysisOptions::default(),
        cancel: None,
        progress: None,
    }
}

/// The rules the LSUV tests plan with: orthogonal after every activation class.
#[cfg(feature = "forward")]
fn orthogonal_rules() -> Rules {
    Rules {
        activation: onnx_reinit::plan::ActivationClass::ALL
            .iter()
            .map(|&c| (c, onnx_reinit::plan::Rule::parse("orthogonal").unwrap()))
            .collect(),
        ..Rules::default()
    }
}

/// The tensors whose report reason mentions `why`, in report order.
fn treated_as<'a>(outcome: &'a pipeline::Outcome, why: &str) -> Vec<&'a str> {
    outcome
        .report
        .tensors
        .iter()
        .filter(|t| t.reason.contains(why))
        .map(|t| t.name.as_str())
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

/// Every tensor of the fixture's ground truth (the values transformers' `_init_weights` or
/// torchvision's constructor wrote): constants (zero biases, unit norms, torchvision's zeroed
/// last norms) equal exactly; random tensors have the library's std within sampling tolerance
/// (five standard errors of the two sample stds, √(1/(2n)) each relative) and a mean within
/// five standard errors of 0. Tensors the preset leaves to other rules are listed in `skip`.
fn check_against_library(stem: &str, preset: &str, skip: &[&str]) -> pipeline::Outcome {
    let (out, outcome, _dir) = rewrite_with(stem, preset, Rules::default());
    let gt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            fixtures_dir()
                .join("recipes")
                .join(format!("{stem}.gt.json")),
        )
        .expect("read gt"),
    )
    .expect("parse gt");
    let tensors = gt["tensors"].as_object().expect("tensors");
    assert!(tensors.len() >= 12, "{stem}: ground truth too small");
    let mut checked = 0;
    for (name, g) in tensors {
        let torch = g["torch"].as_str().unwrap_or_default();
        if skip.iter().any(|s| torch.contains(s)) {
            continue;
        }
        let v = out
            .small_values_f64(name.as_str(), usize::MAX)
            .expect("readable");
        let n = v.len() as f64;
        assert_eq!(v.len() as u64, g["n"].as_u64().unwrap(), "{stem} {name}");
        if let Some(c) = g["constant"].as_f64() {
            assert!(
                v.iter().all(|&x| x == c),
                "{stem} {name} ({torch}): library wrote constant {c}, got {:?}",
                &v[..v.len().min(4)]
            );
        } else {
            let want = g["std"].as_f64().unwrap();
            let (m, s) = mean_std(&v);
            let tol = 5.0 * want * (1.0 / n).sqrt();
            assert!(
                (s - want).abs() <= tol,
                "{stem} {name} ({torch}): std {s}, library {want} ± {tol}"
            );
            assert!(
                m.abs() <= 5.0 * want / n.sqrt(),
                "{stem} {name} ({torch}): mean {m}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 12, "{stem}: only {checked} tensors checked");
    outcome
}

#[test]
fn preset_bert_matches_transformers() {
    check_against_library("bert", "bert", &[]);
}

#[test]
fn preset_llama_matches_transformers() {
    check_against_library("llama", "llama", &[]);
}

/// GPT-2's c_proj of attention and MLP get 0.02/√(2·3): n_layer 3 read from the graph's three
/// repeated blocks, and the report says why each was treated as a residual output projection.
#[test]
fn preset_gpt2_matches_transformers_with_depth_from_graph() {
    let outcome = check_against_library("gpt2", "gpt2", &[]);
    let projections = treated_as(&outcome, "residual output projection");
    let want: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                format!("m.h.{i}.attn.c_proj.weight"),
                format!("m.h.{i}.mlp.c_proj.weight"),
            ]
        })
        .collect();
    assert_eq!(projections, want);
    let r = outcome
        .report
        .tensors
        .iter()
        .find(|t| t.name == want[0])
        .unwrap();
    assert!(r.reason.contains("0.02/√(2·3)"), "{}", r.reason);
    // An explicit n_layer wins over the graph's.
    let (out, _, _d) = rewrite_with("gpt2", "gpt2(n_layer=50)", Rules::default());
    let (_, s) = mean_std(
        &out.small_values_f64("m.h.1.mlp.c_proj.weight", usize::MAX)
            .unwrap(),
    );
    let want = 0.02 / 100f64.sqrt();
    assert!((s - want).abs() < 5.0 * want / 64.0, "{s} vs {want}");
}

#[test]
fn preset_t5_matches_transformers() {
    check_against_library("t5", "t5", &[]);
}

/// ViT: transformers' ViT draws Linear/Conv weights from N(0, 0.02), timm (the preset) from the
/// normal truncated at ±2 (absolute), the same std at this scale. The class token (an
/// initializer expanded and concatenated before the patch sequence) and the position
/// embeddings (an initializer added to that sequence), which the analysis alone leaves
/// untouched, are recognised from the graph and drawn as ViTPreTrainedModel._init_weights
/// does: trunc_normal_(std=initializer_range) on [−2, 2].
#[test]
fn preset_vit_matches_transformers() {
    let outcome = check_against_library("vit", "vit", &[]);
    for (name, what) in [
        ("m.embeddings.cls_token", "class token"),
        ("m.embeddings.position_embeddings", "position embeddings"),
    ] {
        let r = outcome
            .report
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} not planned"));
        assert!(r.reason.contains(what), "{name}: {}", r.reason);
        assert_eq!(r.role, "embedding", "{name}");
    }
    // Without the preset they stay untouched, with the analysis's reason.
    let (_, plain, _d) = rewrite_with("vit", "bert", Rules::default());
    assert!(
        plain
            .report
            .tensors
            .iter()
            .all(|t| t.name != "m.embeddings.cls_token"),
        "bert's recipe does not look for learned tokens"
    );
}

/// T5 v1.1 (`tie_word_embeddings=False`): T5's `_init_weights` gives lm_head N(0,
/// initializer_factor·1.0) — untied in older transformers, tied to the shared table (the same
/// distribution) in transformers 5, whose export writes it as its own initializer. Either way
/// not the fan rule of the other projections, which gave it N(0, 32^−½) before; the preset
/// finds it as the weight layer whose output is the logits. The decoder's relative-position
/// bias is read with constant indices and not added into an activation, so the analysis
/// leaves it untouched (skipped here).
#[test]
fn preset_t5_lm_head_matches_transformers() {
    let outcome = check_against_library(
        "t5_lm_head",
        "t5",
        &["decoder.block.0.layer.0.SelfAttention.relative_attention_bias"],
    );
    let heads: Vec<&str> = outcome
        .report
        .tensors
        .iter()
        .filter(|t| t.reason.contains("lm_head"))
        .flat_map(|t| t.consumers.iter().map(String::as_str))
        .collect();
    assert_eq!(heads, ["MatMul /m/lm_head/MatMul"]);
}

/// The token embedding's padding row: transformers zeroes row `padding_idx` of an nn.Embedding
/// built with one — BERT's `word_embeddings` (BertConfig.pad_token_id = 0), not its position or
/// token-type tables. The ground truth is the fixture itself (the library's values): the rows
/// that are all zero in the input are exactly those the preset writes as zeros. `pad_token_id`
/// moves the row, `none` removes it, an id past the table is an error naming it; LLaMA's
/// default (LlamaConfig.pad_token_id = None) writes none, as the library did.
#[test]
fn preset_zeroes_the_padding_row_of_the_token_embedding() {
    let zero_rows = |m: &LoadedModel, name: &str, d: usize| -> Vec<usize> {
        let v = m.small_values_f64(name, usize::MAX).expect("readable");
        (0..v.len() / d)
            .filter(|r| v[r * d..(r + 1) * d].iter().all(|&x| x == 0.0))
            .collect()
    };
    let lib = LoadedModel::open(fixtures_dir().join("recipes").join("bert.onnx")).unwrap();
    let tables = [
        "m.embeddings.word_embeddings.weight",
        "m.embeddings.position_embeddings.weight",
        "m.embeddings.token_type_embeddings.weight",
    ];
    let want: Vec<Vec<usize>> = tables.iter().map(|t| zero_rows(&lib, t, 32)).collect();
    assert_eq!(want, [vec![0], vec![], vec![]], "the library's zero rows");
    let (out, outcome, _d) = rewrite_with("bert", "bert", Rules::default());
    let got: Vec<Vec<usize>> = tables.iter().map(|t| zero_rows(&out, t, 32)).collect();
    assert_eq!(got, want);
    let r = outcome
        .report
        .tensors
        .iter()
        .find(|t| t.name == tables[0])
        .unwrap();
    assert!(
        r.reason.contains("row 0 (pad_token_id) zeros"),
        "{}",
        r.reason
    );
    let (out, _, _d) = rewrite_with("bert", "bert(pad_token_id=5)", Rules::default());
    assert_eq!(zero_rows(&out, tables[0], 32), [5]);
    let (out, _, _d) = rewrite_with("bert", "bert(pad_token_id=none)", Rules::default());
    assert!(zero_rows(&out, tables[0], 32).is_empty());
    let dir = tempfile::tempdir().unwrap();
    let err = pipeline::run(&preset_config(
        fixtures_dir().join("recipes").join("bert.onnx"),
        &dir.path().join("o.onnx"),
        "bert(pad_token_id=64)",
        Rules::default(),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pad_token_id=64") && err.contains(tables[0]) && err.contains("64 rows"),
        "{err}"
    );
    assert!(!dir.path().join("o.onnx").exists());
    let e = "bert(pad_token_id=1.5)".parse::<Preset>().unwrap_err();
    assert!(e.contains("row index"), "{e}");
    let lib = LoadedModel::open(fixtures_dir().join("recipes").join("llama.onnx")).unwrap();
    let (out, _, _d) = rewrite_with("llama", "llama", Rules::default());
    let t = "m.embed_tokens.weight";
    assert!(zero_rows(&lib, t, 32).is_empty());
    assert!(zero_rows(&out, t, 32).is_empty());
    let (out, _, _d) = rewrite_with("llama", "llama(pad_token_id=3)", Rules::default());
    assert_eq!(zero_rows(&out, t, 32), [3]);
}

#[test]
fn preset_resnet_matches_torchvision() {
    check_against_library("resnet", "resnet", &[]);
}

/// torchvision's zero_init_residual zeroes each BasicBlock's bn2 — including the downsampling
/// block, whose skip is a conv + BN of its own (1 weight layer against the branch's 2): the
/// preset finds the same norms from the graph.
#[test]
fn preset_resnet_zero_init_residual_matches_torchvision() {
    let outcome = check_against_library("resnet_zero", "resnet(zero_init_residual=1)", &[]);
    let zeroed = treated_as(&outcome, "zero_init_residual");
    assert_eq!(
        zeroed,
        [
            "layer1.0.bn2.weight",
            "layer1.1.bn2.weight",
            "layer2.0.bn2.weight"
        ]
    );
}

/// `--rule` and explicitly given flags keep precedence over a preset.
#[test]
fn preset_below_rules_and_explicit_flags() {
    let rules = Rules {
        overrides: vec![
            onnx_reinit::plan::NameRule::parse("m.h.0.attn.c_proj.weight=zeros").unwrap(),
        ],
        bias: onnx_reinit::plan::Rule::parse("ones").unwrap(),
        explicit: vec!["bias"],
        ..Rules::default()
    };
    let (out, outcome, _d) = rewrite_with("gpt2", "gpt2", rules);
    let v = out
        .small_values_f64("m.h.0.attn.c_proj.weight", usize::MAX)
        .unwrap();
    assert!(v.iter().all(|&x| x == 0.0));
    let b = out
        .small_values_f64("m.h.0.attn.c_attn.bias", usize::MAX)
        .unwrap();
    assert!(b.iter().all(|&x| x == 1.0));
    let e = outcome
        .report
        .tensors
        .iter()
        .find(|t| t.name == "m.h.0.mlp.c_fc.weight")
        .unwrap();
    assert!(e.reason.starts_with("--preset gpt2"), "{}", e.reason);
}

#[test]
fn preset_text_and_knob_errors() {
    let p: Preset = "gpt2(initializer_range=0.01, n_layer=12)".parse().unwrap();
    assert_eq!(p.to_string(), "gpt2(initializer_range=0.01,n_layer=12)");
    let e = "gpt3".parse::<Preset>().unwrap_err();
    assert!(e.contains("bert, gpt2, llama, t5, resnet, vit"), "{e}");
    let e = "bert(n_layer=2)".parse::<Preset>().unwrap_err();
    assert!(
        e.contains("no knob `n_layer`") && e.contains("initializer_range"),
        "{e}"
    );
    let e = "bert(initializer_range=-1)".parse::<Preset>().unwrap_err();
    assert!(e.contains("positive"), "{e}");
    // gpt2 on a model without residual blocks: n_layer cannot be read, and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let err = pipeline::run(&preset_config(
        fixtures_dir().join("mlp_relu_tanh.onnx"),
        &out,
        "gpt2",
        Rules::default(),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mlp_relu_tanh.onnx")
            && err.contains("n_layer")
            && err.contains("--preset-arg"),
        "{err}"
    );
    assert!(!out.exists());
}

/// LSUV on a deep ReLU MLP, a deep tanh MLP and a small ReLU conv net (9, 9 and 4 weight
/// layers, PyTorch's default init in the files): after the rewrite, every weight layer's output
/// std, measured by a separate forward pass of the written file (inspect's tract pass, other
/// inputs: another seed), is 1 within 0.1; the rewrite is deterministic for a seed; a model
/// tract cannot run (an input shape its Conv rejects) is an error naming the node, with no
/// output.
#[cfg(feature = "forward")]
#[test]
fn lsuv_gives_unit_output_std_per_layer() {
    use onnx_reinit::inspect::lsuv::{self, LsuvOptions};
    use onnx_reinit::inspect::{ForwardOptions, run_forward};
    for (stem, shape, layers) in [
        ("lsuv_relu_mlp", vec![256, 32], 9),
        ("lsuv_tanh_mlp", vec![256, 32], 9),
        ("lsuv_convnet", vec![64, 3, 8, 8], 4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let model = fixtures_dir().join("recipes").join(format!("{stem}.onnx"));
        let config = |out: &Path| config_to(model.clone(), out, orthogonal_rules(), 5);
        let opts = LsuvOptions {
            seed: 5,
            input_shapes: vec![(None, shape.clone())],
            ..LsuvOptions::default()
        };
        let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
        let (_, result) = lsuv::run(&config(&a), &opts).expect("lsuv");
        assert_eq!(result.layers.len(), layers, "{stem}: {result:#?}");
        assert!(result.skipped.is_empty(), "{stem}: {result:#?}");
        assert!(
            result
                .layers
                .iter()
                .all(|l| l.std_before.is_finite() && l.iterations <= 11)
        );
        lsuv::run(&config(&b), &opts).expect("lsuv again");
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{stem}: not deterministic"
        );

        let out = LoadedModel::open(&a).unwrap();
        let analysis = pipeline::analyze_loaded(&out, &AnalysisOptions::default()).unwrap();
        let report = run_forward(
            &out,
            &analysis,
            &ForwardOptions {
                seed: 99,
                input_shapes: vec![(None, shape.clone())],
                compare: None,
            },
        );
        assert!(report.error.is_none(), "{stem}: {:?}", report.error);
        let weight_rows: Vec<_> = report.runs[0]
            .layers
            .iter()
            .filter(|l| l.kind == "weight")
            .collect();
        assert_eq!(weight_rows.len(), layers, "{stem}");
        for l in weight_rows {
            assert!(
                (l.std - 1.0).abs() < 0.1,
                "{stem} {}: output std {}",
                l.node,
                l.std
            );
        }
        // Before LSUV (the file's own PyTorch init) the deep layers are far from 1.
        let orig =
            LoadedModel::open(fixtures_dir().join("recipes").join(format!("{stem}.onnx"))).unwrap();
        let oa = pipeline::analyze_loaded(&orig, &AnalysisOptions::default()).unwrap();
        let r0 = run_forward(
            &orig,
            &oa,
            &ForwardOptions {
                seed: 99,
                input_shapes: vec![(None, shape)],
                compare: None,
            },
        );
        assert!(
            r0.runs[0]
                .layers
                .iter()
                .filter(|l| l.kind == "weight")
                .any(|l| (l.std - 1.0).abs() > 0.3),
            "{stem}: the test cannot fail"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.onnx");
    let model = fixtures_dir().join("recipes").join("lsuv_convnet.onnx");
    let err = lsuv::run(
        &config_to(model, &out, Rules::default(), 5),
        &LsuvOptions {
            input_shapes: vec![(None, vec![4, 32])],
            ..LsuvOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lsuv_convnet.onnx: --lsuv") && err.contains("/0/Conv"),
        "{err}"
    );
    assert!(!out.exists());
}

/// The sample inputs of `tests/fixtures/recipes/lsuv_inputs.npz`, as make_recipes.py computes
/// them: x[k] = 3·sin(k) + 1 over the flat index, rounded to f32, shape (256, 32).
#[cfg(feature = "forward")]
fn lsuv_file_inputs() -> Vec<f64> {
    (0..256 * 32)
        .map(|k| f64::from((3.0 * f64::from(k).sin() + 1.0) as f32))
        .collect()
}

/// The output std of every Gemm of the MLP in `path` on `x` (rows of 32), by a plain forward
/// pass written here (y = x·Wᵀ + b, then the Relu), independent of tract and of LSUV.
#[cfg(feature = "forward")]
fn mlp_gemm_stds(path: &Path, x: &[f64]) -> Vec<f64> {
    let m = LoadedModel::open(path).expect("loads");
    let nodes = m.skeleton().graph.as_ref().expect("graph").node.clone();
    let mut h: Vec<f64> = x.to_vec();
    let mut width = 32;
    let mut stds = Vec::new();
    for n in &nodes {
        match n.op_type.as_deref() {
            Some("Gemm") => {
                let w = m.small_values_f64(n.input[1].as_str(), usize::MAX).unwrap();
                let b = m.small_values_f64(n.input[2].as_str(), usize::MAX).unwrap();
                let out = b.len();
                assert_eq!(w.len(), out * width);
                let rows = h.len() / width;
                let mut y = vec![0.0; rows * out];
                for r in 0..rows {
                    for o in 0..out {
                        let dot: f64 = (0..width)
                            .map(|i| h[r * width + i] * w[o * width + i])
                            .sum();
                        y[r * out + o] = dot + b[o];
                    }
                }
                stds.push(mean_std(&y).1);
                h = y;
                width = out;
            }
            Some("Relu") => h.iter_mut().for_each(|v| *v = v.max(0.0)),
            other => panic!("unexpected op {other:?}"),
        }
    }
    stds
}

/// `--lsuv --inputs FILE.npz`: LSUV scales each layer on the file's inputs (deflated by
/// np.savez_compressed, or stored by np.savez: the same bytes out), and a forward pass written
/// in this test, on those inputs, finds every Gemm's output std within 0.02 of 1 — which
/// seeded N(0, 1) inputs (mean 0, std 1, not the file's mean 1, std 2.1) do not give. The
/// inputs read are the ones make_recipes.py wrote.
#[cfg(feature = "forward")]
#[test]
fn lsuv_with_inputs_from_an_npz_file() {
    use onnx_reinit::inspect::lsuv::{self, LsuvOptions};
    use onnx_reinit::inspect::npz::{NpyData, read_npz};
    let dir = fixtures_dir().join("recipes");
    let x = lsuv_file_inputs();
    let arrays = read_npz(&dir.join("lsuv_inputs.npz")).expect("reads");
    assert_eq!(arrays.len(), 1);
    assert_eq!(
        (arrays[0].0.as_str(), arrays[0].1.shape.as_slice()),
        ("input", &[256, 32][..])
    );
    let NpyData::F32(v) = &arrays[0].1.data else {
        panic!("float32")
    };
    assert!(v.iter().zip(&x).all(|(&a, &b)| f64::from(a) == b));

    let tmp = tempfile::tempdir().unwrap();
    let config = |out: &Path| config_to(dir.join("lsuv_relu_mlp.onnx"), out, orthogonal_rules(), 5);
    let with_file = |npz: &str| LsuvOptions {
        seed: 5,
        inputs: Some(dir.join(npz)),
        ..LsuvOptions::default()
    };
    let (a, b, c) = (
        tmp.path().join("a.onnx"),
        tmp.path().join("b.onnx"),
        tmp.path().join("c.onnx"),
    );
    let (_, result) = lsuv::run(&config(&a), &with_file("lsuv_inputs.npz")).expect("lsuv");
    assert_eq!(result.layers.len(), 9, "{result:#?}");
    lsuv::run(&config(&b), &with_file("lsuv_inputs_stored.npz")).expect("lsuv, stored");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    for (i, s) in mlp_gemm_stds(&a, &x).into_iter().enumerate() {
        assert!(
            (s - 1.0).abs() < 0.02,
            "layer {i}: output std {s} on the file's inputs"
        );
    }
    // Seeded N(0, 1) inputs give other scales: on the file's inputs the stds are off.
    lsuv::run(
        &config(&c),
        &LsuvOptions {
            seed: 5,
            input_shapes: vec![(None, vec![256, 32])],
            ..LsuvOptions::default()
        },
    )
    .expect("lsuv, seeded");
    assert!(
        mlp_gemm_stds(&c, &x).iter().any(|s| (s - 1.0).abs() > 0.3),
        "the test cannot fail"
    );

    // Bad files: an error naming the file and the input, and no output.
    for (npz, want) in [
        ("lsuv_inputs_fortran.npz", "Fortran order"),
        (
            "lsuv_inputs_f64.npz",
            "array `input` is float64, the graph input is float32",
        ),
        (
            "lsuv_inputs_shape.npz",
            "array `input` has shape [2, 16], the graph input is [batch, 32]",
        ),
        (
            "lsuv_inputs_name.npz",
            "no array for the graph input `input` (the file has: x)",
        ),
        ("no_such_file.npz", "no_such_file.npz"),
        ("lsuv_relu_mlp.onnx", "not a zip archive"),
    ] {
        let out = tmp.path().join("bad.onnx");
        let err = lsuv::run(&config(&out), &with_file(npz))
            .unwrap_err()
            .to_string();
        assert!(err.contains(npz) && err.contains(want), "{npz}: {err}");
        assert!(!out.exists(), "{npz}");
    }
}

/// `--inputs` on the command line: the summary names the file; it needs `--lsuv` and excludes
/// `--input-shape`; integer inputs (BERT's int64 token ids) go through the same path.
#[cfg(feature = "forward")]
#[test]
fn lsuv_inputs_on_the_command_line() {
    let dir = fixtures_dir().join("recipes");
    let m = dir.join("lsuv_relu_mlp.onnx");
    let npz = dir.join("lsuv_inputs.npz");
    let (m, npz) = (m.to_str().unwrap(), npz.to_str().unwrap());
    let o = crate::common::run(&[m, "--dry-run", "--lsuv", "--inputs", npz]);
    assert!(o.status.success(), "{}", crate::common::text(&o.stderr));
    let out = crate::common::text(&o.stdout);
    assert!(out.contains(&format!("lsuv (inputs {npz},")), "{out}");
    let o = crate::common::run(&[m, "--dry-run", "--inputs", npz]);
    assert_eq!(o.status.code(), Some(2));
    let o = crate::common::run(&[
        m,
        "--dry-run",
        "--lsuv",
        "--inputs",
        npz,
        "--input-shape",
        "4,32",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = crate::common::run(&[
        m,
        "--dry-run",
        "--lsuv",
        "--inputs",
        &npz.replace("lsuv_inputs", "lsuv_inputs_shape"),
    ]);
    assert!(!o.status.success());
    let err = crate::common::text(&o.stderr);
    assert!(
        err.contains("lsuv_inputs_shape.npz") && err.contains("`input`"),
        "{err}"
    );
    // Integer inputs: token ids for BERT (int64, as the graph declares).
    let bert = dir.join("bert.onnx");
    let ids = dir.join("lsuv_inputs_ids.npz");
    let o = crate::common::run(&[
        bert.to_str().unwrap(),
        "--dry-run",
        "--json",
        "--lsuv",
        "--inputs",
        ids.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::common::text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["lsuv"]["inputs"], ids.to_str().unwrap());
    let layers = j["lsuv"]["layers"].as_array().unwrap();
    assert!(layers.len() >= 12, "{layers:?}");
    for l in layers {
        assert!(
            (l["std_after"].as_f64().unwrap() - 1.0).abs() <= 0.01,
            "{l}"
        );
    }
}

/// In every BERT export of the pattern fixtures (TorchScript, dynamo, opset 13, onnxruntime's
/// fused EmbedLayerNormalization), the table whose padding row the bert preset zeroes is the
/// module built with `padding_idx`: `word_embeddings`, not the position or token-type tables.
#[test]
fn padding_row_table_of_the_bert_exports() {
    for stem in ["bert", "bert_dynamo", "bert_opset13", "bert_ort"] {
        let path = fixtures_dir().join("patterns").join(format!("{stem}.onnx"));
        let names = torch_names(&path);
        let m = LoadedModel::open(&path).expect("loads");
        let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).expect("analysis");
        let p = onnx_reinit::preset::resolve(&"bert".parse().unwrap(), m.skeleton(), &a)
            .expect("resolves");
        let zeroed: Vec<(&str, std::ops::Range<u64>)> = p
            .decisions
            .iter()
            .filter_map(|((_, n), d)| {
                Some((
                    names.get(n).map_or(n.as_str(), String::as_str),
                    d.zeroed.clone()?,
                ))
            })
            .collect();
        let width = a
            .tensors
            .iter()
            .find(|t| {
                names.get(t.name.as_str()).map(String::as_str)
                    == Some("m.embeddings.word_embeddings.weight")
            })
            .map(|t| t.dims[1] as u64)
            .expect("word embeddings");
        assert_eq!(
            zeroed,
            [("m.embeddings.word_embeddings.weight", 0..width)],
            "{stem}"
        );
    }
}
