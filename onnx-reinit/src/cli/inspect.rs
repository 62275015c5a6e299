//! The `onnx-reinit inspect` subcommand: its arguments, and the run that prints the library's
//! report ([`crate::inspect`]) and writes the plot.
//!
//! Exit codes: 0 success (whatever the verdicts, unless `--fail-on` lists one that occurs),
//! 1 failure (unreadable model, I/O), [`EXIT_USAGE`] (from clap, crossed thresholds, a bad
//! `--compare`, an unknown `--fail-on` verdict, or `--forward`/`--compare`/`--plot` on a build
//! without the `forward` feature: a CI gate must not pass without running what it asked for),
//! and [`EXIT_FLAGGED`] when a verdict listed by `--fail-on` occurs. A forward pass that tract
//! cannot run is reported, not a failure.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::analysis::AnalysisOptions;
use crate::inspect::{self, ForwardOptions, InspectOptions, InspectReport, Thresholds, Verdict};
use crate::pipeline::DEFAULT_SEED;
use clap::Args;

use super::output::{self, INSPECT};
use super::rules::compare_rules;
use super::{Compat, EXIT_FLAGGED, EXIT_USAGE, with_threads};

/// `inspect`'s arguments. The subcommand's help text is the doc of `Command::Inspect`, which
/// clap uses over this one; `after_help` lists the exit codes.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 success (also when tensors are flagged, unless --fail-on \
                        lists their verdict), 1 error, 2 usage, 3 a verdict listed by --fail-on \
                        occurred."
)]
pub(crate) struct InspectArgs {
    /// The ONNX model to inspect.
    model: PathBuf,

    /// Print one JSON document instead of the tables.
    #[arg(long)]
    json: bool,

    /// A std below this multiple of the recommended std is `too_small`.
    #[arg(long, value_name = "RATIO", default_value_t = 0.1, value_parser = positive)]
    too_small: f64,

    /// A std above this multiple of the recommended std is `too_large`.
    #[arg(long, value_name = "RATIO", default_value_t = 10.0, value_parser = positive)]
    too_large: f64,

    /// Exit with code 3 when one of these verdicts occurs: `never`, `any` (every verdict but
    /// ok), or a comma-separated list of zero, constant, too_small, too_large, non_finite.
    /// An unknown verdict is a usage error (exit 2).
    #[arg(long, value_name = "VERDICTS", default_value = "never", value_parser = FailOn::parse)]
    fail_on: FailOn,

    /// Run the model with tract-onnx on a seeded random input and print the std of every
    /// weight layer's, normalization's and activation's output, in graph order.
    #[arg(long)]
    forward: bool,

    /// Concrete input shape for the forward pass, `NAME=D1,D2,…` (or `D1,D2,…` for the first
    /// input); symbolic dimensions default to 1 (repeatable).
    #[arg(long, value_name = "[NAME=]DIMS", value_parser = parse_input_shape)]
    input_shape: Vec<(Option<String>, Vec<usize>)>,

    /// Draw the report into FILE.svg or FILE.png (by the extension): per layer, activation
    /// std and distribution (with --forward, before and after with --compare), dead ReLU and
    /// saturated fractions, and weight std against the recommended std, over the healthy
    /// bands (needs the `forward` feature).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Option<PathBuf>,

    /// Print no table and no notes: only errors (and the JSON document with --json).
    #[arg(short, long)]
    quiet: bool,

    /// Print the full table, whatever the terminal's width.
    #[arg(long)]
    wide: bool,

    /// Worker threads for the statistics [default: one per core, or RAYON_NUM_THREADS].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    /// Also run the forward pass after re-initializing in memory with these rules (implies
    /// --forward): the rewrite's flags, e.g. '--relu he --tanh glorot', or the short form
    /// 'relu=he tanh=glorot'. The file is not modified.
    #[arg(long, value_name = "RULES", allow_hyphen_values = true)]
    compare: Option<String>,

