//! `onnx-reinit`: re-initialize an ONNX model's weights by layer type and following activation.
//!
//! A thin clap layer over the library: arguments become a [`RewriteConfig`] before any work
//! starts; errors print as one line naming the file and tensor. Exit codes: 0 success,
//! 1 failure (bad model, I/O, a rule that cannot apply), 2 usage, 130 cancelled by Ctrl-C,
//! SIGTERM or SIGHUP (nothing written, input intact).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand, ValueEnum};
use onnx_reinit::analysis::{AnalysisOptions, FanCompat};
use onnx_reinit::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig};
use onnx_reinit::plan::{ActivationClass, NameRule, Rule, Rules};

mod cli;

/// Re-initialize the weights of an ONNX model by layer type and the activation that follows.
///
/// Every weight's fans come from its op (Conv, ConvTranspose, Gemm, MatMul, LSTM/GRU/RNN,
/// Gather embeddings, norms); the activation after it is found by walking the graph forward.
/// Only payload bytes change: the output is the input with the weights' data overwritten.
///
/// Scheme names: zeros, ones, constant(V), uniform (±1/√fan_in), uniform(LO,HI),
/// normal(MEAN,STD), truncated_normal(MEAN,STD[,LO,HI]), truncated_normal_sd(MEAN,STD,A,B),
/// glorot|xavier[_uniform|_normal|_truncated_normal][(gain=G)],
/// he|kaiming[_uniform|_normal|_truncated_normal][(mode=fan_in|fan_out, nonlinearity=N)],
/// lecun[_uniform|_normal|_truncated_normal], variance_scaling(SCALE,MODE,DIST),
/// orthogonal[(gain=G)], eye, dirac; or `keep` to leave a class untouched.
#[derive(Debug, Parser)]
#[command(
    name = "onnx-reinit",
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// The ONNX model to re-initialize.
    #[arg(required = true)]
    model: Option<PathBuf>,

    /// Output file [default: <stem>.reinit.onnx beside the input].
    #[arg(short, long, value_name = "OUT", conflicts_with_all = ["in_place", "dry_run"])]
    output: Option<PathBuf>,

    /// Rewrite the input file itself (through a temporary file and an atomic rename).
    #[arg(long, conflicts_with = "dry_run")]
    in_place: bool,

    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,

    /// Print the plan and write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,

    /// Seed of the random streams: the same seed and rules give byte-identical output.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Fan convention: true connectivity, or reproduce PyTorch's fans (groups ignored,
    /// ConvTranspose axes swapped).
    #[arg(long, value_enum, default_value_t = Compat::True)]
    compat: Compat,

    #[command(flatten)]
    rules: RuleArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Diagnose bad initialization per weight; with --forward, show how a random input's
    /// signal propagates layer by layer (tract-onnx).
    Inspect(cli::inspect::InspectArgs),
}

/// The rule flags alone, for `inspect --compare`: the same flags as the rewrite.
#[derive(Debug, Parser)]
#[command(name = "--compare", no_binary_name = true)]
struct CompareRules {
    #[command(flatten)]
    rules: RuleArgs,
}

