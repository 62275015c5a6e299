//! What the binary writes: reports on stdout, error lines and the progress bar on stderr.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The prefix of the rewrite's stderr lines.
pub(crate) const REWRITE: &str = "onnx-reinit";
/// The prefix of `inspect`'s stderr lines.
pub(crate) const INSPECT: &str = "onnx-reinit inspect";

/// Prints `<who>: error: <msg>` on stderr: one line, which names the file and tensor when the
/// library's message does.
pub(crate) fn error(who: &str, msg: impl Display) {
    eprintln!("{who}: error: {msg}");
}

/// A report as `--json` prints it: pretty-printed, with a final newline.
pub(crate) fn json(report: &impl Serialize) -> serde_json::Result<String> {
    let mut s = serde_json::to_string_pretty(report)?;
    s.push('\n');
    Ok(s)
}

/// Prints `text` on stdout. A closed pipe (`| head`) is not an error; any other write error is
/// printed as `who`'s error and returned as the failure exit code.
pub(crate) fn print_stdout(who: &str, text: &str) -> Result<(), ExitCode> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            error(who, format_args!("writing the report: {e}"));
            Err(ExitCode::FAILURE)
        }
        _ => Ok(()),
    }
}

/// Models smaller than this finish too fast for a progress bar to help.
pub(crate) const PROGRESS_MIN_BYTES: u64 = 100 << 20;

/// The size of the file at `p`, 0 when it cannot be read (the run then reports why).
pub(crate) fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// A one-line progress bar on stderr, redrawn at most once per percent.
pub(crate) fn progress_bar() -> Arc<crate::rewrite::ProgressFn> {
    let done = AtomicU64::new(0);
    let last = AtomicU64::new(u64::MAX);
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
