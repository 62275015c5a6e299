//! The in-memory stages on arbitrary bytes: wire scan, skeleton decode, analysis, plan, report.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    onnx_reinit_fuzz::scan_and_analyse(data);
});
