//! What the command writes: the report (the table, or the JSON document) on stdout; every
//! line meant for a person — what was written, errors, the progress bar — on stderr, so that
//! `onnx-reinit … --json | jq` and `2>/dev/null` behave. `--quiet` silences the human lines
//! except errors.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// The prefix of the rewrite's stderr lines.
pub(crate) const REWRITE: &str = "onnx-reinit";
/// The prefix of `inspect`'s stderr lines.
pub(crate) const INSPECT: &str = "onnx-reinit inspect";

/// Whether a progress bar is drawn on stderr without its final newline: the next line printed
/// on stderr must then start on a line of its own.
static BAR_OPEN: AtomicBool = AtomicBool::new(false);

/// Ends an unfinished progress bar's line, so the next message starts on its own line.
fn close_bar() {
    if BAR_OPEN.swap(false, Ordering::Relaxed) {
        eprintln!();
    }
}

/// Prints `<who>: error: <msg>` on stderr: one line, which names the file and tensor when the
/// library's message does; after an unfinished progress bar, on a line of its own.
pub(crate) fn error(who: &str, msg: impl Display) {
    close_bar();
    eprintln!("{who}: error: {msg}");
}

/// A failed run's message in the command line's words: flags with their dashes (the library
/// says `force`, `in-place`), and "not an ONNX model" first for a malformed file that does not
/// even start as a model (a text file, random bytes), before the wire-format details.
pub(crate) fn run_error(e: &crate::pipeline::RunError) -> String {
    use crate::error::Error;
    use crate::pipeline::RunError;
    match e {
        RunError::Model(Error::OutputExists { file }) => format!(
            "{}: the output already exists (add --force to overwrite it)",
            file.display()
        ),
        RunError::Model(Error::OutputIsInput { file }) => format!(
            "{}: refusing to write the output over the input (use --in-place to modify the \
             model itself, or -o another file)",
            file.display()
        ),
        RunError::Model(Error::SideFileIsInput {
            file,
            model,
            tensor,
            ..
        }) => format!(
            "{}: the output's external data file would overwrite the input's ({} reads tensor \
             {tensor:?} from it, and the output model keeps its data under the same name beside \
             itself): name the output's data file with --data-name NAME, write the output \
             into another folder (-o DIR/), or re-initialize the model itself with --in-place",
            file.display(),
            model.display()
        ),
        RunError::Model(Error::Malformed {
            file, offset, what, ..
        }) if !starts_like_onnx(file) => format!(
            "{}: not an ONNX model (malformed protobuf at byte {offset}: {what})",
            file.display()
        ),
        e => e.to_string(),
    }
}

/// Whether the file at `p` starts as every ONNX exporter writes a model: field 1
/// (`ir_version`, a varint), tag byte 0x08. A damaged real model (truncated, a bad length
/// further on) keeps the library's located message; a text file or random bytes do not.
fn starts_like_onnx(p: &Path) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut first))
        .is_ok_and(|()| first[0] == 0x08)
}

/// Prints `<who>: <msg>` on stderr, unless `quiet`.
pub(crate) fn note(who: &str, quiet: bool, msg: impl Display) {
    if !quiet {
        close_bar();
        eprintln!("{who}: {msg}");
    }
}

/// The width the human tables fit: `None` with `--wide` (every column, full width);
/// else `$COLUMNS` when set to a positive number; else the terminal's width when stdout is a
/// terminal; else 80, so that piped or logged output is as readable as the default terminal.
pub(crate) fn table_width(wide: bool) -> Option<usize> {
    if wide {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(c);
    }
    Some(terminal_columns().unwrap_or(80))
}

/// The columns of the terminal on stdout, if stdout is one.
fn terminal_columns() -> Option<usize> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass; stdout (fd 1) is open.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
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

