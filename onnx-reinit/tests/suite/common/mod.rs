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

/// Runs the test `test` of this test binary (its full path, e.g. `reliability::memory_probe`)
/// alone in a fresh process with `env` added, and returns its standard output; fails the calling
/// test if the probe fails. For probes that measure a process of their own (peak resident set,
/// threads): VmHWM starts afresh at exec, so nothing of the calling test process is counted (a
/// forked child's `ru_maxrss` would count the pages it shared with it until exec).
pub fn run_probe(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    out
}

/// The number after `key` on the first line of a probe's output `out` that holds `key`.
pub fn probe_number(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.split_once(key).map(|(_, v)| v))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// A field of this process's `/proc/self/status` (`VmHWM:`, `VmRSS:`, `Threads:`), without its
/// unit (KiB for the memory fields).
pub fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}
