//! The integration tests of onnx-reinit, in one test binary (one link, one process).
//!
//! The tests of all modules run as threads of the same process: a test may change process-wide
//! state (resource limits, signal dispositions, environment variables, the current directory,
//! the umask) only in a child process it starts, never in this one.
//! Run one module with `cargo test -p onnx-reinit --test suite -- robustness::`.

mod common;

mod analysis;
mod cli;
mod inspect;
mod load_rewrite;
mod patterns;
mod recipes;
mod reliability;
mod robustness;
