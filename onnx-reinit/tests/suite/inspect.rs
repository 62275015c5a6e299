//! Tests of `onnx-reinit inspect`: verdicts on damaged copies of the real fixtures, `ok` after a
//! re-initialization, statistics of f16/bf16 payloads, JSON and SVG outputs, exit codes, and
//! (feature `forward`) the layer-by-layer std of a deep ReLU MLP built here in code.

use std::path::{Path, PathBuf};

use init_core::{Sampler, Stream};
use onnx_reinit::analysis::{AnalysisOptions, Role};
use onnx_reinit::inspect::{self, InspectOptions, InspectReport, TensorRow, Verdict};
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::pipeline::{self, Destination, RewriteConfig};
use onnx_reinit::plan::Rules;
use onnx_reinit::rewrite::{self, Filler, OutputTarget, RewriteOptions};

use crate::common::onnx::{BFLOAT16, FLOAT, FLOAT16, Payload, node, tensor_fields};
use crate::common::{bin, fixture_models, fixtures_dir, pb, run, text};

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixtures() -> Vec<PathBuf> {
    let v = fixture_models();
    assert!(v.len() >= 10, "fixtures missing: {v:?}");
    v
}

fn inspect_path(path: &Path) -> InspectReport {
    inspect::inspect(path, &InspectOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .2
}

/// How a damaged copy's weights are made.
#[derive(Clone, Copy, Debug)]
enum Damage {
    Zero,
    Constant(f64),
    Scale(f64),
}

/// A [`Filler`] that rewrites the targets from their own values: zero, a constant, or scaled.
struct Damager<'a> {
    model: &'a LoadedModel,
    damage: Damage,
}

impl Filler for Damager<'_> {
    fn fill(&self, tensor: usize, start: u64, mut out: ValuesMut<'_>) {
        let n = out.len();
        self.model
            .read_values(tensor, start, out.reborrow_prefix(n))
            .expect("read original values");
        let f = |x: f64| match self.damage {
            Damage::Zero => 0.0,
            Damage::Constant(c) => c,
            Damage::Scale(s) => x * s,
        };
        match out {
            ValuesMut::F32(v) => v.iter_mut().for_each(|x| *x = f(f64::from(*x)) as f32),
            ValuesMut::F64(v) => v.iter_mut().for_each(|x| *x = f(*x)),
            ValuesMut::F16(v) => v
                .iter_mut()
                .for_each(|x| *x = half::f16::from_f64(f(x.to_f64()))),
            ValuesMut::BF16(v) => v
                .iter_mut()
                .for_each(|x| *x = half::bf16::from_f64(f(x.to_f64()))),
        }
    }
}

/// Writes a copy of `src` whose tensors with one of `roles` are damaged; returns its path and
/// the names of the damaged tensors.
fn damaged_copy(src: &Path, dir: &Path, damage: Damage, roles: &[Role]) -> (PathBuf, Vec<String>) {
    let model = LoadedModel::open(src).expect("open fixture");
    let analysis = pipeline::analyze_loaded(&model, &AnalysisOptions::default()).expect("analyse");
    let targets: Vec<usize> = analysis
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role.is_some_and(|r| roles.contains(&r)))
        .map(|(i, _)| i)
        .collect();
    let names = targets
        .iter()
        .map(|&i| analysis.tensors[i].name.to_string())
        .collect();
    let out = dir.join(format!(
        "{}.{damage:?}.onnx",
        src.file_stem().unwrap().to_string_lossy()
    ));
    rewrite::rewrite(
        &model,
        &targets,
        &Damager {
            model: &model,
            damage,
        },
        &RewriteOptions::new(OutputTarget::Path(out.clone())),
    )
    .expect("rewrite");
    (out, names)
}

fn row<'a>(report: &'a InspectReport, name: &str) -> &'a TensorRow {
    report
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

// ---------------------------------------------------------------------------------------------
// Verdicts on the real fixtures

#[test]
fn exported_fixtures_are_ok_and_rows_are_complete() {
    for path in fixtures() {
        let r = inspect_path(&path);
        assert!(!r.tensors.is_empty(), "{}", path.display());
        for t in &r.tensors {
            assert_eq!(t.verdict, Verdict::Ok, "{}: {t:?}", path.display());
            assert!(t.std.is_some() && t.mean.is_some(), "{t:?}");
            if matches!(t.role.as_str(), "weight" | "recurrent_weight") {
                // PyTorch's default init is U(±1/√fan_in): std/he std = 1/√6 for ReLU layers.
                let ratio = t.ratio.expect("weights have a ratio");
                assert!((0.2..2.0).contains(&ratio), "{}: {t:?}", path.display());
                assert!(t.fan_in.is_some() && t.fan_out.is_some(), "{t:?}");
            }
        }
        assert_eq!(r.summary.ok, r.tensors.len());
        assert_eq!(r.summary.flagged(), 0);
        assert!(r.summary.suggested_command.is_none());
    }
}

