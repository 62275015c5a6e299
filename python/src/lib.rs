//! `initforge._native`: the Rust half of the `initforge` wheel. The Python package
//! (`python/initforge/`) checks its arguments (dtype, device, contiguity, shard ranges) and
//! calls these functions with raw buffer addresses; everything numeric happens here, in
//! init-core and onnx-reinit, with the GIL released.

// PyO3 extracts arguments into owned values (a Python list becomes a Vec).
#![allow(clippy::needless_pass_by_value)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use half::{bf16, f16};
use init_core::{
    Convention, Element, FanRule, Fans, InitError, Layout, Scheme, Stream, init_shard, init_tensor,
};
use onnx_reinit::analysis::{AnalysisOptions, FanCompat};
use onnx_reinit::inspect::{InspectOptions, Thresholds};
use onnx_reinit::pipeline::{self, Destination, RewriteConfig, RunError};
use onnx_reinit::plan::{NameRule, Rule, Rules};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;

create_exception!(
    _native,
    Error,
    PyException,
    "Base class of initforge's errors."
);
create_exception!(
    _native,
    UsageError,
    Error,
    "A bad argument: scheme, shape, dtype, rule, conflicting options (the CLI's exit code 2)."
);
create_exception!(
    _native,
    ModelError,
    Error,
    "The model cannot be read, analysed, planned or written (the CLI's exit code 1)."
);
create_exception!(
    _native,
    CancelledError,
    Error,
    "The run was cancelled; nothing was written (the CLI's exit code 130)."
);

fn usage(e: impl std::fmt::Display) -> PyErr {
    UsageError::new_err(e.to_string())
}

/// The stream key of a tensor name: FNV-1a of its UTF-8 bytes, finalised with SplitMix64's
/// mixer (init-core's `key_of`, which onnx-reinit and the derive use).
#[pyfunction]
fn key_of(name: &str) -> u64 {
    init_core::rng::key_of(name)
}

/// The scheme's canonical spelling (parses it: raises UsageError with suggestions if invalid).
#[pyfunction]
fn canonical(scheme: &str) -> PyResult<String> {
    let s: Scheme = scheme.parse().map_err(usage)?;
    Ok(s.to_string())
}

/// Whether the scheme needs fans (a fan-scaled scheme).
#[pyfunction]
fn needs_fans(scheme: &str) -> PyResult<bool> {
    let s: Scheme = scheme.parse().map_err(usage)?;
    Ok(matches!(s.kind(), init_core::SchemeKind::Scaled { .. }))
}

/// The scheme's standard deviation for this shape and these fans.
#[pyfunction]
#[pyo3(signature = (scheme, shape, fans=None))]
fn expected_std(scheme: &str, shape: Vec<usize>, fans: Option<(u64, u64)>) -> PyResult<f64> {
    use init_core::SchemeExt as _;
    let s: Scheme = scheme.parse().map_err(usage)?;
    s.expected_std(&shape, fans.map(to_fans)).map_err(usage)
}

fn to_fans((fan_in, fan_out): (u64, u64)) -> Fans {
    Fans { fan_in, fan_out }
}

/// (fan_in, fan_out) of a weight of `shape` under init-core's `FanRule`.
#[pyfunction]
#[pyo3(signature = (shape, layout="out_in", groups=1, transposed=false, convention="true"))]
fn fans(
    shape: Vec<usize>,
    layout: &str,
    groups: u64,
    transposed: bool,
    convention: &str,
) -> PyResult<(u64, u64)> {
    let f = fans_of(&shape, layout, groups, transposed, convention)?;
    Ok((f.fan_in, f.fan_out))
}

fn fans_of(
    shape: &[usize],
    layout: &str,
    groups: u64,
    transposed: bool,
    convention: &str,
) -> PyResult<Fans> {
    let layout = match layout {
        "out_in" => Layout::OutIn,
        "in_out" => Layout::InOut,
        other => {
            return Err(usage(format!(
                "layout: expected \"out_in\" or \"in_out\", got {other:?}"
            )));
        }
    };
    let convention = match convention {
        "true" => Convention::True,
        "framework" | "pytorch" => Convention::Framework,
        other => {
            return Err(usage(format!(
                "convention: expected \"true\" or \"framework\", got {other:?}"
            )));
        }
    };
    Fans::of(
        shape,
        FanRule {
            layout,
            groups,
            transposed,
            convention,
        },
    )
    .map_err(usage)
}

