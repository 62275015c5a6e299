//! Shared by the test modules: the protobuf encoder, ONNX builders, the fixtures folder and
//! running the CLI binary.

pub mod fidelity;
pub mod onnx;
pub mod pb;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The exported PyTorch fixtures (`tests/fixtures` at the workspace root).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The `.onnx` files in [`fixtures_dir`], sorted.
pub fn fixture_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("fixtures dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    v
}

/// The `onnx-reinit` binary, with `RAYON_NUM_THREADS` removed from its environment (the
/// child's: no test changes the environment of the test process itself).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onnx-reinit"));
    c.env_remove("RAYON_NUM_THREADS");
    c
}

/// Runs the binary with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run onnx-reinit")
}

/// Captured output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
