//! The pattern fixtures (`tests/fixtures/patterns`, made by `tests/fixtures/make_patterns.py`)
//! rewritten with the default rules: only the payload bytes of the planned tensors change, every
//! planned tensor changes, and (feature `forward`) the rewritten models tract supports load and
//! run. The analysis of these fixtures against their ground truth is in `analysis.rs`.
//! The onnxruntime-only fixtures (`bert_ort`: com.microsoft ops; `qdq_mlp`) were run in
//! onnxruntime by the fixture script when they were made.

use std::ops::Range;
use std::path::{Path, PathBuf};

use onnx_reinit::analysis::AnalysisOptions;
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::storage::Storage;
use onnx_reinit::pipeline::{self, Destination, RewriteConfig};
use onnx_reinit::plan::{self, Rules};

use crate::common::{fixtures_dir, run, text};

fn pattern_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("patterns"))
        .expect("pattern fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    assert!(v.len() >= 17, "pattern fixtures missing: {v:?}");
    v
}

fn payload(m: &LoadedModel, i: usize) -> Vec<Range<usize>> {
    match &m.tensors()[i].storage {
        Storage::Raw { bytes } => vec![bytes.clone()],
        Storage::FloatData { segments }
        | Storage::DoubleData { segments }
        | Storage::Int32Data { segments } => segments.iter().map(|s| s.bytes.clone()).collect(),
        _ => Vec::new(),
    }
}

fn rewrite(path: &Path, out: &Path) {
    pipeline::run(&RewriteConfig {
        model: path.to_path_buf(),
        destination: Destination::Path(out.to_path_buf()),
        force: false,
        rules: Rules::default(),
        seed: 11,
        analysis: AnalysisOptions::default(),
        cancel: None,
        progress: None,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn pattern_fixtures_rewrite_only_the_planned_payloads() {
    let dir = tempfile::tempdir().unwrap();
    for path in pattern_fixtures() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let m = LoadedModel::open(&path).unwrap();
        let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).unwrap();
        let p = plan::plan(&a, &Rules::default(), 11).unwrap();
        let planned: Vec<usize> = (0..p.entries.len())
            .filter(|&i| p.entries[i].fill.is_some())
            .collect();
        let out = dir.path().join(format!("{stem}.onnx"));
        rewrite(&path, &out);
        let new = std::fs::read(&out).unwrap();
        let old = m.bytes();
        assert_eq!(old.len(), new.len(), "{stem}");
        let ranges: Vec<Range<usize>> = planned.iter().flat_map(|&i| payload(&m, i)).collect();
        for (k, (x, y)) in old.iter().zip(&new).enumerate() {
            assert!(
                x == y || ranges.iter().any(|r| r.contains(&k)),
                "{stem}: byte {k} differs outside the planned payloads"
            );
        }
        // Every planned tensor changed (its old values were perturbed, never exactly the fill).
        for &i in &planned {
            let changed = payload(&m, i).into_iter().any(|r| old[r.clone()] != new[r]);
            assert!(
                changed,
                "{stem}: {} planned but unchanged",
                m.tensors()[i].name
            );
        }
    }
}

/// The CLI's table lists what it leaves alone, with the reason, under the table; the JSON marks
/// the same tensors `listed`.
#[test]
fn the_table_lists_what_is_left_alone() {
    let p = fixtures_dir().join("patterns/qdq_mlp.onnx");
    let out = run(&[p.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let untouched = j["untouched"].as_array().unwrap();
    let listed: Vec<&serde_json::Value> =
        untouched.iter().filter(|u| u["listed"] == true).collect();
    let quantized = untouched
        .iter()
        .filter(|u| {
            u["reason"]
                .as_str()
                .unwrap()
                .starts_with("quantized weight")
        })
        .count();
    // fc1 and fc2: weight and bias, each with its scale and zero point.
    assert!(quantized >= 8, "{untouched:?}");
    assert!(listed.len() >= quantized, "{untouched:?}");
    // --wide: every name and reason in full. The footer groups the untouched tensors by reason,
    // the ones that could be parameters first: `untouched N: REASON: name, name, …`.
    let out = run(&[p.to_str().unwrap(), "--dry-run", "--wide"]);
    let t = text(&out.stdout);
    let footer: Vec<&str> = t.lines().filter(|l| l.starts_with("untouched ")).collect();
    for u in &listed {
        let name = u["name"].as_str().unwrap();
        let reason = u["reason"].as_str().unwrap();
        assert!(
            footer.iter().any(|l| l
                .split_once(&format!(": {reason}: "))
                .is_some_and(|(_, names)| names.split(", ").any(|n| n == name))),
            "{name} not in the footer under its reason: {t}"
        );
    }
    // The groups of possible parameters come before the others (integer tensors, scalars).
    let first_other = footer.iter().position(|l| {
        !listed
            .iter()
            .any(|u| l.contains(&format!(": {}: ", u["reason"].as_str().unwrap())))
    });
    let last_listed = footer.iter().rposition(|l| {
        listed
            .iter()
            .any(|u| l.contains(&format!(": {}: ", u["reason"].as_str().unwrap())))
    });
    if let (Some(o), Some(l)) = (first_other, last_listed) {
        assert!(l < o, "possible parameters first: {t}");
    }
}

#[cfg(feature = "forward")]
#[test]
fn rewritten_pattern_fixtures_run_in_tract() {
    use onnx_reinit::inspect::{self, ForwardOptions};
    let dir = tempfile::tempdir().unwrap();
    let mut ran = Vec::new();
    for path in pattern_fixtures() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(format!("{stem}.onnx"));
        rewrite(&path, &out);
        let m = LoadedModel::open(&out).unwrap();
        let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).unwrap();
        let r = inspect::run_forward(&m, &a, &ForwardOptions::default());
        if stem == "bert_ort" || stem == "qdq_mlp" {
            // com.microsoft fused ops / QDQ: checked in onnxruntime by the fixture script.
            continue;
        }
        assert!(r.error.is_none(), "{stem}: {:?}", r.error);
        let layers = &r.runs[0].layers;
        assert!(
            layers.iter().all(|l| l.std.is_finite()),
            "{stem}: {layers:?}"
        );
        ran.push(stem);
    }
    println!("ran in tract: {ran:?}");
}