/// Fill `len` elements of `dtype` at address `ptr` in place: the whole tensor of `shape`
/// (`ranges` None), or the box `ranges` of it (one (start, end) per dimension, `len` its
/// element count). A fan-scaled scheme without `fans` gets the fans of `shape` under the rule
/// (`layout`, `groups`, `transposed`, `convention`). The caller (initforge/__init__.py) guarantees that `ptr` addresses `len`
/// writable, aligned, contiguous elements of `dtype` that stay alive and are not accessed
/// by Python during the call.
#[pyfunction]
#[pyo3(signature = (ptr, dtype, len, shape, scheme, seed, key, fans=None, ranges=None,
                    layout="out_in", groups=1, transposed=false, convention="true"))]
#[allow(clippy::too_many_arguments)]
fn fill(
    py: Python<'_>,
    ptr: usize,
    dtype: &str,
    len: usize,
    shape: Vec<usize>,
    scheme: &str,
    seed: u64,
    key: u64,
    fans: Option<(u64, u64)>,
    ranges: Option<Vec<(usize, usize)>>,
    layout: &str,
    groups: u64,
    transposed: bool,
    convention: &str,
) -> PyResult<()> {
    let scheme: Scheme = scheme.parse().map_err(usage)?;
    let stream = Stream { seed, key };
    let fans = fill_fans(&scheme, fans, || {
        fans_of(&shape, layout, groups, transposed, convention)
    })?;
    let ranges: Option<Vec<_>> = ranges.map(|r| r.into_iter().map(|(a, b)| a..b).collect());
    run_fill(
        py,
        ptr,
        dtype,
        len,
        &shape,
        &scheme,
        stream,
        fans,
        ranges.as_deref(),
    )
}

/// Schemes parsed once by [`compile`], by handle: the per-call path of `init_` passes the
/// handle instead of the text, so a small fill does not re-parse (or, under the abi3 API,
/// re-encode) its scheme on every call.
static COMPILED: std::sync::RwLock<Vec<Scheme>> = std::sync::RwLock::new(Vec::new());

/// Parse `scheme` once and return its handle for [`fill_whole`] (raises UsageError, with
/// suggestions, if it does not parse). The Python package caches handles per scheme text and
/// stops caching after a bounded number of distinct texts.
#[pyfunction]
fn compile(scheme: &str) -> PyResult<usize> {
    let s: Scheme = scheme.parse().map_err(usage)?;
    let mut v = COMPILED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    v.push(s);
    Ok(v.len() - 1)
}

/// The dtype codes of [`fill_whole`] (the Python package's `_DT` table).
const DTYPES: [&str; 4] = ["float32", "float64", "float16", "bfloat16"];

