//! End-to-end tests of the `onnx-reinit` binary on the real exported fixtures: flags, outputs,
//! exit codes, JSON, determinism across thread counts, and the written values.

use std::path::{Path, PathBuf};

use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::report::Report;

use crate::common::{bin, fixtures_dir, run, text};

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(fixture(name), &dst).unwrap();
    // The checked-out fixtures may be read-only; the copy is the test's own.
    let mut perms = std::fs::metadata(&dst).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&dst, perms).unwrap();
    dst
}

fn read_f32(model: &LoadedModel, name: &str) -> Vec<f32> {
    let idx = model
        .find_tensor("", name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    let n = usize::try_from(model.tensors()[idx].numel()).unwrap();
    let mut v = vec![0f32; n];
    model.read_values(idx, 0, ValuesMut::F32(&mut v)).unwrap();
    v
}

#[test]
fn readme_command_rewrites_with_the_requested_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mlp.reinit.onnx");
    let input = fixture("mlp_relu_tanh.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "--relu",
        "he",
        "--tanh",
        "glorot",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(table.contains("he_uniform"), "{table}");
    assert!(table.contains("glorot_uniform"), "{table}");
    assert!(table.contains("relu") && table.contains("tanh"), "{table}");

    let before = std::fs::read(&input).unwrap();
    let after = std::fs::read(&out).unwrap();
    assert_eq!(
        before.len(),
        after.len(),
        "payload patching keeps the length"
    );
    assert_ne!(before, after);

    // Each weight within its scheme's bound, and actually spread over it.
    let json = run(&[input.to_str().unwrap(), "--dry-run", "--json"]);
    let report: Report = serde_json::from_slice(&json.stdout).unwrap();
    let model = LoadedModel::open(&out).unwrap();
    let mut weights = 0;
    for t in report.tensors.iter().filter(|t| t.role == "weight") {
        let (fi, fo) = (t.fan_in.unwrap() as f64, t.fan_out.unwrap() as f64);
        let bound = match t.activation.as_deref() {
            Some("relu") => (6.0 / fi).sqrt(),
            Some("tanh" | "linear") => (6.0 / (fi + fo)).sqrt(),
            other => panic!("unexpected activation {other:?} for {}", t.name),
        };
        let v = read_f32(&model, &t.name);
        let max = v.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())));
        assert!(
            max <= bound * (1.0 + 1e-6),
            "{}: max {max} > bound {bound}",
            t.name
        );
        assert!(
            max > 0.9 * bound,
            "{}: max {max} far below bound {bound}",
            t.name
        );
        weights += 1;
    }
    assert_eq!(weights, 4, "fc1, fc2, fc3 and out");
    for t in report.tensors.iter().filter(|t| t.role == "bias") {
        assert!(
            read_f32(&model, &t.name).iter().all(|x| *x == 0.0),
            "{}",
            t.name
        );
    }
}

#[test]
fn dry_run_writes_nothing_and_json_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_fixture(dir.path(), "cnn.onnx");
    let o = run(&[input.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).expect("valid JSON report");
    assert!(report.dry_run);
    assert!(report.output.is_none());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the input is in the folder"
    );
    assert_eq!(report.seed, onnx_reinit::pipeline::DEFAULT_SEED);
    let roles: Vec<&str> = report.tensors.iter().map(|t| t.role.as_str()).collect();
    assert!(
        roles.contains(&"weight") && roles.contains(&"bias"),
        "{roles:?}"
    );
    let conv = report
        .tensors
        .iter()
        .find(|t| t.op == "ConvTranspose" && t.role == "weight")
        .expect("the ConvTranspose weight");
    assert_eq!(conv.activation.as_deref(), Some("relu"));
    assert_eq!(
        report.summary.initializers,
        report.tensors.len() + report.untouched.len()
    );
}

