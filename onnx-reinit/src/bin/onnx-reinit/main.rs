//! `onnx-reinit`: re-initialize an ONNX model's weights by layer type and following activation,
//! or (`inspect`) diagnose their initialization.
//!
//! A thin clap layer over the library, in [`cli`]: arguments become the library's typed
//! configuration before any work starts, and the library's reports are printed here.
#![warn(unreachable_pub)]

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;

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
    match Cli::try_parse() {
        Ok(cli) => cli.run(),
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(cli::EXIT_USAGE))
        }
    }
}
