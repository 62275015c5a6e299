//! The binary's command-line layer.

use clap::{Parser, Subcommand, ValueEnum};

pub mod inspect;
pub mod output;
pub mod rewrite;
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

    #[command(flatten)]
    pub(crate) rewrite: rewrite::RewriteArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Diagnose bad initialization per weight; with --forward, show how a random input's
    /// signal propagates layer by layer (tract-onnx).
    Inspect(inspect::InspectArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Compat {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k.
    True,
    /// torch.nn.init's fans.
    Pytorch,
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
