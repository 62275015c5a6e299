//! Printing: stdout, the progress bar.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Models smaller than this finish too fast for a progress bar to help.
pub(crate) const PROGRESS_MIN_BYTES: u64 = 100 << 20;

pub(crate) fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// A one-line progress bar on stderr, redrawn at most once per percent.
pub(crate) fn progress_bar() -> Arc<onnx_reinit::rewrite::ProgressFn> {
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
pub(crate) fn print_stdout(text: &str) -> ExitCode {
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