fn compare_rules(tokens: &[String]) -> Result<Rules, String> {
    CompareRules::try_parse_from(tokens)
        .map(|c| c.rules.into_rules())
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Compat {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k.
    True,
    /// torch.nn.init's fans.
    Pytorch,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Rules (a scheme name or `keep`)")]
struct RuleArgs {
    /// Before ReLU, ReLU6, Softplus [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    relu: Option<Rule>,
    /// Before LeakyRelu; He adapts its gain to the graph's alpha [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    leaky_relu: Option<Rule>,
    /// Before PRelu [default: he, gain of leaky_relu(0.25)].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    prelu: Option<Rule>,
    /// Before Elu, Celu [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    elu: Option<Rule>,
    /// Before Selu [default: lecun_normal].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    selu: Option<Rule>,
    /// Before Gelu (op or decomposition) [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    gelu: Option<Rule>,
    /// Before SiLU/Swish, HardSwish, Mish [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    silu: Option<Rule>,
    /// Before Tanh, Softsign [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    tanh: Option<Rule>,
    /// Before Sigmoid, HardSigmoid [default: uniform, i.e. ±1/√fan_in].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    sigmoid: Option<Rule>,
    /// Before Softmax, LogSoftmax [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    softmax: Option<Rule>,
    /// With no nonlinearity after the layer [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    linear: Option<Rule>,
    /// Biases [default: zeros].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    bias: Option<Rule>,
    /// Normalization scales; shifts and running statistics are reset to 0 (var 1) unless
    /// `keep` [default: ones].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    norm: Option<Rule>,
    /// Embedding tables [default: normal(0,1), as PyTorch].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    embedding: Option<Rule>,
    /// LSTM/GRU/RNN W and R, per direction and gate block (sets both).
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent: Option<Rule>,
    /// LSTM/GRU/RNN input weights W [default: glorot_uniform].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent_w: Option<Rule>,
    /// LSTM/GRU/RNN recurrent weights R [default: orthogonal].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent_r: Option<Rule>,
    /// PRelu slopes [default: constant(0.25)].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    prelu_slope: Option<Rule>,
    /// GLOB=SCHEME on initializer or node names; highest precedence, first match wins
    /// (repeatable).
    #[arg(long = "rule", value_name = "GLOB=SCHEME", value_parser = NameRule::parse)]
    rules: Vec<NameRule>,
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    Rule::parse(s).map_err(|e| e.to_string())
}

impl RuleArgs {
    fn into_rules(self) -> Rules {
        let mut r = Rules::default();
        let per_class = [
            (ActivationClass::Relu, self.relu),
            (ActivationClass::LeakyRelu, self.leaky_relu),
            (ActivationClass::Prelu, self.prelu),
            (ActivationClass::Elu, self.elu),
            (ActivationClass::Selu, self.selu),
            (ActivationClass::Gelu, self.gelu),
            (ActivationClass::Silu, self.silu),
            (ActivationClass::Tanh, self.tanh),
            (ActivationClass::Sigmoid, self.sigmoid),
            (ActivationClass::Softmax, self.softmax),
            (ActivationClass::Linear, self.linear),
        ];
        r.activation = per_class
            .into_iter()
            .filter_map(|(c, rule)| rule.map(|rule| (c, rule)))
            .collect();
        if let Some(x) = self.bias {
            r.bias = x;
        }
        if let Some(x) = self.norm {
            r.norm = x;
        }
        if let Some(x) = self.embedding {
            r.embedding = x;
        }
        if let Some(x) = self.recurrent {
            r.recurrent_w = x.clone();
            r.recurrent_r = x;
        }
        if let Some(x) = self.recurrent_w {
            r.recurrent_w = x;
        }
        if let Some(x) = self.recurrent_r {
            r.recurrent_r = x;
        }
        if let Some(x) = self.prelu_slope {
            r.prelu_slope = x;
        }
        r.overrides = self.rules;
        r
    }
}

impl Cli {
    /// Turn the arguments into the library's configuration before any work starts.
    fn into_config(self) -> (RewriteConfig, bool) {
        let model = self
            .model
            .expect("clap requires MODEL without a subcommand");
        let destination = if self.dry_run {
            Destination::DryRun
        } else if self.in_place {
            Destination::InPlace
        } else {
            Destination::Path(
                self.output
                    .unwrap_or_else(|| pipeline::default_output(&model)),
            )
        };
        let compat = match self.compat {
            Compat::True => FanCompat::True,
            Compat::Pytorch => FanCompat::PyTorch,
        };
        (
            RewriteConfig {
                model,
                destination,
                force: self.force,
                rules: self.rules.into_rules(),
                seed: self.seed,
                analysis: AnalysisOptions { compat },
                cancel: None,
                progress: None,
            },
            self.json,
        )
    }
}

fn main() -> ExitCode {
    // A file-size limit (`ulimit -f`) must fail the write with EFBIG, which is reported and
    // removes the temporary file, instead of killing the process with SIGXFSZ and leaving the
    // temporary file behind.
    // SAFETY: `signal` with `SIG_IGN` only changes this process's disposition for SIGXFSZ; no
    // handler runs, and no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Some(Command::Inspect(args)) = &cli.command {
        return ExitCode::from(cli::inspect::run(args, &compare_rules));
    }
    let (mut config, json) = cli.into_config();
    // Ctrl-C (and SIGTERM, SIGHUP) stops the rewrite at the next piece; the library then removes
    // its temporary files, so the input stays intact and no partial output is left.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    if ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).is_ok() {
        config.cancel = Some(cancel);
    }
    if !json && io::stderr().is_terminal() && file_len(&config.model) > PROGRESS_MIN_BYTES {
        config.progress = Some(progress_bar());
    }
    match pipeline::run(&config) {
        Ok(outcome) => {
            let text = if json {
                let mut s = serde_json::to_string_pretty(&outcome.report)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
                s.push('\n');
                s
            } else {
                outcome.report.table()
            };
            print_stdout(&text)
        }
        Err(e) => {
            eprintln!("onnx-reinit: error: {e}");
            if matches!(
                e,
                pipeline::RunError::Model(onnx_reinit::error::Error::Cancelled { .. })
            ) {
                // The shell's code for a run stopped by Ctrl-C, so a pipeline (`set -e`, make)
                // tells an interruption from a failure.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Models smaller than this finish too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 100 << 20;

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// A one-line progress bar on stderr, redrawn at most once per percent.
fn progress_bar() -> Arc<onnx_reinit::rewrite::ProgressFn> {
    let done = std::sync::atomic::AtomicU64::new(0);
    let last = std::sync::atomic::AtomicU64::new(u64::MAX);
    Arc::new(move |bytes: u64, total: u64| {
        let now = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let pct = (now.min(total) * 100).checked_div(total).unwrap_or(100);
        if last.swap(pct, Ordering::Relaxed) != pct {
            let filled = (pct / 4) as usize;
            eprint!(
                "\r[{}{}] {pct:3}% {:.0}/{:.0} MB",
                "#".repeat(filled),
                " ".repeat(25 - filled),
                now as f64 / 1e6,
                total as f64 / 1e6
            );
            if pct == 100 {
                eprintln!();
            }
        }
    })
}

/// Print to stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onnx-reinit: error: writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
