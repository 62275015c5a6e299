//! The whole pipeline on arbitrary bytes: open → analyse → plan → values → rewrite (to a new
//! file, or in place for a quarter of the inputs), with the fidelity check on every success.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    onnx_reinit_fuzz::pipeline(data);
});