    /// Seed of the random input (and of the --compare re-initialization).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Fan convention of the recommended std.
    #[arg(long, value_enum, default_value_t = Compat::True)]
    compat: Compat,
}

/// The picture `--plot` writes, by the file's extension (either case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlotFormat {
    Svg,
    Png,
}

impl PlotFormat {
    fn of(path: &std::path::Path) -> Option<PlotFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "svg" => Some(PlotFormat::Svg),
            "png" => Some(PlotFormat::Png),
            _ => None,
        }
    }
}

/// Which verdicts make `inspect` exit with [`EXIT_FLAGGED`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FailOn(Vec<Verdict>);

impl FailOn {
    /// Parses `never`, `any`, or a comma-separated verdict list.
    fn parse(s: &str) -> Result<FailOn, String> {
        match s.trim() {
            "never" | "" => Ok(FailOn(Vec::new())),
            "any" => Ok(FailOn(
                Verdict::ALL
                    .into_iter()
                    .filter(|&v| v != Verdict::Ok)
                    .collect(),
            )),
            list => list
                .split(',')
                .map(|v| match v.trim().parse::<Verdict>() {
                    Ok(Verdict::Ok) | Err(_) => Err(format!(
                        "unknown verdict `{}` (expected never, any, or a comma-separated list \
                         of: {})",
                        v.trim(),
                        Verdict::ALL
                            .into_iter()
                            .filter(|&v| v != Verdict::Ok)
                            .map(Verdict::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    Ok(v) => Ok(v),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(FailOn),
        }
    }

    /// Whether the report has a listed verdict.
    fn triggered(&self, report: &InspectReport) -> bool {
        self.0.iter().any(|&v| report.summary.count(v) > 0)
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// Parses `NAME=D1,D2,…` or `D1,D2,…` (also `x`-separated: `1x3x224x224`).
pub(crate) fn parse_input_shape(s: &str) -> Result<(Option<String>, Vec<usize>), String> {
    let (name, dims) = match s.rsplit_once('=') {
        Some((n, d)) => (Some(n.trim().to_owned()), d),
        None => (None, s),
    };
    let dims = dims
        .split([',', 'x'])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}`: `{d}` is not a dimension (expected NAME=D1,D2,…)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.filter(|n| !n.is_empty()), dims))
}

impl InspectArgs {
    /// The library's options, or the message of a usage error: the thresholds must be in order,
    /// and `--compare`'s rules must parse (it implies the forward pass).
    fn options(&self) -> Result<InspectOptions, String> {
        if let Some(p) = &self.plot
            && PlotFormat::of(p).is_none()
        {
            return Err(format!(
                "--plot {}: the plot is written as SVG or PNG; name the file FILE.svg or \
                 FILE.png",
                p.display()
            ));
        }
        if !cfg!(feature = "forward") {
            let asked: Vec<&str> = [
                (self.forward, "--forward"),
                (self.compare.is_some(), "--compare"),
                (self.plot.is_some(), "--plot"),
            ]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect();
            if !asked.is_empty() {
                return Err(format!(
                    "{} {} the forward pass, and this onnx-reinit was built without it: \
                     reinstall with `cargo install --path onnx-reinit --features forward`",
                    asked.join(" and "),
                    if asked.len() > 1 { "need" } else { "needs" }
                ));
            }
        }
        if self.too_small >= self.too_large {
            return Err(format!(
                "--too-small ({}) must be below --too-large ({})",
                self.too_small, self.too_large
            ));
        }
        let compare = match &self.compare {
            Some(text) => Some((
                text.clone(),
                compare_rules(text).map_err(|e| format!("--compare: {e}"))?,
            )),
            None => None,
        };
        let forward = (self.forward || compare.is_some()).then(|| ForwardOptions {
            seed: self.seed,
            input_shapes: self.input_shape.clone(),
            compare,
        });
        Ok(InspectOptions {
            analysis: AnalysisOptions {
                compat: self.compat.into(),
            },
            thresholds: Thresholds {
                too_small: self.too_small,
                too_large: self.too_large,
            },
            forward,
        })
    }
}

/// Runs `inspect`: prints the report (the tables, or JSON with `--json`) on stdout, writes
/// `--plot`, and returns the exit code; human lines go to stderr.
pub(crate) fn run(args: &InspectArgs) -> ExitCode {
    let fail = |msg: &dyn Display| {
        output::error(INSPECT, msg);
        ExitCode::FAILURE
    };
    let opts = match args.options() {
        Ok(opts) => opts,
        Err(msg) => {
            output::error(INSPECT, msg);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(path) = &args.plot {
        // Said before the run (which may take a while), in the user's words.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return fail(&format_args!(
                "--plot {}: the folder {} does not exist (create it first, or choose another \
                 path)",
                path.display(),
                dir.display()
            ));
        }
    }
    let quiet = args.quiet || args.json;
    let threads = args.threads.map(usize::from);
    // Ctrl-C, SIGTERM and SIGHUP exit at once (nothing is written until the plot).
    let model = args.model.clone();
    let _ = super::cancel::install(move || {
        output::error(INSPECT, format_args!("{}: cancelled", model.display()));
    });
    // A progress bar on large models, as the rewrite shows (stderr, terminal only).
    let bar = (!quiet
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && output::file_len(&args.model) > output::PROGRESS_MIN_BYTES)
        .then(output::progress_bar);
    let run = || inspect::inspect_with_progress(&args.model, &opts, bar.as_deref());
    let report = match with_threads(threads, run) {
        Ok(Ok((_, _, mut report))) => {
            report.seed = args.seed;
            report
        }
        Ok(Err(e)) => return fail(&output::run_error(&e)),
        Err(msg) => {
            output::error(INSPECT, msg);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = if args.json {
        match output::json(&report) {
            Ok(s) => s,
            Err(e) => return fail(&format_args!("serialising the report: {e}")),
        }
    } else if args.quiet {
        String::new()
    } else {
        report.table_for(output::table_width(args.wide))
    };
    if let Err(code) = output::print_stdout(INSPECT, &text) {
        return code;
    }
    if let Some(path) = &args.plot {
        // A signal while the plot is written waits for it (no half-written file).
        let _writing = crate::rewrite::hold_exit();
        let written = match PlotFormat::of(path) {
            Some(PlotFormat::Png) => write_png(path, &report),
            _ => inspect::plot::write_svg(path, &report),
        };
        if let Err(e) = written {
            return fail(&e);
        }
        output::note(INSPECT, quiet, format_args!("wrote {}", path.display()));
    }
    if args.fail_on.triggered(&report) {
        ExitCode::from(EXIT_FLAGGED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes the PNG plot (built with the `png` feature, which `forward` enables; without
/// `forward`, `--plot` is refused before the run).
fn write_png(path: &std::path::Path, report: &InspectReport) -> Result<(), String> {
    #[cfg(feature = "png")]
    return inspect::plot::write_png(path, report);
    #[cfg(not(feature = "png"))]
    {
        let _ = report;
        Err(format!(
            "--plot {}: this onnx-reinit was built without PNG support (the `png` feature)",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_lists() {
        assert_eq!(FailOn::parse("never").unwrap(), FailOn(vec![]));
        assert_eq!(
            FailOn::parse("too_large,zero").unwrap(),
            FailOn(vec![Verdict::TooLarge, Verdict::Zero])
        );
        assert_eq!(FailOn::parse("any").unwrap().0.len(), 5);
        assert!(FailOn::parse("too_big").is_err());
        let ok = FailOn::parse("zero,ok").unwrap_err();
        assert!(ok.contains("`ok`") && !ok.contains(": ok,"), "{ok}");
    }

    #[test]
    fn input_shapes() {
        assert_eq!(
            parse_input_shape("x=1,3,224,224").unwrap(),
            (Some("x".to_owned()), vec![1, 3, 224, 224])
        );
        assert_eq!(parse_input_shape("2x16").unwrap(), (None, vec![2, 16]));
        assert!(parse_input_shape("x=1,a").is_err());
    }
}
