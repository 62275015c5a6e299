//! Fuzz harnesses for onnx-reinit, shared by the libFuzzer targets and the `replay` binary.
//!
//! Both panic (which libFuzzer reports as a crash) on any panic inside the library and on any
//! broken guarantee: an error that does not name the model file, a refused run that left a file
//! behind or changed the input, or a rewrite that fails the fidelity check.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use onnx_reinit::analysis::{self, AnalysisOptions, NoConstValues};
use onnx_reinit::apply::PlanFiller;
use onnx_reinit::onnx::model::{LoadedModel, Storage};
use onnx_reinit::onnx::{scan, skeleton};
use onnx_reinit::pipeline::{self, RunError};
use onnx_reinit::plan::{self, Rules};
use onnx_reinit::report::Report;
use onnx_reinit::rewrite::{self, OutputTarget, RewriteOptions};

// The rewrite fidelity helpers of the test suite, shared rather than copied.
#[path = "../../onnx-reinit/tests/suite/common/fidelity.rs"]
mod fidelity;
use fidelity::{bits, inline_ranges, length_prefixes, outside};

/// The seed the CLI uses by default.
const SEED: u64 = pipeline::DEFAULT_SEED;

/// Scan, skeleton decode, analysis without constant values, plan and report: all in memory.
///
/// # Panics
/// On a panic in the library, a scanned range outside the buffer, or a skeleton decode failure
/// the locator cannot place.
pub fn scan_and_analyse(data: &[u8]) {
    let scanned = scan::scan(data);
    let decoded = <skeleton::Model as prost::Message>::decode(data);
    if let (Ok(_), Err(e)) = (&scanned, &decoded) {
        // Every decode failure of a scannable model is located (a byte offset for the message).
        assert!(
            scan::locate_decode_error(data).is_some(),
            "prost refused the model ({e}) but the locator found nothing"
        );
    }
    let (Ok(scanned), Ok(model)) = (scanned, decoded) else {
        return;
    };
    // Whatever the scanner found is inside the buffer.
    for f in &scanned.frames {
        assert!(f.prefix.end <= f.body.start && f.body.end <= data.len());
    }
    for t in &scanned.tensors {
        assert!(t.prefix.end == t.body.start && t.body.end <= data.len());
        for r in &t.raw_data {
            assert!(t.body.start <= r.start && r.end <= t.body.end);
        }
    }
    // The loader takes the initializers' names and dims from the scanner and only counts the
    // skeleton's: the two decoders must agree on them.
    let mut headers = Vec::new();
    preorder_headers(model.graph.as_ref(), &mut headers);
    let scanned_headers: Vec<(&str, &[i64])> = scanned
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dims.as_slice()))
        .collect();
    assert_eq!(headers, scanned_headers, "prost and the scanner disagree");
    let a = analysis::analyze(&model, &NoConstValues, &AnalysisOptions::default());
    if let Ok(p) = plan::plan(&a, &Rules::default(), SEED) {
        let report = Report::new("fuzz.onnx", &a, &p, true, None);
        let _ = report.table();
        let _ = serde_json::to_string(&report).unwrap();
    }
}

/// The initializers' (name, dims) of `graph` and its nested graphs, in the scanner's
/// enumeration order (pre-order: a graph, then each node's attributes' `g` then `graphs`).
fn preorder_headers<'a>(graph: Option<&'a skeleton::Graph>, out: &mut Vec<(&'a str, &'a [i64])>) {
    let Some(g) = graph else { return };
    out.extend(
        g.initializer
            .iter()
            .map(|h| (h.name.as_str(), h.dims.as_slice())),
    );
    for n in &g.node {
        for a in &n.attribute {
            preorder_headers(a.g.as_ref(), out);
            for sub in &a.graphs {
                preorder_headers(Some(sub), out);
            }
        }
    }
}

/// Side files a seed may reference (the robustness tests' `write_side_files`).
fn write_side_files(dir: &Path) {
    let f32s = |v: f32, n: usize| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("w.bin"), f32s(0.75, 20)).unwrap();
    fs::write(dir.join("sub/v.bin"), f32s(0.125, 12)).unwrap();
}

/// A scratch folder for this process, in memory when possible.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        }
    })
    .path()
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort();
    v
}

