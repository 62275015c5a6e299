//! `onnx-reinit`: re-initialize an ONNX model's weights by layer type and following activation.
//!
//! A thin clap layer over the library: arguments become a [`RewriteConfig`] before any work
//! starts; errors print as one line naming the file and tensor. Exit codes: 0 success,
//! 1 failure (bad model, I/O, a rule that cannot apply), 2 usage, 130 cancelled by Ctrl-C,
//! SIGTERM or SIGHUP (nothing written, input intact).

use std::process::ExitCode;

use clap::Parser;

use cli::rules::compare_rules;
use cli::{Cli, Command, rewrite};

mod cli;

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
    rewrite::run(cli.rewrite)
}
