//! The `onnx-reinit` command line: the top-level parser (the rewrite's arguments, `rewrite.rs`)
//! and the `inspect` subcommand (`inspect.rs`), sharing the rule flags (`rules.rs`) and one
//! printer (`output.rs`: the report on stdout, every human line on stderr).
//!
//! Exit codes: 0 success; 1 failure (bad model, I/O, a rule that cannot apply, a `--rule` that
//! decides no tensor); [`EXIT_USAGE`] (2) usage, from clap or an argument checked after
//! parsing; `EXIT_FLAGGED` (3) when a verdict listed by `inspect --fail-on` occurs;
//! `EXIT_CANCELLED` (130) when Ctrl-C, SIGTERM or SIGHUP stopped the rewrite (nothing written,
//! input intact).

use std::ffi::OsString;
use std::process::ExitCode;

use crate::analysis::FanCompat;
use clap::{Parser, Subcommand, ValueEnum};

use self::inspect::InspectArgs;
use self::rewrite::RewriteArgs;

mod cancel;
pub(crate) mod inspect;
pub(crate) mod output;
pub(crate) mod rewrite;
pub(crate) mod rules;

/// Exit code of a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `inspect --fail-on` when a listed verdict occurs.
pub(crate) const EXIT_FLAGGED: u8 = 3;
/// Exit code of a run stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP: the shell's code for
/// SIGINT, so a pipeline (`set -e`, make) tells an interruption from a failure.
pub(crate) const EXIT_CANCELLED: u8 = 130;

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
// The doc is clap's help text, whose `[_uniform|…]` brackets are the grammar, not links.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Parser)]
#[command(
    name = "onnx-reinit",
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    rewrite: RewriteArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Diagnose bad initialization per weight; with --forward, show how a random input's
    /// signal propagates layer by layer (tract-onnx).
    Inspect(InspectArgs),
}

/// `--compat` values, for the rewrite and `inspect` alike; clap lists the variants' docs under
/// "Possible values".
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Compat {
    /// fan_in = in/g·∏k, fan_out = out/g·∏k.
    True,
    /// torch.nn.init's fans.
    Pytorch,
}

impl From<Compat> for FanCompat {
    fn from(c: Compat) -> FanCompat {
        match c {
            Compat::True => FanCompat::True,
            Compat::Pytorch => FanCompat::PyTorch,
        }
    }
}

impl Cli {
    /// Runs the parsed command line and returns the process's exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Some(Command::Inspect(args)) => inspect::run(&args),
            None => rewrite::run(self.rewrite),
        }
    }
}

/// Runs `f` on a pool of `threads` worker threads (`None`: rayon's global pool, sized by
/// `RAYON_NUM_THREADS` or the core count). A pool of its own rather than the global one, so
/// that an embedder running the command twice in one process gets each run's count. The error
/// is the message of a pool that cannot be created.
pub(crate) fn with_threads<R: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, String> {
    match threads {
        None => Ok(f()),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|pool| pool.install(f))
            .map_err(|e| format!("--threads {n}: cannot start the threads: {e}")),
    }
}

/// The whole `onnx-reinit` command: parses `args` (the program name first, as
/// [`std::env::args_os`] gives them), runs the command and returns its exit code. Help, version
/// and usage errors are printed as clap prints them (help and version to stdout with exit 0,
/// usage errors to stderr with [`EXIT_USAGE`]).
///
/// The binary is this call on the process's arguments; embedders (the Python wheel's
/// `onnx-reinit` entry point) call it with their own.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.run(),
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
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
