//! Whole-model rewrite next to a plain file copy, measured in the same run.
//!
//! `cargo bench -p onnx-reinit --no-default-features --bench rewrite` (the default features add
//! tract-onnx, a long build the rewrite does not use):
//!
//! 1. writes a ~410 MB model (10 Gemm layers of 3200², alternating Relu/Tanh; see
//!    `examples/make_big.rs`) and its external-data twin (same tensors in a side file) into a
//!    temporary folder;
//! 2. times, in this process and interleaved rep by rep, copies of the file (`std::fs::copy`,
//!    which is an in-kernel `copy_file_range`; a 4 MiB read+write loop; each also followed by
//!    `fsync`, as the rewrite itself flushes its output before renaming it) and the rewrite
//!    through `pipeline::run` (default rules, to a new file), reporting min/median and the
//!    ratio to each copy;
//! 3. splits the rewrite into its stages (open, analysis, plan, sampling alone into a reused
//!    piece buffer next to a plain `fill` of the same pieces, the write with a zero filler);
//! 4. measures whole processes — `cp`, `cp` + `sync FILE`, this binary re-executed to run
//!    `pipeline::run` once, and the release CLI if it is built — for wall time and peak RSS
//!    (`getrusage(RUSAGE_CHILDREN)` in a small wrapper process around each run);
//! 5. with `ONNX_REINIT_BENCH_BIG=1`, the same for a > 2 GB external-data model (12 layers of
//!    7000², 2.35 GB side file; needs ~7.5 GB free disk, checked with `df`), to a new path and
//!    in place.
//!
//! 6. memory per initializer: a model of `ONNX_REINIT_BENCH_MANY` (default 2,000,001) one-element
//!    f32 initializers, rewritten by a child process (`pipeline::run`, default rules) whose
//!    peak RSS, minus that of the same child on a one-initializer model, is divided by the
//!    count and printed with the wall time (issue 13's target: ≤ 200 bytes per initializer
//!    beyond the file's own size). `ONNX_REINIT_BENCH_MANY=0` skips it;
//!    `ONNX_REINIT_BENCH_ONLY=many` runs it alone.
//!
//! Environment: `ONNX_REINIT_BENCH_REPS` (default 5), `ONNX_REINIT_BENCH_DIR` (where the
//! temporary folder goes; default the system temp dir), `ONNX_REINIT_BENCH_BIG=1`,
//! `ONNX_REINIT_BENCH_BIG_LAYERS` / `_BIG_DIM` (default 12 / 7000), `ONNX_REINIT_BIN` (the CLI
//! to measure; default `onnx-reinit` next to this bench's `deps` folder). The page cache is warm
//! for every case (the file was just written): these are CPU + page-cache + writeback numbers,
//! not cold-disk numbers.
#![allow(missing_docs)]

#[path = "../examples/make_big.rs"]
#[allow(dead_code)]
mod make_big;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use onnx_reinit::analysis::AnalysisOptions;
use onnx_reinit::apply::PlanFiller;
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::onnx::values::ValuesMut;
use onnx_reinit::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig};
use onnx_reinit::plan::{self, Rules};
use onnx_reinit::rewrite::{self, DEFAULT_PIECE_ELEMS, Filler, OutputTarget, RewriteOptions};
use rayon::prelude::*;

use make_big::BigModel;

/// The Python baseline (`bench/py_reinit.py`: onnx + numpy) on the 410 MB model, as measured on
/// this 2-core machine before the project started; used for the target lines only, since
/// `bench/compare.sh` measures it in the same run.
const PY_SECS: f64 = 3.75;
const PY_RSS_MB: f64 = 1970.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn config(model: &Path, destination: Destination) -> RewriteConfig {
    RewriteConfig {
        model: model.to_path_buf(),
        destination,
        force: true,
        rules: Rules::default(),
        seed: DEFAULT_SEED,
        analysis: AnalysisOptions::default(),
        cancel: None,
        progress: None,
    }
}

fn remove(p: &Path) {
    let _ = fs::remove_file(p);
}

/// Sorted durations of one case.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn min(&self) -> f64 {
        self.sorted()[0]
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            f64::midpoint(v[v.len() / 2 - 1], v[v.len() / 2])
        }
    }
}