#[test]
fn default_output_is_beside_the_input_and_never_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_fixture(dir.path(), "gru.onnx");
    let original = std::fs::read(&input).unwrap();
    let o = run(&[input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.path().join("gru.reinit.onnx");
    assert!(out.exists());
    assert_eq!(std::fs::read(&input).unwrap(), original, "input unchanged");

    // A second run refuses to overwrite, and --force allows it.
    let o = run(&[input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("gru.reinit.onnx"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&[input.to_str().unwrap(), "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Naming the input as the output is refused.
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        input.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&input).unwrap(), original);
}

#[test]
fn in_place_rewrites_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_fixture(dir.path(), "lstm.onnx");
    let original = std::fs::read(&input).unwrap();
    let o = run(&[input.to_str().unwrap(), "--in-place"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let after = std::fs::read(&input).unwrap();
    assert_eq!(after.len(), original.len());
    assert_ne!(after, original);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no stray files"
    );
}

#[test]
fn same_seed_same_bytes_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("transformer_dynamo.onnx");
    let mut outs = Vec::new();
    for (i, threads) in ["1", "2", "2"].iter().enumerate() {
        let out = dir.path().join(format!("t{i}.onnx"));
        let o = bin()
            .env("RAYON_NUM_THREADS", threads)
            .args([
                input.to_str().unwrap(),
                "--seed",
                "7",
                "-o",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        outs.push(std::fs::read(out).unwrap());
    }
    assert_eq!(outs[0], outs[1], "1 vs 2 threads");
    assert_eq!(outs[1], outs[2], "run to run");
    let other = dir.path().join("other.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "--seed",
        "8",
        "-o",
        other.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_ne!(
        std::fs::read(other).unwrap(),
        outs[0],
        "another seed, other values"
    );
}

#[test]
fn usage_errors_exit_2_with_the_valid_choices() {
    let input = fixture("mlp_relu_tanh.onnx");
    let o = run(&[input.to_str().unwrap(), "--relu", "hee", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("hee") && err.contains("`he`"), "{err}");
    assert!(
        err.contains("glorot_uniform"),
        "lists the valid schemes: {err}"
    );

    let o = run(&[input.to_str().unwrap(), "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));

    let o = run(&[input.to_str().unwrap(), "--rule", "fc[=zeros", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("glob"), "{}", text(&o.stderr));

    let o = run(&[input.to_str().unwrap(), "--rule", "no-equals-sign"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_models_exit_1_naming_the_file_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.onnx");
    let o = run(&[missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("missing.onnx"),
        "{}",
        text(&o.stderr)
    );

    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a protobuf \xff\xff\xff\xff").unwrap();
    let o = run(&[junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("junk.onnx"), "{}", text(&o.stderr));

    let full = std::fs::read(fixture("cnn.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let o = run(&[cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no output files: {names:?}");
}

#[test]
fn rules_override_by_glob_and_keep() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let out = dir.path().join("o.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "--rule",
        "fc1.weight=constant(0.5)",
        "--tanh",
        "keep",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    let fc1 = report
        .tensors
        .iter()
        .find(|t| t.name == "fc1.weight")
        .unwrap();
    assert_eq!(fc1.scheme, "constant(0.5)");
    assert!(fc1.reason.contains("--rule"), "{}", fc1.reason);
    let model = LoadedModel::open(&out).unwrap();
    assert!(read_f32(&model, "fc1.weight").iter().all(|x| *x == 0.5));

    let kept: Vec<_> = report
        .tensors
        .iter()
        .filter(|t| t.activation.as_deref() == Some("tanh") && t.role == "weight")
        .collect();
    assert!(!kept.is_empty());
    let original = LoadedModel::open(&input).unwrap();
    for t in kept {
        assert!(!t.changed);
        assert_eq!(
            read_f32(&model, &t.name),
            read_f32(&original, &t.name),
            "{}",
            t.name
        );
    }
}

#[test]
fn every_fixture_rewrites_and_reports_every_initializer() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
            continue;
        }
        let out = dir.path().join(path.file_name().unwrap());
        let o = run(&[
            path.to_str().unwrap(),
            "--json",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{}: {}",
            path.display(),
            text(&o.stderr)
        );
        let report: Report = serde_json::from_slice(&o.stdout).unwrap();
        let model = LoadedModel::open(&path).unwrap();
        assert_eq!(
            report.summary.initializers,
            model.tensors().len(),
            "{}",
            path.display()
        );
        assert!(report.summary.changed > 0, "{}", path.display());
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            std::fs::metadata(&path).unwrap().len(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_scheme_on_a_rank_it_does_not_admit_is_refused_by_the_plan_even_in_a_dry_run() {
    // The planner asks init-scheme's one rank requirement, so `--dry-run` refuses what the
    // rewrite could not apply instead of printing a plan that fails later.
    let input = fixture("mlp_relu_tanh.onnx");
    for (rule, tensor, need) in [
        (
            "fc1.weight=dirac",
            "fc1.weight",
            "dirac needs a convolution weight of rank 3, 4 or 5, got [",
        ),
        (
            "fc1.bias=orthogonal",
            "fc1.bias",
            "orthogonal needs a tensor of rank >= 2, got [",
        ),
    ] {
        let o = run(&[input.to_str().unwrap(), "--rule", rule, "--dry-run"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{rule}: {err}");
        assert!(err.contains(tensor) && err.contains(need), "{rule}: {err}");
        assert!(o.stdout.is_empty(), "{rule}: no plan printed");
    }
}

// ---------------------------------------------------------------------------------------------
// Output for people and for pipelines (issue 15) and no panic after the commit point (13.4)

use crate::common::onnx::{
    FLOAT, INT64, Payload, f32_bytes, graph, model as model_proto, node, tensor,
};

/// `x → MatMul(W) → Add(B) → Relu → y`, W named `w_name` ([2, 2]), B of shape `b_dims` (two
/// values).
fn matmul_add_relu(dir: &Path, w_name: &str, b_dims: &[i64]) -> PathBuf {
    let g = graph(
        &[
            node("mm", "MatMul", &["x", w_name], &["h"], &[]),
            node("add", "Add", &["h", "B"], &["z"], &[]),
            node("relu", "Relu", &["z"], &["y"], &[]),
        ],
        &[
            tensor(
                w_name,
                &[2, 2],
                FLOAT,
                &Payload::Raw(f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            ),
            tensor("B", b_dims, FLOAT, &Payload::Raw(f32_bytes(&[0.5, 0.5]))),
        ],
        &["x"],
        &["y"],
    );
    let path = dir.join("m.onnx");
    std::fs::write(&path, model_proto("test", None, &g)).unwrap();
    path
}

fn max_line(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn huge_names_and_shapes_are_elided_and_nothing_fails_after_the_rewrite() {
    // Issue 13 item 4: a 70,000-character name and a 100,001-dim shape panicked the table
    // formatter after the output had been renamed into place (exit 101).
    let dir = tempfile::tempdir().unwrap();
    let long = format!("w{}", "x".repeat(70_000));
    let mut b_dims = vec![1i64; 100_000];
    b_dims.push(2);
    let input = matmul_add_relu(dir.path(), &long, &b_dims);
    let out = dir.path().join("out.onnx");
    let o = run(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.exists());
    let table = text(&o.stdout);
    assert!(table.contains('…'), "the name is elided: {table:.500}");
    assert!(max_line(&table) <= 300, "{}", max_line(&table));

    // In place, the same; and --wide still bounds every cell.
    for extra in [&["--in-place"][..], &["--in-place", "--wide"]] {
        let mut args = vec![input.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", text(&o.stderr));
        assert!(max_line(&text(&o.stdout)) <= 1000, "{extra:?}");
    }
    // The JSON document keeps the full name, and inspect prints its table too.
    let o = run(&[input.to_str().unwrap(), "--dry-run", "--json"]);
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report.tensors.iter().any(|t| t.name == long));
    let o = run(&["inspect", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(max_line(&text(&o.stdout)) <= 300);
}

/// The rewrite's table of `fixture` at `columns` columns.
fn table_at(fixture_name: &str, columns: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["--dry-run".to_owned()];
    args.push(fixture(fixture_name).to_str().unwrap().to_owned());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let o = bin().env("COLUMNS", columns).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    (text(&o.stdout), text(&o.stderr))
}

/// Compares `actual` with `tests/suite/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/suite/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "snapshot {name} differs");
}

#[test]
fn tables_fit_80_100_and_200_columns() {
    for (fixture_name, cmd) in [
        ("transformer.onnx", "rewrite"),
        ("lstm.onnx", "rewrite"),
        ("cnn_train.onnx", "inspect"),
    ] {
        for cols in [80usize, 100, 200] {
            let c = cols.to_string();
            let stdout = if cmd == "inspect" {
                let o = bin()
                    .env("COLUMNS", &c)
                    .args(["inspect", fixture(fixture_name).to_str().unwrap()])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", text(&o.stderr));
                text(&o.stdout)
            } else {
                table_at(fixture_name, &c, &[]).0
            };
            assert!(
                max_line(&stdout) <= cols,
                "{fixture_name} at {cols}: a line of {}\n{stdout}",
                max_line(&stdout)
            );
            let stem = fixture_name.trim_end_matches(".onnx");
            snapshot(&format!("{cmd}_{stem}_{cols}.txt"), &stdout);
        }
    }
    // The folded MatMul names get their layer beside them at 80 columns.
    let (t80, _) = table_at("transformer.onnx", "80", &[]);
    let row = t80
        .lines()
        .find(|l| l.starts_with("onnx::MatMul_214"))
        .unwrap();
    assert!(row.contains("/head/MatMul"), "{t80}");
    // LSTM W and R are told apart.
    let (lstm, _) = table_at("lstm.onnx", "80", &[]);
    assert!(
        lstm.contains("recurrent W") && lstm.contains("recurrent R"),
        "{lstm}"
    );
    // --wide ignores COLUMNS.
    let (wide, _) = table_at("transformer.onnx", "40", &["--wide"]);
    assert!(
        wide.contains("enc.self_attn.out_proj.weight  /enc/self_attn/Gemm"),
        "{wide}"
    );
}

#[test]
fn rows_are_in_graph_order_and_the_footer_lists_what_the_table_leaves_out() {
    let (t, _) = table_at("transformer.onnx", "200", &[]);
    let names: Vec<&str> = t
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("note:"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // The graph reads the embedding first and the head last (initializer order differs:
    // the exporter lists the folded MatMul weights after the named parameters).
    assert_eq!(names.first(), Some(&"emb.weight"), "{t}");
    assert_eq!(names.last(), Some(&"head.bias"), "{t}");
    assert!(
        t.contains("note: onnx::MatMul_173: packed projection"),
        "{t}"
    );
    assert!(
        t.contains("note: enc.self_attn.out_proj.bias: shared by 3 consumers"),
        "{t}"
    );

    // Untouched tensors are listed with their reason: a Reshape's shape constant, and an
    // initializer nothing reads.
    let dir = tempfile::tempdir().unwrap();
    let g = graph(
        &[
            node("mm", "MatMul", &["x", "W"], &["h"], &[]),
            node("rs", "Reshape", &["h", "shape"], &["y"], &[]),
        ],
        &[
            tensor("W", &[2, 2], FLOAT, &Payload::Raw(f32_bytes(&[1.0; 4]))),
            tensor(
                "shape",
                &[1],
                INT64,
                &Payload::Raw(4i64.to_le_bytes().to_vec()),
            ),
            tensor("orphan", &[2], FLOAT, &Payload::Raw(f32_bytes(&[1.0; 2]))),
        ],
        &["x"],
        &["y"],
    );
    let input = dir.path().join("u.onnx");
    std::fs::write(&input, model_proto("test", None, &g)).unwrap();
    let o = bin()
        .env("COLUMNS", "80")
        .args([input.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    // Footer lines wrap at 80 columns with a two-space indent: join them back.
    let table = text(&o.stdout).replace("\n  ", " ");
    let report = run(&[input.to_str().unwrap(), "--dry-run", "--json"]);
    let report: Report = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report.untouched.len(), 2, "{table}");
    for u in &report.untouched {
        let line = table
            .lines()
            .find(|l| l.starts_with("untouched") && l.contains(u.name.as_str()))
            .unwrap_or_else(|| panic!("{} not in the footer:\n{table}", u.name));
        assert!(line.contains(u.reason()), "{line}");
    }
}

#[test]
fn a_rule_that_decides_nothing_exits_1_naming_it() {
    let input = fixture("mlp_relu_tanh.onnx");
    let i = input.to_str().unwrap();
    for (rules, named, why) in [
        (
            &["--rule", "fc9.*=zeros"][..],
            "fc9.*",
            "matches no initializer",
        ),
        (
            &["--rule", "fc1.*=zeros", "--rule", "fc1.weight=ones"],
            "fc1.weight",
            "earlier --rule 'fc1.*'",
        ),
    ] {
        let mut args = vec![i, "--dry-run"];
        args.extend_from_slice(rules);
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{rules:?}: {err}");
        assert!(
            err.contains(&format!("--rule '{named}'")) && err.contains(why),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    // Node names count: a rule on a layer's node applies.
    let o = run(&[i, "--dry-run", "--rule", "*Gemm*=zeros"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn fail_on_rejects_unknown_verdicts_and_ok() {
    let input = fixture("mlp_relu_tanh.onnx");
    for v in ["too_big", "ok", "zero,ok"] {
        let o = run(&["inspect", input.to_str().unwrap(), "--fail-on", v]);
        assert_eq!(o.status.code(), Some(2), "{v}");
        assert!(
            text(&o.stderr).contains("unknown verdict"),
            "{}",
            text(&o.stderr)
        );
        assert!(o.stdout.is_empty());
    }
}

#[cfg(not(feature = "forward"))]
#[test]
fn forward_flags_without_the_feature_exit_2_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let svg = dir.path().join("p.svg");
    for args in [
        vec!["--forward"],
        vec!["--compare", "relu=he"],
        vec!["--plot", svg.to_str().unwrap()],
    ] {
        let mut all = vec!["inspect", input.to_str().unwrap()];
        all.extend(&args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(args[0]) && err.contains("--features forward"),
            "{err}"
        );
    }
    assert!(!svg.exists());
}

#[test]
fn plot_files_other_than_svg_or_png_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let jpg = dir.path().join("p.jpg");
    let o = run(&[
        "inspect",
        input.to_str().unwrap(),
        "--plot",
        jpg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("FILE.svg or FILE.png"), "{err}");
    assert!(!jpg.exists());
}

/// A plot into a missing folder is refused before the run, naming the folder (exit 1, as the
/// rewrite's missing output folder).
#[cfg(feature = "forward")]
#[test]
fn plot_into_a_missing_folder_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    for name in ["p.svg", "p.png"] {
        let plot = dir.path().join("missing").join(name);
        let o = run(&[
            "inspect",
            input.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        let err = text(&o.stderr);
        assert!(
            err.contains("--plot") && err.contains("missing") && err.contains("does not exist"),
            "{err}"
        );
        assert!(
            o.stdout.is_empty(),
            "{name}: nothing printed before the refusal"
        );
        assert!(!plot.exists());
    }
}

/// `--plot FILE.png` from the command line: a PNG file (signature, size) and the usual note.
#[cfg(feature = "forward")]
#[test]
fn plot_png_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let plot = dir.path().join("p.PNG");
    let o = run(&[
        "inspect",
        input.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("wrote"), "{}", text(&o.stderr));
    let bytes = std::fs::read(&plot).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Written through a temporary file, yet with a plain file's mode: 0666 less the umask
    // (the child's is this process's, read from /proc).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|u| u32::from_str_radix(u.trim(), 8).unwrap())
        .unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&plot).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666 & !umask, "{mode:o}");
    assert!(
        dir.path().read_dir().unwrap().count() == 1,
        "no temporary file left"
    );
    let info = png::Decoder::new(std::io::Cursor::new(&bytes))
        .read_info()
        .unwrap()
        .info()
        .clone();
    // No forward pass: the weight panel alone.
    assert_eq!((info.width, info.height), (1100, 60 + 480));
}

#[test]
fn human_lines_go_to_stderr_and_quiet_silences_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let out = dir.path().join("o.onnx");
    let o = run(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success());
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(!stdout.contains("wrote"), "{stdout}");
    let abs = std::path::absolute(&out).unwrap();
    assert_eq!(stderr, format!("onnx-reinit: wrote {}\n", abs.display()));

    // --json: only the document, on stdout.
    let out2 = dir.path().join("o2.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report.files_written,
        [std::path::absolute(&out2).unwrap().display().to_string()]
    );

    // --quiet: nothing at all on success, the error on failure.
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--force",
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty() && !o.stderr.is_empty());
}

#[test]
fn dry_run_previews_a_real_command_and_o_dir_writes_the_input_name_there() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("mlp_relu_tanh.onnx");
    let out = dir.path().join("o.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!out.exists());
    assert!(text(&o.stderr).contains(&format!("without --dry-run: {}", out.display())));
    let o = run(&[input.to_str().unwrap(), "--in-place", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // -o DIR/ and -o DIR (existing) write DIR/<input's name>.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        &format!("{}/", sub.display()),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(sub.join("mlp_relu_tanh.onnx").exists());
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        sub.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let help = text(&run(&["--help"]).stdout);
    assert!(help.contains("DIR/"), "{help}");
}

#[test]
fn threads_flag_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("cnn.onnx");
    let mut outs = Vec::new();
    for n in ["1", "3"] {
        let out = dir.path().join(format!("t{n}.onnx"));
        let o = run(&[
            input.to_str().unwrap(),
            "--threads",
            n,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        outs.push(std::fs::read(out).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
    let o = run(&[input.to_str().unwrap(), "--threads", "0", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// The JSON schemas in `onnx-reinit/schema/`, checked against real output

/// The errors of `v` against `schema` (the subset of JSON Schema the files use: `$ref` to
/// `#/$defs/…`, `type` (one or a list), `const`, `enum`, `minimum`, `properties`, `required`,
/// `additionalProperties: false`, `items`), each with its JSON path.
fn schema_errors(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    v: &serde_json::Value,
    path: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut errs = Vec::new();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return schema_errors(root, &root["$defs"][name], v, path);
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        errs.push(format!("{path}: {v} is not {c}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errs.push(format!("{path}: {v} not in {e:?}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type {t}"),
        };
        let ok = types.iter().any(|t| match *t {
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            other => panic!("type {other}"),
        });
        if !ok {
            errs.push(format!("{path}: {v} is not {types:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < min
    {
        errs.push(format!("{path}: {x} < {min}"));
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                errs.push(format!("{path}: missing `{k}`"));
            }
        }
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => errs.extend(schema_errors(root, s, x, &format!("{path}.{k}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{path}: `{k}` is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            errs.extend(schema_errors(root, items, x, &format!("{path}[{i}]")));
        }
    }
    errs
}

fn schema(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn assert_valid(schema: &serde_json::Value, doc: &serde_json::Value, what: &str) {
    let errs = schema_errors(schema, schema, doc, "$");
    assert!(errs.is_empty(), "{what}:\n{}", errs.join("\n"));
}

#[test]
fn json_output_follows_the_written_schemas() {
    let rewrite = schema("rewrite.schema.json");
    let inspect = schema("inspect.schema.json");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for path in crate::common::fixture_models() {
        let p = path.to_str().unwrap();
        let out = dir.path().join(path.file_name().unwrap());
        for args in [
            vec![p, "--dry-run", "--json"],
            vec![p, "--json", "-o", out.to_str().unwrap()],
            vec!["inspect", p, "--json"],
        ] {
            let o = run(&args);
            assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
            let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let s = if args[0] == "inspect" {
                &inspect
            } else {
                &rewrite
            };
            assert_valid(s, &doc, &format!("{args:?}"));
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");

    // The same key names for the same things in both documents.
    let m = fixture("lstm.onnx");
    let r: serde_json::Value =
        serde_json::from_slice(&run(&[m.to_str().unwrap(), "--dry-run", "--json"]).stdout).unwrap();
    let i: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", m.to_str().unwrap(), "--json"]).stdout).unwrap();
    for k in [
        "schema_version",
        "tool_version",
        "model",
        "seed",
        "tensors",
        "untouched",
    ] {
        assert_eq!(r[k].is_null(), i[k].is_null(), "{k}");
    }
    assert_eq!(r["seed"], i["seed"], "the default seed is the same");
    assert_eq!(r["tool_version"], env!("CARGO_PKG_VERSION"));
    for k in [
        "name",
        "graph",
        "node",
        "op",
        "role",
        "recurrent",
        "shape",
        "dtype",
        "fan_in",
    ] {
        assert_eq!(r["tensors"][0][k], i["tensors"][0][k], "{k}");
    }

    // The validator is not vacuous: a missing key, an extra key and a wrong type fail.
    let mut bad = r.clone();
    bad.as_object_mut().unwrap().remove("seed");
    bad["tensors"][0]["extra"] = serde_json::json!(1);
    bad["summary"]["changed"] = serde_json::json!("3");
    let errs = schema_errors(&rewrite, &rewrite, &bad, "$");
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn json_reports_target_std_bound_gain_and_the_suggested_argv() {
    let m = fixture("mlp_relu_tanh.onnx");
    let o = run(&[m.to_str().unwrap(), "--dry-run", "--json"]);
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    for t in report.tensors.iter().filter(|t| t.role == "weight") {
        let (fi, fo) = (t.fan_in.unwrap() as f64, t.fan_out.unwrap() as f64);
        // he_uniform for relu: gain √2, bound √(6/fan_in); glorot_uniform: gain 1,
        // bound √(6/(fan_in+fan_out)); uniform std = bound/√3.
        let (gain, bound) = match t.activation.as_deref() {
            Some("relu") => (2f64.sqrt(), (6.0 / fi).sqrt()),
            _ => (1.0, (6.0 / (fi + fo)).sqrt()),
        };
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() <= 1e-12 * b.max(1.0);
        assert!(close(t.gain, gain), "{}: {:?}", t.name, t.gain);
        assert!(close(t.bound, bound), "{}: {:?}", t.name, t.bound);
        assert!(close(t.target_std, bound / 3f64.sqrt()), "{}", t.name);
    }
    let bias = report.tensors.iter().find(|t| t.role == "bias").unwrap();
    assert_eq!(
        (bias.target_std, bias.bound, bias.gain),
        (Some(0.0), Some(0.0), None)
    );

    // inspect: the suggested command as an argument list, which runs as is.
    let dir = tempfile::tempdir().unwrap();
    let zeroed = dir.path().join("z.onnx");
    let o = run(&[
        m.to_str().unwrap(),
        "--rule",
        "fc2.weight=zeros",
        "-o",
        zeroed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(&["inspect", zeroed.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let argv: Vec<String> =
        serde_json::from_value(doc["summary"]["suggested_argv"].clone()).unwrap();
    assert_eq!(argv[0], "onnx-reinit");
    assert!(
        argv.iter().any(|a| a.starts_with("fc2.weight=")),
        "{argv:?}"
    );
    let fixed = dir.path().join("fixed.onnx");
    let mut args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    args.extend(["-o", fixed.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(&["inspect", fixed.to_str().unwrap(), "--fail-on", "any"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
}

/// Every regular file under `dir`, absolute, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files_under(&p));
        } else {
            v.push(p.display().to_string());
        }
    }
    v.sort();
    v
}

/// `-o` beside the input of a model with external data: the output would copy `w.bin` over
/// the input's own `w.bin`. Refused before anything is written, said in the user's words with
/// the ways out, which then work.
#[test]
fn output_whose_external_data_would_overwrite_the_inputs_is_refused_with_a_way_out() {
    let dir = tempfile::Builder::new().prefix("work").tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("w.bin"), f32_bytes(&[1.0; 4])).unwrap();
    let g = graph(
        &[node("mm", "MatMul", &["x", "W"], &["y"], &[])],
        &[tensor(
            "W",
            &[2, 2],
            FLOAT,
            &Payload::external("w.bin", None, None),
        )],
        &["x"],
        &["y"],
    );
    let input = src.join("m.onnx");
    std::fs::write(&input, model_proto("test", None, &g)).unwrap();
    let before = files_under(&src);
    let data_before = std::fs::read(src.join("w.bin")).unwrap();
    let out = src.join("m2.onnx");
    let o = run(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    for part in [
        "w.bin",
        "external data file would overwrite the input's",
        "\"W\"",
        "--data-name NAME",
        "-o DIR/",
        "--in-place",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    assert!(!err.contains(".tmp"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing printed as done: {}",
        text(&o.stdout)
    );
    assert_eq!(files_under(&src), before, "nothing written");
    assert_eq!(std::fs::read(src.join("w.bin")).unwrap(), data_before);
    // The ways out: another folder, or the model itself.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        &format!("{}/", other.display()),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(other.join("m.onnx").exists() && other.join("w.bin").exists());
    let o = run(&[input.to_str().unwrap(), "--in-place"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_ne!(std::fs::read(src.join("w.bin")).unwrap(), data_before);
}

/// `--data-name NAME`: the output beside the input keeps its data in NAME; its tensors point
/// there at their offsets, its values are those of a plain copy to another folder, and the
/// input's data file is untouched. Refused: several data files, a path out of the folder, in
/// place.
#[test]
fn data_name_gives_the_output_its_own_data_file() {
    let dir = tempfile::Builder::new().prefix("work").tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // W at offset 0, B at offset 16 of one file; a small inline tensor too.
    let mut data = f32_bytes(&[1.0; 4]);
    data.extend(f32_bytes(&[0.5; 2]));
    std::fs::write(src.join("w.bin"), &data).unwrap();
    let g = graph(
        &[node("gemm", "Gemm", &["x", "W", "B"], &["y"], &[])],
        &[
            tensor(
                "W",
                &[2, 2],
                FLOAT,
                &Payload::external("w.bin", Some(0), Some(16)),
            ),
            tensor(
                "B",
                &[2],
                FLOAT,
                &Payload::external("w.bin", Some(16), Some(8)),
            ),
        ],
        &["x"],
        &["y"],
    );
    let input = src.join("m.onnx");
    std::fs::write(&input, model_proto("test", None, &g)).unwrap();
    let out = src.join("m2.onnx");
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--data-name",
        "m2.bin",
        "--rule",
        "B=normal(0.1)",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    let abs = |p: &Path| std::path::absolute(p).unwrap().display().to_string();
    let mut listed = report.files_written.clone();
    listed.sort();
    assert_eq!(listed, [abs(&src.join("m2.bin")), abs(&out)]);
    assert_eq!(
        std::fs::read(src.join("w.bin")).unwrap(),
        data,
        "input data kept"
    );
    // The same run into another folder keeps the name: the values must be the same bytes.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        &format!("{}/", other.display()),
        "--rule",
        "B=normal(0.1)",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let reference = std::fs::read(other.join("w.bin")).unwrap();
    assert_ne!(reference, data);
    assert_eq!(std::fs::read(src.join("m2.bin")).unwrap(), reference);
    // The output model loads, and each tensor points to m2.bin at its own offset.
    let m = LoadedModel::open(&out).unwrap();
    let canon = src.join("m2.bin").canonicalize().unwrap();
    for (name, offset, length) in [("W", 0, 16), ("B", 16, 8)] {
        let t = m.tensors().iter().find(|t| t.name == name).unwrap();
        match &t.storage {
            onnx_reinit::onnx::model::Storage::External(ext) => {
                assert_eq!(ext.location, "m2.bin", "{name}");
                assert_eq!(ext.path, canon, "{name}");
                assert_eq!((ext.offset, ext.length), (offset, length), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Each location entry is one byte longer ("m2.bin" for "w.bin"): the file grows by two
    // bytes, the enclosing lengths re-framed (it loaded above); the values read back are the
    // plain copy's.
    let plain = LoadedModel::open(other.join("m.onnx")).unwrap();
    assert_eq!(m.bytes().len(), plain.bytes().len() + 2);
    for i in 0..2 {
        let read = |m: &LoadedModel| {
            let mut v = vec![0f32; m.tensors()[i].numel() as usize];
            m.read_values(i, 0, ValuesMut::F32(&mut v)).unwrap();
            v
        };
        assert_eq!(read(&m), read(&plain), "tensor {i}");
    }

    // Refusals, each writing nothing.
    std::fs::write(src.join("b.bin"), f32_bytes(&[0.5; 2])).unwrap();
    let g2 = graph(
        &[node("gemm", "Gemm", &["x", "W", "B"], &["y"], &[])],
        &[
            tensor(
                "W",
                &[2, 2],
                FLOAT,
                &Payload::external("w.bin", None, Some(16)),
            ),
            tensor("B", &[2], FLOAT, &Payload::external("b.bin", None, None)),
        ],
        &["x"],
        &["y"],
    );
    let two = src.join("two.onnx");
    std::fs::write(&two, model_proto("test", None, &g2)).unwrap();
    let before = files_under(&src);
    for (model, name, code, says) in [
        (&two, "t.bin", 1, "2 files (b.bin, w.bin)"),
        (&input, "../t.bin", 1, "\"../t.bin\""),
        (&input, "m3.onnx", 1, "m3.onnx"),
    ] {
        let o = run(&[
            model.to_str().unwrap(),
            "-o",
            src.join("m3.onnx").to_str().unwrap(),
            "--data-name",
            name,
        ]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(says), "{name}: {says:?} in {err}");
        assert_eq!(files_under(&src), before, "{name}: nothing written");
    }
    let o = run(&[
        input.to_str().unwrap(),
        "--in-place",
        "--data-name",
        "x.bin",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(files_under(&src), before);
}

#[test]
fn files_written_lists_the_model_and_its_external_data_as_written() {
    // Not `.tmp…`: the test looks for temporary names in the messages.
    let dir = tempfile::Builder::new().prefix("work").tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("w.bin"), f32_bytes(&[1.0; 4])).unwrap();
    std::fs::write(src.join("data/b.bin"), f32_bytes(&[1.0; 2])).unwrap();
    let g = graph(
        &[node("gemm", "Gemm", &["x", "W", "B"], &["y"], &[])],
        &[
            tensor("W", &[2, 2], FLOAT, &Payload::external("w.bin", None, None)),
            tensor(
                "B",
                &[2],
                FLOAT,
                &Payload::external("data/b.bin", None, None),
            ),
        ],
        &["x"],
        &["y"],
    );
    let input = src.join("m.onnx");
    std::fs::write(&input, model_proto("test", None, &g)).unwrap();

    // A missing output folder is named as such (not through a temporary file's name).
    let out_dir = dir.path().join("out");
    let o = run(&[
        input.to_str().unwrap(),
        "-o",
        &format!("{}/", out_dir.display()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("{}: the folder does not exist", out_dir.display()))
            && !err.contains(".tmp"),
        "{err}"
    );
    std::fs::create_dir(&out_dir).unwrap();
    let o = run(&[
        input.to_str().unwrap(),
        "--json",
        "-o",
        &format!("{}/", out_dir.display()),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    let mut listed = report.files_written.clone();
    listed.sort();
    assert_eq!(listed, files_under(&out_dir));
    assert_eq!(listed.len(), 3);

    // In place, only the side files holding targets (here both, and not the .onnx, whose
    // bytes do not change).
    let o = run(&[input.to_str().unwrap(), "--json", "--in-place"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: Report = serde_json::from_slice(&o.stdout).unwrap();
    let canon = |p: &Path| p.canonicalize().unwrap().display().to_string();
    let mut expected = vec![canon(&src.join("w.bin")), canon(&src.join("data/b.bin"))];
    expected.sort();
    let mut listed = report.files_written.clone();
    listed.sort();
    assert_eq!(listed, expected);
}

#[test]
fn messages_use_the_users_words() {
    let dir = tempfile::Builder::new().prefix("work").tempdir().unwrap();
    // A text file and random bytes are "not an ONNX model", for both subcommands.
    let txt = dir.path().join("notes.onnx");
    std::fs::write(&txt, "hello, this is text\n").unwrap();
    let junk = dir.path().join("junk.onnx");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    for f in [&txt, &junk] {
        for args in [
            vec![f.to_str().unwrap(), "--dry-run"],
            vec!["inspect", f.to_str().unwrap()],
        ] {
            let o = run(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}");
            let err = text(&o.stderr);
            assert!(
                err.contains(&format!("{}: not an ONNX model", f.display())),
                "{args:?}: {err}"
            );
        }
    }
    // Flags with their dashes.
    let input = copy_fixture(dir.path(), "gru.onnx");
    let out = dir.path().join("o.onnx");
    std::fs::write(&out, b"x").unwrap();
    let o = run(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    let o = run(&[input.to_str().unwrap(), "-o", input.to_str().unwrap()]);
    assert!(
        text(&o.stderr).contains("--in-place"),
        "{}",
        text(&o.stderr)
    );
    // An f32 slope prints as written, not as its f64 expansion.
    let o = run(&[
        fixture("mlp_leaky_selu_elu.onnx").to_str().unwrap(),
        "--dry-run",
        "--wide",
    ]);
    let t = text(&o.stdout);
    assert!(
        t.contains("leaky_relu(0.1))") && !t.contains("0.1000000"),
        "{t}"
    );
}

/// `Rules::from_flags`, the conversion the CLI's rule flags and the wheel's `rules=` share:
/// the semantics the flags' help states (`--recurrent` sets W and R, `--recurrent-w/-r` then
/// override it whatever the order; a flag given beats a preset).
#[test]
fn cli_rule_flags_convert_into_rules() {
    use onnx_reinit::plan::{ActivationClass, Rule, Rules};
    let p = |s: &str| Rule::parse(s).unwrap();
    let r = Rules::from_flags(
        [
            ("recurrent-w", p("he_normal")),
            ("recurrent", p("zeros")),
            ("leaky_relu", p("lecun_normal")),
            ("relu", p("glorot")),
            ("relu", p("he")),
            ("bias", p("ones")),
        ],
        Vec::new(),
    )
    .unwrap();
    assert_eq!(r.recurrent_w, p("he_normal"));
    assert_eq!(r.recurrent_r, p("zeros"));
    assert_eq!(
        r.activation,
        [
            (ActivationClass::Relu, p("he")),
            (ActivationClass::LeakyRelu, p("lecun_normal"))
        ]
    );
    assert_eq!(r.bias, p("ones"));
    assert_eq!(r.norm, Rules::default().norm);
    assert_eq!(r.explicit, ["bias", "recurrent-w", "recurrent-r"]);
    assert_eq!(
        Rules::from_flags([("relu_", p("he"))], Vec::new()).unwrap_err(),
        "relu_"
    );
    for f in Rules::FLAGS {
        let r = Rules::from_flags([(f, p("keep"))], Vec::new()).unwrap();
        let set = r.activation.len()
            + [
                &r.bias,
                &r.norm,
                &r.embedding,
                &r.recurrent_w,
                &r.recurrent_r,
                &r.prelu_slope,
            ]
            .iter()
            .filter(|x| ***x == Rule::Keep)
            .count();
        assert!(set >= 1, "{f} sets nothing");
    }
}
