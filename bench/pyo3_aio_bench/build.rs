//! Exposes PyO3's `Py_3_*` cfgs: scenario 1's floor installs `am_send` (3.10+) and
//! `tp_iternext` (3.12+).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