/// A timed case: `run` does one repetition and returns its duration (setup excluded).
struct Case<'a> {
    name: String,
    run: Box<dyn FnMut() -> Duration + 'a>,
    samples: Samples,
}

impl<'a> Case<'a> {
    fn new(name: impl Into<String>, run: impl FnMut() -> Duration + 'a) -> Self {
        Case {
            name: name.into(),
            run: Box::new(run),
            samples: Samples::default(),
        }
    }
}

/// Flushes the file system holding `dir` (`sync -f`), so that no case pays for the writeback
/// of an earlier one. Untimed.
fn settle(dir: &Path) {
    let _ = Command::new("sync").arg("-f").arg(dir).status();
}

/// Runs every case once per rep, interleaved, so drifting machine load hits all alike.
fn run_interleaved(cases: &mut [Case<'_>], reps: usize, dir: &Path) {
    for _ in 0..reps {
        for c in cases.iter_mut() {
            settle(dir);
            let d = (c.run)();
            c.samples.push(d);
        }
    }
}

/// Prints a table of cases with ratios to the cases named in `bases`.
fn print_table(cases: &[Case<'_>], bytes: u64, bases: &[&str]) {
    let base: Vec<(&str, f64)> = bases
        .iter()
        .filter_map(|b| {
            cases
                .iter()
                .find(|c| c.name == *b)
                .map(|c| (*b, c.samples.median()))
        })
        .collect();
    print!("| case | min s | median s | MB/s (median) |");
    for (b, _) in &base {
        print!(" × `{b}` |");
    }
    println!();
    print!("|---|---:|---:|---:|");
    for _ in &base {
        print!("---:|");
    }
    println!();
    for c in cases {
        let med = c.samples.median();
        print!(
            "| {} | {:.3} | {:.3} | {:.0} |",
            c.name,
            c.samples.min(),
            med,
            mb(bytes) / med
        );
        for (_, b) in &base {
            print!(" {:.2} |", med / b);
        }
        println!();
    }
    println!();
}

fn copy_rw(src: &Path, dst: &Path, sync: bool) -> std::io::Result<()> {
    let mut i = File::open(src)?;
    let mut o = File::create(dst)?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = i.read(&mut buf)?;
        if n == 0 {
            break;
        }
        o.write_all(&buf[..n])?;
    }
    if sync {
        o.sync_all()?;
    }
    Ok(())
}

fn copy_kernel(src: &Path, dst: &Path, sync: bool) -> std::io::Result<()> {
    fs::copy(src, dst)?;
    if sync {
        File::options().write(true).open(dst)?.sync_all()?;
    }
    Ok(())
}

/// Where a rewrite of `model` goes: `dir/out/out.onnx`, and its side file (under the input side
/// file's name, as the rewrite keeps locations) when the bulk is not the model itself.
fn outputs(model: &Path, bulk: &Path, dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let out_dir = dir.join("out");
    fs::create_dir_all(&out_dir).expect("output folder");
    let side = (bulk != model).then(|| out_dir.join(bulk.file_name().expect("side file name")));
    (out_dir.join("out.onnx"), side)
}

/// The copy cases and the rewrite to a new file, for a model whose bulk is `bulk` (the `.onnx`
/// itself, or its side file). Returns the cases after `reps` interleaved repetitions.
fn time_copies_and_rewrite<'a>(
    model: &'a Path,
    bulk: &'a Path,
    dir: &'a Path,
    reps: usize,
    in_place: bool,
) -> Vec<Case<'a>> {
    let copy_dst = dir.join("copy.bin");
    let (out, out_data) = outputs(model, bulk, dir);
    let mut cases = Vec::new();
    for (name, sync, kernel) in [
        ("fs::copy", false, true),
        ("read+write copy", false, false),
        ("fs::copy + fsync", true, true),
        ("read+write copy + fsync", true, false),
    ] {
        let (src, dst) = (bulk.to_path_buf(), copy_dst.clone());
        cases.push(Case::new(name, move || {
            remove(&dst);
            let t = Instant::now();
            let r = if kernel {
                copy_kernel(&src, &dst, sync)
            } else {
                copy_rw(&src, &dst, sync)
            };
            let d = t.elapsed();
            r.expect("copy");
            remove(&dst);
            d
        }));
    }
    {
        let (out, out_data) = (out.clone(), out_data.clone());
        let cfg = config(model, Destination::Path(out.clone()));
        cases.push(Case::new("pipeline::run → new file", move || {
            remove(&out);
            if let Some(p) = &out_data {
                remove(p);
            }
            let t = Instant::now();
            pipeline::run(&cfg).expect("rewrite");
            let d = t.elapsed();
            remove(&out);
            if let Some(p) = &out_data {
                remove(p);
            }
            d
        }));
    }
    if model == bulk {
        // `inspect`'s whole diagnosis (open, analyse, statistics of every weight, verdicts):
        // issue 15 asks for ≤ 2× a `cp` of the same file, measured in this run.
        let opts = onnx_reinit::inspect::InspectOptions::default();
        cases.push(Case::new(INSPECT_CASE, move || {
            let t = Instant::now();
            let r = onnx_reinit::inspect::inspect(model, &opts).expect("inspect");
            let d = t.elapsed();
            assert!(!r.2.tensors.is_empty());
            d
        }));
    }
    if in_place {
        let cfg = config(model, Destination::InPlace);
        cases.push(Case::new("pipeline::run --in-place", move || {
            let t = Instant::now();
            pipeline::run(&cfg).expect("rewrite in place");
            t.elapsed()
        }));
    }
    run_interleaved(&mut cases, reps, dir);
    cases
}

