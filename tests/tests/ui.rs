//! trybuild UI tests for `#[derive(Initialize)]`: every compile error the derive reports, with
//! the span it points at (`tests/ui/*.rs` + `.stderr`, made with the pinned toolchain), and
//! programs that must compile and run (`tests/ui/pass/`; having them also makes trybuild build
//! rather than only check, so the post-monomorphization `const { assert!(..) }` checks fire).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
