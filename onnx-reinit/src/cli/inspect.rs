//! The `onnx-reinit inspect` subcommand: its arguments, and the run that prints the library's
//! report ([`crate::inspect`]) and writes the plot.
//!
//! Exit codes: 0 success (whatever the verdicts, unless `--fail-on` lists one that occurs),
//! 1 failure (unreadable model, I/O), [`EXIT_USAGE`] (from clap, crossed thresholds, or a bad
//! `--compare`), and [`EXIT_FLAGGED`] when a verdict listed by `--fail-on` occurs. A forward
//! pass that tract cannot run is reported, not a failure.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::analysis::AnalysisOptions;
use crate::inspect::{self, ForwardOptions, InspectOptions, InspectReport, Thresholds, Verdict};
use crate::pipeline::DEFAULT_SEED;
use clap::Args;

use super::output::{self, INSPECT};
use super::rules::compare_rules;
use super::{Compat, EXIT_FLAGGED, EXIT_USAGE};

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

    /// Draw activation std per layer (with --forward) and weight std against the recommended
    /// std into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

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
                .map(str::parse::<Verdict>)
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

/// Runs `inspect`: prints the report (the tables, or JSON with `--json`), writes `--plot`, and
/// returns the exit code.
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
    let report = match inspect::inspect(&args.model, &opts) {
        Ok((_, _, report)) => report,
        Err(e) => return fail(&e),
    };
    let text = if args.json {
        match output::json(&report) {
            Ok(s) => s,
            Err(e) => return fail(&format_args!("serialising the report: {e}")),
        }
    } else {
        report.table()
    };
    if let Err(code) = output::print_stdout(INSPECT, &text) {
        return code;
    }
    if let Some(path) = &args.plot {
        if let Err(e) = inspect::plot::write_svg(path, &report) {
            return fail(&e);
        }
        if !args.json {
            eprintln!("{INSPECT}: wrote {}", path.display());
        }
    }
    if args.fail_on.triggered(&report) {
        ExitCode::from(EXIT_FLAGGED)
    } else {
        ExitCode::SUCCESS
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