/// Writes zeros: the rewrite's I/O and bookkeeping without the sampling.
struct ZeroFiller;

impl Filler for ZeroFiller {
    fn fill(&self, _tensor: usize, _start: u64, out: ValuesMut<'_>) {
        match out {
            ValuesMut::F32(v) => v.fill(0.0),
            ValuesMut::F64(v) => v.fill(0.0),
            ValuesMut::F16(v) => v.fill(half::f16::ZERO),
            ValuesMut::BF16(v) => v.fill(half::bf16::ZERO),
        }
    }
}

/// The rewrite's stages one by one (medians over `reps`).
fn stages(model_path: &Path, dir: &Path, reps: usize) {
    let out = dir.join("stage.onnx");
    let mut open = Samples::default();
    let mut analyse = Samples::default();
    let mut planning = Samples::default();
    let mut fill = Samples::default();
    let mut memfill = Samples::default();
    let mut write_zero = Samples::default();
    let mut write_real = Samples::default();
    let mut filled_elems = 0u64;
    let piece_elems = DEFAULT_PIECE_ELEMS as u64;
    // File-backed resident pages: the mapped input's pages that the scan faulted in.
    let mut rss_file = (0, 0, 0);
    for rep in 0..reps {
        let before = status_kb("RssFile");
        let t = Instant::now();
        let model = LoadedModel::open(model_path).expect("open");
        open.push(t.elapsed());
        let t = Instant::now();
        let analysis =
            pipeline::analyze_loaded(&model, &AnalysisOptions::default()).expect("analyse");
        analyse.push(t.elapsed());
        if rep == 0 {
            rss_file = (before, status_kb("RssFile"), 0);
        }
        let t = Instant::now();
        let plan = plan::plan(&analysis, &Rules::default(), DEFAULT_SEED).expect("plan");
        let filler = PlanFiller::new(&analysis, &plan).expect("filler");
        let targets = filler.targets();
        planning.push(t.elapsed());

        // Sampling alone, the way the rewrite calls it: f32 pieces into a reused buffer.
        let pieces: Vec<(usize, u64, usize)> = targets
            .iter()
            .flat_map(|&i| {
                let n = model.tensors()[i].numel();
                (0..n.div_ceil(piece_elems)).map(move |p| {
                    (
                        i,
                        p * piece_elems,
                        (n - p * piece_elems).min(piece_elems) as usize,
                    )
                })
            })
            .collect();
        filled_elems = pieces.iter().map(|p| p.2 as u64).sum();
        let t = Instant::now();
        pieces
            .par_iter()
            .for_each_init(Vec::<f32>::new, |buf, &(i, start, n)| {
                buf.resize(n, 0.0);
                filler.fill(i, start, ValuesMut::F32(&mut buf[..n]));
                std::hint::black_box(&buf);
            });
        fill.push(t.elapsed());
        let t = Instant::now();
        pieces
            .par_iter()
            .for_each_init(Vec::<f32>::new, |buf, &(_, _, n)| {
                buf.resize(n, 0.0);
                buf.fill(1.5);
                std::hint::black_box(&buf);
            });
        memfill.push(t.elapsed());

        for (samples, f) in [
            (&mut write_zero, &ZeroFiller as &dyn Filler),
            (&mut write_real, &filler as &dyn Filler),
        ] {
            remove(&out);
            let mut opts = RewriteOptions::new(OutputTarget::Path(out.clone()));
            opts.force = true;
            let t = Instant::now();
            rewrite::rewrite(&model, &targets, f, &opts).expect("rewrite");
            samples.push(t.elapsed());
            remove(&out);
        }
        if rep == 0 {
            rss_file.2 = status_kb("RssFile");
        }
    }
    let gb = filled_elems as f64 * 4.0 / 1e9;
    println!("| stage | median s | note |");
    println!("|---|---:|---|");
    println!(
        "| LoadedModel::open | {:.4} | mmap, scan, skeleton decode |",
        open.median()
    );
    println!("| analyse | {:.4} | |", analyse.median());
    println!("| plan + PlanFiller::new | {:.4} | |", planning.median());
    println!(
        "| sampling only ({:.1} M f32 in {} K pieces, no I/O) | {:.4} | {:.1} GB/s |",
        filled_elems as f64 / 1e6,
        DEFAULT_PIECE_ELEMS >> 10,
        fill.median(),
        gb / fill.median()
    );
    println!(
        "| `fill(1.5)` of the same pieces | {:.4} | {:.1} GB/s; sampling = {:.2}× this rate |",
        memfill.median(),
        gb / memfill.median(),
        memfill.median() / fill.median()
    );
    println!(
        "| rewrite::rewrite, zero filler (I/O + fsync) | {:.4} | |",
        write_zero.median()
    );
    println!(
        "| rewrite::rewrite, real filler | {:.4} | |",
        write_real.median()
    );
    println!();
    println!(
        "RssFile of this process grew by {:.1} MB after open + analyse and by {:.1} MB after the \
         rewrites, with the model still open: pages of the input still mapped (page cache, \
         counted in RSS). The loader drops the pages its scan has read past, so this stays at \
         a few MB whatever the page-cache folio size and the number of tensors.\n",
        rss_file.1.saturating_sub(rss_file.0) as f64 / 1024.0,
        rss_file.2.saturating_sub(rss_file.0) as f64 / 1024.0
    );
}

