//! Signals during a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop every phase with exit code
//! [`EXIT_CANCELLED`].
//!
//! Before a rewrite has temporary files (loading, scanning, analysis, planning, a dry run,
//! `inspect`), nothing needs cleaning up, so the handler prints the message and exits at once:
//! a long load of a model with millions of initializers is not waited for. Once a rewrite is
//! writing, the handler only sets the cancellation flag: the rewrite stops at its next piece,
//! removes its temporary files and returns `Cancelled`, which the command reports with the same
//! exit code. After an output has been renamed into place the signal is ignored, so the report
//! of what was written is still printed (see `rewrite::exit_now_if_idle`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::EXIT_CANCELLED;

/// Installs the process's handler for SIGINT, SIGTERM and SIGHUP; `message` is printed (on
/// stderr, one line) when it exits at once. Returns the cancellation flag for the rewrite, or
/// `None` if a handler was already installed in this process (an embedder's own), in which case
/// signals are the embedder's business.
pub(crate) fn install(message: impl Fn() + Send + 'static) -> Option<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    ctrlc::set_handler(move || {
        flag.store(true, Ordering::SeqCst);
        if crate::rewrite::exit_now_if_idle() {
            message();
            std::process::exit(i32::from(EXIT_CANCELLED));
        }
    })
    .ok()?;
    Some(cancel)
}
