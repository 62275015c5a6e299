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
