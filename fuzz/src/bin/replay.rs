//! Runs both fuzz harnesses over files (or every file in folders), without libFuzzer: for a
//! stable toolchain, for CI, and for replaying a crash. Exits non-zero on the first panic.

use std::path::{Path, PathBuf};

fn files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn main() {
    let mut inputs = Vec::new();
    for arg in std::env::args_os().skip(1) {
        files(Path::new(&arg), &mut inputs);
    }
    if inputs.is_empty() {
        eprintln!("usage: replay FILE_OR_FOLDER...");
        std::process::exit(2);
    }
    for p in &inputs {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        eprintln!("{} ({} bytes)", p.display(), data.len());
        onnx_reinit_fuzz::scan_and_analyse(&data);
        onnx_reinit_fuzz::pipeline(&data);
    }
    eprintln!("{} inputs, no panic", inputs.len());
}
