//! What the example programs share: their own Python module, `python/app_helpers.py`.
//!
//! An application that embeds Python usually ships Python code of its own. The programs
//! find it through [`import_helpers`], which puts this crate's `python/` directory on
//! `sys.path`; the path is baked in at build time with `env!("CARGO_MANIFEST_DIR")`.

use pyo3::prelude::*;

/// The directory holding the example's Python modules.
pub const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python");

/// Imports `app_helpers` from [`PYTHON_DIR`], putting that directory first on `sys.path`
/// unless it is there already.
///
/// # Errors
///
/// When `sys.path` cannot be changed or the module fails to import.
pub fn import_helpers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let path = py.import("sys")?.getattr("path")?;
    if !path.contains(PYTHON_DIR)? {
        path.call_method1("insert", (0, PYTHON_DIR))?;
    }
    py.import("app_helpers")
}
