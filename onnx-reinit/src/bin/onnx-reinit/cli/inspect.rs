//! The `onnx-reinit inspect` subcommand: arguments and the run that prints the report.
//!
//! Exit codes: 0 success (whatever the verdicts, unless `--fail-on` lists one that occurs),
//! 1 failure (unreadable model, I/O), 2 usage (from clap, or a bad `--compare`), and
//! [`EXIT_FLAGGED`] (3) when a verdict listed by `--fail-on` occurs. A forward pass that tract
//! cannot run is reported, not a failure.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use onnx_reinit::analysis::{AnalysisOptions, FanCompat};
use onnx_reinit::inspect::{self, EXIT_FLAGGED, InspectOptions, InspectReport, Thresholds, Verdict};
use onnx_reinit::pipeline::DEFAULT_SEED;
use onnx_reinit::plan::Rules;

use super::rules::compare_tokens;

/// Diagnose a model's initialization: per-weight statistics against the recommended scheme,
/// verdicts (zero, constant, too_small, too_large, non_finite, ok), a suggested fix, and with
/// --forward the std of every layer's output on a random input.
///
/// Exit codes: 0 (also when tensors are flagged, unless --fail-on lists their verdict), 1 error,
/// 2 usage, 3 a verdict listed by --fail-on occurred.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 success (also when tensors are flagged, unless --fail-on \
                        lists their verdict), 1 error, 2 usage, 3 a verdict listed by --fail-on \
                        occurred."
)]
pub struct InspectArgs {
    /// The ONNX model to inspect.
    pub model: PathBuf,

    /// Print one JSON document instead of the tables.
    #[arg(long)]
    pub json: bool,

    /// A std below this multiple of the recommended std is `too_small`.
    #[arg(long, value_name = "RATIO", default_value_t = 0.1, value_parser = positive)]
    pub too_small: f64,

    /// A std above this multiple of the recommended std is `too_large`.
    #[arg(long, value_name = "RATIO", default_value_t = 10.0, value_parser = positive)]
    pub too_large: f64,

    /// Exit with code 3 when one of these verdicts occurs: `never`, `any` (every verdict but
    /// ok), or a comma-separated list of zero, constant, too_small, too_large, non_finite.
    #[arg(long, value_name = "VERDICTS", default_value = "never", value_parser = FailOn::parse)]
    pub fail_on: FailOn,

    /// Run the model with tract-onnx on a seeded random input and print the std of every
    /// weight layer's, normalization's and activation's output, in graph order.
    #[arg(long)]
    pub forward: bool,

    /// Concrete input shape for the forward pass, `NAME=D1,D2,…` (or `D1,D2,…` for the first
    /// input); symbolic dimensions default to 1 (repeatable).
    #[arg(long, value_name = "[NAME=]DIMS", value_parser = parse_input_shape)]
    pub input_shape: Vec<(Option<String>, Vec<usize>)>,

    /// Draw activation std per layer (with --forward) and weight std against the recommended
    /// std into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Also run the forward pass after re-initializing in memory with these rules (implies
    /// --forward): the rewrite's flags, e.g. '--relu he --tanh glorot', or the short form
    /// 'relu=he tanh=glorot'. The file is not modified.
    #[arg(long, value_name = "RULES", allow_hyphen_values = true)]
    pub compare: Option<String>,

    /// Seed of the random input (and of the --compare re-initialization).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Fan convention of the recommended std.
    #[arg(long, value_enum, default_value_t = CompatArg::True)]
    pub compat: CompatArg,
}

/// `--compat` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k.
    True,
    /// torch.nn.init's fans.
    Pytorch,
}

/// Which verdicts make `inspect` exit with [`EXIT_FLAGGED`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailOn(pub Vec<Verdict>);

impl FailOn {
    /// Parses `never`, `any`, or a comma-separated verdict list.
    pub fn parse(s: &str) -> Result<FailOn, String> {
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
    pub fn triggered(&self, report: &InspectReport) -> bool {
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
pub fn parse_input_shape(s: &str) -> Result<(Option<String>, Vec<usize>), String> {
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

/// Prints to stdout; a closed pipe is not an error.
fn print_stdout(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("writing the report: {e}")),
        _ => Ok(()),
    }
}

/// Runs `inspect` and returns the process exit code. `parse_rules` turns `--compare`'s flags
/// (see [`compare_tokens`]) into rules with the rewrite's own argument parser, so both accept
/// exactly the same flags.
pub fn run(args: &InspectArgs, parse_rules: &dyn Fn(&[String]) -> Result<Rules, String>) -> u8 {
    let fail = |msg: &str| {
        eprintln!("onnx-reinit inspect: error: {msg}");
        1
    };
    if args.too_small >= args.too_large {
        eprintln!(
            "onnx-reinit inspect: error: --too-small ({}) must be below --too-large ({})",
            args.too_small, args.too_large
        );
        return 2;
    }
    let compare = match &args.compare {
        Some(text) => match compare_tokens(text).and_then(|t| parse_rules(&t)) {
            Ok(rules) => Some((text.clone(), rules)),
            Err(e) => {
                eprintln!("onnx-reinit inspect: error: --compare: {e}");
                return 2;
            }
        },
        None => None,
    };
    let opts = InspectOptions {
        analysis: AnalysisOptions {
            compat: match args.compat {
                CompatArg::True => FanCompat::True,
                CompatArg::Pytorch => FanCompat::PyTorch,
            },
        },
        thresholds: Thresholds {
            too_small: args.too_small,
            too_large: args.too_large,
        },
    };
    let (model, analysis, mut report) = match inspect::inspect(&args.model, &opts) {
        Ok(x) => x,
        Err(e) => return fail(&e.to_string()),
    };
    if args.forward || compare.is_some() {
        let fopts = inspect::ForwardOptions {
            seed: args.seed,
            input_shapes: args.input_shape.clone(),
            compare,
        };
        report.forward = Some(inspect::run_forward(&model, &analysis, &fopts));
    }
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            Err(e) => return fail(&format!("serialising the report: {e}")),
        }
    } else {
        report.table()
    };
    if let Err(e) = print_stdout(&text) {
        return fail(&e);
    }
    if let Some(path) = &args.plot {
        if let Err(e) = inspect::plot::write_svg(path, &report) {
            return fail(&e);
        }
        if !args.json {
            eprintln!("onnx-reinit inspect: wrote {}", path.display());
        }
    }
    if args.fail_on.triggered(&report) {
        EXIT_FLAGGED
    } else {
        0
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
