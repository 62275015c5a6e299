//! The binary's command-line layer.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use onnx_reinit::analysis::{AnalysisOptions, FanCompat};
use onnx_reinit::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig};

use self::rules::RuleArgs;

pub mod inspect;
pub mod output;
pub mod rules;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// The ONNX model to re-initialize.
    #[arg(required = true)]
    pub(crate) model: Option<PathBuf>,

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
pub(crate) enum Command {
    /// Diagnose bad initialization per weight; with --forward, show how a random input's
    /// signal propagates layer by layer (tract-onnx).
    Inspect(inspect::InspectArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Compat {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k.
    True,
    /// torch.nn.init's fans.
    Pytorch,
}

impl Cli {
    /// Turn the arguments into the library's configuration before any work starts.
    pub(crate) fn into_config(self) -> (RewriteConfig, bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