/// `init_`'s per-call path: fill the whole tensor of `shape` in place with the compiled scheme
/// `handle`. `buf` is the buffer's address (an int: a torch tensor's `data_ptr()`), or a numpy
/// ndarray whose data pointer is read from the array itself (NumPy's `PyArray_DATA`, cheaper
/// than building `__array_interface__`). `dtype` indexes [`DTYPES`]; `rule` has bit 0 set for
/// the `in_out` layout and bit 1 for the framework convention. The caller
/// (initforge/__init__.py) has checked that the buffer holds `∏shape` writable, aligned,
/// C-contiguous elements of that dtype, alive and untouched by Python during the call.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn fill_whole(
    py: Python<'_>,
    buf: &Bound<'_, PyAny>,
    dtype: usize,
    shape: Vec<usize>,
    handle: usize,
    seed: u64,
    key: u64,
    fans: Option<(u64, u64)>,
    rule: u8,
    groups: u64,
    transposed: bool,
) -> PyResult<()> {
    let scheme = *COMPILED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(handle)
        .ok_or_else(|| usage(format!("unknown scheme handle {handle}")))?;
    let ptr: usize = if buf.is_instance_of::<pyo3::types::PyInt>() {
        buf.extract()?
    } else {
        // SAFETY: the caller passes a non-int `buf` only after `isinstance(buf, np.ndarray)`;
        // every ndarray begins with NumPy's `PyArrayObject_fields`, whose first field after the
        // object header is `char *data` — the layout `PyArray_DATA` reads in every compiled
        // NumPy extension (unchanged from NumPy 1.x to 2.x; abi3 excludes free-threaded
        // headers). `buf` is borrowed for the call, so the array is alive.
        unsafe {
            let header = buf.as_ptr().cast::<pyo3::ffi::PyObject>();
            header.add(1).cast::<usize>().read()
        }
    };
    let dtype = *DTYPES
        .get(dtype)
        .ok_or_else(|| usage(format!("unknown dtype code {dtype}")))?;
    let len = init_core::fans::checked_product(&shape).map_err(usage)?;
    let fans = fill_fans(&scheme, fans, || {
        let layout = if rule & 1 == 0 { "out_in" } else { "in_out" };
        let convention = if rule & 2 == 0 { "true" } else { "framework" };
        fans_of(&shape, layout, groups, transposed, convention)
    })?;
    run_fill(
        py,
        ptr,
        dtype,
        len,
        &shape,
        &scheme,
        Stream { seed, key },
        fans,
        None,
    )
}

/// Fill `len` elements of `dtype` at `ptr` (see [`fill`]), on this thread with the GIL for a
/// small tensor and on all cores without it for a large one.
#[allow(clippy::too_many_arguments)]
fn run_fill(
    py: Python<'_>,
    ptr: usize,
    dtype: &str,
    len: usize,
    shape: &[usize],
    scheme: &Scheme,
    stream: Stream,
    fans: Option<Fans>,
    ranges: Option<&[std::ops::Range<usize>]>,
) -> PyResult<()> {
    if len > 0 && ptr == 0 {
        return Err(usage("null buffer address"));
    }
    let run = || match dtype {
        "float32" => go::<f32>(ptr, len, scheme, shape, fans, stream, ranges),
        "float64" => go::<f64>(ptr, len, scheme, shape, fans, stream, ranges),
        "float16" => go::<f16>(ptr, len, scheme, shape, fans, stream, ranges),
        "bfloat16" => go::<bf16>(ptr, len, scheme, shape, fans, stream, ranges),
        other => Err(InitError::BadShape(format!(
            "unsupported dtype {other} (float32, float64, float16, bfloat16)"
        ))),
    };
    // Small fills stay on this thread with the GIL: releasing and re-acquiring it costs more
    // than filling a few thousand elements.
    let out = if len <= 1 << 14 {
        run()
    } else {
        py.detach(run)
    };
    out.map_err(usage)
}

/// The fans a fill uses: those given, else for a fan-scaled scheme those of the shape under
/// the caller's rule (`of_shape`), else none (the scheme does not read fans).
fn fill_fans(
    scheme: &Scheme,
    given: Option<(u64, u64)>,
    of_shape: impl FnOnce() -> PyResult<Fans>,
) -> PyResult<Option<Fans>> {
    match given {
        Some(f) => Ok(Some(to_fans(f))),
        None if matches!(scheme.kind(), init_core::SchemeKind::Scaled { .. }) => {
            of_shape().map(Some)
        }
        None => Ok(None),
    }
}

fn go<T: Element>(
    ptr: usize,
    len: usize,
    scheme: &Scheme,
    shape: &[usize],
    fans: Option<Fans>,
    stream: Stream,
    ranges: Option<&[std::ops::Range<usize>]>,
) -> Result<(), InitError> {
    let out: &mut [T] = if len == 0 {
        &mut []
    } else {
        // SAFETY: the Python caller checked that `ptr` is the address of `len` contiguous,
        // writable, aligned elements of T (dtype and strides from the array's own interface)
        // and keeps the array alive for the call; nothing else reads or writes it meanwhile.
        unsafe { std::slice::from_raw_parts_mut(ptr as *mut T, len) }
    };
    match ranges {
        None => init_tensor(scheme, out, shape, fans, stream),
        Some(r) => init_shard(scheme, out, shape, fans, stream, r),
    }
}

