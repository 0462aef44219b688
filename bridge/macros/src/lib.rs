//! pyo3-aio-macros: filled by a later issue (see docs/ARCHITECTURE.md).