#[test]
fn pytorch_default_linear_init_has_the_expected_ratio() {
    // fc1 (16 → 64, before ReLU): U(±1/4) has std 1/(4√3); he_uniform's is √(2/16).
    let r = inspect_path(&fixtures_dir().join("mlp_relu_tanh.onnx"));
    let fc1 = row(&r, "fc1.weight");
    assert_eq!((fc1.fan_in, fc1.fan_out), (Some(16), Some(64)));
    assert_eq!(fc1.activation.as_deref(), Some("relu"));
    assert_eq!(fc1.recommended.as_deref(), Some("he_uniform"));
    let rec = fc1.recommended_std.unwrap();
    assert!((rec - (2.0f64 / 16.0).sqrt()).abs() < 1e-12, "{rec}");
    let expected = 1.0 / (4.0 * 3f64.sqrt());
    assert!((fc1.std.unwrap() / expected - 1.0).abs() < 0.1, "{fc1:?}");
    assert!((fc1.ratio.unwrap() - fc1.std.unwrap() / rec).abs() < 1e-12);
    assert!(fc1.min.unwrap() >= -0.25 && fc1.max.unwrap() <= 0.25);
}

#[test]
fn damaged_weights_get_the_right_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let weights = [Role::Weight, Role::RecurrentWeight];
    let cases = [
        (Damage::Zero, Verdict::Zero),
        (Damage::Constant(0.05), Verdict::Constant),
        (Damage::Scale(0.001), Verdict::TooSmall),
        (Damage::Scale(1000.0), Verdict::TooLarge),
    ];
    for path in fixtures() {
        for (damage, verdict) in cases {
            let (copy, names) = damaged_copy(&path, dir.path(), damage, &weights);
            assert!(!names.is_empty(), "{}", path.display());
            let r = inspect_path(&copy);
            for t in &r.tensors {
                let expected = if names.contains(&t.name) {
                    verdict
                } else {
                    Verdict::Ok
                };
                assert_eq!(t.verdict, expected, "{} {damage:?}: {t:?}", path.display());
                if expected != Verdict::Ok {
                    assert!(t.note.is_some(), "{t:?}");
                }
            }
            assert_eq!(r.summary.count(verdict), names.len());
            assert_eq!(r.summary.flagged(), names.len());
            let cmd = r.summary.suggested_command.as_deref().expect("a fix");
            assert!(cmd.starts_with("onnx-reinit "), "{cmd}");
            // Every tensor with a role is a weight in the MLPs: the plain command fixes them.
            if names.len() < r.tensors.len() {
                assert!(cmd.ends_with("--rule '*=keep'"), "{cmd}");
                assert_eq!(cmd.matches("--rule").count(), names.len() + 1, "{cmd}");
            }
        }
    }
}

#[test]
fn suggested_command_fixes_exactly_the_flagged_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures_dir().join("cnn_nofold.onnx");
    let (copy, names) = damaged_copy(&src, dir.path(), Damage::Scale(1e-4), &[Role::Weight]);
    let before = inspect_path(&copy);
    assert_eq!(before.summary.too_small, names.len());
    let cmd = before.summary.suggested_command.clone().unwrap();
    // Run the suggested command (after the program name) with an explicit output.
    let fixed = dir.path().join("fixed.onnx");
    let words = shell_words(&cmd);
    assert_eq!(words[0], "onnx-reinit");
    let mut args: Vec<String> = words[1..].to_vec();
    args.extend(["-o".to_owned(), fixed.display().to_string()]);
    let out = bin().args(&args).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
    let after = inspect_path(&fixed);
    assert_eq!(after.summary.flagged(), 0, "{}", after.table());
    // Everything not flagged kept its bytes' statistics.
    for (a, b) in before.tensors.iter().zip(&after.tensors) {
        if !names.contains(&a.name) {
            assert_eq!((a.mean, a.std), (b.mean, b.std), "{}", a.name);
        }
    }
}

/// Splits a command line as a POSIX shell would for the quoting [`inspect`] produces.
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut started = false;
    for c in cmd.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                started = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if started {
                    words.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(cur);
    }
    words
}

#[test]
fn norms_biases_and_statistics_have_their_own_checks() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures_dir().join("cnn_nofold.onnx");
    // Zero biases are fine; zero norm scales are not; zero running variances are not.
    let (zero, _) = damaged_copy(
        &src,
        dir.path(),
        Damage::Zero,
        &[
            Role::Bias,
            Role::NormScale,
            Role::NormShift,
            Role::NormStat(onnx_reinit::analysis::NormStatKind::Var),
        ],
    );
    let r = inspect_path(&zero);
    for t in &r.tensors {
        let expected = match t.role.as_str() {
            "norm_scale" => Verdict::Zero,
            "norm_stat" if t.note.as_deref().is_some_and(|n| n.contains("variance")) => {
                Verdict::Zero
            }
            _ => Verdict::Ok,
        };
        assert_eq!(t.verdict, expected, "{t:?}");
    }
    assert!(
        r.tensors
            .iter()
            .any(|t| t.role == "norm_stat" && t.verdict == Verdict::Zero)
    );
    // Huge biases are too large; negative running variances too small.
    let (big, _) = damaged_copy(&src, dir.path(), Damage::Constant(50.0), &[Role::Bias]);
    let r = inspect_path(&big);
    assert!(
        r.tensors
            .iter()
            .filter(|t| t.role == "bias")
            .all(|t| t.verdict == Verdict::TooLarge)
    );
    let (neg, _) = damaged_copy(
        &src,
        dir.path(),
        Damage::Constant(-1.0),
        &[Role::NormStat(onnx_reinit::analysis::NormStatKind::Var)],
    );
    let r = inspect_path(&neg);
    let vars: Vec<_> = r
        .tensors
        .iter()
        .filter(|t| t.verdict == Verdict::TooSmall)
        .collect();
    assert!(!vars.is_empty());
    assert!(vars.iter().all(|t| t.role == "norm_stat"), "{vars:?}");
}