/// A one-line progress bar on stderr, redrawn at most once per percent, and on the rewrite's
/// pulses (calls with 0 bytes while no piece finishes, see [`crate::rewrite::ProgressFn`]) with
/// a turning wheel and the seconds since the last piece, so that a long orthogonal fill does
/// not look like a hang.
pub(crate) fn progress_bar() -> Arc<crate::rewrite::ProgressFn> {
    let done = AtomicU64::new(0);
    let last = AtomicU64::new(u64::MAX);
    let began = std::time::Instant::now();
    // Milliseconds from `began` to the last piece, and the pulses since.
    let moved = AtomicU64::new(0);
    let pulses = AtomicU64::new(0);
    Arc::new(move |bytes: u64, total: u64| {
        let now = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let pct = (now.min(total) * 100).checked_div(total).unwrap_or(100);
        let bar = |pct: u64| {
            let filled = (pct / 4) as usize;
            format!(
                "\r[{}{}] {pct:3}% {:.0}/{:.0} MB",
                "#".repeat(filled),
                " ".repeat(25 - filled),
                now as f64 / 1e6,
                total as f64 / 1e6
            )
        };
        if bytes == 0 {
            if pct < 100 {
                let k = pulses.fetch_add(1, Ordering::Relaxed);
                let waited = began
                    .elapsed()
                    .saturating_sub(std::time::Duration::from_millis(
                        moved.load(Ordering::Relaxed),
                    ))
                    .as_secs();
                let wheel = ['|', '/', '-', '\\'][(k % 4) as usize];
                // Trailing spaces clear a longer earlier text.
                eprint!("{} {wheel} computing ({waited} s)   ", bar(pct));
                BAR_OPEN.store(true, Ordering::Relaxed);
            }
            return;
        }
        moved.store(began.elapsed().as_millis() as u64, Ordering::Relaxed);
        let was = last.swap(pct, Ordering::Relaxed);
        let pulsed = pulses.swap(0, Ordering::Relaxed) > 0;
        if was != pct || pulsed {
            eprint!(
                "{}{}",
                bar(pct),
                if pulsed {
                    " ".repeat(24)
                } else {
                    String::new()
                }
            );
            if pct == 100 {
                eprintln!();
            }
            BAR_OPEN.store(pct < 100, Ordering::Relaxed);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Report, Summary, TensorReport, UntouchedReport};

    fn report(rows: usize) -> Report {
        let tensor = |k: usize| TensorReport {
            name: format!("fc{k}.weight \"q\""),
            graph: String::new(),
            role: "weight".into(),
            op: "Gemm".into(),
            shape: vec![4, 3],
            dtype: "float32".into(),
            fan_in: Some(3),
            fan_out: Some(4),
            activation: Some("relu".into()),
            scheme: "he_uniform".into(),
            changed: true,
            reason: "--relu".into(),
            consumers: vec![format!("Gemm fc{k}")],
            note: (k == 0).then(|| "shared by 2 consumers:\nGemm fc0, Gemm fc1".into()),
            node: Some(format!("fc{k}")),
            recurrent: None,
            target_std: Some(0.5),
            bound: Some(f64::NAN),
            gain: None,
        };
        let untouched = |k: usize| {
            UntouchedReport::new(
                format!("ids{k}").into(),
                "/loop.body".into(),
                vec![2, k as i64].into(),
                "int64",
                "int64 tensor: only f32/f64/f16/bf16 tensors are re-initialized",
                false,
            )
        };
        Report {
            schema_version: 1,
            tool_version: "0.1.0".into(),
            model: "m.onnx".into(),
            seed: 7,
            dry_run: false,
            output: Some("o.onnx".into()),
            files_written: vec!["/tmp/o.onnx".into()],
            tensors: (0..rows).map(tensor).collect(),
            untouched: (0..=rows).map(untouched).collect(),
            warnings: vec!["graph '': a warning".into()],
            summary: Summary {
                initializers: 2 * rows + 1,
                changed: rows,
                kept: 0,
                untouched: rows + 1,
                elements_changed: 12 * rows as u64,
            },
        }
    }

    /// The text the document's whole `serde_json::Value` prints: what `--json` printed before
    /// the rows were streamed, and must still print byte for byte.
    fn through_value(r: &Report, extra: &[(String, serde_json::Value)]) -> String {
        let mut v = serde_json::to_value(r).unwrap();
        for (k, x) in extra {
            v.as_object_mut().unwrap().insert(k.clone(), x.clone());
        }
        json(&v).unwrap()
    }

    #[test]
    fn the_streamed_report_is_the_documents_value_printed() {
        let preset = vec![(
            "preset".to_owned(),
            serde_json::json!({"preset": "gpt2", "knobs": [{"name": "n_layer", "value": 2}]}),
        )];
        for rows in [0, 1, 3] {
            let r = report(rows);
            for extra in [Vec::new(), preset.clone()] {
                assert_eq!(
                    crate::report::report_json(&r, extra.clone()).unwrap(),
                    through_value(&r, &extra),
                    "{rows} rows, {} extra",
                    extra.len()
                );
            }
        }
    }
}
