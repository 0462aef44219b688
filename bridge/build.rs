//! Exposes PyO3's `Py_3_*` cfgs: the `am_send` fast path needs Python 3.10+.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