#[test]
fn reinitialized_fixtures_are_all_ok() {
    let dir = tempfile::tempdir().unwrap();
    for path in fixtures() {
        // Start from a broken copy so the re-initialization has something to fix.
        let (broken, _) = damaged_copy(
            &path,
            dir.path(),
            Damage::Zero,
            &[
                Role::Weight,
                Role::RecurrentWeight,
                Role::Embedding,
                Role::NormScale,
            ],
        );
        let out = dir.path().join(format!(
            "{}.reinit.onnx",
            path.file_stem().unwrap().to_string_lossy()
        ));
        pipeline::run(&RewriteConfig {
            model: broken,
            destination: Destination::Path(out.clone()),
            force: true,
            rules: Rules::default(),
            seed: 7,
            analysis: AnalysisOptions::default(),
            cancel: None,
            progress: None,
        })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = inspect_path(&out);
        for t in &r.tensors {
            assert_eq!(t.verdict, Verdict::Ok, "{}: {t:?}", path.display());
            if let (Some(ratio), true) = (t.ratio, t.role != "embedding") {
                // Small tensors: the sample std is within a few percent of the scheme's.
                assert!((0.6..1.4).contains(&ratio), "{}: {t:?}", path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Models built in code

/// A `ValueInfoProto` of a tensor: `dims` as fixed sizes, or `None` for a symbolic dim.
fn value_info(name: &str, elem: i32, dims: &[Option<i64>]) -> Vec<u8> {
    let shape: Vec<Vec<u8>> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(v) => pb::msg(1, &[pb::int(1, *v)]),
            None => pb::msg(1, &[pb::string(2, &format!("d{i}"))]),
        })
        .collect();
    let tensor_type = pb::msg(1, &[pb::int(1, i64::from(elem)), pb::msg(2, &shape)]);
    [pb::string(1, name), pb::bytes(2, &tensor_type)].concat()
}

/// A `ModelProto` (IR version 8, opset 17) around a graph `test` of `nodes`, initializers,
/// inputs and outputs (value infos).
fn model(nodes: &[Vec<u8>], inits: &[Vec<u8>], inputs: &[Vec<u8>], outputs: &[Vec<u8>]) -> Vec<u8> {
    let mut g: Vec<Vec<u8>> = nodes.iter().map(|n| pb::bytes(1, n)).collect();
    g.push(pb::string(2, "test"));
    g.extend(inits.iter().map(|t| pb::bytes(5, t)));
    g.extend(inputs.iter().map(|i| pb::bytes(11, i)));
    g.extend(outputs.iter().map(|o| pb::bytes(12, o)));
    [
        pb::int(1, 8),
        pb::msg(8, &[pb::string(1, ""), pb::int(2, 17)]),
        pb::string(2, "initforge-tests"),
        pb::msg(7, &g),
    ]
    .concat()
}

/// Element type of the weights of [`deep_relu_mlp`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum WeightType {
    F32,
    F16Raw,
    Bf16Int32,
}

/// `x [batch, width] → (MatMul W_i → Relu) × depth`, weights N(0, std²) from a fixed stream,
/// no biases. Returns the file and the weights' values (as stored, widened to f64).
fn deep_relu_mlp(
    dir: &Path,
    width: usize,
    depth: usize,
    std: f64,
    ty: WeightType,
) -> (PathBuf, Vec<Vec<f64>>) {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut values = Vec::new();
    let mut prev = "x".to_owned();
    for i in 0..depth {
        let w = format!("layer{i}.weight");
        let mut v = vec![0f32; width * width];
        Sampler::Normal { mean: 0.0, std }.fill(
            &mut v,
            Stream {
                seed: 99,
                key: i as u64,
            },
        );
        // f32 and f16 in `raw_data`; bf16 bit patterns in `int32_data` (packed).
        let (data_type, payload, stored): (i32, Payload, Vec<f64>) = match ty {
            WeightType::F32 => (
                FLOAT,
                Payload::Raw(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                v.iter().map(|&x| f64::from(x)).collect(),
            ),
            WeightType::F16Raw => {
                let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
                (
                    FLOAT16,
                    Payload::Raw(h.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    h.iter().map(|x| x.to_f64()).collect(),
                )
            }
            WeightType::Bf16Int32 => {
                let h: Vec<half::bf16> = v.iter().map(|&x| half::bf16::from_f32(x)).collect();
                (
                    BFLOAT16,
                    Payload::Int32(h.iter().map(|x| u64::from(x.to_bits())).collect()),
                    h.iter().map(|x| x.to_f64()).collect(),
                )
            }
        };
        inits.push(tensor_fields(
            &w,
            &[width as i64, width as i64],
            data_type,
            &payload,
        ));
        values.push(stored);
        let mm = format!("h{i}");
        let act = format!("a{i}");
        nodes.push(node(
            &format!("matmul{i}"),
            "MatMul",
            &[&prev, &w],
            &[&mm],
            &[],
        ));
        nodes.push(node(&format!("relu{i}"), "Relu", &[&mm], &[&act], &[]));
        prev = act;
    }
    let elem = match ty {
        WeightType::F32 => FLOAT,
        WeightType::F16Raw => FLOAT16,
        WeightType::Bf16Int32 => BFLOAT16,
    };
    let bytes = model(
        &nodes,
        &inits,
        &[value_info("x", elem, &[None, Some(width as i64)])],
        &[value_info(&prev, elem, &[None, Some(width as i64)])],
    );
    let path = dir.join(format!("mlp_{width}x{depth}_{ty:?}.onnx"));
    std::fs::write(&path, bytes).unwrap();
    (path, values)
}

fn moments(v: &[f64]) -> (f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

#[test]
fn statistics_are_exact_for_f32_f16_and_bf16_payloads() {
    let dir = tempfile::tempdir().unwrap();
    // 300×300 = 90,000 elements: two pieces, so the merge is exercised too.
    for ty in [WeightType::F32, WeightType::F16Raw, WeightType::Bf16Int32] {
        let (path, values) = deep_relu_mlp(dir.path(), 300, 2, 0.01, ty);
        let r = inspect_path(&path);
        assert_eq!(r.tensors.len(), 2);
        for (t, v) in r.tensors.iter().zip(&values) {
            let (mean, std, min, max) = moments(v);
            assert!((t.mean.unwrap() - mean).abs() < 1e-12, "{ty:?} {t:?}");
            assert!((t.std.unwrap() / std - 1.0).abs() < 1e-9, "{ty:?} {t:?}");
            assert_eq!((t.min, t.max), (Some(min), Some(max)), "{ty:?}");
            assert_eq!(t.op, "MatMul");
            assert_eq!(t.activation.as_deref(), Some("relu"));
            assert_eq!((t.fan_in, t.fan_out), (Some(300), Some(300)));
            // He uniform before ReLU: √(2/300) = 0.0816; 0.01 is 0.12× of it.
            let rec = (2.0f64 / 300.0).sqrt();
            assert!((t.recommended_std.unwrap() - rec).abs() < 1e-12);
            assert_eq!(t.verdict, Verdict::Ok, "{t:?}");
        }
    }
    // With a stricter threshold the same weights are too small.
    let (path, _) = deep_relu_mlp(dir.path(), 300, 2, 0.01, WeightType::F16Raw);
    let (_, _, r) = inspect::inspect(
        &path,
        &InspectOptions {
            thresholds: inspect::Thresholds {
                too_small: 0.2,
                too_large: 10.0,
            },
            ..InspectOptions::default()
        },
    )
    .unwrap();
    assert!(r.tensors.iter().all(|t| t.verdict == Verdict::TooSmall));
}

// ---------------------------------------------------------------------------------------------
// CLI: JSON, exit codes, plot

#[test]
fn json_parses_back_into_typed_structs() {
    let dir = tempfile::tempdir().unwrap();
    let (copy, names) = damaged_copy(
        &fixtures_dir().join("transformer.onnx"),
        dir.path(),
        Damage::Scale(1000.0),
        &[Role::Weight],
    );
    let out = run(&["inspect", copy.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: InspectReport = serde_json::from_slice(&out.stdout).expect("typed JSON");
    assert_eq!(report.summary.too_large, names.len());
    // The same report as the library's (through the same JSON float parsing).
    let lib = inspect_path(&copy);
    let lib: InspectReport = serde_json::from_str(&serde_json::to_string(&lib).unwrap()).unwrap();
    assert_eq!(report, lib);
    // The documented keys, with the rewrite's role and activation names.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["model", "tensors", "summary"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let t0 = &v["tensors"][0];
    for key in [
        "name",
        "role",
        "op",
        "shape",
        "fan_in",
        "fan_out",
        "activation",
        "mean",
        "std",
        "min",
        "max",
        "recommended_std",
        "ratio",
        "verdict",
    ] {
        assert!(t0.get(key).is_some(), "tensor key {key}");
    }
    let verdicts: Vec<&str> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect();
    assert!(verdicts.contains(&"too_large") && verdicts.contains(&"ok"));
    assert!(
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["role"] == "embedding")
    );
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (copy, _) = damaged_copy(
        &fixtures_dir().join("mlp_relu_tanh.onnx"),
        dir.path(),
        Damage::Zero,
        &[Role::Weight],
    );
    let m = copy.to_str().unwrap();
    let code = |args: &[&str]| run(args).status.code();
    assert_eq!(code(&["inspect", m]), Some(0));
    assert_eq!(code(&["inspect", m, "--fail-on", "never"]), Some(0));
    assert_eq!(code(&["inspect", m, "--fail-on", "too_large"]), Some(0));
    assert_eq!(
        code(&["inspect", m, "--fail-on", "too_large,zero"]),
        Some(3)
    );
    assert_eq!(code(&["inspect", m, "--fail-on", "any"]), Some(3));
    let clean = fixtures_dir().join("mlp_relu_tanh.onnx");
    assert_eq!(
        code(&["inspect", clean.to_str().unwrap(), "--fail-on", "any"]),
        Some(0)
    );
    // Usage errors are 2, failures 1.
    assert_eq!(code(&["inspect", m, "--fail-on", "bogus"]), Some(2));
    assert_eq!(code(&["inspect", m, "--too-small", "-1"]), Some(2));
    assert_eq!(code(&["inspect", m, "--compare", "relu=nonsense"]), Some(2));
    let missing = dir.path().join("missing.onnx");
    let out = run(&["inspect", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing.onnx"),
        "{}",
        text(&out.stderr)
    );
    // The table names the verdicts and the fix.
    let out = run(&["inspect", m]);
    let t = text(&out.stdout);
    assert!(t.contains("zero 4"), "{t}");
    assert!(t.contains("fix: onnx-reinit "), "{t}");
    // The rewrite itself still takes its positional model.
    let out = run(&[clean.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[cfg(feature = "forward")]
/// Curves in an SVG written by `plot`: stroke colours of the non-black `<polyline>`s.
fn svg_curves(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("stroke"))
        .filter(|s| *s != "#000000")
        .map(str::to_owned)
        .collect()
}

#[cfg(feature = "forward")]
#[test]
fn plot_has_one_curve_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("weights.svg");
    let m = fixtures_dir().join("cnn.onnx");
    let out = run(&[
        "inspect",
        m.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let curves = svg_curves(&svg);
    assert_eq!(curves.len(), 2, "{curves:?}");
    assert_ne!(curves[0], curves[1]);
    assert!(svg.contains("current std") && svg.contains("recommended std"));
    let report = inspect_path(&m);
    let panels = inspect::plot::panels(&report);
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0].1, ["current std", "recommended std"]);
}

// ---------------------------------------------------------------------------------------------
// Forward pass

#[cfg(feature = "forward")]
mod forward {
    use super::*;
    use onnx_reinit::inspect::{ForwardOptions, ForwardReport, LayerRow};

    const WIDTH: usize = 256;
    const DEPTH: usize = 8;
    const BATCH: usize = 32;

    fn forward(path: &Path, compare: Option<(&str, Rules)>, seed: u64) -> ForwardReport {
        let model = LoadedModel::open(path).unwrap();
        let analysis = pipeline::analyze_loaded(&model, &AnalysisOptions::default()).unwrap();
        inspect::run_forward(
            &model,
            &analysis,
            &ForwardOptions {
                seed,
                input_shapes: vec![(Some("x".to_owned()), vec![BATCH, WIDTH])],
                compare: compare.map(|(s, r)| (s.to_owned(), r)),
            },
        )
    }

    fn layer_std(layers: &[LayerRow], op: &str) -> Vec<f64> {
        layers
            .iter()
            .filter(|l| l.op == op)
            .map(|l| l.std)
            .collect()
    }

    fn he_rules() -> Rules {
        Rules {
            activation: vec![(
                onnx_reinit::plan::ActivationClass::Relu,
                onnx_reinit::plan::Rule::parse("he").unwrap(),
            )],
            ..Rules::default()
        }
    }

    /// With weights N(0, σ²), fan_in n and x ~ N(0, 1): Var(h₁) = n σ²; after ReLU
    /// E[a²] = Var(h)/2, so Var(h_{k+1}) = n σ² Var(h_k)/2: each layer multiplies the std by
    /// σ √(n/2) (0.113 for σ = 0.01, n = 256). He (σ² = 2/n) makes that factor 1.
    #[test]
    fn small_weights_shrink_the_signal_by_the_expected_factor_and_he_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = deep_relu_mlp(dir.path(), WIDTH, DEPTH, 0.01, WeightType::F32);
        let seed = 5;
        let report = forward(&path, Some(("--relu he", he_rules())), seed);
        assert!(report.error.is_none(), "{report:?}");
        assert_eq!(report.runs.len(), 2);
        assert_eq!(report.inputs[0].shape, [BATCH, WIDTH]);
        let current = &report.runs[0];
        assert!(current.error.is_none(), "{current:?}");
        assert_eq!(current.layers.len(), 2 * DEPTH, "{:?}", current.layers);
        // Graph order: MatMul, Relu, MatMul, …
        for (k, l) in current.layers.iter().enumerate() {
            assert_eq!(l.index, k);
            assert_eq!(l.op, if k % 2 == 0 { "MatMul" } else { "Relu" });
            assert_eq!(l.kind, if k % 2 == 0 { "weight" } else { "activation" });
            assert_eq!(l.shape, [BATCH, WIDTH]);
        }
        let pre = layer_std(&current.layers, "MatMul");
        let first = 0.01 * (WIDTH as f64).sqrt();
        assert!((pre[0] / first - 1.0).abs() < 0.15, "{pre:?}");
        let factor = 0.01 * (WIDTH as f64 / 2.0).sqrt();
        for w in pre.windows(2) {
            let r = w[1] / w[0];
            assert!(
                (r / factor - 1.0).abs() < 0.2,
                "ratio {r} vs {factor}: {pre:?}"
            );
        }
        // The signal has vanished by 7 orders of magnitude… and ReLU zeroes about half.
        assert!(pre[DEPTH - 1] < 1e-6, "{pre:?}");
        for l in current.layers.iter().filter(|l| l.op == "Relu") {
            let z = l.zero_fraction.unwrap();
            assert!((0.4..0.6).contains(&z), "{l:?}");
            assert!(l.saturated_fraction.is_none());
        }
        // After --relu he: every layer's std within a band around the first.
        let reinit = &report.runs[1];
        assert!(reinit.error.is_none(), "{reinit:?}");
        assert_eq!(reinit.rules.as_deref(), Some("--relu he"));
        let he = layer_std(&reinit.layers, "MatMul");
        assert_eq!(he.len(), DEPTH);
        // He: Var(h₁) = n · 2/n = 2.
        assert!((he[0] / 2f64.sqrt() - 1.0).abs() < 0.15, "{he:?}");
        for s in &he {
            assert!((0.5..2.0).contains(&(s / he[0])), "{he:?}");
        }
        // The table shows both runs.
        let table = report.table();
        assert!(
            table.contains("std (current)") && table.contains("std (reinit)"),
            "{table}"
        );

        // The in-memory re-initialization is the rewrite's: the same seed gives the same file
        // values, hence exactly the same forward pass.
        let out = dir.path().join("he.onnx");
        pipeline::run(&RewriteConfig {
            model: path.clone(),
            destination: Destination::Path(out.clone()),
            force: false,
            rules: he_rules(),
            seed,
            analysis: AnalysisOptions::default(),
            cancel: None,
            progress: None,
        })
        .unwrap();
        let rewritten = forward(&out, None, seed);
        let again: Vec<f64> = rewritten.runs[0].layers.iter().map(|l| l.std).collect();
        let mem: Vec<f64> = reinit.layers.iter().map(|l| l.std).collect();
        assert_eq!(again, mem);
        // The re-initialized file is judged ok.
        assert!(
            inspect_path(&out)
                .tensors
                .iter()
                .all(|t| t.verdict == Verdict::Ok)
        );
    }

    #[test]
    fn forward_and_compare_from_the_cli_with_plot_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = deep_relu_mlp(dir.path(), 64, 4, 0.01, WeightType::F32);
        let svg_path = dir.path().join("mlp.svg");
        let out = run(&[
            "inspect",
            path.to_str().unwrap(),
            "--forward",
            "--input-shape",
            "x=4,64",
            "--compare",
            "--relu he",
            "--plot",
            svg_path.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: InspectReport = serde_json::from_slice(&out.stdout).unwrap();
        let f = report.forward.as_ref().expect("forward part");
        assert_eq!(f.runs.len(), 2);
        assert_eq!(f.runs[0].layers.len(), 8);
        assert_eq!(f.inputs[0].shape, [4, 64]);
        // Three curves: two forward passes, then weight std and recommended std.
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        let curves = svg_curves(&svg);
        assert_eq!(curves.len(), 4, "{curves:?}");
        let mut distinct = curves.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
        let panels = inspect::plot::panels(&report);
        // Activation std, distribution, dead ReLU fractions, weights.
        assert_eq!(panels.len(), 4, "{panels:?}");
        assert_eq!(panels[0].1, ["current", "reinit (--relu he)"]);
        // The short form works too, and the table has the forward section.
        let out = run(&[
            "inspect",
            path.to_str().unwrap(),
            "--input-shape",
            "4,64",
            "--compare",
            "relu=he_normal",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let t = text(&out.stdout);
        assert!(t.contains("forward pass (tract-onnx"), "{t}");
        assert!(t.contains("std (reinit)"), "{t}");
        assert!(t.contains("relu=he_normal"), "{t}");
    }

    #[test]
    fn a_model_tract_cannot_run_names_the_op_and_still_reports_weights() {
        // cnn_train keeps BatchNormalization in training mode (3 outputs), which tract refuses.
        let m = fixtures_dir().join("cnn_train.onnx");
        let out = run(&["inspect", m.to_str().unwrap(), "--forward"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let t = text(&out.stdout);
        assert!(t.contains("forward pass skipped"), "{t}");
        assert!(t.contains("BatchNormalization"), "{t}");
        assert!(t.contains("tensors inspected: ok 20"), "{t}");
        // An op tract does not know at all is named too.
        let dir = tempfile::tempdir().unwrap();
        let bytes = model(
            &[node("fancy", "FancyOp", &["x"], &["y"], &[])],
            &[],
            &[value_info("x", FLOAT, &[Some(2)])],
            &[value_info("y", FLOAT, &[Some(2)])],
        );
        let p = dir.path().join("fancy.onnx");
        std::fs::write(&p, bytes).unwrap();
        let model = LoadedModel::open(&p).unwrap();
        let analysis = pipeline::analyze_loaded(&model, &AnalysisOptions::default()).unwrap();
        let r = inspect::run_forward(&model, &analysis, &ForwardOptions::default());
        let e = r.error.expect("an error");
        assert!(e.contains("FancyOp") && e.contains("fancy"), "{e}");
    }

    /// Issue 4's validation: every fixture re-initialized by the rewrite (default rules) still
    /// loads and runs in tract-onnx, with finite, non-degenerate layer outputs.
    #[test]
    fn every_rewritten_fixture_loads_and_runs_in_tract() {
        let dir = tempfile::tempdir().unwrap();
        for path in fixtures() {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem == "cnn_train" {
                continue; // BatchNormalization in training mode: tract 0.23 cannot run it.
            }
            let out = dir.path().join(format!("{stem}.reinit.onnx"));
            pipeline::run(&RewriteConfig {
                model: path.clone(),
                destination: Destination::Path(out.clone()),
                force: false,
                rules: Rules::default(),
                seed: 11,
                analysis: AnalysisOptions::default(),
                cancel: None,
                progress: None,
            })
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
            let r = forward_default(&out);
            assert!(r.error.is_none(), "{stem}: {:?}", r.error);
            let layers = &r.runs[0].layers;
            assert!(
                !layers.is_empty() && layers.iter().all(|l| l.std.is_finite() && l.std > 0.0),
                "{stem}: {layers:?}"
            );
        }
    }

    fn forward_default(path: &Path) -> ForwardReport {
        let model = LoadedModel::open(path).unwrap();
        let analysis = pipeline::analyze_loaded(&model, &AnalysisOptions::default()).unwrap();
        inspect::run_forward(&model, &analysis, &ForwardOptions::default())
    }

    #[test]
    fn every_runnable_fixture_runs() {
        for path in fixtures() {
            let model = LoadedModel::open(&path).unwrap();
            let analysis = pipeline::analyze_loaded(&model, &AnalysisOptions::default()).unwrap();
            let r = inspect::run_forward(&model, &analysis, &ForwardOptions::default());
            let stem = path.file_stem().unwrap().to_string_lossy();
            if stem == "cnn_train" {
                assert!(r.error.is_some());
                continue;
            }
            assert!(r.error.is_none(), "{stem}: {:?}", r.error);
            let layers = &r.runs[0].layers;
            assert!(!layers.is_empty(), "{stem}");
            assert!(
                layers.iter().all(|l| l.std.is_finite() && l.std > 0.0),
                "{stem}: {layers:?}"
            );
            assert!(layers.iter().any(|l| l.kind == "weight"), "{stem}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The plot, drawn by the library (no forward feature needed: the forward part is built here)

/// A forward report of `n` layers: std halving per layer from 1, the third layer dead (std 0,
/// all zeros), quantiles ±std, a ReLU zero fraction on even layers; a `reinit` pass with std 1.
fn synthetic_forward(n: usize) -> inspect::ForwardReport {
    let layer = |i: usize, std: f64| inspect::LayerRow {
        index: i,
        node: format!("/block{i}/Relu"),
        op: "Relu".to_owned(),
        output: format!("y{i}"),
        kind: "activation".to_owned(),
        shape: vec![4, 8],
        mean: 0.0,
        std,
        zero_fraction: i.is_multiple_of(2).then_some(0.5),
        saturated_fraction: None,
        quantiles: Some([-1.6 * std, -0.7 * std, 0.0, 0.7 * std, 1.6 * std]),
    };
    let current = (0..n)
        .map(|i| layer(i, if i == 2 { 0.0 } else { 0.5f64.powi(i as i32) }))
        .collect();
    let reinit = (0..n).map(|i| layer(i, 1.0)).collect();
    inspect::ForwardReport {
        seed: 1,
        inputs: Vec::new(),
        runs: vec![
            inspect::ForwardRun {
                label: "current".to_owned(),
                rules: None,
                error: None,
                layers: current,
            },
            inspect::ForwardRun {
                label: "reinit".to_owned(),
                rules: Some("--relu he".to_owned()),
                error: None,
                layers: reinit,
            },
        ],
        error: None,
    }
}

/// The report of a copy of the MLP fixture with `fc2.weight` zeroed (in `dir`), with the
/// synthetic forward part of six layers (the third dead).
fn zeroed_report_with_forward(dir: &Path) -> InspectReport {
    let zeroed = dir.join("z.onnx");
    let m = fixtures_dir().join("mlp_relu_tanh.onnx");
    let o = run(&[
        m.to_str().unwrap(),
        "--rule",
        "fc2.weight=zeros",
        "--rule",
        "*=keep",
        "-o",
        zeroed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut report = inspect_path(&zeroed);
    report.forward = Some(synthetic_forward(6));
    report
}

#[test]
fn plot_shows_distributions_bands_names_and_zero_layers() {
    // A model with a zeroed layer: the "current" weight curve must still be drawn, and the
    // zero layer marked (a log axis cannot draw 0).
    let dir = tempfile::tempdir().unwrap();
    let report = zeroed_report_with_forward(dir.path());
    let svg = inspect::plot::svg(&report).unwrap();
    std::fs::write(dir.path().join("p.svg"), &svg).unwrap();
    if let Some(keep) = std::env::var_os("ONNX_REINIT_KEEP_PLOT") {
        std::fs::write(keep, &svg).unwrap();
    }
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    let has = |s: &str| texts.iter().any(|t| t.contains(s));
    // The four panels and their series.
    let panels = inspect::plot::panels(&report);
    let titles: Vec<&str> = panels.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(titles.len(), 4, "{titles:?}");
    for t in &titles {
        assert!(has(t), "panel title {t} drawn");
    }
    assert_eq!(panels[0].1, ["current", "reinit (--relu he)"]);
    assert_eq!(panels[3].1, ["current std", "recommended std"]);
    // Layer and weight names on the axes.
    for name in [
        "/block0/Relu",
        "/block5/Relu",
        "fc1.weight",
        "fc2.weight",
        "out.weight",
    ] {
        assert!(has(name), "{name} on an axis: {texts:?}");
    }
    // Healthy bands in the legend.
    assert!(has("healthy: std 0.1–10"), "{texts:?}");
    assert!(has("healthy: 0.1×–10× the recommended std"), "{texts:?}");
    // Zero markers: the dead layer 3 and the zeroed fc2.weight, as orange triangles with text.
    let zeros = texts
        .iter()
        .filter(|t| **t == inspect::plot::ZERO_MARK)
        .count();
    assert_eq!(zeros, 2, "{texts:?}");
    let triangles = doc
        .descendants()
        .filter(|n| n.has_tag_name("polygon"))
        .filter(|n| n.attribute("fill") == Some("#E67800"))
        .count();
    assert!(triangles >= 2, "{triangles}");
    // Curves: two forward passes and two weight series, in four colours; a zero breaks its
    // curve (no line claims a value there), the rest of the zeroed model's curve is drawn.
    let curves: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| n.attribute("stroke").is_some_and(|s| s != "#000000"))
        .collect();
    let mut colours: Vec<&str> = curves
        .iter()
        .filter_map(|n| n.attribute("stroke"))
        .collect();
    colours.dedup();
    assert_eq!(colours.len(), 4, "{colours:?}");
    assert_eq!(
        curves.len(),
        6,
        "current: 2 + 3 points, reinit, weights: 1 + 2, recommended"
    );
    let points = |k: usize| {
        curves[k]
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .count()
    };
    assert_eq!(
        (points(0), points(1)),
        (2, 3),
        "the dead layer 3 is a marker, not a point"
    );
    assert_eq!(points(2), 6);
    assert_eq!(
        (points(3), points(4)),
        (1, 2),
        "current std: fc1 | fc3, out (fc2 is zero)"
    );
    assert_eq!(points(5), 4);
    // Boxes: one per layer and pass (filled at 45 %), bars for the six even layers' zeros.
    let boxes = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| n.attribute("opacity") == Some("0.45"))
        .count();
    assert_eq!(boxes, 12, "6 layers × 2 passes");
}

/// The PNG is the SVG's drawing rasterised: decoded here, each panel must hold its series'
/// colours, the healthy band, the boxes and the orange zero markers, and the title strip drawn
/// text (the shipped font renders). The colours are the SVG's (`fill`/`stroke` attributes the
/// SVG test reads), blended over white as the SVG's `opacity` says.
#[cfg(feature = "png")]
#[test]
fn png_plot_holds_the_series_band_boxes_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let report = zeroed_report_with_forward(dir.path());
    let bytes = inspect::plot::png(&report).unwrap();
    if let Some(keep) = std::env::var_os("ONNX_REINIT_KEEP_PNG") {
        std::fs::write(keep, &bytes).unwrap();
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut rgb = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut rgb).expect("one frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    // 1100 wide; a 60-pixel title strip and 480 pixels for each of the four panels.
    assert_eq!((info.width, info.height), (1100, 60 + 4 * 480));
    let (w, h) = (info.width as usize, info.height as usize);
    let px = |x: usize, y: usize| {
        let i = 3 * (y * w + x);
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let white = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| px(x, y) == [255, 255, 255])
        .count();
    let ink = w * h - white;
    assert!(
        ink > w * h / 20,
        "not blank: {ink} of {} pixels drawn",
        w * h
    );
    // Pixels of colour `c` (within ±1 per channel: blending rounds) in rows `rows`.
    let count = |c: [u8; 3], rows: std::ops::Range<usize>| {
        rows.flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y).iter().zip(c).all(|(&a, b)| a.abs_diff(b) <= 1))
            .count()
    };
    let over_white = |c: [u8; 3], alpha: f64| {
        c.map(|v| (f64::from(v) * alpha + 255.0 * (1.0 - alpha)).round() as u8)
    };
    let series = |k: usize| {
        let c = inspect::plot::SERIES_COLORS[k];
        [c.0, c.1, c.2]
    };
    // Panel k spans about rows 60 + 480k .. 60 + 480(k + 1) (the title's height is the
    // font's): look inside, away from the edges.
    let panel = |k: usize| 60 + 480 * k + 40..60 + 480 * (k + 1) - 40;
    let band = over_white([200, 235, 200], 0.6);
    let orange = [0xE6, 0x78, 0x00];
    // Activation std: current and reinit curves, the healthy band, the dead layer's marker.
    for (what, c) in [
        ("current", series(0)),
        ("reinit", series(1)),
        ("band", band),
        ("zero marker", orange),
    ] {
        assert!(
            count(c, panel(0)) > 20,
            "activation std panel: {what} {c:?}"
        );
    }
    // Distribution: boxes of both passes at 45 % over white, whiskers in the full colour.
    for k in 0..2 {
        let boxes = over_white(series(k), 0.45);
        assert!(count(boxes, panel(1)) > 200, "box of pass {k}: {boxes:?}");
    }
    // Dead ReLU fractions: bars of both passes.
    for k in 0..2 {
        assert!(
            count(series(k), panel(2)) > 100,
            "fraction bars of pass {k}"
        );
    }
    // Weights: current and recommended std, the band, fc2.weight's zero marker.
    for (what, c) in [
        ("current std", series(2)),
        ("recommended std", series(3)),
        ("band", band),
        ("zero marker", orange),
    ] {
        assert!(count(c, panel(3)) > 20, "weight panel: {what} {c:?}");
    }
    // Text: the title strip has dark, anti-aliased glyph pixels (no font, no text).
    let dark = (0..60)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| px(x, y).iter().all(|&v| v < 100))
        .count();
    let grey = (0..60)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| px(x, y).iter().all(|&v| (100..230).contains(&v)))
        .count();
    assert!(
        dark > 200 && grey > 50,
        "title text: {dark} dark, {grey} grey pixels"
    );
}
