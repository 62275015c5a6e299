//! `onnx-reinit`: re-initialize an ONNX model's weights by layer type and following activation,
//! or (`inspect`) diagnose their initialization.
//!
//! A thin clap layer over the library, in [`onnx_reinit::cli`]: arguments become the library's typed
//! configuration before any work starts, and the library's reports are printed here.
#![warn(unreachable_pub)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // A file-size limit (`ulimit -f`) must fail the write with EFBIG, which is reported and
    // removes the temporary file, instead of killing the process with SIGXFSZ and leaving the
    // temporary file behind.
    // SAFETY: `signal` with `SIG_IGN` only changes this process's disposition for SIGXFSZ; no
    // handler runs, and no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    onnx_reinit::cli::main_with_args(std::env::args_os())
}