/// Run `f` on a worker thread while this thread waits with the GIL released, waking every
/// 10 ms to let Python handle signals: on KeyboardInterrupt (or any signal handler's
/// exception) `cancel` is set, the worker finishes its cleanup, and the exception is raised.
fn cancellable<R: Send>(
    py: Python<'_>,
    cancel: &Arc<AtomicBool>,
    f: impl FnOnce() -> R + Send,
) -> PyResult<R> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        // A Mutex makes the receiver shareable with the GIL-free closure below.
        let rx = std::sync::Mutex::new(rx);
        let worker = s.spawn(move || {
            let r = f();
            let _ = tx.send(());
            r
        });
        loop {
            let done = py.detach(|| {
                rx.lock()
                    .map_or(Ok(()), |rx| rx.recv_timeout(Duration::from_millis(10)))
            });
            if !matches!(done, Err(mpsc::RecvTimeoutError::Timeout)) {
                break;
            }
            if let Err(e) = py.check_signals() {
                cancel.store(true, Ordering::SeqCst);
                let _ = py.detach(|| worker.join());
                return Err(e);
            }
        }
        py.detach(|| worker.join())
            .map_err(|_| PyRuntimeError::new_err("initforge: the worker thread panicked"))
    })
}

fn run_error(e: &RunError) -> PyErr {
    if matches!(
        e,
        RunError::Model(onnx_reinit::error::Error::Cancelled { .. })
    ) {
        CancelledError::new_err(e.to_string())
    } else {
        ModelError::new_err(e.to_string())
    }
}

fn compat(c: &str) -> PyResult<FanCompat> {
    match c {
        "true" => Ok(FanCompat::True),
        "pytorch" => Ok(FanCompat::PyTorch),
        other => Err(usage(format!(
            "compat: expected \"true\" or \"pytorch\", got {other:?}"
        ))),
    }
}

/// The library's rules from `{flag: scheme}` and `GLOB=SCHEME` strings, exactly as the CLI
/// builds them from its flags ([`Rules::from_flags`]); the keys are the CLI's rule flags
/// without `--`, `_` or `-` between words.
fn rules(classes: &[(String, String)], name_rules: &[String]) -> PyResult<Rules> {
    let mut flags = Vec::with_capacity(classes.len());
    for (key, value) in classes {
        // The scheme, then the key: the first bad entry is reported, its scheme first.
        let rule = Rule::parse(value).map_err(|e| usage(format!("rules[{key:?}]: {e}")))?;
        if !Rules::FLAGS.contains(&key.replace('_', "-").as_str()) {
            let valid: Vec<String> = Rules::FLAGS.iter().map(|f| f.replace('-', "_")).collect();
            return Err(usage(format!(
                "rules: unknown key {key:?} (valid: {}; name globs go in name_rules)",
                valid.join(", ")
            )));
        }
        flags.push((key.as_str(), rule));
    }
    let overrides = name_rules
        .iter()
        .map(|t| NameRule::parse(t).map_err(|e| usage(format!("name_rules: {e}"))))
        .collect::<PyResult<_>>()?;
    Rules::from_flags(flags, overrides).map_err(|k| usage(format!("rules: unknown key {k:?}")))
}