/// A `kB` field of /proc/self/status (0 when unavailable).
fn status_kb(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One whole-process measurement.
struct Proc {
    wall: f64,
    rss_kb: u64,
    /// User + system CPU seconds (all threads): less sensitive to other load than the wall time.
    cpu: f64,
}

/// Runs `prog args` through this binary's `--child exec` wrapper, which reports the wall time
/// and the peak RSS of exactly that one child.
fn measure(prog: &Path, args: &[&Path]) -> Option<Proc> {
    let me = std::env::current_exe().ok()?;
    let out = Command::new(me)
        .arg("--child")
        .arg("exec")
        .arg(prog)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let wall = it.next()?.parse().ok()?;
    let rss_kb = it.next()?.parse().ok()?;
    let code: i32 = it.next()?.parse().ok()?;
    let cpu = it.next()?.parse().ok()?;
    if code != 0 {
        eprintln!("{} exited with {code}", prog.display());
        return None;
    }
    Some(Proc { wall, rss_kb, cpu })
}

struct ProcRow {
    name: String,
    runs: Vec<Proc>,
}

fn proc_rows(
    rows: &mut Vec<ProcRow>,
    name: &str,
    (reps, dir): (usize, &Path),
    mut each: impl FnMut() -> Option<Proc>,
) {
    let runs: Vec<Proc> = (0..reps)
        .filter_map(|_| {
            settle(dir);
            each()
        })
        .collect();
    if !runs.is_empty() {
        rows.push(ProcRow {
            name: name.into(),
            runs,
        });
    }
}

fn print_procs(rows: &[ProcRow], base: &str) {
    let med = |r: &ProcRow| {
        let mut s = Samples::default();
        r.runs
            .iter()
            .for_each(|p| s.push(Duration::from_secs_f64(p.wall)));
        (s.min(), s.median())
    };
    let cpu = |r: &ProcRow| {
        let mut s = Samples::default();
        r.runs
            .iter()
            .for_each(|p| s.push(Duration::from_secs_f64(p.cpu)));
        s.median()
    };
    let b = rows.iter().find(|r| r.name == base).map(|r| med(r).1);
    let bc = rows.iter().find(|r| r.name == base).map(cpu);
    println!(
        "| process | min s | median s | × `{base}` | CPU s (user+sys, median) | CPU × `{base}` | \
         peak RSS MB (max) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let ratio = |x: f64, b: Option<f64>| {
        b.filter(|b| *b > 0.0)
            .map_or("–".into(), |b| format!("{:.2}", x / b))
    };
    for r in rows {
        let (min, m) = med(r);
        let c = cpu(r);
        let rss = r.runs.iter().map(|p| p.rss_kb).max().unwrap_or(0) as f64 / 1024.0;
        println!(
            "| {} | {min:.3} | {m:.3} | {} | {c:.3} | {} | {rss:.1} |",
            r.name,
            ratio(m, b),
            ratio(c, bc)
        );
    }
    println!();
}

fn cli_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ONNX_REINIT_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    // target/release/deps/rewrite-<hash> → target/release/onnx-reinit
    let me = std::env::current_exe().ok()?;
    let p = me.parent()?.parent()?.join("onnx-reinit");
    p.is_file().then_some(p)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Whole-process wall time and peak RSS of `cp`, `cp` + `sync`, a fresh process running
/// `pipeline::run`, and the CLI.
fn processes(model: &Path, bulk: &Path, dir: &Path, reps: usize, in_place: bool) {
    let me = std::env::current_exe().expect("current_exe");
    let copy_dst = dir.join("copy.bin");
    let (out, out_data) = outputs(model, bulk, dir);
    let clean = || {
        remove(&copy_dst);
        remove(&out);
        if let Some(p) = &out_data {
            remove(p);
        }
    };
    let mut rows = Vec::new();
    if let Some(cp) = which("cp") {
        proc_rows(&mut rows, "cp", (reps, dir), || {
            clean();
            measure(&cp, &[bulk, &copy_dst])
        });
        if let Some(sh) = which("sh") {
            let script = PathBuf::from(r#"cp "$1" "$2" && sync "$2""#);
            proc_rows(&mut rows, "cp + sync FILE", (reps, dir), || {
                clean();
                measure(
                    &sh,
                    &[Path::new("-c"), &script, Path::new("sh"), bulk, &copy_dst],
                )
            });
        }
    }
    proc_rows(&mut rows, "bench child: pipeline::run", (reps, dir), || {
        clean();
        measure(&me, &[Path::new("--child"), Path::new("run"), model, &out])
    });
    if in_place {
        proc_rows(
            &mut rows,
            "bench child: pipeline::run in place",
            (reps, dir),
            || {
                clean();
                measure(&me, &[Path::new("--child"), Path::new("in-place"), model])
            },
        );
    }
    if let Some(cli) = cli_binary() {
        let name = format!("CLI `{}` -o OUT --force", cli.display());
        proc_rows(&mut rows, &name, (reps, dir), || {
            clean();
            measure(&cli, &[model, Path::new("-o"), &out, Path::new("--force")])
        });
    } else {
        println!(
            "(no release CLI found; `cargo build --release -p onnx-reinit --no-default-features` \
             or ONNX_REINIT_BIN=… to measure it)\n"
        );
    }
    clean();
    print_procs(&rows, "cp");
}

/// The 1, 5 and 15 minute load averages (other processes competing for the cores skew every
/// number here).
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Free bytes in `dir`'s filesystem, from `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let kb: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}

fn generate(spec: &BigModel, path: &Path) -> make_big::Written {
    let t = Instant::now();
    let w = spec.write(path).expect("generate the model");
    println!(
        "generated {} ({} layers of {}², {:.1} M params, {:.1} MB{}) in {:.1} s",
        path.display(),
        spec.layers,
        spec.dim,
        w.params as f64 / 1e6,
        mb(w.bytes),
        if spec.external { ", external data" } else { "" },
        t.elapsed().as_secs_f64()
    );
    w
}

/// The name of the `inspect` case.
const INSPECT_CASE: &str = "inspect::inspect (statistics + verdicts)";

fn target_line(cases: &[Case<'_>], what: &str, base: &str, limit: f64) {
    target_line_of(
        cases,
        "pipeline::run → new file",
        "rewrite",
        what,
        base,
        limit,
    );
}

fn target_line_of(cases: &[Case<'_>], case: &str, label: &str, what: &str, base: &str, limit: f64) {
    let get = |n: &str| {
        cases
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.samples.median())
    };
    if let (Some(r), Some(b)) = (get(case), get(base)) {
        let x = r / b;
        println!(
            "target {what}: {label} ≤ {limit}× `{base}`: {x:.2}× → {}",
            if x <= limit { "met" } else { "NOT met" }
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let reps = env_usize("ONNX_REINIT_BENCH_REPS", 5).max(1);
    let base =
        std::env::var_os("ONNX_REINIT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("onnx-reinit-bench-")
        .tempdir_in(&base)
        .expect("temporary folder");
    let dir = tmp.path();
    println!(
        "# onnx-reinit rewrite bench ({reps} reps, {} rayon threads, folder {}, load average {})\n",
        rayon::current_num_threads(),
        dir.display(),
        load_average()
    );

    if std::env::var("ONNX_REINIT_BENCH_ONLY").is_ok_and(|v| v == "many") {
        many_initializers(dir, env_usize("ONNX_REINIT_BENCH_MANY", 2_000_001));
        return ExitCode::SUCCESS;
    }

    // ~410 MB inline model.
    let spec = BigModel {
        layers: 10,
        dim: 3200,
        external: false,
    };
    let model = dir.join("big.onnx");
    let w = generate(&spec, &model);
    let size = w.bytes;
    println!(
        "\n## {:.0} MB inline model: copy vs rewrite (in process, warm page cache)\n",
        mb(size)
    );
    let cases = time_copies_and_rewrite(&model, &model, dir, reps, false);
    print_table(&cases, size, &["fs::copy", "fs::copy + fsync"]);
    target_line(&cases, "(issue 6)", "fs::copy", 1.5);
    target_line(
        &cases,
        "(same durability as the rewrite)",
        "fs::copy + fsync",
        1.5,
    );
    target_line_of(
        &cases,
        INSPECT_CASE,
        "inspect",
        "(issue 15)",
        "fs::copy",
        2.0,
    );
    println!();
    println!(
        "## Stages of the rewrite ({:.0} MB inline model)\n",
        mb(size)
    );
    stages(&model, dir, reps.min(3));
    println!("## Whole processes ({:.0} MB inline model)\n", mb(size));
    processes(&model, &model, dir, reps.min(3), false);
    println!(
        "targets vs Python (feasibility report, not this run: {PY_SECS} s, {PY_RSS_MB} MB; \
         bench/compare.sh measures it): ≤ {:.3} s and ≤ {:.1} MB\n",
        PY_SECS / 8.0,
        PY_RSS_MB / 50.0
    );
    remove(&model);

    // The same tensors in a side file.
    let ext_dir = dir.join("ext");
    fs::create_dir_all(&ext_dir).expect("folder");
    let spec_ext = BigModel {
        external: true,
        ..spec
    };
    let model_ext = ext_dir.join("big_ext.onnx");
    let w = generate(&spec_ext, &model_ext);
    let data = w.data.expect("side file");
    let data_len = fs::metadata(&data).map_or(0, |m| m.len());
    println!(
        "\n## {:.0} MB external-data model: copy of the side file vs rewrite\n",
        mb(data_len)
    );
    let cases = time_copies_and_rewrite(&model_ext, &data, &ext_dir, reps.min(3), true);
    print_table(&cases, data_len, &["fs::copy", "fs::copy + fsync"]);
    processes(&model_ext, &data, &ext_dir, reps.min(3), true);
    remove(&model_ext);
    remove(&data);

    many_initializers(dir, env_usize("ONNX_REINIT_BENCH_MANY", 2_000_001));

    if std::env::var("ONNX_REINIT_BENCH_BIG").is_ok_and(|v| v == "1") {
        big(dir, reps.min(3));
    } else {
        println!("(set ONNX_REINIT_BENCH_BIG=1 for the > 2 GB external-data model)");
    }
    println!("\nload average at the end: {}", load_average());
    ExitCode::SUCCESS
}

/// Writes a model of `n` one-element f32 initializers named `t0`, `t1`, … (no nodes), encoded
/// by hand and streamed, so generating two million of them takes a second and no memory.
fn write_many(path: &Path, n: usize) -> std::io::Result<u64> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn tensor(i: usize) -> Vec<u8> {
        // dims = 1 (field 1), data_type = FLOAT (2), name (8), raw_data = 4 zero bytes (9).
        let name = format!("t{i}");
        let mut t = vec![0x08, 1, 0x10, 1, 0x42];
        varint(name.len() as u64, &mut t);
        t.extend_from_slice(name.as_bytes());
        t.extend_from_slice(&[0x4a, 4, 0, 0, 0, 0]);
        let mut field = vec![0x2a]; // GraphProto.initializer = 5
        varint(t.len() as u64, &mut field);
        field.extend_from_slice(&t);
        field
    }
    let graph_len: u64 = 3 + (0..n).map(|i| tensor(i).len() as u64).sum::<u64>();
    let mut w = std::io::BufWriter::new(File::create(path)?);
    let mut head = vec![0x08, 8, 0x3a]; // ir_version 8; ModelProto.graph = 7
    varint(graph_len, &mut head);
    head.extend_from_slice(&[0x12, 1, b'g']); // GraphProto.name = "g"
    w.write_all(&head)?;
    for i in 0..n {
        w.write_all(&tensor(i))?;
    }
    w.write_all(&[0x42, 2, 0x10, 17])?; // opset_import { version: 17 }
    w.flush()?;
    Ok(fs::metadata(path)?.len())
}

/// Section 6: peak RSS per initializer of a whole rewrite of `n` tiny initializers.
fn many_initializers(dir: &Path, n: usize) {
    if n == 0 {
        return;
    }
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let (many, one) = (dir.join("many.onnx"), dir.join("one.onnx"));
    let (Ok(bytes), Ok(_)) = (write_many(&many, n), write_many(&one, 1)) else {
        println!(
            "could not write the many-initializer models in {}",
            dir.display()
        );
        return;
    };
    println!(
        "\n## {n} one-element initializers ({:.1} MB model): memory per initializer\n",
        mb(bytes)
    );
    let out = dir.join("many.out.onnx");
    let run = |model: &Path| {
        remove(&out);
        measure(&me, &[Path::new("--child"), Path::new("run"), model, &out])
    };
    let (Some(base), Some(big)) = (run(&one), run(&many)) else {
        println!("a child run failed");
        return;
    };
    remove(&out);
    remove(&many);
    remove(&one);
    let per = (big.rss_kb.saturating_sub(base.rss_kb) * 1024) as f64 / n as f64;
    println!("| model | wall s | CPU s | peak RSS MB |");
    println!("|---|---|---|---|");
    println!(
        "| 1 initializer | {:.3} | {:.3} | {:.1} |",
        base.wall,
        base.cpu,
        base.rss_kb as f64 / 1024.0
    );
    println!(
        "| {n} initializers | {:.3} | {:.3} | {:.1} |",
        big.wall,
        big.cpu,
        big.rss_kb as f64 / 1024.0
    );
    println!(
        "\nper initializer: {per:.0} bytes of peak RSS beyond the one-initializer run (the \
         file itself is {:.1} bytes per initializer; target ≤ 200 bytes beyond it)\n",
        bytes as f64 / n as f64
    );
}

fn big(dir: &Path, reps: usize) {
    let spec = BigModel {
        layers: env_usize("ONNX_REINIT_BENCH_BIG_LAYERS", 12),
        dim: env_usize("ONNX_REINIT_BENCH_BIG_DIM", 7000),
        external: true,
    };
    let need = spec.params() * 4 * 3 + (512 << 20);
    match free_bytes(dir) {
        Some(free) if free < need => {
            println!(
                "skipping the big model: it needs {:.1} GB free in {}, {:.1} GB are",
                need as f64 / 1e9,
                dir.display(),
                free as f64 / 1e9
            );
            return;
        }
        None => println!("(could not read free disk space with df; trying anyway)"),
        _ => {}
    }
    let big_dir = dir.join("huge");
    fs::create_dir_all(&big_dir).expect("folder");
    let model = big_dir.join("huge.onnx");
    let w = generate(&spec, &model);
    let data = w.data.expect("side file");
    let data_len = fs::metadata(&data).map_or(0, |m| m.len());
    println!(
        "\n## {:.2} GB external-data model: copy of the side file vs rewrite\n",
        data_len as f64 / 1e9
    );
    let cases = time_copies_and_rewrite(&model, &data, &big_dir, reps, true);
    print_table(&cases, data_len, &["fs::copy", "fs::copy + fsync"]);
    target_line(&cases, "(issue 6, > 2 GB)", "fs::copy", 1.5);
    target_line(&cases, "(same durability)", "fs::copy + fsync", 1.5);
    println!();
    processes(&model, &data, &big_dir, reps, true);
    remove(&model);
    remove(&data);
}

/// Child modes: `exec PROG ARGS…` (run, report wall seconds, peak RSS KiB and exit code of
/// that child), `run MODEL OUT`, `in-place MODEL`.
fn child(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("exec") if args.len() >= 2 => {
            let t = Instant::now();
            let status = Command::new(&args[1])
                .args(&args[2..])
                .stdout(Stdio::null())
                .status();
            let wall = t.elapsed().as_secs_f64();
            let code = match status {
                Ok(s) => s.code().unwrap_or(-1),
                Err(e) => {
                    eprintln!("{}: {e}", args[1]);
                    127
                }
            };
            let (rss, cpu) = children_usage().unwrap_or((0, 0.0));
            println!("{wall:.6} {rss} {code} {cpu:.6}");
            ExitCode::SUCCESS
        }
        Some("run") if args.len() == 3 => {
            let cfg = config(
                Path::new(&args[1]),
                Destination::Path(PathBuf::from(&args[2])),
            );
            report(pipeline::run(&cfg))
        }
        Some("in-place") if args.len() == 2 => {
            let cfg = config(Path::new(&args[1]), Destination::InPlace);
            report(pipeline::run(&cfg))
        }
        _ => {
            eprintln!("usage: rewrite --child (exec PROG ARGS… | run MODEL OUT | in-place MODEL)");
            ExitCode::from(2)
        }
    }
}

fn report<T>(r: Result<T, pipeline::RunError>) -> ExitCode {
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rewrite: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ru_maxrss` (KiB) and user + system CPU seconds of the waited-for children (Linux).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn children_usage() -> Option<(u64, f64)> {
    // struct rusage on 64-bit Linux: two struct timeval (2 × 16 bytes), then 14 longs, the first
    // of which is ru_maxrss (KiB).
    #[repr(C)]
    struct Rusage {
        times: [i64; 4],
        longs: [i64; 14],
    }
    unsafe extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_CHILDREN: i32 = -1;
    let mut u = Rusage {
        times: [0; 4],
        longs: [0; 14],
    };
    // SAFETY: `u` has the layout of `struct rusage` on 64-bit Linux and outlives the call.
    let rc = unsafe { getrusage(RUSAGE_CHILDREN, &raw mut u) };
    let secs = |s: i64, us: i64| s as f64 + us as f64 * 1e-6;
    (rc == 0).then(|| {
        (
            u.longs[0] as u64,
            secs(u.times[0], u.times[1]) + secs(u.times[2], u.times[3]),
        )
    })
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn children_usage() -> Option<(u64, f64)> {
    None
}
