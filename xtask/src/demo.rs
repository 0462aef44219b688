//! `cargo xtask demo`: run the examples (the extension module from Python, then the Rust
//! programs that embed Python), then list what exists.

use crate::cmd::{Cmd, Failure, Result};
use crate::fuzz;
use crate::python::{self, Venv};
use crate::workspace::{Workspace, files_named};

/// One thing the demo runs.
struct DemoStep {
    name: &'static str,
    run: fn(&Workspace) -> Result,
}

/// What `cargo xtask demo` runs, in order.
const DEMO_STEPS: &[DemoStep] = &[
    DemoStep {
        name: "extension",
        run: extension,
    },
    DemoStep {
        name: "custom executor",
        run: custom_executor,
    },
    DemoStep {
        name: "application",
        run: application,
    },
];

/// The package of the Rust-application example (examples/app).
const APP_PACKAGE: &str = "pyo3-aio-app-example";

/// The programs of examples/app that the demo runs: pyo3-asyncio's README programs, one per
/// runtime, and the one on uvloop. (Its `fixture_*` programs are for its tests.)
const APP_PROGRAMS: &[&str] = &[
    "app_tokio",
    "app_tokio_current_thread",
    "app_async_std",
    "app_smol",
    "app_uvloop",
    "app_trio",
];

/// Runs every demo step, stopping at the first failure; the summary is printed either way.
pub(crate) fn run(ws: &Workspace) -> Result {
    let mut outcome = Ok(());
    for step in DEMO_STEPS {
        println!("==> demo: {}", step.name);
        outcome = (step.run)(ws);
        if outcome.is_err() {
            break;
        }
    }
    summary(ws);
    outcome
}

/// pyo3-asyncio's README examples as a maturin extension module, awaited from Python on
/// asyncio's default loop and on uvloop (examples/extension/demo.py).
fn extension(ws: &Workspace) -> Result {
    python::run_example(ws, "demo", &python::EXTENSION_EXAMPLE)
}

/// minipool, an executor built on pyo3-aio-core alone, carrying an extension module through
/// `pyo3_aio::generic`: Python awaiting Rust and Rust awaiting Python on it, cancellation
/// both ways, and shutdown (examples/custom-executor/demo.py).
fn custom_executor(ws: &Workspace) -> Result {
    python::run_example(ws, "demo", &python::CUSTOM_EXECUTOR_EXAMPLE)
}

/// Rust programs that embed Python (examples/app): build them once, then run each with the
/// venv's site-packages on `PYTHONPATH` (embedded Python does not see the venv by itself,
/// and `app_uvloop` imports uvloop from it). Each exits non-zero when what it shows is wrong.
fn application(ws: &Workspace) -> Result {
    const STEP: &str = "demo";
    let venv = Venv::ensure(ws, STEP)?;
    let site_packages = venv.site_packages(STEP)?;
    Cmd::new("cargo")
        .args(["build", "-p", APP_PACKAGE, "--bins"])
        .env("CARGO_TARGET_DIR", ws.target())
        .run(STEP)?;
    for program in APP_PROGRAMS {
        println!();
        Cmd::new(ws.target().join("debug").join(program))
            .env("PYTHONPATH", &site_packages)
            .run(STEP)
            .map_err(|failure| {
                Failure::with_code(
                    format!("{}: see its traceback above", failure.message),
                    failure.code,
                )
            })?;
    }
    Ok(())
}

fn summary(ws: &Workspace) {
    let members = ws.members();
    let fuzz_targets = fuzz::targets(ws);
    let loom_models = files_named(&ws.path("loom-tests/tests"), &|n| n.ends_with(".rs"));
    let list = |items: &[String]| {
        if items.is_empty() {
            "none yet".to_owned()
        } else {
            items.join(", ")
        }
    };

    println!();
    println!("==> demo: what exists");
    println!("    workspace crates: {}", list(&members));
    println!("    fuzz targets:     {}", list(&fuzz_targets));
    println!(
        "    loom files:       {} in loom-tests/tests/",
        loom_models.len()
    );
    println!(
        "    pytest files:     {} in pytests/ and examples/custom-executor/tests/",
        python::test_file_count(ws)
    );
    println!("    app programs:     {}", APP_PROGRAMS.join(", "));
}
