//! `onnx-reinit`: re-initialize an ONNX model's weights by layer type and following activation.
//!
//! A thin clap layer over the library: arguments become a [`RewriteConfig`] before any work
//! starts; errors print as one line naming the file and tensor. Exit codes: 0 success,
//! 1 failure (bad model, I/O, a rule that cannot apply), 2 usage, 130 cancelled by Ctrl-C,
//! SIGTERM or SIGHUP (nothing written, input intact).

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use onnx_reinit::pipeline;

use cli::output::{PROGRESS_MIN_BYTES, file_len, print_stdout, progress_bar};
use cli::rules::compare_rules;
use cli::{Cli, Command};

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
