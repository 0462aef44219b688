//! Compile-time messages of the `#[main]` and `#[test]` attributes (trybuild).
//!
//! Each `ui/*.rs` misuses an attribute; its `.stderr` holds the message, which must say what
//! is accepted. `ui/pass_*.rs` must compile and run. After changing a message, regenerate
//! with `TRYBUILD=overwrite cargo test -p pyo3-aio --all-features --test ui` and read the
//! diff.

#[test]
fn attribute_messages() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/main_*.rs");
    cases.compile_fail("tests/ui/test_*.rs");
    cases.pass("tests/ui/pass_*.rs");
}