/// The rewrite, in process: returns the `--json` document's text.
#[pyfunction]
#[pyo3(signature = (model, out, rules_, name_rules, seed, dry_run, in_place, force, compat_, preset=None))]
#[allow(clippy::too_many_arguments)]
fn reinit(
    py: Python<'_>,
    model: PathBuf,
    out: Option<PathBuf>,
    rules_: Vec<(String, String)>,
    name_rules: Vec<String>,
    seed: u64,
    dry_run: bool,
    in_place: bool,
    force: bool,
    compat_: &str,
    preset: Option<String>,
) -> PyResult<String> {
    let picked = usize::from(dry_run) + usize::from(in_place) + usize::from(out.is_some());
    if picked > 1 {
        return Err(usage(
            "out, in_place and dry_run exclude each other: give at most one",
        ));
    }
    let destination = if dry_run {
        Destination::DryRun
    } else if in_place {
        Destination::InPlace
    } else {
        Destination::Path(out.unwrap_or_else(|| pipeline::default_output(&model)))
    };
    let mut rules = rules(&rules_, &name_rules)?;
    if let Some(text) = preset {
        // The CLI's `--preset NAME(k=v,…)`: below the rules and name rules given, as there.
        rules.preset = Some(text.parse().map_err(|e| usage(format!("preset: {e}")))?);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let config = RewriteConfig {
        model,
        destination,
        force,
        rules,
        seed,
        analysis: AnalysisOptions {
            compat: compat(compat_)?,
        },
        cancel: Some(Arc::clone(&cancel)),
        progress: None,
    };
    let outcome = cancellable(py, &cancel, || pipeline::run(&config))?;
    let outcome = outcome.map_err(|e| run_error(&e))?;
    match &outcome.preset {
        // The CLI's document: the report with the resolved preset as a `preset` member.
        // Streamed row by row, as the CLI does: the same text as the whole document's
        // `serde_json::Value`, without holding that `Value` (about 1 KB per row).
        Some(p) => onnx_reinit::report::report_json(
            &outcome.report,
            vec![("preset".to_owned(), p.to_json())],
        )
        .map_err(|e| PyRuntimeError::new_err(format!("serialising the report: {e}"))),
        None => json(&outcome.report),
    }
}

fn json(v: &impl serde::Serialize) -> PyResult<String> {
    // The CLI's `--json` text: pretty-printed, one trailing newline.
    let mut s = serde_json::to_string_pretty(v)
        .map_err(|e| PyRuntimeError::new_err(format!("serialising the report: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// `inspect`, in process (weight diagnosis, no forward pass): the `--json` document's text.
#[pyfunction]
#[pyo3(signature = (model, compat_, too_small, too_large))]
fn inspect(
    py: Python<'_>,
    model: PathBuf,
    compat_: &str,
    too_small: f64,
    too_large: f64,
) -> PyResult<String> {
    if too_small.is_nan() || too_large.is_nan() || too_small >= too_large {
        return Err(usage(format!(
            "too_small ({too_small}) must be below too_large ({too_large})"
        )));
    }
    let opts = InspectOptions {
        analysis: AnalysisOptions {
            compat: compat(compat_)?,
        },
        thresholds: Thresholds {
            too_small,
            too_large,
        },
        forward: None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let report = cancellable(py, &cancel, || onnx_reinit::inspect::inspect(&model, &opts))?;
    let (_, _, report) = report.map_err(|e| run_error(&e))?;
    json(&report)
}

/// The `onnx-reinit` command line, in process: `argv` includes the program name; returns the
/// exit code. It prints to the process's stdout/stderr and handles Ctrl-C itself.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    let code = py.detach(|| onnx_reinit::cli::main_with_args(argv));
    // ExitCode has no accessor; it compares equal to the code it was made from.
    (0..=u8::MAX)
        .find(|&n| std::process::ExitCode::from(n) == code)
        .unwrap_or(1)
}

/// The default seed of the CLI and of `reinit`.
const DEFAULT_SEED: u64 = pipeline::DEFAULT_SEED;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(key_of, m)?)?;
    m.add_function(wrap_pyfunction!(canonical, m)?)?;
    m.add_function(wrap_pyfunction!(needs_fans, m)?)?;
    m.add_function(wrap_pyfunction!(expected_std, m)?)?;
    m.add_function(wrap_pyfunction!(fans, m)?)?;
    m.add_function(wrap_pyfunction!(fill, m)?)?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(fill_whole, m)?)?;
    m.add_function(wrap_pyfunction!(reinit, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("DEFAULT_SEED", DEFAULT_SEED)?;
    m.add("CHUNK", init_core::rng::CHUNK)?;
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("UsageError", m.py().get_type::<UsageError>())?;
    m.add("ModelError", m.py().get_type::<ModelError>())?;
    m.add("CancelledError", m.py().get_type::<CancelledError>())?;
    Ok(())
}