/// The whole pipeline on `data` as a model file (beside the side files seeds reference).
///
/// # Panics
/// On a panic in the library, an error without the file's name or byte offset, a refusal that
/// changed or left a file, or a rewrite that fails the fidelity check.
#[allow(clippy::too_many_lines)]
pub fn pipeline(data: &[u8]) {
    let base = scratch();
    let in_dir = base.join("in");
    let out_dir = base.join("out");
    let _ = fs::remove_dir_all(&in_dir);
    let _ = fs::remove_dir_all(&out_dir);
    write_side_files(&in_dir);
    fs::create_dir_all(&out_dir).unwrap();
    let input = in_dir.join("model.onnx");
    fs::write(&input, data).unwrap();
    let in_place = data.len() % 4 == 3;
    let before_in = listing(&in_dir);
    let side_before: Vec<(PathBuf, Vec<u8>)> = before_in
        .iter()
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    let unchanged = |what: &str| {
        assert_eq!(listing(&in_dir), before_in, "input folder changed: {what}");
        for (p, b) in &side_before {
            assert!(
                fs::read(p).unwrap() == *b,
                "{} changed: {what}",
                p.display()
            );
        }
        assert!(listing(&out_dir).is_empty(), "output left behind: {what}");
    };

    let m = match LoadedModel::open(&input) {
        Ok(m) => m,
        Err(e) => {
            assert!(
                !matches!(e, onnx_reinit::error::Error::Decode { .. }),
                "a decode error without a byte offset: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains("model.onnx"), "{msg:?} does not name the file");
            assert!(!msg.contains('\n'), "{msg:?} is not one line");
            unchanged(&msg);
            return;
        }
    };
    let a = match pipeline::analyze_loaded(&m, &AnalysisOptions::default()) {
        Ok(a) => a,
        Err(e @ RunError::AnalysisMismatch { .. }) => panic!("{e}"),
        Err(_) => return,
    };
    let Ok(p) = plan::plan(&a, &Rules::default(), SEED) else {
        return;
    };
    let report = Report::new("model.onnx", &a, &p, false, None);
    let _ = report.table();
    let _ = serde_json::to_string(&report).unwrap();
    let Ok(filler) = PlanFiller::new(&a, &p) else {
        return;
    };
    let targets = filler.targets();
    let out = if in_place {
        input.clone()
    } else {
        out_dir.join("model.onnx")
    };
    let opts = RewriteOptions::new(if in_place {
        OutputTarget::InPlace
    } else {
        OutputTarget::Path(out.clone())
    });
    let stats = match rewrite::rewrite(&m, &targets, &filler, &opts) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("model.onnx"), "{msg:?}");
            unchanged(&msg);
            return;
        }
    };

    // Fidelity.
    let after = fs::read(&out).unwrap();
    let o = LoadedModel::open(&out).unwrap_or_else(|e| panic!("the output does not load: {e}"));
    assert_eq!(o.tensors().len(), m.tensors().len());
    for (x, y) in m.tensors().iter().zip(o.tensors()) {
        assert_eq!(
            (
                m.graph_of(x),
                &x.name,
                &x.dims,
                x.data_type,
                x.storage.kind()
            ),
            (
                o.graph_of(y),
                &y.name,
                &y.dims,
                y.data_type,
                y.storage.kind()
            )
        );
    }
    let holes_in: Vec<Range<usize>> = targets.iter().flat_map(|&i| inline_ranges(&m, i)).collect();
    if stats.reframed == 0 {
        assert_eq!(
            after.len(),
            data.len(),
            "output length differs from input length"
        );
        assert!(
            outside(data, &holes_in) == outside(&after, &holes_in),
            "bytes outside the payloads changed"
        );
    } else {
        let holes_out: Vec<Range<usize>> =
            targets.iter().flat_map(|&i| inline_ranges(&o, i)).collect();
        assert!(
            outside(data, &[holes_in, length_prefixes(data)].concat())
                == outside(&after, &[holes_out, length_prefixes(&after)].concat()),
            "re-framing changed bytes outside payloads and length prefixes"
        );
    }
    for (i, t) in m.tensors().iter().enumerate() {
        if let Storage::External(ext) = &t.storage {
            let location = &ext.location;
            let src = &side_before
                .iter()
                .find(|(p, _)| *p == in_dir.join(location) || p.ends_with(location))
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            let dst = fs::read(o.dir().join(location)).unwrap();
            assert_eq!(src.len(), dst.len(), "side file {location:?} of tensor {i}");
        }
        if !t.dtype().is_float() {
            continue;
        }
        let got = bits(&o, i, None);
        if targets.contains(&i) {
            assert!(
                got == bits(&m, i, Some(&filler)),
                "tensor {i}: not the plan's values"
            );
        } else {
            assert!(got == bits(&m, i, None), "untouched tensor {i} changed");
        }
    }
}
